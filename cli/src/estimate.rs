//! `canopy estimate`: CUR files in, energy and CO2e per period/account/region/service out.
//!
//! Input is read streaming by `canopy-cur`; every line item goes straight into a
//! [`CurEstimator`], which keeps one accumulator per distinct group, so memory
//! depends on the number of groups and never on the size of the files. Work is
//! spread over threads: each file is one work item, and a large plain CSV file
//! is cut into byte-range chunks so both cores parse it. Every thread owns an
//! estimator; they are merged in a fixed order at the end.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use canopy_cur::{CsvChunk, FileStats, ReadOptions};
use canopy_emissions::cur::{
    CurEstimate, CurEstimator, EstimateOptions, EstimateSummary, Methodology, Period,
};
use canopy_emissions::grid::{HourlyIntensityTable, MarketConfig, MarketRegion};
use serde::Serialize;

use crate::cli::{EstimateArgs, GenerateCurArgs};
use crate::output::{self, OutputFormat, OutputShape};
use crate::process_stats;

/// Plain CSV files larger than this are split into chunks read in parallel.
pub const PARALLEL_CSV_MIN_BYTES: u64 = 32 * 1024 * 1024;

/// A validated `canopy estimate` invocation.
#[derive(Debug)]
pub struct EstimateRequest {
    pub methodology: Methodology,
    pub period: Period,
    pub by_usage_type: bool,
    pub tag_key: Option<String>,
    pub format: OutputFormat,
    pub skip_bad_rows: bool,
    pub grid_csv: Vec<PathBuf>,
    pub market: MarketConfig,
    pub threads: usize,
    pub parallel_csv_min_bytes: u64,
    pub max_groups: usize,
    pub stats_json: Option<PathBuf>,
    pub files: Vec<PathBuf>,
}

impl EstimateRequest {
    /// Checks the flags and turns them into a request; errors name the flag.
    pub fn from_args(args: EstimateArgs) -> Result<Self> {
        let methodology: Methodology = args
            .methodology
            .parse()
            .map_err(|e| anyhow::anyhow!("--methodology: {e}"))?;
        let period: Period = args.group_by.parse().map_err(|e| anyhow::anyhow!("--group-by: {e}"))?;
        let by_usage_type = match args.by.as_deref() {
            None => false,
            Some("usage-type") => true,
            Some(other) => bail!("--by: expected \"usage-type\", found {other:?}"),
        };
        if args.tag.as_deref().is_some_and(|tag| tag.trim().is_empty()) {
            bail!("--tag: expected a tag key such as \"Team\", found an empty string");
        }
        if !args.grid_csv.is_empty() && methodology == Methodology::Ccf {
            bail!("--grid-csv: hourly grid intensity is only used by --methodology canopy, not ccf");
        }
        if !args.market.is_empty() && methodology == Methodology::Ccf {
            bail!("--market: market-based accounting is only used by --methodology canopy, not ccf");
        }
        let mut market = MarketConfig::new();
        for spec in &args.market {
            let (region, share) = parse_market_spec(spec)?;
            market.set_region(region, share).map_err(|e| anyhow::anyhow!("--market {spec:?}: {e}"))?;
        }
        let threads = match args.threads {
            Some(0) => bail!("--threads: expected at least 1, found 0"),
            Some(n) => n,
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        };
        Ok(Self {
            methodology,
            period,
            by_usage_type,
            tag_key: args.tag,
            format: args.format,
            skip_bad_rows: args.skip_bad_rows,
            grid_csv: args.grid_csv,
            market,
            threads,
            parallel_csv_min_bytes: args.parallel_csv_min_bytes,
            max_groups: args.max_groups,
            stats_json: args.stats_json,
            files: args.files,
        })
    }
}

/// Parses `REGION=SHARE[,RESIDUAL_G_PER_KWH]`.
fn parse_market_spec(spec: &str) -> Result<(&str, MarketRegion)> {
    let expected = "expected REGION=SHARE[,RESIDUAL_G_PER_KWH], e.g. eu-west-1=0.8,350";
    let (region, rest) = spec.split_once('=').ok_or_else(|| anyhow::anyhow!("--market: {expected}, found {spec:?}"))?;
    let (share, residual) = match rest.split_once(',') {
        Some((share, residual)) => (share, Some(residual)),
        None => (rest, None),
    };
    let renewable_share: f64 = share
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--market {spec:?}: renewable share: expected a number in 0..=1, found {share:?}"))?;
    let residual_mix_g_co2e_per_kwh = match residual {
        Some(r) => Some(r.trim().parse::<f64>().map_err(|_| {
            anyhow::anyhow!("--market {spec:?}: residual mix: expected gCO2e/kWh as a number, found {r:?}")
        })?),
        None => None,
    };
    Ok((region.trim(), MarketRegion { renewable_share, residual_mix_g_co2e_per_kwh }))
}

/// One unit of reading work.
enum WorkItem {
    File(PathBuf),
    Chunk(CsvChunk),
}

impl WorkItem {
    fn read(&self, opts: &ReadOptions, estimator: &mut CurEstimator) -> Result<FileStats> {
        let mut sink = |line: &canopy_emissions::cur::CurLine<'_>| estimator.add(line);
        let stats = match self {
            WorkItem::File(path) => canopy_cur::read_file(path, opts, &mut sink)?,
            WorkItem::Chunk(chunk) => canopy_cur::read_csv_chunk(chunk, opts, &mut sink)?,
        };
        Ok(stats)
    }
}

/// Run statistics, written with `--stats-json` and used by the benchmark.
#[derive(Debug, Serialize)]
pub struct RunStats {
    pub files: usize,
    pub rows_read: u64,
    pub bad_rows_skipped: u64,
    pub output_rows: usize,
    /// Distinct (period, account, region, product, usage type, pricing unit, vCPU, tag) groups held in memory at the end.
    pub groups: usize,
    pub seconds: f64,
    pub rows_per_s: f64,
    pub peak_rss_bytes: Option<u64>,
    pub threads: usize,
}

/// Runs the estimate, writing results to `out` and the summary to `err`.
pub fn run(request: &EstimateRequest, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let started = Instant::now();
    let files = canopy_cur::expand_inputs(&request.files)?;
    if files.is_empty() {
        bail!("no CUR files found in {:?} (expected .csv, .csv.gz or .parquet files)", request.files);
    }
    let options = estimate_options(request)?;
    let read_options = ReadOptions { tag_key: request.tag_key.clone(), skip_bad_rows: request.skip_bad_rows };
    let work = plan_work(&files, request.threads, request.parallel_csv_min_bytes)?;
    let (estimate, stats, groups) = read_all(&work, &read_options, &options, request.threads)?;
    let seconds = started.elapsed().as_secs_f64();

    let shape = OutputShape {
        period: request.period,
        by_usage_type: request.by_usage_type,
        with_tag: request.tag_key.is_some(),
    };
    output::write_rows(out, request.format, shape, &estimate.rows)?;
    out.flush()?;

    let rows_read: u64 = stats.iter().map(|s| s.rows_read).sum();
    let bad_rows_skipped: u64 = stats.iter().map(|s| s.bad_rows_skipped).sum();
    let run_stats = RunStats {
        files: files.len(),
        rows_read,
        bad_rows_skipped,
        output_rows: estimate.rows.len(),
        groups,
        seconds,
        rows_per_s: rows_read as f64 / seconds.max(1e-9),
        peak_rss_bytes: process_stats::peak_rss_bytes(),
        threads: request.threads,
    };
    write_summary(err, &run_stats, &estimate.summary, &stats)?;
    if let Some(path) = &request.stats_json {
        let text = serde_json::to_string_pretty(&run_stats)?;
        std::fs::write(path, text).with_context(|| format!("writing --stats-json {}", path.display()))?;
    }
    Ok(())
}

fn estimate_options(request: &EstimateRequest) -> Result<EstimateOptions> {
    let mut options = EstimateOptions {
        methodology: request.methodology,
        period: request.period,
        by_usage_type: request.by_usage_type,
        // The bound is for the whole run: each reader thread holds its share.
        max_groups_in_memory: (request.max_groups / request.threads.max(1)).max(1),
        ..EstimateOptions::default()
    };
    options.canopy.market = request.market.clone();
    if !request.grid_csv.is_empty() {
        let mut table: Option<HourlyIntensityTable> = None;
        for path in &request.grid_csv {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--grid-csv: reading {}", path.display()))?;
            let part = HourlyIntensityTable::from_electricity_maps_csv(&text)
                .with_context(|| format!("--grid-csv: {}", path.display()))?;
            match &mut table {
                Some(t) => t.merge(part),
                None => table = Some(part),
            }
        }
        if let Some(table) = table {
            options.canopy.intensity = Some(Arc::new(table));
        }
    }
    Ok(options)
}

/// Splits large plain CSV files into chunks; every other file is one item.
fn plan_work(files: &[PathBuf], threads: usize, parallel_csv_min_bytes: u64) -> Result<Vec<WorkItem>> {
    let mut work = Vec::new();
    for path in files {
        let is_plain_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
        if threads > 1 && is_plain_csv && len >= parallel_csv_min_bytes {
            for chunk in canopy_cur::plan_csv_chunks(path, threads)? {
                work.push(WorkItem::Chunk(chunk));
            }
        } else {
            work.push(WorkItem::File(path.clone()));
        }
    }
    Ok(work)
}

/// What one reader thread returns: its estimator and each work item's outcome by index.
type ThreadOutcome = (CurEstimator, Vec<(usize, Result<FileStats>)>);

/// Reads every work item on `threads` threads; returns the merged estimate.
fn read_all(
    work: &[WorkItem],
    read_options: &ReadOptions,
    options: &EstimateOptions,
    threads: usize,
) -> Result<(CurEstimate, Vec<FileStats>, usize)> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let threads = threads.min(work.len()).max(1);
    let outcomes: Vec<ThreadOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut estimator = CurEstimator::new(options.clone());
                    let mut results = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= work.len() || failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let result = work[index].read(read_options, &mut estimator);
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        results.push((index, result));
                    }
                    (estimator, results)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("reader thread panicked")).collect()
    });

    let mut all_results: Vec<(usize, Result<FileStats>)> = Vec::new();
    let mut merged: Option<CurEstimator> = None;
    for (estimator, results) in outcomes {
        all_results.extend(results);
        match &mut merged {
            Some(m) => m.merge(estimator),
            None => merged = Some(estimator),
        }
    }
    all_results.sort_by_key(|(index, _)| *index);
    let mut stats = Vec::with_capacity(all_results.len());
    for (_, result) in all_results {
        stats.push(result?);
    }
    let estimator = merged.expect("at least one reader thread");
    let groups = estimator.group_count();
    Ok((estimator.finish(), stats, groups))
}

fn write_summary(
    err: &mut dyn Write,
    run: &RunStats,
    summary: &EstimateSummary,
    stats: &[FileStats],
) -> Result<()> {
    writeln!(
        err,
        "canopy estimate: {} file(s), {} rows read in {:.2} s ({:.0} rows/s), {} groups, {} output rows",
        run.files, summary.rows_read, run.seconds, run.rows_per_s, run.groups, run.output_rows
    )?;
    let skipped: u64 = summary.rows_skipped_by_line_item_type.values().sum();
    write!(err, "  rows skipped by line-item type: {skipped}")?;
    for (kind, count) in &summary.rows_skipped_by_line_item_type {
        write!(err, " [{kind}: {count}]")?;
    }
    writeln!(err)?;
    let not_estimated: u64 = summary.not_estimated.values().map(|t| t.rows).sum();
    writeln!(err, "  rows not estimated: {not_estimated}")?;
    for (reason, totals) in &summary.not_estimated {
        writeln!(err, "    {reason}: {} rows, cost {:.6}", totals.rows, totals.cost)?;
    }
    if run.bad_rows_skipped > 0 {
        writeln!(err, "  bad rows skipped (--skip-bad-rows): {}", run.bad_rows_skipped)?;
        for example in stats.iter().flat_map(|s| s.bad_row_examples.iter()).take(10) {
            writeln!(err, "    {example}")?;
        }
    }
    if let Some(bytes) = run.peak_rss_bytes {
        writeln!(err, "  peak memory: {:.1} MiB", bytes as f64 / (1024.0 * 1024.0))?;
    }
    Ok(())
}

/// `canopy generate-cur`: writes a synthetic CUR file.
pub fn generate_cur(args: &GenerateCurArgs) -> Result<()> {
    use canopy_cur::generate::{self, CsvStyle, GeneratorConfig};
    if args.accounts == 0 {
        bail!("--accounts: expected at least 1, found 0");
    }
    if args.days == 0 {
        bail!("--days: expected at least 1, found 0");
    }
    let config = GeneratorConfig {
        seed: args.seed,
        rows: args.rows,
        accounts: args.accounts,
        days: args.days,
        resources: args.resources,
        ..GeneratorConfig::default()
    };
    let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let style = match args.style.as_str() {
        "legacy" => CsvStyle::Legacy,
        "athena" => CsvStyle::Athena,
        "cur2" => CsvStyle::Cur2,
        "parquet" => {
            if args.gzip {
                bail!("--gzip: only applies to CSV styles, not parquet");
            }
            generate::write_cur2_parquet(&config, out).with_context(|| format!("writing {}", args.out.display()))?;
            return Ok(());
        }
        other => bail!("--style: expected legacy, athena, cur2 or parquet, found {other:?}"),
    };
    if args.gzip {
        generate::write_csv_gz(&config, style, out)
    } else {
        generate::write_csv(&config, style, out)
    }
    .with_context(|| format!("writing {}", args.out.display()))?;
    Ok(())
}
