//! The HTTP middleware: authenticates every request except the public ones
//! (`/healthz`, `/openapi.yaml`, `/assets/*`, `/auth/*`), puts the
//! [`Principal`] in the request's extensions for the handlers, answers 401
//! (or, for the dashboard page with login configured, redirects to
//! `/auth/login`) and 403 for admin paths (`/v1/admin/*`) without the admin
//! role and for `/metrics` without an org-wide role. In the development mode
//! every response carries `x-canopy-insecure-open-access: true`.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::{Auth, OPEN_ACCESS_HEADER, Principal, Role};

/// True for paths anyone may read.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/openapi.yaml" | "/auth/login" | "/auth/callback" | "/auth/logout")
        || path.starts_with("/assets/")
}

/// The 401 answer.
pub fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({ "error": "authentication required: a bearer JWT, an API token or a dashboard session" })),
    )
        .into_response()
}

/// The 403 answer.
pub fn forbidden(message: &str) -> Response {
    (StatusCode::FORBIDDEN, Json(json!({ "error": message }))).into_response()
}

/// The role `path` needs beyond being authenticated, if any.
fn refusal(path: &str, principal: &Principal) -> Option<&'static str> {
    if path.starts_with("/v1/admin/") && principal.role != Role::Admin {
        return Some("this endpoint needs the admin role");
    }
    if path == "/metrics" && !matches!(principal.role, Role::Admin | Role::OrgViewer) {
        return Some("/metrics needs the org_viewer or admin role");
    }
    None
}

/// The middleware (see the module header).
pub async fn require(State(auth): State<Auth>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut resp = if is_public(&path) {
        next.run(req).await
    } else {
        let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let cookie = req.headers().get(header::COOKIE).and_then(|v| v.to_str().ok());
        match auth.authenticate(authorization, cookie).await {
            Ok(principal) => match refusal(&path, &principal) {
                Some(message) => forbidden(message),
                None => {
                    req.extensions_mut().insert(principal);
                    next.run(req).await
                }
            },
            Err(e) => {
                tracing::info!(reason = %e, %path, "request refused: not authenticated");
                let can_login = auth.oidc().is_some_and(|o| o.config().login.is_some());
                if path == "/" && can_login && authorization.is_none() {
                    Redirect::to("/auth/login").into_response()
                } else {
                    unauthenticated()
                }
            }
        }
    };
    if auth.is_open() {
        resp.headers_mut().insert(OPEN_ACCESS_HEADER, HeaderValue::from_static("true"));
    }
    resp
}

/// `router` with the middleware on every route.
pub fn protect(router: axum::Router, auth: Auth) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(auth, require))
}
