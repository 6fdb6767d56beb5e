//! Throwaway databases, a deterministic generator and a brute-force model.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use canopy_aggregator::accounting::{FactParts, MEASURES};
use canopy_aggregator::db::{self, StorageChoice, StorageMode};
use canopy_aggregator::ingest::{StoreOutcome, store_batch};
use canopy_aggregator::model::{Accounting, Batch, FactRow, Quality};
use sqlx::{Connection, PgConnection, PgPool, Row};

/// The storage path the suite runs on: `CANOPY_TEST_STORAGE=timescaledb`
/// runs it against the TimescaleDB server named by
/// `CANOPY_TEST_TIMESCALEDB_URL` (an admin URL, as `scripts/test.sh` sets
/// both), anything else on the native path at [`native_admin_url`].
pub fn storage() -> StorageMode {
    match std::env::var("CANOPY_TEST_STORAGE").as_deref() {
        Ok("timescaledb") => StorageMode::TimescaleDb,
        Ok("native") | Err(_) => StorageMode::Native,
        Ok(other) => panic!("expected CANOPY_TEST_STORAGE to be 'native' or 'timescaledb', found {other:?}"),
    }
}

/// The admin URL of the native-path server (CANOPY_TEST_ADMIN_URL, else
/// the local PostgreSQL at 5432).
pub fn native_admin_url() -> String {
    std::env::var("CANOPY_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The admin URL of a server with TimescaleDB preloaded, when there is one
/// (CANOPY_TEST_TIMESCALEDB_URL).
pub fn timescaledb_admin_url() -> Option<String> {
    std::env::var("CANOPY_TEST_TIMESCALEDB_URL").ok().filter(|u| !u.is_empty())
}

/// The admin URL of the server the suite's storage path runs on.
pub fn admin_url() -> String {
    match storage() {
        StorageMode::Native => native_admin_url(),
        StorageMode::TimescaleDb => timescaledb_admin_url()
            .expect("CANOPY_TEST_STORAGE=timescaledb needs CANOPY_TEST_TIMESCALEDB_URL (an admin URL)"),
    }
}

/// True (after printing why) when the suite runs on the TimescaleDB path
/// and `test` only makes sense on the native one: return from the test.
pub fn skip_unless_native(test: &str, why: &str) -> bool {
    if storage() == StorageMode::Native {
        return false;
    }
    println!("skipped {test} on the TimescaleDB path: {why}");
    true
}

/// The TimescaleDB admin URL for a test comparing both paths, or `None`
/// after printing why the test is skipped.
pub fn timescaledb_or_skip(test: &str) -> Option<String> {
    let url = timescaledb_admin_url();
    if url.is_none() {
        println!(
            "skipped {test}: CANOPY_TEST_TIMESCALEDB_URL is not set (scripts/test.sh sets it when \
             ../shared/tools/timescaledb is present)"
        );
    }
    url
}

fn url_on(admin: &str, database: &str) -> String {
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin.to_owned());
    format!("{base}/{database}")
}

/// A database created for one test and dropped (WITH FORCE) when dropped.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    /// The admin URL of its server.
    pub admin: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl TestDb {
    /// Creates an empty database (no migrations) on the suite's server.
    pub async fn empty() -> TestDb {
        TestDb::empty_on(&admin_url()).await
    }

    /// Creates an empty database on the server of the admin URL `admin`.
    pub async fn empty_on(admin_url: &str) -> TestDb {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!(
            "canopy_it_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(admin_url).await.expect("connect to the admin database");
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.expect("create database");
        let pool = db::connect(&url_on(admin_url, &name), 4).await.expect("connect to the test database");
        TestDb { pool, name, admin: admin_url.to_owned() }
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        url_on(&self.admin, &self.name)
    }

    /// Creates a database with every migration applied on the suite's
    /// storage path (asked for explicitly, so a server that cannot run it
    /// fails the test rather than falling back).
    pub async fn migrated() -> TestDb {
        let t = TestDb::empty().await;
        let choice = match storage() {
            StorageMode::Native => StorageChoice::Native,
            StorageMode::TimescaleDb => StorageChoice::TimescaleDb,
        };
        let decision = db::migrate_with(&t.pool, choice).await.expect("migrations apply");
        if decision.mode == StorageMode::TimescaleDb {
            unschedule_jobs(&t.pool).await;
        }
        t
    }

    /// A database migrated with `choice` at `admin` (TimescaleDB jobs
    /// unscheduled, as in [`TestDb::migrated`]).
    pub async fn migrated_on(admin: &str, choice: StorageChoice) -> TestDb {
        let t = TestDb::empty_on(admin).await;
        let decision = db::migrate_with(&t.pool, choice).await.expect("migrations apply");
        if decision.mode == StorageMode::TimescaleDb {
            unschedule_jobs(&t.pool).await;
        }
        t
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (name, admin_url) = (self.name.clone(), self.admin.clone());
        // Dropping needs async I/O; do it on a private runtime in a thread so
        // it also works while the test's runtime is blocked here. The pool is
        // not closed gracefully (its sockets belong to the blocked runtime);
        // WITH (FORCE) ends its server sessions instead.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Stores one batch in its own transaction; on the TimescaleDB path then
/// [`settle`]s, so every answer is exact right away.
pub async fn store(pool: &PgPool, batch: &Batch) -> StoreOutcome {
    let outcome = store_unsettled(pool, batch).await;
    settle_if_timescaledb(pool).await;
    outcome
}

/// Stores one batch in its own transaction, and nothing else.
pub async fn store_unsettled(pool: &PgPool, batch: &Batch) -> StoreOutcome {
    let mut tx = pool.begin().await.expect("begin");
    let outcome = store_batch(&mut tx, batch).await.expect("store_batch");
    tx.commit().await.expect("commit");
    outcome
}

/// The continuous aggregates, lowest level first (the per-resource daily
/// one of migration 0029 reads the facts).
pub const AGGREGATES: [&str; 5] = ["rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly", "resource_rollup_daily"];

/// TimescaleDB path: runs, now and in hierarchy order, the refresh policies
/// of the continuous aggregates (the jobs the extension's scheduler runs
/// every minute to hour; test databases have them unscheduled, see
/// [`unschedule_jobs`], so answers do not depend on when they ran).
pub async fn run_refresh_policies(pool: &PgPool) {
    for aggregate in AGGREGATES {
        let job: i32 = sqlx::query_scalar(
            // The jobs view names a continuous aggregate's jobs after the aggregate.
            "SELECT job_id FROM timescaledb_information.jobs
             WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_name = $1",
        )
        .bind(aggregate)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("refresh policy of {aggregate}: {e}"));
        sqlx::raw_sql(&format!("CALL run_job({job})")).execute(pool).await.unwrap();
    }
}

/// TimescaleDB path: what `serve`'s loops do between batches, done now: the
/// refresh policies, then the late-data refresh.
pub async fn settle(pool: &PgPool) {
    // One settle at a time: the scheduler never runs a job twice at once.
    static SETTLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = SETTLING.lock().await;
    run_refresh_policies(pool).await;
    canopy_aggregator::timescale::refresh_pending(pool).await.expect("late-data refresh");
}

/// [`settle`] on the TimescaleDB path, nothing on the native one.
pub async fn settle_if_timescaledb(pool: &PgPool) {
    if db::storage_mode(pool).await.unwrap() == StorageMode::TimescaleDb {
        settle(pool).await;
    }
}

/// TimescaleDB path: stops the extension's scheduler from running this
/// database's jobs by itself (tests run them with [`settle`]).
pub async fn unschedule_jobs(pool: &PgPool) {
    // Refresh policies in one batch per run (the default, ten buckets per
    // transaction, made each settle take seconds); the same figures.
    sqlx::query(
        "SELECT alter_job(job_id, scheduled => false,
                          config => CASE WHEN proc_name = 'policy_refresh_continuous_aggregate'
                                         THEN config || '{\"buckets_per_batch\": 0}' ELSE config END)
         FROM timescaledb_information.jobs WHERE job_id >= 1000",
    )
        .execute(pool)
        .await
        .unwrap();
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
        // Embodied 30 g/kWh of the total: the parts add up to the totals
        // (operational location = location - embodied, market likewise).
        accounting: Some(Accounting {
            parts: FactParts::from_record(
                energy_kwh / 1.2,
                location - energy_kwh * 30.0,
                location * 0.5 - energy_kwh * 30.0,
                energy_kwh * 30.0,
                location * 0.8,
                location * 1.25,
            ),
            market_factor_source: "residual-mix".to_owned(),
            market_factor_vintage: "2024".to_owned(),
        }),
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
    /// Every measure, in `accounting::MEASURE_COLUMNS` order.
    pub sums: [f64; MEASURES],
}

/// Every stored fact, read plainly.
pub async fn stored_facts(pool: &PgPool) -> Vec<Stored> {
    let rows = sqlx::query(&format!(
        "SELECT extract(epoch FROM period_start)::bigint, f.account_id, COALESCE(a.ou_path, ''), region, service,
                resource_type, team, quality, resource_id, {}
         FROM emission_facts_all_parts f LEFT JOIN accounts a ON a.account_id = f.account_id",
        canopy_aggregator::accounting::columns("f.")
    ))
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
            sums: std::array::from_fn(|i| r.get(9 + i)),
        })
        .collect()
}

/// Relative-or-absolute closeness for sums computed in different orders.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Brute-force grouped sums: key -> (every measure, in
/// `accounting::MEASURE_COLUMNS` order, and the count).
pub fn brute_group(
    facts: &[Stored],
    keep: impl Fn(&Stored) -> bool,
    key: impl Fn(&Stored) -> Vec<String>,
) -> BTreeMap<Vec<String>, ([f64; MEASURES], i64)> {
    let mut out: BTreeMap<Vec<String>, ([f64; MEASURES], i64)> = BTreeMap::new();
    for f in facts.iter().filter(|f| keep(f)) {
        let e = out.entry(key(f)).or_insert(([0.0; MEASURES], 0));
        for i in 0..MEASURES {
            e.0[i] += f.sums[i];
        }
        e.1 += 1;
    }
    out
}

/// The per-resource daily rollup (migration 0029) against the live facts:
/// per (UTC day, account, region, resource, service, resource type, team,
/// quality) the same fact count and every measure (parts included), and
/// no row with a live count but no facts. Both paths (TimescaleDB: after
/// [`settle`]). The error names the first rows that differ.
pub async fn resource_rollup_mismatches(pool: &PgPool) -> Result<(), String> {
    settle_if_timescaledb(pool).await;
    use canopy_aggregator::accounting::MEASURE_COLUMNS;
    let f_sums = MEASURE_COLUMNS.map(|c| format!("sum({c}) AS {c}")).join(", ");
    let r_cols = MEASURE_COLUMNS.join(", ");
    let differs = MEASURE_COLUMNS
        .map(|c| format!("abs(COALESCE(f.{c}, 0) - COALESCE(r.{c}, 0)) > 1e-6 * (1 + abs(COALESCE(f.{c}, 0)))"))
        .join(" OR ");
    let rows: Vec<String> = sqlx::query_scalar(&format!(
        "WITH f AS (
            SELECT date_bin(interval '1 day', period_start, timestamptz 'epoch') AS d, account_id, region,
                   resource_id, service, resource_type, team, quality, {f_sums}, count(*) AS n
            FROM emission_facts_all_parts GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
         ),
         r AS (
            SELECT bucket_start AS d, account_id, region, resource_id, service, resource_type, team, quality,
                   {r_cols}, fact_count AS n
            FROM resource_rollup_daily WHERE fact_count <> 0
         )
         SELECT format('%s %s/%s/%s %s/%s/%s/%s: facts %s (%s g) rollup %s (%s g)', d, account_id, region,
                       resource_id, service, resource_type, team, quality, f.n, f.location_g_co2e, r.n,
                       r.location_g_co2e)
         FROM f FULL JOIN r USING (d, account_id, region, resource_id, service, resource_type, team, quality)
         WHERE f.n IS DISTINCT FROM r.n OR {differs}
         ORDER BY 1 LIMIT 5"
    ))
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())?;
    if rows.is_empty() { Ok(()) } else { Err(format!("per-resource daily rollup differs from the facts: {rows:?}")) }
}
