//! The dashboard's OIDC login: authorization code with PKCE (S256) and a
//! `state` bound to the browser, then a session cookie (`HttpOnly`,
//! `Secure`, `SameSite=Lax`) naming a server-side session (kept in memory:
//! a restart logs everyone out). The ID token is validated like a bearer
//! JWT, with the dashboard client's id as audience. Owns `/auth/login`,
//! `/auth/callback` and `/auth/logout`; never stores the code, verifier or
//! tokens beyond the exchange.

use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::{Auth, AuthMethod, SESSION_COOKIE, principal, session_cookie, tokens};

/// A login begun at `/auth/login`, awaiting its callback.
pub struct PendingLogin {
    verifier: String,
    started: Instant,
}

/// How long a login may take between redirect and callback.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Most logins pending at once (older ones are dropped first).
const MAX_PENDING: usize = 10_000;

/// The PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

fn unavailable() -> Response {
    (StatusCode::NOT_FOUND, "dashboard login is not configured (--oidc-client-id, --oidc-redirect-url)").into_response()
}

/// `GET /auth/login`: redirect to the issuer's authorization endpoint.
pub async fn start(State(auth): State<Auth>) -> Response {
    let Some(oidc) = auth.oidc() else { return unavailable() };
    let (Some(login), Some(endpoint)) = (&oidc.config().login, &oidc.discovery().authorization_endpoint) else {
        return unavailable();
    };
    let state = tokens::random_hex(16);
    let verifier = URL_SAFE_NO_PAD.encode(tokens::random_hex(32));
    let challenge = pkce_challenge(&verifier);
    {
        let mut pending = auth.pending_logins().lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.started.elapsed() < LOGIN_TTL);
        if pending.len() >= MAX_PENDING {
            return (StatusCode::SERVICE_UNAVAILABLE, "too many logins in progress; try again").into_response();
        }
        pending.insert(state.clone(), PendingLogin { verifier, started: Instant::now() });
    }
    let url = reqwest::Url::parse_with_params(
        endpoint,
        &[
            ("response_type", "code"),
            ("client_id", login.client_id.as_str()),
            ("redirect_uri", login.redirect_url.as_str()),
            ("scope", "openid profile email"),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );
    match url {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "the issuer's authorization endpoint is not a URL");
            (StatusCode::INTERNAL_SERVER_ERROR, "login is misconfigured").into_response()
        }
    }
}

/// Parameters of the callback.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
}

/// `GET /auth/callback`: exchange the code, validate the ID token, start a session.
pub async fn callback(State(auth): State<Auth>, Query(cb): Query<Callback>) -> Response {
    let Some(oidc) = auth.oidc() else { return unavailable() };
    let (Some(login), Some(endpoint)) = (&oidc.config().login, &oidc.discovery().token_endpoint) else {
        return unavailable();
    };
    let refused = |why: &str| (StatusCode::UNAUTHORIZED, format!("login failed: {why}")).into_response();
    if let Some(error) = cb.error {
        tracing::info!(%error, "the issuer refused the login");
        return refused("the identity provider refused the login");
    }
    let (Some(code), Some(state)) = (cb.code, cb.state) else { return refused("expected code and state") };
    let pending = auth.pending_logins().lock().unwrap_or_else(|e| e.into_inner()).remove(&state);
    let Some(pending) = pending.filter(|p| p.started.elapsed() < LOGIN_TTL) else {
        return refused("unknown or expired login state; start again at /auth/login");
    };
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", login.redirect_url.clone()),
        ("client_id", login.client_id.clone()),
        ("code_verifier", pending.verifier),
    ];
    if let Some(secret) = &login.client_secret {
        form.push(("client_secret", secret.clone()));
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build();
    let exchanged = match client {
        Ok(c) => c.post(endpoint).form(&form).send().await,
        Err(e) => {
            tracing::error!(error = %e, "building the HTTP client");
            return refused("internal error");
        }
    };
    let id_token = match exchanged {
        Ok(resp) if resp.status().is_success() => match resp.bytes().await.map_err(|e| e.to_string()).and_then(|b| serde_json::from_slice::<TokenResponse>(&b).map_err(|e| e.to_string())) {
            Ok(t) => t.id_token,
            Err(e) => {
                tracing::warn!(error = %e, "token endpoint answered without an id_token");
                return refused("the identity provider's answer had no ID token");
            }
        },
        Ok(resp) => {
            tracing::warn!(status = %resp.status(), "token endpoint refused the code");
            return refused("the identity provider refused the code");
        }
        Err(e) => {
            tracing::warn!(error = %e, "token endpoint unreachable");
            return refused("the identity provider is unreachable");
        }
    };
    let principal = match oidc.validate_for(&id_token, &login.client_id).await {
        Ok(claims) => principal::from_claims(&claims, &oidc.config().claims, AuthMethod::Session),
        Err(e) => {
            tracing::warn!(error = %e, "ID token refused");
            return refused("invalid ID token");
        }
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "login without a usable Canopy role");
            return (StatusCode::FORBIDDEN, format!("login refused: {e}")).into_response();
        }
    };
    tracing::info!(subject = %principal.subject, role = principal.role.name(), "dashboard login");
    let id = auth.start_session(principal, login.session_ttl);
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
        login.session_ttl.as_secs()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// `GET /auth/logout`: end the session and clear the cookie.
pub async fn logout(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if let Some(id) = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).and_then(session_cookie) {
        auth.end_session(id);
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], "logged out").into_response()
}
