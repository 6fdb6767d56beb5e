//! The dashboard's static files, compiled into the binary so the page works
//! offline.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The page.
pub const INDEX_HTML: &str = include_str!("../../assets/index.html");

/// Static files served under `/assets/`: (name, content type, body).
pub const ASSETS: [(&str, &str, &str); 4] = [
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../assets/app.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../../assets/charts.js")),
    ("csv.js", "text/javascript; charset=utf-8", include_str!("../../assets/csv.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../assets/style.css")),
];

const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-cache");

/// Shown at the top of every page in the development mode.
pub const OPEN_ACCESS_BANNER: &str = "<div class=\"insecure-banner\" role=\"alert\" id=\"insecure-open-access\">\
INSECURE OPEN ACCESS: this aggregator runs with --insecure-open-access; anyone who reaches it sees \
every account and acts as an admin. For demos and tests only.</div>";

/// The page, with the open-access banner when `open`.
pub fn index_html(open: bool) -> String {
    if open {
        INDEX_HTML.replacen("<body>", &format!("<body>\n{OPEN_ACCESS_BANNER}"), 1)
    } else {
        INDEX_HTML.to_owned()
    }
}

/// `GET /`.
pub async fn index(axum::extract::State(s): axum::extract::State<super::DashboardState>) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), CACHE], index_html(s.auth.is_open())).into_response()
}

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => ([(header::CONTENT_TYPE, *content_type), CACHE], *body).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no asset named {name:?}")).into_response(),
    }
}
