//! HTTP handlers of budgets, routes, silences and alerts, and the alerts
//! dashboard page. Kept in their own router ([`route_table`]) so an
//! authentication/authorisation layer can wrap exactly these routes
//! (budget and route changes are an admin's). Every refused body answers
//! 400 with `{"error", "field"}` naming the field, and stores nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

use super::budgets::{self, budget_json};
use super::routes::{self, route_json};
use super::silences::{self, silence_json};
use super::{AlertError, AlertsConfig, FieldError};
use crate::http::Clock;
use crate::route_table::RouteTable;

/// State of the alerting handlers.
#[derive(Clone)]
pub struct AlertsHttp {
    /// The alerting pool.
    pub pool: PgPool,
    /// Configuration (dashboard links of acknowledgements).
    pub config: AlertsConfig,
    /// Source of "now".
    pub clock: Clock,
}

/// The alerting routes.
pub fn route_table(state: AlertsHttp) -> RouteTable {
    RouteTable::new()
        .route("/v1/budgets", &["get", "post"], get(list_budgets).post(create_budget))
        .route("/v1/budgets/{budget_id}", &["get", "put", "delete"], get(get_budget).put(update_budget).delete(delete_budget))
        .route("/v1/alert-routes", &["get"], get(list_routes))
        .route("/v1/alert-routes/{name}", &["put", "delete"], axum::routing::put(put_route).delete(delete_route))
        .route("/v1/silences", &["get", "post"], get(list_silences).post(create_silence))
        .route("/v1/silences/{silence_id}", &["delete"], axum::routing::delete(expire_silence))
        .route("/v1/alerts", &["get"], get(list_alerts))
        .route("/v1/alerts/{alert_id}/acknowledge", &["post"], post(acknowledge))
        .route("/alerts", &["get"], get(page))
        .with_state(Arc::new(state))
}

type S = State<Arc<AlertsHttp>>;

impl IntoResponse for AlertError {
    fn into_response(self) -> Response {
        match self {
            AlertError::Invalid(e) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "error": e.to_string(), "field": e.field }))).into_response()
            }
            AlertError::NotFound(what) => {
                (StatusCode::NOT_FOUND, Json(json!({ "error": format!("{what} not found") }))).into_response()
            }
            AlertError::Sql(e) => {
                tracing::warn!(error = %e, "alerting request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e.to_string() }))).into_response()
            }
        }
    }
}

fn json_body(body: &Bytes) -> Result<Value, AlertError> {
    serde_json::from_slice(body).map_err(|e| FieldError::new("body", format!("expected a JSON object: {e}")).into())
}

fn id_param(field: &str, text: &str) -> Result<i64, AlertError> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| FieldError::new(field, format!("expected a positive integer id, found {text:?}")).into())
}

async fn list_budgets(State(s): S) -> Result<Json<Value>, AlertError> {
    let all = budgets::list(&s.pool).await?;
    let status = sqlx::query(
        "SELECT budget_id, extract(epoch FROM evaluated_at)::bigint AS ev, extract(epoch FROM period_start)::bigint AS ps,
                extract(epoch FROM period_end)::bigint AS pe, actual_g_co2e, burn_rate_1h, burn_rate_24h
         FROM budget_status",
    )
    .fetch_all(&s.pool)
    .await?;
    let mut by_id = std::collections::HashMap::new();
    for r in &status {
        by_id.insert(r.try_get::<i64, _>("budget_id")?, r);
    }
    let rows: Vec<Value> = all
        .iter()
        .map(|b| {
            let mut v = budget_json(b);
            v["current"] = match by_id.get(&b.budget_id) {
                Some(r) => {
                    let actual: f64 = r.try_get("actual_g_co2e").unwrap_or(0.0);
                    json!({
                        "evaluated_unix_s": r.try_get::<i64, _>("ev").ok(),
                        "period_start_unix_s": r.try_get::<i64, _>("ps").ok(),
                        "period_end_unix_s": r.try_get::<i64, _>("pe").ok(),
                        "actual_kg_co2e": actual / 1_000.0,
                        "percent_of_budget": actual / 1_000.0 / b.spec.amount_kg_co2e * 100.0,
                        "burn_rate_1h": r.try_get::<f64, _>("burn_rate_1h").ok(),
                        "burn_rate_24h": r.try_get::<f64, _>("burn_rate_24h").ok(),
                        "forecast": Value::Null,
                    })
                }
                None => Value::Null,
            };
            v
        })
        .collect();
    Ok(Json(json!({ "budgets": rows })))
}

async fn create_budget(State(s): S, body: Bytes) -> Result<Response, AlertError> {
    let spec = budgets::parse_spec(&json_body(&body)?)?;
    let b = budgets::create(&s.pool, &spec).await?;
    Ok((StatusCode::CREATED, Json(budget_json(&b))).into_response())
}

async fn get_budget(State(s): S, Path(id): Path<String>) -> Result<Json<Value>, AlertError> {
    Ok(Json(budget_json(&budgets::get(&s.pool, id_param("budget_id", &id)?).await?)))
}

async fn update_budget(State(s): S, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, AlertError> {
    let id = id_param("budget_id", &id)?;
    let spec = budgets::parse_spec(&json_body(&body)?)?;
    Ok(Json(budget_json(&budgets::update(&s.pool, id, &spec).await?)))
}

async fn delete_budget(State(s): S, Path(id): Path<String>) -> Result<StatusCode, AlertError> {
    budgets::delete(&s.pool, id_param("budget_id", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_routes(State(s): S) -> Result<Json<Value>, AlertError> {
    let all = routes::list(&s.pool).await?;
    Ok(Json(json!({ "routes": all.iter().map(route_json).collect::<Vec<_>>() })))
}

async fn put_route(State(s): S, Path(name): Path<String>, body: Bytes) -> Result<Json<Value>, AlertError> {
    let route = routes::parse_route(&name, &json_body(&body)?)?;
    routes::put(&s.pool, &route).await?;
    Ok(Json(route_json(&route)))
}

async fn delete_route(State(s): S, Path(name): Path<String>) -> Result<StatusCode, AlertError> {
    routes::delete(&s.pool, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
struct SilenceQuery {
    #[serde(default)]
    include_expired: bool,
}

async fn list_silences(State(s): S, Query(q): Query<SilenceQuery>) -> Result<Json<Value>, AlertError> {
    let now = (s.clock)();
    let all = silences::list(&s.pool, now, q.include_expired).await?;
    Ok(Json(json!({ "silences": all.iter().map(|x| silence_json(x, now)).collect::<Vec<_>>() })))
}

async fn create_silence(State(s): S, body: Bytes) -> Result<Response, AlertError> {
    let now = (s.clock)();
    let silence = silences::parse_silence(&json_body(&body)?, now)?;
    let stored = silences::create(&s.pool, &silence).await?;
    Ok((StatusCode::CREATED, Json(silence_json(&stored, now))).into_response())
}

async fn expire_silence(State(s): S, Path(id): Path<String>) -> Result<StatusCode, AlertError> {
    silences::expire(&s.pool, id_param("silence_id", &id)?, (s.clock)()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_alerts(State(s): S) -> Result<Json<Value>, AlertError> {
    let alerts = sqlx::query(
        "SELECT alert_id, alert_key, budget_id, kind, status, level, severity, summary, value_g_co2e, budget_g_co2e,
                extract(epoch FROM fired_at)::bigint AS fired, extract(epoch FROM resolved_at)::bigint AS resolved,
                extract(epoch FROM acknowledged_at)::bigint AS acked, acknowledged_by
         FROM alerts ORDER BY alert_id DESC LIMIT 500",
    )
    .fetch_all(&s.pool)
    .await?;
    let events = sqlx::query(
        "SELECT alert_id, extract(epoch FROM at)::bigint AS at, event, route, detail FROM alert_events
         WHERE alert_id >= (SELECT coalesce(min(alert_id), 0) FROM (SELECT alert_id FROM alerts ORDER BY alert_id DESC LIMIT 500) a)
         ORDER BY event_id",
    )
    .fetch_all(&s.pool)
    .await?;
    let mut history: std::collections::HashMap<i64, Vec<Value>> = std::collections::HashMap::new();
    for e in &events {
        history.entry(e.try_get("alert_id")?).or_default().push(json!({
            "at_unix_s": e.try_get::<i64, _>("at")?, "event": e.try_get::<String, _>("event")?,
            "route": e.try_get::<Option<String>, _>("route")?, "detail": e.try_get::<String, _>("detail")?,
        }));
    }
    let mut out = Vec::new();
    for a in &alerts {
        let id: i64 = a.try_get("alert_id")?;
        out.push(json!({
            "alert_id": id,
            "alert_key": a.try_get::<String, _>("alert_key")?,
            "budget_id": a.try_get::<Option<i64>, _>("budget_id")?,
            "kind": a.try_get::<String, _>("kind")?,
            "status": a.try_get::<String, _>("status")?,
            "level": a.try_get::<i16, _>("level")?,
            "severity": a.try_get::<String, _>("severity")?,
            "summary": a.try_get::<String, _>("summary")?,
            "value_kg_co2e": a.try_get::<f64, _>("value_g_co2e")? / 1_000.0,
            "budget_kg_co2e": a.try_get::<f64, _>("budget_g_co2e")? / 1_000.0,
            "fired_unix_s": a.try_get::<i64, _>("fired")?,
            "resolved_unix_s": a.try_get::<Option<i64>, _>("resolved")?,
            "acknowledged_unix_s": a.try_get::<Option<i64>, _>("acked")?,
            "acknowledged_by": a.try_get::<Option<String>, _>("acknowledged_by")?,
            "history": history.remove(&id).unwrap_or_default(),
        }));
    }
    Ok(Json(json!({ "alerts": out })))
}

async fn acknowledge(State(s): S, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, AlertError> {
    let id = id_param("alert_id", &id)?;
    let body = if body.is_empty() { json!({}) } else { json_body(&body)? };
    let by = match body.get("by") {
        None | Some(Value::Null) => "dashboard".to_owned(),
        Some(Value::String(b)) if !b.trim().is_empty() && b.len() <= 256 => b.clone(),
        Some(other) => return Err(FieldError::new("by", format!("expected a non-empty name, found {other}")).into()),
    };
    let enqueued = super::evaluate::acknowledge(&s.pool, &s.config, id, &by, (s.clock)()).await?;
    Ok(Json(json!({ "alert_id": id, "acknowledged_by": by, "notifications": enqueued })))
}

/// The budgets, silences and alert history page.
pub const ALERTS_HTML: &str = include_str!("../../assets/alerts.html");

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], Html(ALERTS_HTML))
}
