//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use clap::Parser;

/// Repository root (the workspace folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A fresh, empty folder under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "canopy-e2e-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Output of one in-process `canopy estimate` run.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
}

impl Run {
    /// Parsed JSON lines of stdout.
    pub fn json_rows(&self) -> Vec<serde_json::Value> {
        self.stdout.lines().map(|l| serde_json::from_str(l).expect("stdout line is JSON")).collect()
    }

    pub fn unwrap_ok(self) -> Self {
        if let Some(e) = &self.error {
            panic!("canopy estimate failed: {e}\nstderr:\n{}", self.stderr);
        }
        self
    }
}

/// Runs `canopy <args>` in-process (the same code path as the binary).
pub fn canopy_estimate(args: &[&str]) -> Run {
    let mut argv = vec!["canopy", "estimate"];
    argv.extend_from_slice(args);
    let cli = canopy::cli::Cli::try_parse_from(argv).expect("arguments parse");
    let canopy::cli::Command::Estimate(estimate_args) = cli.command else {
        unreachable!("argv starts with estimate")
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let error = canopy::estimate::EstimateRequest::from_args(estimate_args)
        .and_then(|request| canopy::estimate::run(&request, &mut stdout, &mut stderr))
        .err()
        .map(|e| format!("{e:#}"));
    Run { stdout: String::from_utf8(stdout).unwrap(), stderr: String::from_utf8(stderr).unwrap(), error }
}
