use canopy_aggregator::maintenance::{self, RetentionPolicy, partition_name};
use canopy_aggregator::model::Batch;
use canopy_aggregator::query::{Dimension, Filters, Page, QueryEngine, Source, TopResourcesRequest, TotalsRequest};
use canopy_aggregator::time::{DAY_S, HOUR_S, days_from_civil, month_start_shifted};

use crate::support::{T0, TestDb, fact, store};

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn retention_drops_only_expired_partitions() {
    if crate::support::skip_unless_native("retention_drops_only_expired_partitions", "native retention drops partitions; TimescaleDB retention is its policies (storage::timescaledb_retention_keeps_daily_and_monthly)") {
        return;
    }
    let t = TestDb::migrated().await;
    // T0 = 2026-11-02. Facts on 2025-09-15 (old), 2026-10-20 and 2026-11-02.
    let old = T0 - 413 * DAY_S; // 2025-09-15
    let recent = T0 - 13 * DAY_S; // 2026-10-20
    let facts = vec![fact(1, old, 300, 1), fact(2, recent, 300, 1), fact(3, T0, 300, 1)];
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 1, facts, inventory: vec![] }).await;

    // now = 2026-11-20T12:00Z: 5-minute horizon = 2026-10-16 (35 days back from
    // 2026-11-20); hourly and facts cutoff = 2025-10-01 (13 months back).
    let now = T0 + 18 * DAY_S + 43_200;
    let report = maintenance::run(&t.pool, &RetentionPolicy::default(), now).await.unwrap();
    let mut dropped = report.partitions_dropped.clone();
    dropped.sort();
    assert_eq!(
        dropped,
        vec![
            partition_name("emission_fact_segments", month_start_shifted(old, 0)),
            partition_name("emission_facts", month_start_shifted(old, 0)),
            partition_name("org_rollup_5m", old - old % DAY_S),
            partition_name("org_rollup_hourly", month_start_shifted(old, 0)),
            partition_name("rollup_5m", old - old % DAY_S),
            partition_name("rollup_hourly", month_start_shifted(old, 0)),
        ]
    );
    assert_eq!(dropped[4], "rollup_5m_p20250915");
    // The run drained the org rollups' pending deltas before dropping.
    assert_eq!(report.org_rows_drained, 3);
    assert_eq!(count(&t.pool, "org_rollup_pending").await, 0);
    assert_eq!(count(&t.pool, "org_rollup_5m").await, 2);
    assert_eq!(count(&t.pool, "org_rollup_hourly").await, 2);
    assert_eq!(count(&t.pool, "org_rollup_daily").await, 3);
    assert_eq!(count(&t.pool, "emission_facts_all").await, 2);
    assert_eq!(count(&t.pool, "emission_fact_segments").await, 2);
    assert_eq!(count(&t.pool, "rollup_5m").await, 2);
    assert_eq!(count(&t.pool, "rollup_hourly").await, 2);
    // Daily rollups are kept forever by default.
    assert_eq!(count(&t.pool, "rollup_daily").await, 3);
    // 5-minute partitions were created ahead for the window: 35 days back to
    // 7 days ahead of 2026-11-20 = 43 days, minus the 2 that already existed
    // (2026-10-20 and 2026-11-02); months Nov, Dec, Jan for three monthly
    // tables (facts, fact segments, hourly rollups), minus Nov which existed
    // for all three: 6; the same again for the
    // org rollups' 5-minute days (41) and hourly months (2); and the 43
    // days of the real-time group records (none existed).
    assert_eq!(report.partitions_created, 41 + 6 + 41 + 2 + 43);

    // A second run changes nothing.
    let again = maintenance::run(&t.pool, &RetentionPolicy::default(), now).await.unwrap();
    assert_eq!((again.partitions_created, again.partitions_dropped.len()), (0, 0));

    // A shorter daily retention deletes rows older than its cutoff only.
    let policy = RetentionPolicy { daily_months: Some(1), ..RetentionPolicy::default() };
    let r = maintenance::run(&t.pool, &policy, now).await.unwrap();
    // cutoff 2026-10-01: removes 2025-09-15 from daily and September 2025
    // from monthly, account-level, org and team, and the resource's row of
    // 2025-09-15 from the per-resource daily rollup.
    assert_eq!(r.daily_rows_deleted, 7);
    assert_eq!(count(&t.pool, "resource_rollup_daily").await, 2);
    assert_eq!(count(&t.pool, "rollup_daily").await, 2);
    assert_eq!(count(&t.pool, "rollup_monthly").await, 2);
    assert_eq!(count(&t.pool, "org_rollup_daily").await, 2);
    assert_eq!(count(&t.pool, "org_rollup_monthly").await, 2);
}

/// Two transactions creating the same partition: the second waits for the
/// first and then finds it, instead of failing with "already exists" (its
/// catalogue cache still said the table was missing).
#[tokio::test]
async fn concurrent_creators_of_one_partition_both_succeed() {
    if crate::support::skip_unless_native("concurrent_creators_of_one_partition_both_succeed", "partitions are native") {
        return;
    }
    let t = TestDb::migrated().await;
    let at = T0 + 400 * DAY_S;
    let mut first = t.pool.begin().await.unwrap();
    let created: bool = sqlx::query_scalar("SELECT canopy_ensure_partition('rollup_5m', 'day', to_timestamp($1::bigint))")
        .bind(at)
        .fetch_one(&mut *first)
        .await
        .unwrap();
    assert!(created);
    let pool = t.pool.clone();
    let second = tokio::spawn(async move {
        let mut tx = pool.begin().await.unwrap();
        let created: Result<bool, sqlx::Error> =
            sqlx::query_scalar("SELECT canopy_ensure_partition('rollup_5m', 'day', to_timestamp($1::bigint))")
                .bind(at)
                .fetch_one(&mut *tx)
                .await;
        tx.commit().await.unwrap();
        created
    });
    // Let the second creator reach the advisory lock, then commit the first.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    first.commit().await.unwrap();
    assert!(!second.await.unwrap().expect("the second creator must not fail"));
    assert_eq!(count(&t.pool, &partition_name("rollup_5m", at - at % DAY_S)).await, 0);
}

/// Bucket starts (Unix seconds) present in `table`.
async fn buckets(pool: &sqlx::PgPool, table: &str) -> Vec<i64> {
    sqlx::query_scalar(&format!(
        "SELECT DISTINCT extract(epoch FROM bucket_start)::bigint FROM {table} ORDER BY 1"
    ))
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Issue 13, case 6: `--retain-daily-months` deleted the account and org
/// daily and monthly rollups but left the team rollups, so a team-only query
/// (which reads `org_team_rollup_*`) still counted the deleted months while
/// an account-level one did not. After retention all three hold exactly the
/// same days and months, and both queries give the same totals.
#[tokio::test]
async fn daily_retention_applies_to_the_team_rollups_too() {
    if crate::support::skip_unless_native("daily_retention_applies_to_the_team_rollups_too", "--retain-daily-months deletes native rollup rows; TimescaleDB's retention is its policies") {
        return;
    }
    let t = TestDb::migrated().await;
    let day = |y, m, d| days_from_civil(y, m, d) * DAY_S;
    // Resources 1..=8 (teams web, data, ml and untagged) on 15 Aug, 15 Sep
    // and 15 Oct 2026, one hour each.
    let starts = [day(2026, 8, 15), day(2026, 9, 15), day(2026, 10, 15)];
    let facts = starts.iter().flat_map(|s| (1..=8).map(move |r| fact(r, s + 10 * HOUR_S, 3_600, 1))).collect();
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 1, facts, inventory: vec![] }).await;

    // 2026-11-20 with two months of daily retention: cutoff 2026-09-01.
    let now = day(2026, 11, 20) + 12 * HOUR_S;
    let policy = RetentionPolicy { daily_months: Some(2), ..RetentionPolicy::default() };
    let report = maintenance::run(&t.pool, &policy, now).await.unwrap();
    let kept_days = vec![starts[1], starts[2]];
    let kept_months = vec![day(2026, 9, 1), day(2026, 10, 1)];
    for table in ["rollup_daily", "org_rollup_daily", "org_team_rollup_daily", "resource_rollup_daily"] {
        assert_eq!(buckets(&t.pool, table).await, kept_days, "{table}");
    }
    for table in ["rollup_monthly", "org_rollup_monthly", "org_team_rollup_monthly"] {
        assert_eq!(buckets(&t.pool, table).await, kept_months, "{table}");
    }

    // August to October, whole months: by team (team rollups) and by account
    // (account-level rollups) both see September and October only.
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let totals = |group_by: Vec<Dimension>| TotalsRequest {
        from_unix_s: day(2026, 8, 1),
        to_unix_s: day(2026, 11, 1),
        group_by,
        filters: Filters::default(),
        page: Page::default(),
    };
    let by_team = engine.totals(&totals(vec![Dimension::Team]), now).await.unwrap();
    let by_account = engine.totals(&totals(vec![Dimension::Account]), now).await.unwrap();
    assert!(by_team.segments.iter().any(|s| s.source.table() == "org_team_rollup_monthly"), "{:?}", by_team.segments);
    // August's rollups are gone but its facts (kept 13 months) are not, so
    // the planner answers August exactly from the facts (past the daily
    // horizon, issue 13 case 2) and September-October from the rollups.
    let expected_kwh: f64 =
        starts.iter().flat_map(|s| (1..=8).map(move |r| fact(r, s + 10 * HOUR_S, 3_600, 1).energy_kwh)).sum();
    assert_eq!(by_team.total.fact_count, 24);
    assert_eq!(by_account.total.fact_count, 24);
    assert!((by_team.total.energy_kwh - expected_kwh).abs() < 1e-9, "{} vs {expected_kwh}", by_team.total.energy_kwh);
    assert!((by_account.total.energy_kwh - by_team.total.energy_kwh).abs() < 1e-9);
    assert!((by_account.total.location_kg_co2e - by_team.total.location_kg_co2e).abs() < 1e-9);
    // August's rows of the daily and of the monthly rollups, account-level,
    // org (no OU: grouped without the account) and team, from August's
    // facts (kept 13 months).
    let august: i64 = sqlx::query_scalar(
        "WITH f AS (SELECT * FROM emission_facts_all WHERE period_start < '2026-09-01T00:00:00Z')
         SELECT 2 * ((SELECT count(DISTINCT (account_id, region, service, resource_type, team, quality)) FROM f)
                   + (SELECT count(DISTINCT (region, service, resource_type, team, quality)) FROM f)
                   + (SELECT count(DISTINCT (team, quality)) FROM f))
                + (SELECT count(DISTINCT (account_id, region, resource_id, service, resource_type, team, quality)) FROM f)",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert!(august >= 6);
    assert_eq!(report.daily_rows_deleted, august as u64);

    // Top resources over the same three months: August (its per-resource
    // daily rows deleted) from the facts, September and October from the
    // per-resource daily rollup; every resource's three hours counted once.
    let top = engine
        .top_resources(
            &TopResourcesRequest {
                from_unix_s: day(2026, 8, 1),
                to_unix_s: day(2026, 11, 1),
                filters: Filters::default(),
                page: Page { limit: 100, offset: 0 },
            },
            now,
        )
        .await
        .unwrap();
    let sources: Vec<(Source, i64)> = top.segments.iter().map(|s| (s.source, s.from_unix_s)).collect();
    assert_eq!(sources, vec![(Source::Facts, day(2026, 8, 1)), (Source::ResourceDaily, day(2026, 9, 1))]);
    assert_eq!(top.rows.len(), 8);
    assert!(top.rows.iter().all(|r| r.metrics.fact_count == 3), "{:?}", top.rows);
    let top_kwh: f64 = top.rows.iter().map(|r| r.metrics.energy_kwh).sum();
    assert!((top_kwh - expected_kwh).abs() < 1e-9, "{top_kwh} vs {expected_kwh}");
}
