//! Command-line definition and dispatch.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::estimate::{self, EstimateRequest};
use crate::output::OutputFormat;

/// Canopy: carbon footprint of AWS organisations.
#[derive(Debug, Parser)]
#[command(name = "canopy", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Estimate energy and CO2e from AWS Cost and Usage Report files.
    Estimate(EstimateArgs),
    /// Write a deterministic, realistic synthetic CUR file (for tests, benchmarks and demos).
    GenerateCur(GenerateCurArgs),
}

/// Arguments of `canopy estimate`.
#[derive(Debug, Args)]
pub struct EstimateArgs {
    /// Estimation methodology: `canopy` (default) or `ccf` (reproduces Cloud Carbon Footprint).
    #[arg(long, default_value = "canopy")]
    pub methodology: String,
    /// Output period: `day`, `hour` or `month`.
    #[arg(long = "group-by", default_value = "day")]
    pub group_by: String,
    /// Extra breakdown; only `usage-type` is supported.
    #[arg(long)]
    pub by: Option<String>,
    /// Group by the value of this user cost-allocation tag (e.g. `Team`).
    #[arg(long)]
    pub tag: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Jsonl)]
    pub format: OutputFormat,
    /// Count and report malformed rows instead of stopping at the first one.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Hourly grid-intensity CSV files in Electricity Maps' format (`canopy` methodology only).
    #[arg(long = "grid-csv")]
    pub grid_csv: Vec<PathBuf>,
    /// Market-based accounting for a region: `REGION=SHARE[,RESIDUAL]`, the contractual
    /// renewable share (0..1) and optionally the residual-mix factor in gCO2e/kWh
    /// (default: the location-based factor). Repeat per region (`canopy` methodology only).
    #[arg(long = "market")]
    pub market: Vec<String>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Groups held in memory before known ones are estimated (bounds memory; results do not change).
    #[arg(long, hide = true, default_value_t = canopy_emissions::cur::DEFAULT_MAX_GROUPS_IN_MEMORY)]
    pub max_groups: usize,
    /// Plain CSV files at least this large are split into chunks read in parallel.
    #[arg(long, hide = true, default_value_t = crate::estimate::PARALLEL_CSV_MIN_BYTES)]
    pub parallel_csv_min_bytes: u64,
    /// Write run statistics (rows, rows/s, peak memory) as JSON to this file.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
    /// CUR files or folders of them (CSV, CSV.gz, Parquet).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Arguments of `canopy generate-cur`.
#[derive(Debug, Args)]
pub struct GenerateCurArgs {
    /// Number of line items.
    #[arg(long, default_value_t = 10_000)]
    pub rows: u64,
    /// Seed of the deterministic generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// File layout: `legacy` (lineItem/UsageType headers), `athena` (snake_case), `cur2` (Data Exports CSV), `parquet` (Data Exports Parquet).
    #[arg(long, default_value = "legacy")]
    pub style: String,
    /// Number of usage accounts.
    #[arg(long, default_value_t = 20)]
    pub accounts: u32,
    /// Number of days covered (from 2023-10-01).
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Number of billed resources (default: about one line per resource and hour).
    #[arg(long, default_value_t = 0)]
    pub resources: u32,
    /// Gzip the CSV output.
    #[arg(long)]
    pub gzip: bool,
    /// Output file.
    #[arg(long, short)]
    pub out: PathBuf,
}

/// Installs the tracing subscriber on stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Estimate(args) => {
            let request = EstimateRequest::from_args(args)?;
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            estimate::run(&request, &mut stdout.lock(), &mut stderr.lock())
        }
        Command::GenerateCur(args) => crate::estimate::generate_cur(&args),
    }
}
