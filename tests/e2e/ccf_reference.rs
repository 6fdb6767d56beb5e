//! `canopy estimate --methodology ccf` against Cloud Carbon Footprint itself.
//!
//! `tests/ccf-reference/ccf_reference.js` runs CCF's npm package
//! (`@cloud-carbon-footprint/aws`, only its Athena client replaced) on a CUR
//! file; these tests run Canopy on the same file and require every
//! (period, account, region, service[, tag]) row to agree within 1e-9.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use canopy_cur::generate::{CsvStyle, GeneratorConfig, write_csv};
use serde_json::Value;

use crate::support::{TempDir, canopy_estimate, repo_root};

const REL_TOLERANCE: f64 = 1e-9;

fn harness_dir() -> std::path::PathBuf {
    repo_root().join("tests/ccf-reference")
}

/// Runs CCF's npm package on `cur` and returns its JSON lines.
fn run_ccf(cur: &Path, extra: &[&str]) -> String {
    let dir = harness_dir();
    assert!(
        dir.join("node_modules/@cloud-carbon-footprint/aws").is_dir(),
        "CCF's npm package is not installed: run `npm ci --prefix tests/ccf-reference` (scripts/test.sh does)"
    );
    let output = Command::new("node")
        .arg(dir.join("ccf_reference.js"))
        .args(extra)
        .arg(cur)
        .output()
        .expect("running node (Node.js 20+ is needed for the CCF reference)");
    assert!(output.status.success(), "ccf_reference.js failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

type Key = (String, String, String, String, Option<String>);

fn keyed(jsonl: &str) -> BTreeMap<Key, Value> {
    let mut rows = BTreeMap::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let key = (s("period_start"), s("account_id"), s("region"), s("service"), v["tag"].as_str().map(str::to_string));
        assert!(rows.insert(key.clone(), v).is_none(), "duplicate row key {key:?}");
    }
    rows
}

fn close(expected: &Value, actual: &Value) -> bool {
    match (expected.as_f64(), actual.as_f64()) {
        (None, None) => expected.is_null() && actual.is_null(),
        (Some(e), Some(a)) => e == a || (e - a).abs() <= REL_TOLERANCE * e.abs().max(a.abs()),
        _ => false,
    }
}

/// Compares CCF's rows with Canopy's; returns the mismatches, described.
fn mismatches(expected: &str, actual: &str) -> (usize, Vec<String>) {
    let expected = keyed(expected);
    let actual = keyed(actual);
    let mut problems = Vec::new();
    for key in expected.keys().filter(|k| !actual.contains_key(*k)) {
        problems.push(format!("missing in canopy: {key:?}"));
    }
    for key in actual.keys().filter(|k| !expected.contains_key(*k)) {
        problems.push(format!("extra in canopy: {key:?}"));
    }
    for (key, e) in &expected {
        let Some(a) = actual.get(key) else { continue };
        for field in ["energy_kwh", "co2e_location_kg", "cost"] {
            if !close(&e[field], &a[field]) {
                problems.push(format!("{key:?} {field}: ccf {} canopy {}", e[field], a[field]));
            }
        }
    }
    (expected.len(), problems)
}

fn assert_same(expected: &str, actual: &str) {
    let (compared, problems) = mismatches(expected, actual);
    assert!(compared > 0, "CCF produced no rows: the comparison would prove nothing");
    assert!(
        problems.is_empty(),
        "{} of {compared} rows differ from CCF; first ones:\n{}",
        problems.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn generated_cur(dir: &TempDir, config: &GeneratorConfig, style: CsvStyle) -> std::path::PathBuf {
    let path = dir.join(&format!("cur-{}.csv", config.seed));
    let file = std::fs::File::create(&path).expect("create CUR file");
    write_csv(config, style, std::io::BufWriter::new(file)).expect("write CUR file");
    path
}

fn compare_on_generated(seed: u64, rows: u64, style: CsvStyle, flags: &[&str]) {
    let config = GeneratorConfig { seed, rows, accounts: 6, days: 35, ..GeneratorConfig::default() };
    compare_on(&config, style, flags);
}

/// Runs CCF and Canopy on the CUR `config` generates; returns CCF's output.
fn compare_on(config: &GeneratorConfig, style: CsvStyle, flags: &[&str]) -> String {
    let dir = TempDir::new("ccf");
    let cur = generated_cur(&dir, config, style);
    let expected = run_ccf(&cur, flags);
    let mut args = vec!["--methodology", "ccf"];
    args.extend_from_slice(flags);
    let path = cur.to_str().unwrap();
    args.push(path);
    let actual = canopy_estimate(&args).unwrap_ok();
    assert_same(&expected, &actual.stdout);
    expected
}

#[test]
fn ccf_mode_equals_ccf_package_by_day() {
    compare_on_generated(7, 30_000, CsvStyle::Athena, &[]);
}

#[test]
fn ccf_mode_equals_ccf_package_by_tag() {
    compare_on_generated(11, 20_000, CsvStyle::Athena, &["--tag", "Team"]);
}

#[test]
fn ccf_mode_equals_ccf_package_by_month_on_legacy_headers() {
    compare_on_generated(13, 20_000, CsvStyle::Legacy, &["--group-by", "month"]);
}

/// Issue 13 case 7: instance types named with a managed-service suffix
/// (OpenSearch `USE1-ESInstance:r5.large.elasticsearch`, reserved
/// `USE1-HeavyUsage:t3.medium.search`), with and without `product_vcpu`, and
/// the DAX, DMS and MemoryDB prefixes. CCF resolves them from its tables; a
/// file with many of these resources must agree row for row.
#[test]
fn ccf_mode_equals_ccf_package_on_managed_service_instance_names() {
    let config = GeneratorConfig { seed: 17, rows: 20_000, accounts: 3, days: 10, resources: 3_000, ..GeneratorConfig::default() };
    // What the file holds: suffixed OpenSearch rows of each kind, many without product_vcpu.
    let (mut suffixed, mut without_vcpu, mut burstable_without_vcpu) = (0, 0, 0);
    for row in canopy_cur::generate::Generator::new(&config) {
        if row.product_code == "AmazonES" && (row.instance_type.ends_with(".search") || row.instance_type.ends_with(".elasticsearch")) {
            suffixed += 1;
            if row.vcpu.is_none() {
                without_vcpu += 1;
                burstable_without_vcpu += usize::from(row.instance_type.starts_with('t'));
            }
        }
    }
    assert!(suffixed > 500 && without_vcpu > 200 && burstable_without_vcpu > 20, "{suffixed} {without_vcpu} {burstable_without_vcpu}");
    let expected = compare_on(&config, CsvStyle::Athena, &[]);
    // CCF estimates most (day, account, region, AmazonES) groups; those holding an
    // UltraWarm size, which no CCF table lists, have null CO2e in CCF and Canopy alike.
    let es: Vec<Value> = keyed(&expected).into_values().filter(|v| v["service"] == "AmazonES").collect();
    let estimated = es.iter().filter(|v| v["co2e_location_kg"].as_f64().is_some_and(|kg| kg > 0.0)).count();
    assert!(es.len() > 50 && estimated * 2 > es.len(), "{estimated} of {} AmazonES rows estimated", es.len());
}

#[test]
fn ccf_mode_equals_committed_ccf_output_for_hand_made_rows() {
    let dir = harness_dir().join("fixtures");
    let cur = dir.join("small.csv");
    let actual = canopy_estimate(&["--methodology", "ccf", cur.to_str().unwrap()]).unwrap_ok();
    assert_same(&std::fs::read_to_string(dir.join("small.expected.jsonl")).unwrap(), &actual.stdout);
    let tagged = canopy_estimate(&["--methodology", "ccf", "--tag", "team", cur.to_str().unwrap()]).unwrap_ok();
    assert_same(&std::fs::read_to_string(dir.join("small.team.expected.jsonl")).unwrap(), &tagged.stdout);
}

/// Issue 13 case 7 on hand-made rows, one per (account, service) so each value
/// is compared on its own: OpenSearch suffixed names (burstable, reserved, with
/// and without product_vcpu, UltraWarm), DAX, DMS, MemoryDB, RDS, ElastiCache,
/// Redshift, SageMaker and MSK without product_vcpu. CCF's output is committed
/// (`fixtures/managed_suffix.expected.jsonl`); Canopy must equal it to the last bit.
#[test]
fn ccf_mode_equals_committed_ccf_output_for_managed_service_instance_names() {
    let dir = harness_dir().join("fixtures");
    let cur = dir.join("managed_suffix.csv");
    let actual = canopy_estimate(&["--methodology", "ccf", cur.to_str().unwrap()]).unwrap_ok();
    let expected = std::fs::read_to_string(dir.join("managed_suffix.expected.jsonl")).unwrap();
    assert_same(&expected, &actual.stdout);
    let (expected, actual) = (keyed(&expected), keyed(&actual.stdout));
    assert_eq!(expected.len(), 14);
    for (key, e) in &expected {
        for field in ["energy_kwh", "co2e_location_kg"] {
            assert_eq!(e[field].as_f64(), actual[key][field].as_f64(), "{key:?} {field}");
        }
    }
}

#[test]
fn comparison_detects_a_changed_value_and_a_missing_row() {
    let a = r#"{"period_start":"2023-10-01","account_id":"1","region":"us-east-1","service":"AmazonEC2","energy_kwh":1.0,"co2e_location_kg":0.4,"cost":2.0}
{"period_start":"2023-10-01","account_id":"1","region":"us-east-1","service":"AmazonS3","energy_kwh":null,"co2e_location_kg":null,"cost":1.0}"#;
    let b = r#"{"period_start":"2023-10-01","account_id":"1","region":"us-east-1","service":"AmazonEC2","energy_kwh":1.00000001,"co2e_location_kg":0.4,"cost":2.0}"#;
    let (compared, problems) = mismatches(a, b);
    assert_eq!(compared, 2);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("missing in canopy"));
    assert!(problems[1].contains("energy_kwh"));
    assert!(mismatches(a, a).1.is_empty());
}
