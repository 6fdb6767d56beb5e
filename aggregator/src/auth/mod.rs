//! Access control: who is asking (authentication) and what they may do
//! (role and scope; the scope itself is applied in the query layer,
//! [`crate::query::authz`]).
//!
//! Owns: the validated access configuration ([`config`]), OIDC bearer JWTs
//! ([`oidc`]), the dashboard's authorization-code login with PKCE and its
//! session cookie ([`login`]), API tokens for machines ([`tokens`]), the
//! audit log of admin actions ([`audit`]) and the HTTP middleware that puts
//! a [`Principal`] on every request ([`http_layer`]). gRPC methods call
//! [`Auth::authenticate`] with the request's metadata.
//!
//! Must never: answer a request without a principal (handlers extract it
//! and fail closed when the middleware is missing), put a token, secret or
//! database message in a reply, or log a secret. The development mode
//! (`--insecure-open-access`) makes every caller an admin and says so on
//! every response (`x-canopy-insecure-open-access: true`), in the log and
//! on the dashboard.

pub mod audit;
pub mod config;
pub mod http_layer;
pub mod login;
pub mod oidc;
pub mod principal;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sqlx::PgPool;

pub use principal::{AuthMethod, Principal, Role, Scope};

use config::AuthConfig;
use oidc::OidcVerifier;

/// Header on every response in the development mode.
pub const OPEN_ACCESS_HEADER: &str = "x-canopy-insecure-open-access";
/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "canopy_session";

/// Why a caller is not authenticated (answered as 401; logged, not sent).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials.
    #[error("no credentials")]
    Missing,
    /// A JWT was refused.
    #[error(transparent)]
    Jwt(#[from] oidc::TokenError),
    /// A JWT was given but no OIDC issuer is configured.
    #[error("a JWT was given but no OIDC issuer is configured")]
    NoIssuer,
    /// The token's claims do not give a usable role and scope.
    #[error(transparent)]
    Claims(#[from] principal::ScopeError),
    /// An API token was refused.
    #[error(transparent)]
    ApiToken(#[from] tokens::TokenStoreError),
    /// Unknown or expired session.
    #[error("unknown or expired session")]
    Session,
    /// The Authorization header is not `Bearer <token>`.
    #[error("expected an Authorization header 'Bearer <token>'")]
    Scheme,
}

struct Session {
    principal: Principal,
    expires: Instant,
}

enum Mode {
    Open,
    Enforced { oidc: Option<Arc<OidcVerifier>>, pool: PgPool },
}

struct Inner {
    mode: Mode,
    sessions: Mutex<HashMap<Vec<u8>, Session>>,
    pending_logins: Mutex<HashMap<String, login::PendingLogin>>,
}

/// The access control of one aggregator (cheap to clone).
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("open", &self.is_open()).finish()
    }
}

fn session_key(id: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, id.as_bytes()).as_ref().to_vec()
}

impl Auth {
    fn with_mode(mode: Mode) -> Auth {
        Auth {
            inner: Arc::new(Inner { mode, sessions: Mutex::default(), pending_logins: Mutex::default() }),
        }
    }

    /// The development mode: every caller is an admin. Logs a warning.
    pub fn insecure_open_access() -> Auth {
        tracing::warn!(
            "INSECURE OPEN ACCESS: the HTTP API, gRPC API, dashboard and /metrics answer anyone as an admin; \
             for demos and tests only (--insecure-open-access)"
        );
        Auth::with_mode(Mode::Open)
    }

    /// Enforced access over `pool` (API tokens) and the verifier (OIDC), if any.
    pub fn enforced(oidc: Option<OidcVerifier>, pool: PgPool) -> Auth {
        Auth::with_mode(Mode::Enforced { oidc: oidc.map(Arc::new), pool })
    }

    /// From the validated configuration: OIDC discovery happens here, so an
    /// unreachable or wrong issuer stops start-up with its URL.
    pub async fn from_config(config: &AuthConfig, pool: PgPool) -> Result<Auth, oidc::OidcError> {
        match config {
            AuthConfig::InsecureOpenAccess => Ok(Auth::insecure_open_access()),
            AuthConfig::Enforced { oidc } => {
                let verifier = match oidc {
                    Some(c) => Some(OidcVerifier::discover(c.clone()).await?),
                    None => None,
                };
                Ok(Auth::enforced(verifier, pool))
            }
        }
    }

    /// True in the development mode.
    pub fn is_open(&self) -> bool {
        matches!(self.inner.mode, Mode::Open)
    }

    /// The OIDC verifier, when configured.
    pub fn oidc(&self) -> Option<&OidcVerifier> {
        match &self.inner.mode {
            Mode::Enforced { oidc: Some(v), .. } => Some(v),
            _ => None,
        }
    }

    /// The principal of a request: its `Authorization` header (a bearer JWT
    /// or API token), else its session cookie.
    pub async fn authenticate(&self, authorization: Option<&str>, cookie: Option<&str>) -> Result<Principal, AuthError> {
        let (oidc, pool) = match &self.inner.mode {
            Mode::Open => return Ok(Principal::insecure_open_access()),
            Mode::Enforced { oidc, pool } => (oidc, pool),
        };
        if let Some(value) = authorization {
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(AuthError::Scheme)?;
            if token.starts_with(tokens::PREFIX) {
                return Ok(tokens::authenticate(pool, token).await?);
            }
            let verifier = oidc.as_ref().ok_or(AuthError::NoIssuer)?;
            let claims = verifier.validate(token).await?;
            return Ok(principal::from_claims(&claims, &verifier.config().claims, AuthMethod::Jwt)?);
        }
        if let Some(id) = cookie.and_then(session_cookie) {
            let mut sessions = self.inner.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let key = session_key(id);
            match sessions.get(&key) {
                Some(s) if s.expires > Instant::now() => return Ok(s.principal.clone()),
                Some(_) => {
                    sessions.remove(&key);
                    return Err(AuthError::Session);
                }
                None => return Err(AuthError::Session),
            }
        }
        Err(AuthError::Missing)
    }

    /// The principal of a gRPC request (its `authorization` metadata).
    pub async fn authenticate_grpc(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Principal, tonic::Status> {
        let header = metadata.get("authorization").and_then(|v| v.to_str().ok());
        self.authenticate(header, None).await.map_err(|e| {
            tracing::info!(reason = %e, "gRPC request refused: not authenticated");
            tonic::Status::unauthenticated("authentication required")
        })
    }

    /// Starts a session for `principal`; returns its id (the cookie's value).
    pub(crate) fn start_session(&self, principal: Principal, ttl: std::time::Duration) -> String {
        let id = tokens::random_hex(32);
        let mut sessions = self.inner.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(session_key(&id), Session { principal, expires: now + ttl });
        id
    }

    /// Ends a session.
    pub(crate) fn end_session(&self, id: &str) {
        self.inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&session_key(id));
    }

    pub(crate) fn pending_logins(&self) -> &Mutex<HashMap<String, login::PendingLogin>> {
        &self.inner.pending_logins
    }
}

/// The session id in a `Cookie` header.
pub fn session_cookie(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}
