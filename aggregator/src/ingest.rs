//! Writing one batch: idempotent per (agent id, sequence), facts upserted by
//! (period_start, account, region, record key) where a higher revision
//! replaces a lower one, and (native mode) every rollup corrected by the
//! difference between the new and the replaced facts in the same statement;
//! the same difference is queued for the org rollups (no account dimension).

use std::collections::BTreeSet;

use sqlx::{Postgres, Row, Transaction};

use crate::db::{self, DbError, StorageMode};
use crate::model::{AgentStatusRow, Batch, FactRow, InventoryRow};
use crate::time::HOUR_S;

/// Errors from [`store_batch`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A fact failed validation; nothing of the batch was written.
    #[error("fact {index} of batch ({agent_id}, {sequence}): {reason}")]
    InvalidFact {
        /// Agent of the batch.
        agent_id: String,
        /// Sequence of the batch.
        sequence: u64,
        /// Position of the fact in the batch.
        index: usize,
        /// What was expected and what was found.
        reason: String,
    },
    /// An inventory row failed validation; nothing of the batch was written.
    #[error("inventory row {index} of batch ({agent_id}, {sequence}): {reason}")]
    InvalidInventory {
        /// Agent of the batch.
        agent_id: String,
        /// Sequence of the batch.
        sequence: u64,
        /// Position of the row in the batch.
        index: usize,
        /// What was expected and what was found.
        reason: String,
    },
    /// The batch identity itself is unusable.
    #[error("batch identity: {0}")]
    InvalidBatch(String),
    /// A statement failed (retryable unless the database reports otherwise).
    #[error("database error while storing a batch: {0}")]
    Sql(#[from] sqlx::Error),
    /// Reading the storage settings failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl StoreError {
    /// True when retrying the same batch later may succeed (connection
    /// trouble, deadlock or serialisation failure, server shutting down);
    /// false for bad input and other database errors. The delivery layer
    /// answers retryable errors with a retry-later reply and the rest with a
    /// rejection.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::InvalidFact { .. } | StoreError::InvalidInventory { .. } | StoreError::InvalidBatch(_) => false,
            StoreError::Sql(e) | StoreError::Db(DbError::Sql(e)) => sql_is_retryable(e),
            StoreError::Db(_) => false,
        }
    }
}

fn sql_is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        // 40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock_not_available,
        // 57P01..57P03 admin/crash shutdown and cannot_connect_now, 53300 too_many_connections,
        // 23505 unique_violation: only the facts INSERT can raise it (every other insert of a
        // batch has ON CONFLICT), when a writer outside store_batch's advisory lock stored one
        // of the batch's keys between the lookup and the insert; a retry updates that row.
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" | "23505")
        ),
        _ => false,
    }
}

/// What [`store_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// (agent id, sequence) was stored before; nothing was written.
    Duplicate,
    /// The batch was written.
    Stored(StoreSummary),
}

/// Counts of a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreSummary {
    /// Facts in the batch.
    pub facts_received: u64,
    /// Facts inserted or replacing a lower revision.
    pub facts_written: u64,
    /// Of those, facts that replaced a stored lower revision.
    pub facts_replaced: u64,
    /// Facts not written: an equal or higher revision was already stored, or
    /// the batch held the same key twice (the highest revision is kept).
    pub facts_stale: u64,
    /// Stored facts the batch's facts superseded across keys (an hour-long
    /// group record replacing the per-resource records of its hour, or the
    /// reverse; see [`crate::coarsened`]). Batch facts superseded on arrival
    /// that way count as stale.
    pub facts_displaced: u64,
    /// Inventory rows in the batch.
    pub inventory_received: u64,
    /// Time partitions created for this batch (late or far-future data).
    pub partitions_created: u64,
}

/// Stores `batch` inside `tx` (the caller commits, then acknowledges).
///
/// Idempotent: a second call with the same (agent id, sequence) returns
/// [`StoreOutcome::Duplicate`] and writes nothing. Facts are validated first
/// and a bad fact rejects the whole batch.
///
/// Concurrency: writers of the same (account, region) are serialised by a
/// transaction advisory lock held until commit, so keep one batch per
/// transaction. A batch whose time partitions do not exist yet creates them
/// in this transaction (`maintenance::run` creates them ahead, so this is
/// rare: late data older than the window, or far-future data); two such
/// batches can deadlock, which PostgreSQL breaks by failing one with a
/// [`StoreError::is_retryable`] error.
pub async fn store_batch(
    tx: &mut Transaction<'_, Postgres>,
    batch: &Batch,
) -> Result<StoreOutcome, StoreError> {
    validate(batch)?;
    let sequence = i64::try_from(batch.sequence).map_err(|_| {
        StoreError::InvalidBatch(format!("expected a sequence below 2^63, found {}", batch.sequence))
    })?;

    let (realtime, totals): (Vec<&FactRow>, Vec<&FactRow>) = batch.facts.iter().partition(|f| f.realtime);
    let Some(started) = begin_batch(tx, batch, sequence, &totals, &realtime).await? else {
        return Ok(StoreOutcome::Duplicate);
    };
    upsert_inventory(tx, batch, sequence).await?;
    let (mut written, mut replaced, displaced) = upsert_facts(tx, batch, &totals, sequence, &started).await?;
    let (rt_written, rt_replaced) = upsert_realtime(tx, batch, &realtime, sequence).await?;
    written += rt_written;
    replaced += rt_replaced;
    crate::lineage::record(tx, &batch.facts).await?;

    let received = batch.facts.len() as u64;
    Ok(StoreOutcome::Stored(StoreSummary {
        facts_received: received,
        facts_written: written,
        facts_replaced: replaced,
        facts_stale: received.saturating_sub(written),
        facts_displaced: displaced,
        inventory_received: batch.inventory.len() as u64,
        partitions_created: started.partitions_created,
    }))
}

fn count_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn validate(batch: &Batch) -> Result<(), StoreError> {
    if batch.agent_id.is_empty() {
        return Err(StoreError::InvalidBatch("expected a non-empty agent id, found an empty one".into()));
    }
    for (index, fact) in batch.facts.iter().enumerate() {
        if let Err(reason) = validate_fact(fact) {
            return Err(StoreError::InvalidFact {
                agent_id: batch.agent_id.clone(),
                sequence: batch.sequence,
                index,
                reason,
            });
        }
    }
    for (index, row) in batch.inventory.iter().enumerate() {
        if let Err(reason) = validate_inventory(row) {
            return Err(StoreError::InvalidInventory {
                agent_id: batch.agent_id.clone(),
                sequence: batch.sequence,
                index,
                reason,
            });
        }
    }
    Ok(())
}

/// True for a 12-digit AWS account id.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

fn validate_fact(fact: &FactRow) -> Result<(), String> {
    if !is_account_id(&fact.account_id) {
        return Err(format!("expected a 12-digit account id, found {:?}", fact.account_id));
    }
    for (name, value) in [
        ("record_key", &fact.record_key),
        ("region", &fact.region),
        ("resource_id", &fact.resource_id),
        ("resource_type", &fact.resource_type),
        ("service", &fact.service),
    ] {
        if value.is_empty() {
            return Err(format!("expected a non-empty {name}, found an empty one"));
        }
    }
    let offset_in_hour = fact.period_start_unix_s.rem_euclid(HOUR_S);
    if fact.period_s == 0 || offset_in_hour + i64::from(fact.period_s) > HOUR_S {
        return Err(format!(
            "expected an interval within one UTC hour, found {} s starting {} s into the hour",
            fact.period_s, offset_in_hour
        ));
    }
    for (name, value) in [
        ("energy_kwh", fact.energy_kwh),
        ("location_g_co2e", fact.location_g_co2e),
        ("market_g_co2e", fact.market_g_co2e),
        ("low_g_co2e", fact.low_g_co2e),
        ("high_g_co2e", fact.high_g_co2e),
    ] {
        if !value.is_finite() || value < 0.0 {
            return Err(format!("expected a finite non-negative {name}, found {value}"));
        }
    }
    let parts = fact.parts().values();
    for (name, value) in crate::accounting::MEASURE_COLUMNS[crate::accounting::FIRST_PART..].iter().zip(parts) {
        if !value.is_finite() || value < 0.0 {
            return Err(format!("expected a finite non-negative {name}, found {value}"));
        }
    }
    Ok(())
}

fn validate_inventory(row: &InventoryRow) -> Result<(), String> {
    if !is_account_id(&row.account_id) {
        return Err(format!("expected a 12-digit account id, found {:?}", row.account_id));
    }
    if row.resource_id.is_empty() || row.region.is_empty() {
        return Err("expected a non-empty region and resource_id, found an empty one".into());
    }
    Ok(())
}

/// Days (Unix seconds of their start) the facts start on.
fn days_of(facts: &[&FactRow]) -> Vec<i64> {
    let days: BTreeSet<i64> =
        facts.iter().map(|f| crate::time::floor_to(f.period_start_unix_s, crate::time::DAY_S)).collect();
    days.into_iter().collect()
}

/// What the first statement of a batch found.
struct BatchStart {
    /// The database's storage mode.
    mode: StorageMode,
    /// Tag key whose value names a resource's team.
    team_tag_key: String,
    /// Time partitions created for this batch.
    partitions_created: u64,
}

/// The batch's first statement, one round trip: records (agent id,
/// sequence) and, the first time only, takes the advisory locks and creates
/// the missing partitions. It also sets `plan_cache_mode` to
/// `force_generic_plan` for the rest of the transaction: the batch's
/// statements are prepared once per connection, and with custom plans
/// PostgreSQL planned each of them again on every execution (their
/// partition pruning made every custom plan look cheaper than the generic
/// one), across every partition of the facts and rollup tables. Generic
/// plans prune partitions when they run; in the ingest bench PostgreSQL's
/// CPU per 1,000 records fell from 4.1 to 2.7 ms. Queries outside ingest
/// keep the server's setting. Returns `None` for a batch stored before, else
/// the storage settings and how many partitions were created.
///
/// The locks serialise writers of the same (account, region): every record
/// key lives in one such scope, so the facts statement's lookup of the
/// stored revisions and its INSERT and UPDATE see the same rows. They are
/// taken in sorted order (volatile functions are evaluated after the sort)
/// to avoid deadlocks, before the partitions are created. Partitions:
/// facts, rollups and org rollups of the days the totals start on
/// (`canopy_ensure_time_partitions`), and in native mode the daily
/// partitions of `realtime_group_facts` the real-time records need.
/// `maintenance::run` creates them ahead, so this is rare: late data older
/// than the window, or far-future data.
async fn begin_batch(
    tx: &mut Transaction<'_, Postgres>,
    batch: &Batch,
    sequence: i64,
    totals: &[&FactRow],
    realtime: &[&FactRow],
) -> Result<Option<BatchStart>, StoreError> {
    let scopes: BTreeSet<String> =
        batch.facts.iter().map(|f| format!("canopy_scope:{}/{}", f.account_id, f.region)).collect();
    let row = sqlx::query(
        "WITH batch AS (
            INSERT INTO ingested_batches (agent_id, sequence, fact_count, inventory_count)
            VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1
         ),
         b AS (SELECT EXISTS (SELECT FROM batch) AS first_time)
         SELECT b.first_time,
                CASE WHEN b.first_time THEN
                    (SELECT count(*) FROM (SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
                                           FROM unnest($5::text[]) AS k ORDER BY k) AS locked)
                END AS scopes_locked,
                s.storage_mode, s.team_tag_key,
                set_config('plan_cache_mode', 'force_generic_plan', true) AS plan_cache_mode,
                CASE WHEN b.first_time THEN
                    canopy_ensure_time_partitions($6::bigint[])
                    + CASE WHEN s.storage_mode = 'native' THEN
                          (SELECT count(*) FILTER (WHERE canopy_ensure_partition('realtime_group_facts', 'day',
                                                                                 to_timestamp(d)))
                           FROM unnest($7::bigint[]) AS d)::int
                      ELSE 0 END
                END AS partitions_created
         FROM b CROSS JOIN canopy_settings s",
    )
    .bind(&batch.agent_id)
    .bind(sequence)
    .bind(count_i32(batch.facts.len()))
    .bind(count_i32(batch.inventory.len()))
    .bind(scopes.into_iter().collect::<Vec<String>>())
    .bind(days_of(totals))
    .bind(days_of(realtime))
    .fetch_one(&mut **tx)
    .await?;
    let first_time: bool = row.try_get("first_time")?;
    if !first_time {
        return Ok(None);
    }
    let created: i32 = row.try_get("partitions_created")?;
    Ok(Some(BatchStart {
        mode: db::parse_storage_mode(row.try_get("storage_mode")?)?,
        team_tag_key: row.try_get("team_tag_key")?,
        partitions_created: u64::try_from(created).unwrap_or(0),
    }))
}

/// Tags or attributes as a JSON object (a later duplicate key wins).
fn tags_json(tags: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        tags.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    serde_json::Value::Object(map).to_string()
}

/// Team of an inventory row: tag value under the configured key, else the
/// account's default rule, else 'untagged'. `i` is the incoming row, `r` the
/// account rule. The key is read by a scalar subquery of the one-row
/// settings table rather than a join: a join with a table that was never
/// analysed is estimated at hundreds of rows, which multiplied the batch's
/// estimate past `jit_above_cost`, and every statement then spent more time
/// compiling itself than running.
const INVENTORY_TEAM_SQL: &str =
    "COALESCE(NULLIF(i.tags::jsonb ->> (SELECT team_tag_key FROM canopy_settings), ''), r.default_team, 'untagged')";

/// Team of a fact: the agent's explicit team (group records), else the tag
/// value under the configured key from the fact's own tags or, when it
/// carried none, from the stored inventory (`res`), else the account's
/// default rule, else 'untagged' (settings read as in [`INVENTORY_TEAM_SQL`]).
const FACT_TEAM_SQL: &str = "COALESCE(NULLIF(i.team, ''), \
     NULLIF(COALESCE(i.tags::jsonb, res.tags) ->> (SELECT team_tag_key FROM canopy_settings), ''), \
     r.default_team, 'untagged')";

async fn upsert_inventory(tx: &mut Transaction<'_, Postgres>, batch: &Batch, sequence: i64) -> Result<(), StoreError> {
    if batch.inventory.is_empty() {
        return Ok(());
    }
    let inv = &batch.inventory;
    let sql = format!(
        "WITH i AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bool[],
                                 $11::text[])
                AS t(account_id, region, resource_id, resource_type, service, tags, observed_unix_s, deleted, attributes)
         ),
         inc AS (
            SELECT DISTINCT ON (i.account_id, i.region, i.resource_id)
                   i.account_id, i.region, i.resource_id, i.resource_type, i.service, i.tags::jsonb AS tags,
                   {INVENTORY_TEAM_SQL} AS team, to_timestamp(i.observed_unix_s) AS observed, i.deleted,
                   i.attributes::jsonb AS attributes
            FROM i LEFT JOIN account_team_rules r ON r.account_id = i.account_id
            ORDER BY i.account_id, i.region, i.resource_id, i.observed_unix_s DESC
         ),
         prev AS (
            SELECT p.* FROM resources p JOIN inc USING (account_id, region, resource_id)
         ),
         up AS (
            INSERT INTO resources AS cur (account_id, region, resource_id, resource_type, service, tags, team,
                                          first_seen, last_seen, deleted, agent_id, batch_sequence, attributes)
            SELECT account_id, region, resource_id, resource_type, service, tags, team,
                   observed, observed, deleted, $9, $10, attributes FROM inc
            ON CONFLICT (account_id, region, resource_id) DO UPDATE SET
                resource_type = excluded.resource_type, service = excluded.service, tags = excluded.tags,
                team = excluded.team, last_seen = excluded.last_seen, deleted = excluded.deleted,
                agent_id = excluded.agent_id, batch_sequence = excluded.batch_sequence,
                first_seen = LEAST(cur.first_seen, excluded.first_seen), attributes = excluded.attributes
            WHERE cur.last_seen <= excluded.last_seen
            RETURNING account_id, region, resource_id, resource_type, service, tags, team, last_seen, deleted
         )
         INSERT INTO resource_history (account_id, region, resource_id, valid_from, resource_type, service,
                                       tags, team, deleted, agent_id, batch_sequence)
         SELECT up.account_id, up.region, up.resource_id, up.last_seen, up.resource_type, up.service,
                up.tags, up.team, up.deleted, $9, $10
         FROM up LEFT JOIN prev USING (account_id, region, resource_id)
         WHERE prev.account_id IS NULL
            OR (prev.resource_type, prev.service, prev.tags, prev.deleted)
               IS DISTINCT FROM (up.resource_type, up.service, up.tags, up.deleted)
         ON CONFLICT DO NOTHING"
    );
    sqlx::query(&sql)
        .bind(inv.iter().map(|r| r.account_id.clone()).collect::<Vec<_>>())
        .bind(inv.iter().map(|r| r.region.clone()).collect::<Vec<_>>())
        .bind(inv.iter().map(|r| r.resource_id.clone()).collect::<Vec<_>>())
        .bind(inv.iter().map(|r| r.resource_type.clone()).collect::<Vec<_>>())
        .bind(inv.iter().map(|r| r.service.clone()).collect::<Vec<_>>())
        .bind(inv.iter().map(|r| tags_json(&r.tags)).collect::<Vec<_>>())
        .bind(inv.iter().map(|r| r.observed_unix_s).collect::<Vec<_>>())
        .bind(inv.iter().map(|r| r.deleted).collect::<Vec<_>>())
        .bind(&batch.agent_id)
        .bind(sequence)
        .bind(inv.iter().map(|r| tags_json(&r.attributes)).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Columns of a rollup row, in the order of the rollup tables.
fn rollup_columns() -> String {
    format!(
        "bucket_start, account_id, region, service, resource_type, team, quality, {}, fact_count",
        crate::accounting::columns("")
    )
}

/// Adds rows of (bucket_start, group, measures, fact_count) to `table`.
fn rollup_add() -> String {
    format!(
        "ON CONFLICT (bucket_start, account_id, region, service, resource_type, team, quality) DO UPDATE SET
                {}, fact_count = t.fact_count + excluded.fact_count",
        crate::accounting::add_excluded()
    )
}

/// The rollup maintenance CTE for a coarser rollup table: the 5-minute
/// deltas (`d5`) regrouped by `bucket`, the SQL expression of the
/// coarser bucket start of a 5-minute bucket start (every 5-minute bucket
/// lies inside one hour, day and month).
fn rollup_cte(name: &str, table: &str, bucket: &str) -> String {
    format!(
        "{name} AS (
            INSERT INTO {table} AS t ({})
            SELECT {bucket}, account_id, region, service, resource_type, team, quality, {},
                   sum(fact_count) AS fact_count
            FROM d5 GROUP BY 1, 2, 3, 4, 5, 6, 7
            {}
         )",
        rollup_columns(),
        crate::accounting::sums(""),
        rollup_add()
    )
}

/// The per-resource daily rollup's maintenance CTE `rr` (migration 0029):
/// the per-resource deltas of `delta5` regrouped by UTC day. A row's
/// `last_period_start` only moves forward, to the latest 5-minute slot a
/// fact was added in (a delta group that only removes facts leaves it).
fn resource_rollup_cte() -> String {
    let measures = crate::accounting::columns("");
    format!(
        "rr AS (
            INSERT INTO resource_rollup_daily AS t (bucket_start, account_id, region, resource_id, service,
                   resource_type, team, quality, {measures}, fact_count, last_period_start)
            SELECT date_bin(interval '1 day', bucket_start, timestamptz 'epoch'), account_id, region, resource_id,
                   service, resource_type, team, quality, {}, sum(fact_count),
                   COALESCE(max(bucket_start) FILTER (WHERE fact_count > 0), timestamptz '-infinity')
            FROM delta5 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
            ON CONFLICT (bucket_start, account_id, region, resource_id, service, resource_type, team, quality)
            DO UPDATE SET {}, fact_count = t.fact_count + excluded.fact_count,
                last_period_start = GREATEST(t.last_period_start, excluded.last_period_start)
         )",
        crate::accounting::sums(""),
        crate::accounting::add_excluded()
    )
}

/// The rollup maintenance CTEs `d5`, `r5`, `rh`, `rd`, `rm`, `rr` and `rp`
/// (native mode), fed by a CTE `delta5` of the statement that includes
/// them: the difference a batch makes (new facts, and replacing facts minus
/// the values they replaced), summed once per 5-minute bucket, group and
/// resource (`resource_id` column), regrouped without the resource (`d5`)
/// and added to every rollup, to the per-resource daily rollup (`rr`, with
/// the resource) and appended to `org_rollup_pending` (migration 0006: an
/// append-only insert, so batches of different accounts never wait on a
/// shared row; `canopy_drain_org_rollups()` moves it on and queries read
/// both).
pub(crate) fn rollup_ctes() -> String {
    let columns = rollup_columns();
    let add = rollup_add();
    format!(
        "d5 AS (
            SELECT bucket_start, account_id, region, service, resource_type, team, quality, {},
                   sum(fact_count) AS fact_count
            FROM delta5 GROUP BY 1, 2, 3, 4, 5, 6, 7
         ),
         r5 AS (
            INSERT INTO rollup_5m AS t ({columns}) SELECT {columns} FROM d5
            {add}
         ),
         {},
         {},
         {},
         {},
         rp AS (
            INSERT INTO org_rollup_pending ({columns}) SELECT {columns} FROM d5
         )",
        crate::accounting::sums(""),
        rollup_cte("rh", "rollup_hourly", "date_bin(interval '1 hour', bucket_start, timestamptz 'epoch')"),
        rollup_cte("rd", "rollup_daily", "date_bin(interval '1 day', bucket_start, timestamptz 'epoch')"),
        rollup_cte("rm", "rollup_monthly", "date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"),
        resource_rollup_cte(),
    )
}

/// The facts statement of TimescaleDB mode, which keeps one row per fact
/// (its compression makes columnar chunks itself and its continuous
/// aggregates follow the rows). `inc` holds the batch's facts (one per key,
/// see [`highest_revision_per_key`]) with their team; `cmp` looks each key
/// up once through the primary key. Keys not stored yet are inserted with a
/// plain INSERT (no speculative insertion: nothing else writes a key of
/// this (account, region) while the batch holds its advisory lock; a
/// writer that ignores the lock makes the INSERT fail with a unique
/// violation, which is retryable), keys stored with a lower revision are
/// updated, and the rest (equal or higher revision stored) are stale.
static FACTS_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let unnest_facts = unnest_facts();
    let measures = crate::accounting::columns("");
    let i_measures = crate::accounting::columns("i.");
    let set_measures = crate::accounting::MEASURE_COLUMNS.map(|c| format!("{c} = c.{c}")).join(", ");
    format!(
        "WITH i AS (
            {unnest_facts}
         ),
         inc AS (
            SELECT to_timestamp(i.start_unix_s) AS period_start, i.period_s, i.account_id, i.region, i.record_key,
                   i.revision, i.resource_id, i.resource_type, i.service, {FACT_TEAM_SQL} AS team, i.quality,
                   {i_measures},
                   i.methodology_version, i.factor_source, i.factor_vintage
            FROM i
            LEFT JOIN account_team_rules r ON r.account_id = i.account_id
            LEFT JOIN resources res
                   ON res.account_id = i.account_id AND res.region = i.region AND res.resource_id = i.resource_id
         ),
         cmp AS (
            SELECT inc.*, f.revision AS old_revision, f.service AS old_service,
                   f.resource_type AS old_resource_type, f.team AS old_team, f.quality AS old_quality,
                   f.energy_kwh AS old_energy_kwh, f.location_g_co2e AS old_location_g_co2e,
                   f.market_g_co2e AS old_market_g_co2e, f.low_g_co2e AS old_low_g_co2e,
                   f.high_g_co2e AS old_high_g_co2e
            FROM inc LEFT JOIN emission_facts f USING (period_start, account_id, region, record_key)
         ),
         ins AS (
            INSERT INTO emission_facts (period_start, period_s, account_id, region, record_key, revision,
                   resource_id, resource_type, service, team, quality, {measures},
                   methodology_version, factor_source, factor_vintage, agent_id, batch_sequence)
            SELECT period_start, period_s, account_id, region, record_key, revision,
                   resource_id, resource_type, service, team, quality, {measures},
                   methodology_version, factor_source, factor_vintage, $20, $21
            FROM cmp WHERE old_revision IS NULL
         ),
         upd AS (
            UPDATE emission_facts AS f SET
                period_s = c.period_s, revision = c.revision, resource_id = c.resource_id,
                resource_type = c.resource_type, service = c.service, team = c.team, quality = c.quality,
                {set_measures},
                methodology_version = c.methodology_version, factor_source = c.factor_source,
                factor_vintage = c.factor_vintage, agent_id = $20, batch_sequence = $21
            FROM cmp c
            WHERE c.old_revision < c.revision
              AND f.period_start = c.period_start AND f.account_id = c.account_id
              AND f.region = c.region AND f.record_key = c.record_key
            RETURNING c.*
         )
         SELECT (SELECT count(*) FROM cmp WHERE old_revision IS NULL) + (SELECT count(*) FROM upd) AS written,
                (SELECT count(*) FROM upd) AS replaced"
    )
});

/// [`FACTS_SQL`] for [`crate::restatement`]: a fact also replaces the stored
/// one of the same revision (the restatement holds the scope's lock and
/// writes back the facts it just read, repriced).
pub(crate) static RESTATE_FACTS_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| FACTS_SQL.replace("WHERE c.old_revision < c.revision", "WHERE c.old_revision <= c.revision"));

/// The `SELECT * FROM unnest(...)` of [`bind_facts`]'s arrays.
fn unnest_facts() -> String {
    format!(
        "SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                                 $12::float8[], $13::float8[], $14::float8[], $15::float8[], $16::float8[],
                                 $17::text[], $18::text[], $19::text[], $22::text[], {})
                AS t(start_unix_s, period_s, account_id, region, record_key, revision,
                     resource_id, resource_type, service, tags, quality,
                     energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e,
                     methodology_version, factor_source, factor_vintage, team, {})",
        (0..crate::accounting::MEASURES - crate::accounting::FIRST_PART)
            .map(|i| format!("${}::float8[]", 23 + i))
            .collect::<Vec<_>>()
            .join(", "),
        crate::accounting::MEASURE_COLUMNS[crate::accounting::FIRST_PART..].join(", ")
    )
}

/// The facts of `f` to write, one per (period start, account, region,
/// record key): the highest revision (the first of equal ones), in key
/// order. A batch holding a key twice counts the dropped ones as stale.
pub(crate) fn highest_revision_per_key<'a>(f: &[&'a FactRow]) -> Vec<&'a FactRow> {
    fn key(x: &FactRow) -> (i64, &str, &str, &str) {
        (x.period_start_unix_s, x.account_id.as_str(), x.region.as_str(), x.record_key.as_str())
    }
    let mut sorted: Vec<&'a FactRow> = f.to_vec();
    // A stable sort: equal keys stay in batch order, so the first of equal revisions is kept.
    sorted.sort_by(|a, b| key(a).cmp(&key(b)));
    let mut kept: Vec<&'a FactRow> = Vec::with_capacity(sorted.len());
    for fact in sorted {
        match kept.last_mut() {
            Some(last) if key(last) == key(fact) => {
                if fact.revision > last.revision {
                    *last = fact;
                }
            }
            _ => kept.push(fact),
        }
    }
    kept
}

async fn upsert_facts(
    tx: &mut Transaction<'_, Postgres>,
    batch: &Batch,
    f: &[&FactRow],
    sequence: i64,
    started: &BatchStart,
) -> Result<(u64, u64, u64), StoreError> {
    if f.is_empty() {
        return Ok((0, 0, 0));
    }
    // Hour-long group records against the per-resource records of their hour
    // first: what they supersede is gone before the per-key revision check.
    let (unique, displaced) = crate::coarsened::resolve(tx, highest_revision_per_key(f), started.mode).await?;
    if started.mode == StorageMode::TimescaleDb {
        // Facts older than the 5-minute aggregate's refresh window reach the
        // rollups through the late-data refresh (crate::timescale). The days
        // of every fact of the batch are queued, not only of those written:
        // rows the coarsening rule deleted (`displaced`) lie in the same
        // hours, and a batch may displace rows while writing none.
        sqlx::query(crate::timescale::QUEUE_LATE_DAYS_SQL)
            .bind(f.iter().map(|x| x.period_start_unix_s).collect::<Vec<i64>>())
            .bind(crate::timescale::LATE_AFTER_S)
            .execute(&mut **tx)
            .await?;
    }
    if unique.is_empty() {
        return Ok((0, 0, displaced));
    }
    if started.mode == StorageMode::Native {
        let (written, replaced) =
            crate::fact_segments::write(tx, &unique, &batch.agent_id, sequence, &started.team_tag_key, false).await?;
        return Ok((written, replaced, displaced));
    }
    let row = bind_facts(sqlx::query(FACTS_SQL.as_str()), &unique, &batch.agent_id, sequence)
        .fetch_one(&mut **tx)
        .await?;
    let written: i64 = row.try_get("written")?;
    let replaced: i64 = row.try_get("replaced")?;
    Ok((written as u64, replaced as u64, displaced))
}

/// Binds the columns of `f` as arrays in the order both fact statements
/// unnest them: $1 start, $2 period, $3 account, $4 region, $5 record key,
/// $6 revision, $7 resource id, $8 resource type, $9 service, $10 tags,
/// $11 quality, $12-$16 energy and CO2e, $17-$19 lineage, $20 agent id,
/// $21 batch sequence, $22 team, $23-$32 the parts
/// ([`crate::accounting::MEASURE_COLUMNS`] from `FIRST_PART`).
pub(crate) fn bind_facts<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    f: &[&FactRow],
    agent_id: &'q str,
    sequence: i64,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    let texts = |get: fn(&FactRow) -> &str| f.iter().map(|x| get(x).to_owned()).collect::<Vec<String>>();
    let floats = |get: fn(&FactRow) -> f64| f.iter().map(|x| get(x)).collect::<Vec<f64>>();
    let mut query = query
        .bind(f.iter().map(|x| x.period_start_unix_s).collect::<Vec<i64>>())
        .bind(f.iter().map(|x| x.period_s as i32).collect::<Vec<i32>>())
        .bind(texts(|x| &x.account_id))
        .bind(texts(|x| &x.region))
        .bind(texts(|x| &x.record_key))
        .bind(f.iter().map(|x| i64::from(x.revision)).collect::<Vec<i64>>())
        .bind(texts(|x| &x.resource_id))
        .bind(texts(|x| &x.resource_type))
        .bind(texts(|x| &x.service))
        .bind(f.iter().map(|x| x.tags.as_deref().map(tags_json)).collect::<Vec<Option<String>>>())
        .bind(texts(|x| x.quality.as_str()))
        .bind(floats(|x| x.energy_kwh))
        .bind(floats(|x| x.location_g_co2e))
        .bind(floats(|x| x.market_g_co2e))
        .bind(floats(|x| x.low_g_co2e))
        .bind(floats(|x| x.high_g_co2e))
        .bind(texts(|x| &x.methodology_version))
        .bind(texts(|x| &x.factor_source))
        .bind(texts(|x| &x.factor_vintage))
        .bind(agent_id)
        .bind(sequence)
        .bind(f.iter().map(|x| x.team.clone()).collect::<Vec<Option<String>>>());
    let parts: Vec<_> = f.iter().map(|x| x.parts().values()).collect();
    for i in 0..parts.first().map_or(0, |p| p.len()) {
        query = query.bind(parts.iter().map(|p| p[i]).collect::<Vec<f64>>());
    }
    query
}

/// The statement of [`upsert_realtime`] (built once).
static REALTIME_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let unnest_facts = unnest_facts();
    let measures = crate::accounting::columns("");
    let i_measures = crate::accounting::columns("i.");
    let set_measures = crate::accounting::set_excluded();
    format!(
        "WITH i AS (
            {unnest_facts}
         ),
         inc AS (
            SELECT DISTINCT ON (1, 3, 4, 5)
                   to_timestamp(i.start_unix_s) AS bucket_start, i.period_s, i.account_id, i.region, i.record_key,
                   i.revision, i.resource_type, i.service,
                   COALESCE(NULLIF(i.team, ''), r.default_team, 'untagged') AS team, i.quality,
                   {i_measures},
                   i.methodology_version, i.factor_source, i.factor_vintage
            FROM i LEFT JOIN account_team_rules r ON r.account_id = i.account_id
            ORDER BY 1, 3, 4, 5, i.revision DESC
         ),
         old AS (
            SELECT 1 FROM realtime_group_facts f
            JOIN inc USING (bucket_start, account_id, region, record_key)
            WHERE f.revision < inc.revision
         ),
         up AS (
            INSERT INTO realtime_group_facts AS f (bucket_start, period_s, account_id, region, record_key, revision,
                   resource_type, service, team, quality, {measures},
                   methodology_version, factor_source, factor_vintage, agent_id, batch_sequence)
            SELECT bucket_start, period_s, account_id, region, record_key, revision,
                   resource_type, service, team, quality, {measures},
                   methodology_version, factor_source, factor_vintage, $20, $21
            FROM inc
            ON CONFLICT (bucket_start, account_id, region, record_key) DO UPDATE SET
                period_s = excluded.period_s, revision = excluded.revision,
                resource_type = excluded.resource_type, service = excluded.service, team = excluded.team,
                quality = excluded.quality, {set_measures},
                methodology_version = excluded.methodology_version, factor_source = excluded.factor_source,
                factor_vintage = excluded.factor_vintage, agent_id = excluded.agent_id,
                batch_sequence = excluded.batch_sequence
            WHERE f.revision < excluded.revision
            RETURNING 1
         )
         SELECT (SELECT count(*) FROM up) AS written, (SELECT count(*) FROM old) AS replaced"
    )
});

/// Revision-aware upsert of the real-time path's 5-minute group records into
/// `realtime_group_facts` (migration 0009): no rollup sees them, so they
/// never add to the totals the hourly per-resource records make. Returns
/// (written, replaced).
async fn upsert_realtime(
    tx: &mut Transaction<'_, Postgres>,
    batch: &Batch,
    f: &[&FactRow],
    sequence: i64,
) -> Result<(u64, u64), StoreError> {
    if f.is_empty() {
        return Ok((0, 0));
    }
    let row = bind_facts(sqlx::query(REALTIME_SQL.as_str()), f, &batch.agent_id, sequence)
    .fetch_one(&mut **tx)
    .await?;
    let written: i64 = row.try_get("written")?;
    let replaced: i64 = row.try_get("replaced")?;
    Ok((written as u64, replaced as u64))
}

/// Stores an agent's status snapshot inside `tx` (the batch's transaction):
/// one row per (account, agent id) (migration 0018), replaced only by a snapshot taken at the same time or
/// later, so a delayed resend never overwrites newer figures. Returns true
/// when the row was written.
pub async fn store_agent_status(
    tx: &mut Transaction<'_, Postgres>,
    status: &AgentStatusRow,
) -> Result<bool, StoreError> {
    if status.agent_version.is_empty() {
        return Err(StoreError::InvalidBatch("agent_status.agent_version: expected a non-empty string, found an empty one".into()));
    }
    let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let written = sqlx::query(
        "INSERT INTO agent_status AS cur (agent_id, account_id, region, agent_version, outbox_backlog_frames,
                outbox_backlog_bytes, records_shed_total, collection_errors_total, send_failures_total,
                taken_at, batch_sequence, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, to_timestamp($10::float8 / 1000), $11, now())
         ON CONFLICT (account_id, agent_id) DO UPDATE SET
             region = excluded.region, agent_version = excluded.agent_version,
             outbox_backlog_frames = excluded.outbox_backlog_frames, outbox_backlog_bytes = excluded.outbox_backlog_bytes,
             records_shed_total = excluded.records_shed_total, collection_errors_total = excluded.collection_errors_total,
             send_failures_total = excluded.send_failures_total, taken_at = excluded.taken_at,
             batch_sequence = excluded.batch_sequence, received_at = excluded.received_at
         WHERE cur.taken_at <= excluded.taken_at",
    )
    .bind(&status.agent_id)
    .bind(&status.account_id)
    .bind(&status.region)
    .bind(&status.agent_version)
    .bind(big(status.outbox_backlog_frames))
    .bind(big(status.outbox_backlog_bytes))
    .bind(big(status.records_shed_total))
    .bind(big(status.collection_errors_total))
    .bind(big(status.send_failures_total))
    .bind(status.taken_at_unix_ms as f64)
    .bind(big(status.batch_sequence))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(written == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(start: i64, period_s: u32) -> FactRow {
        FactRow::sample(start, period_s)
    }

    #[test]
    fn fact_intervals_stay_within_an_hour() {
        assert!(validate_fact(&fact(3_600, 3_600)).is_ok());
        assert!(validate_fact(&fact(3_300, 300)).is_ok());
        let err = validate_fact(&fact(3_400, 300)).unwrap_err();
        assert_eq!(err, "expected an interval within one UTC hour, found 300 s starting 3400 s into the hour");
        assert!(validate_fact(&fact(0, 0)).is_err());
    }

    #[test]
    fn fact_values_and_ids_are_checked() {
        let mut f = fact(0, 300);
        f.energy_kwh = f64::NAN;
        assert!(validate_fact(&f).unwrap_err().contains("energy_kwh"));
        let mut f = fact(0, 300);
        f.account_id = "12345".into();
        assert_eq!(validate_fact(&f).unwrap_err(), "expected a 12-digit account id, found \"12345\"");
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let bad = StoreError::InvalidBatch("expected a non-empty agent id, found an empty one".into());
        assert!(!bad.is_retryable());
        assert!(StoreError::Sql(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(!StoreError::Sql(sqlx::Error::RowNotFound).is_retryable());
    }

    #[test]
    fn one_fact_per_key_with_the_highest_revision_in_key_order() {
        let at = |key: &str, start: i64, revision: u32, energy_kwh: f64| FactRow {
            record_key: key.into(),
            revision,
            energy_kwh,
            ..fact(start, 300)
        };
        let facts = [at("b", 0, 1, 1.0), at("a", 0, 2, 2.0), at("b", 0, 3, 3.0), at("b", 0, 3, 4.0), at("a", 300, 1, 5.0)];
        let refs: Vec<&FactRow> = facts.iter().collect();
        let kept: Vec<(i64, &str, u32, f64)> = highest_revision_per_key(&refs)
            .iter()
            .map(|f| (f.period_start_unix_s, f.record_key.as_str(), f.revision, f.energy_kwh))
            .collect();
        // Equal revisions keep the first one; keys sort by start, then account, region, record key.
        assert_eq!(kept, vec![(0, "a", 2, 2.0), (0, "b", 3, 3.0), (300, "a", 1, 5.0)]);
    }

    #[test]
    fn tags_become_a_json_object() {
        let tags = vec![("team".to_owned(), "web".to_owned()), ("env".to_owned(), "prod\"x".to_owned())];
        assert_eq!(tags_json(&tags), r#"{"env":"prod\"x","team":"web"}"#);
    }
}
