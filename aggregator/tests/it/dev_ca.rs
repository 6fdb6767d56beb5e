//! Issue 19 §4: the development CA key is written with mode 0600, and a key
//! file others may read is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use canopy_aggregator::dev_ca::{self, DevCaError};

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("canopy-dev-ca-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn dev_ca_key_is_written_with_mode_0600() {
    let dir = fresh_dir("mode");
    let ca = dev_ca::load_or_create(&dir).unwrap();
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600, "CA private key mode");
    // The certificate is public.
    assert_eq!(std::fs::read_to_string(dir.join("ca-cert.pem")).unwrap(), ca.cert_pem());
    // A second start loads the same CA rather than generating another.
    let again = dev_ca::load_or_create(&dir).unwrap();
    assert_eq!(again.cert_pem(), ca.cert_pem());
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dev_ca_key_readable_by_others_is_refused() {
    let dir = fresh_dir("open");
    dev_ca::load_or_create(&dir).unwrap();
    let key = dir.join("ca-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    match dev_ca::load_or_create(&dir) {
        Err(DevCaError::KeyTooOpen { mode, .. }) => assert_eq!(mode, 0o644),
        other => panic!("expected KeyTooOpen, found {:?}", other.map(|_| ())),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
