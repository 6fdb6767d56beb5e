//! Command-line definition and dispatch.

use std::path::PathBuf;

use anyhow::{Context, Result};
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
    /// FOR DEMOS AND TESTS ONLY: run a simulated organisation's agents in this process against an aggregator.
    Simulate(SimulateArgs),
    /// The whole system on this machine: PostgreSQL (private unless DATABASE_URL is set), aggregator,
    /// simulated organisation and the dashboard URL. For demos and tests only.
    Demo(DemoArgs),
}

/// The simulated organisation, shared by `simulate` and `demo`.
#[derive(Debug, Args)]
pub struct OrganisationArgs {
    /// Member accounts (each runs an agent in one or two regions).
    #[arg(long, default_value_t = 12)]
    pub accounts: u32,
    /// Resources per account.
    #[arg(long, default_value_t = 40)]
    pub resources_per_account: u32,
    /// Seed: the same seed gives the same organisation, resources and utilisation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Organisational units the accounts are spread over (1 to 5).
    #[arg(long, default_value_t = 4)]
    pub ous: usize,
    /// Regions (comma-separated); every account runs in the first, every third also in another.
    #[arg(long, value_delimiter = ',', default_value = "eu-west-1,us-east-1,eu-central-1")]
    pub regions: Vec<String>,
    /// Days of past data sent first, as fast as the aggregator acknowledges.
    #[arg(long, default_value_t = 14)]
    pub backfill_days: u32,
    /// Live phase: simulated seconds per real second (above 1, the last 6 hours are replayed that fast;
    /// records never run ahead of the wall clock).
    #[arg(long, default_value_t = 1.0)]
    pub speedup: f64,
    /// Stop after this many live 5-minute cycles per agent (default: run until Ctrl-C).
    #[arg(long)]
    pub live_cycles: Option<u64>,
    /// Folder of the agents' durable outboxes (default: a new temporary folder).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// No progress bar on stderr.
    #[arg(long)]
    pub no_progress: bool,
}

/// Arguments of `canopy simulate`.
///
/// TEST AND DEMO ONLY: every simulated agent gets its client certificate
/// straight from the CA private key (no STS enrolment). Never give a real
/// aggregator's CA key to this command.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub org: OrganisationArgs,
    /// Aggregator QUIC address.
    #[arg(long, default_value = "127.0.0.1:4433")]
    pub aggregator: std::net::SocketAddr,
    /// Name in the aggregator's server certificate.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// The aggregator's CA certificate (PEM).
    #[arg(long)]
    pub ca_cert: PathBuf,
    /// TEST ONLY: the aggregator CA's private key (PEM); agents' certificates are issued from it.
    #[arg(long)]
    pub ca_key: PathBuf,
    /// Also write the organisation's accounts and OUs into this database's directory
    /// (what the aggregator's AWS Organizations refresh does for a real organisation).
    #[arg(long, env = "CANOPY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Plant anomalies in the backfilled history, to measure anomaly detection: a team's GPU fleet left
    /// running, a runaway Lambda function and a region doubling (deterministic from --seed; the ground
    /// truth is logged at start and printed in the final report). Off by default.
    #[arg(long)]
    pub plant_anomalies: bool,
}

/// Arguments of `canopy demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub org: OrganisationArgs,
    /// Database to use; when unset (and DATABASE_URL is unset) a private PostgreSQL is started
    /// in a temporary folder and stopped on exit.
    #[arg(long, env = "CANOPY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// HTTP address of the dashboard and API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_listen: std::net::SocketAddr,
    /// UDP address of QUIC ingest.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub quic_listen: std::net::SocketAddr,
    /// Write the dashboard URL to this file once the backfill is acknowledged.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
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
        Command::Simulate(args) => runtime()?.block_on(simulate(args)),
        Command::Demo(args) => runtime()?.block_on(demo(args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn simulate_options(org: OrganisationArgs) -> Result<crate::simulate::SimulateOptions> {
    anyhow::ensure!(org.accounts >= 1, "--accounts: expected at least 1, found 0");
    anyhow::ensure!(org.speedup > 0.0, "--speedup: expected a positive number, found {}", org.speedup);
    anyhow::ensure!(!org.regions.is_empty(), "--regions: expected at least one region, found none");
    let state_dir = match org.state_dir {
        Some(d) => d,
        None => tempfile::Builder::new().prefix("canopy-simulate-").tempdir()?.keep(),
    };
    Ok(crate::simulate::SimulateOptions {
        accounts: org.accounts,
        resources_per_account: org.resources_per_account,
        seed: org.seed,
        ous: org.ous,
        regions: org.regions,
        speedup: org.speedup,
        backfill_days: org.backfill_days,
        live_cycles: org.live_cycles,
        aggregator: "127.0.0.1:4433".parse()?,
        server_name: "localhost".into(),
        ca_cert_pem: String::new(),
        ca_key_pem: String::new(),
        state_dir,
        progress_bar: !org.no_progress,
        backfilled: None,
        plant_anomalies: false,
    })
}

async fn simulate(args: SimulateArgs) -> Result<()> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let mut opts = simulate_options(args.org)?;
    opts.aggregator = args.aggregator;
    opts.server_name = args.server_name;
    opts.ca_cert_pem = read(&args.ca_cert)?;
    opts.ca_key_pem = read(&args.ca_key)?;
    opts.plant_anomalies = args.plant_anomalies;
    if let Some(url) = &args.database_url {
        let pool = canopy_aggregator::db::connect(url, 2).await.context("connecting to the directory database")?;
        let org = canopy_agent::simulated::organisation(opts.seed, opts.accounts, opts.ous, &opts.regions);
        let n = crate::simulate::write_directory(&pool, &org).await?;
        eprintln!("directory: {n} accounts of {} written", org.organisation_id);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    let report = crate::simulate::run(&opts, stop_rx).await?;
    println!("{}", serde_json::json!({
        "agents": report.agents,
        "backfill_cycles": report.backfill_cycles,
        "live_cycles": report.live_cycles,
        "records": report.records,
        "batches_acked": report.batches_acked,
        "backfill_s": report.backfill_s,
        "planted": report.planted.iter().map(|p| serde_json::json!({
            "kind": p.kind.name(),
            "account_id": p.account_id,
            "region": p.region,
            "team": p.team,
            "function_arn": p.arn,
            "start": canopy_emissions::time::format_rfc3339(p.start_unix_s),
            "end": canopy_emissions::time::format_rfc3339(p.end_unix_s),
            "factor": p.factor,
            "expected_excess": p.expected_excess,
            "excess_unit": p.excess_unit,
        })).collect::<Vec<_>>(),
    }));
    Ok(())
}

async fn demo(args: DemoArgs) -> Result<()> {
    let database_url = args.database_url.or_else(|| std::env::var("DATABASE_URL").ok()).filter(|u| !u.is_empty());
    let opts = crate::demo::DemoOptions {
        database_url,
        http_listen: args.http_listen,
        quic_listen: args.quic_listen,
        simulate: simulate_options(args.org)?,
        ready_file: args.ready_file,
    };
    crate::demo::run(opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomalies_are_planted_only_on_request_and_never_by_demo() {
        let parse = |extra: &[&str]| {
            let args = ["canopy", "simulate", "--ca-cert", "ca.pem", "--ca-key", "ca.key", "--state-dir", "unused"];
            match Cli::try_parse_from(args.iter().chain(extra)).unwrap().command {
                Command::Simulate(s) => s,
                _ => unreachable!(),
            }
        };
        assert!(!parse(&[]).plant_anomalies);
        assert!(parse(&["--plant-anomalies"]).plant_anomalies);
        // `canopy demo` takes its options from the organisation's arguments alone.
        let demo = Cli::try_parse_from(["canopy", "demo", "--state-dir", "unused"]).unwrap();
        let Command::Demo(d) = demo.command else { unreachable!() };
        assert!(!simulate_options(d.org).unwrap().plant_anomalies);
        assert!(Cli::try_parse_from(["canopy", "demo", "--plant-anomalies"]).is_err());
    }
}
