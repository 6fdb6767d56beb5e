//! The web dashboard served by the aggregator: the page and its assets
//! (embedded in the binary, no CDN) and the few JSON endpoints the page needs
//! beyond the query API (`/v1/overview`, `/v1/fleet`, `/v1/resource-history`).
//!
//! - [`assets`]: the embedded HTML, CSS and JavaScript.
//! - [`overview`]: now, this month and the trend against last month.
//! - [`fleet`]: agents and the accounts × regions they cover.
//! - [`history`]: one resource's figures over time.

pub mod assets;
pub mod fleet;
pub mod history;
pub mod overview;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::Auth;
use crate::http::Clock;
use crate::query::params::ParamError;
use crate::query::{QueryEngine, QueryError};
use crate::route_table::RouteTable;

/// Shared by the dashboard's handlers.
#[derive(Clone)]
pub struct DashboardState {
    /// The query engine (and its pool).
    pub engine: QueryEngine,
    /// Source of "now".
    pub clock: Clock,
    /// Access control (the page's open-access banner).
    pub auth: Auth,
}

/// The dashboard's routes: `/`, `/assets/*` and its JSON endpoints.
pub fn route_table(engine: QueryEngine, clock: Clock, auth: Auth) -> RouteTable {
    let state = DashboardState { engine, clock, auth };
    RouteTable::new()
        .get("/", assets::index)
        .get("/assets/{name}", assets::asset)
        .get("/v1/overview", overview::handler)
        .get("/v1/fleet", fleet::handler)
        .get("/v1/resource-history", history::handler)
        .with_state(state)
}

/// An error answer of a dashboard endpoint (same shape as the query API's).
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A parameter is missing, unknown or invalid.
    #[error(transparent)]
    BadParameter(#[from] ParamError),
    /// The query layer failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A dashboard query failed.
    #[error("database error while reading dashboard data: {0}")]
    Sql(#[from] sqlx::Error),
    /// The resource asked for is not in the caller's scope (answered as
    /// 404, so its existence is not revealed).
    #[error("no such resource in your scope")]
    NotInScope,
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        match self {
            DashboardError::BadParameter(e) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "error": e.to_string(), "parameter": e.parameter })))
                    .into_response()
            }
            DashboardError::Query(QueryError::OutsideRetention(e)) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "error": e.to_string(), "parameter": e.parameter })))
                    .into_response()
            }
            DashboardError::Query(QueryError::Sql(e)) | DashboardError::Sql(e)
                if crate::query_limits::is_statement_timeout(&e) =>
            {
                crate::query_limits::statement_timeout_reply()
            }
            DashboardError::Query(QueryError::Forbidden(e)) => {
                (StatusCode::FORBIDDEN, Json(json!({ "error": e.to_string(), "parameter": e.parameter })))
                    .into_response()
            }
            DashboardError::NotInScope => {
                (StatusCode::NOT_FOUND, Json(json!({ "error": "no such resource in your scope" }))).into_response()
            }
            // Never the database's message: logged under a request id.
            other => crate::error_reply::internal("dashboard query", &other),
        }
    }
}

/// A parameter error naming `parameter`.
pub(crate) fn bad(parameter: &str, message: impl Into<String>) -> DashboardError {
    DashboardError::BadParameter(ParamError { parameter: parameter.to_owned(), message: message.into() })
}
