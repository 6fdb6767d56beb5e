//! `bench-storage` at a tiny size: the loaded rows follow the formula
//! (series × buckets per table), the levels agree with each other, the depth
//! check refuses configurations whose queries would read beyond the loaded
//! depth, and every query type runs and reports what it read.

use canopy_aggregator::bench::{self, BenchConfig, BenchError, FactsLayout, Layout};
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::query::{Filters, Page, QueryEngine, TopResourcesRequest};
use sqlx::Row;

use crate::support::TestDb;

/// 2026-11-09T12:34:56Z: the newest hour ends at 13:00, the month started
/// 8 days before, so 10 days of hourly rollups make November's partition
/// complete.
const NOW: i64 = 1_794_227_696;

fn tiny() -> BenchConfig {
    BenchConfig {
        accounts: 30,
        series_per_account: 3,
        history_days: 40,
        hourly_days: 10,
        five_minute_days: 8,
        realtime_days: 2,
        facts_days: 8,
        sample_accounts: 3,
        resources_per_sample_account: 5,
        resource_rollup_accounts: 3,
        resource_rollup_days: 8,
        runs: 2,
        ingest_batches: 1,
        now_unix_s: NOW,
        facts_layout: FactsLayout::Segments,
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.expect(sql)
}

/// Largest relative difference between two columns of `sql`'s rows, and
/// the number of rows.
async fn max_rel_diff(db: &TestDb, sql: &str) -> (f64, usize) {
    let rows = sqlx::query(sql).fetch_all(&db.pool).await.expect(sql);
    let worst = rows
        .iter()
        .map(|r| {
            let (a, b): (f64, f64) = (r.get(0), r.get(1));
            ((a - b) / b).abs()
        })
        .fold(0.0, f64::max);
    (worst, rows.len())
}

#[tokio::test]
async fn tiny_bench_loads_the_formula_and_reads_only_loaded_depth() {
    if crate::support::skip_unless_native("tiny_bench_loads_the_formula_and_reads_only_loaded_depth", "the storage bench loads native tables (segments, partitions)") {
        return;
    }
    let db = TestDb::empty().await;
    let cfg = tiny();
    assert_eq!(bench::account_id(0), "100000000000");
    let layout = Layout::loaded(&cfg);
    assert_eq!(layout.end_unix_s, NOW - NOW % 3_600 + 3_600);

    // Refused before anything is loaded: 3 days of 5-minute rollups, while
    // the ragged 7-day total reads 5-minute buckets 7 days back.
    let err = bench::load_dataset(&db.pool, &BenchConfig { five_minute_days: 3, ..cfg }).await.unwrap_err();
    match &err {
        BenchError::DepthChangesQuery { query, detail } => {
            assert_eq!(*query, "totals ragged 7 days by account (daily+hourly+5m)");
            assert!(detail.contains("rollup_5m") && detail.contains("2026-11-06"), "{detail}");
        }
        other => panic!("expected a depth refusal, got {other}"),
    }
    // Also refused: hourly rollups from 2026-11-10 (11 days before 2026-11-20)
    // leave November's partition partly loaded, and the 7-day queries read it.
    let later = BenchConfig { now_unix_s: NOW + 11 * 86_400, hourly_days: 11, ..cfg };
    let err = bench::load_dataset(&db.pool, &later).await.unwrap_err();
    assert!(err.to_string().contains("partly loaded month partition"), "{err}");
    assert!(matches!(bench::load_dataset(&db.pool, &BenchConfig { hourly_days: 41, ..cfg }).await, Err(BenchError::Config(_))));

    let loaded = bench::load_dataset(&db.pool, &cfg).await.expect("load");
    assert_eq!(loaded.groups.series, 90);
    assert_eq!(loaded.accounts, 30);
    let org_groups = count(
        &db,
        "SELECT count(*) FROM (SELECT DISTINCT a.ou_path, r.region, r.service, r.resource_type, r.team, r.quality
         FROM rollup_daily r JOIN accounts a USING (account_id)) g",
    )
    .await;
    assert_eq!(loaded.groups.org, org_groups);
    let team_groups = count(&db, "SELECT count(*) FROM (SELECT DISTINCT team, quality FROM rollup_daily) g").await;
    assert_eq!(loaded.groups.team, team_groups);
    assert!(team_groups > 3 && team_groups < org_groups, "{team_groups}");
    assert!(org_groups > 30 && org_groups <= 90, "{org_groups}");

    // Buckets: data ends 2026-11-09 13:00. Hourly from 10-30 (10 days +
    // 13 hours), 5-minute and facts from 11-01 (8 days + 13 hours), group
    // records from 11-07, daily from 09-01 (the first of the month 40 days
    // back: 70 days), months Sep..Nov.
    let hourly = 10 * 24 + 13;
    let five = 8 * 288 + 13 * 12;
    let realtime = 2 * 288 + 13 * 12;
    let expected = [
        ("rollup_hourly", 90 * hourly),
        ("rollup_5m", 90 * five),
        ("realtime_group_facts", 90 * realtime),
        ("rollup_daily", 90 * 70),
        ("rollup_monthly", 90 * 3),
        ("org_rollup_hourly", org_groups * hourly),
        ("org_rollup_5m", org_groups * five),
        ("org_rollup_daily", org_groups * 70),
        ("org_rollup_monthly", org_groups * 3),
        ("org_team_rollup_daily", team_groups * 70),
        ("org_team_rollup_monthly", team_groups * 3),
        // 3 accounts x 5 resources, one row per day from 11-01 (8 days + 13 hours).
        ("resource_rollup_daily", 15 * 9),
    ];
    for (table, rows) in expected {
        assert_eq!(count(&db, &format!("SELECT count(*) FROM {table}")).await, rows, "{table}");
        let reported = loaded.tables.iter().find(|t| t.0 == table).map(|t| t.1);
        assert_eq!(reported, Some(rows), "{table}");
    }
    // The facts as segments: 3 accounts × 5 resources (each in its own
    // region) × 205 hours, one record per segment; the facts' table reports
    // records (the sum of record_count), and the row table stays empty.
    let fact_records = 3 * 5 * (8 * 24 + 13);
    assert_eq!(count(&db, "SELECT sum(record_count) FROM emission_fact_segments").await, fact_records);
    assert_eq!(count(&db, "SELECT count(*) FROM emission_fact_segments").await, fact_records);
    assert_eq!(loaded.fact_segments, fact_records);
    assert_eq!(loaded.tables.iter().find(|t| t.0 == "emission_fact_segments").map(|t| t.1), Some(fact_records));
    assert!(!loaded.tables.iter().any(|t| t.0 == "emission_facts"), "{:?}", loaded.tables);
    assert_eq!(count(&db, "SELECT count(*) FROM emission_facts").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM emission_facts_all").await, fact_records);
    assert_eq!(count(&db, "SELECT count(*) FROM accounts").await, 30);
    assert_eq!(
        count(&db, "SELECT count(*) FROM rollup_hourly WHERE bucket_start < timestamptz '2026-10-30'").await,
        0
    );
    assert_eq!(count(&db, "SELECT count(DISTINCT record_key) FROM realtime_group_facts").await, 3);

    // Daily = sum of its 24 hourly rows, hourly = sum of its 12 five-minute
    // rows, monthly = sum of its daily rows, org = account-level by OU.
    let (diff, n) = max_rel_diff(
        &db,
        "SELECT d.energy_kwh, sum(h.energy_kwh) FROM rollup_daily d
         JOIN rollup_hourly h ON h.account_id = d.account_id AND h.region = d.region AND h.service = d.service
              AND h.resource_type = d.resource_type AND h.team = d.team AND h.quality = d.quality
              AND h.bucket_start >= d.bucket_start AND h.bucket_start < d.bucket_start + interval '1 day'
         WHERE d.bucket_start = timestamptz '2026-11-03'
         GROUP BY d.account_id, d.region, d.service, d.resource_type, d.team, d.quality, d.energy_kwh
         HAVING count(*) = 24 AND sum(h.fact_count) = max(d.fact_count)",
    )
    .await;
    assert_eq!(n, 90);
    assert!(diff < 1e-12, "daily vs hourly: {diff}");
    let (diff, n) = max_rel_diff(
        &db,
        "SELECT h.location_g_co2e, sum(m.location_g_co2e) FROM rollup_hourly h
         JOIN rollup_5m m ON m.account_id = h.account_id AND m.region = h.region AND m.service = h.service
              AND m.resource_type = h.resource_type AND m.team = h.team AND m.quality = h.quality
              AND m.bucket_start >= h.bucket_start AND m.bucket_start < h.bucket_start + interval '1 hour'
         WHERE h.bucket_start = timestamptz '2026-11-05 07:00Z'
         GROUP BY h.account_id, h.region, h.service, h.resource_type, h.team, h.quality, h.location_g_co2e
         HAVING count(*) = 12 AND sum(m.fact_count) = max(h.fact_count)",
    )
    .await;
    assert_eq!(n, 90);
    assert!(diff < 1e-12, "hourly vs 5-minute: {diff}");
    let (diff, n) = max_rel_diff(
        &db,
        "SELECT mo.energy_kwh, d.e FROM rollup_monthly mo
         JOIN (SELECT account_id, region, service, resource_type, team, quality, sum(energy_kwh) AS e,
                      sum(fact_count) AS c
               FROM rollup_daily WHERE bucket_start >= timestamptz '2026-10-01' AND bucket_start < timestamptz '2026-11-01'
               GROUP BY 1, 2, 3, 4, 5, 6) d USING (account_id, region, service, resource_type, team, quality)
         WHERE mo.bucket_start = timestamptz '2026-10-01' AND mo.fact_count = d.c AND mo.fact_count = 31 * 288",
    )
    .await;
    assert_eq!(n, 90);
    assert!(diff < 1e-12, "monthly vs daily: {diff}");
    let (diff, n) = max_rel_diff(
        &db,
        "SELECT o.market_g_co2e, a.m FROM org_rollup_hourly o
         JOIN (SELECT r.bucket_start, acc.ou_path, r.region, r.service, r.resource_type, r.team, r.quality,
                      sum(r.market_g_co2e) AS m, sum(r.fact_count) AS c
               FROM rollup_hourly r JOIN accounts acc USING (account_id)
               WHERE r.bucket_start >= timestamptz '2026-11-04' AND r.bucket_start < timestamptz '2026-11-05'
               GROUP BY 1, 2, 3, 4, 5, 6, 7) a
           USING (bucket_start, ou_path, region, service, resource_type, team, quality)
         WHERE o.fact_count = a.c",
    )
    .await;
    assert_eq!(n as i64, org_groups * 24);
    assert!(diff < 1e-12, "org vs account hourly: {diff}");
    let (diff, n) = max_rel_diff(
        &db,
        "SELECT t.high_g_co2e, o.h FROM org_team_rollup_monthly t
         JOIN (SELECT bucket_start, team, quality, sum(high_g_co2e) AS h, sum(fact_count) AS c
               FROM org_rollup_monthly GROUP BY 1, 2, 3) o USING (bucket_start, team, quality)
         WHERE t.fact_count = o.c",
    )
    .await;
    assert_eq!(n as i64, team_groups * 3);
    assert!(diff < 1e-12, "team vs org monthly: {diff}");
    // The group records carry the 5-minute rollups' figures.
    let (diff, n) = max_rel_diff(
        &db,
        "SELECT g.energy_kwh, m.energy_kwh FROM realtime_group_facts g
         JOIN rollup_5m m USING (bucket_start, account_id, region, service, resource_type, team, quality)
         WHERE g.bucket_start >= timestamptz '2026-11-09 12:00Z'",
    )
    .await;
    assert_eq!(n, 90 * 12);
    assert!(diff < 1e-15, "group records vs 5-minute rollups: {diff}");

    // The per-resource daily rollup rows of the sampled accounts equal the
    // daily sums of their facts (same formula, same hours, same labels).
    let (diff, n) = max_rel_diff(
        &db,
        "SELECT r.location_g_co2e, f.location_g_co2e
         FROM resource_rollup_daily r
         JOIN (SELECT date_bin(interval '1 day', period_start, timestamptz 'epoch') AS bucket_start, account_id,
                      region, resource_id, service, resource_type, team, quality,
                      sum(location_g_co2e) AS location_g_co2e, count(*) AS n
               FROM emission_facts_all GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) f
           USING (bucket_start, account_id, region, resource_id, service, resource_type, team, quality)
         WHERE r.fact_count = f.n",
    )
    .await;
    assert_eq!(n, 15 * 9);
    assert!(diff < 1e-12, "per-resource daily rollup vs facts: {diff}");

    let report = bench::measure(&db.pool, &cfg, &loaded).await.expect("measure");
    let text = report.render();
    println!("{text}");
    // Ten query types, and top 20 over 3 and 7 days (30 days needs 30 days
    // of per-resource daily rows; 8 are loaded).
    assert_eq!(report.queries.len(), 12);
    // Served by the team rollups (no OU, region, service or type).
    let org_daily_series = report.queries.iter().find(|q| q.name == "series daily 13 months org").expect("daily series");
    assert!(org_daily_series.relations_read.iter().any(|r| r.table == "org_team_rollup_daily"), "{org_daily_series:?}");
    let q = |name: &str| report.queries.iter().find(|q| q.name == name).unwrap_or_else(|| panic!("{name}"));
    let regions = count(&db, "SELECT count(DISTINCT region) FROM realtime_group_facts").await;
    let realtime = q("realtime last hour 5m by region");
    assert_eq!(realtime.rows as i64, 12 * regions);
    let realtime_tables: Vec<(&str, u32, Option<i64>)> = realtime
        .relations_read
        .iter()
        .map(|r| (r.table.as_str(), r.relations, r.oldest_partition_from_unix_s))
        .collect();
    assert!(
        realtime_tables.contains(&("realtime_group_facts", 1, Some(1_794_182_400))),
        "one day partition, 2026-11-09: {realtime_tables:?}"
    );
    assert!(!realtime_tables.iter().any(|t| t.0.contains("rollup")), "{realtime_tables:?}");
    // One row per day from 10-01 (the day after the history starts) to 11-08.
    assert_eq!(q("series daily 13 months org").rows, 39);
    for query in &report.queries {
        assert!(query.relation_count() >= 1, "{}: {:?}", query.name, query.relations_read);
        assert!(query.p50_ms > 0.0 && query.p50_ms <= query.p95_ms && query.p95_ms <= query.p99_ms, "{}", query.name);
        // Nothing older than the loaded depth of a depth-limited level.
        for r in &query.relations_read {
            if r.table.ends_with("_hourly") {
                assert_eq!(r.oldest_partition_from_unix_s, Some(1_793_491_200), "{}: {r:?}", query.name); // 2026-11-01
            }
        }
    }
    let one_account = q("totals 13 months one account by region");
    assert!((1..=3).contains(&one_account.rows), "3 series in at most 3 regions: {}", one_account.rows);
    assert_eq!(one_account.relations_read.iter().map(|r| r.table.as_str()).collect::<Vec<_>>(), ["rollup_daily", "rollup_monthly"]);
    let top = q("top 10 resources ragged 7 days one sampled account");
    assert_eq!(top.rows, 5);
    // Whole days from the per-resource daily rollup (migration 0029), the
    // ragged edges from the facts: the view's data is in the segment
    // partition of November (the 7 days lie in it), which the probe saw
    // scanned; the row table's partition is empty but exists, as native
    // mode creates both.
    let top_tables: Vec<(&str, u32, Option<i64>)> =
        top.relations_read.iter().map(|r| (r.table.as_str(), r.relations, r.oldest_partition_from_unix_s)).collect();
    assert!(top_tables.contains(&("emission_fact_segments", 1, Some(1_793_491_200))), "{top_tables:?}");
    assert!(top_tables.iter().any(|t| t.0 == "resource_rollup_daily"), "{top_tables:?}");
    assert!(top_tables.iter().all(|t| t.0.starts_with("emission_fact") || t.0 == "resource_rollup_daily"), "{top_tables:?}");
    // Top 20 of every resource over whole days: the per-resource daily
    // rollup only, all 15 resources.
    for name in ["top 20 resources 3 days", "top 20 resources 7 days"] {
        let top = q(name);
        assert_eq!(top.rows, 15, "{name}");
        assert_eq!(top.relations_read.iter().map(|r| r.table.as_str()).collect::<Vec<_>>(), ["resource_rollup_daily"], "{name}");
    }
    assert!(!report.queries.iter().any(|q| q.name == "top 20 resources 30 days"), "only 8 days loaded");
    assert!(text.contains("segments layout"), "{text}");
    assert!(text.contains("MEASURED load") && text.contains("PROJECTED full-depth dataset"), "{text}");
    let hourly_table = report.tables.iter().find(|t| t.table == "rollup_hourly").expect("rollup_hourly");
    assert_eq!(hourly_table.full_depth_rows, 90 * (40 * 24 + 13));
    assert!(hourly_table.bytes > 0);
    // Plain tables (no partitions) are sized too.
    assert!(report.tables.iter().all(|t| t.bytes > 0), "{:?}", report.tables);

    // Timing again on the loaded dataset checks the same row counts and
    // reads the same relations.
    let again = bench::remeasure(&db.pool, &BenchConfig { ingest_batches: 0, ..cfg }).await.expect("remeasure");
    assert_eq!(
        again.tables.iter().map(|t| (t.table, t.rows)).collect::<Vec<_>>(),
        report.tables.iter().map(|t| (t.table, t.rows)).collect::<Vec<_>>()
    );
    assert_eq!(again.load_s, 0.0);
    assert_eq!(again.groups, report.groups);
    let again_realtime = again.queries.iter().find(|q| q.name == "realtime last hour 5m by region").expect("realtime");
    assert_eq!(again_realtime.rows, realtime.rows);
    // Other flags than the loading run's expect other row counts: refused,
    // naming the table.
    let more_accounts = BenchConfig { accounts: cfg.accounts + 1, ingest_batches: 0, ..cfg };
    let err = bench::remeasure(&db.pool, &more_accounts).await.expect_err("another dataset's row counts");
    assert!(matches!(err, BenchError::RowCount { table: "rollup_5m", .. }), "{err}");
    // So is the other facts layout: its table holds no records.
    let rows_layout = BenchConfig { facts_layout: FactsLayout::Rows, ingest_batches: 0, ..cfg };
    let err = bench::remeasure(&db.pool, &rows_layout).await.expect_err("the rows layout's row counts");
    assert!(matches!(err, BenchError::RowCount { table: "emission_facts", found: 0, .. }), "{err}");
}

type Fact = (i64, i32, String, String, String, i64, String, String, String, String, Vec<f64>, String);

/// The facts of a loaded database as the view reads them, in key order.
async fn facts_of(db: &TestDb) -> Vec<Fact> {
    let rows = sqlx::query(
        "SELECT extract(epoch FROM period_start)::bigint, period_s, account_id, region, record_key, revision,
                resource_id, resource_type, service, team,
                ARRAY[energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e],
                concat_ws('/', quality, methodology_version, factor_source, factor_vintage, agent_id, batch_sequence)
         FROM emission_facts_all ORDER BY 1, 3, 4, 5",
    )
    .fetch_all(&db.pool)
    .await
    .expect("facts");
    rows.iter()
        .map(|r| {
            (
                r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7), r.get(8), r.get(9),
                r.get(10), r.get(11),
            )
        })
        .collect()
}

#[tokio::test]
async fn rows_and_segments_layouts_hold_the_same_facts_and_answer_alike() {
    if crate::support::skip_unless_native("rows_and_segments_layouts_hold_the_same_facts_and_answer_alike", "fact segments are the native layout") {
        return;
    }
    // 20 resources per sampled account: regions 0..4 hold two each, so
    // segments hold one or two records.
    let cfg = BenchConfig { resources_per_sample_account: 20, runs: 1, ingest_batches: 0, ..tiny() };
    let (rows_db, segments_db) = (TestDb::empty().await, TestDb::empty().await);
    let rows_cfg = BenchConfig { facts_layout: FactsLayout::Rows, ..cfg };
    let from_rows = bench::load_dataset(&rows_db.pool, &rows_cfg).await.expect("load rows");
    let from_segments = bench::load_dataset(&segments_db.pool, &cfg).await.expect("load segments");

    let hours = 8 * 24 + 13;
    let records = 3 * 20 * hours;
    assert_eq!(from_rows.tables.iter().find(|t| t.0 == "emission_facts").map(|t| t.1), Some(records));
    assert_eq!(from_rows.fact_segments, 0);
    assert_eq!(count(&rows_db, "SELECT count(*) FROM emission_fact_segments").await, 0);
    assert_eq!(from_segments.tables.iter().find(|t| t.0 == "emission_fact_segments").map(|t| t.1), Some(records));
    assert_eq!(from_segments.fact_segments, 3 * 15 * hours);
    assert_eq!(count(&segments_db, "SELECT count(*) FROM emission_fact_segments").await, 3 * 15 * hours);
    let pairs = count(&segments_db, "SELECT count(*) FROM emission_fact_segments WHERE record_count = 2").await;
    assert_eq!(pairs, 3 * 5 * hours);
    // Every array as long as record_count, nothing superseded, keys sorted,
    // hashes by hashtextextended, one segment per (hour, account, region).
    assert_eq!(
        count(
            &segments_db,
            "SELECT count(*) FROM emission_fact_segments
             WHERE cardinality(record_keys) <> record_count OR cardinality(energy_kwh) <> record_count
                OR cardinality(key_hashes) <> record_count OR cardinality(factor_vintages) <> record_count
                OR superseded <> '{}'
                OR key_hashes <> ARRAY(SELECT hashtextextended(k, 0) FROM unnest(record_keys) k)
                OR record_keys <> ARRAY(SELECT k FROM unnest(record_keys) k ORDER BY k COLLATE \"C\")",
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &segments_db,
            "SELECT count(*) FROM (SELECT DISTINCT period_start, account_id, region FROM emission_fact_segments) g"
        )
        .await,
        3 * 15 * hours
    );
    // The same records with the same values.
    let (a, b) = (facts_of(&rows_db).await, facts_of(&segments_db).await);
    assert_eq!(a.len() as i64, records);
    assert!(a == b, "the layouts differ");

    // The same answers, top resources over 7 days of every sampled account.
    for account in 0..3 {
        let req = TopResourcesRequest {
            from_unix_s: NOW - NOW % 86_400 - 7 * 86_400,
            to_unix_s: NOW - NOW % 86_400,
            filters: Filters { account: vec![bench::account_id(account)], ..Filters::default() },
            page: Page { limit: 10, offset: 0 },
        };
        let on = |db: &TestDb| QueryEngine::new(db.pool.clone(), RetentionPolicy::default());
        let x = on(&rows_db).top_resources(&req, NOW).await.expect("rows");
        let y = on(&segments_db).top_resources(&req, NOW).await.expect("segments");
        assert_eq!(x.rows.len(), 10);
        assert_eq!(x.rows.len(), y.rows.len());
        for (r, s) in x.rows.iter().zip(&y.rows) {
            let ids = |r: &canopy_aggregator::query::ResourceRow| {
                (r.account_id.clone(), r.region.clone(), r.resource_id.clone(), r.service.clone(), r.team.clone())
            };
            assert_eq!(ids(r), ids(s), "account {account}");
            assert_eq!(r.metrics.fact_count, s.metrics.fact_count);
            assert_eq!(r.metrics.fact_count, 7 * 24);
            // Sums of the same values, perhaps added in another order.
            for (u, v) in [
                (r.metrics.energy_kwh, s.metrics.energy_kwh),
                (r.metrics.location_kg_co2e, s.metrics.location_kg_co2e),
                (r.metrics.high_kg_co2e, s.metrics.high_kg_co2e),
            ] {
                assert!(u > 0.0 && ((u - v) / u).abs() < 1e-12, "account {account}: {u} vs {v}");
            }
        }
    }

    // The rows layout's probe sees the rows' partition scanned.
    let report = bench::measure(&rows_db.pool, &rows_cfg, &from_rows).await.expect("measure rows");
    let top = report.queries.iter().find(|q| q.name == "top 10 resources ragged 7 days one sampled account").expect("top");
    assert!(
        top.relations_read
            .iter()
            .any(|r| r.table == "emission_facts" && r.oldest_partition_from_unix_s == Some(1_793_491_200)),
        "{:?}",
        top.relations_read
    );
    assert!(report.render().contains("rows layout"));
}
