//! Benchmark of `canopy estimate` end to end: prints rows/s and peak memory.
//!
//! Run with `cargo bench -p canopy --bench estimate` (optionally
//! `-- --rows 1000000 --big-rows 10000000`). It generates legacy CUR CSV and
//! Parquet files with `canopy generate-cur`, then runs the release `canopy`
//! binary on each (a fresh process per run, so peak RSS is that run's own) and
//! prints one line per case. It is a figure printer, not a pass/fail test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const CANOPY: &str = env!("CARGO_BIN_EXE_canopy");

struct Args {
    rows: u64,
    big_rows: u64,
    dir: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        rows: 1_000_000,
        big_rows: 10_000_000,
        dir: std::env::temp_dir().join("canopy-bench-estimate"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--rows" => args.rows = it.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--big-rows" => args.big_rows = it.next().and_then(|v| v.parse().ok()).expect("--big-rows N"),
            "--dir" => args.dir = PathBuf::from(it.next().expect("--dir PATH")),
            // cargo bench passes --bench; ignore anything else it adds.
            _ => {}
        }
    }
    args
}

fn generate(path: &Path, rows: u64, style: &str) {
    if path.exists() {
        return;
    }
    let started = Instant::now();
    let status = Command::new(CANOPY)
        .args(["generate-cur", "--rows", &rows.to_string(), "--style", style, "--out"])
        .arg(path)
        .status()
        .expect("running canopy generate-cur");
    assert!(status.success(), "generate-cur failed for {}", path.display());
    let mib = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / 1_048_576.0;
    println!("generated {} ({rows} rows, {mib:.0} MiB) in {:.1} s", path.display(), started.elapsed().as_secs_f64());
}

fn run_case(name: &str, file: &Path, methodology: &str, threads: usize) {
    let stats_path = file.with_extension(format!("{methodology}.{threads}.stats.json"));
    let started = Instant::now();
    let output = Command::new(CANOPY)
        .args(["estimate", "--methodology", methodology, "--format", "jsonl", "--threads", &threads.to_string()])
        .arg("--stats-json")
        .arg(&stats_path)
        .arg(file)
        .output()
        .expect("running canopy estimate");
    let wall_s = started.elapsed().as_secs_f64();
    assert!(output.status.success(), "estimate failed: {}", String::from_utf8_lossy(&output.stderr));
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).expect("stats file")).expect("stats json");
    let rows = stats["rows_read"].as_u64().unwrap_or(0);
    let peak_mib = stats["peak_rss_bytes"].as_u64().unwrap_or(0) as f64 / 1_048_576.0;
    println!(
        "{name:<28} {methodology:<7} threads={threads} rows={rows:>9} wall={wall_s:>6.2}s rows/s(wall)={:>10.0} rows/s(in-process)={:>10.0} peak_rss={peak_mib:>6.1} MiB",
        rows as f64 / wall_s,
        stats["rows_per_s"].as_f64().unwrap_or(0.0),
    );
}

fn main() {
    let args = parse_args();
    std::fs::create_dir_all(&args.dir).expect("bench dir");
    let csv = args.dir.join(format!("cur-{}.csv", args.rows));
    let parquet = args.dir.join(format!("cur-{}.parquet", args.rows));
    generate(&csv, args.rows, "legacy");
    generate(&parquet, args.rows, "parquet");
    for methodology in ["ccf", "canopy"] {
        run_case("legacy csv", &csv, methodology, 2);
        run_case("legacy csv", &csv, methodology, 1);
        run_case("parquet (CUR 2.0)", &parquet, methodology, 2);
    }
    if args.big_rows > 0 {
        let big = args.dir.join(format!("cur-{}.csv", args.big_rows));
        generate(&big, args.big_rows, "legacy");
        run_case("legacy csv (big)", &big, "canopy", 2);
    }
}
