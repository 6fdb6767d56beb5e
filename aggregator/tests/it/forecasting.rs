//! Issue 17 §2–3 in the running aggregator (`aggregator::forecasting`):
//! six weeks of hourly history stored through the normal ingest path for
//! two teams, then the refresher, `GET /v1/forecast`, the stored
//! `forecast_points` and a real alert evaluator with the refresher's
//! forecasts and anomalies, compared with `canopy_forecast` run on the
//! same series.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use canopy_aggregator::alerts::AlertsConfig;
use canopy_aggregator::alerts::basis::BasisColumn;
use canopy_aggregator::alerts::budgets::{self, Scope, parse_spec};
use canopy_aggregator::alerts::evaluate::Evaluator;
use canopy_aggregator::alerts::metrics::AlertMetrics;
use canopy_aggregator::forecasting::metrics::ForecastMetrics;
use canopy_aggregator::forecasting::{ForecastingConfig, Forecasts, Refresher};
use canopy_aggregator::http::router;
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::model::Batch;
use canopy_aggregator::query::QueryEngine;
use canopy_forecast::{ForecastConfig, forecast_daily};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};
use tower::ServiceExt;

use crate::support::{Rng, T0, TestDb, fact, store};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
const ACCOUNT: &str = "111111111111";
/// 2026-12-17 10:02 UTC: 45 complete days of history from T0 (2026-11-02).
const NOW: i64 = T0 + 45 * DAY + 10 * HOUR + 120;
/// Web's last two complete hours are 5 x their usual value.
const SPIKE_FROM: i64 = T0 + 45 * DAY + 8 * HOUR;

fn clock() -> i64 {
    NOW
}

/// A team's hourly gCO2e: a diurnal shape, lighter weekends, ±3 % noise.
fn grams(team: &str, t: i64) -> f64 {
    let hour = (t / HOUR).rem_euclid(24) as f64;
    let weekday = ((t / DAY) + 3).rem_euclid(7); // 0 = Monday
    let weekly = if weekday >= 5 { 0.7 } else { 1.0 };
    let diurnal = 1.0 + 0.3 * (std::f64::consts::TAU * (hour - 6.0) / 24.0).sin();
    let seed = if team == "web" { 11 } else { 29 };
    let mut r = Rng::new(seed ^ (t as u64).wrapping_mul(2_654_435_761));
    let noise = 1.0 + (r.below(2_001) as f64 - 1_000.0) / 1_000.0 * 0.03;
    let spike = if team == "web" && t >= SPIKE_FROM {
        5.0
    } else {
        1.0
    };
    1_000.0 * weekly * diurnal * noise * spike
}

/// Every complete hour from T0 to NOW's hour, for web and data, stored one
/// day per batch through ingest.
async fn store_history(pool: &PgPool) {
    let hour_end = NOW / HOUR * HOUR;
    let mut sequence = 0;
    let mut day = T0;
    while day < hour_end {
        let mut facts = Vec::new();
        for t in (day..(day + DAY).min(hour_end)).step_by(HOUR as usize) {
            for team in ["web", "data"] {
                let g = grams(team, t);
                let mut f = fact(0, t, 3_600, 1);
                f.account_id = ACCOUNT.to_owned();
                f.record_key = format!("i-{team}/total");
                f.resource_id = format!("i-{team}");
                f.service = "AmazonEC2".to_owned();
                f.resource_type = "ec2:instance".to_owned();
                f.tags = Some(vec![("team".to_owned(), team.to_owned())]);
                f.location_g_co2e = g;
                f.market_g_co2e = g * 0.5;
                f.low_g_co2e = g * 0.8;
                f.high_g_co2e = g * 1.25;
                f.accounting = None;
                facts.push(f);
            }
        }
        sequence += 1;
        store(
            pool,
            &Batch {
                agent_id: "agent-forecast".to_owned(),
                sequence,
                facts,
                inventory: vec![],
            },
        )
        .await;
        day += DAY;
    }
}

/// The team's complete days before NOW's day, gCO2e (what the endpoint reads).
fn daily(team: &str) -> Vec<f64> {
    let today = NOW / DAY * DAY;
    (0..(today - T0) / DAY)
        .map(|d| (0..24).map(|h| grams(team, T0 + d * DAY + h * HOUR)).sum())
        .collect()
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn app(pool: &PgPool) -> axum::Router {
    router(
        QueryEngine::new(pool.clone(), RetentionPolicy::default()),
        clock,
        canopy_aggregator::auth::Auth::insecure_open_access(),
    )
}

fn refresher(pool: &PgPool, forecasts: Arc<Forecasts>) -> Refresher {
    Refresher {
        pool: pool.clone(),
        config: ForecastingConfig::default(),
        forecasts,
        metrics: Arc::new(ForecastMetrics::default()),
    }
}

fn assert_rel(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-6 * expected.abs().max(1.0),
        "{what}: expected {expected}, found {actual}"
    );
}

#[tokio::test]
async fn the_endpoint_and_the_stored_table_give_canopy_forecasts_output() {
    let db = TestDb::migrated().await;
    store_history(&db.pool).await;
    let app = app(&db.pool);

    let (status, body) = get(&app, "/v1/forecast?team=web").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["basis"], "location");
    assert_eq!(body["scope"]["team"], json!(["web"]));
    // The history is the 45 complete days, exactly the stored figures.
    let web = daily("web");
    assert_eq!(web.len(), 45);
    let history = body["history"].as_array().unwrap();
    assert_eq!(history.len(), 45);
    for (h, want) in history.iter().zip(&web) {
        assert_rel(
            h["actual_kg_co2e"].as_f64().unwrap() * 1_000.0,
            *want,
            "history day",
        );
    }
    assert_eq!(history[0]["day_unix_s"], T0);
    // The points are canopy_forecast's on the same series.
    let expected = forecast_daily(T0, &web, 0, &ForecastConfig::default()).unwrap();
    let points = body["points"].as_array().unwrap();
    assert!(points.len() >= 365, "{}", points.len());
    assert_eq!(points.len(), expected.len(), "12 months ahead");
    assert_eq!(
        points[0]["day_unix_s"],
        NOW / DAY * DAY,
        "from today, the first day not complete"
    );
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p["day_unix_s"], expected.day_unix_s(i));
        for (field, want) in [
            ("point_kg_co2e", expected.point_g_co2e[i]),
            ("lower80_kg_co2e", expected.lower80_g_co2e[i]),
            ("upper80_kg_co2e", expected.upper80_g_co2e[i]),
            ("lower95_kg_co2e", expected.lower95_g_co2e[i]),
            ("upper95_kg_co2e", expected.upper95_g_co2e[i]),
        ] {
            assert_rel(
                p[field].as_f64().unwrap() * 1_000.0,
                want,
                &format!("day {i} {field}"),
            );
        }
    }
    // About 24 kg a weekday, 17 on weekends: the forecast is of that order.
    let first = points[0]["point_kg_co2e"].as_f64().unwrap();
    assert!((15.0..30.0).contains(&first), "{first}");
    assert!(
        body["model"]["name"]
            .as_str()
            .unwrap()
            .starts_with("canopy-forecast")
    );
    assert!(
        !body["factor_sets"].as_array().unwrap().is_empty(),
        "lineage: {body}"
    );
    assert!(
        !body["sources"].as_array().unwrap().is_empty(),
        "lineage: {body}"
    );

    // A period horizon stops at the end of the month.
    let (status, month) = get(&app, "/v1/forecast?team=web&horizon=month").await;
    assert_eq!(status, StatusCode::OK, "{month}");
    let days_left = (T0 + 60 * DAY - NOW / DAY * DAY) / DAY; // to 2027-01-01
    assert_eq!(month["points"].as_array().unwrap().len() as i64, days_left);

    // The refresher stores the same forecast for the team's scope.
    let r = refresher(&db.pool, Forecasts::new())
        .refresh(NOW)
        .await
        .unwrap();
    assert!(r.forecasts >= 5, "org, account, two teams, service: {r:?}");
    assert_eq!(r.errors, 0, "{r:?}");
    let rows = sqlx::query(
        "SELECT extract(epoch FROM day)::bigint AS d, point_g_co2e, lower80_g_co2e, upper80_g_co2e, lower95_g_co2e,
                upper95_g_co2e, model, extract(epoch FROM computed_at)::bigint AS c
         FROM forecast_points WHERE scope_key = 'team=web' AND basis = 'location' ORDER BY day",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), points.len());
    for (row, p) in rows.iter().zip(points) {
        assert_eq!(row.get::<i64, _>("d"), p["day_unix_s"].as_i64().unwrap());
        assert_eq!(row.get::<i64, _>("c"), NOW);
        assert_eq!(
            row.get::<String, _>("model"),
            body["model"]["name"].as_str().unwrap()
        );
        for (column, field) in [
            ("point_g_co2e", "point_kg_co2e"),
            ("lower80_g_co2e", "lower80_kg_co2e"),
            ("upper80_g_co2e", "upper80_kg_co2e"),
            ("lower95_g_co2e", "lower95_kg_co2e"),
            ("upper95_g_co2e", "upper95_kg_co2e"),
        ] {
            assert_rel(
                row.get::<f64, _>(column),
                p[field].as_f64().unwrap() * 1_000.0,
                column,
            );
        }
    }
    // The organisation's stored forecast is the sum of both teams' history.
    let org: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM forecast_points WHERE scope_key = 'org' AND basis = 'location'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(org as usize, points.len());
    // A second refresh replaces the rows (no duplicates, nothing stale).
    refresher(&db.pool, Forecasts::new())
        .refresh(NOW + 60)
        .await
        .unwrap();
    let (n, stale): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE computed_at < to_timestamp($1)) FROM forecast_points
         WHERE scope_key = 'team=web' AND basis = 'location'",
    )
    .bind((NOW + 60) as f64)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((n as usize, stale), (points.len(), 0));
}

#[tokio::test]
async fn budgets_get_forecast_overshoot_and_anomaly_alerts_from_the_refresher() {
    let db = TestDb::migrated().await;
    store_history(&db.pool).await;
    // Web's December so far (16 complete days), and canopy_forecast's total
    // to the month's end: the budget sits between the two.
    let web = daily("web");
    let december = T0 + 29 * DAY;
    let actual: f64 = web[29..].iter().sum();
    let f = forecast_daily(T0, &web, 0, &ForecastConfig::default()).unwrap();
    let month_end = T0 + 60 * DAY;
    let total = actual + f.total_until_g_co2e(month_end);
    let amount_kg = (actual + 0.5 * (total - actual)) / 1_000.0;
    let mut ids = Vec::new();
    for (team, amount) in [("web", amount_kg), ("data", 100_000.0)] {
        let spec = parse_spec(&json!({
            "name": format!("{team} monthly"), "scope": { "team": team }, "period": "month", "basis": "location",
            "amount_kg_co2e": amount, "thresholds_pct": [100], "forecast_overshoot": true, "routes": [],
        }))
        .unwrap();
        ids.push(
            budgets::create(&db.pool, "test", &spec)
                .await
                .unwrap()
                .budget_id,
        );
    }

    let forecasts = Forecasts::new();
    let refresher = refresher(&db.pool, forecasts.clone());
    let r = refresher.refresh(NOW).await.unwrap();
    // Web's spike is open in the series that contain it (web, the account,
    // EC2), one episode each; data's series have none.
    assert_eq!(r.open_anomalies, 3, "{r:?}");
    let team = |t: &str| Scope {
        team: Some(t.to_owned()),
        ..Scope::default()
    };
    let web_open = forecasts.open_anomalies(&team("web"), BasisColumn::LocationTotal);
    assert_eq!(web_open.len(), 1, "{web_open:?}");
    assert_eq!(web_open[0].anomaly.start_unix_s, SPIKE_FROM);
    assert!(web_open[0].anomaly.ongoing);
    assert!(
        forecasts
            .open_anomalies(&team("data"), BasisColumn::LocationTotal)
            .is_empty()
    );
    let evaluator = Evaluator {
        pool: db.pool.clone(),
        config: AlertsConfig::default(),
        forecast: forecasts.clone(),
        anomalies: forecasts.clone(),
        metrics: Arc::new(AlertMetrics::default()),
        outbox_wake: Arc::new(tokio::sync::Notify::new()),
    };
    evaluator.run_round(NOW).await.unwrap();
    // Again, after another refresh: the same alerts, not new ones.
    refresher.refresh(NOW + 60).await.unwrap();
    evaluator.run_round(NOW + 60).await.unwrap();

    let alerts = sqlx::query(
        "SELECT budget_id, kind, status, value_g_co2e, budget_g_co2e, summary FROM alerts ORDER BY budget_id, kind",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let found: Vec<(i64, String, String)> = alerts
        .iter()
        .map(|r| (r.get("budget_id"), r.get("kind"), r.get("status")))
        .collect();
    assert_eq!(
        found,
        vec![
            (ids[0], "anomaly".to_owned(), "firing".to_owned()),
            (ids[0], "forecast_overshoot".to_owned(), "firing".to_owned())
        ],
        "web: one anomaly alert and the overshoot; data (clean, large budget): none"
    );
    let fired: i64 = sqlx::query_scalar("SELECT count(*) FROM alert_events WHERE event = 'fired'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(fired, 2, "each fired once over two rounds");
    // The overshoot's value is the period's actual plus canopy_forecast's total to the month's end.
    let overshoot = &alerts[1];
    assert_rel(
        overshoot.get::<f64, _>("value_g_co2e"),
        total,
        "forecast total",
    );
    assert_rel(
        overshoot.get::<f64, _>("budget_g_co2e"),
        amount_kg * 1_000.0,
        "budget",
    );
    // The anomaly is the spike: observed about 5x expected, at 08:00 or 09:00.
    let anomaly = &alerts[0];
    let observed = anomaly.get::<f64, _>("value_g_co2e");
    assert!(observed > 3_000.0, "{observed}");
    let summary: String = anomaly.get("summary");
    assert!(
        summary.contains("hourly spike since 2026-12-17T08:00:00Z"),
        "{summary}"
    );
    assert_eq!(
        december,
        budgets::period_window(budgets::PeriodKind::Month, 1, NOW).0
    );

    // The budget list shows the round's forecast total: the same figure,
    // with its 80 % interval around it; data's budget too (its own forecast).
    let alerts_app = crate::alerts::app(&db.pool, &AlertsConfig::default());
    let (status, list) = get(&alerts_app, "/v1/budgets").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let listed = |id: i64| list["budgets"].as_array().unwrap().iter().find(|b| b["budget_id"] == id).cloned().unwrap();
    let web_forecast = &listed(ids[0])["current"]["forecast"];
    assert_rel(web_forecast["total_kg_co2e"].as_f64().unwrap() * 1_000.0, total, "listed forecast total");
    assert_rel(web_forecast["percent_of_budget"].as_f64().unwrap(), total / 1_000.0 / amount_kg * 100.0, "listed percent");
    let (lo80, hi80) = (web_forecast["lower80_kg_co2e"].as_f64().unwrap(), web_forecast["upper80_kg_co2e"].as_f64().unwrap());
    assert!(lo80 < total / 1_000.0 && total / 1_000.0 < hi80, "{web_forecast}");
    assert!(listed(ids[1])["current"]["forecast"]["total_kg_co2e"].as_f64().unwrap() > 0.0, "{list}");

    // The endpoint's budget answer agrees with the evaluator's figure.
    let app = app(&db.pool);
    let (status, body) = get(&app, &format!("/v1/forecast?budget_id={}", ids[0])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let b = &body["budget"];
    assert_rel(
        b["actual_kg_co2e"].as_f64().unwrap() * 1_000.0,
        actual,
        "budget actual",
    );
    assert_rel(
        b["forecast_total_kg_co2e"].as_f64().unwrap() * 1_000.0,
        total,
        "budget forecast total",
    );
    let lo = b["forecast_total_lower80_kg_co2e"].as_f64().unwrap();
    let hi = b["forecast_total_upper80_kg_co2e"].as_f64().unwrap();
    assert!(lo < total / 1_000.0 && total / 1_000.0 < hi, "{b}");
    // Half of the forecast remainder: exhausted within the month.
    let remaining = amount_kg * 1_000.0 - actual;
    let day = f.exhaustion(remaining).unwrap().day_unix_s.unwrap();
    assert!(day < month_end);
    assert_eq!(b["exhaustion"]["day"]["day_unix_s"], day, "{b}");
    assert!(
        b["exhaustion"]["earliest95"]["day_unix_s"]
            .as_i64()
            .unwrap()
            <= day
    );
    assert_eq!(
        body["points"].as_array().unwrap().len() as i64,
        (month_end - NOW / DAY * DAY) / DAY
    );
    // budget_id only within the caller's scope: a viewer of team data gets
    // its own budget and a 404 for web's, and no team outside its scope.
    let (_, token) = canopy_aggregator::auth::tokens::create(
        &db.pool,
        "test",
        &canopy_aggregator::auth::tokens::NewToken {
            name: "data viewer".into(),
            role: canopy_aggregator::auth::Role::TeamViewer,
            scope: canopy_aggregator::auth::principal::Scope {
                teams: vec!["data".into()],
                ..Default::default()
            },
            expires_in_days: 1,
        },
    )
    .await
    .unwrap();
    let scoped = router(
        QueryEngine::new(db.pool.clone(), RetentionPolicy::default()),
        clock,
        canopy_aggregator::auth::Auth::enforced(None, db.pool.clone()),
    );
    let as_data = |uri: String| {
        let scoped = scoped.clone();
        let bearer = format!("Bearer {token}");
        async move {
            let req = Request::get(uri)
                .header("authorization", bearer)
                .body(Body::empty())
                .unwrap();
            let resp = scoped.oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = to_bytes(resp.into_body(), 1 << 24).await.unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(
        as_data(format!("/v1/forecast?budget_id={}", ids[0]))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, own) = as_data(format!("/v1/forecast?budget_id={}", ids[1])).await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["scope"]["team"], json!(["data"]));
    let (status, org) = as_data("/v1/forecast".to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{org}");
    let history: f64 = org["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["actual_kg_co2e"].as_f64().unwrap())
        .sum();
    assert_rel(
        history * 1_000.0,
        daily("data").iter().sum(),
        "a team viewer's org forecast is its team's",
    );
    assert_eq!(
        as_data("/v1/forecast?team=web".to_owned()).await.0,
        StatusCode::FORBIDDEN
    );

    // The data budget: never exhausted this month.
    let (_, body) = get(&app, &format!("/v1/forecast?budget_id={}", ids[1])).await;
    assert_eq!(body["budget"]["exhaustion"]["day"], Value::Null, "{body}");
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_them() {
    let db = TestDb::migrated().await;
    let app = app(&db.pool);
    for (query, parameter) in [
        ("horizon=2y", "horizon"),
        ("basis=embodied", "basis"),
        ("budget_id=abc", "budget_id"),
        ("budget_id=1&team=web", "team"),
        ("step=1d", "step"),
        ("account=12", "account"),
        ("now=tomorrow", "now"),
        ("quality=measured", "quality"),
    ] {
        let (status, body) = get(&app, &format!("/v1/forecast?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
    }
    // An unknown budget: 404; no history: an answer that says so.
    let (status, _) = get(&app, "/v1/forecast?budget_id=999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&app, "/v1/forecast?team=web").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "not_enough_history", "{body}");
    assert_eq!(body["points"], json!([]));
}
