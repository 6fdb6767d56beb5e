//! TimescaleDB path only: brings late data into the continuous aggregates.
//!
//! The 5-minute continuous aggregate's policy refreshes only the last 35
//! days, and the hourly, daily and monthly aggregates are built on it, so
//! facts older than that (ingest accepts them) never reached any rollup.
//! Ingest queues the UTC days of such facts in `timescale_refresh_pending`
//! (migration 0016) in the batch's transaction; [`refresh_pending`] refreshes
//! the aggregates over those whole days, lowest level first, with
//! `force => true` (the 5-minute aggregate's older chunks were dropped by
//! its retention, so only a forced refresh of the whole day rebuilds the
//! hours the day's other facts make; a refresh of the invalidated range
//! alone would rebuild an hour from a partial set of 5-minute buckets).
//! `serve` runs it every [`REFRESH_INTERVAL_S`] seconds, `maintain` once.
//! Facts newer than the window reach the aggregates through their policies.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use crate::db::DbError;
use crate::time::{DAY_S, month_start_shifted};

/// Facts older than this many seconds before the database's `now()` are
/// queued for a refresh: the 5-minute policy's window is 35 days, and a
/// day of margin covers a policy run that comes after the fact has aged
/// out of it.
pub const LATE_AFTER_S: i64 = 34 * DAY_S;

/// How often `serve` refreshes the queued days.
pub const REFRESH_INTERVAL_S: u64 = 10;

/// The continuous aggregates in refresh order (each reads the one before;
/// the per-resource daily one of migration 0029 reads the facts).
const DAY_LEVELS: [&str; 4] = ["rollup_5m", "rollup_hourly", "rollup_daily", "resource_rollup_daily"];

/// The SQL ingest runs in the batch's transaction (TimescaleDB path): queues
/// the UTC days of the facts starting at `$1` (Unix seconds) that are older
/// than [`LATE_AFTER_S`].
pub(crate) const QUEUE_LATE_DAYS_SQL: &str = "INSERT INTO timescale_refresh_pending (day_start)
     SELECT DISTINCT to_timestamp(s - s % 86400) FROM unnest($1::bigint[]) AS s
     WHERE s < extract(epoch FROM now())::bigint - $2";

/// What one [`refresh_pending`] run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    /// Distinct UTC days refreshed (Unix seconds of their start, ascending).
    pub days: Vec<i64>,
}

/// Refreshes the continuous aggregates over every queued day and removes
/// the queue rows it handled. A no-op on the native path (the queue stays
/// empty there).
pub async fn refresh_pending(pool: &PgPool) -> Result<RefreshReport, DbError> {
    // One refresher at a time (serve's loop, maintain, other replicas): a
    // session lock on one connection, released however the run ends.
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtext('canopy_timescale_refresh'))").execute(&mut *conn).await?;
    let result = refresh_locked(&mut conn).await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext('canopy_timescale_refresh'))").execute(&mut *conn).await?;
    result
}

async fn refresh_locked(conn: &mut PoolConnection<Postgres>) -> Result<RefreshReport, DbError> {
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, extract(epoch FROM day_start)::bigint FROM timescale_refresh_pending ORDER BY id")
            .fetch_all(&mut **conn)
            .await?;
    if rows.is_empty() {
        return Ok(RefreshReport::default());
    }
    let mut days: Vec<i64> = rows.iter().map(|r| r.1).collect();
    days.sort_unstable();
    days.dedup();
    for (lo, hi) in ranges(&days) {
        // refresh_continuous_aggregate refuses to run in a transaction
        // block, so each is its own statement, outside any transaction.
        for level in DAY_LEVELS {
            refresh(conn, level, lo, hi).await?;
        }
        refresh(conn, "rollup_monthly", month_start_shifted(lo, 0), month_start_shifted(hi - 1, 1)).await?;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    sqlx::query("DELETE FROM timescale_refresh_pending WHERE id = ANY($1)").bind(ids).execute(&mut **conn).await?;
    tracing::info!(days = days.len(), first_day = days[0], "refreshed continuous aggregates over late data");
    Ok(RefreshReport { days })
}

/// Contiguous [start, end) ranges of the sorted, distinct day starts.
fn ranges(days: &[i64]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &d in days {
        match out.last_mut() {
            Some(last) if last.1 == d => last.1 = d + DAY_S,
            _ => out.push((d, d + DAY_S)),
        }
    }
    out
}

async fn refresh(conn: &mut PoolConnection<Postgres>, aggregate: &str, lo: i64, hi: i64) -> Result<(), DbError> {
    // `aggregate` is one of the fixed names above; lo and hi are integers.
    // One batch for the whole window: by default the extension refreshes
    // ten buckets per transaction, which took 1.4 s for three days of the
    // 5-minute aggregate with a few thousand facts (one batch: 50 ms).
    let sql = format!(
        "CALL refresh_continuous_aggregate('{aggregate}', to_timestamp({lo}), to_timestamp({hi}), force => true, \
         options => '{{\"buckets_per_batch\": 0}}')"
    );
    sqlx::query(&sql).persistent(false).execute(&mut **conn).await?;
    Ok(())
}

/// Counters of the refresh loop, rendered by the `/metrics` endpoint.
#[derive(Debug, Default)]
pub struct RefreshMetrics {
    runs_total: AtomicU64,
    days_total: AtomicU64,
    failures_total: AtomicU64,
}

/// The process's refresh counters (one loop per process).
pub static REFRESH_METRICS: RefreshMetrics =
    RefreshMetrics { runs_total: AtomicU64::new(0), days_total: AtomicU64::new(0), failures_total: AtomicU64::new(0) };

impl RefreshMetrics {
    fn observe(&self, outcome: &Result<RefreshReport, DbError>) {
        self.runs_total.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(r) => self.days_total.fetch_add(r.days.len() as u64, Ordering::Relaxed),
            Err(_) => self.failures_total.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, help, value) in [
            (
                "canopy_aggregator_late_refresh_runs_total",
                "Late-data refresh runs (TimescaleDB path).",
                get(&self.runs_total),
            ),
            (
                "canopy_aggregator_late_refresh_days_total",
                "UTC days of late data refreshed into the continuous aggregates.",
                get(&self.days_total),
            ),
            (
                "canopy_aggregator_late_refresh_failures_total",
                "Late-data refresh runs that failed (retried next tick).",
                get(&self.failures_total),
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        }
        out
    }
}

/// Runs [`refresh_pending`] every [`REFRESH_INTERVAL_S`] seconds, forever
/// (spawned by `serve` on the TimescaleDB path). Failures are logged and
/// retried on the next tick; the queue keeps the days until they succeed.
pub async fn refresh_pending_forever(pool: PgPool) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(REFRESH_INTERVAL_S));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let outcome = refresh_pending(&pool).await;
        REFRESH_METRICS.observe(&outcome);
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "refreshing late data into the continuous aggregates failed; retrying next tick");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_days_coalesce_into_contiguous_ranges() {
        let d = DAY_S;
        assert_eq!(ranges(&[0, d, 2 * d, 5 * d, 7 * d, 8 * d]), vec![(0, 3 * d), (5 * d, 6 * d), (7 * d, 9 * d)]);
        assert_eq!(ranges(&[]), vec![]);
    }

    #[test]
    fn counters_render_as_prometheus_counters() {
        let m = RefreshMetrics::default();
        m.observe(&Ok(RefreshReport { days: vec![0, DAY_S] }));
        m.observe(&Err(DbError::UnknownStorageMode("x".into())));
        let text = m.render();
        assert!(text.contains("canopy_aggregator_late_refresh_runs_total 2\n"), "{text}");
        assert!(text.contains("canopy_aggregator_late_refresh_days_total 2\n"), "{text}");
        assert!(text.contains("canopy_aggregator_late_refresh_failures_total 1\n"), "{text}");
    }
}
