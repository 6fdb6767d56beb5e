//! `canopy estimate` end to end: formats, threads, bad input, grid options.

use canopy_emissions::model;
use serde_json::Value;

use crate::support::{TempDir, canopy_estimate, repo_root};

const HEADER: &str = "line_item_usage_start_date,line_item_usage_account_id,product_region,line_item_product_code,line_item_usage_type,pricing_unit,product_vcpu,line_item_usage_amount,line_item_blended_cost,line_item_unblended_cost,line_item_line_item_type,resource_tags_user_team";

/// Writes an Athena-style CUR file with the given data rows.
fn athena_csv(dir: &TempDir, name: &str, rows: &[&str]) -> String {
    let path = dir.join(name);
    let mut text = String::from(HEADER);
    for row in rows {
        text.push('\n');
        text.push_str(row);
    }
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn f(v: &Value, field: &str) -> f64 {
    v[field].as_f64().unwrap_or_else(|| panic!("{field} is not a number in {v}"))
}

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol * a.abs().max(b.abs())
}

#[test]
fn every_sample_format_gives_identical_output() {
    let samples = repo_root().join("samples/cur");
    let files = ["sample-legacy.csv", "sample-legacy.csv.gz", "sample-athena.csv", "sample-cur2.csv", "sample-cur2.parquet"];
    for flags in [
        vec!["--methodology", "ccf"],
        vec!["--methodology", "canopy", "--tag", "Team", "--by", "usage-type"],
        vec!["--methodology", "canopy", "--group-by", "hour", "--format", "csv"],
    ] {
        let outputs: Vec<String> = files
            .iter()
            .map(|name| {
                let path = samples.join(name);
                let mut args = flags.clone();
                args.push(path.to_str().unwrap());
                canopy_estimate(&args).unwrap_ok().stdout
            })
            .collect();
        assert!(outputs[0].lines().count() > 100, "sample output too small: {}", outputs[0].lines().count());
        for (name, out) in files.iter().zip(&outputs).skip(1) {
            assert!(out == &outputs[0], "{name} differs from {} with {flags:?}", files[0]);
        }
    }
}

#[test]
fn two_threads_on_csv_chunks_equal_one_thread() {
    let legacy = repo_root().join("samples/cur/sample-legacy.csv");
    let path = legacy.to_str().unwrap();
    let one = canopy_estimate(&["--threads", "1", path]).unwrap_ok().json_rows();
    // A 1-byte threshold forces the chunked parallel path on the small sample.
    let two = canopy_estimate(&["--threads", "2", "--parallel-csv-min-bytes", "1", path]).unwrap_ok().json_rows();
    assert_eq!(one.len(), two.len());
    for (a, b) in one.iter().zip(&two) {
        for key in ["period_start", "account_id", "region", "service", "quality"] {
            assert_eq!(a[key], b[key]);
        }
        for key in ["energy_kwh", "co2e_location_kg", "co2e_market_kg", "co2e_low_kg", "co2e_high_kg", "cost"] {
            assert!(rel_close(f(a, key), f(b, key), 1e-12), "{key}: {a} vs {b}");
        }
    }
}

#[test]
fn malformed_row_names_file_line_and_column() {
    let dir = TempDir::new("bad");
    let path = athena_csv(
        &dir,
        "bad.csv",
        &[
            "2023-10-01 00:00:00.000,111111111111,us-east-1,AmazonEC2,USE1-BoxUsage:m5.large,Hrs,2,1,0.096,0.096,Usage,web",
            "2023-10-01 01:00:00.000,111111111111,us-east-1,AmazonEC2,USE1-BoxUsage:m5.large,Hrs,2,abc,0.096,0.096,Usage,web",
        ],
    );
    let run = canopy_estimate(&[&path]);
    let error = run.error.expect("a malformed usage amount must stop the run");
    assert!(error.contains("bad.csv"), "{error}");
    assert!(error.contains("line 3"), "{error}");
    assert!(error.contains("line_item_usage_amount"), "{error}");
    assert!(error.contains("abc"), "{error}");
    assert!(run.stdout.is_empty(), "no partial output on error");

    let skipped = canopy_estimate(&["--skip-bad-rows", &path]).unwrap_ok();
    let rows = skipped.json_rows();
    assert_eq!(rows.len(), 1);
    assert!(skipped.stderr.contains("bad rows skipped (--skip-bad-rows): 1"), "{}", skipped.stderr);
    // The good row is still estimated: m5.large 1 h at the documented default utilisation.
    assert!(f(&rows[0], "energy_kwh") > 0.0);
}

#[test]
fn missing_required_column_is_named() {
    let dir = TempDir::new("missing");
    let path = dir.join("no-usage-type.csv");
    std::fs::write(
        &path,
        "line_item_usage_start_date,line_item_usage_account_id,product_region,line_item_product_code,pricing_unit,line_item_usage_amount,line_item_blended_cost,line_item_line_item_type\n\
         2023-10-01 00:00:00.000,111111111111,us-east-1,AmazonEC2,Hrs,1,0.1,Usage\n",
    )
    .unwrap();
    let error = canopy_estimate(&[path.to_str().unwrap()]).error.expect("missing column is an error");
    assert!(error.contains("line_item_usage_type"), "{error}");
    assert!(error.contains("no-usage-type.csv"), "{error}");
}

#[test]
fn bad_flags_are_named() {
    let sample = repo_root().join("samples/cur/sample-athena.csv");
    let path = sample.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--methodology", "cff"], "--methodology"),
        (&["--group-by", "week"], "--group-by"),
        (&["--by", "service"], "--by"),
        (&["--market", "eu-west-1=1.5"], "--market"),
        (&["--methodology", "ccf", "--market", "eu-west-1=0.5"], "--market"),
    ];
    for (flags, named) in cases {
        let mut args = flags.to_vec();
        args.push(path);
        let error = canopy_estimate(&args).error.unwrap_or_else(|| panic!("{flags:?} must be rejected"));
        assert!(error.contains(named), "{flags:?}: {error}");
    }
}

/// Two m5.large hours in us-west-1 (CAISO): with `--grid-csv`, each hour's
/// operational CO2e uses that hour's direct intensity from the file
/// (250.0 g/kWh at 04:00 and 235.96 g/kWh at 13:00 on 2023-07-15).
#[test]
fn hourly_grid_intensity_is_used_per_hour() {
    let dir = TempDir::new("grid");
    let path = athena_csv(
        &dir,
        "west.csv",
        &[
            "2023-07-15 04:00:00.000,111111111111,us-west-1,AmazonEC2,USW1-BoxUsage:m5.large,Hrs,2,1,0.112,0.112,Usage,web",
            "2023-07-15 13:00:00.000,111111111111,us-west-1,AmazonEC2,USW1-BoxUsage:m5.large,Hrs,2,1,0.112,0.112,Usage,web",
        ],
    );
    let grid = repo_root().join("emissions/tests/fixtures/grid-hourly/US-CAL-CISO_2023_hourly.csv");
    let hourly = canopy_estimate(&["--group-by", "hour", "--grid-csv", grid.to_str().unwrap(), &path]).unwrap_ok().json_rows();
    let flat = canopy_estimate(&["--group-by", "hour", &path]).unwrap_ok().json_rows();
    assert_eq!(hourly.len(), 2);
    let (embodied_g, _) = model::embodied_g_co2e_per_instance_hour("m5.large").expect("m5.large has embodied data");
    let embodied_kg = embodied_g / 1000.0;
    for (row, intensity) in hourly.iter().zip([250.0, 235.96]) {
        let energy = f(row, "energy_kwh");
        // m5.large at 50 %: 14.12 W × 1 h × PUE 2023 (1.15) / 1000 = 0.016238 kWh.
        assert!(rel_close(energy, 0.01412 * 1.15, 1e-9), "energy {energy}");
        let expected = energy * intensity / 1000.0 + embodied_kg;
        assert!(rel_close(f(row, "co2e_location_kg"), expected, 1e-9), "{row}: expected {expected}");
    }
    // Without a grid file the static us-west-1 factor (322.167 g/kWh, eGRID WECC via CCF) applies.
    for row in &flat {
        let expected = f(row, "energy_kwh") * 322.167 / 1000.0 + embodied_kg;
        assert!(rel_close(f(row, "co2e_location_kg"), expected, 1e-9), "{row}");
    }
}

/// `--market REGION=SHARE[,RESIDUAL]`: market-based = (1 − share) × residual (default: location factor).
#[test]
fn market_based_accounting_uses_configured_share_and_residual() {
    let dir = TempDir::new("market");
    let path = athena_csv(
        &dir,
        "east.csv",
        &[
            "2023-10-01 00:00:00.000,111111111111,us-east-1,AmazonEC2,USE1-BoxUsage:m5.large,Hrs,2,10,0.96,0.96,Usage,web",
            "2023-10-01 00:00:00.000,111111111111,eu-west-1,AmazonEC2,EU-BoxUsage:m5.large,Hrs,2,10,1.07,1.07,Usage,web",
        ],
    );
    let rows = canopy_estimate(&["--market", "us-east-1=0.75", "--market", "eu-west-1=0.5,200", &path]).unwrap_ok().json_rows();
    let (embodied_g, _) = model::embodied_g_co2e_per_instance_hour("m5.large").unwrap();
    let embodied_kg = 10.0 * embodied_g / 1000.0;
    let by_region = |region: &str| rows.iter().find(|r| r["region"] == region).unwrap().clone();
    let east = by_region("us-east-1");
    let east_operational = f(&east, "co2e_location_kg") - embodied_kg;
    assert!(rel_close(f(&east, "co2e_market_kg") - embodied_kg, 0.25 * east_operational, 1e-9), "{east}");
    let west = by_region("eu-west-1");
    let expected = 0.5 * f(&west, "energy_kwh") * 200.0 / 1000.0 + embodied_kg;
    assert!(rel_close(f(&west, "co2e_market_kg"), expected, 1e-9), "{west}");
    assert!(f(&west, "co2e_location_kg") > f(&west, "co2e_market_kg"));
}
