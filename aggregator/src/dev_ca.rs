//! The development CA folder (`serve --dev-ca-dir`): `ca-cert.pem` and
//! `ca-key.pem`, generated on first use. Owns how the CA private key reaches
//! the disk: created with mode 0600 (owner read/write only) from the first
//! byte, never world- or group-readable, and an existing key file with a
//! looser mode is refused rather than silently used.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use canopy_transport::{CaError, CertificateAuthority};

/// File mode of the CA private key.
pub const KEY_FILE_MODE: u32 = 0o600;

/// Errors from creating or reading the development CA folder.
#[derive(Debug, thiserror::Error)]
pub enum DevCaError {
    /// A file could not be created, written or read.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file exists but others than its owner may read or write it.
    #[error("expected {path} to have mode 0600 (a CA private key), found {mode:04o}; run `chmod 600 {path}`")]
    KeyTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Generating or parsing the CA failed.
    #[error("development CA: {0}")]
    Ca(#[from] CaError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DevCaError {
    let path = path.to_owned();
    move |source| DevCaError::Io { action, path, source }
}

/// Writes `key_pem` to a new file at `path` with mode 0600 (the file must not
/// exist: an existing file would keep its old mode).
pub fn write_private_key(path: &Path, key_pem: &str) -> Result<(), DevCaError> {
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(KEY_FILE_MODE).open(path).map_err(io("creating", path))?;
    // The process umask can only remove bits; set the mode explicitly anyway
    // so the file is 0600 whatever the umask.
    file.set_permissions(std::fs::Permissions::from_mode(KEY_FILE_MODE)).map_err(io("setting the mode of", path))?;
    file.write_all(key_pem.as_bytes()).map_err(io("writing", path))?;
    file.sync_all().map_err(io("syncing", path))?;
    Ok(())
}

/// The CA in `dir`, generating `ca-key.pem` (mode 0600) and `ca-cert.pem`
/// first when the certificate is missing. Refuses a key file that group or
/// others may access.
pub fn load_or_create(dir: &Path) -> Result<CertificateAuthority, DevCaError> {
    let (cert_path, key_path) = (dir.join("ca-cert.pem"), dir.join("ca-key.pem"));
    if !cert_path.exists() {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let ca = CertificateAuthority::generate("canopy development ca")?;
        if key_path.exists() {
            std::fs::remove_file(&key_path).map_err(io("replacing", &key_path))?;
        }
        write_private_key(&key_path, &ca.key_pem())?;
        std::fs::write(&cert_path, ca.cert_pem()).map_err(io("writing", &cert_path))?;
        tracing::warn!(dir = %dir.display(), "generated a development CA; do not use it in production");
    }
    let mode = std::fs::metadata(&key_path).map_err(io("reading", &key_path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(DevCaError::KeyTooOpen { path: key_path, mode });
    }
    let cert = std::fs::read_to_string(&cert_path).map_err(io("reading", &cert_path))?;
    let key = std::fs::read_to_string(&key_path).map_err(io("reading", &key_path))?;
    Ok(CertificateAuthority::from_pem(&cert, &key)?)
}
