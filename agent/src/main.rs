//! `canopy-agent`: thin binary over the `canopy_agent` library.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use canopy_agent::config::AgentConfig;
use canopy_agent::deliver::Delivery;
use canopy_agent::sink::{JsonlSpool, Sinks};
use canopy_agent::env::{Env, ProcessEnv};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "canopy-agent", version, about = "Canopy per-account carbon agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run cycles until SIGTERM or Ctrl-C: records go to the durable outbox
    /// and the aggregator (`[delivery]`), and/or to the JSON-lines spool.
    Run {
        /// Path of agent.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run one full cycle and write it as JSON lines (inventory, then emissions).
    Collect {
        /// Run exactly one cycle (required; continuous collection is `run`).
        #[arg(long)]
        once: bool,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Path of agent.toml; without it, settings come from the environment.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration and print the effective settings.
    Validate {
        /// Path of agent.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print every IAM action the agent may call, as a sorted JSON array.
    IamActions,
}

fn load_config(path: Option<&Path>) -> anyhow::Result<AgentConfig> {
    let env = ProcessEnv;
    Ok(match path {
        Some(p) => AgentConfig::load(p, &env)?,
        None => {
            let region =
                env.var("AWS_REGION").or_else(|| env.var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
            let text = format!("config_version = 1\nagent_id = \"canopy-agent\"\nregion = \"{region}\"\n");
            AgentConfig::from_toml(&text, "<environment>", &env)?
        }
    })
}

fn init_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CANOPY_AGENT_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
}

async fn main_async(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::IamActions => {
            let actions: Vec<&str> = canopy_agent::collectors::declared_iam_actions().into_iter().collect();
            println!("{}", serde_json::to_string(&actions)?);
        }
        Command::Validate { config } => {
            let c = load_config(Some(&config))?;
            let cost = canopy_agent::cost::CostModel::from_config(&c);
            println!(
                "config ok: agent {} in {}; cycle {} s, utilisation every {} s, full inventory every {} h; \
                 API cost at most {:.5} USD per resource per month (budget {})",
                c.agent_id,
                c.region,
                c.intervals.cycle_s,
                c.intervals.utilisation_s,
                c.intervals.full_inventory_h,
                cost.max_usd_per_resource_month(),
                c.budget.max_cost_usd_per_resource_month
            );
            match (&c.delivery.aggregator_endpoint, &c.delivery.ca_file) {
                (Some(endpoint), Some(ca)) => println!(
                    "delivery: outbox {} (cap {} bytes) -> aggregator {endpoint} (server name {}, CA {}); \
                     identity proof for server id {} via {}",
                    c.delivery.outbox_path.display(),
                    c.delivery.max_outbox_bytes,
                    c.delivery.effective_server_name().unwrap_or_default(),
                    ca.display(),
                    c.delivery.server_id,
                    c.delivery.sts_url
                ),
                _ => println!("delivery: off (no delivery.aggregator_endpoint)"),
            }
        }
        Command::Collect { once, out, config } => {
            anyhow::ensure!(once, "collect needs --once (use `run` for continuous collection)");
            init_logs();
            let c = load_config(config.as_deref())?;
            let mut agent = canopy_agent::build::build_agent(&c).await?;
            let output = agent.run_cycle(canopy_agent::run::now_unix_s()).await;
            let file = std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let mut w = std::io::BufWriter::new(file);
            canopy_agent::sink::write_jsonl(&mut w, &output)?;
            std::io::Write::flush(&mut w)?;
            eprintln!(
                "wrote {} resource and {} emission records to {} (API cost {:.6} USD, {} GetMetricData calls, {} metrics)",
                output.resources.len(),
                output.emissions.len(),
                out.display(),
                output.stats.cost.usd(),
                output.stats.cost.get_metric_data_calls,
                output.stats.cost.metrics_requested
            );
        }
        Command::Run { config } => {
            init_logs();
            let c = load_config(Some(&config))?;
            anyhow::ensure!(
                c.delivery.aggregator_endpoint.is_some() || c.output.spool_path.is_some(),
                "run needs somewhere to put records: expected delivery.aggregator_endpoint \
                 (CANOPY_AGENT_AGGREGATOR_ENDPOINT) or output.spool_path (CANOPY_AGENT_SPOOL_PATH), found neither"
            );
            let mut agent = canopy_agent::build::build_agent(&c).await?;
            let delivery = match c.delivery.aggregator_endpoint {
                Some(_) => Some(Delivery::start(&c, agent.metrics().clone(), None).await?),
                None => None,
            };
            let mut sinks = Sinks::default();
            if let Some(d) = &delivery {
                sinks.0.push(Box::new(d.sink()));
            }
            if let Some(path) = &c.output.spool_path {
                sinks.0.push(Box::new(JsonlSpool::new(path)));
            }
            let cycle = std::time::Duration::from_secs(u64::from(c.intervals.cycle_s));
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing the SIGTERM handler")?;
            let shutdown = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                tracing::info!("shutdown requested");
            };
            let metrics_path = c.output.metrics_path.as_deref();
            let result = canopy_agent::run::run(&mut agent, &mut sinks, cycle, metrics_path, shutdown).await;
            if let Some(d) = delivery {
                d.shutdown().await;
            }
            canopy_agent::run::write_metrics(&agent, &sinks, metrics_path);
            result?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
