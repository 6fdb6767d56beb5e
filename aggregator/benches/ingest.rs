//! End-to-end ingest benchmark (issue #4 §5): simulated agents → QUIC →
//! the real `canopy-aggregator serve` process → PostgreSQL, committed.
//!
//! Creates a throwaway database on the server of `--admin-url`, starts the
//! aggregator binary this package built (same profile as the bench) with a
//! development CA, and runs `--agents` QUIC clients in this process, each in
//! its own account (one agent per account and region, as deployed), each
//! keeping `--in-flight` batches of `--batch-records` new emission records
//! in flight for `--seconds`; each agent reports `--resources-per-agent`
//! resources hour after hour. An acknowledgement is sent only after the
//! batch's transaction committed, so acked records are stored records; the
//! run checks that by counting the facts table at the end, and that the
//! hourly rollups hold the facts' count and energy. `--supersede` makes
//! every second batch replace the records of the one before with a higher
//! revision (an agent's measured hour replacing its provisional one).
//!
//! Prints records/s (after `--warmup-s`) and the acknowledgement latency
//! (send start → `Ack`, as the agent sees it) at p50/p95/p99/max.
//!
//!     cargo bench -p canopy-aggregator --bench ingest -- --agents 20 --batch-records 1000
//!
//! `--hourly-factors` imports a synthetic hourly intensity for every hour
//! the records fall in, so each batch is priced hourly (issue 14).
//!
//! `CANOPY_BENCH_AGGREGATOR=/path/to/canopy-aggregator` runs another build
//! of the aggregator (e.g. a copy of the previous release binary) instead.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use canopy_protocol::{
    Batch, Compression, EmissionRecord, GridFactorUsed, IdempotencyKey, Quality, Reply, Subject, encode_batch,
};
use canopy_transport::ca::{first_certificate_der, generate_agent_key_and_csr};
use canopy_transport::{AgentCertificate, CertificateAuthority, CertifiedKey, Client, ClientConfig, PeerIdentity};
use clap::Parser;
use sqlx::{Connection, PgConnection};

#[derive(Parser, Debug)]
#[command(name = "ingest", about = "End-to-end ingest benchmark: agents -> QUIC -> aggregator -> PostgreSQL")]
struct Args {
    /// Simulated agents (QUIC connections), one account each.
    #[arg(long, default_value_t = 20)]
    agents: usize,
    /// Emission records per batch (the outbox's default is 1,000).
    #[arg(long, default_value_t = 1_000)]
    batch_records: usize,
    /// Batches each agent keeps in flight.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 3)]
    warmup_s: u64,
    /// The aggregator's database pool size (`serve --max-connections`).
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// Superuser URL; a database `canopy_ingest_bench_<pid>` is created there and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// `NAME=VALUE` set on the bench database (`ALTER DATABASE … SET`)
    /// before the aggregator connects, e.g. `synchronous_commit=off` or
    /// auto_explain settings to see where the time goes; repeatable.
    #[arg(long = "database-setting")]
    database_settings: Vec<String>,
    /// Run ANALYZE once the warm-up is over, as autovacuum does on a
    /// database that has been running for a while (a fresh database has no
    /// statistics, so the planner may probe facts through the account index
    /// instead of the primary key).
    #[arg(long)]
    analyze_after_warmup: bool,
    /// Every second batch of an agent re-sends the records of the batch
    /// before it with a higher revision (as an agent's measured hour
    /// replaces its provisional one), so half the batches replace stored
    /// facts instead of adding new ones.
    #[arg(long)]
    supersede: bool,
    /// Resources each agent reports on, every hour: its batches fill one
    /// hour after the other (`resources / batch-records` batches per hour)
    /// over the 30 days before the current hour, as a deployed agent
    /// reports an account's resources hour by hour. 0: every batch holds
    /// new instances, spread over 24 hours in turn (so every hour of every
    /// agent keeps gaining batches: the worst case for the revision
    /// lookup, which reads the earlier segments of the same hour).
    #[arg(long, default_value_t = 5_000)]
    resources_per_agent: usize,
    /// Import a synthetic hourly intensity for eu-west-1's zone over every
    /// hour the records fall in (issue 14: the aggregator prices each
    /// record with the hour's intensity), to compare with a run without.
    #[arg(long)]
    hourly_factors: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn unix_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The aggregator process; killed on drop.
struct Aggregator(Child);

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_aggregator(database_url: &str, ca_dir: &Path, quic: SocketAddr, pool: u32) -> anyhow::Result<Aggregator> {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let log = std::fs::File::create(ca_dir.with_extension("aggregator.log"))?;
    // CANOPY_BENCH_AGGREGATOR: another build of the aggregator (a copy of an
    // earlier binary), to compare two versions under the same load.
    let binary = std::env::var("CANOPY_BENCH_AGGREGATOR").unwrap_or_else(|_| env!("CARGO_BIN_EXE_canopy-aggregator").into());
    let child = Command::new(&binary)
        .args(["serve", "--database-url", database_url])
        .args(["--http-listen", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--quic-listen", &quic.to_string()])
        .args(["--dev-ca-dir", &ca_dir.display().to_string()])
        .args(["--metrics-listen", &metrics.to_string()])
        .args(["--max-connections", &pool.to_string()])
        // The bench reads /metrics without credentials: open access
        // (an environment variable, which older builds ignore).
        .env("CANOPY_INSECURE_OPEN_ACCESS", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("spawning {binary} serve"))?;
    let agg = Aggregator(child);
    for _ in 0..300 {
        if std::net::TcpStream::connect(metrics).is_ok() {
            return Ok(agg);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the aggregator did not open its metrics endpoint within 30 s")
}

fn agent_certificate(ca: &CertificateAuthority, agent_id: &str, account: &str) -> anyhow::Result<AgentCertificate> {
    let (key_der, csr_der) = generate_agent_key_and_csr(agent_id)?;
    let lifetime = Duration::from_secs(3_600);
    let now = SystemTime::now();
    let identity = PeerIdentity {
        agent_id: agent_id.into(),
        account_id: account.into(),
        role_name: "CanopyAgent".into(),
        caller_arn: format!("arn:aws:sts::{account}:assumed-role/CanopyAgent/{agent_id}"),
        not_after_unix_s: unix_s() + 3_600,
    };
    let cert_der = ca.issue_client_certificate(&csr_der, &identity, now, lifetime)?;
    Ok(AgentCertificate { key: CertifiedKey { cert_der, key_pkcs8_der: key_der }, identity, received_at: now, lifetime })
}

/// Hours the `--resources-per-agent` pattern fills before it starts again
/// (with new instance names) at the first.
const PATTERN_HOURS: u64 = 30 * 24;

/// Start of the first hour of the `--resources-per-agent` pattern.
fn pattern_base_unix_s(now_unix_s: i64) -> i64 {
    now_unix_s - now_unix_s % 3_600 - PATTERN_HOURS as i64 * 3_600
}

/// Where the records of batch `index` (0-based, counting batches of new
/// records) go: (hour start, instance name prefix, first instance number).
fn placement(index: u64, records: usize, resources_per_agent: usize, base_unix_s: i64) -> (i64, String, usize) {
    if resources_per_agent == 0 {
        // Every batch new instances, over 24 hours in turn.
        return (base_unix_s + (index % 24) as i64 * 3_600, format!("b{index}"), 0);
    }
    let per_hour = resources_per_agent.div_ceil(records).max(1) as u64;
    let (cycle, within) = (index / (per_hour * PATTERN_HOURS), index % (per_hour * PATTERN_HOURS));
    let (hour, slice) = (within / per_hour, within % per_hour);
    (base_unix_s + hour as i64 * 3_600, format!("c{cycle}"), slice as usize * records)
}

/// One agent's batch `sequence`: `records` hourly records of distinct
/// instances placed by [`placement`]. With `supersede`, an even sequence
/// carries the records of the odd one before it at revision 2 (and other
/// values) instead of new records at revision 1.
fn batch(
    agent: usize,
    account: &str,
    sequence: u64,
    records: usize,
    (resources_per_agent, base_unix_s): (usize, i64),
    supersede: bool,
) -> Batch {
    let grid = |g: f64| GridFactorUsed { g_co2e_per_kwh: g, source: "ccf".into(), vintage: "2024".into() };
    let replaces = supersede && sequence.is_multiple_of(2);
    let (key_sequence, revision) = if replaces { (sequence - 1, 2) } else { (sequence, u32::from(supersede)) };
    // Batches of new records: every one without --supersede, the odd ones with it.
    let index = if supersede { (key_sequence - 1) / 2 } else { key_sequence - 1 };
    let (start, prefix, first) = placement(index, records, resources_per_agent, base_unix_s);
    let emissions = (0..records)
        .map(|i| {
            let compute_kwh = 0.001 * ((i + usize::from(replaces)) % 97 + 1) as f64;
            let operational = (compute_kwh + 0.0005) * 1.135 * 334.0;
            EmissionRecord {
                subject: Subject::Resource {
                    arn: format!("arn:aws:ec2:eu-west-1:{account}:instance/i-{agent}-{prefix}-r{}", first + i),
                },
                interval_start_unix_s: start,
                interval_end_unix_s: start + 3_600,
                energy_compute_kwh: compute_kwh,
                energy_memory_kwh: 0.0005,
                energy_storage_kwh: 0.0,
                energy_networking_kwh: 0.0,
                energy_accelerators_kwh: 0.0,
                pue: 1.135,
                embodied_g_co2e: 1.0,
                operational_location_g_co2e: operational,
                operational_market_g_co2e: 0.0,
                grid_location: grid(334.0),
                grid_market: grid(0.0),
                quality: Quality::Estimated,
                low_g_co2e: (1.0 + operational) * 0.5,
                high_g_co2e: (1.0 + operational) * 2.0,
                methodology_version: "canopy-bench-1".into(),
                revision,
            }
        })
        .collect();
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&(agent as u64).to_be_bytes());
    key[8..].copy_from_slice(&sequence.to_be_bytes());
    Batch {
        agent_id: format!("bench-{agent:04}"),
        account_id: account.into(),
        region: "eu-west-1".into(),
        sequence,
        idempotency_key: IdempotencyKey(key),
        created_at_unix_ms: start * 1_000,
        resources: Vec::new(),
        emissions,
        agent_status: None,
    }
}

/// CPU seconds (user + system) process `pid` has used, from `/proc`.
fn cpu_s(pid: u32, ticks_per_s: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / ticks_per_s
}

fn clock_ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds of the aggregator, of the PostgreSQL backends serving the
/// bench database, and of this process (the simulated agents).
async fn cpu_snapshot(pool: &sqlx::PgPool, aggregator_pid: u32, ticks: f64) -> anyhow::Result<(f64, f64, f64)> {
    let backends: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            .fetch_all(pool)
            .await?;
    let pg: f64 = backends.iter().map(|&p| cpu_s(p as u32, ticks)).sum();
    Ok((cpu_s(aggregator_pid, ticks), pg, cpu_s(std::process::id(), ticks)))
}

/// Per acknowledged batch: when it finished (since the start) and its latency.
struct Sample {
    done_us: u64,
    latency_us: u64,
}

#[derive(Default)]
struct Counts {
    acked_batches: AtomicU64,
    /// Acked batches whose records were new (all of them without `--supersede`).
    acked_new_batches: AtomicU64,
    error_replies: AtomicU64,
    send_failures: AtomicU64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pid = std::process::id();
    let name = format!("canopy_ingest_bench_{pid}");
    let base = args.admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).context("admin url without a database")?;
    let database_url = format!("{base}/{name}");
    let mut admin = PgConnection::connect(&args.admin_url).await.context("connecting to the admin database")?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await?;
    for setting in &args.database_settings {
        let (key, value) = setting
            .split_once('=')
            .with_context(|| format!("--database-setting: expected NAME=VALUE, found {setting:?}"))?;
        if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            bail!("--database-setting: expected a setting name of letters, digits, '_' and '.', found {key:?}");
        }
        // SET takes no bind parameters; the value is quoted as a literal.
        let value = value.replace('\'', "''");
        sqlx::query(&format!("ALTER DATABASE \"{name}\" SET {key} = '{value}'")).execute(&mut admin).await?;
    }
    println!("bench database {name}");
    let result = run(&args, &database_url).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut admin).await?;
    result
}

async fn run(args: &Args, database_url: &str) -> anyhow::Result<()> {
    let dir: PathBuf = std::env::temp_dir().join(format!("canopy-ingest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca_dir = dir.join("ca");
    let quic: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let aggregator = start_aggregator(database_url, &ca_dir, quic, args.pool)?;
    let ticks = clock_ticks_per_s();
    let probe = canopy_aggregator::db::connect(database_url, 1).await?;
    let ca_pem = std::fs::read_to_string(ca_dir.join("ca-cert.pem"))?;
    let ca = CertificateAuthority::from_pem(&ca_pem, &std::fs::read_to_string(ca_dir.join("ca-key.pem"))?)?;
    let ca_der = first_certificate_der(&ca_pem)?;
    let now = unix_s();
    let pattern = if args.resources_per_agent == 0 {
        (0, now - now % 3_600 - 2 * 86_400)
    } else {
        (args.resources_per_agent, pattern_base_unix_s(now))
    };
    if args.hourly_factors {
        let zone = canopy_emissions::grid::zone_for_region("eu-west-1").context("eu-west-1 has an Electricity Maps zone")?;
        let (from, to) = (pattern.1 - pattern.1 % 3_600 - 86_400, now + 86_400);
        sqlx::query(
            "INSERT INTO factor_set_versions (factor_set, version, files, values_count)
             VALUES ('location-hourly', 1, ARRAY['bench: synthetic'], ($2 - $1) / 3600 + 1)",
        )
        .bind(from)
        .bind(to)
        .execute(&probe)
        .await?;
        let hours = sqlx::query(
            "INSERT INTO hourly_intensity (zone, hour_start, version, g_co2e_per_kwh, estimated)
             SELECT $1, to_timestamp(h), 1, 250 + 100 * sin(h / 3600.0), false
             FROM generate_series($2::bigint, $3::bigint, 3600) h",
        )
        .bind(zone)
        .bind(from)
        .bind(to)
        .execute(&probe)
        .await?
        .rows_affected();
        println!("hourly factors: {hours} hours of zone {zone} (version 1)");
    }

    let started = Instant::now();
    let stop_at = started + Duration::from_secs(args.warmup_s + args.seconds);
    let counts = Arc::new(Counts::default());
    let mut workers = tokio::task::JoinSet::new();
    for agent in 0..args.agents {
        let account = format!("{:012}", 200_000_000_000u64 + agent as u64);
        let cert = agent_certificate(&ca, &format!("bench-{agent:04}"), &account)?;
        let mut config = ClientConfig::new(quic, "localhost".into(), ca_der.clone());
        config.max_in_flight = args.in_flight;
        let client = Client::new(config, cert)?;
        client.connect().await.context("connecting an agent")?;
        let next_sequence = Arc::new(AtomicU64::new(1));
        for _ in 0..args.in_flight {
            let (client, account, next_sequence, counts) =
                (client.clone(), account.clone(), next_sequence.clone(), counts.clone());
            let (records, supersede) = (args.batch_records, args.supersede);
            workers.spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < stop_at {
                    let sequence = next_sequence.fetch_add(1, Ordering::Relaxed);
                    let frame = encode_batch(&batch(agent, &account, sequence, records, pattern, supersede), Compression::Lz4)
                        .expect("encode a bench batch");
                    let sent = Instant::now();
                    match client.send(&frame).await {
                        Ok(Reply::Ack(_)) => {
                            counts.acked_batches.fetch_add(1, Ordering::Relaxed);
                            if !supersede || sequence % 2 == 1 {
                                counts.acked_new_batches.fetch_add(1, Ordering::Relaxed);
                            }
                            samples.push(Sample {
                                done_us: started.elapsed().as_micros() as u64,
                                latency_us: sent.elapsed().as_micros() as u64,
                            });
                        }
                        Ok(Reply::Error(e)) => {
                            counts.error_replies.fetch_add(1, Ordering::Relaxed);
                            eprintln!("agent {agent} batch {sequence}: {} ({})", e.message, e.code);
                        }
                        Err(e) => {
                            counts.send_failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!("agent {agent} batch {sequence}: send failed: {e}");
                        }
                    }
                }
                samples
            });
        }
    }
    // CPU at the end of the warm-up and at the end of the run (backends
    // that end in between are not counted: the pool keeps them open).
    tokio::time::sleep_until((started + Duration::from_secs(args.warmup_s)).into()).await;
    if args.analyze_after_warmup {
        let t = Instant::now();
        sqlx::query("ANALYZE").execute(&probe).await?;
        println!("ANALYZE after the warm-up took {:.1} s (inside the measured window)", t.elapsed().as_secs_f64());
    }
    let cpu_start = cpu_snapshot(&probe, aggregator.0.id(), ticks).await?;
    let mut samples = Vec::new();
    while let Some(joined) = workers.join_next().await {
        samples.extend(joined?);
    }
    let cpu_end = cpu_snapshot(&probe, aggregator.0.id(), ticks).await?;
    let ended_us = started.elapsed().as_micros() as u64;
    let warmup_us = args.warmup_s * 1_000_000;
    let measured: Vec<&Sample> = samples.iter().filter(|s| s.done_us >= warmup_us).collect();
    let window_s = (ended_us - warmup_us) as f64 / 1e6;
    let records = measured.len() as f64 * args.batch_records as f64;
    let mut latencies: Vec<u64> = measured.iter().map(|s| s.latency_us).collect();
    latencies.sort_unstable();

    let pool = canopy_aggregator::db::connect(database_url, 2).await?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM emission_facts_all").fetch_one(&pool).await?;
    let acked_records = counts.acked_batches.load(Ordering::Relaxed) * args.batch_records as u64;
    let acked_new_records = counts.acked_new_batches.load(Ordering::Relaxed) * args.batch_records as u64;
    // The hourly rollups must hold the sum of the facts (superseded values subtracted).
    let (fact_kwh, rollup_kwh, rollup_count): (f64, f64, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(sum(energy_kwh), 0) FROM emission_facts_all),
                (SELECT COALESCE(sum(energy_kwh), 0) FROM rollup_hourly),
                (SELECT COALESCE(sum(fact_count), 0)::bigint FROM rollup_hourly)",
    )
    .fetch_one(&pool)
    .await?;
    let ms = |us: u64| us as f64 / 1_000.0;
    println!(
        "ingest bench: {} agents x {} in flight, {} records/batch, {} resources/agent{}, {:.1} s measured after {} s warm-up, pool {}",
        args.agents,
        args.in_flight,
        args.batch_records,
        args.resources_per_agent,
        if args.supersede { ", every second batch superseding" } else { "" },
        window_s,
        args.warmup_s,
        args.pool
    );
    println!(
        "  records/s {:.0}   batches/s {:.1}   ack latency ms p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1}",
        records / window_s,
        measured.len() as f64 / window_s,
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or(0)),
    );
    println!(
        "  acked records {acked_records}, stored facts {stored}, error replies {}, send failures {}",
        counts.error_replies.load(Ordering::Relaxed),
        counts.send_failures.load(Ordering::Relaxed)
    );
    let (agg_cpu, pg_cpu, bench_cpu) = (cpu_end.0 - cpu_start.0, cpu_end.1 - cpu_start.1, cpu_end.2 - cpu_start.2);
    println!(
        "  CPU s in the measured window: aggregator {agg_cpu:.1}, PostgreSQL backends {pg_cpu:.1}, agents (this process) {bench_cpu:.1}; \
         PostgreSQL CPU per 1,000 records {:.1} ms",
        pg_cpu * 1e6 / records.max(1.0)
    );
    pool.close().await;
    probe.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    // A batch committed whose reply was lost is stored but not acked, so
    // stored may exceed acked; never the other way round.
    if stored < acked_new_records as i64 {
        bail!("expected at least {acked_new_records} stored facts (every acked new record), found {stored}");
    }
    if rollup_count != stored || (rollup_kwh - fact_kwh).abs() > 1e-9 * fact_kwh.max(1.0) {
        bail!(
            "expected the hourly rollups to hold the facts ({stored} facts, {fact_kwh} kWh), \
             found {rollup_count} facts and {rollup_kwh} kWh"
        );
    }
    Ok(())
}
