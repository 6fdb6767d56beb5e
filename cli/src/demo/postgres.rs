//! A private, throwaway PostgreSQL cluster for the demo: `initdb` into a
//! temporary folder (trust authentication, loopback only, a free port),
//! `pg_ctl start`, and `pg_ctl stop` when dropped. PostgreSQL refuses to run
//! as root, so as root the cluster runs as the `postgres` user (or `nobody`)
//! through `runuser`, owning the folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the private cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// PostgreSQL's server binaries are not installed.
    #[error(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found in PATH or /usr/lib/postgresql/*/bin; \
         install them (Debian/Ubuntu: `apt-get install postgresql`, macOS: `brew install postgresql`) \
         or set DATABASE_URL to an existing database"
    )]
    NotInstalled,
    /// A command failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command.
        command: String,
        /// Its stderr or the spawn error.
        detail: String,
    },
    /// File-system trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Folder holding `initdb` and `pg_ctl`: PATH first, then the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    for dir in in_path {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn unprivileged_user() -> &'static str {
    if Command::new("id").arg("postgres").output().is_ok_and(|o| o.status.success()) { "postgres" } else { "nobody" }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running private cluster; stopped (and its folder removed) on drop.
#[derive(Debug)]
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    run_as: Option<&'static str>,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts a cluster.
    pub fn start() -> Result<PrivatePostgres, PostgresError> {
        let bin = find_bin_dir().ok_or(PostgresError::NotInstalled)?;
        let dir = tempfile::Builder::new().prefix("canopy-demo-pg-").tempdir()?;
        let run_as = if is_root() { Some(unprivileged_user()) } else { None };
        if let Some(user) = run_as {
            chown(dir.path(), user)?;
        }
        let port = free_port()?;
        let pg = PrivatePostgres { bin, dir, run_as, port };
        let data = pg.data_dir();
        pg.run("initdb", &["-D", path_str(&data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])?;
        let options = format!("-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off", path_str(pg.dir.path()));
        let log = pg.dir.path().join("postgres.log");
        pg.run("pg_ctl", &["-D", path_str(&data), "-l", path_str(&log), "-o", &options, "-w", "-t", "60", "start"])?;
        tracing::info!(port, dir = %pg.dir.path().display(), "started a private PostgreSQL");
        Ok(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Its connection URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), PostgresError> {
        let exe = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(self.dir.path());
        let out = cmd.output().map_err(|e| PostgresError::Command { command: program.into(), detail: e.to_string() })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(PostgresError::Command {
                command: program.into(),
                detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
            })
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        match self.run("pg_ctl", &["-D", path_str(&data), "-m", "fast", "-w", "stop"]) {
            Ok(()) => tracing::info!(port = self.port, "stopped the private PostgreSQL"),
            Err(e) => tracing::warn!(error = %e, "could not stop the private PostgreSQL"),
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or(".")
}

fn chown(dir: &Path, user: &str) -> Result<(), PostgresError> {
    let out = Command::new("chown")
        .args(["-R", user])
        .arg(dir)
        .output()
        .map_err(|e| PostgresError::Command { command: "chown".into(), detail: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PostgresError::Command { command: "chown".into(), detail: String::from_utf8_lossy(&out.stderr).into() })
    }
}
