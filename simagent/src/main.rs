//! `canopy-simagent`: a simulated Canopy agent for fault tests and benchmarks.
//!
//! It produces deterministic synthetic emission records (cycle `c`, record
//! `i` of agent `A` always has the same key, revision and values), appends
//! each cycle to the real durable outbox, and only after the append returned
//! (fsync done) logs the cycle's records to `--produced-log` (one JSON line
//! per record key + revision, then a `cycle_done` line, fsynced). It sends
//! pending frames over the real QUIC transport with the outbox's shared
//! sender loop ([`canopy_outbox::send_pending`], the one the real agent
//! runs): acknowledges the outbox on each `Ack`, retries with backoff and
//! jitter through aggregator and database outages, and exits 0 once every
//! cycle is produced and the outbox is empty.
//!
//! Restart after `kill -9`: the log's last `cycle_done` says where to resume;
//! a cycle appended but not yet logged is appended again with the same
//! content (same keys and revisions), which the aggregator stores once.
#![forbid(unsafe_code)]

mod records;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use canopy_outbox::{Outbox, OutboxConfig, SenderConfig, SenderControl, SenderStats, send_pending};
use canopy_transport::ca::{first_certificate_der, generate_agent_key_and_csr};
use canopy_transport::{AgentCertificate, CertificateAuthority, CertifiedKey, Client, ClientConfig, PeerIdentity};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "canopy-simagent", about = "Simulated Canopy agent (tests and benchmarks only)")]
struct Cli {
    /// Aggregator QUIC address.
    #[arg(long)]
    aggregator: SocketAddr,
    /// Name the aggregator's certificate is checked against.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// The aggregator CA certificate (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// AWS account id the records belong to (12 digits).
    #[arg(long)]
    account: String,
    /// Region of the records.
    #[arg(long, default_value = "eu-west-1")]
    region: String,
    /// Agent id.
    #[arg(long)]
    agent_id: String,
    /// Outbox folder.
    #[arg(long)]
    outbox: PathBuf,
    /// Outbox byte cap (default 1 GiB).
    #[arg(long)]
    max_outbox_bytes: Option<u64>,
    /// Emission records per cycle.
    #[arg(long)]
    records_per_cycle: usize,
    /// Cycles to produce in total (across restarts).
    #[arg(long)]
    cycles: u64,
    /// Pause between cycles, milliseconds.
    #[arg(long, default_value_t = 0)]
    cycle_ms: u64,
    /// Start of hour 0 of the records, Unix seconds (must be the same on
    /// every restart; default: the current hour minus 2 days).
    #[arg(long)]
    base_unix_s: Option<i64>,
    /// JSON-lines log of produced record keys and revisions.
    #[arg(long)]
    produced_log: PathBuf,
    /// TEST ONLY: issue this agent its own client certificate from the CA
    /// private key in this PEM file instead of enrolling through STS. Never
    /// give a CA key to an agent outside tests.
    #[arg(long)]
    dev_cert_from_ca_key: Option<PathBuf>,
    /// Give up when nothing could be delivered for this long, seconds.
    #[arg(long, default_value_t = 300)]
    give_up_after_s: u64,
    /// Frames sent concurrently.
    #[arg(long, default_value_t = 16)]
    max_in_flight: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let base_unix_s = cli.base_unix_s.unwrap_or_else(|| {
        let now = unix_s();
        now - now % 3_600 - 2 * 86_400
    });
    let ca_pem = std::fs::read_to_string(&cli.ca).with_context(|| format!("reading {}", cli.ca.display()))?;
    let cert = match &cli.dev_cert_from_ca_key {
        Some(key_path) => dev_certificate(&cli, &ca_pem, key_path)?,
        None => bail!("expected --dev-cert-from-ca-key (the simulated agent does not enrol through STS), found none"),
    };
    let mut config = ClientConfig::new(cli.aggregator, cli.server_name.clone(), first_certificate_der(&ca_pem)?);
    config.max_in_flight = cli.max_in_flight;
    config.connect_timeout = Duration::from_secs(3);
    config.reply_timeout = Duration::from_secs(30);
    config.retry.min_delay = Duration::from_millis(100);
    config.retry.max_delay = Duration::from_secs(2);
    config.retry.max_retries = 3;
    let client = Client::new(config, cert).context("creating the transport client")?;

    let mut outbox_config = OutboxConfig::new(cli.agent_id.clone());
    if let Some(max) = cli.max_outbox_bytes {
        outbox_config.max_bytes = max;
    }
    let outbox_dir = cli.outbox.clone();
    let outbox = Arc::new(
        tokio::task::spawn_blocking(move || Outbox::open(&outbox_dir, outbox_config))
            .await?
            .context("opening the outbox")?,
    );

    let start_cycle = completed_cycles(&cli.produced_log)?;
    let control = Arc::new(SenderControl::new());
    let producer = {
        let outbox = outbox.clone();
        let control = control.clone();
        let spec = records::Spec {
            account_id: cli.account.clone(),
            region: cli.region.clone(),
            agent_id: cli.agent_id.clone(),
            records_per_cycle: cli.records_per_cycle,
            base_unix_s,
        };
        let (log, cycles, pause) = (cli.produced_log.clone(), cli.cycles, Duration::from_millis(cli.cycle_ms));
        tokio::spawn(async move {
            let produced = produce(outbox, spec, log, start_cycle, cycles, pause, &control).await;
            // Whatever the outcome, nothing more is coming: send what is there.
            control.drain();
            produced
        })
    };
    let sender_config = SenderConfig {
        frames_per_round: 64,
        idle_poll: Duration::from_millis(20),
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(5),
        give_up_after: Some(Duration::from_secs(cli.give_up_after_s)),
    };
    let stats = SenderStats::default();
    let send = |frame: Vec<u8>| {
        let client = client.clone();
        async move { client.send(&frame).await }
    };
    let sent = send_pending(outbox.clone(), send, &sender_config, &stats, &control).await;
    client.close().await;
    let produced = producer.await.context("producer task")??;
    sent.context("sending the outbox")?;
    let refused = SenderStats::get(&stats.refused_batches);
    if refused > 0 {
        bail!("{refused} batches refused by the aggregator (kept in the outbox)");
    }
    println!(
        "{}",
        serde_json::json!({
            "agent_id": cli.agent_id,
            "cycles_produced_now": produced,
            "batches_acked": SenderStats::get(&stats.acked_batches),
            "duplicates_acked": SenderStats::get(&stats.duplicate_acks),
            "send_failures": SenderStats::get(&stats.send_failures),
            "retry_replies": SenderStats::get(&stats.retry_replies),
        })
    );
    Ok(())
}

fn unix_s() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// TEST ONLY: a client certificate issued directly from the CA key.
fn dev_certificate(cli: &Cli, ca_pem: &str, key_path: &Path) -> anyhow::Result<AgentCertificate> {
    let key_pem = std::fs::read_to_string(key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let ca = CertificateAuthority::from_pem(ca_pem, &key_pem)?;
    let (key_der, csr_der) = generate_agent_key_and_csr(&cli.agent_id)?;
    let lifetime = Duration::from_secs(24 * 3_600);
    let now = SystemTime::now();
    let identity = PeerIdentity {
        agent_id: cli.agent_id.clone(),
        account_id: cli.account.clone(),
        role_name: "CanopyAgent".into(),
        caller_arn: format!("arn:aws:sts::{}:assumed-role/CanopyAgent/{}", cli.account, cli.agent_id),
        not_after_unix_s: unix_s() + lifetime.as_secs() as i64,
    };
    let cert_der = ca.issue_client_certificate(&csr_der, &identity, now, lifetime)?;
    Ok(AgentCertificate {
        key: CertifiedKey { cert_der, key_pkcs8_der: key_der },
        identity,
        received_at: now,
        lifetime,
    })
}

/// Cycles fully logged in `log` (they run in order, so the next one to
/// produce). A torn last line from a kill is ignored.
fn completed_cycles(log: &Path) -> anyhow::Result<u64> {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", log.display())),
    };
    let mut next = 0;
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
            && let Some(c) = v.get("cycle_done").and_then(|c| c.as_u64())
        {
            next = next.max(c + 1);
        }
    }
    Ok(next)
}

/// Appends cycles `start..cycles` (durably), logging each after its append.
async fn produce(
    outbox: Arc<Outbox>,
    spec: records::Spec,
    log_path: PathBuf,
    start: u64,
    cycles: u64,
    pause: Duration,
    control: &SenderControl,
) -> anyhow::Result<u64> {
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    // A torn line from a kill during the previous run's write: end it so the
    // next line starts clean.
    log.write_all(b"\n")?;
    for c in start..cycles {
        let cycle = spec.cycle(c);
        let lines = records::log_lines(&cycle, c);
        let ob = outbox.clone();
        loop {
            let cycle = cycle.clone();
            let ob = ob.clone();
            match tokio::task::spawn_blocking(move || ob.append(&cycle)).await? {
                Ok(_) => break,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, cycle = c, "append failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e).context("appending a cycle"),
            }
        }
        control.wake();
        log.write_all(lines.as_bytes())?;
        log.sync_data()?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(cycles.saturating_sub(start))
}
