//! The binary: iam-actions output, validate, collect --once.

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_canopy-agent"))
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("canopy-agent-it-{}-{name}", std::process::id()))
}

#[test]
fn iam_actions_prints_the_sorted_declared_set() {
    let out = agent().arg("iam-actions").output().unwrap();
    assert!(out.status.success());
    let printed: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    let declared: Vec<String> =
        canopy_agent::collectors::declared_iam_actions().into_iter().map(str::to_owned).collect();
    assert_eq!(printed, declared);
    let mut sorted = printed.clone();
    sorted.sort();
    assert_eq!(printed, sorted);
    for needed in [
        "sts:GetCallerIdentity",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "ec2:DescribeInstances",
    ] {
        assert!(printed.iter().any(|a| a == needed), "{needed}");
    }
}

#[test]
fn validate_rejects_bad_config_naming_the_key() {
    let path = temp_path("bad.toml");
    std::fs::write(&path, "config_version = 1\nagent_id = \"a\"\nregion = \"eu-west-1\"\n[intervals]\ncycle_s = 7\n")
        .unwrap();
    let out = agent().args(["validate", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config key intervals.cycle_s: expected 60..=3600 seconds"), "{stderr}");

    std::fs::write(&path, "config_version = 1\nagent_id = \"a\"\nregion = \"eu-west-1\"\nregoin = \"x\"\n").unwrap();
    let out = agent().args(["validate", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `regoin`"));

    std::fs::write(&path, "config_version = 1\nagent_id = \"a\"\nregion = \"eu-west-1\"\n").unwrap();
    let out =
        agent().args(["validate", "--config"]).arg(&path).env("CANOPY_AGENT_UTILISATION_S", "hourly").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("CANOPY_AGENT_UTILISATION_S (overrides intervals.utilisation_s): expected an integer")
    );
    let out = agent().args(["validate", "--config"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn collect_once_writes_inventory_then_emissions() {
    let out_path = temp_path("once.jsonl");
    let out = agent()
        .args(["collect", "--once", "--out"])
        .arg(&out_path)
        .env("CANOPY_AGENT_SOURCE", "simulated")
        .env("CANOPY_AGENT_REGION", "eu-west-1")
        .env("CANOPY_AGENT_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&out_path).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    // Default simulated inventory: 1,000 resources, then the emission records.
    assert_eq!(kinds.iter().take_while(|k| *k == "resource").count(), 1_000);
    assert!(kinds.iter().skip(1_000).all(|k| k == "emission"));
    assert!(kinds.len() > 1_000);
    let _ = std::fs::remove_file(&out_path);
}
