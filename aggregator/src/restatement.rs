//! Restatement instead of overwrite (issue 14, section 3): when an import
//! adds a version of a factor set ([`crate::factors`]), the stored facts it
//! prices differently are repriced with the newest versions, and every
//! rollup level (account, team, org; both storage paths) follows, with a
//! record of what changed (migration 0026).
//!
//! The import creates the `restatements` row (state `running`) in its own
//! transaction, so a restatement is never lost. [`run_pending`] then plans
//! it (one transaction: the (account, region, UTC day) chunks holding facts
//! in the new version's zones/regions and hours/years, and each touched
//! account-month's totals before) and restates chunk by chunk, one short
//! transaction each: it takes ingest's (account, region) advisory lock (the
//! only one of ingest's locks it needs, so no order can deadlock), reads the
//! chunk's facts, reprices them ([`crate::factors::apply`]) and writes back
//! the changed ones through ingest's own writers with the equal-revision
//! replacement on, which corrects the rollups by the difference (native) or
//! queues the day for the late-data refresh ([`crate::timescale`]). A
//! chunk is marked done in its transaction, so a crash resumes where it
//! stopped. Last, the chunks' changes are summed per account-month
//! (after = before + the restatement's change) and the state set `done`.
//!
//! This module must never change a fact's energy, embodied part, revision
//! or key, never hold a lock across chunks, and never write a chunk without
//! its scope's advisory lock.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::db::{self, StorageMode};
use crate::model::{Accounting, FactRow, Quality};

/// The `agent_id` restated facts are stored under (native segments), with
/// the restatement's id as the batch sequence.
pub const RESTATEMENT_AGENT_ID: &str = "canopy-restatement";

/// How often `serve` looks for restatements to run.
pub const RUN_INTERVAL_S: u64 = 30;

/// Errors of the restatement loop.
#[derive(Debug, thiserror::Error)]
pub enum RestatementError {
    /// A statement failed; the chunk's transaction was rolled back and the
    /// next run retries it.
    #[error("restatement {id}: database: {source}")]
    Sql {
        /// The restatement.
        id: i64,
        /// The error.
        source: sqlx::Error,
    },
    /// Writing a chunk failed.
    #[error("restatement {id}: {source}")]
    Store {
        /// The restatement.
        id: i64,
        /// The error.
        source: crate::ingest::StoreError,
    },
}

fn sql(id: i64) -> impl Fn(sqlx::Error) -> RestatementError {
    move |source| RestatementError::Sql { id, source }
}

/// Records that version `new_version` of `factor_set` may restate stored
/// periods, in the import's transaction.
pub async fn record_import(
    tx: &mut Transaction<'_, Postgres>,
    factor_set: &str,
    new_version: i32,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO restatements (factor_set, old_version, new_version) VALUES ($1, $2 - 1, $2) RETURNING id",
    )
    .bind(factor_set)
    .bind(new_version)
    .fetch_one(&mut **tx)
    .await
}

/// What one restatement did in one [`run_pending`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    /// The restatement.
    pub id: i64,
    /// Chunks restated in this call.
    pub chunks: u64,
    /// Facts changed in this call.
    pub facts_changed: u64,
    /// True when it is done.
    pub done: bool,
}

/// Runs every restatement in state `running`, oldest first, to the end
/// (or, with `max_chunks`, stops after that many chunks in all: a test's
/// crash). One runner at a time (a session advisory lock).
pub async fn run_pending(pool: &PgPool, max_chunks: Option<u64>) -> Result<Vec<RunReport>, RestatementError> {
    let mut conn = pool.acquire().await.map_err(sql(0))?;
    sqlx::query("SELECT pg_advisory_lock(hashtext('canopy_restatement'))").execute(&mut *conn).await.map_err(sql(0))?;
    let result = run_locked(pool, max_chunks).await;
    sqlx::query("SELECT pg_advisory_unlock(hashtext('canopy_restatement'))").execute(&mut *conn).await.map_err(sql(0))?;
    METRICS.runs_total.fetch_add(1, Ordering::Relaxed);
    if result.is_err() {
        METRICS.failures_total.fetch_add(1, Ordering::Relaxed);
    }
    result
}

async fn run_locked(pool: &PgPool, max_chunks: Option<u64>) -> Result<Vec<RunReport>, RestatementError> {
    let running: Vec<(i64, String, i32, bool)> = sqlx::query_as(
        "SELECT id, factor_set, new_version, planned FROM restatements WHERE state = 'running' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .map_err(sql(0))?;
    let mut budget = max_chunks;
    let mut reports = Vec::new();
    for (id, set, version, planned) in running {
        if !planned {
            plan(pool, id, &set, version).await?;
        }
        let mut report = RunReport { id, chunks: 0, facts_changed: 0, done: false };
        // The chunks not done, a page at a time in primary-key order (keyset:
        // each page starts after the last chunk seen, through the index).
        let mut after: (String, String, Option<i64>) = (String::new(), String::new(), None);
        loop {
            let page: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT account_id, region, extract(epoch FROM day_start)::bigint FROM restatement_chunks
                 WHERE restatement_id = $1 AND NOT done
                   AND ($4::bigint IS NULL OR (account_id, region, day_start) > ($2, $3, to_timestamp($4)))
                 ORDER BY account_id, region, day_start LIMIT 500",
            )
            .bind(id)
            .bind(&after.0)
            .bind(&after.1)
            .bind(after.2)
            .fetch_all(pool)
            .await
            .map_err(sql(id))?;
            let Some(last) = page.last().cloned() else { break };
            for (account_id, region, day_start_unix_s) in page {
                if budget == Some(0) {
                    reports.push(report);
                    return Ok(reports);
                }
                let changed = restate_chunk(pool, id, &account_id, &region, day_start_unix_s).await?;
                report.chunks += 1;
                report.facts_changed += changed;
                METRICS.chunks_total.fetch_add(1, Ordering::Relaxed);
                METRICS.facts_total.fetch_add(changed, Ordering::Relaxed);
                budget = budget.map(|b| b - 1);
            }
            after = (last.0, last.1, Some(last.2));
        }
        finish(pool, id).await?;
        report.done = true;
        tracing::info!(id, factor_set = %set, version, chunks = report.chunks, facts = report.facts_changed, "restatement done");
        reports.push(report);
    }
    Ok(reports)
}

/// Plans restatement `id`: its chunks and the before totals of the
/// account-months they lie in, in one transaction.
async fn plan(pool: &PgPool, id: i64, set: &str, version: i32) -> Result<(), RestatementError> {
    // (region, from, to) ranges the new version covers.
    let mut regions: Vec<String> = Vec::new();
    let mut froms: Vec<i64> = Vec::new();
    let mut tos: Vec<i64> = Vec::new();
    if set == "location-hourly" {
        let zones: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT zone, extract(epoch FROM min(hour_start))::bigint, extract(epoch FROM max(hour_start))::bigint + 3600
             FROM hourly_intensity WHERE version = $1 GROUP BY zone ORDER BY zone",
        )
        .bind(version)
        .fetch_all(pool)
        .await
        .map_err(sql(id))?;
        for (zone, from, to) in zones {
            for region in canopy_emissions::grid::regions_for_zone(&zone) {
                regions.push(region.to_owned());
                froms.push(from);
                tos.push(to);
            }
        }
    } else {
        let years: Vec<(String, i32)> =
            sqlx::query_as("SELECT region, year FROM market_factors WHERE version = $1 ORDER BY region, year")
                .bind(version)
                .fetch_all(pool)
                .await
                .map_err(sql(id))?;
        for (region, year) in years {
            let year_start = |y: i32| crate::time::days_from_civil(i64::from(y), 1, 1) * crate::time::DAY_S;
            regions.push(region);
            froms.push(year_start(year));
            tos.push(year_start(year + 1));
        }
    }
    let mut tx = pool.begin().await.map_err(sql(id))?;
    let chunks = sqlx::query(
        "INSERT INTO restatement_chunks (restatement_id, account_id, region, day_start)
         SELECT DISTINCT $1::bigint, f.account_id, f.region, date_bin(interval '1 day', f.period_start, timestamptz 'epoch')
         FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS r(region, from_s, to_s)
         JOIN emission_facts_all_parts f
           ON f.region = r.region AND f.period_start >= to_timestamp(r.from_s) AND f.period_start < to_timestamp(r.to_s)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&regions)
    .bind(&froms)
    .bind(&tos)
    .execute(&mut *tx)
    .await
    .map_err(sql(id))?
    .rows_affected();
    sqlx::query(
        "WITH m AS (
            SELECT DISTINCT account_id, date_trunc('month', day_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month_start
            FROM restatement_chunks WHERE restatement_id = $1
         )
         INSERT INTO restatement_months (restatement_id, account_id, month_start, before_location_g_co2e, before_market_g_co2e)
         SELECT $1, m.account_id, m.month_start, COALESCE(sum(f.location_g_co2e), 0), COALESCE(sum(f.market_g_co2e), 0)
         FROM m LEFT JOIN emission_facts_all_parts f
           ON f.account_id = m.account_id AND f.period_start >= m.month_start
          AND f.period_start < m.month_start + interval '1 month'
         GROUP BY m.account_id, m.month_start",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(sql(id))?;
    sqlx::query("UPDATE restatements SET planned = true, chunks_total = $2 WHERE id = $1")
        .bind(id)
        .bind(i32::try_from(chunks).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await
        .map_err(sql(id))?;
    tx.commit().await.map_err(sql(id))?;
    tracing::info!(id, factor_set = set, version, chunks, "restatement planned");
    Ok(())
}

/// The columns [`restate_chunk`] reads, in [`fact_from_row`]'s order.
const FACT_COLUMNS: &str = "record_key, revision, extract(epoch FROM period_start)::bigint AS start_unix_s, period_s,
    account_id, region, resource_id, resource_type, service, team, quality, energy_kwh, location_g_co2e,
    market_g_co2e, low_g_co2e, high_g_co2e, methodology_version, factor_source, factor_vintage";

fn fact_from_row(row: &sqlx::postgres::PgRow) -> Result<FactRow, sqlx::Error> {
    let quality: String = row.try_get("quality")?;
    let revision: i64 = row.try_get("revision")?;
    let period_s: i32 = row.try_get("period_s")?;
    let mut parts = [0.0; crate::accounting::MEASURES - crate::accounting::FIRST_PART];
    for (value, column) in parts.iter_mut().zip(&crate::accounting::MEASURE_COLUMNS[crate::accounting::FIRST_PART..]) {
        *value = row.try_get(*column)?;
    }
    Ok(FactRow {
        record_key: row.try_get("record_key")?,
        revision: u32::try_from(revision).unwrap_or(u32::MAX),
        period_start_unix_s: row.try_get("start_unix_s")?,
        period_s: u32::try_from(period_s).unwrap_or(0),
        account_id: row.try_get("account_id")?,
        region: row.try_get("region")?,
        resource_id: row.try_get("resource_id")?,
        resource_type: row.try_get("resource_type")?,
        service: row.try_get("service")?,
        team: Some(row.try_get("team")?),
        tags: None,
        realtime: false,
        quality: Quality::parse(&quality).unwrap_or(Quality::Default),
        energy_kwh: row.try_get("energy_kwh")?,
        location_g_co2e: row.try_get("location_g_co2e")?,
        market_g_co2e: row.try_get("market_g_co2e")?,
        low_g_co2e: row.try_get("low_g_co2e")?,
        high_g_co2e: row.try_get("high_g_co2e")?,
        methodology_version: row.try_get("methodology_version")?,
        factor_source: row.try_get("factor_source")?,
        factor_vintage: row.try_get("factor_vintage")?,
        accounting: Some(Accounting {
            parts: crate::accounting::FactParts::from_values(parts),
            market_factor_source: String::new(),
            market_factor_vintage: String::new(),
        }),
    })
}

/// True when repricing changed a stored figure or its location lineage.
fn changed(before: &FactRow, after: &FactRow) -> bool {
    before.location_g_co2e != after.location_g_co2e
        || before.market_g_co2e != after.market_g_co2e
        || before.low_g_co2e != after.low_g_co2e
        || before.high_g_co2e != after.high_g_co2e
        || before.parts().values() != after.parts().values()
        || before.factor_source != after.factor_source
        || before.factor_vintage != after.factor_vintage
}

/// Restates one (account, region, UTC day) in one transaction; returns how
/// many facts changed.
async fn restate_chunk(
    pool: &PgPool,
    id: i64,
    account_id: &str,
    region: &str,
    day_start_unix_s: i64,
) -> Result<u64, RestatementError> {
    let mut tx = pool.begin().await.map_err(sql(id))?;
    // The factor-set lock first, as ingest takes it (crate::factors::FACTORS_LOCK_SQL).
    sqlx::query(&format!("SELECT pg_advisory_xact_lock_shared({})", crate::factors::FACTORS_LOCK_SQL))
        .execute(&mut *tx)
        .await
        .map_err(sql(id))?;
    // Ingest's lock of this scope (crate::ingest::begin_batch), then the settings.
    let settings = sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))::text AS locked, storage_mode, team_tag_key
         FROM canopy_settings",
    )
    .bind(format!("canopy_scope:{account_id}/{region}"))
    .fetch_one(&mut *tx)
    .await
    .map_err(sql(id))?;
    let mode = db::parse_storage_mode(settings.try_get("storage_mode").map_err(sql(id))?)
        .map_err(|e| RestatementError::Store { id, source: e.into() })?;
    let team_tag_key: String = settings.try_get("team_tag_key").map_err(sql(id))?;
    let parts = crate::accounting::MEASURE_COLUMNS[crate::accounting::FIRST_PART..].join(", ");
    let rows = sqlx::query(&format!(
        "SELECT {FACT_COLUMNS}, {parts} FROM emission_facts_all_parts
         WHERE account_id = $1 AND region = $2 AND period_start >= to_timestamp($3) AND period_start < to_timestamp($3 + 86400)
         ORDER BY period_start, record_key"
    ))
    .bind(account_id)
    .bind(region)
    .bind(day_start_unix_s)
    .fetch_all(&mut *tx)
    .await
    .map_err(sql(id))?;
    let before: Vec<FactRow> = rows.iter().map(fact_from_row).collect::<Result<_, _>>().map_err(sql(id))?;
    let mut after = before.clone();
    crate::factors::apply(&mut tx, &mut after).await.map_err(sql(id))?;
    let mut delta_location = 0.0;
    let mut delta_market = 0.0;
    let mut written: Vec<FactRow> = Vec::new();
    for (b, a) in before.iter().zip(after) {
        if changed(b, &a) {
            delta_location += a.location_g_co2e - b.location_g_co2e;
            delta_market += a.market_g_co2e - b.market_g_co2e;
            written.push(a);
        }
    }
    if !written.is_empty() {
        // Sorted by (start, account, region, key) as both writers expect.
        let refs = crate::ingest::highest_revision_per_key(&written.iter().collect::<Vec<_>>());
        if mode == StorageMode::Native {
            crate::fact_segments::write(&mut tx, &refs, RESTATEMENT_AGENT_ID, id, &team_tag_key, true)
                .await
                .map_err(|source| RestatementError::Store { id, source })?;
        } else {
            crate::ingest::bind_facts(sqlx::query(crate::ingest::RESTATE_FACTS_SQL.as_str()), &refs, RESTATEMENT_AGENT_ID, id)
                .execute(&mut *tx)
                .await
                .map_err(sql(id))?;
            // Every touched day goes through the late-data refresh, whatever its age.
            sqlx::query(crate::timescale::QUEUE_LATE_DAYS_SQL)
                .bind(vec![day_start_unix_s])
                .bind(0_i64)
                .execute(&mut *tx)
                .await
                .map_err(sql(id))?;
        }
        crate::lineage::record(&mut tx, &written).await.map_err(sql(id))?;
    }
    sqlx::query(
        "UPDATE restatement_chunks SET done = true, facts_changed = $5, delta_location_g_co2e = $6, delta_market_g_co2e = $7
         WHERE restatement_id = $1 AND account_id = $2 AND region = $3 AND day_start = to_timestamp($4)",
    )
    .bind(id)
    .bind(account_id)
    .bind(region)
    .bind(day_start_unix_s)
    .bind(i32::try_from(written.len()).unwrap_or(i32::MAX))
    .bind(delta_location)
    .bind(delta_market)
    .execute(&mut *tx)
    .await
    .map_err(sql(id))?;
    tx.commit().await.map_err(sql(id))?;
    tracing::debug!(id, account_id, region, day_start_unix_s, facts = written.len(), "restated a chunk");
    Ok(written.len() as u64)
}

/// Sums the chunks into the months, drops months nothing changed in, and
/// marks the restatement done.
async fn finish(pool: &PgPool, id: i64) -> Result<(), RestatementError> {
    let mut tx = pool.begin().await.map_err(sql(id))?;
    sqlx::query(
        "WITH c AS (
            SELECT account_id, date_trunc('month', day_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS month_start,
                   sum(facts_changed) AS facts, sum(delta_location_g_co2e) AS dl, sum(delta_market_g_co2e) AS dm
            FROM restatement_chunks WHERE restatement_id = $1 GROUP BY 1, 2
         ),
         upd AS (
            UPDATE restatement_months m SET delta_location_g_co2e = c.dl, delta_market_g_co2e = c.dm
            FROM c WHERE m.restatement_id = $1 AND m.account_id = c.account_id AND m.month_start = c.month_start
         )
         DELETE FROM restatement_months m USING c
         WHERE m.restatement_id = $1 AND m.account_id = c.account_id AND m.month_start = c.month_start AND c.facts = 0",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(sql(id))?;
    sqlx::query(
        "UPDATE restatements SET state = 'done', finished_at = now(),
                facts_restated = (SELECT COALESCE(sum(facts_changed), 0) FROM restatement_chunks WHERE restatement_id = $1)
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(sql(id))?;
    tx.commit().await.map_err(sql(id))?;
    Ok(())
}

/// One account-month of a restatement, grams.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthTotals {
    /// Account.
    pub account_id: String,
    /// UTC month start, Unix seconds.
    pub month_start_unix_s: i64,
    /// Location-based CO2e before and after.
    pub before_location_g_co2e: f64,
    /// Market-based CO2e before.
    pub before_market_g_co2e: f64,
    /// Location-based CO2e after.
    pub after_location_g_co2e: f64,
    /// Market-based CO2e after.
    pub after_market_g_co2e: f64,
}

/// A restatement as listed by `GET /v1/restatements`.
#[derive(Debug, Clone, PartialEq)]
pub struct Restatement {
    /// Id.
    pub id: i64,
    /// The factor set whose new version caused it.
    pub factor_set: String,
    /// The version before (0: none).
    pub old_version: i32,
    /// The new version.
    pub new_version: i32,
    /// `running` or `done`.
    pub state: String,
    /// When the import created it, Unix seconds.
    pub created_unix_s: i64,
    /// When it finished, Unix seconds.
    pub finished_unix_s: Option<i64>,
    /// Facts restated.
    pub facts_restated: i64,
    /// UTC days (start, Unix seconds) where facts changed, ascending.
    pub days_unix_s: Vec<i64>,
    /// Totals before and after per account and month touched (done only).
    pub months: Vec<MonthTotals>,
}

/// The newest `limit` restatements, newest first.
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<Restatement>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, factor_set, old_version, new_version, state, extract(epoch FROM created_at)::bigint AS created,
                extract(epoch FROM finished_at)::bigint AS finished, facts_restated,
                ARRAY(SELECT DISTINCT extract(epoch FROM day_start)::bigint FROM restatement_chunks c
                      WHERE c.restatement_id = r.id AND c.facts_changed > 0 ORDER BY 1) AS days
         FROM restatements r ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let state: String = r.try_get("state")?;
        let months: Vec<(String, i64, f64, f64, f64, f64)> = if state == "done" {
            sqlx::query_as(
                "SELECT account_id, extract(epoch FROM month_start)::bigint, before_location_g_co2e, before_market_g_co2e,
                        delta_location_g_co2e, delta_market_g_co2e
                 FROM restatement_months WHERE restatement_id = $1 ORDER BY month_start, account_id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        } else {
            Vec::new()
        };
        out.push(Restatement {
            id,
            factor_set: r.try_get("factor_set")?,
            old_version: r.try_get("old_version")?,
            new_version: r.try_get("new_version")?,
            state,
            created_unix_s: r.try_get("created")?,
            finished_unix_s: r.try_get("finished")?,
            facts_restated: r.try_get("facts_restated")?,
            days_unix_s: r.try_get("days")?,
            months: months
                .into_iter()
                .map(|(account_id, month, bl, bm, dl, dm)| MonthTotals {
                    account_id,
                    month_start_unix_s: month,
                    before_location_g_co2e: bl,
                    before_market_g_co2e: bm,
                    after_location_g_co2e: bl + dl,
                    after_market_g_co2e: bm + dm,
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Counters of the restatement loop, rendered by the `/metrics` endpoint.
#[derive(Debug, Default)]
pub struct RestatementMetrics {
    runs_total: AtomicU64,
    chunks_total: AtomicU64,
    facts_total: AtomicU64,
    failures_total: AtomicU64,
}

/// The process's restatement counters.
pub static METRICS: RestatementMetrics = RestatementMetrics {
    runs_total: AtomicU64::new(0),
    chunks_total: AtomicU64::new(0),
    facts_total: AtomicU64::new(0),
    failures_total: AtomicU64::new(0),
};

impl RestatementMetrics {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, help, value) in [
            ("canopy_aggregator_restatement_runs_total", "Restatement loop runs.", get(&self.runs_total)),
            (
                "canopy_aggregator_restatement_chunks_total",
                "(account, region, UTC day) chunks restated.",
                get(&self.chunks_total),
            ),
            ("canopy_aggregator_restatement_facts_total", "Facts restated (repriced and rewritten).", get(&self.facts_total)),
            (
                "canopy_aggregator_restatement_failures_total",
                "Restatement runs that failed (resumed next tick).",
                get(&self.failures_total),
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        }
        out
    }
}

/// Runs [`run_pending`] every [`RUN_INTERVAL_S`] seconds, forever (spawned
/// by `serve`): resumes restatements a crash or another process left
/// `running`. Failures are logged and retried on the next tick.
pub async fn run_forever(pool: PgPool) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(RUN_INTERVAL_S));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = run_pending(&pool, None).await {
            tracing::warn!(error = %e, "restatement failed; resuming next tick");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_counters() {
        METRICS.chunks_total.fetch_add(0, Ordering::Relaxed);
        let m = RestatementMetrics::default();
        m.chunks_total.fetch_add(3, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains("canopy_aggregator_restatement_chunks_total 3\n"), "{text}");
        assert!(text.contains("# TYPE canopy_aggregator_restatement_failures_total counter\n"), "{text}");
    }

    #[test]
    fn only_changed_figures_or_lineage_count_as_changed() {
        let a = FactRow::sample(0, 3_600);
        let mut b = a.clone();
        assert!(!changed(&a, &b));
        b.factor_vintage = "location-hourly v2".into();
        assert!(changed(&a, &b));
        let mut c = a.clone();
        c.location_g_co2e += 1.0;
        assert!(changed(&a, &c));
    }
}
