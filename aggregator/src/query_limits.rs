//! Availability of the query side (issue 19 §3): what bounds an expensive
//! open request so that it cannot starve agents' ingest.
//!
//! - The query APIs read through their **own connection pool**
//!   ([`connect_query_pool`]), separate from the ingest pool, so queries
//!   can never hold the connections batches are stored with.
//! - Every session of that pool runs with a **`statement_timeout`**
//!   ([`QueryLimits::statement_timeout`]); ingest sessions have none.
//! - A [`QueryGate`] in front of the HTTP `/v1/*` routes and of the gRPC
//!   service bounds **concurrent requests** (a request beyond the limit is
//!   refused at once with 503, never queued) and **each request's time**
//!   (504 after [`QueryLimits::request_timeout`]).
//! - A query the database cancelled for the statement timeout answers 503
//!   with a message naming the limit, never the database's own message.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::Semaphore;

use crate::db::DbError;

/// The query side's limits (`serve --query-*`, see `aggregator/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Connections in the query pool (`--query-max-connections`).
    pub max_connections: u32,
    /// `statement_timeout` of the query pool's sessions
    /// (`--query-statement-timeout-ms`).
    pub statement_timeout: Duration,
    /// Longest time one API request may take, queries included
    /// (`--query-request-timeout-ms`).
    pub request_timeout: Duration,
    /// Requests served at once across the HTTP and gRPC query APIs
    /// (`--query-max-concurrent-requests`); more are refused with 503.
    pub max_concurrent_requests: u32,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_connections: 8,
            statement_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 32,
        }
    }
}

/// A limit that cannot work, naming the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    /// A limit is zero.
    #[error("expected {flag} to be at least 1, found 0")]
    Zero {
        /// The flag.
        flag: &'static str,
    },
    /// The statement timeout is longer than the request timeout: the
    /// database would go on running a query nobody waits for any more.
    #[error(
        "expected --query-statement-timeout-ms ({statement_ms}) to be at most --query-request-timeout-ms ({request_ms})"
    )]
    StatementOutlivesRequest {
        /// The statement timeout.
        statement_ms: u128,
        /// The request timeout.
        request_ms: u128,
    },
}

impl QueryLimits {
    /// Checks the limits at start-up.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let zero = |flag| Err(LimitsError::Zero { flag });
        if self.max_connections == 0 {
            return zero("--query-max-connections");
        }
        if self.statement_timeout.is_zero() {
            return zero("--query-statement-timeout-ms");
        }
        if self.request_timeout.is_zero() {
            return zero("--query-request-timeout-ms");
        }
        if self.max_concurrent_requests == 0 {
            return zero("--query-max-concurrent-requests");
        }
        if self.statement_timeout > self.request_timeout {
            return Err(LimitsError::StatementOutlivesRequest {
                statement_ms: self.statement_timeout.as_millis(),
                request_ms: self.request_timeout.as_millis(),
            });
        }
        Ok(())
    }
}

/// Opens the query pool: `limits.max_connections` sessions, each with
/// `statement_timeout` set (and `jit = off`, as [`crate::db::connect`]),
/// named `canopy-query` in `pg_stat_activity`. Waiting for a connection
/// gives up after the request timeout.
pub async fn connect_query_pool(database_url: &str, limits: &QueryLimits) -> Result<PgPool, DbError> {
    connect_query_pool_with(PgConnectOptions::from_str(database_url)?, limits).await
}

/// [`connect_query_pool`] from connect options instead of a URL.
pub async fn connect_query_pool_with(options: PgConnectOptions, limits: &QueryLimits) -> Result<PgPool, DbError> {
    let statement_ms = limits.statement_timeout.as_millis().to_string();
    let options = options
        .options([("jit", "off"), ("statement_timeout", statement_ms.as_str())])
        .application_name("canopy-query");
    Ok(PgPoolOptions::new()
        .max_connections(limits.max_connections)
        .acquire_timeout(limits.request_timeout)
        .connect_with(options)
        .await?)
}

/// True when `e` is PostgreSQL cancelling a statement (SQLSTATE 57014,
/// `query_canceled`: the statement timeout or a cancel request).
pub fn is_statement_timeout(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
}

/// Marks an error answer as "the database cancelled the statement"; the
/// [`QueryGate`] replaces it with a reply naming the configured limit.
#[derive(Debug, Clone, Copy)]
pub struct StatementTimedOut;

/// The answer of an HTTP handler whose query hit the statement timeout
/// (completed by the gate with the limit's value).
pub fn statement_timeout_reply() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": "query cancelled: it ran longer than the query statement timeout (--query-statement-timeout-ms)", "limit": "statement_timeout" })),
    )
        .into_response();
    response.extensions_mut().insert(StatementTimedOut);
    response
}

/// gRPC metadata key carried by a status that a limit produced.
pub const GRPC_LIMIT_KEY: &str = "canopy-limit";

/// The gRPC status of a query that hit the statement timeout (completed by
/// the gate with the limit's value).
pub fn statement_timeout_status() -> tonic::Status {
    let mut status = tonic::Status::unavailable(
        "query cancelled: it ran longer than the query statement timeout (--query-statement-timeout-ms)",
    );
    status.metadata_mut().insert(GRPC_LIMIT_KEY, tonic::metadata::MetadataValue::from_static("statement_timeout"));
    status
}

/// Counters of the gate, rendered with the aggregator's `/metrics`.
#[derive(Debug, Default)]
pub struct GateMetrics {
    admitted_total: AtomicU64,
    refused_busy_total: AtomicU64,
    timed_out_total: AtomicU64,
    statement_timeouts_total: AtomicU64,
}

/// A snapshot of [`GateMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GateCounts {
    /// Requests admitted.
    pub admitted: u64,
    /// Requests refused because `max_concurrent_requests` were running.
    pub refused_busy: u64,
    /// Requests cut at the request timeout.
    pub timed_out: u64,
    /// Requests whose query the database cancelled at the statement timeout.
    pub statement_timeouts: u64,
}

impl GateMetrics {
    /// The current counts.
    pub fn counts(&self) -> GateCounts {
        GateCounts {
            admitted: self.admitted_total.load(Ordering::Relaxed),
            refused_busy: self.refused_busy_total.load(Ordering::Relaxed),
            timed_out: self.timed_out_total.load(Ordering::Relaxed),
            statement_timeouts: self.statement_timeouts_total.load(Ordering::Relaxed),
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let c = self.counts();
        format!(
            "# TYPE canopy_aggregator_query_requests_admitted_total counter\n\
             canopy_aggregator_query_requests_admitted_total {}\n\
             # TYPE canopy_aggregator_query_requests_refused_busy_total counter\n\
             canopy_aggregator_query_requests_refused_busy_total {}\n\
             # TYPE canopy_aggregator_query_requests_timed_out_total counter\n\
             canopy_aggregator_query_requests_timed_out_total {}\n\
             # TYPE canopy_aggregator_query_statement_timeouts_total counter\n\
             canopy_aggregator_query_statement_timeouts_total {}\n",
            c.admitted, c.refused_busy, c.timed_out, c.statement_timeouts
        )
    }
}

/// Why the gate did not let a request through or cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `limit` requests were already running.
    Busy {
        /// `max_concurrent_requests`.
        limit: u32,
    },
    /// The request ran for `after`.
    TimedOut {
        /// `request_timeout`.
        after: Duration,
    },
}

impl Refusal {
    fn message(self) -> String {
        match self {
            Refusal::Busy { limit } => format!(
                "too many concurrent queries: {limit} are running (--query-max-concurrent-requests); retry later"
            ),
            Refusal::TimedOut { after } => {
                format!("query exceeded the request timeout of {} ms (--query-request-timeout-ms)", after.as_millis())
            }
        }
    }
}

/// Admission and time limit shared by the HTTP and gRPC query APIs.
#[derive(Debug, Clone)]
pub struct QueryGate {
    limits: QueryLimits,
    permits: Arc<Semaphore>,
    metrics: Arc<GateMetrics>,
}

impl QueryGate {
    /// A gate enforcing `limits`.
    pub fn new(limits: QueryLimits) -> QueryGate {
        QueryGate {
            limits,
            permits: Arc::new(Semaphore::new(limits.max_concurrent_requests as usize)),
            metrics: Arc::new(GateMetrics::default()),
        }
    }

    /// The gate's counters.
    pub fn metrics(&self) -> Arc<GateMetrics> {
        self.metrics.clone()
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Runs `work` if a slot is free (else refuses at once) and at most for
    /// the request timeout (dropping it then).
    pub async fn run<T>(&self, work: impl Future<Output = T>) -> Result<T, Refusal> {
        let Ok(_permit) = self.permits.try_acquire() else {
            self.metrics.refused_busy_total.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Busy { limit: self.limits.max_concurrent_requests });
        };
        self.metrics.admitted_total.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(self.limits.request_timeout, work).await {
            Ok(out) => Ok(out),
            Err(_) => {
                self.metrics.timed_out_total.fetch_add(1, Ordering::Relaxed);
                Err(Refusal::TimedOut { after: self.limits.request_timeout })
            }
        }
    }

    fn statement_timeout_message(&self) -> String {
        format!(
            "query cancelled: it ran longer than the query statement timeout of {} ms (--query-statement-timeout-ms)",
            self.limits.statement_timeout.as_millis()
        )
    }

    /// `router` with the gate in front of its `/v1/*` routes (the health
    /// check, the OpenAPI document and the dashboard's static files pass).
    pub fn layer_http(self, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self, http_gate))
    }

    /// A gRPC service behind the gate (every method is a query).
    pub fn wrap_grpc<S>(self, inner: S) -> GrpcGate<S> {
        GrpcGate { gate: self, inner }
    }
}

async fn http_gate(State(gate): State<QueryGate>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    match gate.run(next.run(request)).await {
        Ok(response) if response.extensions().get::<StatementTimedOut>().is_some() => {
            gate.metrics.statement_timeouts_total.fetch_add(1, Ordering::Relaxed);
            let message = gate.statement_timeout_message();
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": message, "limit": "statement_timeout" })))
                .into_response()
        }
        Ok(response) => response,
        Err(refusal) => {
            let (status, limit) = match refusal {
                Refusal::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "max_concurrent_requests"),
                Refusal::TimedOut { .. } => (StatusCode::GATEWAY_TIMEOUT, "request_timeout"),
            };
            tracing::info!(?refusal, "query request refused by the query limits");
            (status, Json(json!({ "error": refusal.message(), "limit": limit }))).into_response()
        }
    }
}

/// A gRPC service behind a [`QueryGate`]: busy → `UNAVAILABLE`, request
/// timeout → `DEADLINE_EXCEEDED`, statement timeout → `UNAVAILABLE`, each
/// naming the limit.
#[derive(Debug, Clone)]
pub struct GrpcGate<S> {
    gate: QueryGate,
    inner: S,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for GrpcGate<S> {
    const NAME: &'static str = S::NAME;
}

type GrpcResponse = axum::http::Response<tonic::body::Body>;

impl<S, B> tonic::codegen::Service<axum::http::Request<B>> for GrpcGate<S>
where
    S: tonic::codegen::Service<axum::http::Request<B>, Response = GrpcResponse, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = GrpcResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<GrpcResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        // The readied service answers this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        Box::pin(async move {
            let response = match gate.run(inner.call(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(refusal) => {
                    tracing::info!(?refusal, "gRPC query refused by the query limits");
                    let status = match refusal {
                        Refusal::Busy { .. } => tonic::Status::unavailable(refusal.message()),
                        Refusal::TimedOut { .. } => tonic::Status::deadline_exceeded(refusal.message()),
                    };
                    return Ok(status.into_http());
                }
            };
            let hit_statement_timeout = response
                .extensions()
                .get::<tonic::Status>()
                .is_some_and(|s| s.metadata().get(GRPC_LIMIT_KEY).is_some_and(|v| v == "statement_timeout"));
            if hit_statement_timeout {
                gate.metrics.statement_timeouts_total.fetch_add(1, Ordering::Relaxed);
                return Ok(tonic::Status::unavailable(gate.statement_timeout_message()).into_http());
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(limits: QueryLimits, expected: Result<(), &str>) {
        assert_eq!(limits.validate().map_err(|e| e.to_string()), expected.map_err(str::to_owned));
    }

    #[test]
    fn validation_names_the_flag() {
        let ok = QueryLimits::default();
        check(ok, Ok(()));
        check(
            QueryLimits { max_connections: 0, ..ok },
            Err("expected --query-max-connections to be at least 1, found 0"),
        );
        check(
            QueryLimits { statement_timeout: Duration::ZERO, ..ok },
            Err("expected --query-statement-timeout-ms to be at least 1, found 0"),
        );
        check(
            QueryLimits { request_timeout: Duration::ZERO, ..ok },
            Err("expected --query-request-timeout-ms to be at least 1, found 0"),
        );
        check(
            QueryLimits { max_concurrent_requests: 0, ..ok },
            Err("expected --query-max-concurrent-requests to be at least 1, found 0"),
        );
        check(
            QueryLimits { statement_timeout: Duration::from_secs(40), request_timeout: Duration::from_secs(30), ..ok },
            Err("expected --query-statement-timeout-ms (40000) to be at most --query-request-timeout-ms (30000)"),
        );
    }

    #[tokio::test]
    async fn gate_refuses_beyond_the_limit_and_cuts_at_the_timeout() {
        let timeout = Duration::from_millis(200);
        let gate = QueryGate::new(QueryLimits {
            max_concurrent_requests: 2,
            request_timeout: timeout,
            statement_timeout: timeout,
            ..QueryLimits::default()
        });
        let slow = |g: QueryGate| async move { g.run(std::future::pending::<()>()).await };
        let (a, b) = (tokio::spawn(slow(gate.clone())), tokio::spawn(slow(gate.clone())));
        while gate.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.run(async { 1 }).await, Err(Refusal::Busy { limit: 2 }));
        assert_eq!(a.await.unwrap(), Err(Refusal::TimedOut { after: timeout }));
        assert_eq!(b.await.unwrap(), Err(Refusal::TimedOut { after: timeout }));
        assert_eq!(gate.run(async { 1 }).await, Ok(1));
        assert_eq!(
            gate.metrics().counts(),
            GateCounts { admitted: 3, refused_busy: 1, timed_out: 2, statement_timeouts: 0 }
        );
    }
}
