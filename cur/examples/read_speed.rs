//! Measures reader throughput alone (no estimation):
//! `cargo run --release -p canopy-cur --example read_speed -- [ROWS] [DIR]`.
//!
//! Generates ROWS rows (default 1,000,000) as legacy CSV, CUR 2.0 CSV and
//! CUR 2.0 Parquet in DIR (default the system temp folder), then reads each
//! back and prints rows/s and MB/s; the legacy CSV is also read in two
//! parallel chunks.

use std::path::{Path, PathBuf};
use std::time::Instant;

use canopy_cur::generate::{CsvStyle, GeneratorConfig, SampleFormat, write_format};
use canopy_cur::{ReadOptions, plan_csv_chunks, read_csv_chunk, read_file};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let config = GeneratorConfig {
        rows,
        accounts: 20,
        days: 30,
        ..GeneratorConfig::default()
    };
    let opts = ReadOptions {
        tag_key: Some("Team".to_owned()),
        skip_bad_rows: false,
    };
    for (name, format) in [
        (
            "canopy-speed-legacy.csv",
            SampleFormat::Csv(CsvStyle::Legacy),
        ),
        (
            "canopy-speed-legacy.csv.gz",
            SampleFormat::CsvGz(CsvStyle::Legacy),
        ),
        ("canopy-speed-cur2.csv", SampleFormat::Csv(CsvStyle::Cur2)),
        ("canopy-speed-cur2.parquet", SampleFormat::Cur2Parquet),
    ] {
        let path = dir.join(name);
        if !path.exists() {
            let started = Instant::now();
            write_format(
                &config,
                format,
                std::io::BufWriter::new(std::fs::File::create(&path)?),
            )?;
            println!(
                "generated {} in {:.2} s",
                path.display(),
                started.elapsed().as_secs_f64()
            );
        }
        measure(&format!("{name} sequential"), &path, || {
            let mut cost = 0.0;
            let stats = read_file(&path, &opts, &mut |line| cost += line.unblended_cost)?;
            Ok((stats.rows_read, cost))
        })?;
        if name.ends_with(".csv") {
            measure(&format!("{name} 2 chunks"), &path, || {
                let chunks = plan_csv_chunks(&path, 2)?;
                let results = std::thread::scope(|scope| {
                    let handles: Vec<_> = chunks
                        .iter()
                        .map(|chunk| {
                            scope.spawn(|| {
                                let mut cost = 0.0;
                                read_csv_chunk(chunk, &opts, &mut |line| {
                                    cost += line.unblended_cost
                                })
                                .map(|stats| (stats.rows_read, cost))
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("reader thread panicked"))
                        .collect::<Vec<_>>()
                });
                let mut total = (0, 0.0);
                for result in results {
                    let (rows, cost) = result?;
                    total.0 += rows;
                    total.1 += cost;
                }
                Ok(total)
            })?;
        }
    }
    Ok(())
}

fn measure(
    label: &str,
    path: &Path,
    run: impl Fn() -> Result<(u64, f64), canopy_cur::CurError>,
) -> Result<(), canopy_cur::CurError> {
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let started = Instant::now();
    let (rows, cost) = run()?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{label}: {rows} rows in {seconds:.3} s = {:.2} M rows/s, {:.0} MB/s (file {:.1} MB, cost sum {cost:.2})",
        rows as f64 / seconds / 1e6,
        bytes as f64 / seconds / 1e6,
        bytes as f64 / 1e6
    );
    Ok(())
}
