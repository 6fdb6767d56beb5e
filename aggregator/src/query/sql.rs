//! Building and running the parameterised SQL of each query. Only relation,
//! column and interval names chosen from fixed lists are written into the
//! statement text; every value is a bind parameter.
//!
//! Every answer reads from one [`Snapshot`]: a REPEATABLE READ, READ ONLY
//! transaction that first locks `retention_horizons` (before its snapshot
//! is taken), then reads the horizons and runs all of the answer's
//! statements, so an answer's rows, total and breakdown agree with each
//! other under concurrent ingest, and no level is read before its horizon.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row, Transaction};

use super::horizons;
use super::plan::{
    self, Horizons, ORG_TOTALS_LEVELS, RESOURCE_LEVELS, RetentionError, Segment, Source, TEAM_TOTALS_LEVELS, TOTALS_LEVELS,
};
use super::{
    Dimension, Filters, GroupRow, Metrics, Page, QualityShare, ResourceRow, SeriesRequest, SeriesResponse, SeriesRow,
    Step, TopResourcesRequest, TopResourcesResponse, TotalsRequest, TotalsResponse,
};
use crate::maintenance::RetentionPolicy;

/// A query that failed in the database, or a range retention no longer answers.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement failed or the database is unreachable.
    #[error("database error while querying: {0}")]
    Sql(#[from] sqlx::Error),
    /// An edge of the range lies where the levels that could answer it
    /// exactly have expired (bad input: HTTP 400, gRPC INVALID_ARGUMENT).
    #[error(transparent)]
    OutsideRetention(#[from] RetentionError),
    /// A filter names something outside the caller's scope (HTTP 403,
    /// gRPC PERMISSION_DENIED).
    #[error(transparent)]
    Forbidden(#[from] super::authz::Forbidden),
}

/// Runs validated requests against one database.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    pool: PgPool,
    retention: RetentionPolicy,
}

/// The dimension columns every segment carries, in this order.
const CARRIED: [&str; 6] = ["account_id", "region", "service", "resource_type", "team", "quality"];

/// The same for org queries (no account dimension): the OU path instead.
const ORG_CARRIED: [&str; 6] = ["ou_path", "region", "service", "resource_type", "team", "quality"];

/// Which family of rollups a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grain {
    /// Account-level rollups (`rollup_*`).
    Account,
    /// Org rollups (`org_rollup_*` plus pending deltas): used when the query
    /// neither filters nor groups by account.
    Org,
    /// Team rollups for whole days and months (`org_team_rollup_*` plus
    /// pending deltas), org rollups below: used when the query groups and
    /// filters by team and quality flag only.
    Team,
}

fn grain(group_by: &[Dimension], filters: &Filters) -> Grain {
    let team_only = |d: &Dimension| matches!(d, Dimension::Team | Dimension::Quality);
    if group_by.contains(&Dimension::Account) || !filters.account.is_empty() {
        Grain::Account
    } else if group_by.iter().all(team_only)
        && Dimension::ALL.iter().filter(|d| !team_only(d)).all(|d| filters.values(*d).is_empty())
    {
        Grain::Team
    } else {
        Grain::Org
    }
}

/// The levels a totals query of `grain` may use.
fn totals_levels(grain: Grain) -> &'static [Source] {
    match grain {
        Grain::Account => &TOTALS_LEVELS,
        Grain::Org => &ORG_TOTALS_LEVELS,
        Grain::Team => &TEAM_TOTALS_LEVELS,
    }
}

fn outer_expr(dim: Dimension, grain: Grain) -> &'static str {
    match dim {
        Dimension::Account => "u.account_id",
        Dimension::Ou if grain != Grain::Account => "u.ou_path",
        Dimension::Ou => "COALESCE(a.ou_path, '')",
        Dimension::Region => "u.region",
        Dimension::Service => "u.service",
        Dimension::ResourceType => "u.resource_type",
        Dimension::Team => "u.team",
        Dimension::Quality => "u.quality",
    }
}

fn column(dim: Dimension) -> Option<&'static str> {
    match dim {
        Dimension::Account => Some("account_id"),
        Dimension::Ou => None,
        Dimension::Region => Some("region"),
        Dimension::Service => Some("service"),
        Dimension::ResourceType => Some("resource_type"),
        Dimension::Team => Some("team"),
        Dimension::Quality => Some("quality"),
    }
}

fn step_interval(step: Step) -> &'static str {
    match step {
        Step::FiveMinutes => "5 minutes",
        Step::Hour => "1 hour",
        Step::Day => "1 day",
    }
}

/// Appends `AND ...` for every non-empty filter; `prefix` qualifies columns.
/// `ou_expr` is the SQL expression of the row's OU path when the row carries
/// it (org rollups, or joined to `accounts`); otherwise OU filters select
/// the accounts below the OU.
fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, filters: &Filters, prefix: &str, ou_expr: Option<&str>) {
    for dim in Dimension::ALL {
        let values = filters.values(dim);
        if values.is_empty() {
            continue;
        }
        if let (Dimension::Ou, Some(expr)) = (dim, ou_expr) {
            qb.push(format!(" AND ({expr} = ANY("));
            qb.push_bind(values.to_vec());
            qb.push(") OR EXISTS (SELECT 1 FROM unnest(");
            qb.push_bind(values.to_vec());
            qb.push(format!("::text[]) o WHERE starts_with({expr}, o || '/')))"));
            continue;
        }
        match column(dim) {
            Some(col) => {
                qb.push(format!(" AND {prefix}{col} = ANY("));
                qb.push_bind(values.to_vec());
                qb.push(")");
            }
            None => {
                qb.push(format!(" AND {prefix}account_id IN (SELECT acc.account_id FROM accounts acc WHERE acc.ou_path = ANY("));
                qb.push_bind(values.to_vec());
                qb.push(") OR EXISTS (SELECT 1 FROM unnest(");
                qb.push_bind(values.to_vec());
                qb.push("::text[]) o WHERE starts_with(acc.ou_path, o || '/')))");
            }
        }
    }
}

fn push_range(qb: &mut QueryBuilder<'_, Postgres>, time_column: &str, from_unix_s: i64, to_unix_s: i64) {
    qb.push(format!(" WHERE {time_column} >= to_timestamp("));
    qb.push_bind(from_unix_s);
    qb.push(format!("::bigint) AND {time_column} < to_timestamp("));
    qb.push_bind(to_unix_s);
    qb.push("::bigint)");
}

fn push_bucket(qb: &mut QueryBuilder<'_, Postgres>, step: Option<Step>, time: &str) {
    if let Some(step) = step {
        qb.push(format!(
            "extract(epoch FROM date_bin(interval '{}', {time}, timestamptz 'epoch'))::bigint AS bucket_unix_s, ",
            step_interval(step)
        ));
    }
}

/// The metric columns of a segment, negated when the segment is subtracted;
/// `prefix` qualifies the columns, `count` is the fact count expression.
fn metric_columns(prefix: &str, count: &str, subtract: bool) -> String {
    let sign = if subtract { "-" } else { "" };
    let mut cols: Vec<String> = crate::accounting::MEASURE_COLUMNS
        .iter()
        .map(|c| format!("{sign}{prefix}{c} AS {c}"))
        .collect();
    cols.push(format!("{sign}{count} AS fact_count"));
    cols.join(", ")
}

/// One segment as a sub-select with uniform columns.
fn push_segment(qb: &mut QueryBuilder<'_, Postgres>, seg: &Segment, step: Option<Step>, filters: &Filters, grain: Grain) {
    let time = seg.source.time_column();
    let count = if seg.source == Source::Facts { "1::bigint" } else { "fact_count" };
    match grain {
        Grain::Account => {
            qb.push("SELECT ");
            push_bucket(qb, step, time);
            qb.push(format!(
                "{}, {} FROM {}",
                CARRIED.join(", "),
                metric_columns("", count, seg.subtract),
                seg.source.table()
            ));
            push_range(qb, time, seg.from_unix_s, seg.to_unix_s);
            push_filters(qb, filters, "", None);
        }
        _ if seg.source.is_team() => {
            qb.push("SELECT ");
            push_bucket(qb, step, time);
            qb.push(format!(
                "NULL::text AS ou_path, NULL::text AS region, NULL::text AS service, NULL::text AS resource_type, \
                 team, quality, {} FROM {}",
                metric_columns("", "fact_count", seg.subtract),
                seg.source.table()
            ));
            push_range(qb, time, seg.from_unix_s, seg.to_unix_s);
            push_filters(qb, filters, "", None);
            qb.push(" UNION ALL ");
            push_joined(qb, "org_rollup_pending", "bucket_start", "x.fact_count", seg, step, filters);
        }
        Grain::Org | Grain::Team if seg.source.is_org() => {
            qb.push("SELECT ");
            push_bucket(qb, step, time);
            qb.push(format!(
                "{}, {} FROM {}",
                ORG_CARRIED.join(", "),
                metric_columns("", "fact_count", seg.subtract),
                seg.source.table()
            ));
            push_range(qb, time, seg.from_unix_s, seg.to_unix_s);
            push_filters(qb, filters, "", Some("ou_path"));
            // Deltas not yet drained into the org rollups: read in the same
            // statement, so each is counted exactly once.
            qb.push(" UNION ALL ");
            push_joined(qb, "org_rollup_pending", "bucket_start", "x.fact_count", seg, step, filters);
        }
        Grain::Org | Grain::Team => push_joined(qb, seg.source.table(), time, count, seg, step, filters),
    }
}

/// A segment of an account-level relation with its account's OU path.
fn push_joined(
    qb: &mut QueryBuilder<'_, Postgres>,
    table: &str,
    time: &str,
    count: &str,
    seg: &Segment,
    step: Option<Step>,
    filters: &Filters,
) {
    const OU: &str = "COALESCE(acc_ou.ou_path, '')";
    qb.push("SELECT ");
    push_bucket(qb, step, &format!("x.{time}"));
    qb.push(format!(
        "{OU} AS ou_path, x.region, x.service, x.resource_type, x.team, x.quality, {} \
         FROM {table} x LEFT JOIN accounts acc_ou ON acc_ou.account_id = x.account_id",
        metric_columns("x.", count, seg.subtract)
    ));
    push_range(qb, &format!("x.{time}"), seg.from_unix_s, seg.to_unix_s);
    push_filters(qb, filters, "x.", Some(OU));
}

/// The sums of every measure column of `u`, then the fact count.
static METRIC_SUMS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut cols: Vec<String> =
        crate::accounting::MEASURE_COLUMNS.iter().map(|c| format!("COALESCE(sum(u.{c}), 0)::float8")).collect();
    cols.push("COALESCE(sum(u.fact_count), 0)::bigint".into());
    cols.join(", ")
});

/// Builds the grouped query over `segments`. Columns: [bucket], dims, metrics.
fn grouped_query<'a>(
    segments: &[Segment],
    step: Option<Step>,
    group_by: &[Dimension],
    filters: &Filters,
    page: Option<Page>,
) -> QueryBuilder<'a, Postgres> {
    let grain = grain(group_by, filters);
    let mut qb = QueryBuilder::new("SELECT ");
    let mut keys: Vec<String> = Vec::new();
    if step.is_some() {
        keys.push("u.bucket_unix_s".into());
    }
    keys.extend(group_by.iter().map(|d| outer_expr(*d, grain).to_owned()));
    for key in &keys {
        qb.push(key);
        qb.push(", ");
    }
    qb.push(METRIC_SUMS.as_str());
    qb.push(" FROM (");
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        push_segment(&mut qb, seg, step, filters, grain);
    }
    qb.push(") u");
    if grain == Grain::Account && group_by.contains(&Dimension::Ou) {
        qb.push(" LEFT JOIN accounts a ON a.account_id = u.account_id");
    }
    if !keys.is_empty() {
        qb.push(" GROUP BY ");
        qb.push(keys.join(", "));
        // Groups whose facts were all superseded into other groups remain in
        // the rollups with a zero count; they are not part of the answer.
        qb.push(" HAVING COALESCE(sum(u.fact_count), 0) > 0");
    }
    if let Some(page) = page {
        let n = keys.len();
        let bucket_first = if step.is_some() { "1, " } else { "" };
        let location_col = n + 2;
        let dim_cols: Vec<String> = (usize::from(step.is_some()) + 1..=n).map(|i| i.to_string()).collect();
        qb.push(format!(" ORDER BY {bucket_first}{location_col} DESC"));
        for c in dim_cols {
            qb.push(format!(", {c}"));
        }
        qb.push(" LIMIT ");
        qb.push_bind(i64::from(page.limit) + 1);
        qb.push(" OFFSET ");
        qb.push_bind(page.offset as i64);
    }
    qb
}

fn metrics_at(row: &PgRow, first: usize) -> Result<Metrics, sqlx::Error> {
    let mut stored = [0.0; crate::accounting::MEASURES];
    for (i, v) in stored.iter_mut().enumerate() {
        *v = row.try_get(first + i)?;
    }
    Ok(Metrics::from_stored(&stored, row.try_get(first + crate::accounting::MEASURES)?))
}

fn dims_at(row: &PgRow, first: usize, group_by: &[Dimension]) -> Result<Vec<(Dimension, String)>, sqlx::Error> {
    group_by.iter().enumerate().map(|(i, d)| Ok((*d, row.try_get::<String, _>(first + i)?))).collect()
}

/// Trims the look-ahead row and computes the next offset.
fn paginate<T>(mut rows: Vec<T>, page: Page) -> (Vec<T>, Option<u64>) {
    if rows.len() > page.limit as usize {
        rows.truncate(page.limit as usize);
        (rows, Some(page.offset + u64::from(page.limit)))
    } else {
        (rows, None)
    }
}

/// One answer's view of the database: a REPEATABLE READ, READ ONLY
/// transaction and the retention horizons read in it. Every statement of an
/// answer runs here, so its parts agree with each other.
pub struct Snapshot {
    tx: Transaction<'static, Postgres>,
    horizons: Horizons,
}

impl QueryEngine {
    /// An engine over `pool`; `retention` is this process's configured
    /// retention. The horizons it implies at "now" are combined with the
    /// ones maintenance stored (`retention_horizons`, migration 0014): the
    /// later of the two per level.
    pub fn new(pool: PgPool, retention: RetentionPolicy) -> Self {
        QueryEngine { pool, retention }
    }

    /// The pool queries run on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a snapshot at `now_unix_s` (the server's clock, for the
    /// configured retention's horizons).
    pub async fn snapshot(&self, now_unix_s: i64) -> Result<Snapshot, QueryError> {
        let mut tx = self.pool.begin().await?;
        // LOCK TABLE takes no snapshot: the transaction's snapshot is taken
        // by the next statement, after the lock, so it cannot predate a
        // horizon that maintenance raised before dropping (see migration 0014).
        for statement in
            ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", "LOCK TABLE retention_horizons IN ACCESS SHARE MODE"]
        {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        let stored = horizons::read(&mut tx).await?;
        let mut horizons = stored.max(Horizons::of_policy(&self.retention, now_unix_s));
        let mode: String = sqlx::query_scalar("SELECT storage_mode FROM canopy_settings").fetch_one(&mut *tx).await?;
        if mode == "timescaledb" {
            horizons = horizons.max(Horizons::of_timescale_policies(now_unix_s));
        }
        Ok(Snapshot { tx, horizons })
    }

    /// Plans a totals range at `now_unix_s` over the account-level rollups,
    /// with the configured retention's horizons only.
    pub fn plan_totals(&self, from_unix_s: i64, to_unix_s: i64, now_unix_s: i64) -> Result<Vec<Segment>, RetentionError> {
        plan::plan(from_unix_s, to_unix_s, &TOTALS_LEVELS, &Horizons::of_policy(&self.retention, now_unix_s))
    }

    /// Totals over a range, grouped, paginated, with the overall total and
    /// its breakdown by quality flag, from one snapshot.
    pub async fn totals(&self, req: &TotalsRequest, now_unix_s: i64) -> Result<TotalsResponse, QueryError> {
        let mut snapshot = self.snapshot(now_unix_s).await?;
        let resp = snapshot.totals(req).await?;
        snapshot.finish().await?;
        Ok(resp)
    }

    /// Totals of the real-time view (see [`Snapshot::realtime_totals`]).
    pub async fn realtime_totals(&self, req: &TotalsRequest, now_unix_s: i64) -> Result<TotalsResponse, QueryError> {
        let mut snapshot = self.snapshot(now_unix_s).await?;
        let resp = snapshot.realtime_totals(req).await?;
        snapshot.finish().await?;
        Ok(resp)
    }

    /// A time series (see [`Snapshot::series`]).
    pub async fn series(&self, req: &SeriesRequest, now_unix_s: i64) -> Result<SeriesResponse, QueryError> {
        let mut snapshot = self.snapshot(now_unix_s).await?;
        let resp = snapshot.series(req).await?;
        snapshot.finish().await?;
        Ok(resp)
    }

    /// The real-time view (see [`Snapshot::realtime`]).
    pub async fn realtime(&self, req: &SeriesRequest, now_unix_s: i64) -> Result<SeriesResponse, QueryError> {
        let mut snapshot = self.snapshot(now_unix_s).await?;
        let resp = snapshot.realtime(req).await?;
        snapshot.finish().await?;
        Ok(resp)
    }

    /// The largest resources (see [`Snapshot::top_resources`]).
    pub async fn top_resources(&self, req: &TopResourcesRequest, now_unix_s: i64) -> Result<TopResourcesResponse, QueryError> {
        let mut snapshot = self.snapshot(now_unix_s).await?;
        let resp = snapshot.top_resources(req).await?;
        snapshot.finish().await?;
        Ok(resp)
    }
}

impl Snapshot {
    /// The horizons this snapshot plans with.
    pub fn horizons(&self) -> &Horizons {
        &self.horizons
    }

    /// The snapshot's connection, for a caller's own statements.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Ends the (read-only) transaction.
    pub async fn finish(self) -> Result<(), QueryError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Refuses `[from, to)` unless the per-resource facts hold all of it.
    pub fn check_facts(&self, from_unix_s: i64, to_unix_s: i64) -> Result<(), RetentionError> {
        plan::plan(from_unix_s, to_unix_s, &[], &self.horizons).map(|_| ())
    }

    /// Refuses a real-time range (derived from `now`) that starts before
    /// the real-time records' horizon.
    fn check_realtime(&self, from_unix_s: i64) -> Result<(), RetentionError> {
        let horizon = self.horizons.usable_from(Source::Realtime);
        if from_unix_s >= horizon {
            return Ok(());
        }
        Err(RetentionError {
            parameter: "now",
            found_unix_s: from_unix_s,
            round_down_unix_s: horizon,
            round_up_unix_s: horizon,
            message: format!(
                "expected a last hour starting at or after {} (older real-time group records have expired by \
                 retention), found one starting at {}",
                plan::rfc3339(horizon),
                plan::rfc3339(from_unix_s)
            ),
        })
    }

    /// Plans a totals request: org rollups unless it filters or groups by
    /// account.
    fn plan_request(&self, req: &TotalsRequest) -> Result<Vec<Segment>, RetentionError> {
        let levels = totals_levels(grain(&req.group_by, &req.filters));
        plan::plan(req.from_unix_s, req.to_unix_s, levels, &self.horizons)
    }

    /// Totals over a range, grouped, paginated, with the overall total and
    /// its breakdown by quality flag.
    pub async fn totals(&mut self, req: &TotalsRequest) -> Result<TotalsResponse, QueryError> {
        let segments = self.plan_request(req)?;
        // The quality breakdown needs no account dimension unless filtered
        // by account, so it may read other (org) rollups than the rows.
        let quality_req = TotalsRequest { group_by: vec![Dimension::Quality], ..req.clone() };
        let quality_segments = self.plan_request(&quality_req)?;
        self.totals_over(req, segments, quality_segments).await
    }

    /// Totals of the real-time view: the range read from the agents'
    /// 5-minute group records (`realtime_group_facts`) instead of the
    /// rollups; for "the last hour", which the hourly per-resource records
    /// have not reached yet.
    pub async fn realtime_totals(&mut self, req: &TotalsRequest) -> Result<TotalsResponse, QueryError> {
        self.check_realtime(req.from_unix_s)?;
        let segments = vec![Segment::add(Source::Realtime, req.from_unix_s, req.to_unix_s)];
        self.totals_over(req, segments.clone(), segments).await
    }

    async fn totals_over(
        &mut self,
        req: &TotalsRequest,
        segments: Vec<Segment>,
        quality_segments: Vec<Segment>,
    ) -> Result<TotalsResponse, QueryError> {
        let mut qb = grouped_query(&segments, None, &req.group_by, &req.filters, Some(req.page));
        let rows = qb.build().fetch_all(&mut *self.tx).await?;
        let n = req.group_by.len();
        let rows = rows
            .iter()
            .map(|r| Ok(GroupRow { dims: dims_at(r, 0, &req.group_by)?, metrics: metrics_at(r, n)? }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let (rows, next_offset) = paginate(rows, req.page);

        let mut qb = grouped_query(&quality_segments, None, &[Dimension::Quality], &req.filters, None);
        let quality_rows = qb.build().fetch_all(&mut *self.tx).await?;
        let mut by_quality = Vec::new();
        let mut total = Metrics::default();
        for r in &quality_rows {
            let quality: String = r.try_get(0)?;
            let metrics = metrics_at(r, 1)?;
            total.add(&metrics);
            by_quality.push(QualityShare { quality, metrics, share_of_location_co2e: 0.0 });
        }
        by_quality.sort_by(|a, b| a.quality.cmp(&b.quality));
        for share in &mut by_quality {
            share.share_of_location_co2e = if total.location_kg_co2e > 0.0 {
                share.metrics.location_kg_co2e / total.location_kg_co2e
            } else {
                0.0
            };
        }
        let factor_sets = crate::lineage::read(&mut self.tx, req.from_unix_s, req.to_unix_s, &req.filters.account).await?;
        Ok(TotalsResponse { segments, rows, total, by_quality, next_offset, factor_sets })
    }

    /// A time series at the request's step, read from the rollup of that
    /// step and finer ones (raw facts where those have expired); refused
    /// where only coarser levels than the step remain.
    pub async fn series(&mut self, req: &SeriesRequest) -> Result<SeriesResponse, QueryError> {
        // The step's rollup, and the finer ones for ragged edges: every
        // finer bucket lies inside one bucket of the step.
        let step_s = req.step.source().step_s().unwrap_or(i64::MAX);
        let levels: Vec<Source> = totals_levels(grain(&req.group_by, &req.filters))
            .iter()
            .copied()
            .filter(|l| l.step_s().is_some_and(|s| s <= step_s))
            .collect();
        let segments = plan::plan(req.from_unix_s, req.to_unix_s, &levels, &self.horizons)?;
        self.series_over(segments, req).await
    }

    /// The real-time view: `req`'s range at 5-minute resolution from the
    /// agents' 5-minute group records (`realtime_group_facts`), which arrive
    /// within one agent cycle, instead of the rollups of the hourly
    /// per-resource records.
    pub async fn realtime(&mut self, req: &SeriesRequest) -> Result<SeriesResponse, QueryError> {
        self.check_realtime(req.from_unix_s)?;
        let segments = vec![Segment::add(Source::Realtime, req.from_unix_s, req.to_unix_s)];
        self.series_over(segments, req).await
    }

    async fn series_over(&mut self, segments: Vec<Segment>, req: &SeriesRequest) -> Result<SeriesResponse, QueryError> {
        let mut qb = grouped_query(&segments, Some(req.step), &req.group_by, &req.filters, Some(req.page));
        let rows = qb.build().fetch_all(&mut *self.tx).await?;
        let n = req.group_by.len();
        let rows = rows
            .iter()
            .map(|r| {
                Ok(SeriesRow {
                    bucket_start_unix_s: r.try_get(0)?,
                    dims: dims_at(r, 1, &req.group_by)?,
                    metrics: metrics_at(r, n + 1)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let (rows, next_offset) = paginate(rows, req.page);
        let factor_sets = crate::lineage::read(&mut self.tx, req.from_unix_s, req.to_unix_s, &req.filters.account).await?;
        Ok(SeriesResponse { segments, rows, next_offset, factor_sets })
    }

    /// (energy priced with hourly intensity, all energy) of the facts of
    /// `[from, to)` under `filters`, kWh: the share of energy the live path
    /// priced hourly ([`crate::factors`]; the fact's location lineage says
    /// so). Read from the per-resource facts, so refused where those have
    /// expired; it scans the range's facts, so callers ask it for a month
    /// at most.
    pub async fn hourly_priced_energy(
        &mut self,
        from_unix_s: i64,
        to_unix_s: i64,
        filters: &Filters,
    ) -> Result<(f64, f64), QueryError> {
        self.check_facts(from_unix_s, to_unix_s)?;
        let mut qb = QueryBuilder::new(
            "SELECT COALESCE(sum(energy_kwh) FILTER (WHERE starts_with(factor_source, 'hourly:')), 0)::float8, \
             COALESCE(sum(energy_kwh), 0)::float8 FROM emission_facts_all",
        );
        push_range(&mut qb, "period_start", from_unix_s, to_unix_s);
        push_filters(&mut qb, filters, "", None);
        let row = qb.build().fetch_one(&mut *self.tx).await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The resources with the largest location-based CO2e over a range:
    /// whole UTC days from the per-resource daily rollup (migration 0029,
    /// at most one row per resource, group and day), ragged edges from the
    /// per-resource facts (added, or subtracted from a whole day, whichever
    /// reads fewer); refused where the levels that could answer an edge
    /// have expired.
    pub async fn top_resources(&mut self, req: &TopResourcesRequest) -> Result<TopResourcesResponse, QueryError> {
        let segments = plan::plan(req.from_unix_s, req.to_unix_s, &RESOURCE_LEVELS, &self.horizons)?;
        let mut qb = top_resources_query(&segments, &req.filters, req.page);
        let rows = qb.build().fetch_all(&mut *self.tx).await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(ResourceRow {
                    account_id: r.try_get(0)?,
                    region: r.try_get(1)?,
                    resource_id: r.try_get(2)?,
                    service: r.try_get(3)?,
                    resource_type: r.try_get(4)?,
                    team: r.try_get(5)?,
                    metrics: metrics_at(r, 6)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let (rows, next_offset) = paginate(rows, req.page);
        let factor_sets = crate::lineage::read(&mut self.tx, req.from_unix_s, req.to_unix_s, &req.filters.account).await?;
        Ok(TopResourcesResponse { segments, rows, next_offset, factor_sets })
    }
}

/// The top-resources statement over `segments` (per-resource daily rollup
/// or facts, signed). First ranks resources by location-based CO2e reading
/// only the keys, that measure and the count of every row of the range
/// (one hash aggregation; groups with no live fact dropped), then reads the
/// page's resources again whole (the rollup through its (account, region,
/// resource, day) index): every measure, and the service, resource type and
/// team of the resource's group with the latest period start among the
/// rows with live facts (as the facts query reported the latest fact's).
/// Columns: account, region, resource, service, resource type, team,
/// measures, fact count.
fn top_resources_query<'a>(segments: &[Segment], filters: &Filters, page: Page) -> QueryBuilder<'a, Postgres> {
    let sums = crate::accounting::MEASURE_COLUMNS.map(|c| format!("COALESCE(sum({c}), 0)::float8 AS {c}")).join(", ");
    let measures = crate::accounting::columns("m.");
    // The signed rows of every segment; `wide` selects every measure and
    // the labels, and only the ranked resources.
    let union = |qb: &mut QueryBuilder<'a, Postgres>, wide: bool| {
        if segments.is_empty() {
            qb.push(format!(
                "SELECT NULL::text AS account_id, NULL::text AS region, NULL::text AS resource_id, \
                 NULL::text AS service, NULL::text AS resource_type, NULL::text AS team, {}, 0::bigint AS fact_count, \
                 NULL::timestamptz AS last_period_start WHERE false",
                crate::accounting::MEASURE_COLUMNS.map(|c| format!("0::float8 AS {c}")).join(", ")
            ));
        }
        for (i, seg) in segments.iter().enumerate() {
            if i > 0 {
                qb.push(" UNION ALL ");
            }
            let sign = if seg.subtract { "-" } else { "" };
            let (count, last) = if seg.source == Source::Facts {
                ("1::bigint", "period_start")
            } else {
                ("fact_count", "last_period_start")
            };
            let columns = if wide {
                format!(
                    "service, resource_type, team, {}, {sign}{count} AS fact_count, {last} AS last_period_start",
                    crate::accounting::MEASURE_COLUMNS.map(|c| format!("{sign}{c} AS {c}")).join(", ")
                )
            } else {
                format!("{sign}location_g_co2e AS location_g_co2e, {sign}{count} AS fact_count")
            };
            qb.push(format!("SELECT account_id, region, resource_id, {columns} FROM {}", seg.source.table()));
            push_range(qb, seg.source.time_column(), seg.from_unix_s, seg.to_unix_s);
            if seg.source != Source::Facts {
                // Groups whose facts were all superseded stay with a zero count.
                qb.push(" AND fact_count <> 0");
            }
            if wide {
                qb.push(" AND (account_id, region, resource_id) IN (SELECT account_id, region, resource_id FROM r)");
            }
            push_filters(qb, filters, "", None);
        }
    };
    let mut qb = QueryBuilder::new(
        "WITH r AS (SELECT account_id, region, resource_id, sum(location_g_co2e) AS location_g_co2e FROM (",
    );
    union(&mut qb, false);
    qb.push(") u GROUP BY 1, 2, 3 HAVING sum(fact_count) > 0 ORDER BY 4 DESC, 1, 2, 3 LIMIT ");
    qb.push_bind(i64::from(page.limit) + 1);
    qb.push(" OFFSET ");
    qb.push_bind(page.offset as i64);
    qb.push("), w AS MATERIALIZED (");
    union(&mut qb, true);
    qb.push(format!(
        "), m AS (
            SELECT account_id, region, resource_id, {sums}, sum(fact_count)::bigint AS fact_count
            FROM w GROUP BY 1, 2, 3
         ),
         labels AS (
            SELECT DISTINCT ON (g.account_id, g.region, g.resource_id) g.account_id, g.region, g.resource_id,
                   g.service, g.resource_type, g.team
            FROM (SELECT account_id, region, resource_id, service, resource_type, team,
                         max(last_period_start) FILTER (WHERE fact_count > 0) AS last_period_start
                  FROM w GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(fact_count) > 0) g
            ORDER BY g.account_id, g.region, g.resource_id, g.last_period_start DESC NULLS LAST, g.service,
                     g.resource_type, g.team
         )
         SELECT r.account_id, r.region, r.resource_id, l.service, l.resource_type, l.team, {measures}, m.fact_count
         FROM r JOIN m USING (account_id, region, resource_id) JOIN labels l USING (account_id, region, resource_id)
         ORDER BY r.location_g_co2e DESC, 1, 2, 3"
    ));
    qb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_text_holds_no_values() {
        let filters = Filters {
            account: vec!["123456789012".into()],
            ou: vec!["r-1/ou-x".into()],
            team: vec!["web'; DROP TABLE accounts; --".into()],
            ..Filters::default()
        };
        let segments = [
            Segment::add(Source::Facts, 150, 300),
            Segment::add(Source::Daily, 86_400, 172_800),
        ];
        let qb = grouped_query(&segments, None, &[Dimension::Ou, Dimension::Team], &filters, Some(Page::default()));
        let sql = qb.sql();
        assert!(!sql.contains("DROP TABLE"), "{sql}");
        assert!(!sql.contains("123456789012"), "{sql}");
        assert!(!sql.contains("86400"), "{sql}");
        assert!(sql.contains("FROM rollup_daily") && sql.contains("FROM emission_facts_all_parts"), "{sql}");
        assert!(sql.contains("ORDER BY 4 DESC, 1, 2"), "{sql}");
    }
}
