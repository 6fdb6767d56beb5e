//! OIDC: discovery, the issuer's JWKS and JWT validation.
//!
//! Owns fetching `<issuer>/.well-known/openid-configuration` and the JWKS
//! it names, and validating bearer JWTs against them (signature with the
//! key named by `kid`, issuer, audience, expiry, not-before). Signature
//! checking and claim validation are `jsonwebtoken`'s (a maintained crate,
//! on `ring`, which the workspace already uses for TLS): this module never
//! parses or verifies signatures itself, and never accepts a symmetric
//! (`HS*`) algorithm, a token without `kid`, `exp`, `iss` or `aud`.
//!
//! Key rotation: a token naming a key id the cached set lacks triggers one
//! JWKS fetch (at most one per `jwks_refresh_cooldown`); a set older than
//! `jwks_max_age` is fetched again before use, so keys the issuer removed
//! stop working.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::config::OidcConfig;

/// Algorithms accepted (asymmetric only).
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Why the issuer could not be used at start-up, or a JWKS fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery or JWKS could not be fetched.
    #[error("OIDC issuer {url}: {message}")]
    Fetch {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The discovery document names another issuer.
    #[error("OIDC issuer {configured}: the discovery document names issuer {found:?}; expected the configured one")]
    IssuerMismatch {
        /// Configured issuer.
        configured: String,
        /// Issuer in the document.
        found: String,
    },
}

/// Why a JWT was refused (answered as 401; the reason is logged, not sent).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or its header is unusable.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Algorithm not accepted.
    #[error("algorithm {0:?} not accepted")]
    Algorithm(Algorithm),
    /// No key with this id, even after refreshing the JWKS.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// Signature, issuer, audience, expiry or not-before failed.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The JWKS could not be refreshed.
    #[error(transparent)]
    Jwks(#[from] OidcError),
}

/// The endpoints discovery found.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// `issuer`.
    pub issuer: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// `authorization_endpoint`.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// `token_endpoint`.
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

struct Keys {
    set: JwkSet,
    fetched_at: Instant,
    last_unknown_kid_refresh: Option<Instant>,
}

/// Validates JWTs of one issuer.
pub struct OidcVerifier {
    config: OidcConfig,
    discovery: Discovery,
    http: reqwest::Client,
    keys: Mutex<Keys>,
    refreshes: std::sync::atomic::AtomicU64,
}

async fn fetch_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T, OidcError> {
    let fail = |message: String| OidcError::Fetch { url: url.to_owned(), message };
    let resp = http.get(url).send().await.map_err(|e| fail(format!("request failed: {e}")))?;
    if !resp.status().is_success() {
        return Err(fail(format!("expected HTTP 200, found {}", resp.status())));
    }
    let body = resp.bytes().await.map_err(|e| fail(format!("reading the body: {e}")))?;
    serde_json::from_slice(&body).map_err(|e| fail(format!("expected JSON of the right shape: {e}")))
}

impl OidcVerifier {
    /// Reads the issuer's discovery document and JWKS (start-up: an
    /// unreachable or wrong issuer is an error naming its URL).
    pub async fn discover(config: OidcConfig) -> Result<OidcVerifier, OidcError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Fetch { url: config.issuer.clone(), message: e.to_string() })?;
        let url = format!("{}/.well-known/openid-configuration", config.issuer);
        let discovery: Discovery = fetch_json(&http, &url).await?;
        if discovery.issuer.trim_end_matches('/') != config.issuer {
            return Err(OidcError::IssuerMismatch { configured: config.issuer.clone(), found: discovery.issuer });
        }
        let set: JwkSet = fetch_json(&http, &discovery.jwks_uri).await?;
        tracing::info!(issuer = %config.issuer, keys = set.keys.len(), "OIDC issuer discovered");
        Ok(OidcVerifier {
            config,
            discovery,
            http,
            keys: Mutex::new(Keys { set, fetched_at: Instant::now(), last_unknown_kid_refresh: None }),
            refreshes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The discovered endpoints.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// JWKS fetches after start-up (rotation, age).
    pub fn jwks_refreshes(&self) -> u64 {
        self.refreshes.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn refresh(&self, keys: &mut Keys) -> Result<(), OidcError> {
        let set: JwkSet = fetch_json(&self.http, &self.discovery.jwks_uri).await?;
        tracing::info!(issuer = %self.config.issuer, keys = set.keys.len(), "JWKS refreshed");
        keys.set = set;
        keys.fetched_at = Instant::now();
        self.refreshes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut keys = self.keys.lock().await;
        if keys.fetched_at.elapsed() > self.config.jwks_max_age {
            self.refresh(&mut keys).await?;
        }
        if keys.set.find(kid).is_none() {
            let cooled = keys
                .last_unknown_kid_refresh
                .is_none_or(|t| t.elapsed() >= self.config.jwks_refresh_cooldown);
            if cooled {
                keys.last_unknown_kid_refresh = Some(Instant::now());
                self.refresh(&mut keys).await?;
            }
        }
        let jwk = keys.set.find(kid).ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))?;
        DecodingKey::from_jwk(jwk).map_err(TokenError::Invalid)
    }

    /// The claims of a valid token whose audience is `audience` (the API's,
    /// or the dashboard client's for ID tokens).
    pub async fn validate_for(&self, token: &str, audience: &str) -> Result<Value, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or_else(|| TokenError::Malformed("no kid in the header".into()))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer, &format!("{}/", self.config.issuer)]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway.as_secs();
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)?;
        Ok(data.claims)
    }

    /// The claims of a valid API bearer token.
    pub async fn validate(&self, token: &str) -> Result<Value, TokenError> {
        self.validate_for(token, &self.config.audience).await
    }
}
