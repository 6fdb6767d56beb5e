//! `canopy-simagent`: a simulated Canopy agent for fault tests and benchmarks.
//!
//! It produces deterministic synthetic emission records (cycle `c`, record
//! `i` of agent `A` always has the same key, revision and values), appends
//! each cycle to the real durable outbox, and only after the append returned
//! (fsync done) logs the cycle's records to `--produced-log` (one JSON line
//! per record key + revision, then a `cycle_done` line, fsynced). It sends
//! pending frames over the real QUIC transport, acknowledges the outbox on
//! each `Ack`, retries with backoff through aggregator and database outages,
//! and exits 0 once every cycle is produced and the outbox is empty.
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
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use canopy_outbox::{Outbox, OutboxConfig};
use canopy_protocol::{ErrorCode, Reply};
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
    let producer = {
        let outbox = outbox.clone();
        let spec = records::Spec {
            account_id: cli.account.clone(),
            region: cli.region.clone(),
            agent_id: cli.agent_id.clone(),
            records_per_cycle: cli.records_per_cycle,
            base_unix_s,
        };
        let (log, cycles, pause) = (cli.produced_log.clone(), cli.cycles, Duration::from_millis(cli.cycle_ms));
        tokio::spawn(async move { produce(outbox, spec, log, start_cycle, cycles, pause).await })
    };
    let sent = send_until_drained(&client, &outbox, &producer, Duration::from_secs(cli.give_up_after_s)).await;
    client.close().await;
    let produced = producer.await.context("producer task")??;
    let sent = sent?;
    println!(
        "{}",
        serde_json::json!({
            "agent_id": cli.agent_id,
            "cycles_produced_now": produced,
            "batches_acked": sent.acked,
            "duplicates_acked": sent.duplicates,
            "send_failures": sent.send_failures,
            "retry_replies": sent.retry_replies,
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
        log.write_all(lines.as_bytes())?;
        log.sync_data()?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(cycles.saturating_sub(start))
}

/// What the sender saw.
#[derive(Debug, Default)]
struct Sent {
    /// Batches acknowledged.
    acked: u64,
    /// Of those, already stored before (a resend).
    duplicates: u64,
    /// Sends that failed after the transport's own retries (the agent then
    /// waits and sends again): batches that failed from the agent's view.
    send_failures: u64,
    /// Replies asking to retry later (database unavailable, throttled).
    retry_replies: u64,
}

/// Sends pending frames until the producer finished and the outbox is empty.
async fn send_until_drained(
    client: &Client,
    outbox: &Arc<Outbox>,
    producer: &tokio::task::JoinHandle<anyhow::Result<u64>>,
    give_up_after: Duration,
) -> anyhow::Result<Sent> {
    let mut sent = Sent::default();
    let mut last_progress = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        let ob = outbox.clone();
        let pending = tokio::task::spawn_blocking(move || ob.pending(0, 64)).await?.context("reading the outbox")?;
        if pending.is_empty() {
            if producer.is_finished() {
                let ob = outbox.clone();
                let again = tokio::task::spawn_blocking(move || ob.pending(0, 1)).await??;
                if again.is_empty() {
                    return Ok(sent);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let mut sends = tokio::task::JoinSet::new();
        for frame in pending {
            let client = client.clone();
            sends.spawn(async move { (frame.sequence, client.send(&frame.frame).await) });
        }
        let mut acks = Vec::new();
        let mut wait = None;
        while let Some(joined) = sends.join_next().await {
            let (sequence, result) = joined?;
            match result {
                Ok(Reply::Ack(ack)) => {
                    sent.duplicates += u64::from(ack.duplicate);
                    acks.push(ack);
                }
                Ok(Reply::Error(e)) => match e.code {
                    ErrorCode::Unavailable | ErrorCode::Throttled | ErrorCode::Internal => {
                        sent.retry_replies += 1;
                        tracing::warn!(sequence, code = %e.code, message = %e.message, "aggregator asked to retry");
                        wait = Some(Duration::from_secs(u64::from(e.retry_after_s.unwrap_or(1)).min(5)));
                    }
                    _ => bail!("batch {sequence} refused: {} ({})", e.message, e.code),
                },
                Err(e) => {
                    sent.send_failures += 1;
                    tracing::warn!(sequence, error = %e, "sending failed; will retry");
                    wait = Some(backoff);
                }
            }
        }
        if !acks.is_empty() {
            sent.acked += acks.len() as u64;
            let ob = outbox.clone();
            tokio::task::spawn_blocking(move || ob.ack_all(&acks)).await?.context("acknowledging the outbox")?;
            last_progress = Instant::now();
            backoff = Duration::from_millis(100);
        }
        if let Some(w) = wait {
            if last_progress.elapsed() > give_up_after {
                bail!("nothing delivered for {} s; giving up", give_up_after.as_secs());
            }
            tokio::time::sleep(w).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
