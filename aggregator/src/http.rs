//! HTTP/JSON API (axum) over the query layer. Documented in
//! `aggregator/openapi.yaml`, which is also served at `/openapi.yaml`.

use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::auth::{Auth, Principal, Role};
use crate::query::params::{self, ParamError};
use crate::route_table::RouteTable;
use crate::query::{
    Dimension, GroupRow, Metrics, QueryEngine, QueryError, Segment, SeriesResponse, TopResourcesResponse,
    TotalsResponse,
};

/// The OpenAPI document of this API.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// Source of "now" for real-time queries and rollup planning.
pub type Clock = fn() -> i64;

/// The system clock in Unix seconds.
pub fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct AppState {
    engine: QueryEngine,
    clock: Clock,
}

/// The API's routes, every one behind `auth`'s middleware
/// ([`crate::auth::http_layer`]).
pub fn router(engine: QueryEngine, clock: Clock, auth: Auth) -> Router {
    crate::auth::http_layer::protect(route_table(engine, clock, auth.clone()).into_router(), auth)
}

/// Every route `serve` (and the demo) answers: the query API, the dashboard
/// and the alerting API. The authorisation suite walks exactly this table.
pub fn served_route_table(engine: QueryEngine, clock: Clock, auth: Auth, alerts: crate::alerts::http::AlertsHttp) -> RouteTable {
    route_table(engine, clock, auth).merge(crate::alerts::http::route_table(alerts))
}

/// [`served_route_table`] behind `auth`'s middleware.
pub fn served_router(engine: QueryEngine, clock: Clock, auth: Auth, alerts: crate::alerts::http::AlertsHttp) -> Router {
    crate::auth::http_layer::protect(served_route_table(engine, clock, auth.clone(), alerts).into_router(), auth)
}

/// The API's routes, with the list of them (checked against `openapi.yaml`
/// and walked by the authorisation suite), without the middleware.
pub fn route_table(engine: QueryEngine, clock: Clock, auth: Auth) -> RouteTable {
    let state = Arc::new(AppState { engine, clock });
    RouteTable::new()
        .get("/healthz", || async { "ok" })
        .get("/openapi.yaml", openapi)
        .get("/v1/totals", totals)
        .get("/v1/series", series)
        .get("/v1/realtime", realtime)
        .get("/v1/top-resources", top_resources)
        .get("/v1/admin/audit", admin_audit)
        .get("/v1/restatements", restatements)
        .with_state(state.clone())
        .merge(
            RouteTable::new()
                .get("/auth/login", crate::auth::login::start)
                .get("/auth/callback", crate::auth::login::callback)
                .get("/auth/logout", crate::auth::login::logout)
                .with_state(auth.clone()),
        )
        .merge(crate::dashboard::route_table(state.engine.clone(), state.clock, auth))
}

/// An error answer.
enum ApiError {
    BadParameter(ParamError),
    Query(QueryError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadParameter(e) => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": e.to_string(), "parameter": e.parameter })),
            )
                .into_response(),
            // A range retention no longer answers exactly: the caller's to fix.
            ApiError::Query(QueryError::OutsideRetention(e)) => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": e.to_string(), "parameter": e.parameter })),
            )
                .into_response(),
            ApiError::Query(QueryError::Forbidden(e)) => {
                (StatusCode::FORBIDDEN, Json(json!({ "error": e.to_string(), "parameter": e.parameter })))
                    .into_response()
            }
            ApiError::Query(QueryError::Sql(e)) if crate::query_limits::is_statement_timeout(&e) => {
                crate::query_limits::statement_timeout_reply()
            }
            // Never the database's message: logged under a request id.
            ApiError::Query(e) => crate::error_reply::internal("query", &e),
        }
    }
}

type Pairs = Query<Vec<(String, String)>>;

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

async fn totals(
    State(s): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    let req = params::parse_totals(&pairs).map_err(ApiError::BadParameter)?;
    let resp = s.engine.totals_for(&principal, &req, (s.clock)()).await.map_err(ApiError::Query)?;
    Ok(Json(totals_json(&resp)))
}

async fn series(
    State(s): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    let req = params::parse_series(&pairs).map_err(ApiError::BadParameter)?;
    let resp = s.engine.series_for(&principal, &req, (s.clock)()).await.map_err(ApiError::Query)?;
    Ok(Json(series_json(req.step.name(), req.from_unix_s, req.to_unix_s, &resp)))
}

async fn realtime(
    State(s): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    let now = (s.clock)();
    let req = params::parse_realtime(&pairs, now).map_err(ApiError::BadParameter)?;
    let resp = s.engine.realtime_for(&principal, &req, now).await.map_err(ApiError::Query)?;
    Ok(Json(series_json(req.step.name(), req.from_unix_s, req.to_unix_s, &resp)))
}

async fn top_resources(
    State(s): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Pairs,
) -> Result<Json<Value>, ApiError> {
    let req = params::parse_top_resources(&pairs).map_err(ApiError::BadParameter)?;
    let resp = s.engine.top_resources_for(&principal, &req, (s.clock)()).await.map_err(ApiError::Query)?;
    Ok(Json(top_json(&resp)))
}

/// `GET /v1/admin/audit`: the newest audit entries (admin only, checked by
/// the middleware and again here). Parameter: `limit` (1..=1000, default 100).
async fn admin_audit(
    State(s): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Pairs,
) -> Response {
    if !principal.is_admin() {
        return crate::auth::http_layer::forbidden("this endpoint needs the admin role");
    }
    let limit = match limit_param(&pairs, 100, 1_000) {
        Ok(n) => n,
        Err(e) => return ApiError::BadParameter(e).into_response(),
    };
    match crate::auth::audit::recent(s.engine.pool(), limit).await {
        Ok(entries) => Json(json!({
            "entries": entries.iter().map(|e| json!({
                "audit_id": e.audit_id,
                "at_unix_s": e.at_unix_s,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "before": e.before,
                "after": e.after,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => crate::error_reply::internal("reading the audit log", &e),
    }
}

/// `GET /v1/restatements?limit=N` (default 20, at most 200): the newest
/// restatements first ([`crate::restatement::list`]).
/// Org-wide: each record holds every touched account's monthly totals, so
/// only a principal with an unrestricted scope (org viewer, admin) reads it.
async fn restatements(
    State(s): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Pairs,
) -> Response {
    if !principal.scope.is_unrestricted() || !matches!(principal.role, Role::Admin | Role::OrgViewer) {
        return crate::auth::http_layer::forbidden("restatements are org-wide: they need the org_viewer or admin role");
    }
    let limit = match limit_param(&pairs, 20, 200) {
        Ok(n) => n,
        Err(e) => return ApiError::BadParameter(e).into_response(),
    };
    match crate::restatement::list(s.engine.pool(), limit).await {
        Ok(list) => Json(restatements_json(&list)).into_response(),
        Err(e) => crate::error_reply::internal("listing restatements", &e),
    }
}

/// The only parameter of the listing endpoints: `limit`, 1..=`max`
/// (`default` when absent); any other parameter is refused by name.
fn limit_param(pairs: &[(String, String)], default: i64, max: i64) -> Result<i64, ParamError> {
    let mut limit = default;
    for (key, value) in pairs {
        if key != "limit" {
            return Err(ParamError { parameter: key.clone(), message: "unknown parameter; expected limit".into() });
        }
        limit = value.parse::<i64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| ParamError {
            parameter: "limit".into(),
            message: format!("expected 1 to {max}, found {value:?}"),
        })?;
    }
    Ok(limit)
}

/// The JSON of [`restatements`] (grams; instants as UTC RFC 3339).
pub fn restatements_json(list: &[crate::restatement::Restatement]) -> Value {
    let at = crate::query::plan::rfc3339;
    json!({
        "restatements": list.iter().map(|r| json!({
            "id": r.id,
            "cause": { "factor_set": r.factor_set, "old_version": r.old_version, "new_version": r.new_version },
            "state": r.state,
            "created_at": at(r.created_unix_s),
            "finished_at": r.finished_unix_s.map(at),
            "facts_restated": r.facts_restated,
            "days": r.days_unix_s.iter().map(|d| at(*d)).collect::<Vec<_>>(),
            "months": r.months.iter().map(|m| json!({
                "account_id": m.account_id,
                "month": at(m.month_start_unix_s),
                "before": { "location_g_co2e": m.before_location_g_co2e, "market_g_co2e": m.before_market_g_co2e },
                "after": { "location_g_co2e": m.after_location_g_co2e, "market_g_co2e": m.after_market_g_co2e },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()
    })
}

fn metrics_json(m: &Metrics) -> Value {
    let mut body: serde_json::Map<String, Value> = m.named().iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    body.insert("fact_count".into(), json!(m.fact_count));
    Value::Object(body)
}

/// The factor sets behind an answer.
pub fn factor_sets_json(sets: &[crate::lineage::FactorSet]) -> Value {
    sets.iter()
        .map(|f| {
            json!({
                "methodology_version": f.methodology_version,
                "location_factor_source": f.location_factor_source,
                "location_factor_vintage": f.location_factor_vintage,
                "market_factor_source": f.market_factor_source,
                "market_factor_vintage": f.market_factor_vintage,
                "parts": f.parts,
                "first_month_unix_s": f.first_month_unix_s,
                "last_month_unix_s": f.last_month_unix_s,
            })
        })
        .collect()
}

fn dims_json(dims: &[(Dimension, String)]) -> Value {
    Value::Object(dims.iter().map(|(d, v)| (d.name().to_owned(), Value::String(v.clone()))).collect())
}

fn segments_json(segments: &[Segment]) -> Value {
    segments
        .iter()
        .map(|s| json!({
                "source": s.source.name(),
                "from_unix_s": s.from_unix_s,
                "to_unix_s": s.to_unix_s,
                "subtract": s.subtract,
            }))
        .collect()
}

fn group_json(row: &GroupRow) -> Value {
    json!({ "dims": dims_json(&row.dims), "metrics": metrics_json(&row.metrics) })
}

/// JSON body of a totals answer.
pub fn totals_json(resp: &TotalsResponse) -> Value {
    json!({
        "sources": segments_json(&resp.segments),
        "total": metrics_json(&resp.total),
        "by_quality": resp.by_quality.iter().map(|q| json!({
            "quality": q.quality,
            "metrics": metrics_json(&q.metrics),
            "share_of_location_co2e": q.share_of_location_co2e,
        })).collect::<Vec<_>>(),
        "rows": resp.rows.iter().map(group_json).collect::<Vec<_>>(),
        "next_offset": resp.next_offset,
        "factor_sets": factor_sets_json(&resp.factor_sets),
    })
}

/// JSON body of a series answer.
pub fn series_json(step: &str, from_unix_s: i64, to_unix_s: i64, resp: &SeriesResponse) -> Value {
    json!({
        "step": step,
        "from_unix_s": from_unix_s,
        "to_unix_s": to_unix_s,
        "sources": segments_json(&resp.segments),
        "rows": resp.rows.iter().map(|r| json!({
            "bucket_start_unix_s": r.bucket_start_unix_s,
            "dims": dims_json(&r.dims),
            "metrics": metrics_json(&r.metrics),
        })).collect::<Vec<_>>(),
        "next_offset": resp.next_offset,
        "factor_sets": factor_sets_json(&resp.factor_sets),
    })
}

/// JSON body of a top-resources answer.
pub fn top_json(resp: &TopResourcesResponse) -> Value {
    json!({
        "rows": resp.rows.iter().map(|r| json!({
            "account_id": r.account_id,
            "region": r.region,
            "resource_id": r.resource_id,
            "service": r.service,
            "resource_type": r.resource_type,
            "team": r.team,
            "metrics": metrics_json(&r.metrics),
        })).collect::<Vec<_>>(),
        "next_offset": resp.next_offset,
        "factor_sets": factor_sets_json(&resp.factor_sets),
    })
}
