//! The storage scale benchmark behind `canopy-aggregator bench-storage`:
//! loads a synthetic organisation straight into the rollup tables (server
//! side, `generate_series`), then times every query type through the same
//! [`QueryEngine`] the APIs use and reports p50 / p95 / p99, the relations
//! (partitions) each query read, load time, size on disk, and a projection
//! of size and load time for the full-depth dataset.
//!
//! Dataset: `accounts` accounts in 20 OUs (under 4 parent OUs), each with
//! `series_per_account` (region, service, resource type, team, quality)
//! series drawn from 15 regions, 30 services and 50 teams. Teams belong to
//! one OU each and work in 3 home regions with 6 services, so the org has at
//! most 50 × 3 × 6 × 2 types × 3 quality flags = 5,400 distinct groups per
//! bucket, however many accounts it has.
//!
//! Full width, limited depth: every series is loaded at every level, but
//! each level only over its own number of days before "now":
//! daily and monthly rollups over `history_days` (13 months, from the first
//! of that month so every monthly row is a whole month), hourly over
//! `hourly_days`, 5-minute rollups over `five_minute_days`, the agents'
//! 5-minute group records (`realtime_group_facts`) over `realtime_days`, and
//! hourly per-resource facts for `sample_accounts` accounts ×
//! `resources_per_sample_account` resources over `facts_days`, stored as
//! native mode stores them ([`FactsLayout::Segments`], the default: one
//! `emission_fact_segments` row per (hour, account, region) holding that
//! group's records as arrays) or, to compare, as the rows of
//! `emission_facts` that native mode wrote before migration 0012
//! ([`FactsLayout::Rows`]); queries read both through the view
//! `emission_facts_all`. Each level is
//! generated directly from one formula per series (hour `h`: `base_kwh ×
//! (1 + 0.3 sin(h / 3600))`), so a daily row equals the sum of its 24 hourly
//! rows and an hourly row the sum of its 12 five-minute rows wherever both
//! are loaded, and the org rollups equal the account-level ones grouped by
//! OU (the team rollups: by team and quality), up to floating-point
//! rounding.
//!
//! The depth limit must not change what the measured queries read: before
//! loading, every query's planned segments are checked to lie within the
//! loaded days of their level and, for a level loaded less deep than the
//! full dataset, within partitions that are completely loaded (the hourly
//! rollups are partitioned by month, so the oldest loaded month is only
//! partly there); after loading, each query runs once on its own connection
//! and the partitions it actually scanned (PostgreSQL's per-relation scan
//! counters) are reported and checked the same way. The bench refuses to
//! measure otherwise. The figures are synthetic; only latency and size are
//! measured.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Instant;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::db::{self, DbError};
use crate::maintenance::RetentionPolicy;
use crate::model::{Batch, FactRow, Quality};
use crate::query::plan::{self, RESOURCE_LEVELS, TOTALS_LEVELS};
use crate::query::{
    Dimension, Filters, Page, QueryEngine, Segment, SeriesRequest, Source, Step, TopResourcesRequest, TotalsRequest,
};
use crate::time::{DAY_S, HOUR_S, days_from_civil, floor_to, month_start_shifted, yyyymmdd};

/// Size of the generated dataset.
#[derive(Debug, Clone, Copy)]
pub struct BenchConfig {
    /// Accounts in the organisation.
    pub accounts: u32,
    /// Distinct group series per account.
    pub series_per_account: u32,
    /// Days of daily and monthly rollups (13 months = 395).
    pub history_days: u32,
    /// Days of hourly rollups, the newest ones (at most `history_days`).
    pub hourly_days: u32,
    /// Days of 5-minute rollups (at most `history_days`).
    pub five_minute_days: u32,
    /// Days of 5-minute group records in `realtime_group_facts` (at most
    /// `history_days`).
    pub realtime_days: u32,
    /// Days of per-resource hourly facts for the sampled accounts.
    pub facts_days: u32,
    /// Accounts with per-resource facts.
    pub sample_accounts: u32,
    /// Resources per sampled account (and per account of the per-resource
    /// daily rollup).
    pub resources_per_sample_account: u32,
    /// Accounts with per-resource daily rollup rows (migration 0029), the
    /// first ones: accounts `0 .. n` × `resources_per_sample_account`
    /// resources, the sampled accounts' rows equal to their facts' daily
    /// sums.
    pub resource_rollup_accounts: u32,
    /// Days of per-resource daily rollup rows, the newest ones.
    pub resource_rollup_days: u32,
    /// Timed runs per query type.
    pub runs: u32,
    /// Batches of 1,000 facts in the `store_batch` measurement after the
    /// queries (0: none).
    pub ingest_batches: u32,
    /// "Now" of the dataset (its newest hour ends at the next whole hour),
    /// Unix seconds.
    pub now_unix_s: i64,
    /// How the per-resource facts are stored.
    pub facts_layout: FactsLayout,
}

/// How the bench stores the per-resource facts. Queries read them through
/// the view `emission_facts_all` (rows of `emission_facts`, then the live
/// positions of `emission_fact_segments`) either way; the partitions of both
/// tables are created over the facts' months, as native mode's maintenance
/// and ingest create them, and the data goes into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FactsLayout {
    /// One `emission_facts` row per record: native mode before migration
    /// 0012 (and TimescaleDB mode).
    Rows,
    /// One `emission_fact_segments` row per (hour, account, region) holding
    /// that group's records as parallel arrays, sorted by record key, none
    /// superseded: what native-mode ingest writes since migration 0012. The
    /// key hashes are PostgreSQL's `hashtextextended(record_key, 0)`, not the
    /// aggregator's FNV-1a ([`crate::fact_segments::key_hash`]): the bench's
    /// records never go through ingest, and no query reads the hashes (only
    /// ingest's revision check, which confirms every hash match against the
    /// stored key).
    #[default]
    Segments,
}

impl FactsLayout {
    /// The table the facts are loaded into.
    pub fn table(self) -> &'static str {
        match self {
            FactsLayout::Rows => "emission_facts",
            FactsLayout::Segments => "emission_fact_segments",
        }
    }

    /// SQL counting the records the layout's table holds: its rows, or the
    /// live (not superseded) positions of its segments.
    fn count_records_sql(self) -> &'static str {
        match self {
            FactsLayout::Rows => "SELECT count(*) FROM emission_facts",
            FactsLayout::Segments => {
                "SELECT COALESCE(sum(record_count - cardinality(superseded)), 0)::bigint FROM emission_fact_segments"
            }
        }
    }
}

/// Days of 5-minute data (rollups and group records) the full-depth
/// dataset holds: the default 5-minute retention.
pub fn full_five_minute_days() -> u32 {
    RetentionPolicy::default().five_minute_days
}

/// Which loaded depth a table (or a query segment) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Daily and monthly rollups.
    History,
    /// Hourly rollups.
    Hourly,
    /// 5-minute rollups.
    FiveMinute,
    /// `realtime_group_facts`.
    Realtime,
    /// Per-resource facts.
    Facts,
    /// The per-resource daily rollup (`resource_rollup_daily`).
    Resources,
}

impl Depth {
    /// The depth of a relation by its name (`*_5m`, `*_hourly`, `*_daily`,
    /// `*_monthly`, the group records, the facts: the view
    /// `emission_facts_all` queries read and the two tables under it); None
    /// for other relations.
    pub fn of_table(table: &str) -> Option<Depth> {
        if table == "realtime_group_facts" {
            Some(Depth::Realtime)
        } else if table == "resource_rollup_daily" {
            Some(Depth::Resources)
        } else if matches!(table, "emission_facts_all" | "emission_facts_all_parts" | "emission_facts" | "emission_fact_segments") {
            Some(Depth::Facts)
        } else if table.ends_with("_5m") {
            Some(Depth::FiveMinute)
        } else if table.ends_with("_hourly") {
            Some(Depth::Hourly)
        } else if table.ends_with("_daily") || table.ends_with("_monthly") {
            Some(Depth::History)
        } else {
            None
        }
    }

    /// How the tables of this depth are partitioned (native mode).
    fn partitioning(self) -> Partitioning {
        match self {
            Depth::History | Depth::Resources => Partitioning::Plain,
            Depth::Hourly | Depth::Facts => Partitioning::Month,
            Depth::FiveMinute | Depth::Realtime => Partitioning::Day,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partitioning {
    Plain,
    Day,
    Month,
}

/// The rollup and group-record tables the benchmark loads, with their depth.
pub const ROLLUP_TABLES: [(&str, Depth); 11] = [
    ("rollup_5m", Depth::FiveMinute),
    ("rollup_hourly", Depth::Hourly),
    ("rollup_daily", Depth::History),
    ("rollup_monthly", Depth::History),
    ("org_rollup_5m", Depth::FiveMinute),
    ("org_rollup_hourly", Depth::Hourly),
    ("org_rollup_daily", Depth::History),
    ("org_rollup_monthly", Depth::History),
    ("org_team_rollup_daily", Depth::History),
    ("org_team_rollup_monthly", Depth::History),
    ("realtime_group_facts", Depth::Realtime),
];

/// The time-series tables the benchmark loads with `facts`, with their
/// depth: the rollups, the group records and the facts' table.
pub fn tables(facts: FactsLayout) -> Vec<(&'static str, Depth)> {
    let mut all = ROLLUP_TABLES.to_vec();
    all.push((facts.table(), Depth::Facts));
    all.push(("resource_rollup_daily", Depth::Resources));
    all
}

/// The relation the bench loads the data of `source` into: the facts' table
/// of the layout for the view `emission_facts_all`, the source's own table
/// otherwise.
pub fn loaded_table(source: Source, facts: FactsLayout) -> &'static str {
    match source {
        Source::Facts => facts.table(),
        other => other.table(),
    }
}

/// Where each level's data starts (inclusive) and ends (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// End of the newest loaded hour (the hour after "now" starts here).
    pub end_unix_s: i64,
    /// First day of the daily and monthly rollups: the first of the month
    /// `history_days` before the end.
    pub history_from_unix_s: i64,
    /// First day of the hourly rollups.
    pub hourly_from_unix_s: i64,
    /// First day of the 5-minute rollups.
    pub five_minute_from_unix_s: i64,
    /// First day of the 5-minute group records.
    pub realtime_from_unix_s: i64,
    /// First day of the per-resource facts.
    pub facts_from_unix_s: i64,
    /// First day of the per-resource daily rollup.
    pub resources_from_unix_s: i64,
}

impl Layout {
    /// What `cfg` loads.
    pub fn loaded(cfg: &BenchConfig) -> Layout {
        let end = floor_to(cfg.now_unix_s, HOUR_S) + HOUR_S;
        let back = |days: u32| floor_to(end - i64::from(days) * DAY_S, DAY_S);
        Layout {
            end_unix_s: end,
            // From the first of its month, so the oldest month's rollups are
            // complete (a range starting mid-month may read that month whole
            // and subtract the days before the range).
            history_from_unix_s: month_start_shifted(back(cfg.history_days), 0),
            hourly_from_unix_s: back(cfg.hourly_days),
            five_minute_from_unix_s: back(cfg.five_minute_days),
            realtime_from_unix_s: back(cfg.realtime_days),
            facts_from_unix_s: back(cfg.facts_days),
            resources_from_unix_s: back(cfg.resource_rollup_days),
        }
    }

    /// The full-depth dataset of the same width: hourly rollups over the
    /// whole history, 5-minute rollups and group records over the default
    /// 5-minute retention (35 days), facts as configured.
    pub fn full_depth(cfg: &BenchConfig) -> Layout {
        let five = full_five_minute_days().min(cfg.history_days);
        Layout::loaded(&BenchConfig {
            hourly_days: cfg.history_days,
            five_minute_days: cfg.five_minute_days.max(five),
            realtime_days: cfg.realtime_days.max(five),
            ..*cfg
        })
    }

    /// First loaded instant of `depth`.
    pub fn from_unix_s(&self, depth: Depth) -> i64 {
        match depth {
            Depth::History => self.history_from_unix_s,
            Depth::Hourly => self.hourly_from_unix_s,
            Depth::FiveMinute => self.five_minute_from_unix_s,
            Depth::Realtime => self.realtime_from_unix_s,
            Depth::Facts => self.facts_from_unix_s,
            Depth::Resources => self.resources_from_unix_s,
        }
    }

    /// First instant from which every partition of `depth` is completely
    /// loaded (the oldest month partition of a month-partitioned level that
    /// starts mid-month is only partly loaded).
    pub fn complete_from_unix_s(&self, depth: Depth) -> i64 {
        let from = self.from_unix_s(depth);
        match depth.partitioning() {
            Partitioning::Plain | Partitioning::Day => from,
            Partitioning::Month if month_start_shifted(from, 0) == from => from,
            Partitioning::Month => month_start_shifted(from, 1),
        }
    }
}

/// Groups per bucket of each family of rollups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Groups {
    /// Account-level group series.
    pub series: i64,
    /// Org groups (distinct OU × group).
    pub org: i64,
    /// Team groups (distinct team × quality).
    pub team: i64,
}

/// Rows of each table for `layout` with `groups` per bucket. For the facts'
/// table this counts records whatever the layout: rows of `emission_facts`,
/// or the records of `emission_fact_segments` (the sum of `record_count`, all
/// live after a load); [`expected_fact_segments`] counts the segments.
pub fn expected_rows(cfg: &BenchConfig, layout: &Layout, groups: Groups) -> Vec<(&'static str, i64)> {
    let end = layout.end_unix_s;
    let slots = |from: i64, step: i64| (end - from).max(0) / step;
    let days = |from: i64| (end - from + DAY_S - 1).max(0) / DAY_S;
    let mut months = 0;
    let mut m = month_start_shifted(layout.history_from_unix_s, 0);
    while m < end {
        months += 1;
        m = month_start_shifted(m, 1);
    }
    let sampled = i64::from(cfg.sample_accounts.min(cfg.accounts)) * i64::from(cfg.resources_per_sample_account);
    let rolled = i64::from(cfg.resource_rollup_accounts.min(cfg.accounts)) * i64::from(cfg.resources_per_sample_account);
    tables(cfg.facts_layout)
        .into_iter()
        .map(|(table, depth)| {
            let from = layout.from_unix_s(depth);
            let per_group = match depth {
                Depth::FiveMinute | Depth::Realtime => slots(from, 300),
                Depth::Hourly | Depth::Facts => slots(from, HOUR_S),
                Depth::History | Depth::Resources if table.ends_with("_daily") => days(from),
                Depth::History | Depth::Resources => months,
            };
            let n = if depth == Depth::Facts {
                sampled
            } else if depth == Depth::Resources {
                rolled
            } else if table.starts_with("org_team_") {
                groups.team
            } else if table.starts_with("org_") {
                groups.org
            } else {
                groups.series
            };
            (table, n * per_group)
        })
        .collect()
}

/// Segments of `emission_fact_segments` after loading `layout` with the
/// segment layout (0 with rows): one per (hour, sampled account, region of
/// its resources); resource `r` is in region `r % 15`.
pub fn expected_fact_segments(cfg: &BenchConfig, layout: &Layout) -> i64 {
    if cfg.facts_layout != FactsLayout::Segments {
        return 0;
    }
    let hours = (layout.end_unix_s - layout.facts_from_unix_s).max(0) / HOUR_S;
    let regions = i64::from(cfg.resources_per_sample_account.min(REGIONS));
    i64::from(cfg.sample_accounts.min(cfg.accounts)) * regions * hours
}

/// A time range of one source a query read (a plan segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRange {
    /// Where it was read.
    pub source: Source,
    /// Inclusive start, Unix seconds.
    pub from_unix_s: i64,
    /// Exclusive end, Unix seconds.
    pub to_unix_s: i64,
}

impl ReadRange {
    fn of(s: &Segment) -> ReadRange {
        ReadRange { source: s.source, from_unix_s: s.from_unix_s, to_unix_s: s.to_unix_s }
    }
}

/// One relation (a partition, or a plain table) family a query read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationsRead {
    /// The table (partitioned parent or plain table).
    pub table: String,
    /// Partitions of it scanned (1 for a plain table).
    pub relations: u32,
    /// Lower bound of the oldest partition scanned (None for a plain table).
    pub oldest_partition_from_unix_s: Option<i64>,
    /// Lower bound of the newest partition scanned (None for a plain table).
    pub newest_partition_from_unix_s: Option<i64>,
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
    /// Segments of the probe run, as the engine planned them (org sources
    /// where it read the org rollups).
    pub segments: Vec<ReadRange>,
    /// Relations the probe run scanned, per table.
    pub relations_read: Vec<RelationsRead>,
}

impl QueryFigures {
    /// Relations (partitions and plain tables) the probe run scanned.
    pub fn relation_count(&self) -> u32 {
        self.relations_read.iter().map(|r| r.relations).sum()
    }
}

/// Measured size and load time of one table.
#[derive(Debug, Clone)]
pub struct TableFigures {
    /// Table.
    pub table: &'static str,
    /// Rows loaded (equal to the formula, checked).
    pub rows: i64,
    /// Seconds its inserts took.
    pub load_s: f64,
    /// pg_total_relation_size over its partitions (heap, indexes, TOAST).
    pub bytes: i64,
    /// Rows of the full-depth dataset (formula).
    pub full_depth_rows: i64,
}

impl TableFigures {
    /// Measured bytes per row.
    pub fn bytes_per_row(&self) -> f64 {
        if self.rows == 0 { 0.0 } else { self.bytes as f64 / self.rows as f64 }
    }

    /// Measured rows per second of its inserts.
    pub fn rows_per_s(&self) -> f64 {
        if self.load_s > 0.0 { self.rows as f64 / self.load_s } else { 0.0 }
    }

    /// Projected bytes at full depth: measured bytes per row × full rows.
    pub fn projected_bytes(&self) -> f64 {
        self.bytes_per_row() * self.full_depth_rows as f64
    }

    /// Projected insert seconds at full depth at the measured rate.
    pub fn projected_load_s(&self) -> f64 {
        let rate = self.rows_per_s();
        if rate > 0.0 { self.full_depth_rows as f64 / rate } else { 0.0 }
    }
}

/// What loading produced.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The loaded layout.
    pub layout: Layout,
    /// Groups per bucket of each family.
    pub groups: Groups,
    /// Rows inserted per table (records for `emission_fact_segments`), and
    /// the seconds its inserts took.
    pub tables: Vec<(&'static str, i64, f64)>,
    /// Segments (rows) of `emission_fact_segments` holding those records
    /// (0 with the row layout).
    pub fact_segments: i64,
    /// Accounts inserted.
    pub accounts: i64,
    /// Wall time of the inserts (with the partitions and helper tables).
    pub load_s: f64,
    /// Wall time of the VACUUM (ANALYZE) after the inserts.
    pub vacuum_analyze_s: f64,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// The configuration.
    pub config: BenchConfig,
    /// What was loaded.
    pub layout: Layout,
    /// The full-depth dataset the projection is for.
    pub full_depth: Layout,
    /// Groups per bucket of each family.
    pub groups: Groups,
    /// Accounts loaded.
    pub accounts: i64,
    /// Per table: rows (records for `emission_fact_segments`), load time,
    /// size, full-depth rows.
    pub tables: Vec<TableFigures>,
    /// Segments of `emission_fact_segments` loaded (0 with the row layout).
    pub fact_segments: i64,
    /// Wall time of the inserts, seconds.
    pub load_s: f64,
    /// Wall time of VACUUM (ANALYZE) after them, seconds.
    pub vacuum_analyze_s: f64,
    /// Database size after load, bytes.
    pub database_bytes: i64,
    /// Per query type.
    pub queries: Vec<QueryFigures>,
    /// Ingest through `store_batch` after the queries: facts per second
    /// over `ingest_batches` batches of 1,000 new facts each, then the same
    /// again as superseding revisions (0 when not run).
    pub ingest_new_facts_per_s: f64,
    /// Facts per second for the superseding pass.
    pub ingest_revised_facts_per_s: f64,
    /// Pending org-rollup rows the ingest passes queued, drained at once.
    pub org_drain_rows: u64,
    /// Wall time of that drain, seconds.
    pub org_drain_s: f64,
}


/// Facts per batch in the ingest measurement.
const INGEST_BATCH_FACTS: u32 = 1_000;
/// Most batches in the ingest measurement (bounds the rows it adds, which
/// [`remeasure`] tolerates).
const MAX_INGEST_BATCHES: u32 = 100;

/// Times `store_batch` on `batches` batches of new facts, then on the
/// same keys with a higher revision; returns facts per second for each pass.
async fn time_ingest(pool: &PgPool, now_unix_s: i64, batches: u32) -> Result<(f64, f64), BenchError> {
    let hour = floor_to(now_unix_s, HOUR_S) + HOUR_S; // the next hour: no overlap with loaded facts
    let mut rates = Vec::new();
    for revision in [1u32, 2] {
        let started = Instant::now();
        for b in 0..batches {
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
                        accounting: Some(crate::model::Accounting {
                            parts: crate::accounting::FactParts::from_record(e / 1.135, e * 350.0, e * 100.0, e * 50.0, e * 320.0, e * 500.0),
                            market_factor_source: "bench".into(),
                            market_factor_vintage: "2024".into(),
                        }),
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
        rates.push(f64::from(batches * INGEST_BATCH_FACTS) / started.elapsed().as_secs_f64());
    }
    Ok((rates[0], rates[1]))
}


/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The target database already holds data.
    #[error("expected an empty database for the benchmark, found {0} rows in rollup_hourly")]
    NotEmpty(i64),
    /// The configuration cannot be loaded.
    #[error("invalid benchmark configuration: {0}")]
    Config(String),
    /// A query would read data the depth-limited dataset does not hold as
    /// the full-depth one would.
    #[error("query \"{query}\" {detail}")]
    DepthChangesQuery {
        /// Query type.
        query: &'static str,
        /// What it reads and what is loaded.
        detail: String,
    },
    /// The engine planned a query differently from the bench's prediction.
    #[error("query \"{query}\": the engine planned {planned}, the bench predicted {predicted}")]
    PlanMismatch {
        /// Query type.
        query: &'static str,
        /// Segments the engine used.
        planned: String,
        /// Segments the depth check was made for.
        predicted: String,
    },
    /// A table holds another number of rows than the formula.
    #[error("{table}: loaded {found} rows, the formula gives {expected}")]
    RowCount {
        /// Table.
        table: &'static str,
        /// Formula.
        expected: i64,
        /// Inserted.
        found: i64,
    },
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

/// The account id of account number `i`.
pub fn account_id(i: u32) -> String {
    format!("{:012}", 100_000_000_000u64 + u64::from(i))
}

fn date(t_unix_s: i64) -> String {
    let d = yyyymmdd(t_unix_s);
    format!("{}-{}-{}", &d[0..4], &d[4..6], &d[6..8])
}

fn check_config(cfg: &BenchConfig) -> Result<(), BenchError> {
    if cfg.accounts == 0 || cfg.series_per_account == 0 || cfg.history_days == 0 {
        return Err(BenchError::Config("accounts, series per account and history days must be at least 1".into()));
    }
    if cfg.ingest_batches > MAX_INGEST_BATCHES {
        return Err(BenchError::Config(format!(
            "ingest batches is {}; it must be at most {MAX_INGEST_BATCHES}",
            cfg.ingest_batches
        )));
    }
    for (name, days) in
        [("hourly days", cfg.hourly_days), ("5-minute days", cfg.five_minute_days), ("realtime days", cfg.realtime_days)]
    {
        if days == 0 || days > cfg.history_days {
            return Err(BenchError::Config(format!(
                "{name} is {days}; it must be between 1 and the history days ({})",
                cfg.history_days
            )));
        }
    }
    Ok(())
}

/// Loads the dataset, checks it and times the queries.
pub async fn run(pool: &PgPool, cfg: &BenchConfig) -> Result<BenchReport, BenchError> {
    let loaded = load_dataset(pool, cfg).await?;
    measure(pool, cfg, &loaded).await
}

/// Times the queries again on a dataset [`run`] loaded with the same
/// configuration (`cfg.now_unix_s` must be that run's "now"): the row count
/// of every table is checked against [`expected_rows`] as after a load;
/// load times are reported as 0 (not measured in this run).
pub async fn remeasure(pool: &PgPool, cfg: &BenchConfig) -> Result<BenchReport, BenchError> {
    check_config(cfg)?;
    let layout = Layout::loaded(cfg);
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await };
    let series = i64::from(cfg.accounts) * i64::from(cfg.series_per_account);
    // Groups per bucket, from the oldest month (every series has data in
    // every month; the ingest measurement only added rows to the newest).
    let org = count("SELECT count(*) FROM org_rollup_monthly
                     WHERE bucket_start = (SELECT min(bucket_start) FROM org_rollup_monthly)")
        .await?;
    let team = count("SELECT count(*) FROM org_team_rollup_monthly
                      WHERE bucket_start = (SELECT min(bucket_start) FROM org_team_rollup_monthly)")
        .await?;
    let groups = Groups { series, org, team };
    let mut tables = Vec::new();
    for (table, expected) in expected_rows(cfg, &layout, groups) {
        // Records for the facts' table (live segment positions, or rows).
        let sql = if table == cfg.facts_layout.table() {
            cfg.facts_layout.count_records_sql().to_owned()
        } else {
            format!("SELECT count(*) FROM {table}")
        };
        let found: i64 = sqlx::query_scalar(&sql).fetch_one(pool).await?;
        // The first run's ingest measurement (at most MAX_INGEST_BATCHES
        // batches of INGEST_BATCH_FACTS new facts, then the same keys at a
        // higher revision, all in the hour after the dataset) may have added
        // rows and live records; nothing else may differ.
        let surplus = found - expected;
        if !(0..=i64::from(MAX_INGEST_BATCHES) * i64::from(INGEST_BATCH_FACTS)).contains(&surplus) {
            return Err(BenchError::RowCount { table, expected, found });
        }
        tables.push((table, expected, 0.0));
    }
    // Segments of the loaded hours (the ingest measurement's lie after them).
    let fact_segments = if cfg.facts_layout == FactsLayout::Segments {
        let found: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM emission_fact_segments WHERE period_start < to_timestamp($1::bigint)",
        )
        .bind(layout.end_unix_s)
        .fetch_one(pool)
        .await?;
        let expected = expected_fact_segments(cfg, &layout);
        if found != expected {
            return Err(BenchError::RowCount { table: "emission_fact_segments (segments)", expected, found });
        }
        found
    } else {
        0
    };
    let accounts = count("SELECT count(*) FROM accounts").await?;
    let loaded = Loaded { layout, groups, tables, fact_segments, accounts, load_s: 0.0, vacuum_analyze_s: 0.0 };
    measure(pool, cfg, &loaded).await
}


/// The hourly factor of hour `t` (a bigint SQL expression of Unix seconds):
/// `1 + 0.3 sin(hour index)`, the same double wherever it is computed.
fn hour_factor(t: &str) -> String {
    format!("(1 + 0.3 * sin((({t}) / 3600)::float8))")
}

/// Accumulates rows (records for `emission_fact_segments`) and seconds per
/// table, and the segments written.
#[derive(Default)]
struct LoadTimes {
    tables: BTreeMap<&'static str, (i64, f64)>,
    fact_segments: i64,
}

impl LoadTimes {
    fn add(&mut self, table: &'static str, rows: u64, started: Instant) {
        let e = self.tables.entry(table).or_default();
        e.0 += rows as i64;
        e.1 += started.elapsed().as_secs_f64();
    }
}

/// Runs one insert for `table` on `conn`, adding its rows and time.
async fn insert(
    conn: &mut PgConnection,
    times: &mut LoadTimes,
    table: &'static str,
    sql: &str,
    binds: &[i64],
) -> Result<(), sqlx::Error> {
    let started = Instant::now();
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    let done = q.execute(&mut *conn).await?;
    times.add(table, done.rows_affected(), started);
    Ok(())
}

/// Creates the partitions of `parent` (by `unit`) for every day in
/// `[from, to)`.
async fn ensure_partitions(conn: &mut PgConnection, parent: &str, unit: &str, from: i64, to: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT count(*) FILTER (WHERE canopy_ensure_partition($1, $2, to_timestamp(d)))
         FROM generate_series($3::bigint, $4::bigint - 1, 86400) d",
    )
    .bind(parent)
    .bind(unit)
    .bind(from)
    .bind(to)
    .execute(conn)
    .await?;
    Ok(())
}

/// Migrates, checks the configuration and loads the dataset into an empty
/// database; checks every table's row count against [`expected_rows`].
pub async fn load_dataset(pool: &PgPool, cfg: &BenchConfig) -> Result<Loaded, BenchError> {
    check_config(cfg)?;
    let layout = Layout::loaded(cfg);
    let full = Layout::full_depth(cfg);
    // Refuse before loading when a query would read beyond the loaded depth.
    for (name, requests) in query_cases(cfg) {
        for q in &requests {
            check_ranges(name, &predicted_ranges(q, cfg.now_unix_s), cfg.facts_layout, &layout, &full)?;
        }
    }
    // The bench loads the native tables (segments, partitions) itself.
    db::migrate_with(pool, db::StorageChoice::Native).await?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM rollup_hourly").fetch_one(pool).await?;
    if existing > 0 {
        return Err(BenchError::NotEmpty(existing));
    }
    // One session of its own, never returned to the pool, with settings for
    // a bulk load: commits need not wait for the WAL flush (a crash loses at
    // most the last moments of a benchmark load, never consistency), more
    // memory for sorts and maintenance.
    let mut conn = pool.acquire().await?.detach();
    sqlx::raw_sql("SET synchronous_commit = off; SET maintenance_work_mem = '1GB'; SET work_mem = '64MB'")
        .execute(&mut conn)
        .await?;
    let started = Instant::now();
    let times = load_on(&mut conn, cfg, &layout).await?;
    let load_s = started.elapsed().as_secs_f64();
    let vacuum_started = Instant::now();
    sqlx::raw_sql("VACUUM (ANALYZE)").execute(&mut conn).await?;
    let vacuum_analyze_s = vacuum_started.elapsed().as_secs_f64();
    let series: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_series").fetch_one(&mut conn).await?;
    let org: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_org_series").fetch_one(&mut conn).await?;
    let team: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_team_series").fetch_one(&mut conn).await?;
    conn.close().await?;
    let groups = Groups { series, org, team };

    let accounts = times.tables.get("accounts").map_or(0, |e| e.0);
    let mut tables = Vec::new();
    for (table, expected) in expected_rows(cfg, &layout, groups) {
        let (found, secs) = times.tables.get(table).copied().unwrap_or_default();
        if found != expected {
            return Err(BenchError::RowCount { table, expected, found });
        }
        tables.push((table, found, secs));
    }
    let expected_segments = expected_fact_segments(cfg, &layout);
    if times.fact_segments != expected_segments {
        return Err(BenchError::RowCount {
            table: "emission_fact_segments (segments)",
            expected: expected_segments,
            found: times.fact_segments,
        });
    }
    let expected_series = i64::from(cfg.accounts) * i64::from(cfg.series_per_account);
    if series != expected_series {
        return Err(BenchError::RowCount { table: "bench_series", expected: expected_series, found: series });
    }
    Ok(Loaded { layout, groups, tables, fact_segments: times.fact_segments, accounts, load_s, vacuum_analyze_s })
}

/// A family of rollup tables and the generated series feeding it (all
/// aliased `s`): its table prefix, its group columns and the fact count one
/// of its series rows stands for per hour.
struct Family {
    prefix: &'static str,
    series: &'static str,
    groups: &'static str,
    hourly_facts: &'static str,
}

/// Account-level, org (OU instead of account) and team rollups.
const FAMILIES: [Family; 3] = [
    Family {
        prefix: "rollup",
        series: "bench_series",
        groups: "s.account_id, s.region, s.service, s.resource_type, s.team, s.quality",
        hourly_facts: "12",
    },
    Family {
        prefix: "org_rollup",
        series: "bench_org_series",
        groups: "s.ou_path, s.region, s.service, s.resource_type, s.team, s.quality",
        hourly_facts: "12 * s.series",
    },
    Family {
        prefix: "org_team_rollup",
        series: "bench_team_series",
        groups: "s.team, s.quality",
        hourly_facts: "12 * s.series",
    },
];

/// Rollup levels the loader generates.
#[derive(Clone, Copy)]
enum Level {
    /// One statement per day (`$1` the day), from `bench_days`.
    Daily,
    /// One statement for every month, from `bench_months`.
    Monthly,
    /// `$1 ..$2` in hours.
    Hourly,
    /// `$1 ..$2` in 5-minute slots (a twelfth of the hour's energy and facts).
    FiveMinutes,
}

/// The INSERT of one level of one family: every row from the same formula
/// (`base_kwh` × the hour factor, summed over the bucket's hours), so the
/// levels of a family sum to each other and the families to each other.
fn rollup_insert(family: Family, level: Level) -> String {
    let Family { prefix, series, groups, hourly_facts } = family;
    let (suffix, time, from, energy, facts, tail) = match level {
        Level::Daily => (
            "daily",
            "d.d",
            "bench_days d",
            "s.base_kwh * d.f".to_owned(),
            format!("d.hours * {hourly_facts}"),
            "WHERE d.d = $1",
        ),
        Level::Monthly => (
            "monthly",
            "mo.m",
            "bench_months mo",
            "s.base_kwh * mo.f".to_owned(),
            format!("mo.hours * {hourly_facts}"),
            "ORDER BY 1",
        ),
        Level::Hourly => (
            "hourly",
            "h",
            "generate_series($1::bigint, $2::bigint - 3600, 3600) h",
            format!("s.base_kwh * {}", hour_factor("h")),
            hourly_facts.to_owned(),
            "",
        ),
        Level::FiveMinutes => (
            "5m",
            "m",
            "generate_series($1::bigint, $2::bigint - 300, 300) m",
            format!("s.base_kwh * {} / 12", hour_factor("m")),
            format!("{hourly_facts} / 12"),
            "",
        ),
    };
    // After fact_count, the parts of migration 0022 in table order, by the
    // unsplit rule the facts (loaded without parts) are read with.
    format!(
        "INSERT INTO {prefix}_{suffix}
         SELECT to_timestamp({time}), {groups}, v.e, v.e * 400, v.e * 150, v.e * 320, v.e * 500, {facts},
                v.e, v.e * 400, v.e * 320, v.e * 500, v.e * 150, v.e * 150, v.e * 150, 0, 0, 0
         FROM {from}, {series} s, LATERAL (SELECT {energy} AS e) v {tail}"
    )
}

/// The sampled accounts' per-resource facts of the hours `$1 .. $2`
/// (Unix seconds): accounts `0 .. $3`, resources `0 .. $4` each, resource
/// `r` in region `r % $5`; one row per record, with the columns of
/// `emission_facts` in its order.
const FACT_RECORDS: &str = "SELECT to_timestamp(h) AS period_start, 3600 AS period_s,
                lpad((100000000000 + a)::text, 12, '0') AS account_id, 'region-' || (r % $5) AS region,
                'res-' || r || '/total' AS record_key, 1::bigint AS revision,
                'arn:bench:' || a || ':' || r AS resource_id, 'type-' || (r % 30) || '-0' AS resource_type,
                'service-' || (r % 30) AS service, 'team-' || (r % 50) AS team, 'measured' AS quality,
                e AS energy_kwh, e * 400 AS location_g_co2e, e * 150 AS market_g_co2e, e * 320 AS low_g_co2e,
                e * 500 AS high_g_co2e, 'bench' AS methodology_version, 'bench' AS factor_source,
                '2024' AS factor_vintage, 'bench' AS agent_id, 0::bigint AS batch_sequence
         FROM generate_series($1::bigint, $2::bigint - 3600, 3600) h,
              generate_series(0, $3 - 1) a, generate_series(0, $4 - 1) r,
              LATERAL (SELECT 0.001 * (1 + (r * 13 + a) % 50) * (1.0 + 0.3 * sin(h / 3600.0)) AS e) v";

/// One per-resource daily rollup row (migration 0029) per resource of
/// accounts `0 .. $3` × resources `0 .. $4` for the hours `[$1, $2)` of one
/// UTC day: the sum of [`FACT_RECORDS`]' values of those hours (the same
/// resource, group and formula; parts by the unsplit rule, as the facts'
/// empty part arrays read), so a sampled account's row equals its facts.
const RESOURCE_ROLLUP_ROWS: &str = "INSERT INTO resource_rollup_daily (bucket_start, account_id, region, resource_id,
                service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e,
                high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e,
                operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e,
                operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e,
                fact_count, last_period_start)
         SELECT date_bin(interval '1 day', to_timestamp($1::bigint), timestamptz 'epoch'),
                lpad((100000000000 + a)::text, 12, '0'), 'region-' || (r % $5), 'arn:bench:' || a || ':' || r,
                'service-' || (r % 30), 'type-' || (r % 30) || '-0', 'team-' || (r % 50), 'measured',
                e, e * 400, e * 150, e * 320, e * 500, e, e * 400, e * 320, e * 500, e * 150, e * 150, e * 150, 0, 0, 0,
                k.hours, to_timestamp($2::bigint - 3600)
         FROM (SELECT count(*) AS hours, sum(1.0 + 0.3 * sin(h / 3600.0)) AS shape
               FROM generate_series($1::bigint, $2::bigint - 3600, 3600) h) k,
              generate_series(0, $3 - 1) a, generate_series(0, $4 - 1) r,
              LATERAL (SELECT 0.001 * (1 + (r * 13 + a) % 50) * k.shape AS e) v";

/// Each array of `emission_fact_segments` and the record column it holds.
/// The key hashes are PostgreSQL's `hashtextextended`, not the aggregator's
/// FNV-1a: see [`FactsLayout::Segments`].
const SEGMENT_ARRAYS: [(&str, &str); 17] = [
    ("key_hashes", "hashtextextended(f.record_key, 0)"),
    ("period_s", "f.period_s"),
    ("record_keys", "f.record_key"),
    ("revisions", "f.revision"),
    ("resource_ids", "f.resource_id"),
    ("resource_types", "f.resource_type"),
    ("services", "f.service"),
    ("teams", "f.team"),
    ("qualities", "f.quality"),
    ("energy_kwh", "f.energy_kwh"),
    ("location_g_co2e", "f.location_g_co2e"),
    ("market_g_co2e", "f.market_g_co2e"),
    ("low_g_co2e", "f.low_g_co2e"),
    ("high_g_co2e", "f.high_g_co2e"),
    ("methodology_versions", "f.methodology_version"),
    ("factor_sources", "f.factor_source"),
    ("factor_vintages", "f.factor_vintage"),
];

/// The statement loading [`FACT_RECORDS`] in `layout`: a plain INSERT of the
/// rows, or one segment per (hour, account, region) with the group's records
/// in record-key order (bytewise, as ingest sorts them), `superseded` empty;
/// the segment statement returns (segments, records) written.
fn facts_insert(layout: FactsLayout) -> String {
    match layout {
        FactsLayout::Rows => format!("INSERT INTO emission_facts {FACT_RECORDS}"),
        FactsLayout::Segments => {
            let columns: Vec<&str> = SEGMENT_ARRAYS.iter().map(|(c, _)| *c).collect();
            let arrays: Vec<String> = SEGMENT_ARRAYS
                .iter()
                .map(|(_, e)| format!("array_agg({e} ORDER BY f.record_key COLLATE \"C\")"))
                .collect();
            format!(
                "WITH f AS ({FACT_RECORDS}),
                 ins AS (
                    INSERT INTO emission_fact_segments (period_start, account_id, region, agent_id, batch_sequence,
                           record_count, {columns})
                    SELECT f.period_start, f.account_id, f.region, f.agent_id, f.batch_sequence, count(*)::int,
                           {arrays}
                    FROM f GROUP BY f.period_start, f.account_id, f.region, f.agent_id, f.batch_sequence
                    RETURNING record_count
                 )
                 SELECT count(*)::bigint, COALESCE(sum(record_count), 0)::bigint FROM ins",
                columns = columns.join(", "),
                arrays = arrays.join(",\n                           ")
            )
        }
    }
}

async fn load_on(conn: &mut PgConnection, cfg: &BenchConfig, layout: &Layout) -> Result<LoadTimes, BenchError> {
    let mut times = LoadTimes::default();
    let end = layout.end_unix_s;

    // Accounts with OU paths: 20 OUs under 4 parents.
    insert(
        conn,
        &mut times,
        "accounts",
        "INSERT INTO accounts (account_id, name, ou_path)
         SELECT lpad((100000000000 + a)::text, 12, '0'), 'account ' || a,
                'r-root/ou-p' || (a % 4) || '/ou-' || (a % $2)
         FROM generate_series(0, $1 - 1) a",
        &[i64::from(cfg.accounts), i64::from(OUS)],
    )
    .await?;

    // The group series: team t belongs to OU t % 20 (so an account of OU o
    // has teams o, o + 20 and, below 50, o + 40), works in regions
    // 3t .. 3t + 2 and services 7t .. 7t + 5 (mod 15 and 30); the rest is
    // spread by a multiplicative hash of (account, series).
    sqlx::query(
        "CREATE TEMP TABLE bench_series AS
         SELECT lpad((100000000000 + a)::text, 12, '0') AS account_id, g AS series_no,
                'region-' || ((t * 3 + h % 3) % $3) AS region,
                'service-' || ((t * 7 + (h / 3) % 6) % $4) AS service,
                'type-' || ((t * 7 + (h / 3) % 6) % $4) || '-' || ((h / 18) % 2) AS resource_type,
                'team-' || t AS team,
                (ARRAY['measured', 'estimated', 'default'])[1 + (h / 36) % 3] AS quality,
                (0.05 + ((a * 31 + g * 17) % 100) / 100.0)::float8 AS base_kwh
         FROM generate_series(0, $1 - 1) a, generate_series(0, $2 - 1) g,
              LATERAL (SELECT (a % 20) + 20 * ((a / 20 + g) % CASE WHEN a % 20 < 10 THEN 3 ELSE 2 END) AS t,
                              ((a::bigint * 2654435761 + g::bigint * 40503) % 1000003) AS h) k",
    )
    .bind(i64::from(cfg.accounts))
    .bind(i64::from(cfg.series_per_account))
    .bind(i64::from(REGIONS))
    .bind(i64::from(SERVICES))
    .execute(&mut *conn)
    .await?;
    // The same series summed per org group (OU path × group): every level
    // is linear in base_kwh, so an org rollup row is the sum of its
    // account-level rows with the summed base and the summed fact count.
    sqlx::raw_sql(
        "CREATE TEMP TABLE bench_org_series AS
         SELECT COALESCE(a.ou_path, '') AS ou_path, s.region, s.service, s.resource_type, s.team, s.quality,
                sum(s.base_kwh) AS base_kwh, count(*)::bigint AS series
         FROM bench_series s LEFT JOIN accounts a ON a.account_id = s.account_id
         GROUP BY 1, 2, 3, 4, 5, 6;
         CREATE TEMP TABLE bench_team_series AS
         SELECT team, quality, sum(base_kwh) AS base_kwh, count(*)::bigint AS series
         FROM bench_series GROUP BY 1, 2;
         ANALYZE bench_series; ANALYZE bench_org_series; ANALYZE bench_team_series",
    )
    .execute(&mut *conn)
    .await?;
    // Per day and per month: the sum of the hourly factors of its loaded
    // hours and their number, so a daily or monthly row is the sum of the
    // hourly rows of the same formula.
    sqlx::query(&format!(
        "CREATE TEMP TABLE bench_days AS
         SELECT h - h % 86400 AS d, sum({g}) AS f, count(*)::bigint AS hours
         FROM generate_series($1::bigint, $2::bigint - 3600, 3600) h GROUP BY 1",
        g = hour_factor("h")
    ))
    .bind(layout.history_from_unix_s)
    .bind(end)
    .execute(&mut *conn)
    .await?;
    sqlx::raw_sql(
        "CREATE TEMP TABLE bench_months AS
         SELECT extract(epoch FROM date_trunc('month', to_timestamp(d) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')::bigint AS m,
                sum(f) AS f, sum(hours)::bigint AS hours
         FROM bench_days GROUP BY 1",
    )
    .execute(&mut *conn)
    .await?;

    // Partitions: months for hourly rollups and facts, days for 5-minute
    // rollups and group records. Both facts tables get theirs, as native
    // mode creates them (maintenance, `canopy_ensure_time_partitions`), so
    // the view reads the empty one's partitions as a server would.
    for (parent, unit, from) in [
        ("rollup_hourly", "month", layout.hourly_from_unix_s),
        ("org_rollup_hourly", "month", layout.hourly_from_unix_s),
        ("emission_facts", "month", layout.facts_from_unix_s),
        ("emission_fact_segments", "month", layout.facts_from_unix_s),
        ("rollup_5m", "day", layout.five_minute_from_unix_s),
        ("org_rollup_5m", "day", layout.five_minute_from_unix_s),
        ("realtime_group_facts", "day", layout.realtime_from_unix_s),
    ] {
        ensure_partitions(conn, parent, unit, from, end).await?;
    }

    let [daily, org_daily, team_daily] = FAMILIES.map(|f| rollup_insert(f, Level::Daily));
    let [hourly, org_hourly, _] = FAMILIES.map(|f| rollup_insert(f, Level::Hourly));
    let [five, org_five, _] = FAMILIES.map(|f| rollup_insert(f, Level::FiveMinutes));
    let g_m = hour_factor("m");
    let realtime = format!(
        "INSERT INTO realtime_group_facts (bucket_start, period_s, account_id, region, record_key, revision, service,
                resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e,
                fact_count, methodology_version, factor_source, factor_vintage, agent_id, batch_sequence)
         SELECT to_timestamp(m), 300, s.account_id, s.region, 'bench-series-' || s.series_no || '/group', 1,
                s.service, s.resource_type, s.team, s.quality,
                v.e, v.e * 400, v.e * 150, v.e * 320, v.e * 500, 1, 'bench', 'bench', '2024', 'bench', 0
         FROM generate_series($1::bigint, $2::bigint - 300, 300) m, bench_series s,
              LATERAL (SELECT s.base_kwh * {g_m} / 12 AS e) v"
    );
    let facts = facts_insert(cfg.facts_layout);
    let sampled = i64::from(cfg.sample_accounts.min(cfg.accounts));
    let rolled = i64::from(cfg.resource_rollup_accounts.min(cfg.accounts));

    // Day by day, oldest first (the order data arrives in), one statement
    // per table and day.
    let first = [
        layout.history_from_unix_s,
        layout.hourly_from_unix_s,
        layout.five_minute_from_unix_s,
        layout.realtime_from_unix_s,
        layout.facts_from_unix_s,
        layout.resources_from_unix_s,
    ]
    .into_iter()
    .min()
    .unwrap_or(end);
    let mut day = first;
    while day < end {
        let to = (day + DAY_S).min(end);
        if day >= layout.history_from_unix_s {
            insert(conn, &mut times, "rollup_daily", &daily, &[day]).await?;
            insert(conn, &mut times, "org_rollup_daily", &org_daily, &[day]).await?;
            insert(conn, &mut times, "org_team_rollup_daily", &team_daily, &[day]).await?;
        }
        if day >= layout.hourly_from_unix_s {
            insert(conn, &mut times, "rollup_hourly", &hourly, &[day, to]).await?;
            insert(conn, &mut times, "org_rollup_hourly", &org_hourly, &[day, to]).await?;
        }
        if day >= layout.five_minute_from_unix_s {
            insert(conn, &mut times, "rollup_5m", &five, &[day, to]).await?;
            insert(conn, &mut times, "org_rollup_5m", &org_five, &[day, to]).await?;
        }
        if day >= layout.realtime_from_unix_s {
            insert(conn, &mut times, "realtime_group_facts", &realtime, &[day, to]).await?;
        }
        if day >= layout.resources_from_unix_s && rolled > 0 {
            let binds = [day, to, rolled, i64::from(cfg.resources_per_sample_account), i64::from(REGIONS)];
            insert(conn, &mut times, "resource_rollup_daily", RESOURCE_ROLLUP_ROWS, &binds).await?;
        }
        if day >= layout.facts_from_unix_s && sampled > 0 {
            let binds = [day, to, sampled, i64::from(cfg.resources_per_sample_account), i64::from(REGIONS)];
            let table = cfg.facts_layout.table();
            match cfg.facts_layout {
                FactsLayout::Rows => insert(conn, &mut times, table, &facts, &binds).await?,
                FactsLayout::Segments => {
                    let started = Instant::now();
                    let (segments, records): (i64, i64) =
                        binds.iter().fold(sqlx::query_as(&facts), |q, b| q.bind(*b)).fetch_one(&mut *conn).await?;
                    times.add(table, u64::try_from(records).unwrap_or(0), started);
                    times.fact_segments += segments;
                }
            }
        }
        day += DAY_S;
    }
    let [monthly, org_monthly, team_monthly] = FAMILIES.map(|f| rollup_insert(f, Level::Monthly));
    insert(conn, &mut times, "rollup_monthly", &monthly, &[]).await?;
    insert(conn, &mut times, "org_rollup_monthly", &org_monthly, &[]).await?;
    insert(conn, &mut times, "org_team_rollup_monthly", &team_monthly, &[]).await?;
    Ok(times)
}


/// One request of a query type.
#[derive(Debug, Clone)]
pub enum Query {
    /// Through `QueryEngine::totals`.
    Totals(TotalsRequest),
    /// Through `QueryEngine::series`.
    Series(SeriesRequest),
    /// Through `QueryEngine::realtime` (what `/v1/realtime` serves).
    Realtime(SeriesRequest),
    /// Through `QueryEngine::top_resources`.
    Top(TopResourcesRequest),
}

/// Small deterministic generator for query parameters.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// The query types, each with its `runs` requests.
pub fn query_cases(cfg: &BenchConfig) -> Vec<(&'static str, Vec<Query>)> {
    let layout = Layout::loaded(cfg);
    let end = layout.end_unix_s;
    let today = floor_to(cfg.now_unix_s, DAY_S);
    let months_13 = floor_to(end - i64::from(cfg.history_days) * DAY_S, DAY_S) + DAY_S;
    let page = Page { limit: 100, offset: 0 };
    let series_page = Page { limit: 1_000, offset: 0 };
    let accounts = cfg.accounts;
    let samples = cfg.sample_accounts.clamp(1, cfg.accounts);
    let team = |rng: &mut Lcg| Filters { team: vec![format!("team-{}", rng.below(u64::from(TEAMS)))], ..Filters::default() };
    type Maker = Box<dyn Fn(&mut Lcg) -> Query>;
    let mut makers: Vec<(&'static str, Maker)> = vec![
        (
            "totals org 13 months (monthly+daily)",
            Box::new(move |_| {
                Query::Totals(TotalsRequest { from_unix_s: months_13, to_unix_s: today, group_by: vec![], filters: Filters::default(), page })
            }),
        ),
        (
            "totals 13 months by service",
            Box::new(move |_| {
                Query::Totals(TotalsRequest {
                    from_unix_s: months_13,
                    to_unix_s: today,
                    group_by: vec![Dimension::Service],
                    filters: Filters::default(),
                    page,
                })
            }),
        ),
        (
            "totals 30 days by team, one OU",
            Box::new(move |rng| {
                Query::Totals(TotalsRequest {
                    from_unix_s: today - 30 * DAY_S,
                    to_unix_s: today,
                    group_by: vec![Dimension::Team],
                    filters: Filters { ou: vec![format!("r-root/ou-p{}", rng.below(4))], ..Filters::default() },
                    page,
                })
            }),
        ),
        (
            "totals 13 months by OU, one team",
            Box::new(move |rng| {
                Query::Totals(TotalsRequest {
                    from_unix_s: months_13,
                    to_unix_s: today,
                    group_by: vec![Dimension::Ou],
                    filters: team(rng),
                    page,
                })
            }),
        ),
        (
            "totals 13 months one account by region",
            Box::new(move |rng| {
                Query::Totals(TotalsRequest {
                    from_unix_s: months_13,
                    to_unix_s: today,
                    group_by: vec![Dimension::Region],
                    filters: Filters {
                        account: vec![account_id(rng.below(u64::from(accounts)) as u32)],
                        ..Filters::default()
                    },
                    page,
                })
            }),
        ),
        (
            "totals ragged 7 days by account (daily+hourly+5m)",
            Box::new(move |rng| {
                Query::Totals(TotalsRequest {
                    from_unix_s: today - 7 * DAY_S + 3 * HOUR_S + 600 + 300 * rng.below(6) as i64,
                    to_unix_s: end - 2 * HOUR_S - 900,
                    group_by: vec![Dimension::Account],
                    filters: Filters::default(),
                    page,
                })
            }),
        ),
        (
            "series hourly 7 days by team, one team",
            Box::new(move |rng| {
                Query::Series(SeriesRequest {
                    from_unix_s: today - 7 * DAY_S,
                    to_unix_s: today,
                    step: Step::Hour,
                    group_by: vec![Dimension::Team],
                    filters: team(rng),
                    page: series_page,
                })
            }),
        ),
        (
            "series daily 13 months org",
            Box::new(move |_| {
                Query::Series(SeriesRequest {
                    from_unix_s: months_13,
                    to_unix_s: today,
                    step: Step::Day,
                    group_by: vec![],
                    filters: Filters::default(),
                    page: series_page,
                })
            }),
        ),
        (
            "realtime last hour 5m by region",
            Box::new(move |_| {
                Query::Realtime(SeriesRequest {
                    from_unix_s: end - HOUR_S,
                    to_unix_s: end,
                    step: Step::FiveMinutes,
                    group_by: vec![Dimension::Region],
                    filters: Filters::default(),
                    page: series_page,
                })
            }),
        ),
        (
            "top 10 resources ragged 7 days one sampled account",
            Box::new(move |rng| {
                Query::Top(TopResourcesRequest {
                    from_unix_s: end - 7 * DAY_S,
                    to_unix_s: end,
                    filters: Filters {
                        account: vec![account_id(rng.below(u64::from(samples)) as u32)],
                        ..Filters::default()
                    },
                    page: Page { limit: 10, offset: 0 },
                })
            }),
        ),
    ];
    // Top 20 of every resource of the per-resource daily rollup (issue 20):
    // whole UTC days, and the 30 days only when that many are loaded.
    for (name, days) in [
        ("top 20 resources 3 days", 3),
        ("top 20 resources 7 days", 7),
        ("top 20 resources 30 days", 30),
    ] {
        if days <= i64::from(cfg.resource_rollup_days) {
            makers.push((
                name,
                Box::new(move |_| {
                    Query::Top(TopResourcesRequest {
                        from_unix_s: today - days * DAY_S,
                        to_unix_s: today,
                        filters: Filters::default(),
                        page: Page { limit: 20, offset: 0 },
                    })
                }),
            ));
        }
    }
    let mut rng = Lcg(7);
    makers.into_iter().map(|(name, make)| (name, (0..cfg.runs.max(1)).map(|_| make(&mut rng)).collect())).collect()
}

/// The engine the bench queries through: the default retention, as a
/// server over the full-depth dataset would run, so the plans are the
/// full-depth plans.
fn engine_for(pool: &PgPool) -> QueryEngine {
    QueryEngine::new(pool.clone(), RetentionPolicy::default())
}

/// What the engine plans to read for `q` at `now` (account-level sources;
/// the engine may read the org counterparts, of the same depth).
pub fn predicted_ranges(q: &Query, now_unix_s: i64) -> Vec<ReadRange> {
    let horizons = plan::Horizons::of_policy(&RetentionPolicy::default(), now_unix_s);
    let whole = |source, from_unix_s, to_unix_s| vec![ReadRange { source, from_unix_s, to_unix_s }];
    // A range the retention refuses reads nothing (the engine's answer is the refusal).
    let planned = |p: Result<Vec<Segment>, plan::RetentionError>| p.map(|p| p.iter().map(ReadRange::of).collect()).unwrap_or_default();
    match q {
        Query::Totals(r) => planned(plan::plan(r.from_unix_s, r.to_unix_s, &TOTALS_LEVELS, &horizons)),
        Query::Series(r) => planned(plan::plan(r.from_unix_s, r.to_unix_s, &[r.step.source()], &horizons)),
        Query::Realtime(r) => whole(Source::Realtime, r.from_unix_s, r.to_unix_s),
        Query::Top(r) => planned(plan::plan(r.from_unix_s, r.to_unix_s, &RESOURCE_LEVELS, &horizons)),
    }
}

/// (depth, from, to) of each range, for comparing plans across sources of
/// the same depth (account-level and org rollups).
fn depth_ranges(ranges: &[ReadRange]) -> Result<Vec<(Depth, i64, i64)>, String> {
    ranges
        .iter()
        .map(|r| match Depth::of_table(r.source.table()) {
            Some(d) => Ok((d, r.from_unix_s, r.to_unix_s)),
            None => Err(format!("reads {}, which the bench does not load", r.source.table())),
        })
        .collect()
}

fn describe(ranges: &[ReadRange]) -> String {
    let parts: Vec<String> =
        ranges.iter().map(|s| format!("{} [{} .. {})", s.source.name(), s.from_unix_s, s.to_unix_s)).collect();
    format!("[{}]", parts.join(", "))
}

/// Checks that `ranges` read only what the depth-limited dataset holds
/// exactly as the full-depth one would. The engine reads the facts through
/// the view `emission_facts_all`; their data is in the table of `facts`.
pub fn check_ranges(
    query: &'static str,
    ranges: &[ReadRange],
    facts: FactsLayout,
    loaded: &Layout,
    full: &Layout,
) -> Result<(), BenchError> {
    let loaded_tables = tables(facts);
    for r in ranges {
        let table = loaded_table(r.source, facts);
        let Some(depth) = Depth::of_table(table).filter(|_| loaded_tables.iter().any(|(t, _)| *t == table)) else {
            return Err(BenchError::DepthChangesQuery {
                query,
                detail: format!("reads {table}, which the bench does not load (extend bench.rs to load it)"),
            });
        };
        let from = loaded.from_unix_s(depth);
        if r.from_unix_s < from {
            return Err(BenchError::DepthChangesQuery {
                query,
                detail: format!(
                    "reads {} from {} ({}), but the dataset holds that level only from {}",
                    r.source.table(),
                    date(r.from_unix_s),
                    r.from_unix_s,
                    date(from)
                ),
            });
        }
        let limited = from > full.from_unix_s(depth);
        let complete = loaded.complete_from_unix_s(depth);
        if limited && r.from_unix_s < complete {
            return Err(BenchError::DepthChangesQuery {
                query,
                detail: format!(
                    "reads {} from {} inside the partly loaded month partition (loaded from {}, complete from {}); \
                     load more days of that level",
                    r.source.table(),
                    date(r.from_unix_s),
                    date(from),
                    date(complete)
                ),
            });
        }
    }
    Ok(())
}

/// Runs `q` once; returns the rows and the segments the engine read.
async fn execute(engine: &QueryEngine, q: &Query, now_unix_s: i64) -> Result<(usize, Vec<ReadRange>), BenchError> {
    let ranges = |segments: &[Segment]| segments.iter().map(ReadRange::of).collect::<Vec<_>>();
    Ok(match q {
        Query::Totals(r) => {
            let resp = engine.totals(r, now_unix_s).await?;
            (resp.rows.len(), ranges(&resp.segments))
        }
        Query::Series(r) => {
            let resp = engine.series(r, now_unix_s).await?;
            (resp.rows.len(), ranges(&resp.segments))
        }
        Query::Realtime(r) => {
            let resp = engine.realtime(r, now_unix_s).await?;
            (resp.rows.len(), ranges(&resp.segments))
        }
        Query::Top(r) => {
            let resp = engine.top_resources(r, now_unix_s).await?;
            (resp.rows.len(), ranges(&resp.segments))
        }
    })
}

/// Scan counters (sequential + index scans) of every user relation, with
/// its partitioned parent; not of `retention_horizons` and `canopy_settings`,
/// which every answer reads (five rows) to plan, nor of
/// `factor_lineage_monthly`, which every answer reads for the factor sets
/// behind it (a few rows per account and month); none holds figures.
async fn scan_counters(pool: &PgPool) -> Result<HashMap<String, (String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT s.relname::text, COALESCE(p.relname::text, s.relname::text),
                (COALESCE(s.seq_scan, 0) + COALESCE(s.idx_scan, 0))::bigint
         FROM pg_stat_user_tables s
         LEFT JOIN pg_inherits i ON i.inhrelid = s.relid
         LEFT JOIN pg_class p ON p.oid = i.inhparent
         WHERE s.relname NOT IN ('retention_horizons', 'canopy_settings', 'factor_lineage_monthly')",
    )
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?)))).collect()
}

/// Lower bound of a partition named `<parent>_pYYYYMMDD`.
fn partition_from_unix_s(relname: &str) -> Option<i64> {
    let (_, suffix) = relname.rsplit_once("_p")?;
    if suffix.len() != 8 || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = suffix[0..4].parse().ok()?;
    let m: u32 = suffix[4..6].parse().ok()?;
    let d: u32 = suffix[6..8].parse().ok()?;
    Some(days_from_civil(y, m, d) * DAY_S)
}

/// Makes every connection of `pool` flush its pending statistics counters,
/// so that they do not land while a probe is being measured.
async fn flush_counters(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut held = Vec::new();
    for _ in 0..pool.size().max(1) {
        let mut conn = pool.acquire().await?;
        sqlx::query("SELECT pg_stat_force_next_flush()").execute(&mut *conn).await?;
        held.push(conn);
    }
    Ok(())
}

/// Relations whose scan counters grew while `q` ran once on `probe` (a
/// pool of one connection), with their parent table.
async fn scanned_once(
    pool: &PgPool,
    probe: &PgPool,
    q: &Query,
    now_unix_s: i64,
) -> Result<(Vec<ReadRange>, BTreeMap<String, String>), BenchError> {
    let engine = engine_for(probe);
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(probe).await?;
    flush_counters(pool).await?;
    let before = scan_counters(pool).await?;
    let (_, ranges) = execute(&engine, q, now_unix_s).await?;
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(probe).await?;
    flush_counters(pool).await?;
    let after = scan_counters(pool).await?;
    let grown = after
        .into_iter()
        .filter(|(relname, (_, scans))| *scans > before.get(relname).map_or(0, |(_, n)| *n))
        .map(|(relname, (parent, _))| (relname, parent))
        .collect();
    Ok((ranges, grown))
}

/// Runs `q` twice on `probe` (a pool of one connection) and returns the
/// ranges the engine planned and the relations it scanned both times, from
/// PostgreSQL's per-relation scan counters (sequential and index scans;
/// partitions pruned at planning or execution are never scanned). Every
/// connection flushes its counters before and after each run; a relation
/// counts only when both runs scanned it, so a stray flush of another
/// session cannot add one.
async fn probe(
    pool: &PgPool,
    probe: &PgPool,
    q: &Query,
    now_unix_s: i64,
) -> Result<(Vec<ReadRange>, Vec<RelationsRead>), BenchError> {
    let (ranges, first) = scanned_once(pool, probe, q, now_unix_s).await?;
    let (_, second) = scanned_once(pool, probe, q, now_unix_s).await?;
    let mut by_table: BTreeMap<String, RelationsRead> = BTreeMap::new();
    for (relname, parent) in first.iter().filter(|(relname, _)| second.contains_key(*relname)) {
        let entry = by_table.entry(parent.clone()).or_insert_with(|| RelationsRead {
            table: parent.clone(),
            relations: 0,
            oldest_partition_from_unix_s: None,
            newest_partition_from_unix_s: None,
        });
        entry.relations += 1;
        let lower = if relname == parent { None } else { partition_from_unix_s(relname) };
        if let Some(lo) = lower {
            entry.oldest_partition_from_unix_s = Some(entry.oldest_partition_from_unix_s.map_or(lo, |o: i64| o.min(lo)));
            entry.newest_partition_from_unix_s = Some(entry.newest_partition_from_unix_s.map_or(lo, |n: i64| n.max(lo)));
        }
    }
    Ok((ranges, by_table.into_values().collect()))
}

/// Checks what a query's probe scanned: every partition of a time-series
/// table lies within the loaded days of its level (from the partition
/// holding the level's first loaded instant, before the end of the data),
/// none of a depth-limited table is older than its completely loaded
/// partitions, and a query that read the facts (the view
/// `emission_facts_all`) scanned partitions of the table the facts are loaded
/// into.
fn check_relations(
    query: &'static str,
    ranges: &[ReadRange],
    read: &[RelationsRead],
    facts: FactsLayout,
    loaded: &Layout,
    full: &Layout,
) -> Result<(), BenchError> {
    if ranges.iter().any(|r| r.source == Source::Facts)
        && !read.iter().any(|r| r.table == facts.table() && r.oldest_partition_from_unix_s.is_some())
    {
        return Err(BenchError::DepthChangesQuery {
            query,
            detail: format!(
                "reads the facts (emission_facts_all) but scanned no partition of {}, where they are loaded \
                 ({facts:?} layout); scanned: {read:?}",
                facts.table()
            ),
        });
    }
    for r in read {
        let Some(depth) = Depth::of_table(&r.table) else { continue };
        let (Some(lo), Some(hi)) = (r.oldest_partition_from_unix_s, r.newest_partition_from_unix_s) else { continue };
        let first = loaded.from_unix_s(depth);
        let first_partition = match depth.partitioning() {
            Partitioning::Plain => first,
            Partitioning::Day => floor_to(first, DAY_S),
            Partitioning::Month => month_start_shifted(first, 0),
        };
        if lo < first_partition || hi >= loaded.end_unix_s {
            return Err(BenchError::DepthChangesQuery {
                query,
                detail: format!(
                    "scanned partitions of {} from {} to {}, outside the loaded days of that level ({} to {})",
                    r.table,
                    date(lo),
                    date(hi),
                    date(first),
                    date(loaded.end_unix_s - 1)
                ),
            });
        }
        let limited = loaded.from_unix_s(depth) > full.from_unix_s(depth);
        let complete = loaded.complete_from_unix_s(depth);
        if limited && lo < complete {
            return Err(BenchError::DepthChangesQuery {
                query,
                detail: format!(
                    "scanned the partition of {} from {}, which the depth-limited dataset holds only from {}",
                    r.table,
                    date(lo),
                    date(loaded.from_unix_s(depth))
                ),
            });
        }
    }
    Ok(())
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = (p * (sorted_ms.len() as f64 - 1.0)).round() as usize;
    sorted_ms[rank.min(sorted_ms.len() - 1)]
}

async fn time_queries(pool: &PgPool, cfg: &BenchConfig, loaded: &Layout, full: &Layout) -> Result<Vec<QueryFigures>, BenchError> {
    let engine = engine_for(pool);
    let probe_pool = PgPoolOptions::new().max_connections(1).connect_with((*pool.connect_options()).clone()).await?;
    let now = cfg.now_unix_s;
    let mut out = Vec::new();
    for (name, requests) in query_cases(cfg) {
        let (segments, relations_read) = probe(pool, &probe_pool, &requests[0], now).await?;
        let predicted = predicted_ranges(&requests[0], now);
        let same = match (depth_ranges(&segments), depth_ranges(&predicted)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            return Err(BenchError::PlanMismatch { query: name, planned: describe(&segments), predicted: describe(&predicted) });
        }
        check_ranges(name, &segments, cfg.facts_layout, loaded, full)?;
        check_relations(name, &segments, &relations_read, cfg.facts_layout, loaded, full)?;
        let mut times = Vec::new();
        let mut rows = 0;
        for q in &requests {
            let t = Instant::now();
            rows = execute(&engine, q, now).await?.0;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        out.push(QueryFigures {
            name,
            p50_ms: percentile(&times, 0.50),
            p95_ms: percentile(&times, 0.95),
            p99_ms: percentile(&times, 0.99),
            rows,
            segments,
            relations_read,
        });
    }
    probe_pool.close().await;
    Ok(out)
}


/// Bytes of `table` with all its partitions, indexes and TOAST.
async fn table_bytes(pool: &PgPool, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree($1::regclass)),
                         pg_total_relation_size($1::regclass))::bigint",
    )
    .bind(table)
    .fetch_one(pool)
    .await
}

/// Sizes the loaded tables, checks and times the queries, then measures
/// ingest through `store_batch`.
pub async fn measure(pool: &PgPool, cfg: &BenchConfig, loaded: &Loaded) -> Result<BenchReport, BenchError> {
    let full = Layout::full_depth(cfg);
    let full_rows: HashMap<&str, i64> = expected_rows(cfg, &full, loaded.groups).into_iter().collect();
    let mut tables = Vec::new();
    for &(table, rows, load_s) in &loaded.tables {
        tables.push(TableFigures {
            table,
            rows,
            load_s,
            bytes: table_bytes(pool, table).await?,
            full_depth_rows: full_rows.get(table).copied().unwrap_or(rows),
        });
    }
    let database_bytes: i64 =
        sqlx::query_scalar("SELECT pg_database_size(current_database())").fetch_one(pool).await?;
    let queries = time_queries(pool, cfg, &loaded.layout, &full).await?;
    let (ingest_new_facts_per_s, ingest_revised_facts_per_s) = if cfg.ingest_batches > 0 {
        time_ingest(pool, cfg.now_unix_s, cfg.ingest_batches).await?
    } else {
        (0.0, 0.0)
    };
    let drain_started = Instant::now();
    let org_drain_rows = crate::maintenance::drain_org_rollups(pool).await?;
    let org_drain_s = drain_started.elapsed().as_secs_f64();
    Ok(BenchReport {
        config: *cfg,
        layout: loaded.layout,
        full_depth: full,
        groups: loaded.groups,
        accounts: loaded.accounts,
        tables,
        fact_segments: loaded.fact_segments,
        load_s: loaded.load_s,
        vacuum_analyze_s: loaded.vacuum_analyze_s,
        database_bytes,
        queries,
        ingest_new_facts_per_s,
        ingest_revised_facts_per_s,
        org_drain_rows,
        org_drain_s,
    })
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl BenchReport {
    /// Rows loaded, all tables.
    pub fn rows_loaded(&self) -> i64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// The report as printed by `bench-storage`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let l = &self.layout;
        let f = &self.full_depth;
        let _ = writeln!(s, "dataset: {:?}", self.config);
        let _ = writeln!(
            s,
            "width: {} accounts, {} group series, {} org groups, {} team groups per bucket (full width at every level)",
            self.accounts, self.groups.series, self.groups.org, self.groups.team
        );
        let _ = writeln!(s, "depth (loaded | full-depth dataset; data ends {} UTC):", date(l.end_unix_s - 1));
        for (name, depth) in [
            ("daily + monthly rollups", Depth::History),
            ("hourly rollups", Depth::Hourly),
            ("5-minute rollups", Depth::FiveMinute),
            ("realtime_group_facts", Depth::Realtime),
            ("per-resource facts", Depth::Facts),
        ] {
            let limited = l.from_unix_s(depth) > f.from_unix_s(depth);
            let _ = writeln!(
                s,
                "  {name:<24} from {} | from {}{}",
                date(l.from_unix_s(depth)),
                date(f.from_unix_s(depth)),
                if limited {
                    format!("  (depth-limited; partitions complete from {})", date(l.complete_from_unix_s(depth)))
                } else {
                    String::new()
                }
            );
        }
        let records = self.tables.iter().find(|t| t.table == self.config.facts_layout.table()).map_or(0, |t| t.rows);
        match self.config.facts_layout {
            FactsLayout::Rows => {
                let _ = writeln!(s, "per-resource facts: rows layout, {records} rows of emission_facts");
            }
            FactsLayout::Segments => {
                let _ = writeln!(
                    s,
                    "per-resource facts: segments layout, {records} records in {} segments of emission_fact_segments \
                     ({:.1} records per segment); its 'rows' below count records (sum of record_count), its \
                     bytes/row are bytes per record; key hashes by hashtextextended (the bench bypasses ingest)",
                    self.fact_segments,
                    if self.fact_segments > 0 { records as f64 / self.fact_segments as f64 } else { 0.0 }
                );
            }
        }
        if self.load_s > 0.0 {
            let _ = writeln!(
                s,
                "MEASURED load: {:.1} s inserts ({:.0} rows/s over {} rows) + {:.1} s VACUUM (ANALYZE); size on disk {:.2} GiB",
                self.load_s,
                self.rows_loaded() as f64 / self.load_s,
                self.rows_loaded(),
                self.vacuum_analyze_s,
                self.database_bytes as f64 / GIB
            );
        } else {
            let _ = writeln!(
                s,
                "REUSED dataset ({} rows checked against the formula): load not measured in this run (see the run that \
                 loaded it); size on disk {:.2} GiB; load columns below are 0",
                self.rows_loaded(),
                self.database_bytes as f64 / GIB
            );
        }
        let _ = writeln!(
            s,
            "{:<24} {:>13} {:>9} {:>10} {:>9} {:>10} | {:>14} {:>11} {:>10}",
            "table",
            "rows",
            "load s",
            "rows/s",
            "MiB",
            "bytes/row",
            "full rows",
            "proj. GiB",
            "proj. s"
        );
        let (mut full_bytes, mut full_s) = (0.0, 0.0);
        for t in &self.tables {
            full_bytes += t.projected_bytes();
            full_s += t.projected_load_s();
            let _ = writeln!(
                s,
                "{:<24} {:>13} {:>9.1} {:>10.0} {:>9.1} {:>10.1} | {:>14} {:>11.2} {:>10.0}",
                t.table,
                t.rows,
                t.load_s,
                t.rows_per_s(),
                t.bytes as f64 / (1024.0 * 1024.0),
                t.bytes_per_row(),
                t.full_depth_rows,
                t.projected_bytes() / GIB,
                t.projected_load_s()
            );
        }
        let measured_table_bytes: i64 = self.tables.iter().map(|t| t.bytes).sum();
        let vacuum_projected = if measured_table_bytes > 0 {
            self.vacuum_analyze_s * full_bytes / measured_table_bytes as f64
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "PROJECTED full-depth dataset (measured bytes/row and rows/s of each table × full-depth rows): \
             {} rows, {:.1} GiB of tables, {:.0} s of inserts + ≈ {:.0} s VACUUM (ANALYZE, scaled by size)",
            self.tables.iter().map(|t| t.full_depth_rows).sum::<i64>(),
            full_bytes / GIB,
            full_s,
            vacuum_projected
        );
        let _ = writeln!(
            s,
            "MEASURED latency, {} runs per query type; 'relations' = partitions and tables the probe run scanned",
            self.config.runs.max(1)
        );
        let _ = writeln!(s, "{:<52} {:>9} {:>9} {:>9} {:>6} {:>9}", "query", "p50 ms", "p95 ms", "p99 ms", "rows", "relations");
        for q in &self.queries {
            let _ = writeln!(
                s,
                "{:<52} {:>9.1} {:>9.1} {:>9.1} {:>6} {:>9}",
                q.name,
                q.p50_ms,
                q.p95_ms,
                q.p99_ms,
                q.rows,
                q.relation_count()
            );
        }
        let _ = writeln!(s, "what each query read (segments planned by the engine; relations scanned):");
        for q in &self.queries {
            let segments: Vec<String> = q
                .segments
                .iter()
                .map(|g| format!("{} {}..{}", g.source.name(), date(g.from_unix_s), date(g.to_unix_s - 1)))
                .collect();
            let relations: Vec<String> = q
                .relations_read
                .iter()
                .map(|r| match r.oldest_partition_from_unix_s {
                    Some(lo) => format!("{} ×{} (oldest from {})", r.table, r.relations, date(lo)),
                    None => r.table.clone(),
                })
                .collect();
            let _ = writeln!(s, "  {}: {} | {}", q.name, segments.join(", "), relations.join(", "));
        }
        let _ = writeln!(
            s,
            "depth check passed: every segment lies within its level's loaded days and no query scanned a partly \
             loaded partition of a depth-limited level, so the full-depth dataset adds only partitions these \
             queries do not open (daily and monthly rollups are loaded at full depth)"
        );
        if self.config.ingest_batches > 0 {
            let _ = writeln!(
                s,
                "ingest (store_batch, {} x {} facts): new {:.0} facts/s, superseding revisions {:.0} facts/s",
                self.config.ingest_batches, INGEST_BATCH_FACTS, self.ingest_new_facts_per_s, self.ingest_revised_facts_per_s
            );
        }
        let _ = writeln!(s, "org rollup drain after ingest: {} pending rows in {:.3} s", self.org_drain_rows, self.org_drain_s);
        s
    }
}
