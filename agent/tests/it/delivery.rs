//! `canopy-agent run` delivering through its durable outbox and QUIC into
//! PostgreSQL: moto for AWS and STS (the agent enrols with assumed-role
//! credentials of the StackSet's role `canopy-agent-eu-west-1` in moto's
//! account, the aggregator expecting `canopy-agent-{region}`), the aggregator's real
//! ingest (transport server with STS enrolment + `Ingest`), a fresh
//! database per test. Two cycles each (cycle_s = 60).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use canopy_aggregator::delivery::{DeliveryConfig, Ingest};
use canopy_outbox::{Outbox, OutboxConfig};
use canopy_transport::{AllowedAccounts, CertificateAuthority, EnrollmentPolicy, Server, ServerConfig};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};

use crate::collect::{REGION, any_ami, run_instances};
use crate::moto::Moto;

const ACCOUNT: &str = "123456789012";
/// The StackSet's agent role in eu-west-1, and the aggregator's default
/// expectation, which matches every region's role.
const ROLE: &str = "canopy-agent-eu-west-1";
const EXPECTED_ROLE: &str = "canopy-agent-{region}";
const MEASURED: i64 = canopy_agent::estimate::REVISION_MEASURED as i64;

fn admin_url() -> String {
    std::env::var("CANOPY_TEST_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn url_for(name: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
    format!("{base}/{name}")
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A migrated database for one test, dropped (WITH FORCE) on drop.
struct TestDb {
    pool: PgPool,
    name: String,
}

impl TestDb {
    async fn migrated() -> TestDb {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name =
            format!("canopy_agent_it_{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut admin = PgConnection::connect(&admin_url()).await.expect("connect to the admin database");
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.expect("create database");
        let pool = canopy_aggregator::db::connect(&url_for(&name), 4).await.expect("connect to the test database");
        canopy_aggregator::db::migrate(&pool).await.expect("migrations apply");
        TestDb { pool, name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The aggregator's QUIC ingest with enrolment through moto's STS.
fn start_aggregator(listen: SocketAddr, ca: &Arc<CertificateAuthority>, pool: &PgPool, sts_url: &str) -> Server {
    let mut config = ServerConfig::new(listen, vec!["localhost".into()]);
    config.enrollment =
        Some(EnrollmentPolicy::new("canopy-agent-it", AllowedAccounts::new([ACCOUNT.to_owned()]).unwrap(), EXPECTED_ROLE, sts_url, "us-east-1"));
    let handler = Arc::new(Ingest::new(pool.clone(), DeliveryConfig::new(13), canopy_aggregator::http::system_clock));
    Server::start(config, ca.clone(), handler).expect("aggregator QUIC server starts")
}

/// A child process killed on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "canopy-agent-delivery-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn agent_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canopy-agent"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CANOPY_AGENT_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Value of an unlabelled series in a Prometheus text file (0 if absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "expected {what} within {} s, found it not done", limit.as_secs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One emission fact as the aggregator keys and stores it.
#[derive(Debug, Clone, PartialEq)]
struct Fact {
    revision: i64,
    location_g_co2e: f64,
    energy_kwh: f64,
}

/// `(period_start, record_key)` → fact, as the aggregator would store
/// `lines` (the JSON-lines debug output): the highest revision wins, the
/// first of equal revisions stays.
fn expected_facts(lines: &str) -> (BTreeMap<(i64, String), Fact>, BTreeSet<String>) {
    let mut facts: BTreeMap<(i64, String), Fact> = BTreeMap::new();
    let mut arns = BTreeSet::new();
    for line in lines.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "resource" {
            arns.insert(v["arn"].as_str().unwrap().to_owned());
            continue;
        }
        let (start, end) = (v["interval_start_unix_s"].as_i64().unwrap(), v["interval_end_unix_s"].as_i64().unwrap());
        let subject = match (&v["subject"]["resource"], &v["subject"]["group"]) {
            (Value::String(arn), _) => format!("resource:{arn}"),
            (_, g) => format!(
                "group:{}/{}/{}",
                g["service"].as_str().unwrap(),
                g["resource_type"].as_str().unwrap(),
                g["team"].as_str().unwrap_or("-")
            ),
        };
        let f = |k: &str| v[k].as_f64().unwrap();
        let energy = f("energy_compute_kwh")
            + f("energy_memory_kwh")
            + f("energy_storage_kwh")
            + f("energy_networking_kwh")
            + f("energy_accelerators_kwh");
        let fact = Fact {
            revision: v["revision"].as_i64().unwrap(),
            location_g_co2e: f("embodied_g_co2e") + f("operational_location_g_co2e"),
            energy_kwh: energy * f("pue"),
        };
        let key = (start, format!("{subject}@{}s", end - start));
        match facts.get(&key) {
            Some(old) if old.revision >= fact.revision => {}
            _ => {
                facts.insert(key, fact);
            }
        }
    }
    (facts, arns)
}

async fn stored_facts(pool: &PgPool) -> BTreeMap<(i64, String), Fact> {
    let rows: Vec<(i64, String, i64, f64, f64)> = sqlx::query_as(
        "SELECT extract(epoch FROM period_start)::bigint, record_key, revision, location_g_co2e, energy_kwh \
         FROM emission_facts_all WHERE account_id = $1 \
         UNION ALL \
         SELECT extract(epoch FROM bucket_start)::bigint, record_key, revision, location_g_co2e, energy_kwh \
         FROM realtime_group_facts WHERE account_id = $1",
    )
    .bind(ACCOUNT)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(start, key, revision, location_g_co2e, energy_kwh)| {
            ((start, key), Fact { revision, location_g_co2e, energy_kwh })
        })
        .collect()
}

fn sums(facts: &BTreeMap<(i64, String), Fact>) -> (usize, f64, f64) {
    (facts.len(), facts.values().map(|f| f.location_g_co2e).sum(), facts.values().map(|f| f.energy_kwh).sum())
}

fn assert_close(found: f64, expected: f64, what: &str) {
    assert!((found - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{what}: found {found}, expected {expected}");
}

/// Seeds moto, runs `collect --once`, then `canopy-agent run` for two
/// cycles (with the aggregator started only after the first cycle when
/// `aggregator_late`), stops it with SIGTERM and compares PostgreSQL with
/// what the agent produced.
async fn two_cycles_reach_postgres(aggregator_late: bool) {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let ami = any_ami(&ec2).await;
    run_instances(&ec2, &ami, "m5.large", &[("Team", "payments")]).await;
    run_instances(&ec2, &ami, "t3.micro", &[("Team", "search")]).await;
    run_instances(&ec2, &ami, "c5.xlarge", &[]).await;
    moto.create_role(ROLE).await;
    let assumed = aws_sdk_sts::Client::new(&sdk)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}"))
        .role_session_name("canopy-agent-it")
        .send()
        .await
        .expect("moto AssumeRole");
    let creds = assumed.credentials().expect("assumed-role credentials");
    let env: Vec<(String, String)> = vec![
        ("AWS_ACCESS_KEY_ID".into(), creds.access_key_id().to_owned()),
        ("AWS_SECRET_ACCESS_KEY".into(), creds.secret_access_key().to_owned()),
        ("AWS_SESSION_TOKEN".into(), creds.session_token().to_owned()),
        ("AWS_REGION".into(), REGION.into()),
    ];

    let db = TestDb::migrated().await;
    let ca = Arc::new(CertificateAuthority::generate("canopy agent delivery test ca").unwrap());
    let dir = temp_dir(if aggregator_late { "late" } else { "up" });
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    let quic: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let agent_id = "agent-it-delivery";
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "config_version = 1\nagent_id = \"{agent_id}\"\nregion = \"{REGION}\"\nendpoint_url = \"{url}\"\n\
             collectors = [\"ec2\"]\n\
             [intervals]\ncycle_s = 60\n\
             [output]\nspool_path = \"{spool}\"\nmetrics_path = \"{metrics}\"\n\
             [delivery]\naggregator_endpoint = \"{quic}\"\nserver_name = \"localhost\"\nca_file = \"{ca}\"\n\
             server_id = \"canopy-agent-it\"\nsts_url = \"{url}\"\n\
             outbox_path = \"{outbox}\"\nenroll_timeout_s = 5\nmax_backoff_s = 2\ndrain_timeout_s = 60\n",
            url = moto.url(),
            spool = dir.join("spool.jsonl").display(),
            metrics = dir.join("metrics.prom").display(),
            ca = dir.join("ca.pem").display(),
            outbox = dir.join("outbox").display(),
        ),
    )
    .unwrap();

    let collect = |name: &str| {
        let out = dir.join(name);
        let run = agent_command(&env)
            .args(["collect", "--once", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out)
            .env("CANOPY_AGENT_LOG", "warn")
            .output()
            .unwrap();
        assert!(run.status.success(), "collect --once failed: {}", String::from_utf8_lossy(&run.stderr));
        std::fs::read_to_string(out).unwrap()
    };
    let collected_before = collect("collect-before.jsonl");

    let mut server = (!aggregator_late).then(|| start_aggregator(quic, &ca, &db.pool, &moto.url()));
    let stderr = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut agent = Agent(
        agent_command(&env)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start canopy-agent run"),
    );
    let metrics_text = || std::fs::read_to_string(dir.join("metrics.prom")).unwrap_or_default();
    let cycles = |n: f64| move || metric(&metrics_text(), "canopy_agent_cycles_total") >= n;
    wait_for("the first cycle", Duration::from_secs(60), cycles(1.0)).await;
    if aggregator_late {
        // Let enrolment fail against the closed port before the aggregator comes up.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let backlog = metric(&metrics_text(), "canopy_agent_delivery_backlog_batches");
        assert!(backlog >= 1.0, "expected the first cycle's batches waiting in the outbox, found {backlog}");
        server = Some(start_aggregator(quic, &ca, &db.pool, &moto.url()));
    }
    wait_for("the second cycle", Duration::from_secs(120), cycles(2.0)).await;
    let _ = Command::new("kill").args(["-TERM", &agent.0.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "agent did not exit within 90 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    assert!(status.success(), "agent exited with {status}: {log}");
    let collected_after = collect("collect-after.jsonl");
    if let Some(server) = server.take() {
        server.shutdown(Duration::from_secs(2)).await;
    }

    // The outbox is empty: every batch was acknowledged and removed.
    let outbox = Outbox::<canopy_outbox::DefaultStore>::open(&dir.join("outbox"), OutboxConfig::new(agent_id)).unwrap();
    let left = outbox.stats();
    let quarantined: Vec<(String,)> = sqlx::query_as("SELECT error FROM quarantined_batches").fetch_all(&db.pool).await.unwrap_or_default();
    assert_eq!((left.pending_batches, left.pending_bytes), (0, 0), "outbox not empty after shutdown; quarantined: {quarantined:?}; agent log: {log}");
    drop(outbox);

    // PostgreSQL holds exactly what the agent produced in its two cycles.
    let spool = std::fs::read_to_string(dir.join("spool.jsonl")).unwrap();
    let (expected, spool_arns) = expected_facts(&spool);
    let stored = stored_facts(&db.pool).await;
    assert!(expected.len() > 20, "expected a real workload, found {} facts", expected.len());
    assert_eq!(stored.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "stored fact keys");
    let (n, g, kwh) = sums(&stored);
    let (en, eg, ekwh) = sums(&expected);
    assert_eq!(n, en);
    assert_close(g, eg, "summed location g CO2e");
    assert_close(kwh, ekwh, "summed kWh");
    for (key, fact) in &expected {
        assert_eq!(stored[key].revision, fact.revision, "revision of {key:?}");
    }
    // The 5-minute group records (the real-time view) were kept apart from
    // the totals: the rollups hold the per-resource energy once.
    let (realtime_rows,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM realtime_group_facts WHERE account_id = $1 AND record_key LIKE 'group:%@300s'")
            .bind(ACCOUNT)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let expected_groups = expected.keys().filter(|(_, k)| k.starts_with("group:") && k.ends_with("@300s")).count();
    assert!(expected_groups > 0, "the agent sends 5-minute group records");
    assert_eq!(realtime_rows as usize, expected_groups);
    let resource_kwh: f64 = expected.iter().filter(|((_, k), _)| k.starts_with("resource:")).map(|(_, f)| f.energy_kwh).sum();
    let (rollup_kwh,): (f64,) =
        sqlx::query_as("SELECT COALESCE(sum(energy_kwh), 0)::float8 FROM rollup_hourly WHERE account_id = $1")
            .bind(ACCOUNT)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_close(rollup_kwh, resource_kwh, "hourly rollup kWh (per-resource records only)");
    let resources: Vec<(String,)> =
        sqlx::query_as("SELECT resource_id FROM resources WHERE account_id = $1 ORDER BY resource_id")
            .bind(ACCOUNT)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let stored_arns: BTreeSet<String> = resources.into_iter().map(|(r,)| r).collect();
    assert_eq!(stored_arns, spool_arns, "resource rows");
    assert_eq!(stored_arns.len(), 3, "the three instances, found {stored_arns:?}");

    // No batch stored twice, and the agent counted what it delivered.
    let (batches,): (i64,) = sqlx::query_as("SELECT count(*) FROM ingested_batches WHERE agent_id = $1")
        .bind(agent_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let text = metrics_text();
    assert_eq!(metric(&text, "canopy_agent_delivery_backlog_batches"), 0.0);
    assert_eq!(metric(&text, "canopy_agent_delivery_acked_batches_total"), batches as f64, "{text}");
    assert_eq!(metric(&text, "canopy_outbox_appended_batches_total"), batches as f64);
    assert_eq!(metric(&text, "canopy_agent_delivery_refused_batches_total"), 0.0);
    assert!(metric(&text, "canopy_agent_delivery_enrolments_total{outcome=\"ok\"}") >= 1.0, "{text}");
    let expiry = metric(&text, "canopy_agent_delivery_certificate_expiry_timestamp_seconds");
    assert!(expiry > crate::collect::now_unix_s() as f64 + 3_600.0, "certificate expiry {expiry}");
    if aggregator_late {
        assert!(
            metric(&text, "canopy_agent_delivery_enrolments_total{outcome=\"failed\"}") >= 1.0,
            "expected failed enrolments while the aggregator was down: {text}"
        );
    }

    // The same resources and measured records as `collect --once` (before
    // or after the run: whichever measured the same utilisation window).
    let measured = |lines: &str| {
        let (facts, arns) = expected_facts(lines);
        let facts: BTreeMap<_, _> = facts
            .into_iter()
            .filter(|((_, key), f)| key.starts_with("resource:") && key.ends_with("@3600s") && f.revision == MEASURED)
            .collect();
        (facts, arns)
    };
    let stored_measured: BTreeMap<_, _> = stored
        .iter()
        .filter(|((_, key), f)| key.starts_with("resource:") && key.ends_with("@3600s") && f.revision == MEASURED)
        .map(|(k, f)| (k.clone(), f.clone()))
        .collect();
    let (before, before_arns) = measured(&collected_before);
    let (after, after_arns) = measured(&collected_after);
    let once = if before.keys().eq(stored_measured.keys()) { before } else { after };
    assert_eq!(stored_arns, before_arns, "resources of collect --once");
    assert_eq!(stored_arns, after_arns, "resources of collect --once");
    assert!(!once.is_empty(), "expected measured records from collect --once");
    assert_eq!(once.keys().collect::<Vec<_>>(), stored_measured.keys().collect::<Vec<_>>(), "measured record keys");
    let ((n1, g1, k1), (n2, g2, k2)) = (sums(&once), sums(&stored_measured));
    assert_eq!(n1, n2);
    assert_close(g2, g1, "measured g CO2e versus collect --once");
    assert_close(k2, k1, "measured kWh versus collect --once");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_delivers_two_cycles_to_postgres_equal_to_collect_once() {
    two_cycles_reach_postgres(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_down_at_first_receives_everything_once_it_starts() {
    two_cycles_reach_postgres(true).await;
}
