//! Throwaway databases, the aggregator and simulated-agent processes, and
//! the produced-versus-stored comparison.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use canopy_transport::ca::generate_agent_key_and_csr;
use canopy_transport::{AgentCertificate, CertificateAuthority, CertifiedKey, PeerIdentity};
use sqlx::{Connection, PgConnection, PgPool};

/// Admin connection URL (a superuser that may create databases).
pub fn admin_url() -> String {
    std::env::var("CANOPY_TEST_ADMIN_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// URL of database `name` on the server of `admin`.
pub fn url_on(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or_else(|| admin.to_owned());
    format!("{base}/{name}")
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A database created for one test, migrated, dropped (WITH FORCE) on drop.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    admin: String,
}

impl TestDb {
    /// A new migrated database on the shared server ([`admin_url`]).
    pub async fn migrated() -> TestDb {
        TestDb::migrated_on(&admin_url()).await
    }

    /// A new migrated database on the server of the admin URL `admin`.
    pub async fn migrated_on(admin: &str) -> TestDb {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("canopy_fault_{}_{}_{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut conn = PgConnection::connect(admin).await.expect("connect to the admin database");
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.expect("create database");
        let pool = canopy_aggregator::db::connect(&url_on(admin, &name), 8).await.expect("connect to the test database");
        canopy_aggregator::db::migrate(&pool).await.expect("migrations apply");
        TestDb { pool, name, admin: admin.to_owned() }
    }

    pub fn url(&self) -> String {
        url_on(&self.admin, &self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, admin_url) = (self.name.clone(), self.admin.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}

/// A client certificate issued straight from `ca` (no STS), for tests.
pub fn direct_cert(ca: &CertificateAuthority, agent_id: &str, account: &str) -> AgentCertificate {
    let (key_der, csr_der) = generate_agent_key_and_csr(agent_id).expect("csr");
    let lifetime = Duration::from_secs(3_600);
    let now = std::time::SystemTime::now();
    let identity = PeerIdentity {
        agent_id: agent_id.into(),
        account_id: account.into(),
        role_name: "CanopyAgent".into(),
        caller_arn: format!("arn:aws:sts::{account}:assumed-role/CanopyAgent/{agent_id}"),
        not_after_unix_s: now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 3_600,
    };
    let cert_der = ca.issue_client_certificate(&csr_der, &identity, now, lifetime).expect("issue");
    AgentCertificate { key: CertifiedKey { cert_der, key_pkcs8_der: key_der }, identity, received_at: now, lifetime }
}

pub fn new_ca() -> Arc<CertificateAuthority> {
    Arc::new(CertificateAuthority::generate("canopy fault test ca").expect("ca"))
}

/// Current Unix seconds.
pub fn now_unix_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

static BUILD: Once = Once::new();

/// Path of a workspace binary, built once per test run.
///
/// The build is `cargo test --workspace --locked --no-run`, exactly the
/// selection of `cargo test --workspace`, which builds every workspace
/// binary too: inside that run it is a no-op, and no dependency (the
/// aggregator pulls in the AWS SDK) is ever rebuilt with another feature
/// set, as a `-p` or `--all-targets` build would.
pub fn binary(name: &str) -> PathBuf {
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["test", "-q", "--workspace", "--locked", "--no-run"])
            .status()
            .expect("run cargo test --no-run");
        assert!(status.success(), "cargo test --workspace --no-run (for the aggregator and simagent binaries) failed");
    });
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace_root().join("target"));
    let path = target.join("debug").join(name);
    assert!(path.exists(), "expected the binary at {}, found nothing", path.display());
    path
}

/// A free local port (UDP and TCP bound once and released).
pub fn free_port() -> u16 {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let port = tcp.local_addr().unwrap().port();
    drop(tcp);
    port
}

/// An aggregator child process (`serve`), killed on drop.
pub struct Aggregator {
    pub child: Child,
    pub quic: SocketAddr,
    pub metrics: SocketAddr,
    args: Vec<String>,
}

impl Aggregator {
    /// Starts `canopy-aggregator serve` with a development CA in `ca_dir`.
    pub fn start(database_url: &str, ca_dir: &Path, quic_port: u16) -> Aggregator {
        let quic: SocketAddr = format!("127.0.0.1:{quic_port}").parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let args = vec![
            "serve".to_owned(),
            "--database-url".into(),
            database_url.into(),
            "--http-listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--grpc-listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--quic-listen".into(),
            quic.to_string(),
            "--dev-ca-dir".into(),
            ca_dir.display().to_string(),
            "--metrics-listen".into(),
            metrics.to_string(),
            "--max-connections".into(),
            "8".into(),
            // `serve` refuses to start without access control configured; these tests are about faults.
            "--insecure-open-access".into(),
        ];
        let child = spawn_aggregator(&args);
        let a = Aggregator { child, quic, metrics, args };
        a.wait_ready();
        a
    }

    fn wait_ready(&self) {
        for _ in 0..300 {
            if std::net::TcpStream::connect(self.metrics).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("aggregator did not open its metrics endpoint within 30 s");
    }

    /// `kill -9`, then a new process with the same arguments.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        // The HTTP and gRPC ports are free again once the process is gone.
        self.child = spawn_aggregator(&self.args);
        self.wait_ready();
    }

    /// SIGTERM (orderly shutdown), wait for the exit, start again.
    pub fn terminate_and_restart(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        self.child = spawn_aggregator(&self.args);
        self.wait_ready();
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// The value of counter `name` on the metrics endpoint (0 when absent).
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0)
    }

    /// The Prometheus text of the metrics endpoint.
    pub fn metrics_text(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.metrics).expect("metrics connect");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

fn spawn_aggregator(args: &[String]) -> Child {
    Command::new(binary("canopy-aggregator"))
        .args(args)
        // The fault suite reads /metrics without credentials: open access.
        .env("CANOPY_INSECURE_OPEN_ACCESS", "true")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the aggregator")
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings shared by the simulated agents of one scenario.
#[derive(Clone)]
pub struct AgentSpec {
    pub dir: PathBuf,
    pub aggregator: SocketAddr,
    pub ca_dir: PathBuf,
    pub account: String,
    pub records_per_cycle: usize,
    pub cycles: u64,
    pub cycle_ms: u64,
    pub base_unix_s: i64,
    /// Agents whose outbox lives elsewhere (a small disk) instead of `dir`.
    pub outbox_dirs: BTreeMap<usize, PathBuf>,
    /// Agents run with this `RUST_LOG` instead of `error`.
    pub log_filters: BTreeMap<usize, String>,
    /// Agents that produce this many cycles instead of `cycles`.
    pub cycles_for: BTreeMap<usize, u64>,
}

impl AgentSpec {
    pub fn produced_log(&self, agent: usize) -> PathBuf {
        self.dir.join(format!("agent-{agent}.produced.jsonl"))
    }

    /// Starts simulated agent number `agent` (resuming its outbox and log).
    pub fn spawn(&self, agent: usize) -> Child {
        Command::new(binary("canopy-simagent"))
            .args(["--aggregator", &self.aggregator.to_string()])
            .args(["--ca", &self.ca_dir.join("ca-cert.pem").display().to_string()])
            .args(["--dev-cert-from-ca-key", &self.ca_dir.join("ca-key.pem").display().to_string()])
            .args(["--account", &self.account])
            .args(["--agent-id", &format!("sim-{agent:02}")])
            .args(["--outbox", &self.outbox_dir(agent).display().to_string()])
            .args(["--records-per-cycle", &self.records_per_cycle.to_string()])
            .args(["--cycles", &self.cycles_for.get(&agent).unwrap_or(&self.cycles).to_string()])
            .args(["--cycle-ms", &self.cycle_ms.to_string()])
            .args(["--base-unix-s", &self.base_unix_s.to_string()])
            .args(["--produced-log", &self.produced_log(agent).display().to_string()])
            .args(["--give-up-after-s", "120"])
            .env("RUST_LOG", self.log_filters.get(&agent).map(String::as_str).unwrap_or("error"))
            .stdout(self.append_file(self.stdout_path(agent)))
            .stderr(self.append_file(self.stderr_path(agent)))
            .spawn()
            .expect("spawn a simulated agent")
    }

    /// Folder of agent `agent`'s outbox.
    pub fn outbox_dir(&self, agent: usize) -> PathBuf {
        self.outbox_dirs.get(&agent).cloned().unwrap_or_else(|| self.dir.join(format!("agent-{agent}.outbox")))
    }

    /// The agent's stderr log (appended across restarts).
    pub fn stderr_path(&self, agent: usize) -> PathBuf {
        self.dir.join(format!("agent-{agent}.stderr"))
    }

    /// The agent's stdout (one summary JSON line per completed run).
    pub fn stdout_path(&self, agent: usize) -> PathBuf {
        self.dir.join(format!("agent-{agent}.stdout"))
    }

    fn append_file(&self, path: PathBuf) -> Stdio {
        Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).expect("agent log"))
    }

    /// Sum of a numeric field over every agent's summary lines.
    pub fn summary_sum(&self, agents: usize, field: &str) -> u64 {
        (0..agents)
            .flat_map(|a| std::fs::read_to_string(self.stdout_path(a)).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>())
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .filter_map(|v| v[field].as_u64())
            .sum()
    }
}

/// Expected final state: (period start, record key) → (highest revision, energy kWh).
pub type Expected = BTreeMap<(i64, String), (i64, f64)>;

/// Reads produced logs; only records of completed cycles count (a cycle
/// logged partly by a killed process is re-logged in full on restart).
pub fn read_produced(paths: &[PathBuf]) -> (Expected, u64) {
    let mut expected = Expected::new();
    let mut produced_lines = 0u64;
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut pending: Vec<serde_json::Value> = Vec::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                pending.clear();
                continue;
            };
            if v.get("cycle_done").is_some() {
                for r in pending.drain(..) {
                    produced_lines += 1;
                    let key = (r["period_start_unix_s"].as_i64().unwrap(), r["record_key"].as_str().unwrap().to_owned());
                    let value = (r["revision"].as_i64().unwrap(), r["energy_kwh"].as_f64().unwrap());
                    let slot = expected.entry(key).or_insert(value);
                    if value.0 > slot.0 {
                        *slot = value;
                    }
                }
            } else {
                pending.push(v);
            }
        }
    }
    (expected, produced_lines)
}

/// One scenario's outcome, a row of the printed table.
#[derive(Debug, Default)]
pub struct Outcome {
    pub scenario: String,
    pub produced: usize,
    pub stored: usize,
    pub duplicates: usize,
    pub lost: usize,
    pub corrupted: usize,
    pub unexpected: usize,
    pub shed: String,
    /// Sends that failed from the agents' view (after the transport's retries).
    pub send_failures: u64,
    /// Acks of batches already stored (resends absorbed by deduplication).
    pub duplicate_acks: u64,
    /// Wall-clock seconds the scenario took.
    pub seconds: f64,
}

/// Compares the stored facts with the expected ones.
pub async fn compare(pool: &PgPool, scenario: &str, expected: &Expected) -> Outcome {
    let rows: Vec<(i64, String, i64, f64)> = sqlx::query_as(
        "SELECT extract(epoch FROM period_start)::bigint, record_key, revision, energy_kwh FROM emission_facts_all",
    )
    .fetch_all(pool)
    .await
    .expect("read facts");
    let mut stored: BTreeMap<(i64, String), Vec<(i64, f64)>> = BTreeMap::new();
    for (start, key, revision, energy) in rows.iter().cloned() {
        stored.entry((start, key)).or_default().push((revision, energy));
    }
    let mut out = Outcome { scenario: scenario.to_owned(), produced: expected.len(), stored: rows.len(), ..Default::default() };
    out.duplicates = stored.values().map(|v| v.len().saturating_sub(1)).sum();
    for (key, (revision, energy)) in expected {
        match stored.get(key) {
            None => out.lost += 1,
            Some(v) => {
                let (r, e) = v[0];
                if r != *revision || (e - energy).abs() > 1e-12 {
                    out.corrupted += 1;
                }
            }
        }
    }
    out.unexpected = stored.keys().filter(|k| !expected.contains_key(*k)).count();
    let quarantined: i64 =
        sqlx::query_scalar("SELECT count(*) FROM quarantined_batches").fetch_one(pool).await.expect("quarantine count");
    out.shed = if quarantined == 0 { "0".into() } else { format!("{quarantined} batches quarantined") };
    out
}

/// Prints the outcome table.
pub fn print_table(rows: &[Outcome]) {
    println!(
        "{:<70} {:>9} {:>9} {:>10} {:>6} {:>9} {:>10} {:>12} {:>9} {:>6}  shed",
        "scenario", "produced", "stored", "duplicates", "lost", "corrupted", "unexpected", "send fails", "dup acks", "s"
    );
    for r in rows {
        println!(
            "{:<70} {:>9} {:>9} {:>10} {:>6} {:>9} {:>10} {:>12} {:>9} {:>6.1}  {}",
            r.scenario, r.produced, r.stored, r.duplicates, r.lost, r.corrupted, r.unexpected, r.send_failures, r.duplicate_acks, r.seconds, r.shed
        );
    }
}

/// Waits for every child to exit; panics naming any that failed.
pub fn wait_all(spec: &AgentSpec, children: &mut [(usize, Child)], timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    for (agent, child) in children.iter_mut() {
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(spec.stderr_path(*agent)).unwrap_or_default();
                assert!(status.success(), "simulated agent {agent} exited with {status}; stderr:\n{log}");
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("simulated agent {agent} did not finish within {} s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
