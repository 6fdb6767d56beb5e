//! Connection and throughput benchmark on loopback.
//!
//! `cargo run --release -p canopy-transport --bin conn_bench -- [--connections N]`
//!
//! Starts the server in a child process (so its resident memory is measured
//! alone), opens N mostly idle agent connections from a few shared client
//! UDP sockets, and prints the server's RSS growth per connection. Then
//! sends batches through one connection to a no-op handler and prints
//! records/s and acknowledgement latency percentiles.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use canopy_protocol::{
    Ack, Batch, Compression, EmissionRecord, GridFactorUsed, IdempotencyKey, Quality, Reply,
    Subject, encode_batch,
};
use canopy_transport::ca::generate_agent_key_and_csr;
use canopy_transport::identity::identity_from_certificate;
use canopy_transport::{
    AgentCertificate, BatchHandler, CertificateAuthority, CertifiedKey, Client, ClientConfig,
    InboundBatch, PeerIdentity, Server, ServerConfig,
};
use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    /// Idle connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Client UDP sockets the connections are spread over.
    #[arg(long, default_value_t = 8)]
    client_sockets: usize,
    /// Handshakes started at once while opening the idle connections
    /// (bursts of 64 overflow loopback UDP buffers: lost handshake packets
    /// then wait for quinn's ~1 s initial retransmission timer).
    #[arg(long, default_value_t = 8)]
    connect_concurrency: usize,
    /// Batches in the throughput run.
    #[arg(long, default_value_t = 500)]
    batches: u64,
    /// Emission records per batch in the throughput run.
    #[arg(long, default_value_t = 2_000)]
    records_per_batch: usize,
    /// Batches in flight in the throughput run.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Internal: run as the server child with this CA directory.
    #[arg(long, hide = true)]
    serve: Option<PathBuf>,
}

struct NoopHandler;

impl BatchHandler for NoopHandler {
    async fn handle(&self, _peer: &PeerIdentity, inbound: InboundBatch) -> Reply {
        Reply::Ack(Ack {
            sequence: inbound.batch.sequence,
            idempotency_key: inbound.batch.idempotency_key,
            duplicate: false,
        })
    }
}

const ACCOUNT: &str = "123456789012";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match &args.serve {
        Some(dir) => runtime.block_on(serve(dir.clone())),
        None => runtime.block_on(run(args)),
    }
}

async fn serve(dir: PathBuf) -> anyhow::Result<()> {
    let ca = CertificateAuthority::from_pem(
        &std::fs::read_to_string(dir.join("ca.pem"))?,
        &std::fs::read_to_string(dir.join("ca.key"))?,
    )?;
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse()?,
        vec!["localhost".into(), "127.0.0.1".into()],
    );
    config.max_in_flight_batches = 256;
    let server = Server::start(config, Arc::new(ca), Arc::new(NoopHandler))?;
    println!("{}", server.local_addr());
    std::io::stdout().flush()?;
    // Run until the parent closes stdin.
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            line.clear();
        }
    })
    .await?;
    server.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            return Ok(rest.trim().trim_end_matches("kB").trim().parse()?);
        }
    }
    bail!("expected VmRSS in /proc/{pid}/status, found none")
}

fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(65_536).unwrap_or_default()
}

fn agent_cert(ca: &CertificateAuthority) -> anyhow::Result<AgentCertificate> {
    let (key_der, csr_der) = generate_agent_key_and_csr("bench-agent")?;
    let identity = PeerIdentity {
        agent_id: "bench-agent".into(),
        account_id: ACCOUNT.into(),
        role_name: "CanopyAgent".into(),
        caller_arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/CanopyAgent/bench"),
        not_after_unix_s: 0,
    };
    let now = SystemTime::now();
    let lifetime = Duration::from_secs(3600);
    let cert_der = ca.issue_client_certificate(&csr_der, &identity, now, lifetime)?;
    let identity = identity_from_certificate(&cert_der)?;
    Ok(AgentCertificate {
        key: CertifiedKey {
            cert_der,
            key_pkcs8_der: key_der,
        },
        identity,
        received_at: now,
        lifetime,
    })
}

fn batch(sequence: u64, records: usize) -> Batch {
    let grid = |g: f64| GridFactorUsed {
        g_co2e_per_kwh: g,
        source: "ccf".into(),
        vintage: "2023".into(),
    };
    let emissions = (0..records)
        .map(|i| EmissionRecord {
            subject: Subject::Resource {
                arn: format!("arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-{i:017x}"),
            },
            interval_start_unix_s: 1_700_000_000 + (sequence as i64) * 3600,
            interval_end_unix_s: 1_700_003_600 + (sequence as i64) * 3600,
            energy_compute_kwh: 0.0093,
            energy_memory_kwh: 0.003,
            energy_storage_kwh: 0.0,
            energy_networking_kwh: 0.0,
            energy_accelerators_kwh: 0.0,
            pue: 1.135,
            embodied_g_co2e: 1.2,
            operational_location_g_co2e: 4.662807,
            operational_market_g_co2e: 0.0,
            grid_location: grid(334.0),
            grid_market: grid(0.0),
            quality: Quality::Estimated,
            low_g_co2e: 4.0,
            high_g_co2e: 9.5,
            methodology_version: "canopy-1".into(),
            revision: 0,
        })
        .collect();
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&sequence.to_le_bytes());
    Batch {
        agent_id: "bench-agent".into(),
        account_id: ACCOUNT.into(),
        region: "eu-west-1".into(),
        sequence,
        idempotency_key: IdempotencyKey(key),
        created_at_unix_ms: 1_700_003_600_000,
        resources: Vec::new(),
        emissions,
        agent_status: None,
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let nofile = raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("canopy-conn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca = CertificateAuthority::generate("canopy bench ca")?;
    std::fs::write(dir.join("ca.pem"), ca.cert_pem())?;
    std::fs::write(dir.join("ca.key"), ca.key_pem())?;

    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the server child")?;
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("child stdout")?).read_line(&mut line)?;
    let server_addr: SocketAddr = line.trim().parse().context("server address from child")?;
    let cert = agent_cert(&ca)?;
    let config = ClientConfig::new(server_addr, "localhost".into(), ca.cert_der().clone());
    let endpoints: Vec<quinn::Endpoint> = (0..args.client_sockets.max(1))
        .map(|_| quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")))
        .collect::<Result<_, _>>()?;

    // One connection first so the baseline includes the runtime's warm-up.
    let warm = Client::with_endpoint(config.clone(), cert.clone(), endpoints[0].clone())?;
    warm.connect().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base_kib = rss_kib(pid)?;

    let started = Instant::now();
    let mut clients = Vec::with_capacity(args.connections);
    let mut opened = 0usize;
    let mut handshakes = Vec::with_capacity(args.connections);
    let mut failed = 0usize;
    for chunk in (0..args.connections)
        .collect::<Vec<_>>()
        .chunks(args.connect_concurrency.max(1))
    {
        let mut handles = Vec::new();
        for &i in chunk {
            let client = Client::with_endpoint(
                config.clone(),
                cert.clone(),
                endpoints[i % endpoints.len()].clone(),
            )?;
            handles.push(tokio::spawn(async move {
                let t = Instant::now();
                client.connect().await.map(|()| (client, t.elapsed()))
            }));
        }
        for h in handles {
            match h.await? {
                Ok((c, took)) => {
                    clients.push(c);
                    handshakes.push(took);
                    opened += 1;
                }
                Err(_) => failed += 1,
            }
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let loaded_kib = rss_kib(pid)?;
    let per_conn_kib = (loaded_kib.saturating_sub(base_kib)) as f64 / opened.max(1) as f64;
    handshakes.sort_unstable();
    let hs = |p: f64| {
        handshakes
            .get(((handshakes.len().max(1) - 1) as f64 * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!("nofile limit: {nofile}");
    println!(
        "handshake ({} at a time): p50 {:.1} ms, p99 {:.1} ms",
        args.connect_concurrency,
        hs(0.5),
        hs(0.99)
    );
    println!(
        "connections: {opened} opened, {failed} failed in {connect_s:.1} s ({:.0}/s)",
        opened as f64 / connect_s
    );
    println!(
        "server rss: {:.1} MiB before, {:.1} MiB with {opened} idle connections → {per_conn_kib:.1} KiB per connection",
        base_kib as f64 / 1024.0,
        loaded_kib as f64 / 1024.0
    );
    let self_kib = rss_kib(std::process::id())?;
    println!("client process rss: {:.1} MiB", self_kib as f64 / 1024.0);
    for c in &clients {
        c.close().await;
    }
    drop(clients);

    // Throughput through one connection.
    let mut config = config;
    config.max_in_flight = args.in_flight;
    let client = Client::with_endpoint(config, cert, endpoints[0].clone())?;
    client.connect().await?;
    let frames: Vec<Arc<Vec<u8>>> = (0..args.batches)
        .map(|s| encode_batch(&batch(s, args.records_per_batch), Compression::Lz4).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let frame_bytes: usize = frames.iter().map(|f| f.len()).sum();
    // Latency is timed from when a batch gets an in-flight slot, so it is
    // the exchange itself, not the wait behind earlier batches.
    let slots = Arc::new(tokio::sync::Semaphore::new(args.in_flight));
    let started = Instant::now();
    let mut handles = Vec::new();
    for (seq, frame) in frames.into_iter().enumerate() {
        let client = client.clone();
        let slot = slots.clone().acquire_owned().await?;
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            let reply = client.send(&frame).await;
            drop(slot);
            (seq as u64, reply, t.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    for h in handles {
        let (seq, reply, latency) = h.await?;
        match reply? {
            Reply::Ack(a) if a.sequence == seq => latencies.push(latency),
            other => bail!("expected an ack of {seq}, found {other:?}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    let records = args.batches as f64 * args.records_per_batch as f64;
    println!(
        "throughput: {} batches × {} records ({:.1} MiB of lz4 frames) in {elapsed:.2} s → {:.0} records/s, {:.1} MiB/s",
        args.batches,
        args.records_per_batch,
        frame_bytes as f64 / 1048576.0,
        records / elapsed,
        frame_bytes as f64 / 1048576.0 / elapsed
    );
    println!(
        "ack latency (stream open to reply, {} in flight): p50 {:.1} ms, p99 {:.1} ms",
        args.in_flight,
        pct(0.50),
        pct(0.99)
    );
    drop(child.stdin.take());
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
