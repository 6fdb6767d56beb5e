//! Issue 19 §4: `aggregator/openapi.yaml` lists every route the HTTP router
//! serves and nothing else. The router's list comes from the code that
//! builds it ([`canopy_aggregator::http::route_table`]), not from a second
//! hand-written list.

use std::collections::BTreeSet;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use canopy_aggregator::http::{OPENAPI_YAML, served_route_table};
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::query::QueryEngine;
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

/// The (method, path) pairs under the document's `paths:` (two-space
/// indented path keys, four-space indented method keys).
fn spec_routes(yaml: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line.trim_end() == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(key) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && key.starts_with('/')
        {
            path = Some(key.to_owned());
        } else if let Some(key) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && METHODS.contains(&key)
        {
            routes.insert((key.to_owned(), path.clone().expect("a method under a path")));
        }
    }
    routes
}

fn engine() -> QueryEngine {
    // Never connects: the routes are listed, not queried.
    let pool = PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
    QueryEngine::new(pool, RetentionPolicy::default())
}

fn clock() -> i64 {
    0
}

#[test]
fn spec_parser_reads_paths_and_methods() {
    let yaml = "openapi: 3.0.3\npaths:\n  /a:\n    get:\n      summary: x\n  /b/{id}:\n    post:\n      responses: {}\ncomponents:\n  /c:\n    get:\n";
    let expected: BTreeSet<_> =
        [("get", "/a"), ("post", "/b/{id}")].iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(spec_routes(yaml), expected);
}

#[tokio::test]
async fn openapi_lists_exactly_the_routes_the_router_serves() {
    let alerts = canopy_aggregator::alerts::http::AlertsHttp {
        pool: PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap(),
        config: canopy_aggregator::alerts::AlertsConfig::default(),
        clock,
    };
    // As `serve` builds it: the query API, the dashboard and the alerting routes.
    let table = served_route_table(engine(), clock, canopy_aggregator::auth::Auth::insecure_open_access(), alerts);
    let served: BTreeSet<(String, String)> =
        table.routes().iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(served.len(), table.routes().len(), "a route added twice");
    let documented = spec_routes(OPENAPI_YAML);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "routes missing from openapi.yaml: {undocumented:?}");
    assert!(unserved.is_empty(), "openapi.yaml documents routes the router does not serve: {unserved:?}");
    // The four, by name.
    for path in ["/v1/overview", "/v1/fleet", "/v1/resource-history", "/openapi.yaml", "/v1/restatements"] {
        assert!(documented.contains(&("get".to_owned(), path.to_owned())), "{path} documented");
    }
    // 16 query, dashboard, restatement, admin and login routes, 14 of
    // budgets, routes, silences and alerts (issue 17).
    assert_eq!(documented.len(), 30);

    // The table's router serves what the table lists: the static routes
    // answer from the router (not its 404 fallback).
    let app = table.into_router();
    for (_, path) in &served {
        if path.contains('{') || path.starts_with("/v1/") || path.starts_with("/auth/") {
            continue; // templated, needs the database, or an OIDC issuer
        }
        let resp = app.clone().oneshot(Request::get(path.as_str()).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        if path == "/openapi.yaml" {
            let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            assert_eq!(body, OPENAPI_YAML.as_bytes());
        }
    }
}
