//! The dashboard's static files, compiled into the binary so the page works
//! offline.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("../../assets/index.html");

/// Static files served under `/assets/`: (name, content type, body).
pub const ASSETS: [(&str, &str, &str); 3] = [
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../assets/app.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../../assets/charts.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../assets/style.css")),
];

const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-cache");

/// `GET /`.
pub async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), CACHE], INDEX_HTML).into_response()
}

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => ([(header::CONTENT_TYPE, *content_type), CACHE], *body).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no asset named {name:?}")).into_response(),
    }
}
