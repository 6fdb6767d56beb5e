//! A throwaway PostgreSQL cluster for the scenario that restarts the
//! database (c): the machine's shared server at 127.0.0.1:5432 serves other
//! tests at the same time and must never be stopped.
//!
//! `initdb`, `postgres` and `pg_ctl` refuse to run as root, so they run as
//! the unprivileged `postgres` user (through `runuser` when the tests run as
//! root, as CI does) with a data folder that user owns. Trust
//! authentication, loopback only, a free port.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The unprivileged OS user the cluster runs as.
const PG_USER: &str = "postgres";

/// A private PostgreSQL cluster; stopped (immediately) and deleted on drop.
pub struct PrivatePg {
    bin: PathBuf,
    data: PathBuf,
    root: PathBuf,
    pub port: u16,
}

/// The folder of `initdb`/`pg_ctl`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().expect("expected PostgreSQL server binaries (initdb) under /usr/lib/postgresql/*/bin, found none")
}

/// `cmd args…` as [`PG_USER`]; the current user when that is not root.
fn as_pg_user(program: &Path) -> Command {
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", PG_USER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what}: exited with {}; stdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PrivatePg {
    /// `initdb` into a new folder under `parent` and start the server on `port`.
    pub fn start(parent: &Path, port: u16) -> PrivatePg {
        let root = parent.join("private-pg");
        let data = root.join("data");
        std::fs::create_dir_all(&root).expect("private pg folder");
        let chown = Command::new("chown").args(["-R", &format!("{PG_USER}:")]).arg(&root).status();
        assert!(chown.map(|s| s.success()).unwrap_or(false), "chown of {} to {PG_USER} failed", root.display());
        let bin = bin_dir();
        let mut initdb = as_pg_user(&bin.join("initdb"));
        initdb.args(["-D"]).arg(&data).args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]);
        run(initdb, "initdb of the private PostgreSQL");
        let pg = PrivatePg { bin, data, root, port };
        pg.pg_ctl_start();
        pg
    }

    /// Superuser URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    fn pg_ctl(&self) -> Command {
        let mut c = as_pg_user(&self.bin.join("pg_ctl"));
        c.arg("-D").arg(&self.data);
        c
    }

    /// Port, loopback only, and the cluster's own socket folder (nothing
    /// collides with the shared server's /var/run/postgresql).
    fn server_options(&self) -> String {
        format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=60",
            self.port,
            self.root.display()
        )
    }

    fn pg_ctl_start(&self) {
        let mut c = self.pg_ctl();
        let options = self.server_options();
        c.args(["-w", "-t", "60", "-l"]).arg(self.root.join("server.log")).args(["-o", &options, "start"]);
        run(c, "pg_ctl start of the private PostgreSQL");
    }

    /// `pg_ctl stop -m immediate`: every backend is killed at once, no
    /// checkpoint; the next start runs crash recovery.
    pub fn stop_immediate(&self) {
        let mut c = self.pg_ctl();
        c.args(["-w", "-m", "immediate", "stop"]);
        run(c, "pg_ctl stop -m immediate");
    }

    /// Starts the stopped server again (waiting until it accepts connections).
    pub fn start_again(&self) {
        self.pg_ctl_start();
    }

    /// `pg_ctl restart -m fast`: backends are told to end (57P01), a
    /// checkpoint is written, the server starts again.
    pub fn restart_fast(&self) {
        let mut c = self.pg_ctl();
        let options = self.server_options();
        c.args(["-w", "-t", "60", "-m", "fast", "-l"]).arg(self.root.join("server.log")).args(["-o", &options, "restart"]);
        run(c, "pg_ctl restart -m fast");
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let mut c = self.pg_ctl();
        c.args(["-w", "-m", "immediate", "stop"]);
        let _ = c.output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
