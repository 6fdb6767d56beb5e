//! The storage scale benchmark behind `canopy-aggregator bench-storage`:
//! loads a synthetic organisation straight into the rollup tables (server
//! side, `generate_series`), then times every query type through the same
//! [`QueryEngine`] the APIs use and reports p50 / p95 / p99, load time and
//! size on disk.
//!
//! Dataset: `accounts` accounts in 20 OUs (under 4 parent OUs), each with
//! `series_per_account` (region, service, resource type, team, quality)
//! series drawn from 15 regions, 30 services and 50 teams. Teams belong to
//! one OU each and work in 3 home regions with 6 services, so the org has at
//! most 50 × 3 × 6 × 2 types × 3 quality flags = 5,400 distinct groups per
//! bucket, however many accounts it has. Hourly rollups over `hourly_days`,
//! 5-minute rollups over `five_minute_days`, daily and monthly rollups
//! derived from the hourly ones, the org rollups (no account dimension)
//! derived from the account-level ones, and hourly per-resource facts for
//! `sample_accounts` accounts × `resources_per_sample_account` resources
//! over `five_minute_days`. The figures are synthetic; only latency and size
//! are measured.

use std::time::Instant;

use sqlx::PgPool;

use crate::db::{self, DbError};
use crate::maintenance::RetentionPolicy;
use crate::model::{Batch, FactRow, Quality};
use crate::query::{Dimension, Filters, Page, QueryEngine, SeriesRequest, Step, TopResourcesRequest, TotalsRequest};
use crate::time::{DAY_S, HOUR_S, floor_to};

/// Size of the generated dataset.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    /// Accounts in the organisation.
    pub accounts: u32,
    /// Distinct group series per account.
    pub series_per_account: u32,
    /// Days of hourly rollups (13 months = 395).
    pub hourly_days: u32,
    /// Days of 5-minute rollups and per-resource facts (35).
    pub five_minute_days: u32,
    /// Accounts with per-resource facts.
    pub sample_accounts: u32,
    /// Resources per sampled account.
    pub resources_per_sample_account: u32,
    /// Timed runs per query type.
    pub runs: u32,
    /// "Now" of the dataset (its newest hour ends here), Unix seconds.
    pub now_unix_s: i64,
}

/// Latency percentiles of one query type, milliseconds.
#[derive(Debug, Clone)]
pub struct QueryFigures {
    /// Query type.
    pub name: &'static str,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Rows returned by the last run.
    pub rows: usize,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Rows loaded per table.
    pub rows_loaded: Vec<(&'static str, i64)>,
    /// Wall time of the load, seconds.
    pub load_s: f64,
    /// Database size after load, bytes.
    pub database_bytes: i64,
    /// Per query type.
    pub queries: Vec<QueryFigures>,
    /// Ingest through `store_batch` after the load: facts per second over
    /// `ingest_batches` batches of `ingest_batch_facts` new facts each, then
    /// the same again as superseding revisions.
    pub ingest_new_facts_per_s: f64,
    /// Facts per second for the superseding pass.
    pub ingest_revised_facts_per_s: f64,
    /// Pending org-rollup rows the ingest passes queued, drained at once.
    pub org_drain_rows: u64,
    /// Wall time of that drain, seconds.
    pub org_drain_s: f64,
}

/// Batches in the ingest measurement.
const INGEST_BATCHES: u32 = 20;
/// Facts per batch in the ingest measurement.
const INGEST_BATCH_FACTS: u32 = 1_000;

/// Times `store_batch` on `INGEST_BATCHES` batches of new facts, then on the
/// same keys with a higher revision; returns facts per second for each pass.
async fn time_ingest(pool: &PgPool, now_unix_s: i64) -> Result<(f64, f64), BenchError> {
    let hour = floor_to(now_unix_s, HOUR_S) + HOUR_S; // the next hour: no overlap with loaded facts
    let mut rates = Vec::new();
    for revision in [1u32, 2] {
        let started = Instant::now();
        for b in 0..INGEST_BATCHES {
            let facts = (0..INGEST_BATCH_FACTS)
                .map(|i| {
                    let r = b * INGEST_BATCH_FACTS + i;
                    let e = 0.001 * f64::from(1 + r % 50) * f64::from(revision);
                    FactRow {
                        record_key: format!("ingest-{r}/total"),
                        revision,
                        period_start_unix_s: hour + i64::from(r % 12) * 300,
                        period_s: 300,
                        account_id: account_id(0),
                        region: "region-0".into(),
                        resource_id: format!("arn:bench:ingest:{r}"),
                        resource_type: format!("type-{}-0", r % 30),
                        service: format!("service-{}", r % 30),
                        team: None,
                        tags: Some(vec![("team".into(), format!("team-{}", r % 50))]),
                        quality: Quality::Measured,
                        energy_kwh: e,
                        location_g_co2e: e * 400.0,
                        market_g_co2e: e * 150.0,
                        low_g_co2e: e * 320.0,
                        high_g_co2e: e * 500.0,
                        methodology_version: "bench".into(),
                        factor_source: "bench".into(),
                        factor_vintage: "2024".into(),
                        realtime: false,
                    }
                })
                .collect();
            let batch = Batch {
                agent_id: "bench-agent".into(),
                sequence: u64::from(revision) * 1_000 + u64::from(b),
                facts,
                inventory: vec![],
            };
            let mut tx = pool.begin().await?;
            crate::ingest::store_batch(&mut tx, &batch).await.map_err(BenchError::Ingest)?;
            tx.commit().await?;
        }
        rates.push(f64::from(INGEST_BATCHES * INGEST_BATCH_FACTS) / started.elapsed().as_secs_f64());
    }
    Ok((rates[0], rates[1]))
}

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The target database already holds data.
    #[error("expected an empty database for the benchmark, found {0} rows in rollup_hourly")]
    NotEmpty(i64),
    /// Migrations or statements failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A statement failed.
    #[error("benchmark statement failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    /// Storing a batch failed.
    #[error(transparent)]
    Ingest(crate::ingest::StoreError),
}

const REGIONS: u32 = 15;
const SERVICES: u32 = 30;
const TEAMS: u32 = 50;
const OUS: u32 = 20;

fn account_id(i: u32) -> String {
    format!("{:012}", 100_000_000_000u64 + u64::from(i))
}

/// Loads the dataset and times the queries.
pub async fn run(pool: &PgPool, cfg: &BenchConfig) -> Result<BenchReport, BenchError> {
    db::migrate(pool).await?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM rollup_hourly").fetch_one(pool).await?;
    if existing > 0 {
        return Err(BenchError::NotEmpty(existing));
    }
    let started = Instant::now();
    load(pool, cfg).await?;
    let load_s = started.elapsed().as_secs_f64();
    let mut rows_loaded = Vec::new();
    for table in [
        "rollup_5m",
        "rollup_hourly",
        "rollup_daily",
        "rollup_monthly",
        "org_rollup_5m",
        "org_rollup_hourly",
        "org_rollup_daily",
        "org_rollup_monthly",
        "emission_facts",
        "accounts",
    ] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await?;
        rows_loaded.push((table, n));
    }
    let database_bytes: i64 =
        sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(pool).await?;
    let queries = time_queries(pool, cfg).await?;
    let (ingest_new_facts_per_s, ingest_revised_facts_per_s) = time_ingest(pool, cfg.now_unix_s).await?;
    let drain_started = Instant::now();
    let org_drain_rows = crate::maintenance::drain_org_rollups(pool).await?;
    let org_drain_s = drain_started.elapsed().as_secs_f64();
    Ok(BenchReport {
        rows_loaded,
        load_s,
        database_bytes,
        queries,
        ingest_new_facts_per_s,
        ingest_revised_facts_per_s,
        org_drain_rows,
        org_drain_s,
    })
}

async fn load(pool: &PgPool, cfg: &BenchConfig) -> Result<(), BenchError> {
    let end = floor_to(cfg.now_unix_s, HOUR_S) + HOUR_S;
    let hourly_from = floor_to(end - i64::from(cfg.hourly_days) * DAY_S, DAY_S);
    let five_from = floor_to(end - i64::from(cfg.five_minute_days) * DAY_S, DAY_S);

    // Accounts with OU paths: 20 OUs under 4 parents.
    sqlx::query(
        "INSERT INTO accounts (account_id, name, ou_path)
         SELECT lpad((100000000000 + a)::text, 12, '0'), 'account ' || a,
                'r-root/ou-p' || (a % 4) || '/ou-' || (a % $2)
         FROM generate_series(0, $1 - 1) a",
    )
    .bind(i64::from(cfg.accounts))
    .bind(i64::from(OUS))
    .execute(pool)
    .await?;

    // The group series: team t belongs to OU t % 20 (so an account of OU o
    // has teams o, o + 20 and, below 50, o + 40), works in regions
    // 3t .. 3t + 2 and services 7t .. 7t + 5 (mod 15 and 30); the rest is
    // spread by a multiplicative hash of (account, series).
    sqlx::query(
        "CREATE UNLOGGED TABLE bench_series AS
         SELECT lpad((100000000000 + a)::text, 12, '0') AS account_id,
                'region-' || ((t * 3 + h % 3) % $3) AS region,
                'service-' || ((t * 7 + (h / 3) % 6) % $4) AS service,
                'type-' || ((t * 7 + (h / 3) % 6) % $4) || '-' || ((h / 18) % 2) AS resource_type,
                'team-' || t AS team,
                (ARRAY['measured', 'estimated', 'default'])[1 + (h / 36) % 3] AS quality,
                0.05 + ((a * 31 + g * 17) % 100) / 100.0 AS base_kwh
         FROM generate_series(0, $1 - 1) a, generate_series(0, $2 - 1) g,
              LATERAL (SELECT (a % 20) + 20 * ((a / 20 + g) % CASE WHEN a % 20 < 10 THEN 3 ELSE 2 END) AS t,
                              ((a::bigint * 2654435761 + g::bigint * 40503) % 1000003) AS h) k",
    )
    .bind(i64::from(cfg.accounts))
    .bind(i64::from(cfg.series_per_account))
    .bind(i64::from(REGIONS))
    .bind(i64::from(SERVICES))
    .execute(pool)
    .await?;

    // Partitions: months for hourly and facts, days for 5-minute.
    let mut t = hourly_from;
    while t < end {
        sqlx::query("SELECT canopy_ensure_partition('rollup_hourly', 'month', to_timestamp($1::bigint))")
            .bind(t)
            .execute(pool)
            .await?;
        sqlx::query("SELECT canopy_ensure_partition('emission_facts', 'month', to_timestamp($1::bigint))")
            .bind(t)
            .execute(pool)
            .await?;
        sqlx::query("SELECT canopy_ensure_partition('org_rollup_hourly', 'month', to_timestamp($1::bigint))")
            .bind(t)
            .execute(pool)
            .await?;
        t += DAY_S;
    }
    let mut d = five_from;
    while d < end {
        for parent in ["rollup_5m", "org_rollup_5m"] {
            sqlx::query("SELECT canopy_ensure_partition($1, 'day', to_timestamp($2::bigint))")
                .bind(parent)
                .bind(d)
                .execute(pool)
                .await?;
        }
        d += DAY_S;
    }

    // Hourly rollups, one day per statement.
    let mut day = hourly_from;
    while day < end {
        sqlx::query(
            "INSERT INTO rollup_hourly
             SELECT to_timestamp(h), s.account_id, s.region, s.service, s.resource_type, s.team, s.quality,
                    e, e * 400, e * 150, e * 320, e * 500, 12
             FROM generate_series($1::bigint, $2::bigint - 3600, 3600) h, bench_series s,
                  LATERAL (SELECT s.base_kwh * (1.0 + 0.3 * sin(h / 3600.0)) AS e) v",
        )
        .bind(day)
        .bind((day + DAY_S).min(end))
        .execute(pool)
        .await?;
        day += DAY_S;
    }
    sqlx::query(
        "INSERT INTO rollup_daily
         SELECT date_bin(interval '1 day', bucket_start, timestamptz 'epoch'), account_id, region, service,
                resource_type, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e),
                sum(low_g_co2e), sum(high_g_co2e), sum(fact_count)
         FROM rollup_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7",
    )
    .execute(pool)
    .await?;

    sqlx::query(
        "INSERT INTO rollup_monthly
         SELECT date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', account_id, region,
                service, resource_type, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e),
                sum(low_g_co2e), sum(high_g_co2e), sum(fact_count)
         FROM rollup_daily GROUP BY 1, 2, 3, 4, 5, 6, 7",
    )
    .execute(pool)
    .await?;

    // 5-minute rollups, one day per statement.
    let mut day = five_from;
    while day < end {
        sqlx::query(
            "INSERT INTO rollup_5m
             SELECT to_timestamp(m), s.account_id, s.region, s.service, s.resource_type, s.team, s.quality,
                    e, e * 400, e * 150, e * 320, e * 500, 1
             FROM generate_series($1::bigint, $2::bigint - 300, 300) m, bench_series s,
                  LATERAL (SELECT s.base_kwh / 12.0 * (1.0 + 0.3 * sin(m / 3600.0)) AS e) v",
        )
        .bind(day)
        .bind((day + DAY_S).min(end))
        .execute(pool)
        .await?;
        day += DAY_S;
    }

    // Per-resource hourly facts for the sampled accounts.
    let mut day = five_from;
    while day < end {
        sqlx::query(
            "INSERT INTO emission_facts
             SELECT to_timestamp(h), 3600, lpad((100000000000 + a)::text, 12, '0'), 'region-' || (r % $5),
                    'res-' || r || '/total', 1, 'arn:bench:' || a || ':' || r, 'type-' || (r % 30) || '-0',
                    'service-' || (r % 30), 'team-' || (r % 50), 'measured',
                    e, e * 400, e * 150, e * 320, e * 500, 'bench', 'bench', '2024', 'bench', 0
             FROM generate_series($1::bigint, $2::bigint - 3600, 3600) h,
                  generate_series(0, $3 - 1) a, generate_series(0, $4 - 1) r,
                  LATERAL (SELECT 0.001 * (1 + (r * 13 + a) % 50) * (1.0 + 0.3 * sin(h / 3600.0)) AS e) v",
        )
        .bind(day)
        .bind((day + DAY_S).min(end))
        .bind(i64::from(cfg.sample_accounts))
        .bind(i64::from(cfg.resources_per_sample_account))
        .bind(i64::from(REGIONS))
        .execute(pool)
        .await?;
        day += DAY_S;
    }
    // Org rollups: the account-level ones grouped by the account's OU path,
    // what draining the ingest deltas would have produced.
    for (org, account) in [
        ("org_rollup_hourly", "rollup_hourly"),
        ("org_rollup_daily", "rollup_daily"),
        ("org_rollup_monthly", "rollup_monthly"),
        ("org_rollup_5m", "rollup_5m"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {org}
             SELECT r.bucket_start, COALESCE(a.ou_path, ''), r.region, r.service, r.resource_type, r.team, r.quality,
                    sum(r.energy_kwh), sum(r.location_g_co2e), sum(r.market_g_co2e), sum(r.low_g_co2e),
                    sum(r.high_g_co2e), sum(r.fact_count)
             FROM {account} r LEFT JOIN accounts a ON a.account_id = r.account_id GROUP BY 1, 2, 3, 4, 5, 6, 7"
        ))
        .execute(pool)
        .await?;
    }
    sqlx::query("DROP TABLE bench_series").execute(pool).await?;
    sqlx::raw_sql("ANALYZE").execute(pool).await?;
    Ok(())
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = (p * (sorted_ms.len() as f64 - 1.0)).round() as usize;
    sorted_ms[rank.min(sorted_ms.len() - 1)]
}

/// Small deterministic generator for query parameters.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

async fn time_queries(pool: &PgPool, cfg: &BenchConfig) -> Result<Vec<QueryFigures>, BenchError> {
    let engine = QueryEngine::new(pool.clone(), RetentionPolicy::default());
    let now = cfg.now_unix_s;
    let end = floor_to(now, HOUR_S) + HOUR_S;
    let today = floor_to(now, DAY_S);
    let mut rng = Lcg(7);
    let page = Page { limit: 100, offset: 0 };
    let mut out = Vec::new();

    type Runner<'a> = Box<dyn FnMut(&mut Lcg) -> Query + 'a>;
    enum Query {
        Totals(TotalsRequest),
        Series(SeriesRequest),
        Top(TopResourcesRequest),
    }
    let accounts = cfg.accounts;
    let samples = cfg.sample_accounts.max(1);
    let filters_team = |rng: &mut Lcg| Filters { team: vec![format!("team-{}", rng.below(u64::from(TEAMS)))], ..Filters::default() };
    let months_13 = floor_to(end - i64::from(cfg.hourly_days) * DAY_S, DAY_S) + DAY_S;
    let cases: Vec<(&'static str, Runner)> = vec![
        (
            "totals org 13 months (monthly+daily)",
            Box::new(move |_| Query::Totals(TotalsRequest { from_unix_s: months_13, to_unix_s: today, group_by: vec![], filters: Filters::default(), page })),
        ),
        (
            "totals 13 months by service",
            Box::new(move |_| Query::Totals(TotalsRequest { from_unix_s: months_13, to_unix_s: today, group_by: vec![Dimension::Service], filters: Filters::default(), page })),
        ),
        (
            "totals 30 days by team, one OU",
            Box::new(move |rng| Query::Totals(TotalsRequest {
                from_unix_s: today - 30 * DAY_S,
                to_unix_s: today,
                group_by: vec![Dimension::Team],
                filters: Filters { ou: vec![format!("r-root/ou-p{}", rng.below(4))], ..Filters::default() },
                page,
            })),
        ),
        (
            "totals 13 months by OU, one team",
            Box::new(move |rng| Query::Totals(TotalsRequest {
                from_unix_s: months_13,
                to_unix_s: today,
                group_by: vec![Dimension::Ou],
                filters: filters_team(rng),
                page,
            })),
        ),
        (
            "totals 13 months one account by region",
            Box::new(move |rng| Query::Totals(TotalsRequest {
                from_unix_s: months_13,
                to_unix_s: today,
                group_by: vec![Dimension::Region],
                filters: Filters { account: vec![account_id(rng.below(u64::from(accounts)) as u32)], ..Filters::default() },
                page,
            })),
        ),
        (
            "totals ragged 7 days by account (daily+hourly+5m)",
            Box::new(move |rng| Query::Totals(TotalsRequest {
                from_unix_s: today - 7 * DAY_S + 3 * HOUR_S + 600 + 300 * rng.below(6) as i64,
                to_unix_s: end - 2 * HOUR_S - 900,
                group_by: vec![Dimension::Account],
                filters: Filters::default(),
                page,
            })),
        ),
        (
            "series hourly 7 days by team, one team",
            Box::new(move |rng| Query::Series(SeriesRequest {
                from_unix_s: today - 7 * DAY_S,
                to_unix_s: today,
                step: Step::Hour,
                group_by: vec![Dimension::Team],
                filters: filters_team(rng),
                page: Page { limit: 1_000, offset: 0 },
            })),
        ),
        (
            "series daily 13 months org",
            Box::new(move |_| Query::Series(SeriesRequest {
                from_unix_s: months_13,
                to_unix_s: today,
                step: Step::Day,
                group_by: vec![],
                filters: Filters::default(),
                page: Page { limit: 1_000, offset: 0 },
            })),
        ),
        (
            "realtime last hour 5m by region",
            Box::new(move |_| Query::Series(SeriesRequest {
                from_unix_s: end - HOUR_S,
                to_unix_s: end,
                step: Step::FiveMinutes,
                group_by: vec![Dimension::Region],
                filters: Filters::default(),
                page: Page { limit: 1_000, offset: 0 },
            })),
        ),
        (
            "top 10 resources 7 days one sampled account",
            Box::new(move |rng| Query::Top(TopResourcesRequest {
                from_unix_s: today - 7 * DAY_S,
                to_unix_s: today,
                filters: Filters { account: vec![account_id(rng.below(u64::from(samples)) as u32)], ..Filters::default() },
                page: Page { limit: 10, offset: 0 },
            })),
        ),
    ];
    for (name, mut make) in cases {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..cfg.runs.max(1) {
            let q = make(&mut rng);
            let t = Instant::now();
            rows = match &q {
                Query::Totals(r) => engine.totals(r, now).await?.rows.len(),
                Query::Series(r) => engine.series(r, now).await?.rows.len(),
                Query::Top(r) => engine.top_resources(r).await?.rows.len(),
            };
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        out.push(QueryFigures {
            name,
            p50_ms: percentile(&times, 0.50),
            p95_ms: percentile(&times, 0.95),
            p99_ms: percentile(&times, 0.99),
            rows,
        });
    }
    Ok(out)
}
