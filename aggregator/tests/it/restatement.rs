//! Issue 14, section 3: importing a changed factor version restates the
//! stored periods it prices differently (and only those), resumably, while
//! ingest keeps running, with a record whose before/after are the API's.

use std::collections::BTreeMap;

use canopy_aggregator::factors;
use canopy_aggregator::grpc::pb::{self, canopy_query_client::CanopyQueryClient};
use canopy_aggregator::grpc::GrpcQuery;
use canopy_aggregator::http::router;
use canopy_aggregator::ingest::store_batch;
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::model::{Batch, FactRow};
use canopy_aggregator::query::{Filters, Page, QueryEngine, TotalsRequest};
use canopy_aggregator::restatement::{self, Restatement};
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

use crate::support::{TestDb, fact, seed_accounts, settle_if_timescaledb};

const JAN_2023: i64 = 1_672_531_200;
const FEB_2023: i64 = 1_675_209_600;
const MAR_2023: i64 = 1_677_628_800;
const APR_2023: i64 = 1_680_307_200;
const JAN_2024: i64 = 1_704_067_200;
const FEB_2024: i64 = 1_706_745_600;
/// The API's clock: after every period the tests store.
const NOW: i64 = 1_717_200_000;

const HOURLY_HEADER: &str = "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,Data Estimated,Data Estimation Method";

/// An Electricity Maps file of US-CAL-CISO (us-west-1) hours.
fn hourly_file(name: &str, hours: &[(i64, f64)]) -> String {
    let mut text = format!("{HOURLY_HEADER}\n");
    for (unix_s, g) in hours {
        let (y, m, d) = canopy_aggregator::time::civil_from_days(unix_s.div_euclid(86_400));
        let h = unix_s.rem_euclid(86_400) / 3_600;
        text.push_str(&format!(
            "{y:04}-{m:02}-{d:02} {h:02}:00:00,USA,California Independent System Operator,US-CAL-CISO,{g},{},50,40,caiso.com,false,\n",
            g + 60.0
        ));
    }
    write_temp(name, &text)
}

fn write_temp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("canopy-restatement-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// The live path: price with the aggregator's factors, store, one
/// transaction; retried while the error is retryable (concurrent writers).
async fn deliver(pool: &PgPool, batch: &Batch) {
    for _ in 0..20 {
        let mut b = batch.clone();
        let mut tx = pool.begin().await.unwrap();
        factors::apply(&mut tx, &mut b.facts).await.unwrap();
        match store_batch(&mut tx, &b).await {
            Ok(_) => {
                tx.commit().await.unwrap();
                return;
            }
            Err(e) if e.is_retryable() => {
                drop(tx);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("batch ({}, {}) kept failing", batch.agent_id, batch.sequence);
}

fn at(resource: u64, region: &str, start: i64, revision: u32) -> FactRow {
    FactRow { region: region.into(), ..fact(resource, start, 3_600, revision) }
}

fn batch(agent: &str, sequence: u64, facts: Vec<FactRow>) -> Batch {
    Batch { agent_id: agent.into(), sequence, facts, inventory: vec![] }
}

/// The API's (location, market) grams of `account` (all when empty) in `region`s over [from, to).
async fn api(pool: &PgPool, account: &str, regions: &[&str], from: i64, to: i64) -> (f64, f64) {
    let filters = Filters {
        account: if account.is_empty() { vec![] } else { vec![account.into()] },
        region: regions.iter().map(|r| (*r).to_owned()).collect(),
        ..Filters::default()
    };
    api_with(pool, filters, from, to).await
}

async fn api_with(pool: &PgPool, filters: Filters, from: i64, to: i64) -> (f64, f64) {
    let engine = QueryEngine::new(pool.clone(), RetentionPolicy::default());
    let req = TotalsRequest { from_unix_s: from, to_unix_s: to, group_by: vec![], filters, page: Page::default() };
    let resp = engine.totals(&req, NOW).await.unwrap();
    resp.total.parts_add_up(1e-9).unwrap();
    (resp.total.location_kg_co2e * 1e3, resp.total.market_kg_co2e * 1e3)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

async fn only(pool: &PgPool) -> Restatement {
    let list = restatement::list(pool, 10).await.unwrap();
    list.into_iter().next().expect("a restatement")
}

#[tokio::test]
async fn a_changed_hourly_version_restates_exactly_the_affected_periods_and_resumes() {
    let t = TestDb::migrated().await;
    let v1 = hourly_file(
        "v1.csv",
        &[(JAN_2023, 200.0), (JAN_2023 + 3_600, 210.0), (FEB_2023, 220.0), (MAR_2023, 230.0)],
    );
    assert_eq!(factors::import_hourly(&t.pool, &[v1]).await.unwrap().version, 1);
    restatement::run_pending(&t.pool, None).await.unwrap(); // nothing stored yet
    // Resources 0 -> 111111111111, 1 -> 222222222222, 2 -> 333333333333.
    let facts = vec![
        at(0, "us-west-1", JAN_2023, 1),
        at(0, "us-west-1", JAN_2023 + 3_600, 1),
        at(0, "us-west-1", FEB_2023, 1),
        at(0, "us-west-1", MAR_2023, 1),
        at(1, "us-west-1", JAN_2023, 1),
        at(2, "eu-west-1", JAN_2023, 1),
        at(0, "eu-west-1", JAN_2023, 1),
    ];
    deliver(&t.pool, &batch("a", 1, facts.clone())).await;
    settle_if_timescaledb(&t.pool).await;
    let months = [(JAN_2023, FEB_2023), (FEB_2023, MAR_2023), (MAR_2023, APR_2023)];
    let accounts = ["111111111111", "222222222222", "333333333333"];
    let mut before: BTreeMap<(&str, i64), (f64, f64)> = BTreeMap::new();
    for a in accounts {
        for (from, to) in months {
            before.insert((a, from), api(&t.pool, a, &[], from, to).await);
        }
    }
    let other_region_before = api(&t.pool, "", &["eu-west-1"], JAN_2023, APR_2023).await;

    // Version 2 changes January's two hours only.
    let v2 = hourly_file("v2.csv", &[(JAN_2023, 100.0), (JAN_2023 + 3_600, 150.0)]);
    assert_eq!(factors::import_hourly(&t.pool, &[v2]).await.unwrap().version, 2);
    // A crash after one chunk: the record stays running, listing no months yet.
    let partial = restatement::run_pending(&t.pool, Some(1)).await.unwrap();
    assert_eq!(partial.len(), 1);
    assert_eq!((partial[0].chunks, partial[0].done), (1, false));
    let running = only(&t.pool).await;
    assert_eq!((running.state.as_str(), running.months.len()), ("running", 0));
    // The next run finishes it.
    let rest = restatement::run_pending(&t.pool, None).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!((rest[0].chunks, rest[0].done), (1, true));
    assert!(restatement::run_pending(&t.pool, None).await.unwrap().is_empty(), "nothing left to run");
    settle_if_timescaledb(&t.pool).await;

    // The stored facts: January's us-west-1 hours priced with version 2.
    let stored: Vec<(String, i64, f64, f64, String)> = sqlx::query_as(
        "SELECT account_id, extract(epoch FROM period_start)::bigint, energy_kwh, operational_location_g_co2e, factor_vintage
         FROM emission_facts_all_parts WHERE region = 'us-west-1' ORDER BY 2, 1",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    let want = [
        ("111111111111", JAN_2023, 100.0, "location-hourly v2"),
        ("222222222222", JAN_2023, 100.0, "location-hourly v2"),
        ("111111111111", JAN_2023 + 3_600, 150.0, "location-hourly v2"),
        ("111111111111", FEB_2023, 220.0, "location-hourly v1"),
        ("111111111111", MAR_2023, 230.0, "location-hourly v1"),
    ];
    assert_eq!(stored.len(), want.len());
    for (s, w) in stored.iter().zip(want) {
        assert_eq!((s.0.as_str(), s.1, s.4.as_str()), (w.0, w.1, w.3));
        assert!(close(s.3, s.2 * w.2), "{s:?}: {} x {}", s.2, w.2);
    }
    // The per-resource daily rollup (migration 0029) was restated with them.
    crate::support::resource_rollup_mismatches(&t.pool).await.unwrap();

    // The record: cause, the one day, and the two account-months touched,
    // whose before/after are the API's answers before and after.
    let r = only(&t.pool).await;
    assert_eq!((r.factor_set.as_str(), r.old_version, r.new_version, r.state.as_str()), ("location-hourly", 1, 2, "done"));
    assert_eq!(r.facts_restated, 3);
    assert_eq!(r.days_unix_s, vec![JAN_2023]);
    let touched: Vec<(&str, i64)> = r.months.iter().map(|m| (m.account_id.as_str(), m.month_start_unix_s)).collect();
    assert_eq!(touched, vec![("111111111111", JAN_2023), ("222222222222", JAN_2023)]);
    for m in &r.months {
        let b = before[&(m.account_id.as_str(), m.month_start_unix_s)];
        let a = api(&t.pool, &m.account_id, &[], JAN_2023, FEB_2023).await;
        assert!(close(m.before_location_g_co2e, b.0) && close(m.before_market_g_co2e, b.1), "{m:?} vs before {b:?}");
        assert!(close(m.after_location_g_co2e, a.0) && close(m.after_market_g_co2e, a.1), "{m:?} vs after {a:?}");
        assert!(m.after_location_g_co2e < m.before_location_g_co2e, "100 and 150 g/kWh replaced 200 and 210");
    }
    // Every other account-month and the other region: unchanged to the gram.
    for a in accounts {
        for (from, to) in months {
            if touched.contains(&(a, from)) {
                continue;
            }
            assert_eq!(api(&t.pool, a, &[], from, to).await, before[&(a, from)], "{a} {from}");
        }
    }
    assert_eq!(api(&t.pool, "", &["eu-west-1"], JAN_2023, APR_2023).await, other_region_before);

    // GET /v1/restatements says the same.
    let app = router(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), || NOW, canopy_aggregator::auth::Auth::insecure_open_access());
    let resp = app
        .clone()
        .oneshot(axum::http::Request::get("/v1/restatements").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), axum::http::StatusCode::OK);
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    let first = &body["restatements"][0];
    assert_eq!(first["cause"], serde_json::json!({ "factor_set": "location-hourly", "old_version": 1, "new_version": 2 }));
    assert_eq!(first["days"], serde_json::json!(["2023-01-01T00:00:00Z"]));
    assert_eq!(first["months"][1]["account_id"], "222222222222");
    assert_eq!(first["months"][1]["after"]["location_g_co2e"].as_f64().unwrap(), r.months[1].after_location_g_co2e);
    assert_eq!(body["restatements"].as_array().unwrap().len(), 2, "version 1's (nothing stored then) too");
    let bad = app
        .oneshot(axum::http::Request::get("/v1/restatements?limit=0").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(bad.status(), axum::http::StatusCode::BAD_REQUEST);

    // And the gRPC method.
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let service = GrpcQuery::new(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), || NOW, canopy_aggregator::auth::Auth::insecure_open_access());
    let server = tokio::spawn(
        tonic::transport::Server::builder().add_service(service.into_server()).serve_with_incoming(incoming),
    );
    let mut client = CanopyQueryClient::connect(format!("http://{addr}")).await.unwrap();
    let list = client.restatements(pb::RestatementsRequest { limit: 1 }).await.unwrap().into_inner().restatements;
    assert_eq!(list.len(), 1);
    let g = &list[0];
    assert_eq!((g.factor_set.as_str(), g.old_version, g.new_version, g.state.as_str()), ("location-hourly", 1, 2, "done"));
    assert_eq!((g.facts_restated, g.days_unix_s.clone()), (3, vec![JAN_2023]));
    assert_eq!(g.months.len(), 2);
    assert_eq!(g.months[0].before_location_g_co2e, r.months[0].before_location_g_co2e);
    assert_eq!(g.months[0].after_location_g_co2e, r.months[0].after_location_g_co2e);
    let err = client.restatements(pb::RestatementsRequest { limit: 201 }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    server.abort();
}

#[tokio::test]
async fn a_changed_market_version_restates_its_region_and_year_only() {
    let t = TestDb::migrated().await;
    let market = |name: &str, share: &str| {
        write_temp(
            name,
            &format!(
                "region,year,supplier_g_co2e_per_kwh,renewable_share,residual_mix_g_co2e_per_kwh,source,vintage\n\
                 eu-west-1,2023,,{share},380,AIB European Residual Mix,2022\n"
            ),
        )
    };
    factors::import_market(&t.pool, &market("m1.csv", "0.5")).await.unwrap();
    restatement::run_pending(&t.pool, None).await.unwrap(); // as the import command does
    let facts = vec![at(0, "eu-west-1", JAN_2023, 1), at(0, "eu-west-1", JAN_2024, 1), at(1, "us-east-1", JAN_2023, 1)];
    deliver(&t.pool, &batch("a", 1, facts.clone())).await;
    settle_if_timescaledb(&t.pool).await;
    let jan23 = api(&t.pool, "111111111111", &[], JAN_2023, FEB_2023).await;
    let jan24 = api(&t.pool, "111111111111", &[], JAN_2024, FEB_2024).await;
    let other = api(&t.pool, "222222222222", &[], JAN_2023, FEB_2023).await;
    // 100 % matching from version 2 on.
    assert_eq!(factors::import_market(&t.pool, &market("m2.csv", "1")).await.unwrap().version, 2);
    restatement::run_pending(&t.pool, None).await.unwrap();
    settle_if_timescaledb(&t.pool).await;
    let after23 = api(&t.pool, "111111111111", &[], JAN_2023, FEB_2023).await;
    let embodied = facts[0].parts().embodied_g_co2e;
    assert!(close(after23.1, embodied), "market = embodied only: {after23:?} vs {embodied}");
    crate::support::resource_rollup_mismatches(&t.pool).await.unwrap();
    assert_eq!(after23.0, jan23.0, "location-based unchanged");
    assert_eq!(api(&t.pool, "111111111111", &[], JAN_2024, FEB_2024).await, jan24, "2024 untouched");
    assert_eq!(api(&t.pool, "222222222222", &[], JAN_2023, FEB_2023).await, other, "us-east-1 untouched");
    let r = only(&t.pool).await;
    assert_eq!((r.factor_set.as_str(), r.old_version, r.new_version, r.facts_restated), ("market", 1, 2, 1));
    assert_eq!(r.months.len(), 1);
    let m = &r.months[0];
    assert_eq!((m.account_id.as_str(), m.month_start_unix_s), ("111111111111", JAN_2023));
    assert!(close(m.before_market_g_co2e, jan23.1) && close(m.after_market_g_co2e, after23.1), "{m:?}");
    assert!(close(m.before_location_g_co2e, jan23.0) && close(m.after_location_g_co2e, after23.0), "{m:?}");
}

#[tokio::test]
async fn concurrent_ingest_during_a_restatement_loses_nothing() {
    let t = TestDb::migrated().await;
    seed_accounts(&t.pool).await;
    // 24 hours over 8 days: 24 chunks (3 accounts x 8 days) to interleave with ingest.
    let hours: Vec<i64> = (0..24).map(|h| JAN_2023 + h / 3 * 86_400 + h % 3 * 3_600).collect();
    let v1: Vec<(i64, f64)> = hours.iter().enumerate().map(|(i, h)| (*h, 200.0 + i as f64)).collect();
    let v2: Vec<(i64, f64)> = hours.iter().enumerate().map(|(i, h)| (*h, 100.0 + 3.0 * i as f64)).collect();
    factors::import_hourly(&t.pool, &[hourly_file("c1.csv", &v1)]).await.unwrap();
    restatement::run_pending(&t.pool, None).await.unwrap();
    // Nine resources (three per account) over the day, one batch per resource.
    let mut model: BTreeMap<(String, i64), FactRow> = BTreeMap::new();
    for r in 0..9u64 {
        let facts: Vec<FactRow> = hours.iter().map(|h| at(r, "us-west-1", *h, 1)).collect();
        for f in &facts {
            model.insert((f.record_key.clone(), f.period_start_unix_s), f.clone());
        }
        deliver(&t.pool, &batch("initial", r, facts)).await;
    }
    factors::import_hourly(&t.pool, &[hourly_file("c2.csv", &v2)]).await.unwrap();
    // While it restates: nine new resources and revision 2 of three old ones.
    let mut later: Vec<Batch> = Vec::new();
    for r in 9..18u64 {
        later.push(batch("later", r, hours.iter().map(|h| at(r, "us-west-1", *h, 1)).collect()));
    }
    for r in 0..3u64 {
        later.push(batch("revised", r, hours.iter().map(|h| at(r, "us-west-1", *h, 2)).collect()));
    }
    for b in &later {
        for f in &b.facts {
            model.insert((f.record_key.clone(), f.period_start_unix_s), f.clone());
        }
    }
    let pool = t.pool.clone();
    let ingest = tokio::spawn(async move {
        for b in later {
            deliver(&pool, &b).await;
        }
    });
    let pool = t.pool.clone();
    let restating = tokio::spawn(async move {
        // A chunk that lost a deadlock to ingest is resumed by the next run.
        for _ in 0..10 {
            if restatement::run_pending(&pool, None).await.is_ok() {
                return;
            }
        }
        panic!("the restatement kept failing");
    });
    ingest.await.unwrap();
    restating.await.unwrap();
    restatement::run_pending(&t.pool, None).await.unwrap();
    settle_if_timescaledb(&t.pool).await;
    // The model: every fact's final revision priced with version 2 (plus its embodied part).
    let g_of = |start: i64| v2.iter().find(|(h, _)| *h == start).unwrap().1;
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for f in model.values() {
        *want.entry(f.account_id.clone()).or_default() += f.energy_kwh * g_of(f.period_start_unix_s) + f.parts().embodied_g_co2e;
    }
    for (account, grams) in &want {
        let (location, market) = api(&t.pool, account, &[], JAN_2023, FEB_2023).await;
        assert!(close(location, *grams), "{account}: API {location} vs model {grams}");
        assert!(close(market, *grams), "{account}: no market factors: market = location");
    }
    // The org (OU) and team levels too: r-1/ou-c holds 333333333333 only.
    let team_of = |f: &FactRow| {
        f.tags.iter().flatten().find(|(k, _)| k == "team").map_or("untagged".to_owned(), |(_, v)| v.clone())
    };
    for team in ["web", "data", "ml", "untagged"] {
        let grams: f64 = model
            .values()
            .filter(|f| f.account_id == "333333333333" && team_of(f) == team)
            .map(|f| f.energy_kwh * g_of(f.period_start_unix_s) + f.parts().embodied_g_co2e)
            .sum();
        let filters = Filters { ou: vec!["r-1/ou-c".into()], team: vec![team.into()], ..Filters::default() };
        let (location, _) = api_with(&t.pool, filters, JAN_2023, FEB_2023).await;
        assert!(close(location, grams), "ou-c, team {team}: API {location} vs model {grams}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM emission_facts_all_parts").fetch_one(&t.pool).await.unwrap();
    assert_eq!(count as usize, model.len());
    crate::support::resource_rollup_mismatches(&t.pool).await.unwrap();
    let r = only(&t.pool).await;
    assert_eq!((r.state.as_str(), r.new_version), ("done", 2));
}
