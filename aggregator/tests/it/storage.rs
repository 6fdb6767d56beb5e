//! Storage paths (issue 13): partition bounds and rollup buckets under a
//! session time zone with daylight saving (case 3), the choice between the
//! TimescaleDB and native paths, and the same answers on both (case 8).

use std::collections::BTreeMap;

use canopy_aggregator::db::{self, DbError, StorageChoice, StorageMode};
use canopy_aggregator::ingest::{StoreOutcome, StoreSummary};
use canopy_aggregator::maintenance::{self, RetentionPolicy};
use canopy_aggregator::model::{Batch, FactRow};
use canopy_aggregator::query::{
    Dimension, Filters, Metrics, Page, QueryEngine, SeriesRequest, Step, TopResourcesRequest, TotalsRequest,
};
use canopy_aggregator::time::{DAY_S, FIVE_MINUTES_S, HOUR_S};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

use crate::support::{
    Rng, TestDb, close, fact, native_admin_url, run_refresh_policies, seed_accounts, skip_unless_native, store,
    store_unsettled, timescaledb_or_skip,
};

/// 2026-11-01T00:00:00Z; in America/New_York daylight saving ends at 06:00 UTC that day.
const NOV_1: i64 = 20_758 * DAY_S;

/// A pool on `t` whose sessions run in America/New_York (the database's
/// default is set too, as for a psql session). sqlx asks for UTC when it
/// connects, so the test sets the zone after connecting.
async fn new_york_pool(t: &TestDb) -> PgPool {
    sqlx::raw_sql(&format!("ALTER DATABASE \"{}\" SET timezone = 'America/New_York'", t.name))
        .execute(&t.pool)
        .await
        .unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET TIME ZONE 'America/New_York'").await?;
                Ok(())
            })
        })
        .connect(&t.url())
        .await
        .unwrap();
    let zone: String = sqlx::query_scalar("SHOW TimeZone").fetch_one(&pool).await.unwrap();
    assert_eq!(zone, "America/New_York");
    pool
}

fn summary(outcome: StoreOutcome) -> StoreSummary {
    match outcome {
        StoreOutcome::Stored(s) => s,
        StoreOutcome::Duplicate => panic!("expected a new batch, found a duplicate"),
    }
}

fn batch(sequence: u64, facts: Vec<FactRow>) -> Batch {
    Batch { agent_id: "agent-tz".into(), sequence, facts, inventory: vec![] }
}

/// Case 3: in a New York session the day partition of 2026-11-01 was 25
/// hours long and the next day's failed with "would overlap", which stopped
/// ingest. Ingest and maintenance in such a session now make UTC days.
#[tokio::test]
async fn day_partitions_ignore_the_session_time_zone() {
    if skip_unless_native("day_partitions_ignore_the_session_time_zone", "day partitions are native-path tables") {
        return;
    }
    let t = TestDb::migrated().await;
    let ny = new_york_pool(&t).await;
    // One fact on each of 31 Oct, 1 Nov (two: either side of the change) and 2 Nov.
    let starts = [NOV_1 - 2 * HOUR_S, NOV_1 + 5 * HOUR_S, NOV_1 + 23 * HOUR_S, NOV_1 + DAY_S + HOUR_S];
    let facts: Vec<FactRow> = starts.iter().enumerate().map(|(i, s)| fact(i as u64 * 12, *s, 3_600, 1)).collect();
    let energy: Vec<f64> = facts.iter().map(|f| f.energy_kwh).collect();
    assert_eq!(summary(store(&ny, &batch(1, facts)).await).facts_written, 4);

    // Maintenance in the same zone creates the 5-minute days around it.
    let report = maintenance::run(&ny, &RetentionPolicy::default(), NOV_1 + 3 * DAY_S).await.unwrap();
    assert!(report.partitions_created > 30, "{report:?}");

    // Every day partition spans exactly one UTC day (read in UTC).
    let bounds: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent IN ('rollup_5m'::regclass, 'org_rollup_5m'::regclass, 'realtime_group_facts'::regclass)
           AND c.relname LIKE '%\\_p2026110_' ORDER BY 1",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    let want_for = |day: u32| {
        format!("FOR VALUES FROM ('2026-11-{day:02} 00:00:00+00') TO ('2026-11-{:02} 00:00:00+00')", day + 1)
    };
    assert_eq!(bounds.len(), 3 * 9, "{bounds:?}");
    for (name, bound) in &bounds {
        let day: u32 = name[name.len() - 2..].parse().unwrap();
        assert_eq!(bound, &want_for(day), "{name}");
    }
    // The monthly ones span UTC months.
    let month: String = sqlx::query_scalar(
        "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'rollup_hourly_p20261101'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(month, "FOR VALUES FROM ('2026-11-01 00:00:00+00') TO ('2026-12-01 00:00:00+00')");

    // Each fact's 5-minute rollup row is in its UTC day's partition.
    let per_partition: Vec<(String, f64)> =
        sqlx::query_as("SELECT tableoid::regclass::text, sum(energy_kwh) FROM rollup_5m GROUP BY 1 ORDER BY 1")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    let want = vec![
        ("rollup_5m_p20261031".to_owned(), energy[0]),
        ("rollup_5m_p20261101".to_owned(), energy[1] + energy[2]),
        ("rollup_5m_p20261102".to_owned(), energy[3]),
    ];
    assert_eq!(per_partition.len(), want.len(), "{per_partition:?}");
    for ((name, kwh), (want_name, want_kwh)) in per_partition.iter().zip(&want) {
        assert_eq!(name, want_name);
        assert!(close(*kwh, *want_kwh), "{name}: {kwh} kWh, expected {want_kwh}");
    }
}

/// Daily and monthly buckets (account and org rollups, and the API's
/// series) are UTC days and months whatever the session's time zone; on
/// both paths.
#[tokio::test]
async fn rollup_buckets_ignore_the_session_time_zone() {
    let t = TestDb::migrated().await;
    let ny = new_york_pool(&t).await;
    seed_accounts(&ny).await;
    const DEC_1: i64 = NOV_1 + 30 * DAY_S;
    // Facts whose New York date differs from their UTC date, around the
    // daylight-saving change and a month boundary.
    let starts =
        [NOV_1 - HOUR_S, NOV_1 + HOUR_S, NOV_1 + 5 * HOUR_S, NOV_1 + 6 * HOUR_S, DEC_1 - HOUR_S, DEC_1 + 3 * HOUR_S];
    let facts: Vec<FactRow> = starts.iter().map(|s| fact(0, *s, 3_600, 1)).collect();
    let kwh: Vec<f64> = facts.iter().map(|f| f.energy_kwh).collect();
    store(&ny, &batch(1, facts)).await;
    maintenance::drain_org_rollups(&ny).await.unwrap();

    let buckets = |table: &'static str| {
        let ny = ny.clone();
        async move {
            let rows: Vec<(i64, f64)> = sqlx::query_as(&format!(
                "SELECT extract(epoch FROM bucket_start)::bigint, sum(energy_kwh) FROM {table} GROUP BY 1 ORDER BY 1"
            ))
            .fetch_all(&ny)
            .await
            .unwrap();
            rows
        }
    };
    let oct_31 = NOV_1 - DAY_S;
    let want_daily =
        vec![(oct_31, kwh[0]), (NOV_1, kwh[1] + kwh[2] + kwh[3]), (DEC_1 - DAY_S, kwh[4]), (DEC_1, kwh[5])];
    let want_monthly = vec![(NOV_1 - 31 * DAY_S, kwh[0]), (NOV_1, kwh[1] + kwh[2] + kwh[3] + kwh[4]), (DEC_1, kwh[5])];
    for (table, want) in [
        ("rollup_daily", &want_daily),
        ("org_rollup_daily", &want_daily),
        ("rollup_monthly", &want_monthly),
        ("org_rollup_monthly", &want_monthly),
    ] {
        let got = buckets(table).await;
        assert_eq!(
            got.iter().map(|r| r.0).collect::<Vec<_>>(),
            want.iter().map(|r| r.0).collect::<Vec<_>>(),
            "{table}"
        );
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(close(g.1, w.1), "{table} bucket {}: {} kWh, expected {}", g.0, g.1, w.1);
        }
    }

    // The API's daily series, through New York sessions.
    let engine = QueryEngine::new(ny.clone(), RetentionPolicy::default());
    let req = SeriesRequest {
        from_unix_s: oct_31,
        to_unix_s: DEC_1 + DAY_S,
        step: Step::Day,
        group_by: vec![],
        filters: Filters::default(),
        page: Page { limit: 1_000, offset: 0 },
    };
    let resp = engine.series(&req, DEC_1 + 2 * DAY_S).await.unwrap();
    let got: Vec<(i64, f64)> = resp.rows.iter().map(|r| (r.bucket_start_unix_s, r.metrics.energy_kwh)).collect();
    assert_eq!(got.len(), want_daily.len(), "{got:?}");
    for (g, w) in got.iter().zip(&want_daily) {
        assert_eq!(g.0, w.0);
        assert!(close(g.1, w.1), "series bucket {}: {} kWh, expected {}", g.0, g.1, w.1);
    }
}

#[test]
fn storage_choice_follows_what_the_server_offers() {
    let probe = |version: Option<&str>, preload: &str| db::TimescaleProbe {
        available_version: version.map(str::to_owned),
        shared_preload_libraries: preload.to_owned(),
    };
    let mode = |choice, p: &db::TimescaleProbe| db::decide_storage(choice, p).map(|d| d.mode);
    let absent = probe(None, "");
    let not_preloaded = probe(Some("2.28.3"), "pg_stat_statements");
    let preloaded = probe(Some("2.28.3"), "pg_stat_statements, \"timescaledb\"");
    assert_eq!(mode(StorageChoice::Auto, &absent).unwrap(), StorageMode::Native);
    assert_eq!(mode(StorageChoice::Auto, &not_preloaded).unwrap(), StorageMode::Native);
    assert_eq!(mode(StorageChoice::Auto, &preloaded).unwrap(), StorageMode::TimescaleDb);
    assert_eq!(mode(StorageChoice::Native, &preloaded).unwrap(), StorageMode::Native);
    assert_eq!(mode(StorageChoice::TimescaleDb, &preloaded).unwrap(), StorageMode::TimescaleDb);
    assert!(probe(Some("2.28.3"), "/usr/lib/postgresql/15/lib/timescaledb.so").preloaded());
    assert!(!probe(Some("2.28.3"), "timescaledb_toolkit").preloaded());
    let reason = db::decide_storage(StorageChoice::Auto, &not_preloaded).unwrap().reason;
    assert!(reason.contains("not preloaded"), "{reason}");
    for p in [&absent, &not_preloaded] {
        let err = db::decide_storage(StorageChoice::TimescaleDb, p).unwrap_err();
        assert!(matches!(err, DbError::TimescaleUnusable(_)), "{err}");
    }
    let err = db::decide_storage(StorageChoice::TimescaleDb, &not_preloaded).unwrap_err().to_string();
    assert!(
        err.contains("--storage timescaledb")
            && err.contains("not preloaded")
            && err.contains("shared_preload_libraries"),
        "{err}"
    );
}

/// Where the extension is installed but not preloaded (the shared server
/// once `install.sh` ran, as in CI), `auto` migrates the native path where
/// 0002 used to fail with "must be preloaded", and `timescaledb` is refused
/// with a reason.
#[tokio::test]
async fn auto_migrates_native_where_timescaledb_is_installed_but_not_preloaded() {
    let admin = native_admin_url();
    let t = TestDb::empty_on(&admin).await;
    let probe = db::probe_timescaledb(&t.pool).await.unwrap();
    if probe.available_version.is_none() || probe.preloaded() {
        println!(
            "skipped auto_migrates_native_where_timescaledb_is_installed_but_not_preloaded: the server at {admin} \
             does not have timescaledb installed-but-not-preloaded ({probe:?}); CI installs it there"
        );
        return;
    }
    let err = db::migrate_with(&t.pool, StorageChoice::TimescaleDb).await.unwrap_err().to_string();
    assert!(err.contains("not preloaded"), "{err}");
    let decision = db::migrate_with(&t.pool, StorageChoice::Auto).await.unwrap();
    assert_eq!(decision.mode, StorageMode::Native);
    assert!(decision.newly_decided && decision.reason.contains("not preloaded"), "{decision:?}");
    assert_eq!(db::storage_mode(&t.pool).await.unwrap(), StorageMode::Native);
    let (reason, extension): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT storage_reason, (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') FROM canopy_settings",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(reason.as_deref(), Some(decision.reason.as_str()));
    assert_eq!(extension, None);
    // The native path works there: a batch is stored and rolled up.
    let f = fact(1, NOV_1, 3_600, 1);
    store(&t.pool, &batch(1, vec![f.clone()])).await;
    let kwh: f64 = sqlx::query_scalar("SELECT sum(energy_kwh) FROM rollup_daily").fetch_one(&t.pool).await.unwrap();
    assert!(close(kwh, f.energy_kwh));
}

/// On a server with TimescaleDB preloaded, `auto` takes it; the path is
/// recorded once and a later run never flips it, either way.
#[tokio::test]
async fn the_storage_path_is_chosen_once_and_never_flips() {
    let Some(admin) = timescaledb_or_skip("the_storage_path_is_chosen_once_and_never_flips") else { return };
    let ts = TestDb::empty_on(&admin).await;
    let first = db::migrate_with(&ts.pool, StorageChoice::Auto).await.unwrap();
    assert_eq!(first.mode, StorageMode::TimescaleDb);
    assert!(first.newly_decided && first.reason.contains("preloaded"), "{first:?}");
    let err = db::migrate_with(&ts.pool, StorageChoice::Native).await.unwrap_err();
    assert!(matches!(err, DbError::StorageMismatch { asked: "native", recorded: "timescaledb" }), "{err}");
    let again = db::migrate_with(&ts.pool, StorageChoice::Auto).await.unwrap();
    assert_eq!(again.mode, StorageMode::TimescaleDb);
    assert!(!again.newly_decided, "{again:?}");
    assert!(again.reason.contains(&first.reason), "{again:?}");
    db::migrate_with(&ts.pool, StorageChoice::TimescaleDb).await.unwrap();

    // Native asked for on the same server, then auto: stays native.
    let native = TestDb::empty_on(&admin).await;
    assert_eq!(db::migrate_with(&native.pool, StorageChoice::Native).await.unwrap().mode, StorageMode::Native);
    let later = db::migrate_with(&native.pool, StorageChoice::Auto).await.unwrap();
    assert_eq!(later.mode, StorageMode::Native);
    let err = db::migrate_with(&native.pool, StorageChoice::TimescaleDb).await.unwrap_err();
    assert!(matches!(err, DbError::StorageMismatch { asked: "timescaledb", recorded: "native" }), "{err}");
    let kinds: Vec<(String, String)> = sqlx::query_as(
        "SELECT relname::text, relkind::text FROM pg_class WHERE relname IN ('emission_facts', 'rollup_daily') ORDER BY 1",
    )
    .fetch_all(&native.pool)
    .await
    .unwrap();
    assert_eq!(kinds, vec![("emission_facts".into(), "p".into()), ("rollup_daily".into(), "r".into())]);
    let extension: Option<String> =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
            .fetch_optional(&native.pool)
            .await
            .unwrap();
    assert_eq!(extension, None);
}

/// A simulated organisation: revisions, 5-minute and hourly facts over the
/// last three days, and late facts 60 days old.
fn simulated_organisation(now: i64) -> Vec<Batch> {
    let today = now - now.rem_euclid(DAY_S);
    let mut rng = Rng::new(7);
    let mut facts: Vec<FactRow> = Vec::new();
    for _ in 0..900 {
        let resource = rng.below(60);
        let day = today - (1 + rng.below(3) as i64) * DAY_S;
        let (start, period) = if rng.below(3) == 0 {
            (day + rng.below(24) as i64 * HOUR_S, 3_600)
        } else {
            (day + rng.below(288) as i64 * FIVE_MINUTES_S, 300)
        };
        for revision in 1..=(1 + rng.below(3) as u32) {
            facts.push(fact(resource, start, period, revision));
        }
    }
    for i in (1..facts.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        facts.swap(i, j);
    }
    facts.chunks(200).enumerate().map(|(i, c)| batch(i as u64 + 1, c.to_vec())).collect()
}

/// Late facts, 60 days old, a day and a half of them.
fn late_facts(now: i64, revision: u32) -> Vec<FactRow> {
    let day = now - now.rem_euclid(DAY_S) - 60 * DAY_S;
    (0..36).map(|h| fact(h % 7, day + h as i64 * HOUR_S, 3_600, revision)).collect()
}

fn assert_same_metrics(a: &Metrics, b: &Metrics, context: &str) {
    let pairs = [
        (a.energy_kwh, b.energy_kwh),
        (a.location_kg_co2e, b.location_kg_co2e),
        (a.market_kg_co2e, b.market_kg_co2e),
        (a.low_kg_co2e, b.low_kg_co2e),
        (a.high_kg_co2e, b.high_kg_co2e),
    ];
    for (x, y) in pairs {
        assert!(close(x, y), "{context}: {a:?} vs {b:?}");
    }
    assert_eq!(a.fact_count, b.fact_count, "{context}");
}

/// Asserts that both engines answer the same totals (ungrouped and grouped),
/// series (5 minutes, hours, days) and top resources over [from, to).
/// Returns the ungrouped total.
async fn assert_same_answers(native: &QueryEngine, ts: &QueryEngine, from: i64, to: i64, now: i64) -> Metrics {
    let mut total = Metrics::default();
    for group_by in [vec![], vec![Dimension::Account], vec![Dimension::Team, Dimension::Quality], vec![Dimension::Ou]] {
        let req = TotalsRequest {
            from_unix_s: from,
            to_unix_s: to,
            group_by: group_by.clone(),
            filters: Filters::default(),
            page: Page { limit: 1_000, offset: 0 },
        };
        let (a, b) = (native.totals(&req, now).await.unwrap(), ts.totals(&req, now).await.unwrap());
        let context = format!("totals by {group_by:?}");
        assert_same_metrics(&a.total, &b.total, &context);
        assert_eq!(a.rows.len(), b.rows.len(), "{context}");
        for (x, y) in a.rows.iter().zip(&b.rows) {
            assert_eq!(x.dims, y.dims, "{context}");
            assert_same_metrics(&x.metrics, &y.metrics, &context);
        }
        assert_eq!(a.by_quality.len(), b.by_quality.len(), "{context}");
        for (x, y) in a.by_quality.iter().zip(&b.by_quality) {
            assert_eq!(x.quality, y.quality);
            assert_same_metrics(&x.metrics, &y.metrics, &context);
        }
        total = a.total;
    }
    for (step, group_by) in [(Step::Day, vec![Dimension::Service]), (Step::Hour, vec![]), (Step::FiveMinutes, vec![])] {
        let s = step.seconds();
        // The 5-minute series only over the last day (its retention).
        let lo = if step == Step::FiveMinutes { (to - DAY_S).max(from) } else { from };
        let req = SeriesRequest {
            from_unix_s: lo - lo.rem_euclid(s),
            to_unix_s: to - to.rem_euclid(s),
            step,
            group_by: group_by.clone(),
            filters: Filters::default(),
            page: Page { limit: 100_000, offset: 0 },
        };
        let (a, b) = (native.series(&req, now).await.unwrap(), ts.series(&req, now).await.unwrap());
        let context = format!("series {step:?} by {group_by:?}");
        if step == Step::Day {
            assert!(!a.rows.is_empty(), "{context}");
        }
        let key = |r: &canopy_aggregator::query::SeriesRow| (r.bucket_start_unix_s, r.dims.clone());
        let a_rows: BTreeMap<_, _> = a.rows.iter().map(|r| (key(r), r.metrics)).collect();
        let b_rows: BTreeMap<_, _> = b.rows.iter().map(|r| (key(r), r.metrics)).collect();
        assert_eq!(a_rows.keys().collect::<Vec<_>>(), b_rows.keys().collect::<Vec<_>>(), "{context}");
        for (k, m) in &a_rows {
            assert_same_metrics(m, &b_rows[k], &format!("{context} at {k:?}"));
        }
    }
    let req = TopResourcesRequest {
        from_unix_s: from,
        to_unix_s: to,
        filters: Filters::default(),
        page: Page { limit: 10, offset: 0 },
    };
    let (a, b) = (native.top_resources(&req, now).await.unwrap(), ts.top_resources(&req, now).await.unwrap());
    assert_eq!(a.rows.len(), b.rows.len());
    for (x, y) in a.rows.iter().zip(&b.rows) {
        assert_eq!(
            (&x.account_id, &x.region, &x.resource_id, &x.team),
            (&y.account_id, &y.region, &y.resource_id, &y.team)
        );
        assert_same_metrics(&x.metrics, &y.metrics, "top resources");
    }
    total
}

async fn both_paths(test: &str) -> Option<(TestDb, TestDb)> {
    let admin = timescaledb_or_skip(test)?;
    let native = TestDb::migrated_on(&native_admin_url(), StorageChoice::Native).await;
    let ts = TestDb::migrated_on(&admin, StorageChoice::TimescaleDb).await;
    seed_accounts(&native.pool).await;
    seed_accounts(&ts.pool).await;
    Some((native, ts))
}

/// Case 8: the same simulated organisation, stored on both paths, gives the
/// same answers: totals, series and top resources, recent and late data.
#[tokio::test]
async fn both_paths_answer_the_same_for_a_simulated_organisation() {
    let Some((native, ts)) = both_paths("both_paths_answer_the_same_for_a_simulated_organisation").await else {
        return;
    };
    let now = canopy_aggregator::http::system_clock();
    let mut batches = simulated_organisation(now);
    batches.push(batch(1_000, late_facts(now, 1)));
    for b in &batches {
        store(&native.pool, b).await;
        store(&ts.pool, b).await;
    }
    maintenance::drain_org_rollups(&native.pool).await.unwrap();
    let (a, b) = (
        QueryEngine::new(native.pool.clone(), RetentionPolicy::default()),
        QueryEngine::new(ts.pool.clone(), RetentionPolicy::default()),
    );
    let today = now - now.rem_euclid(DAY_S);
    let recent = assert_same_answers(&a, &b, today - 3 * DAY_S, today, now).await;
    assert!(recent.fact_count > 500, "{recent:?}");
    let all = assert_same_answers(&a, &b, today - 62 * DAY_S, today, now).await;
    assert_eq!(all.fact_count, recent.fact_count + 36);
}

/// Case 8: late data 60 days old (older than the 5-minute aggregate's
/// 35-day refresh window) reaches every rollup on the TimescaleDB path,
/// and the API answers as on the native path.
#[tokio::test]
async fn late_data_reaches_the_timescaledb_rollups() {
    let Some((native, ts)) = both_paths("late_data_reaches_the_timescaledb_rollups").await else { return };
    let now = canopy_aggregator::http::system_clock();
    let today = now - now.rem_euclid(DAY_S);
    // Recent data first, rolled up by the refresh policies as in production.
    let recent = fact(50, today - 2 * DAY_S, 3_600, 1);
    for db in [&native, &ts] {
        store(&db.pool, &batch(1, vec![recent.clone()])).await;
    }
    let late = late_facts(now, 1);
    let want_kwh: f64 = late.iter().map(|f| f.energy_kwh).sum::<f64>() + recent.energy_kwh;
    store(&native.pool, &batch(2, late.clone())).await;
    store_unsettled(&ts.pool, &batch(2, late)).await;
    // The refresh policies alone (as the extension's scheduler runs them)
    // leave the late data out of every rollup (and, below the aggregates'
    // watermarks, out of every answer).
    run_refresh_policies(&ts.pool).await;
    for table in ["rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly"] {
        let kwh: f64 =
            sqlx::query_scalar(&format!("SELECT sum(energy_kwh) FROM {table}")).fetch_one(&ts.pool).await.unwrap();
        assert!(close(kwh, recent.energy_kwh), "{table} before the late-data refresh: {kwh} kWh");
    }
    // The aggregator's late-data refresh (serve's loop; maintain runs it once).
    maintenance::run(&ts.pool, &RetentionPolicy::default(), now).await.unwrap();
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM timescale_refresh_pending").fetch_one(&ts.pool).await.unwrap();
    assert_eq!(queued, 0);
    for table in ["rollup_hourly", "rollup_daily", "rollup_monthly", "org_rollup_daily", "org_team_rollup_monthly"] {
        let kwh: f64 =
            sqlx::query_scalar(&format!("SELECT sum(energy_kwh) FROM {table}")).fetch_one(&ts.pool).await.unwrap();
        assert!(close(kwh, want_kwh), "{table}: {kwh} kWh, expected {want_kwh}");
    }
    maintenance::drain_org_rollups(&native.pool).await.unwrap();
    let (a, b) = (
        QueryEngine::new(native.pool.clone(), RetentionPolicy::default()),
        QueryEngine::new(ts.pool.clone(), RetentionPolicy::default()),
    );
    let total = assert_same_answers(&a, &b, today - 62 * DAY_S, today, now).await;
    assert!(close(total.energy_kwh, want_kwh), "{total:?}");
    assert_eq!(total.fact_count, 37);

    // A later revision of the late data replaces it in the rollups.
    let revised = late_facts(now, 2);
    let revised_kwh: f64 = revised.iter().map(|f| f.energy_kwh).sum::<f64>() + recent.energy_kwh;
    store(&native.pool, &batch(3, revised.clone())).await;
    store(&ts.pool, &batch(3, revised)).await;
    maintenance::drain_org_rollups(&native.pool).await.unwrap();
    let total = assert_same_answers(&a, &b, today - 62 * DAY_S, today, now).await;
    assert!(close(total.energy_kwh, revised_kwh), "{total:?} vs {revised_kwh}");
    assert_eq!(total.fact_count, 37);
}

/// Case 8: a revision landing in a compressed chunk is applied and counted
/// once.
#[tokio::test]
async fn a_revision_into_a_compressed_chunk_counts_once() {
    let Some((native, ts)) = both_paths("a_revision_into_a_compressed_chunk_counts_once").await else { return };
    let now = canopy_aggregator::http::system_clock();
    let day = now - now.rem_euclid(DAY_S) - 10 * DAY_S;
    let first: Vec<FactRow> = (0..24i64).map(|h| fact((h % 5) as u64, day + h * HOUR_S, 3_600, 1)).collect();
    for db in [&native, &ts] {
        store(&db.pool, &batch(1, first.clone())).await;
    }
    let compressed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM (SELECT compress_chunk(c) FROM show_chunks('emission_facts') c) x")
            .fetch_one(&ts.pool)
            .await
            .unwrap();
    assert_eq!(compressed, 1);
    let is_compressed = |pool: PgPool| async move {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'emission_facts' AND is_compressed",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        n
    };
    assert_eq!(is_compressed(ts.pool.clone()).await, 1);
    // Revision 2 of half the hours, and revision 1 again (stale) of the rest.
    let mut second: Vec<FactRow> = (0..12i64).map(|h| fact((h % 5) as u64, day + h * HOUR_S, 3_600, 2)).collect();
    second.extend(first[12..].iter().cloned());
    let want_kwh: f64 = second.iter().map(|f| f.energy_kwh).sum();
    for db in [&native, &ts] {
        let outcome = summary(store(&db.pool, &batch(2, second.clone())).await);
        assert_eq!((outcome.facts_written, outcome.facts_replaced), (12, 12), "{outcome:?}");
    }
    let (facts, max_revision, kwh): (i64, i64, f64) =
        sqlx::query_as("SELECT count(*), max(revision), sum(energy_kwh) FROM emission_facts_all")
            .fetch_one(&ts.pool)
            .await
            .unwrap();
    assert_eq!((facts, max_revision), (24, 2));
    assert!(close(kwh, want_kwh), "{kwh} vs {want_kwh}");
    for table in ["rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly"] {
        let (kwh, count): (f64, i64) =
            sqlx::query_as(&format!("SELECT sum(energy_kwh), sum(fact_count)::bigint FROM {table}"))
                .fetch_one(&ts.pool)
                .await
                .unwrap();
        assert!(close(kwh, want_kwh), "{table}: {kwh} kWh, expected {want_kwh}");
        assert_eq!(count, 24, "{table}");
    }
    maintenance::drain_org_rollups(&native.pool).await.unwrap();
    let (a, b) = (
        QueryEngine::new(native.pool.clone(), RetentionPolicy::default()),
        QueryEngine::new(ts.pool.clone(), RetentionPolicy::default()),
    );
    let total = assert_same_answers(&a, &b, day - DAY_S, day + 2 * DAY_S, now).await;
    assert!(close(total.energy_kwh, want_kwh));
    assert_eq!(total.fact_count, 24);
}

/// Case 8, retention on the TimescaleDB path (its policies): facts and
/// hourly rollups older than 13 months go, the daily and monthly rollups
/// keep them, also after the aggregates are refreshed again; the native
/// path's retention (`maintenance::run`) leaves the same daily and monthly
/// answers.
#[tokio::test]
async fn timescaledb_retention_keeps_daily_and_monthly() {
    let Some((native, ts)) = both_paths("timescaledb_retention_keeps_daily_and_monthly").await else { return };
    let now = canopy_aggregator::http::system_clock();
    let today = now - now.rem_euclid(DAY_S);
    // Older than both paths keep facts (13 months; native: whole months).
    let old_day = today - 430 * DAY_S;
    let recent_day = today - 10 * DAY_S;
    // Older than the 5-minute retention (35 days), within the hourly one.
    let mid_day = today - 40 * DAY_S;
    let facts: Vec<FactRow> = (0..6i64)
        .map(|h| fact(h as u64, old_day + h * HOUR_S, 3_600, 1))
        .chain((0..6i64).map(|h| fact(h as u64, mid_day + h * HOUR_S, 3_600, 1)))
        .chain((0..6i64).map(|h| fact(h as u64, recent_day + h * HOUR_S, 3_600, 1)))
        .collect();
    let sum = |from: i64, to: i64| -> f64 {
        facts.iter().filter(|f| f.period_start_unix_s >= from && f.period_start_unix_s < to).map(|f| f.energy_kwh).sum()
    };
    let (old_kwh, mid_kwh, recent_kwh) =
        (sum(old_day, old_day + DAY_S), sum(mid_day, mid_day + DAY_S), sum(recent_day, recent_day + DAY_S));
    for db in [&native, &ts] {
        store(&db.pool, &batch(1, facts.clone())).await;
    }
    // TimescaleDB: its retention jobs, run now, then the refresh policies again.
    let jobs: Vec<i32> = sqlx::query_scalar(
        "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' ORDER BY job_id",
    )
    .fetch_all(&ts.pool)
    .await
    .unwrap();
    assert_eq!(jobs.len(), 4, "retention jobs: facts, 5-minute and hourly rollups, real-time records");
    for job in jobs {
        sqlx::raw_sql(&format!("CALL run_job({job})")).execute(&ts.pool).await.unwrap();
    }
    crate::support::settle(&ts.pool).await;
    // Native: maintenance at the same instant.
    maintenance::run(&native.pool, &RetentionPolicy::default(), now).await.unwrap();
    for (db, path) in [(&native, "native"), (&ts, "timescaledb")] {
        for (table, want) in [
            ("emission_facts_all", mid_kwh + recent_kwh),
            ("rollup_hourly", mid_kwh + recent_kwh),
            ("rollup_daily", old_kwh + mid_kwh + recent_kwh),
            ("rollup_monthly", old_kwh + mid_kwh + recent_kwh),
        ] {
            let column = if table == "emission_facts_all" { "period_start" } else { "bucket_start" };
            let kwh: f64 = sqlx::query_scalar(&format!(
                "SELECT COALESCE(sum(energy_kwh), 0)::float8 FROM {table} WHERE {column} >= to_timestamp($1)"
            ))
            .bind(old_day - 40 * DAY_S)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert!(close(kwh, want), "{path} {table}: {kwh} kWh, expected {want}");
        }
    }
    // The API answers the same for the old day, from the daily rollups.
    maintenance::drain_org_rollups(&native.pool).await.unwrap();
    let (a, b) = (
        QueryEngine::new(native.pool.clone(), RetentionPolicy::default()),
        QueryEngine::new(ts.pool.clone(), RetentionPolicy::default()),
    );
    let req = TotalsRequest {
        from_unix_s: old_day,
        to_unix_s: old_day + DAY_S,
        group_by: vec![],
        filters: Filters::default(),
        page: Page { limit: 10, offset: 0 },
    };
    let (x, y) = (a.totals(&req, now).await.unwrap(), b.totals(&req, now).await.unwrap());
    assert_same_metrics(&x.total, &y.total, "old day after retention");
    assert!(close(y.total.energy_kwh, old_kwh), "{:?}", y.total);
}
