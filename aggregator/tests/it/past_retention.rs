//! Issue 13, case 2: ranges older than a level's retention. After the
//! hourly rollups and per-resource facts of a month are dropped, an answer
//! must be exact from what remains (daily and monthly rollups) or a 400
//! naming the boundary to round to; never a silent wrong number.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use canopy_aggregator::grpc::{CanopyQueryClient, GrpcQuery, pb};
use canopy_aggregator::http::router;
use canopy_aggregator::maintenance::{self, RetentionPolicy};
use canopy_aggregator::model::{Batch, FactRow};
use canopy_aggregator::query::{
    Dimension, Filters, Horizons, Page, QueryEngine, SeriesRequest, Step, TopResourcesRequest, TotalsRequest,
};
use canopy_aggregator::time::{DAY_S, HOUR_S};
use serde_json::Value;
use tonic::transport::server::TcpIncoming;
use tower::ServiceExt;

use crate::support::{T0, TestDb, fact, store};

/// 2025-10-05T00:00:00Z.
const DAY: i64 = 20_366 * DAY_S;
/// 2026-12-07T12:00:00Z: 13 months back is 2025-11-01, so October 2025's
/// hourly and fact partitions are dropped; its daily and monthly rollups stay.
const NOW: i64 = T0 + 35 * DAY_S + 12 * HOUR_S;

fn now() -> i64 {
    NOW
}

/// One resource using exactly 1 kWh in each hour of 2025-10-05.
fn hourly_kwh(hour: i64) -> FactRow {
    FactRow {
        energy_kwh: 1.0,
        location_g_co2e: 100.0,
        market_g_co2e: 50.0,
        low_g_co2e: 80.0,
        high_g_co2e: 125.0,
        accounting: None,
        ..fact(1, DAY + hour * HOUR_S, 3_600, 1)
    }
}

/// A database with that day stored, then maintenance run at [`NOW`] with `policy`.
async fn day_then_retention(policy: &RetentionPolicy) -> TestDb {
    let t = TestDb::migrated().await;
    let facts: Vec<FactRow> = (0..24).map(hourly_kwh).collect();
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 1, facts, inventory: vec![] }).await;
    let report = maintenance::run(&t.pool, policy, NOW).await.unwrap();
    assert!(report.partitions_dropped.contains(&"rollup_hourly_p20251001".to_owned()), "{report:?}");
    t
}

fn totals(from: i64, to: i64, group_by: Vec<Dimension>) -> TotalsRequest {
    TotalsRequest { from_unix_s: from, to_unix_s: to, group_by, filters: Filters::default(), page: Page::default() }
}

/// The answer's energy, or the error's text.
async fn energy(engine: &QueryEngine, req: &TotalsRequest) -> Result<f64, String> {
    engine.totals(req, NOW).await.map(|r| r.total.energy_kwh).map_err(|e| e.to_string())
}

#[tokio::test]
async fn ranges_past_the_hourly_retention_are_exact_or_refused() {
    if crate::support::skip_unless_native("ranges_past_the_hourly_retention_are_exact_or_refused", "maintenance drops native partitions and stores the horizons; TimescaleDB's own retention policies drop chunks and the planner applies their horizons (unit-tested in query::horizons)") {
        return;
    }
    let t = day_then_retention(&RetentionPolicy::default()).await;
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    // The whole day is still exact from the daily rollup, with or without
    // the account dimension, and October from the monthly one.
    for group_by in [vec![], vec![Dimension::Account], vec![Dimension::Team]] {
        assert_eq!(energy(&engine, &totals(DAY, DAY + DAY_S, group_by.clone())).await, Ok(24.0), "{group_by:?}");
    }
    assert_eq!(energy(&engine, &totals(DAY - 4 * DAY_S, DAY + 27 * DAY_S, vec![])).await, Ok(24.0));
    // Before the fix: 24 kWh for [03:00, 24:00) (the day minus hours that no
    // longer exist) and 0 for [00:00, 03:00). Now refused, naming the
    // parameter and the day boundaries to round to.
    for (from, to, parameter, found, down, up) in [
        (DAY + 3 * HOUR_S, DAY + DAY_S, "from", "2025-10-05T03:00:00Z", "2025-10-05T00:00:00Z", "2025-10-06T00:00:00Z"),
        (DAY, DAY + 3 * HOUR_S, "to", "2025-10-05T03:00:00Z", "2025-10-05T00:00:00Z", "2025-10-06T00:00:00Z"),
    ] {
        for group_by in [vec![], vec![Dimension::Account], vec![Dimension::Team, Dimension::Quality]] {
            let answer = energy(&engine, &totals(from, to, group_by.clone())).await;
            let message = answer.expect_err("a range edge inside an expired day must be refused, not answered");
            assert!(message.starts_with(&format!("parameter {parameter}: ")), "{message}");
            for part in [found, down, up, "2025-11-01T00:00:00Z", "hourly rollups"] {
                assert!(message.contains(part), "{part:?} missing from {message:?}");
            }
        }
    }
    // Series at a step whose rollup has expired: refused; at 1d: exact.
    let series = |step, from, to| SeriesRequest {
        from_unix_s: from,
        to_unix_s: to,
        step,
        group_by: vec![],
        filters: Filters::default(),
        page: Page::default(),
    };
    let err = engine.series(&series(Step::Hour, DAY, DAY + DAY_S), NOW).await.unwrap_err().to_string();
    assert!(err.starts_with("parameter from: ") && err.contains("2025-11-01T00:00:00Z"), "{err}");
    let daily = engine.series(&series(Step::Day, DAY, DAY + DAY_S), NOW).await.unwrap();
    assert_eq!(daily.rows.iter().map(|r| r.metrics.energy_kwh).sum::<f64>(), 24.0);
    // Top resources of the expired month: whole days from the per-resource
    // daily rollup (migration 0029, kept like the daily rollups); a ragged
    // edge needs the expired facts: refused, not an empty list.
    let top = TopResourcesRequest {
        from_unix_s: DAY,
        to_unix_s: DAY + DAY_S,
        filters: Filters::default(),
        page: Page::default(),
    };
    let whole = engine.top_resources(&top, NOW).await.unwrap();
    assert_eq!((whole.rows.len(), whole.rows[0].metrics.energy_kwh, whole.rows[0].metrics.fact_count), (1, 24.0, 24));
    let ragged = TopResourcesRequest { from_unix_s: DAY + 3 * HOUR_S, ..top };
    let err = engine.top_resources(&ragged, NOW).await.unwrap_err().to_string();
    assert!(err.starts_with("parameter from: ") && err.contains("per-resource facts"), "{err}");
    // Within retention nothing changes: a range starting at the horizon plans as before.
    let horizon = 20_393 * DAY_S; // 2025-11-01
    assert_eq!(energy(&engine, &totals(horizon + 3 * HOUR_S, horizon + DAY_S, vec![])).await, Ok(0.0));
}

#[tokio::test]
async fn shorter_hourly_retention_is_answered_exactly_from_the_facts() {
    if crate::support::skip_unless_native("shorter_hourly_retention_is_answered_exactly_from_the_facts", "maintenance drops native partitions and stores the horizons; TimescaleDB's own retention policies drop chunks and the planner applies their horizons (unit-tested in query::horizons)") {
        return;
    }
    // Hourly rollups kept 13 months, facts 14: the facts still hold October
    // 2025, so [03:00, 24:00) is the day minus three hours of facts: 21 kWh.
    let policy = RetentionPolicy { facts_months: 14, ..RetentionPolicy::default() };
    let t = day_then_retention(&policy).await;
    let engine = QueryEngine::new(t.pool.clone(), policy);
    assert_eq!(energy(&engine, &totals(DAY + 3 * HOUR_S, DAY + DAY_S, vec![])).await, Ok(21.0));
    assert_eq!(energy(&engine, &totals(DAY, DAY + 3 * HOUR_S, vec![Dimension::Account])).await, Ok(3.0));
    assert_eq!(energy(&engine, &totals(DAY + 90 * 60, DAY + 150 * 60, vec![Dimension::Team])).await, Ok(1.0));
}

#[tokio::test]
async fn a_query_node_with_longer_configured_retention_follows_what_maintenance_dropped() {
    if crate::support::skip_unless_native("a_query_node_with_longer_configured_retention_follows_what_maintenance_dropped", "maintenance drops native partitions and stores the horizons; TimescaleDB's own retention policies drop chunks and the planner applies their horizons (unit-tested in query::horizons)") {
        return;
    }
    // `maintain` ran with 2 months of hourly rollups and facts; the serving
    // engine was configured with the defaults (13). The horizons maintenance
    // stored in the database win, so the engine does not read what is gone.
    let policy = RetentionPolicy { hourly_months: 2, facts_months: 2, ..RetentionPolicy::default() };
    let t = TestDb::migrated().await;
    let sept = T0 - 50 * DAY_S; // 2026-09-13
    let facts: Vec<FactRow> =
        (0..24).map(|h| FactRow { energy_kwh: 1.0, accounting: None, ..fact(1, sept + h * HOUR_S, 3_600, 1) }).collect();
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 1, facts, inventory: vec![] }).await;
    maintenance::run(&t.pool, &policy, NOW).await.unwrap();
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let answer = energy(&engine, &totals(sept + 3 * HOUR_S, sept + DAY_S, vec![])).await;
    let message = answer.expect_err("hourly rollups of September 2026 were dropped");
    assert!(message.contains("2026-10-01T00:00:00Z") && message.contains("2026-09-13T00:00:00Z"), "{message}");
    assert_eq!(energy(&engine, &totals(sept, sept + DAY_S, vec![])).await, Ok(24.0));
}

#[tokio::test]
async fn http_and_grpc_refuse_with_the_boundary() {
    if crate::support::skip_unless_native("http_and_grpc_refuse_with_the_boundary", "maintenance drops native partitions and stores the horizons; TimescaleDB's own retention policies drop chunks and the planner applies their horizons (unit-tested in query::horizons)") {
        return;
    }
    let t = day_then_retention(&RetentionPolicy::default()).await;
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let app = router(engine.clone(), now, canopy_aggregator::auth::Auth::insecure_open_access());
    let uri = "/v1/totals?from=2025-10-05T03:00:00Z&to=2025-10-06";
    let resp = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let body: Value =
        serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["parameter"], "from", "{body}");
    let http_message = body["error"].as_str().unwrap().to_owned();
    assert!(http_message.contains("round from to 2025-10-05T00:00:00Z or 2025-10-06T00:00:00Z"), "{http_message}");
    let resp = app
        .clone()
        .oneshot(Request::get("/v1/totals?from=2025-10-05&to=2025-10-06").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["total"]["energy_kwh"], 24.0);

    // Per-resource answers and series past their horizons: 400 naming `from`
    // (top resources over whole days are answered from the per-resource
    // daily rollup, migration 0029; a ragged edge is refused).
    let resp = app
        .clone()
        .oneshot(Request::get("/v1/top-resources?from=2025-10-05&to=2025-10-06").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["rows"][0]["metrics"]["energy_kwh"], 24.0, "{body}");
    let resp = app
        .clone()
        .oneshot(Request::get("/v1/top-resources?from=2025-10-05T03:00:00Z&to=2025-10-06").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["parameter"], "from", "{body}");
    assert!(body["error"].as_str().unwrap().contains("round from to 2025-10-05T00:00:00Z or 2025-10-06T00:00:00Z"), "{body}");
    for uri in [
        "/v1/resource-history?account=222222222222&region=eu-west-1&resource=r1&from=2025-10-05&to=2025-10-06&step=1h",
        "/v1/series?from=2025-10-05&to=2025-10-06&step=1h",
    ] {
        let resp = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let body: Value = serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
        assert_eq!((status, &body["parameter"]), (StatusCode::BAD_REQUEST, &Value::from("from")), "{uri}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("expected an instant at or after 2025-11-01T00:00:00Z"),
            "{body}"
        );
    }
    let resp = app
        .clone()
        .oneshot(Request::get("/v1/series?from=2025-10-05&to=2025-10-07&step=1d").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["rows"][0]["metrics"]["energy_kwh"], 24.0, "{body}");

    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GrpcQuery::new(engine, now, canopy_aggregator::auth::Auth::insecure_open_access()).into_server())
            .serve_with_incoming(incoming),
    );
    let mut client = CanopyQueryClient::connect(format!("http://{addr}")).await.unwrap();
    let status = client
        .totals(pb::TotalsRequest {
            from: "2025-10-05T03:00:00Z".into(),
            to: "2025-10-06".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), http_message);
    assert_eq!(status.metadata().get("canopy-parameter").unwrap(), "from");
    server.abort();
}

/// Maintenance raises the stored horizons before it drops, and that waits
/// for the answers in flight: an answer that planned with the old horizons
/// still reads the hourly rollups it planned on, and the next answer plans
/// with the new horizons.
#[tokio::test]
async fn retention_waits_for_answers_in_flight() {
    if crate::support::skip_unless_native("retention_waits_for_answers_in_flight", "maintenance drops native partitions and stores the horizons; TimescaleDB's own retention policies drop chunks and the planner applies their horizons (unit-tested in query::horizons)") {
        return;
    }
    let t = TestDb::migrated().await;
    let facts: Vec<FactRow> = (0..24).map(hourly_kwh).collect();
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 1, facts, inventory: vec![] }).await;
    // The engine's own configuration would keep everything: only the
    // stored horizons can refuse.
    let engine = QueryEngine::new(
        t.pool.clone(),
        RetentionPolicy { hourly_months: 100, facts_months: 100, ..RetentionPolicy::default() },
    );
    let ragged = totals(DAY + 3 * HOUR_S, DAY + DAY_S, vec![]);
    let mut in_flight = engine.snapshot(NOW).await.unwrap();
    let maintenance = {
        let pool = t.pool.clone();
        tokio::spawn(async move { maintenance::run(&pool, &RetentionPolicy::default(), NOW).await.unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!maintenance.is_finished(), "maintenance must wait for the answer in flight");
    // The answer in flight still reads the October hourly rollups: exact.
    assert_eq!(in_flight.totals(&ragged).await.unwrap().total.energy_kwh, 21.0);
    in_flight.finish().await.unwrap();
    let report = maintenance.await.unwrap();
    assert!(report.partitions_dropped.contains(&"rollup_hourly_p20251001".to_owned()), "{report:?}");
    let message = engine.totals(&ragged, NOW).await.unwrap_err().to_string();
    assert!(message.contains("round from to 2025-10-05T00:00:00Z or 2025-10-06T00:00:00Z"), "{message}");
}

/// The horizons maintenance stores are exactly what it keeps: every row at
/// or after a level's stored horizon survives the run, for each table of
/// the level, with the default policy and with daily retention.
#[tokio::test]
async fn stored_horizons_are_what_maintenance_keeps() {
    if crate::support::skip_unless_native("stored_horizons_are_what_maintenance_keeps", "maintenance drops native partitions and stores the horizons; TimescaleDB's own retention policies drop chunks and the planner applies their horizons (unit-tested in query::horizons)") {
        return;
    }
    use canopy_aggregator::query::horizons;
    let levels: [(&str, &[&str], &str); 4] = [
        ("five_minute", &["rollup_5m", "org_rollup_5m"], "bucket_start"),
        ("hourly", &["rollup_hourly", "org_rollup_hourly"], "bucket_start"),
        ("facts", &["emission_facts_all_parts"], "period_start"),
        ("daily", &["rollup_daily", "rollup_monthly", "org_rollup_daily", "org_rollup_monthly"], "bucket_start"),
    ];
    for policy in [RetentionPolicy::default(), RetentionPolicy { daily_months: Some(14), ..RetentionPolicy::default() }]
    {
        let t = TestDb::migrated().await;
        // Facts on both sides of every horizon: every 7 hours from two days
        // before it to two days after, and 40 days either side.
        let expected = Horizons::of_policy(&policy, NOW);
        let mut facts = Vec::new();
        for h in [expected.five_minute_unix_s, expected.hourly_unix_s, expected.facts_unix_s, expected.daily_unix_s] {
            if h == i64::MIN {
                continue;
            }
            let mut at: Vec<i64> = (0..14).map(|i| h - 2 * DAY_S + i * 7 * HOUR_S).collect();
            at.extend([h - 40 * DAY_S, h + 40 * DAY_S]);
            facts.extend(at.into_iter().enumerate().map(|(i, t)| fact(i as u64 % 7, t, 300, 1)));
        }
        for (seq, chunk) in facts.chunks(200).enumerate() {
            store(
                &t.pool,
                &Batch { agent_id: "a".into(), sequence: seq as u64, facts: chunk.to_vec(), inventory: vec![] },
            )
            .await;
        }
        maintenance::drain_org_rollups(&t.pool).await.unwrap();
        let at_or_after = |table: &str, column: &str, h: i64| {
            format!("SELECT count(*) FROM {table} WHERE {column} >= to_timestamp({h})")
        };
        let mut before = Vec::new();
        for (level, tables, column) in levels {
            let h = match level {
                "five_minute" => expected.five_minute_unix_s,
                "hourly" => expected.hourly_unix_s,
                "facts" => expected.facts_unix_s,
                _ => expected.daily_unix_s.max(0),
            };
            for table in tables {
                let n: i64 = sqlx::query_scalar(&at_or_after(table, column, h)).fetch_one(&t.pool).await.unwrap();
                before.push((table.to_string(), h, n));
            }
        }
        let report = maintenance::run(&t.pool, &policy, NOW).await.unwrap();
        assert!(!report.partitions_dropped.is_empty());
        let stored = horizons::read(&mut t.pool.acquire().await.unwrap()).await.unwrap();
        assert_eq!(stored, expected, "{policy:?}");
        for (table, h, n) in before {
            assert!(n > 0, "{table}: no data after {h} to check");
            let after: i64 = sqlx::query_scalar(&at_or_after(
                &table,
                if table.contains("facts") { "period_start" } else { "bucket_start" },
                h,
            ))
            .fetch_one(&t.pool)
            .await
            .unwrap();
            assert_eq!(after, n, "{table}: rows at or after the stored horizon {h} must all survive ({policy:?})");
            // And the horizon is no later than needed: nothing older remains.
            let column = if table.contains("facts") { "period_start" } else { "bucket_start" };
            let older: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE {column} < to_timestamp({h})"))
                    .fetch_one(&t.pool)
                    .await
                    .unwrap();
            assert_eq!(older, 0, "{table}: rows before the stored horizon {h} remain ({policy:?})");
        }
    }
}
