//! Throwaway databases, a deterministic generator and a brute-force model.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use canopy_aggregator::db;
use canopy_aggregator::ingest::{StoreOutcome, store_batch};
use canopy_aggregator::model::{Batch, FactRow, Quality};
use sqlx::{Connection, PgConnection, PgPool, Row};

pub fn admin_url() -> String {
    std::env::var("CANOPY_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn url_for(database: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
    format!("{base}/{database}")
}

/// A database created for one test and dropped (WITH FORCE) when dropped.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    /// Creates an empty database (no migrations).
    pub async fn empty() -> TestDb {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!(
            "canopy_it_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&admin_url()).await.expect("connect to the admin database");
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.expect("create database");
        let pool = db::connect(&url_for(&name), 4).await.expect("connect to the test database");
        TestDb { pool, name }
    }

    /// Creates a database with every migration applied.
    pub async fn migrated() -> TestDb {
        let t = TestDb::empty().await;
        db::migrate(&t.pool).await.expect("migrations apply");
        t
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropping needs async I/O; do it on a private runtime in a thread so
        // it also works while the test's runtime is blocked here. The pool is
        // not closed gracefully (its sockets belong to the blocked runtime);
        // WITH (FORCE) ends its server sessions instead.
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

/// Stores one batch in its own transaction.
pub async fn store(pool: &PgPool, batch: &Batch) -> StoreOutcome {
    let mut tx = pool.begin().await.expect("begin");
    let outcome = store_batch(&mut tx, batch).await.expect("store_batch");
    tx.commit().await.expect("commit");
    outcome
}

/// xorshift64*: deterministic, dependency-free randomness for tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// 2026-11-02T00:00:00Z (20_759 days since the epoch).
pub const T0: i64 = 20_759 * 86_400;

pub const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
pub const REGIONS: [&str; 2] = ["eu-west-1", "us-east-1"];
pub const TEAMS: [&str; 3] = ["web", "data", "ml"];

/// A fact whose figures depend only on (resource, start, revision), so two
/// copies of the same key and revision are identical.
pub fn fact(resource: u64, start_unix_s: i64, period_s: u32, revision: u32) -> FactRow {
    let account = ACCOUNTS[(resource % 3) as usize];
    let region = REGIONS[((resource / 3) % 2) as usize];
    let service = if resource % 5 < 3 { "AmazonEC2" } else { "AmazonS3" };
    let resource_type = if service == "AmazonEC2" { "ec2:instance" } else { "s3:bucket" };
    let tags = match resource % 4 {
        0 => vec![],
        n => vec![("team".to_owned(), TEAMS[(n - 1) as usize].to_owned())],
    };
    let mut r = Rng::new(resource.wrapping_mul(1_000_003) ^ (start_unix_s as u64).wrapping_mul(7_919) ^ u64::from(revision) << 40);
    let energy_kwh = (1 + r.below(1_000)) as f64 / 1_000.0;
    let intensity = (100 + r.below(400)) as f64; // g/kWh
    let location = energy_kwh * intensity;
    FactRow {
        record_key: format!("r{resource}/total"),
        revision,
        period_start_unix_s: start_unix_s,
        period_s,
        account_id: account.to_owned(),
        region: region.to_owned(),
        resource_id: format!("r{resource}"),
        resource_type: resource_type.to_owned(),
        service: service.to_owned(),
        team: None,
        tags: Some(tags),
        quality: Quality::ALL[(r.below(3)) as usize],
        energy_kwh,
        location_g_co2e: location,
        market_g_co2e: location * 0.5,
        low_g_co2e: location * 0.8,
        high_g_co2e: location * 1.25,
        methodology_version: "canopy-1".to_owned(),
        factor_source: "ccf".to_owned(),
        factor_vintage: "2024".to_owned(),
        realtime: false,
    }
}

/// The real-time path's copy of `f`: the 5-minute group record an agent
/// sends for the same energy (group of `f`'s service, type and `team` tag).
pub fn as_group_record(f: &FactRow) -> FactRow {
    let team = f.tags.as_ref().and_then(|t| t.iter().find(|(k, _)| k == "team").map(|(_, v)| v.clone()));
    let subject = format!("group:{}/{}/{}", f.service, f.resource_type, team.as_deref().unwrap_or("-"));
    FactRow {
        record_key: format!("{subject}@{}s", f.period_s),
        resource_id: subject,
        team,
        tags: Some(vec![]),
        realtime: true,
        ..f.clone()
    }
}

/// Gives the three accounts OU paths: a and b share r-1/ou-a.
pub async fn seed_accounts(pool: &PgPool) {
    for (account, ou) in [
        (ACCOUNTS[0], "r-1/ou-a"),
        (ACCOUNTS[1], "r-1/ou-a/ou-b"),
        (ACCOUNTS[2], "r-1/ou-c"),
    ] {
        sqlx::query("INSERT INTO accounts (account_id, name, ou_path) VALUES ($1, $1, $2)")
            .bind(account)
            .bind(ou)
            .execute(pool)
            .await
            .unwrap();
    }
}

/// One stored fact as the brute-force model sees it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub start: i64,
    pub account: String,
    pub ou: String,
    pub region: String,
    pub service: String,
    pub resource_type: String,
    pub team: String,
    pub quality: String,
    pub resource_id: String,
    pub sums: [f64; 5],
}

/// Every stored fact, read plainly.
pub async fn stored_facts(pool: &PgPool) -> Vec<Stored> {
    let rows = sqlx::query(
        "SELECT extract(epoch FROM period_start)::bigint, f.account_id, COALESCE(a.ou_path, ''), region, service,
                resource_type, team, quality, resource_id,
                energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e
         FROM emission_facts_all f LEFT JOIN accounts a ON a.account_id = f.account_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.iter()
        .map(|r| Stored {
            start: r.get(0),
            account: r.get(1),
            ou: r.get(2),
            region: r.get(3),
            service: r.get(4),
            resource_type: r.get(5),
            team: r.get(6),
            quality: r.get(7),
            resource_id: r.get(8),
            sums: [r.get(9), r.get(10), r.get(11), r.get(12), r.get(13)],
        })
        .collect()
}

/// Relative-or-absolute closeness for sums computed in different orders.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Brute-force grouped sums: key -> ([energy, location_g, market_g, low_g, high_g], count).
pub fn brute_group(
    facts: &[Stored],
    keep: impl Fn(&Stored) -> bool,
    key: impl Fn(&Stored) -> Vec<String>,
) -> BTreeMap<Vec<String>, ([f64; 5], i64)> {
    let mut out: BTreeMap<Vec<String>, ([f64; 5], i64)> = BTreeMap::new();
    for f in facts.iter().filter(|f| keep(f)) {
        let e = out.entry(key(f)).or_insert(([0.0; 5], 0));
        for i in 0..5 {
            e.0[i] += f.sums[i];
        }
        e.1 += 1;
    }
    out
}
