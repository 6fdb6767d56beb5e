//! The simulated agent's command line refuses what it cannot run, naming
//! the problem. (Also makes `cargo test --workspace` build the binary, which
//! the fault suite in `tests/fault` runs.)

use std::process::Command;

fn simagent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_canopy-simagent"))
}

#[test]
fn a_missing_required_flag_is_named() {
    let out = simagent().args(["--aggregator", "127.0.0.1:4433"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--ca"), "{stderr}");
}

#[test]
fn without_a_dev_certificate_it_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("canopy-simagent-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, "not used before the certificate check").unwrap();
    let out = simagent()
        .args(["--aggregator", "127.0.0.1:4433", "--ca"])
        .arg(&ca)
        .args(["--account", "123456789012", "--agent-id", "a", "--outbox"])
        .arg(dir.join("outbox"))
        .args(["--records-per-cycle", "1", "--cycles", "1", "--produced-log"])
        .arg(dir.join("log.jsonl"))
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected --dev-cert-from-ca-key"), "{stderr}");
}
