use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use canopy_aggregator::http::router;
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::model::Batch;
use canopy_aggregator::query::QueryEngine;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::{T0, TestDb, as_group_record, fact, seed_accounts, store};

fn fixed_now() -> i64 {
    T0 + 3_600
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn http_answers_and_rejects_bad_parameters() {
    let t = TestDb::migrated().await;
    seed_accounts(&t.pool).await;
    // Resource 1 -> account 222222222222, region eu-west-1, team web.
    // Resource 2 -> account 333333333333, region eu-west-1, team data.
    let f1 = fact(1, T0, 300, 1);
    let f2 = fact(2, T0 + 900, 300, 1);
    // With the real-time path's group records of the same energy, which
    // answer /realtime and must not change any total.
    let facts = vec![f1.clone(), f2.clone(), as_group_record(&f1), as_group_record(&f2)];
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 1, facts, inventory: vec![] }).await;
    let app = router(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), fixed_now, canopy_aggregator::auth::Auth::insecure_open_access());

    let (status, body) = get(&app, &format!("/v1/totals?from={}&to={}&group_by=team", T0, T0 + 3_600)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let total = body["total"]["location_kg_co2e"].as_f64().unwrap();
    assert!((total - (f1.location_g_co2e + f2.location_g_co2e) / 1e3).abs() < 1e-12);
    assert_eq!(body["total"]["fact_count"], 2);
    assert_eq!(body["sources"][0]["source"], "org_hourly");
    // The parts, apart and adding up to the totals, and the factor sets behind them.
    let part = |f: &canopy_aggregator::model::FactRow| f.parts();
    let embodied_kg = (part(&f1).embodied_g_co2e + part(&f2).embodied_g_co2e) / 1e3;
    assert!(embodied_kg > 0.0);
    assert!((body["total"]["embodied_kg_co2e"].as_f64().unwrap() - embodied_kg).abs() < 1e-12, "{body}");
    let operational = body["total"]["operational_location_kg_co2e"].as_f64().unwrap();
    assert!((operational + embodied_kg - total).abs() < 1e-12, "{body}");
    let market = body["total"]["market_kg_co2e"].as_f64().unwrap();
    let operational_market = body["total"]["operational_market_kg_co2e"].as_f64().unwrap();
    assert!((operational_market + embodied_kg - market).abs() < 1e-12, "{body}");
    let it_kwh = body["total"]["it_energy_kwh"].as_f64().unwrap();
    assert!((it_kwh - (f1.energy_kwh + f2.energy_kwh) / 1.2).abs() < 1e-12, "{body}");
    assert_eq!(
        body["factor_sets"],
        serde_json::json!([{
            "methodology_version": "canopy-1", "location_factor_source": "ccf", "location_factor_vintage": "2024",
            "market_factor_source": "residual-mix", "market_factor_vintage": "2024", "parts": "split",
            "first_month_unix_s": 1_793_491_200, "last_month_unix_s": 1_793_491_200,
        }])
    );
    let teams: Vec<&str> = body["rows"].as_array().unwrap().iter().map(|r| r["dims"]["team"].as_str().unwrap()).collect();
    let mut sorted = teams.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["data", "web"]);

    let (status, body) = get(&app, &format!("/v1/totals?from={}&to={}&ou=r-1/ou-a", T0, T0 + 3_600)).await;
    assert_eq!(status, StatusCode::OK);
    // r-1/ou-a covers accounts 111.. and 222.. (ou-a/ou-b): only f1.
    assert_eq!(body["total"]["fact_count"], 1);

    let (status, body) = get(&app, "/v1/realtime?group_by=account").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["from_unix_s"], T0 + 300);
    assert_eq!(body["rows"].as_array().unwrap().len(), 1); // only f2 (T0+900) is in [T0+300, T0+3900)

    let (status, body) = get(&app, &format!("/v1/top-resources?from={}&to={}&limit=1", T0, T0 + 3_600)).await;
    assert_eq!(status, StatusCode::OK);
    let top = if f1.location_g_co2e >= f2.location_g_co2e { "r1" } else { "r2" };
    assert_eq!(body["rows"][0]["resource_id"], top);
    assert_eq!(body["next_offset"], 1);

    for (uri, parameter) in [
        ("/v1/totals?from=0&to=x".to_owned(), "to"),
        (format!("/v1/totals?from={T0}&to={}&group_by=colour", T0 + 1), "group_by"),
        (format!("/v1/totals?from={T0}&to={}&account=1;drop", T0 + 1), "account"),
        (format!("/v1/series?from={T0}&to={}&step=7m", T0 + 3_600), "step"),
        (format!("/v1/series?from={}&to={}&step=1h", T0 + 1, T0 + 3_600), "from"),
        (format!("/v1/top-resources?from={T0}&to={}&limit=0", T0 + 1), "limit"),
        ("/v1/realtime?bogus=1".to_owned(), "bogus"),
    ] {
        let (status, body) = get(&app, &uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
    }
}
