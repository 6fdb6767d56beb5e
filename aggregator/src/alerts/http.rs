//! HTTP handlers of budgets, routes, silences and alerts, and the alerts
//! dashboard page. `serve` puts them behind the access control's middleware
//! with the query API; each handler takes the [`Principal`] the middleware
//! put on the request (a request without one is refused: fail closed) and
//! applies [`access`]: writes need admin (403) and are audited, reads are
//! narrowed to the caller's scope, routes are admin-only. Every refused body
//! answers 400 with `{"error", "field"}` naming the field, and stores
//! nothing; a database failure answers a generic 500 with a request id.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

use super::access::{self, BudgetFilter, actor, require_admin};
use super::budgets::{self, budget_json};
use super::routes::{self, route_json};
use super::silences::{self, silence_json};
use super::{AlertError, AlertsConfig, FieldError};
use crate::auth::Principal;
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
/// The caller; missing when the access control's middleware is not in front
/// (then every handler answers 401: fail closed).
type P = Option<Extension<Principal>>;

fn principal(p: P) -> Result<Principal, AlertError> {
    p.map(|Extension(p)| p).ok_or(AlertError::Unauthenticated)
}

impl IntoResponse for AlertError {
    fn into_response(self) -> Response {
        match self {
            AlertError::Invalid(e) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "error": e.to_string(), "field": e.field }))).into_response()
            }
            AlertError::NotFound(what) => {
                (StatusCode::NOT_FOUND, Json(json!({ "error": format!("{what} not found") }))).into_response()
            }
            AlertError::Forbidden(message) => crate::auth::http_layer::forbidden(&message),
            AlertError::Unauthenticated => crate::auth::http_layer::unauthenticated(),
            AlertError::Sql(e) => crate::error_reply::internal("alerting request", &e),
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

async fn list_budgets(State(s): S, p: P) -> Result<Json<Value>, AlertError> {
    let p = principal(p)?;
    let filter = BudgetFilter::load(&s.pool, &p).await?;
    let all: Vec<_> = budgets::list(&s.pool).await?.into_iter().filter(|b| filter.allows(b)).collect();
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

async fn create_budget(State(s): S, p: P, body: Bytes) -> Result<Response, AlertError> {
    let p = principal(p)?;
    require_admin(&p, "creating a budget")?;
    let spec = budgets::parse_spec(&json_body(&body)?)?;
    let b = budgets::create(&s.pool, &actor(&p), &spec).await?;
    Ok((StatusCode::CREATED, Json(budget_json(&b))).into_response())
}

/// One budget the caller may read (404 for one outside its scope, as for a
/// budget that does not exist).
async fn readable_budget(pool: &PgPool, p: &Principal, budget_id: i64) -> Result<budgets::Budget, AlertError> {
    let b = budgets::get(pool, budget_id).await?;
    if BudgetFilter::load(pool, p).await?.allows(&b) {
        Ok(b)
    } else {
        Err(AlertError::NotFound(format!("budget {budget_id}")))
    }
}

async fn get_budget(State(s): S, p: P, Path(id): Path<String>) -> Result<Json<Value>, AlertError> {
    let p = principal(p)?;
    Ok(Json(budget_json(&readable_budget(&s.pool, &p, id_param("budget_id", &id)?).await?)))
}

async fn update_budget(State(s): S, p: P, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, AlertError> {
    let p = principal(p)?;
    require_admin(&p, "updating a budget")?;
    let id = id_param("budget_id", &id)?;
    let body = json_body(&body)?;
    let spec = budgets::parse_spec(&body)?;
    // Replies never carry the key in full, so a body without it keeps it (null clears it).
    let keep_key = body.get("pagerduty_routing_key").is_none();
    Ok(Json(budget_json(&budgets::update(&s.pool, &actor(&p), id, &spec, keep_key).await?)))
}

async fn delete_budget(State(s): S, p: P, Path(id): Path<String>) -> Result<StatusCode, AlertError> {
    let p = principal(p)?;
    require_admin(&p, "deleting a budget")?;
    budgets::delete(&s.pool, &actor(&p), id_param("budget_id", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_routes(State(s): S, p: P) -> Result<Json<Value>, AlertError> {
    access::require_route_reader(&principal(p)?)?;
    let all = routes::list(&s.pool).await?;
    Ok(Json(json!({ "routes": all.iter().map(route_json).collect::<Vec<_>>() })))
}

async fn put_route(State(s): S, p: P, Path(name): Path<String>, body: Bytes) -> Result<Json<Value>, AlertError> {
    let p = principal(p)?;
    require_admin(&p, "changing an alert route")?;
    let route = routes::parse_route(&name, &json_body(&body)?)?;
    routes::put(&s.pool, &actor(&p), &route).await?;
    Ok(Json(route_json(&route)))
}

async fn delete_route(State(s): S, p: P, Path(name): Path<String>) -> Result<StatusCode, AlertError> {
    let p = principal(p)?;
    require_admin(&p, "deleting an alert route")?;
    routes::delete(&s.pool, &actor(&p), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
struct SilenceQuery {
    #[serde(default)]
    include_expired: bool,
}

/// Ids of the budgets the caller may read, or `None` for all of them.
async fn readable_budget_ids(pool: &PgPool, p: &Principal) -> Result<Option<Vec<i64>>, AlertError> {
    let filter = BudgetFilter::load(pool, p).await?;
    if filter.is_all() {
        return Ok(None);
    }
    Ok(Some(budgets::list(pool).await?.iter().filter(|b| filter.allows(b)).map(|b| b.budget_id).collect()))
}

async fn list_silences(State(s): S, p: P, Query(q): Query<SilenceQuery>) -> Result<Json<Value>, AlertError> {
    let p = principal(p)?;
    let now = (s.clock)();
    let readable = readable_budget_ids(&s.pool, &p).await?;
    let all = silences::list(&s.pool, now, q.include_expired).await?;
    let shown = all.iter().filter(|x| match &readable {
        None => true,
        Some(ids) => x.budget_id.is_some_and(|b| ids.contains(&b)),
    });
    Ok(Json(json!({ "silences": shown.map(|x| silence_json(x, now)).collect::<Vec<_>>() })))
}

async fn create_silence(State(s): S, p: P, body: Bytes) -> Result<Response, AlertError> {
    let p = principal(p)?;
    require_admin(&p, "creating a silence")?;
    let now = (s.clock)();
    let mut silence = silences::parse_silence(&json_body(&body)?, now)?;
    let actor = actor(&p);
    if silence.created_by.is_empty() {
        silence.created_by = actor.clone();
    }
    let stored = silences::create(&s.pool, &actor, &silence).await?;
    Ok((StatusCode::CREATED, Json(silence_json(&stored, now))).into_response())
}

async fn expire_silence(State(s): S, p: P, Path(id): Path<String>) -> Result<StatusCode, AlertError> {
    let p = principal(p)?;
    require_admin(&p, "expiring a silence")?;
    silences::expire(&s.pool, &actor(&p), id_param("silence_id", &id)?, (s.clock)()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_alerts(State(s): S, p: P) -> Result<Json<Value>, AlertError> {
    let p = principal(p)?;
    // None: every alert; Some(ids): alerts of those budgets only.
    let readable = readable_budget_ids(&s.pool, &p).await?;
    let alerts = sqlx::query(
        "SELECT alert_id, alert_key, budget_id, kind, status, level, severity, summary, value_g_co2e, budget_g_co2e,
                extract(epoch FROM fired_at)::bigint AS fired, extract(epoch FROM resolved_at)::bigint AS resolved,
                extract(epoch FROM acknowledged_at)::bigint AS acked, acknowledged_by
         FROM alerts WHERE $1::bigint[] IS NULL OR budget_id = ANY ($1) ORDER BY alert_id DESC LIMIT 500",
    )
    .bind(&readable)
    .fetch_all(&s.pool)
    .await?;
    let ids: Vec<i64> = alerts.iter().map(|a| a.try_get("alert_id")).collect::<Result<_, _>>()?;
    let events = sqlx::query(
        "SELECT alert_id, extract(epoch FROM at)::bigint AS at, event, route, detail FROM alert_events
         WHERE alert_id = ANY ($1) ORDER BY event_id",
    )
    .bind(&ids)
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

async fn acknowledge(State(s): S, p: P, Path(id): Path<String>, body: Bytes) -> Result<Json<Value>, AlertError> {
    let p = principal(p)?;
    require_admin(&p, "acknowledging an alert")?;
    let id = id_param("alert_id", &id)?;
    let body = if body.is_empty() { json!({}) } else { json_body(&body)? };
    let actor = actor(&p);
    let by = match body.get("by") {
        None | Some(Value::Null) => actor.clone(),
        Some(Value::String(b)) if !b.trim().is_empty() && b.len() <= 256 => b.clone(),
        Some(other) => return Err(FieldError::new("by", format!("expected a non-empty name, found {other}")).into()),
    };
    let enqueued = super::evaluate::acknowledge(&s.pool, &s.config, &actor, id, &by, (s.clock)()).await?;
    Ok(Json(json!({ "alert_id": id, "acknowledged_by": by, "notifications": enqueued })))
}

/// The budgets, silences and alert history page.
pub const ALERTS_HTML: &str = include_str!("../../assets/alerts.html");

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], Html(ALERTS_HTML))
}
