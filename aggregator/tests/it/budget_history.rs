//! Issue 17 §1, budget burn history (migration 0028): evaluator rounds at
//! chosen instants write exactly one row per budget and UTC day with the
//! period's actual gCO2e and burn rates of the day's last round, the
//! retention prunes older days, and `GET /v1/budgets/{id}/history` reads a
//! range (400 naming the parameter on bad input). Roles and scopes of the
//! route and of the gRPC method are in `authz.rs`.

use std::sync::Arc;

use axum::http::StatusCode;
use canopy_aggregator::alerts::evaluate::{Evaluator, NoAnomalies, NoForecast};
use canopy_aggregator::alerts::metrics::AlertMetrics;
use canopy_aggregator::alerts::{AlertsConfig, http as alerts_http};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::alerts::{call, store_web_emissions};
use crate::support::TestDb;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// 2026-11-01T00:00Z.
const NOV_1: i64 = 1_793_491_200;
/// 2026-12-01T00:00Z.
const DEC_1: i64 = 1_796_083_200;

/// The API's "now": 2026-12-04T12:00Z.
fn api_now() -> i64 {
    DEC_1 + 3 * DAY + 12 * HOUR
}

fn app(pool: &PgPool, cfg: &AlertsConfig) -> axum::Router {
    let router =
        alerts_http::route_table(alerts_http::AlertsHttp { pool: pool.clone(), config: cfg.clone(), clock: api_now })
            .into_router();
    canopy_aggregator::auth::http_layer::protect(router, canopy_aggregator::auth::Auth::insecure_open_access())
}

fn evaluator(pool: &PgPool, cfg: &AlertsConfig) -> Evaluator {
    Evaluator {
        pool: pool.clone(),
        config: cfg.clone(),
        forecast: Arc::new(NoForecast),
        anomalies: Arc::new(NoAnomalies),
        metrics: Arc::new(AlertMetrics::default()),
        outbox_wake: Arc::new(tokio::sync::Notify::new()),
    }
}

/// (day, evaluated, period start, period end, actual g, budget g, 1 h, 24 h, max 1 h, max 24 h, evaluations)
type Row = (String, i64, i64, i64, f64, f64, f64, f64, f64, f64, i32);

async fn rows(pool: &PgPool, budget_id: i64) -> Vec<Row> {
    let round = |v: f64| (v * 1e6).round() / 1e6;
    sqlx::query_as::<_, Row>(
        "SELECT to_char(day_utc, 'YYYY-MM-DD'), extract(epoch FROM evaluated_at)::bigint,
                extract(epoch FROM period_start)::bigint, extract(epoch FROM period_end)::bigint, actual_g_co2e,
                budget_g_co2e, burn_rate_1h, burn_rate_24h, max_burn_rate_1h, max_burn_rate_24h, evaluations
         FROM budget_burn_history WHERE budget_id = $1 ORDER BY day_utc",
    )
    .bind(budget_id)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.0, r.1, r.2, r.3, round(r.4), round(r.5), round(r.6), round(r.7), round(r.8), round(r.9), r.10))
    .collect()
}

#[tokio::test]
async fn rounds_write_one_row_per_budget_and_utc_day_and_retention_prunes() {
    let db = TestDb::migrated().await;
    let pool = db.pool.clone();
    let cfg = AlertsConfig { budget_history_retention_days: 30, ..AlertsConfig::default() };
    cfg.validate().unwrap();
    let app = app(&pool, &cfg);
    // 2 kg in the hour 2026-11-02T10:00Z (3 kg on the 3rd are stored below,
    // after the rounds of the 2nd: data arrives in time order).
    store_web_emissions(&pool, 1, NOV_1 + DAY + 10 * HOUR, 2.0).await;
    let (status, body) = call(
        &app,
        "POST",
        "/v1/budgets",
        Some(json!({ "name": "web monthly", "scope": { "team": "web" }, "period": "month", "amount_kg_co2e": 10.0, "routes": [] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["budget_id"].as_i64().unwrap();
    let ev = evaluator(&pool, &cfg);
    // November: 30 days, the even rate of 10 kg is 10,000 g / 2,592,000 s.
    // 11:30: the last complete hour [10:00, 11:00) holds 2 kg: 1 h rate
    // 2,000/3,600 over the even rate = 144, 24 h rate 2,000/86,400 over it = 6.
    let nov2_1130 = NOV_1 + DAY + 11 * HOUR + 1_800;
    let nov2_2000 = NOV_1 + DAY + 20 * HOUR;
    let nov3_1100 = NOV_1 + 2 * DAY + 11 * HOUR;
    let dec1_0100 = DEC_1 + HOUR;
    for now in [nov2_1130, nov2_2000, nov3_1100, dec1_0100] {
        if now == nov3_1100 {
            // 3 kg in the hour 2026-11-03T09:00Z.
            store_web_emissions(&pool, 2, NOV_1 + 2 * DAY + 9 * HOUR, 3.0).await;
        }
        let r = ev.run_round(now).await.unwrap();
        assert_eq!((r.budgets, r.history_pruned), (1, 0), "{r:?}");
    }
    let want: Vec<Row> = vec![
        // Two rounds on the 2nd: the last one's figures, the day's highest rates.
        ("2026-11-02".into(), nov2_2000, NOV_1, DEC_1, 2_000.0, 10_000.0, 0.0, 6.0, 144.0, 6.0, 2),
        // The 3rd: 5 kg to date; the last 24 h [2nd 11:00, 3rd 11:00) hold 3 kg: 9x.
        ("2026-11-03".into(), nov3_1100, NOV_1, DEC_1, 5_000.0, 10_000.0, 0.0, 9.0, 0.0, 9.0, 1),
        // December: a new period, nothing emitted in it yet.
        ("2026-12-01".into(), dec1_0100, DEC_1, DEC_1 + 31 * DAY, 0.0, 10_000.0, 0.0, 0.0, 0.0, 0.0, 1),
    ];
    assert_eq!(rows(&pool, id).await, want);

    // The API reads a range: the days overlapping [from, to).
    let (status, body) =
        call(&app, "GET", &format!("/v1/budgets/{id}/history?from=2026-11-01&to=2026-12-01"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let days = body["days"].as_array().unwrap();
    let got: Vec<(&str, f64, f64, f64)> = days
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap(),
                d["actual_kg_co2e"].as_f64().unwrap(),
                d["percent_of_budget"].as_f64().unwrap().round(),
                d["max_burn_rate_1h"].as_f64().unwrap().round(),
            )
        })
        .collect();
    assert_eq!(got, [("2026-11-02", 2.0, 20.0, 144.0), ("2026-11-03", 5.0, 50.0, 0.0)]);
    assert_eq!(days[0]["period_start_unix_s"], NOV_1);
    assert_eq!(days[0]["evaluations"], 2);
    // `to` mid-day still includes the day it falls in; `from` mid-day too.
    let (_, body) =
        call(&app, "GET", &format!("/v1/budgets/{id}/history?from={}&to={}", NOV_1 + 2 * DAY + 5, DEC_1 + 1), None)
            .await;
    let listed: Vec<&str> = body["days"].as_array().unwrap().iter().map(|d| d["day"].as_str().unwrap()).collect();
    assert_eq!(listed, ["2026-11-03", "2026-12-01"]);
    // Default range: the retention (30 days) up to the end of the API's today (2026-12-04).
    let (_, body) = call(&app, "GET", &format!("/v1/budgets/{id}/history"), None).await;
    assert_eq!(
        (body["from_unix_s"].as_i64(), body["to_unix_s"].as_i64()),
        (Some(DEC_1 + 4 * DAY - 30 * DAY), Some(DEC_1 + 4 * DAY))
    );
    assert_eq!(body["days"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["retention_days"], 30);

    // 2026-12-03: the cutoff is 30 days back, 2026-11-03; the 2nd goes, the 3rd stays.
    let r = ev.run_round(DEC_1 + 2 * DAY + 1_800).await.unwrap();
    assert_eq!(r.history_pruned, 1, "{r:?}");
    let days: Vec<String> = rows(&pool, id).await.into_iter().map(|r| r.0).collect();
    assert_eq!(days, ["2026-11-03", "2026-12-01", "2026-12-03"]);
    assert_eq!(ev.run_round(DEC_1 + 2 * DAY + 3_600).await.unwrap().history_pruned, 0);
    assert!(ev.metrics.render(0).contains("canopy_alerts_budget_history_pruned_rows_total 1\n"));

    // Deleting the budget deletes its history.
    let (status, _) = call(&app, "DELETE", &format!("/v1/budgets/{id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(rows(&pool, id).await.is_empty());
}

#[tokio::test]
async fn history_refuses_bad_parameters_naming_them() {
    let db = TestDb::migrated().await;
    let cfg = AlertsConfig::default();
    let app = app(&db.pool, &cfg);
    let (status, body) = call(
        &app,
        "POST",
        "/v1/budgets",
        Some(json!({ "name": "org", "period": "quarter", "amount_kg_co2e": 10.0, "routes": [] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["budget_id"].as_i64().unwrap();
    let check = |uri: String, want_status: StatusCode, field: Option<&'static str>| {
        let app = app.clone();
        async move {
            let (status, body): (StatusCode, Value) = call(&app, "GET", &uri, None).await;
            assert_eq!(status, want_status, "{uri}: {body}");
            if let Some(f) = field {
                assert_eq!(body["field"], f, "{uri}: {body}");
                assert!(body["error"].as_str().unwrap().starts_with(&format!("{f}: ")), "{uri}: {body}");
            }
        }
    };
    check(format!("/v1/budgets/{id}/history?from=yesterday"), StatusCode::BAD_REQUEST, Some("from")).await;
    check(format!("/v1/budgets/{id}/history?to=2026-02-30"), StatusCode::BAD_REQUEST, Some("to")).await;
    check(format!("/v1/budgets/{id}/history?from=2026-12-01&to=2026-11-01"), StatusCode::BAD_REQUEST, Some("to")).await;
    check(format!("/v1/budgets/{id}/history?from=2026-12-01&to=2026-12-01"), StatusCode::BAD_REQUEST, Some("to")).await;
    check(format!("/v1/budgets/{id}/history?from=1&from=2"), StatusCode::BAD_REQUEST, Some("from")).await;
    check(format!("/v1/budgets/{id}/history?since=2026-11-01"), StatusCode::BAD_REQUEST, Some("since")).await;
    check("/v1/budgets/web/history".to_owned(), StatusCode::BAD_REQUEST, Some("budget_id")).await;
    check(format!("/v1/budgets/{}/history", id + 1), StatusCode::NOT_FOUND, None).await;
    check(format!("/v1/budgets/{id}/history?from=2026-11-01"), StatusCode::OK, None).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM budget_burn_history").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, 0, "reads store nothing");
    // The retention is checked at start-up.
    for days in [0, 3_661] {
        let bad = AlertsConfig { budget_history_retention_days: days, ..AlertsConfig::default() };
        assert_eq!(bad.validate().unwrap_err().field, "budget_history_retention_days");
    }
}
