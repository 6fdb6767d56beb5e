//! The alert evaluation benchmark (`canopy-aggregator bench-alerts`):
//! loads synthetic monthly and hourly rollups for N accounts and M budgets
//! into an empty native-path database, then times evaluation rounds (the
//! first fires every crossed budget, the next ones are steady state) and
//! reports the process's peak resident memory. Budgets are inserted by SQL
//! (no per-budget API validation): the benchmark measures evaluation.

use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;

use super::AlertsConfig;
use super::evaluate::{Evaluator, NoAnomalies, NoForecast, RoundReport};
use super::metrics::AlertMetrics;

/// What to load.
#[derive(Debug, Clone)]
pub struct AlertBenchConfig {
    /// Accounts.
    pub accounts: u32,
    /// Budgets.
    pub budgets: u32,
    /// Evaluation rounds timed.
    pub rounds: u32,
    /// "Now", Unix seconds. Rounds run a minute apart from here and the
    /// hourly rollups loaded are the 24 hours before now's UTC hour, so a
    /// round that crosses into the next hour sees an empty last hour.
    pub now_unix_s: i64,
}

/// The figures.
#[derive(Debug, Clone)]
pub struct AlertBenchReport {
    /// Monthly rollup rows loaded.
    pub monthly_rows: i64,
    /// Hourly rollup rows loaded.
    pub hourly_rows: i64,
    /// Budgets loaded.
    pub budgets: i64,
    /// Each round's report and wall time, seconds.
    pub rounds: Vec<(RoundReport, f64)>,
    /// Peak resident set size of the process, bytes.
    pub peak_rss_bytes: Option<u64>,
}

impl AlertBenchReport {
    /// Human-readable figures.
    pub fn render(&self) -> String {
        let mut out = format!(
            "loaded: {} monthly rollup rows, {} hourly rollup rows, {} budgets\n",
            self.monthly_rows, self.hourly_rows, self.budgets
        );
        for (i, (r, wall)) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "round {}: {:.2} s (read + compute {:.2} s, decide + write {:.2} s); {} budgets, {} rollup rows read, \
                 {} alerts fired, {} resolved\n",
                i + 1,
                wall,
                r.read_s,
                r.write_s,
                r.budgets,
                r.rows_read,
                r.triggered,
                r.resolved
            ));
        }
        match self.peak_rss_bytes {
            Some(b) => out.push_str(&format!("peak RSS: {:.1} MiB\n", b as f64 / 1_048_576.0)),
            None => out.push_str("peak RSS: unknown (no /proc)\n"),
        }
        out
    }
}

/// Peak resident set size of this process (`VmHWM`), when procfs is available.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Loads the data into `pool` (an empty, migrated native-path database).
pub async fn load(pool: &PgPool, cfg: &AlertBenchConfig) -> Result<(), sqlx::Error> {
    let now = cfg.now_unix_s as f64;
    // Partitions of the hourly rollups for the last day.
    for at in [cfg.now_unix_s - 86_400, cfg.now_unix_s] {
        sqlx::query("SELECT canopy_ensure_partition('rollup_hourly', 'month', to_timestamp($1))")
            .bind(at as f64)
            .execute(pool)
            .await?;
    }
    // Three series per account: teams t<(a + k) % 500>, services by k; the
    // months of the last year, each ~1000-3000 kg per series and month.
    sqlx::query(
        "INSERT INTO rollup_monthly
         SELECT m, lpad(a::text, 12, '0'), 'us-east-1', (ARRAY['AmazonEC2','AmazonS3','AWSLambda'])[k + 1], 'x',
                't' || ((a + k) % 500), 'measured', 1, g, g * 0.6, g * 0.8, g * 1.2, 1
         FROM generate_series(1, $1) a, generate_series(0, 2) k,
              generate_series(date_trunc('month', to_timestamp($2) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '12 months',
                              to_timestamp($2), interval '1 month') m,
              LATERAL (SELECT (1000000 + ((a * 7919 + k * 104729 + extract(month FROM m)::int * 31) % 2000000))::float8 AS g) v",
    )
    .bind(cfg.accounts as i32)
    .bind(now)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO rollup_hourly
         SELECT h, lpad(a::text, 12, '0'), 'us-east-1', (ARRAY['AmazonEC2','AmazonS3','AWSLambda'])[k + 1], 'x',
                't' || ((a + k) % 500), 'measured', 1, 2000, 1200, 1600, 2400, 1
         FROM generate_series(1, $1) a, generate_series(0, 2) k,
              generate_series(date_trunc('hour', to_timestamp($2)) - interval '24 hours',
                              date_trunc('hour', to_timestamp($2)) - interval '1 hour', interval '1 hour') h",
    )
    .bind(cfg.accounts as i32)
    .bind(now)
    .execute(pool)
    .await?;
    // Budgets: per account (month, quarter market, fiscal year, account +
    // service), then per team; amounts spread so some cross a threshold.
    sqlx::query(
        "INSERT INTO budgets (name, scope_account_id, scope_team, scope_service, period, fiscal_start_month, basis,
                              amount_kg_co2e, thresholds_pct, burn_rate_1h_factor, burn_rate_24h_factor)
         SELECT 'bench ' || n, acct, team, service, period, fsm, basis, amount, ARRAY[50, 80, 100]::float8[], 14.4, 6
         FROM (
             SELECT row_number() OVER () AS n, * FROM (
                 SELECT lpad(a::text, 12, '0') AS acct, NULL::text AS team, NULL::text AS service, 'month' AS period,
                        1 AS fsm, 'location' AS basis, (1000 + a % 9000)::float8 AS amount, 1 AS ord, a
                 FROM generate_series(1, $1) a
                 UNION ALL SELECT lpad(a::text, 12, '0'), NULL, NULL, 'quarter', 1, 'market', (5000 + a % 20000)::float8, 2, a
                 FROM generate_series(1, $1) a
                 UNION ALL SELECT lpad(a::text, 12, '0'), NULL, NULL, 'fiscal_year', 1 + a % 12, 'location', (40000 + a % 80000)::float8, 3, a
                 FROM generate_series(1, $1) a
                 UNION ALL SELECT lpad(a::text, 12, '0'), NULL, 'AmazonEC2', 'month', 1, 'location', (800 + a % 4000)::float8, 4, a
                 FROM generate_series(1, $1) a
                 UNION ALL SELECT lpad(a::text, 12, '0'), 't' || (a % 500), NULL, 'month', 1, 'market', (500 + a % 3000)::float8, 5, a
                 FROM generate_series(1, $1) a
                 UNION ALL SELECT NULL, 't' || t, NULL, 'month', 1, 'location', (50000 + t * 100)::float8, 6, t
                 FROM generate_series(0, 499) t
                 UNION ALL SELECT NULL, 't' || t, NULL, 'year', 1, 'market', (500000 + t * 1000)::float8, 7, t
                 FROM generate_series(0, 499) t
                 ORDER BY ord, a
             ) x
         ) y WHERE n <= $2",
    )
    .bind(cfg.accounts as i32)
    .bind(cfg.budgets as i64)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE rollup_monthly").execute(pool).await?;
    sqlx::query("ANALYZE rollup_hourly").execute(pool).await?;
    Ok(())
}

/// Loads, then times `cfg.rounds` evaluation rounds.
pub async fn run(pool: &PgPool, cfg: &AlertBenchConfig) -> Result<AlertBenchReport, sqlx::Error> {
    load(pool, cfg).await?;
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await };
    let monthly_rows = count("SELECT count(*) FROM rollup_monthly").await?;
    let hourly_rows = count("SELECT count(*) FROM rollup_hourly").await?;
    let budgets = count("SELECT count(*) FROM budgets").await?;
    let evaluator = Evaluator {
        pool: pool.clone(),
        config: AlertsConfig::default(),
        forecast: Arc::new(NoForecast),
        anomalies: Arc::new(NoAnomalies),
        metrics: Arc::new(AlertMetrics::default()),
        outbox_wake: Arc::new(tokio::sync::Notify::new()),
    };
    let mut rounds = Vec::new();
    for i in 0..cfg.rounds {
        let started = Instant::now();
        let r = evaluator.run_round(cfg.now_unix_s + i64::from(i) * 60).await?;
        rounds.push((r, started.elapsed().as_secs_f64()));
    }
    Ok(AlertBenchReport { monthly_rows, hourly_rows, budgets, rounds, peak_rss_bytes: peak_rss_bytes() })
}
