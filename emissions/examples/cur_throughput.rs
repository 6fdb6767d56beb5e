//! Throughput of `CurEstimator::add` (the hot path), printed as figures; run with
//! `cargo run --release -p canopy-emissions --example cur_throughput`.

use std::time::Instant;

use canopy_emissions::cur::{CurEstimator, CurLine, EstimateOptions, Methodology};

fn main() {
    let usage_types: Vec<String> = (0..200).map(|i| format!("USE1-BoxUsage:m5.{}xlarge", i % 24)).collect();
    let accounts: Vec<String> = (0..20).map(|i| format!("{:012}", 100_000_000_000u64 + i)).collect();
    let regions = ["us-east-1", "eu-west-1", "ap-southeast-2"];
    let n = 3_000_000usize;
    for methodology in [Methodology::Ccf, Methodology::Canopy] {
        let mut e = CurEstimator::new(EstimateOptions { methodology, ..EstimateOptions::default() });
        let start = Instant::now();
        for i in 0..n {
            let line = CurLine {
                usage_start_unix_s: 1_696_118_400 + (i as i64 % (30 * 24)) * 3600,
                account_id: &accounts[i / 7 % accounts.len()],
                region: regions[i / 13 % regions.len()],
                product_code: "AmazonEC2",
                usage_type: &usage_types[i % usage_types.len()],
                pricing_unit: "Hrs",
                line_item_type: if i % 50 == 0 { "Tax" } else { "Usage" },
                instance_type: "",
                product_vcpu: Some(4.0),
                usage_amount: 1.0,
                blended_cost: 0.192,
                unblended_cost: 0.192,
                tag: if i % 3 == 0 { Some("team-a") } else { None },
                resource_id: "",
                net_amortized_cost: None,
            };
            e.add(&line);
        }
        let add_s = start.elapsed().as_secs_f64();
        let groups = e.group_count();
        let start = Instant::now();
        let out = e.finish();
        let finish_s = start.elapsed().as_secs_f64();
        println!(
            "{methodology}: {n} adds in {add_s:.3} s = {:.0} ns/add ({:.2} M rows/s); {groups} groups; finish {finish_s:.3} s; {} output rows",
            add_s * 1e9 / n as f64,
            n as f64 / add_s / 1e6,
            out.rows.len()
        );
        assert_eq!(out.summary.rows_read, n as u64);
    }
}
