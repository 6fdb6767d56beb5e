//! Native-mode housekeeping: partitions created ahead of time, retention by
//! dropping whole partitions whose entire range has expired, and draining
//! the org rollups' pending deltas (migration 0006). In TimescaleDB mode the
//! first two are the extension's policies and the last has nothing to do;
//! `run` refreshes the late data ingest queued instead (crate::timescale).
//!
//! Retention and ingest never race: every drop and every deletion of
//! retention holds the retention lock ([`RETENTION_LOCK_SQL`]) exclusively,
//! and every ingest transaction (`delivery::Ingest`) and org-rollup drain
//! holds it shared from its first statement. A batch therefore either
//! commits before a partition it writes is dropped, or starts after and is
//! checked against the acceptance horizon ([`RetentionPolicy::accept_horizon_unix_s`])
//! with the clock read after the lock was granted, so it never writes into
//! a partition retention has dropped.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::PgPool;

use crate::db::{self, DbError, StorageMode};
use crate::time::{DAY_S, floor_to, month_start_shifted, parse_yyyymmdd, yyyymmdd};

/// How long each kind of data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// 5-minute group rollups, days (default 35).
    pub five_minute_days: u32,
    /// Hourly group rollups, months (default 13).
    pub hourly_months: u32,
    /// Per-resource facts, months (default 13).
    pub facts_months: u32,
    /// Daily and monthly rollups, months; `None` keeps them forever (default).
    pub daily_months: Option<u32>,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy { five_minute_days: 35, hourly_months: 13, facts_months: 13, daily_months: None }
    }
}

/// How far ahead of the clock ingest applies the retention horizon: a
/// record is accepted only if retention still keeps it at `now +` this
/// margin. Horizons only move at UTC month starts, so the margin only
/// matters on a month's last day, when records of the month about to expire
/// are refused a day early; it covers clock skew of up to a day between
/// aggregator processes (a `maintain` run on another host). Within one
/// clock the re-check under the retention lock alone is exact.
pub const ACCEPT_HORIZON_MARGIN_S: i64 = DAY_S;

/// The retention lock: taken exclusively by retention around each drop or
/// deletion and shared by ingest and the org-rollup drain, always as the
/// first lock of their transactions (so lock order is the same everywhere).
pub const RETENTION_LOCK_SQL: &str = "hashtextextended('canopy_retention', 0)";

impl RetentionPolicy {
    /// Oldest instant from which 5-minute rollups are guaranteed complete:
    /// the start of the oldest day partition retention keeps at `now_unix_s`.
    pub fn five_minute_horizon_unix_s(&self, now_unix_s: i64) -> i64 {
        floor_to(now_unix_s, DAY_S) - i64::from(self.five_minute_days) * DAY_S
    }

    /// Start of the oldest month retention keeps per-resource facts for at
    /// `now_unix_s` (what [`run`] drops before).
    pub fn facts_cutoff_unix_s(&self, now_unix_s: i64) -> i64 {
        month_start_shifted(now_unix_s, -i64::from(self.facts_months))
    }

    /// Start of the oldest month retention keeps hourly rollups for.
    pub fn hourly_cutoff_unix_s(&self, now_unix_s: i64) -> i64 {
        month_start_shifted(now_unix_s, -i64::from(self.hourly_months))
    }

    /// Start of the oldest month retention keeps daily and monthly rollups
    /// for; `None` when they are kept forever.
    pub fn daily_cutoff_unix_s(&self, now_unix_s: i64) -> Option<i64> {
        self.daily_months.map(|months| month_start_shifted(now_unix_s, -i64::from(months)))
    }

    /// Oldest record start ingest accepts at `now_unix_s`: the start of the
    /// oldest month that facts, hourly and (when limited) daily retention
    /// all still keep at `now_unix_s + ACCEPT_HORIZON_MARGIN_S`, computed
    /// exactly as [`run`] computes its cutoffs. A record older than that
    /// could be stored and then dropped at the next run while its share
    /// stays in the daily and monthly rollups, and a later revision would
    /// then find no stored copy to replace and be counted again. The
    /// 5-minute level is not part of it: late data past 35 days is normal
    /// (measured billing data), and queries read 5-minute rollups only from
    /// [`Self::five_minute_horizon_unix_s`] on.
    pub fn accept_horizon_unix_s(&self, now_unix_s: i64) -> i64 {
        let at = now_unix_s + ACCEPT_HORIZON_MARGIN_S;
        let months = self.facts_cutoff_unix_s(at).max(self.hourly_cutoff_unix_s(at));
        self.daily_cutoff_unix_s(at).map_or(months, |daily| months.max(daily))
    }
}

/// What [`run`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Partitions created ahead.
    pub partitions_created: u64,
    /// Names of the partitions dropped by retention.
    pub partitions_dropped: Vec<String>,
    /// Daily and monthly rollup rows deleted by retention (only with
    /// `daily_months`), account-level, org and team.
    pub daily_rows_deleted: u64,
    /// Pending org-rollup deltas moved into the org rollups.
    pub org_rows_drained: u64,
    /// Quarantined frames deleted (older than [`QUARANTINE_RETENTION_DAYS`]).
    pub quarantine_rows_deleted: u64,
    /// Batch-log rows deleted (older than [`BATCH_LOG_RETENTION_DAYS`]).
    pub batch_log_rows_deleted: u64,
    /// `coarsened_hours` rows deleted: hours before the acceptance horizon,
    /// which no record can reach any more ([`prune_coarsened_hours`]).
    pub coarsened_hours_deleted: u64,
}

/// Moves every pending org-rollup delta into the org rollups (one
/// statement under an advisory lock; see migration 0006) and returns how
/// many pending rows it moved. Queries are exact with or without it; it
/// keeps the pending table, which queries also read, small. It holds the
/// retention lock shared, so retention never drops a partition between the
/// drain creating it and writing into it.
pub async fn drain_org_rollups(pool: &PgPool) -> Result<u64, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("SELECT pg_advisory_xact_lock_shared({RETENTION_LOCK_SQL})")).execute(&mut *tx).await?;
    set_aside_unsummable_pending(&mut tx).await?;
    let moved: i64 = sqlx::query_scalar("SELECT canopy_drain_org_rollups()").fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(u64::try_from(moved).unwrap_or(0))
}

/// Largest magnitude a pending org-rollup delta may carry: far above any
/// real value (ingest's plausibility bounds keep every batch well below
/// it), far below where sums of many rows could overflow a float8.
pub const MAX_PENDING_MAGNITUDE: f64 = 1e15;

/// Pending org-rollup deltas moved aside so far (this process).
pub static PENDING_SET_ASIDE_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Moves pending org-rollup deltas with a value that is not finite or
/// beyond [`MAX_PENDING_MAGNITUDE`] into `org_rollup_pending_rejected`
/// (migration 0018), inside the drain's transaction, so one such row can
/// never wedge the drain (its sums would overflow and fail every run while
/// the pending table grew). Logged at ERROR and counted: the row's account
/// rollups hold it too, so an operator must look.
pub async fn set_aside_unsummable_pending(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<u64, DbError> {
    let columns = format!(
        "bucket_start, account_id, region, service, resource_type, team, quality, {}, fact_count",
        crate::accounting::columns("")
    );
    let within = crate::accounting::MEASURE_COLUMNS.map(|c| format!("abs({c}) <= $1")).join(" AND ");
    let moved = sqlx::query(&format!(
        "WITH bad AS (
            DELETE FROM org_rollup_pending
            WHERE NOT ({within})
            RETURNING {columns}
         )
         INSERT INTO org_rollup_pending_rejected ({columns}, rejected_at) SELECT {columns}, now() FROM bad",
    ))
    .bind(MAX_PENDING_MAGNITUDE)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if moved > 0 {
        PENDING_SET_ASIDE_TOTAL.fetch_add(moved, Ordering::Relaxed);
        tracing::error!(rows = moved, "org-rollup drain set aside pending deltas beyond 1e15 or not finite");
    }
    Ok(moved)
}

/// Days refused frames stay in `quarantined_batches`.
pub const QUARANTINE_RETENTION_DAYS: i64 = 30;
/// Days batches stay in the batch log `ingested_batches` (a re-send of a
/// pruned batch is stored again; its facts are equal revisions, so stale,
/// and nothing is counted twice). The fleet's per-agent counts live in
/// `agent_fleet` and are not pruned.
pub const BATCH_LOG_RETENTION_DAYS: i64 = 35;

/// Deletes quarantined frames and batch-log rows past their retention;
/// returns (quarantined, batch log) rows deleted.
pub async fn prune_logs(pool: &PgPool, now_unix_s: i64) -> Result<(u64, u64), DbError> {
    let quarantined = sqlx::query("DELETE FROM quarantined_batches WHERE received_at < to_timestamp($1::bigint)")
        .bind(now_unix_s - QUARANTINE_RETENTION_DAYS * 86_400)
        .execute(pool)
        .await?
        .rows_affected();
    let batches = sqlx::query("DELETE FROM ingested_batches WHERE received_at < to_timestamp($1::bigint)")
        .bind(now_unix_s - BATCH_LOG_RETENTION_DAYS * 86_400)
        .execute(pool)
        .await?
        .rows_affected();
    Ok((quarantined, batches))
}

/// Deletes the `coarsened_hours` rows (migration 0013) of hours before
/// `accept_horizon_unix_s`. The coarsening rule needs a row only while a
/// record of its hour can still arrive; ingest refuses every record older
/// than the acceptance horizon ([`RetentionPolicy::accept_horizon_unix_s`],
/// on the TimescaleDB path a later one), so below it the rows only grow the
/// table. Returns the rows deleted.
pub async fn prune_coarsened_hours(pool: &PgPool, accept_horizon_unix_s: i64) -> Result<u64, DbError> {
    let deleted = sqlx::query("DELETE FROM coarsened_hours WHERE hour_start < to_timestamp($1::bigint)")
        .bind(accept_horizon_unix_s)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(deleted)
}

/// How often `serve` drains the org rollups' pending deltas.
pub const ORG_DRAIN_INTERVAL_S: u64 = 5;

/// Counters of the org-rollup drain loop, rendered in the Prometheus text
/// format by the `/metrics` endpoint.
#[derive(Debug, Default)]
pub struct OrgDrainMetrics {
    drains_total: AtomicU64,
    drained_rows_total: AtomicU64,
    failures_total: AtomicU64,
    drain_micros_total: AtomicU64,
}

/// The process's drain counters (one drain loop per process).
pub static ORG_DRAIN_METRICS: OrgDrainMetrics = OrgDrainMetrics {
    drains_total: AtomicU64::new(0),
    drained_rows_total: AtomicU64::new(0),
    failures_total: AtomicU64::new(0),
    drain_micros_total: AtomicU64::new(0),
};

impl OrgDrainMetrics {
    fn observe(&self, outcome: &Result<u64, DbError>, elapsed: std::time::Duration) {
        self.drains_total.fetch_add(1, Ordering::Relaxed);
        self.drain_micros_total.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        match outcome {
            Ok(rows) => self.drained_rows_total.fetch_add(*rows, Ordering::Relaxed),
            Err(_) => self.failures_total.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, help, value) in [
            ("canopy_aggregator_org_rollup_drains_total", "Org rollup drain runs.", get(&self.drains_total).to_string()),
            (
                "canopy_aggregator_org_rollup_drained_rows_total",
                "Pending org rollup deltas moved into the org rollups.",
                get(&self.drained_rows_total).to_string(),
            ),
            (
                "canopy_aggregator_org_rollup_drain_failures_total",
                "Org rollup drain runs that failed (retried next tick).",
                get(&self.failures_total).to_string(),
            ),
            (
                "canopy_aggregator_org_rollup_drain_seconds_total",
                "Time spent draining org rollup deltas.",
                format!("{:.6}", get(&self.drain_micros_total) as f64 / 1e6),
            ),
            (
                "canopy_aggregator_org_rollup_pending_set_aside_total",
                "Pending org rollup deltas moved to org_rollup_pending_rejected (not finite or beyond 1e15).",
                get(&PENDING_SET_ASIDE_TOTAL).to_string(),
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        }
        out
    }
}

/// Drains the org rollups every [`ORG_DRAIN_INTERVAL_S`] seconds, forever
/// (spawned by `serve`). Failures are logged and retried on the next tick.
pub async fn drain_org_rollups_forever(pool: PgPool) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(ORG_DRAIN_INTERVAL_S));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        let outcome = drain_org_rollups(&pool).await;
        ORG_DRAIN_METRICS.observe(&outcome, started.elapsed());
        match outcome {
            Ok(moved) => tracing::debug!(moved, "drained org rollup deltas"),
            Err(e) => tracing::warn!(error = %e, "draining org rollup deltas failed; retrying next tick"),
        }
    }
}

/// Days of 5-minute partitions and months of monthly partitions created ahead.
const DAYS_AHEAD: i64 = 7;
const MONTHS_AHEAD: i64 = 2;

/// Creates partitions ahead (the past 5-minute retention window, the current
/// and next months) and applies `policy` at `now_unix_s`.
pub async fn run(pool: &PgPool, policy: &RetentionPolicy, now_unix_s: i64) -> Result<MaintenanceReport, DbError> {
    let mut report = MaintenanceReport::default();
    (report.quarantine_rows_deleted, report.batch_log_rows_deleted) = prune_logs(pool, now_unix_s).await?;
    report.coarsened_hours_deleted = prune_coarsened_hours(pool, policy.accept_horizon_unix_s(now_unix_s)).await?;
    if db::storage_mode(pool).await? != StorageMode::Native {
        // TimescaleDB: retention is its policies'; late data is refreshed here.
        crate::timescale::refresh_pending(pool).await?;
        return Ok(report);
    }
    report.partitions_created = create_ahead(pool, policy, now_unix_s).await?;
    // Drain first, so no pending delta needs a partition dropped below.
    report.org_rows_drained = drain_org_rollups(pool).await?;
    // Raise the stored retention horizons before dropping anything: answers
    // in flight finish first, later ones no longer read what goes below.
    crate::query::horizons::publish(pool, &crate::query::Horizons::of_policy(policy, now_unix_s)).await?;
    let five_min_cutoff = policy.five_minute_horizon_unix_s(now_unix_s);
    let hourly_cutoff = policy.hourly_cutoff_unix_s(now_unix_s);
    let facts_cutoff = policy.facts_cutoff_unix_s(now_unix_s);
    for (table, unit, cutoff) in [
        ("rollup_5m", Unit::Day, five_min_cutoff),
        ("org_rollup_5m", Unit::Day, five_min_cutoff),
        ("realtime_group_facts", Unit::Day, five_min_cutoff),
        ("rollup_hourly", Unit::Month, hourly_cutoff),
        ("org_rollup_hourly", Unit::Month, hourly_cutoff),
    ] {
        report.partitions_dropped.extend(drop_expired(pool, table, unit, cutoff).await?);
    }
    for table in ["emission_facts", "emission_fact_segments"] {
        report.partitions_dropped.extend(drop_expired(pool, table, Unit::Month, facts_cutoff).await?);
    }
    if let Some(cutoff) = policy.daily_cutoff_unix_s(now_unix_s) {
        report.daily_rows_deleted = delete_expired_daily(pool, cutoff).await?;
    }
    if !report.partitions_dropped.is_empty() {
        tracing::info!(dropped = ?report.partitions_dropped, "retention dropped expired partitions");
    }
    Ok(report)
}

/// The daily and monthly rollups, account-level, org, team and per resource
/// (migration 0029): every table `--retain-daily-months` applies to, so
/// queries at every grain keep agreeing.
const DAILY_TABLES: [&str; 7] = [
    "rollup_daily",
    "resource_rollup_daily",
    "rollup_monthly",
    "org_rollup_daily",
    "org_rollup_monthly",
    "org_team_rollup_daily",
    "org_team_rollup_monthly",
];

/// Deletes the daily and monthly rollup rows before `cutoff_unix_s` in one
/// transaction holding the retention lock: pending org deltas are drained
/// first, in the same transaction, so none older than the cutoff is moved
/// into the org or team rollups afterwards. Returns the rows deleted.
async fn delete_expired_daily(pool: &PgPool, cutoff_unix_s: i64) -> Result<u64, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({RETENTION_LOCK_SQL})")).execute(&mut *tx).await?;
    set_aside_unsummable_pending(&mut tx).await?;
    sqlx::query("SELECT canopy_drain_org_rollups()").execute(&mut *tx).await?;
    let mut deleted = 0;
    for table in DAILY_TABLES {
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE bucket_start < to_timestamp($1::bigint)"))
            .bind(cutoff_unix_s)
            .execute(&mut *tx)
            .await?;
        deleted += done.rows_affected();
    }
    tx.commit().await?;
    Ok(deleted)
}

async fn create_ahead(pool: &PgPool, policy: &RetentionPolicy, now_unix_s: i64) -> Result<u64, DbError> {
    let today = floor_to(now_unix_s, DAY_S);
    let first_day = policy.five_minute_horizon_unix_s(now_unix_s);
    let days: Vec<i64> = (0..)
        .map(|i| first_day + i * DAY_S)
        .take_while(|d| *d <= today + DAYS_AHEAD * DAY_S)
        .collect();
    let months: Vec<i64> = (0..=MONTHS_AHEAD).map(|m| month_start_shifted(now_unix_s, m)).collect();
    let created: i32 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FILTER (WHERE canopy_ensure_partition('rollup_5m', 'day', to_timestamp(d)))
                 FROM unnest($1::bigint[]) d)::int
              + (SELECT count(*) FILTER (WHERE canopy_ensure_partition('rollup_hourly', 'month', to_timestamp(m)))
                 FROM unnest($2::bigint[]) m)::int
              + (SELECT count(*) FILTER (WHERE canopy_ensure_partition('emission_facts', 'month', to_timestamp(m)))
                 FROM unnest($2::bigint[]) m)::int
              + (SELECT count(*) FILTER (WHERE canopy_ensure_partition('emission_fact_segments', 'month', to_timestamp(m)))
                 FROM unnest($2::bigint[]) m)::int
              + (SELECT count(*) FILTER (WHERE canopy_ensure_partition('org_rollup_5m', 'day', to_timestamp(d)))
                 FROM unnest($1::bigint[]) d)::int
              + (SELECT count(*) FILTER (WHERE canopy_ensure_partition('realtime_group_facts', 'day', to_timestamp(d)))
                 FROM unnest($1::bigint[]) d)::int
              + (SELECT count(*) FILTER (WHERE canopy_ensure_partition('org_rollup_hourly', 'month', to_timestamp(m)))
                 FROM unnest($2::bigint[]) m)::int",
    )
    .bind(days)
    .bind(months)
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(created).unwrap_or(0))
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Day,
    Month,
}

/// Upper bound (exclusive) of the partition named `<parent>_pYYYYMMDD`.
fn partition_end_unix_s(parent: &str, child: &str, unit: Unit) -> Option<i64> {
    let suffix = child.strip_prefix(parent)?.strip_prefix("_p")?;
    let start = parse_yyyymmdd(suffix)?;
    Some(match unit {
        Unit::Day => start + DAY_S,
        Unit::Month => month_start_shifted(start, 1),
    })
}

/// Drops the partitions of `parent` whose whole range ends at or before
/// `cutoff_unix_s`, each in its own transaction holding the retention lock
/// exclusively (so it waits for the ingest transactions in progress, and
/// blocks new ones only for the time of one drop).
async fn drop_expired(pool: &PgPool, parent: &str, unit: Unit, cutoff_unix_s: i64) -> Result<Vec<String>, DbError> {
    let children: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = to_regclass($1) ORDER BY 1",
    )
    .bind(parent)
    .fetch_all(pool)
    .await?;
    let mut dropped = Vec::new();
    for child in children {
        let Some(end) = partition_end_unix_s(parent, &child, unit) else { continue };
        if end <= cutoff_unix_s {
            // The name comes from the catalogue and matched `<parent>_pYYYYMMDD`;
            // it is quoted as an identifier all the same.
            let statement = format!("DROP TABLE IF EXISTS \"{}\"", child.replace('"', "\"\""));
            let mut tx = pool.begin().await?;
            sqlx::query(&format!("SELECT pg_advisory_xact_lock({RETENTION_LOCK_SQL})")).execute(&mut *tx).await?;
            sqlx::query(&statement).execute(&mut *tx).await?;
            tx.commit().await?;
            dropped.push(child);
        }
    }
    Ok(dropped)
}

/// Partition name for `parent` starting at `start_unix_s` (exposed for tests
/// and operators' scripts).
pub fn partition_name(parent: &str, start_unix_s: i64) -> String {
    format!("{parent}_p{}", yyyymmdd(start_unix_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_ends_follow_their_unit() {
        // 2026-02-01 = 20_485 days; March 1st is 28 days later (2026 is not a leap year).
        assert_eq!(partition_end_unix_s("rollup_5m", "rollup_5m_p20260201", Unit::Day), Some((20_485 + 1) * DAY_S));
        assert_eq!(
            partition_end_unix_s("emission_facts", "emission_facts_p20260201", Unit::Month),
            Some((20_485 + 28) * DAY_S)
        );
        assert_eq!(partition_end_unix_s("rollup_5m", "rollup_hourly_p20260201", Unit::Day), None);
        assert_eq!(partition_name("rollup_5m", 20_485 * DAY_S + 5), "rollup_5m_p20260201");
    }

    #[test]
    fn drain_counters_render_as_prometheus_counters() {
        let m = OrgDrainMetrics::default();
        m.observe(&Ok(12), std::time::Duration::from_millis(250));
        m.observe(&Err(DbError::Sql(sqlx::Error::PoolTimedOut)), std::time::Duration::from_millis(50));
        let text = m.render();
        assert!(text.contains("canopy_aggregator_org_rollup_drains_total 2\n"), "{text}");
        assert!(text.contains("canopy_aggregator_org_rollup_drained_rows_total 12\n"), "{text}");
        assert!(text.contains("canopy_aggregator_org_rollup_drain_failures_total 1\n"), "{text}");
        assert!(text.contains("canopy_aggregator_org_rollup_drain_seconds_total 0.300000\n"), "{text}");
        assert!(text.contains("# TYPE canopy_aggregator_org_rollup_drains_total counter"), "{text}");
    }

    #[test]
    fn five_minute_horizon_is_35_whole_days_back() {
        let now = 20_485 * DAY_S + 3_600;
        assert_eq!(RetentionPolicy::default().five_minute_horizon_unix_s(now), (20_485 - 35) * DAY_S);
    }
}
