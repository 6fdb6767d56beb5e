//! Replies for failures the caller cannot fix: a generic message and a
//! request id, never the database's own message (which can name tables,
//! columns, values or constraint names). The full error is logged with the
//! same request id, so an operator can find it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A new request id (16 hex digits).
pub fn request_id() -> String {
    crate::auth::tokens::random_hex(8)
}

/// Logs `error` under a new request id and answers 500 with that id only.
pub fn internal(what: &str, error: &dyn std::fmt::Display) -> Response {
    let id = request_id();
    tracing::warn!(request_id = %id, error = %error, "{what} failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": format!("internal error; request id {id}"), "request_id": id })),
    )
        .into_response()
}

/// The gRPC counterpart: INTERNAL with the request id only.
pub fn internal_status(what: &str, error: &dyn std::fmt::Display) -> tonic::Status {
    let id = request_id();
    tracing::warn!(request_id = %id, error = %error, "{what} failed");
    tonic::Status::internal(format!("internal error; request id {id}"))
}
