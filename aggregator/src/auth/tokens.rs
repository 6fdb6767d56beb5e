//! API tokens for machines: random, stored only hashed, scoped, expiring,
//! revocable (table `api_tokens`, migration 0021).
//!
//! A token reads `canopy_<id>_<secret>`: `id` (16 hex digits) finds the row,
//! `secret` is 32 random bytes (base64url) of which only the SHA-256 is
//! stored. A fast hash is enough: the secret has 256 bits of entropy, so
//! unlike a password it cannot be guessed from its hash by trying
//! candidates; the comparison is constant-time. Creation and revocation
//! record an audit entry in the same transaction. This module never stores
//! or logs a secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

use super::audit;
use super::principal::{self, AuthMethod, Principal, Role, Scope, ScopeError};

/// Prefix of every API token.
pub const PREFIX: &str = "canopy_";

/// A token refused or a store failure.
#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    /// Not a Canopy API token, or no such token.
    #[error("unknown API token")]
    Unknown,
    /// The token has expired.
    #[error("API token {0} has expired")]
    Expired(String),
    /// The token was revoked.
    #[error("API token {0} was revoked")]
    Revoked(String),
    /// Role and scope do not fit.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// Bad input to create or revoke.
    #[error("{0}")]
    BadInput(String),
    /// The database failed.
    #[error("database error on api_tokens: {0}")]
    Sql(#[from] sqlx::Error),
}

/// What a new token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// A name saying what uses it.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Scope.
    pub scope: Scope,
    /// Days until it expires (1..=366).
    pub expires_in_days: u32,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Id (the middle part of the token).
    pub token_id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Scope.
    pub scope: Scope,
    /// Who created it.
    pub created_by: String,
    /// Expiry, Unix seconds.
    pub expires_at_unix_s: i64,
    /// Revocation, Unix seconds.
    pub revoked_at_unix_s: Option<i64>,
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec()
}

fn equal_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0_u8; N];
    SystemRandom::new().fill(&mut buf).expect("the operating system's random source");
    buf
}

/// A random id for requests and sessions (`n` bytes, hex).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0_u8; n];
    SystemRandom::new().fill(&mut buf).expect("the operating system's random source");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn scope_json(role: &str, scope: &Scope, expires: i64, revoked: Option<i64>) -> Value {
    json!({
        "role": role, "ous": scope.ous, "accounts": scope.accounts, "teams": scope.teams,
        "expires_at_unix_s": expires, "revoked_at_unix_s": revoked,
    })
}

/// Creates a token; returns its id and the full token (shown once).
pub async fn create(pool: &PgPool, actor: &str, new: &NewToken) -> Result<(String, String), TokenStoreError> {
    principal::check(new.role, &new.scope)?;
    if new.name.trim().is_empty() {
        return Err(TokenStoreError::BadInput("name: expected a non-empty name".into()));
    }
    if !(1..=366).contains(&new.expires_in_days) {
        return Err(TokenStoreError::BadInput(format!(
            "expires_in_days: expected 1 to 366, found {}",
            new.expires_in_days
        )));
    }
    let id = random_hex(8);
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let mut tx = pool.begin().await?;
    let expires: i64 = sqlx::query_scalar(
        "INSERT INTO api_tokens (token_id, secret_sha256, name, role, scope_ous, scope_accounts, scope_teams, \
         created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(days => $9)) \
         RETURNING extract(epoch FROM expires_at)::bigint",
    )
    .bind(&id)
    .bind(sha256(secret.as_bytes()))
    .bind(&new.name)
    .bind(new.role.name())
    .bind(&new.scope.ous)
    .bind(&new.scope.accounts)
    .bind(&new.scope.teams)
    .bind(actor)
    .bind(new.expires_in_days as i32)
    .fetch_one(&mut *tx)
    .await?;
    let mut after = scope_json(new.role.name(), &new.scope, expires, None);
    after["name"] = json!(new.name);
    audit::record(&mut tx, actor, "token.create", &format!("token:{id}"), None, Some(&after)).await?;
    tx.commit().await?;
    Ok((id.clone(), format!("{PREFIX}{id}_{secret}")))
}

fn info(r: &sqlx::postgres::PgRow) -> Result<TokenInfo, sqlx::Error> {
    Ok(TokenInfo {
        token_id: r.try_get("token_id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        scope: Scope {
            ous: r.try_get("scope_ous")?,
            accounts: r.try_get("scope_accounts")?,
            teams: r.try_get("scope_teams")?,
        },
        created_by: r.try_get("created_by")?,
        expires_at_unix_s: r.try_get("expires")?,
        revoked_at_unix_s: r.try_get("revoked")?,
    })
}

const SELECT: &str = "SELECT token_id, name, role, scope_ous, scope_accounts, scope_teams, created_by, \
    extract(epoch FROM expires_at)::bigint AS expires, extract(epoch FROM revoked_at)::bigint AS revoked, \
    secret_sha256, (expires_at <= now()) AS expired FROM api_tokens";

/// Every token, newest first, without secrets.
pub async fn list(pool: &PgPool) -> Result<Vec<TokenInfo>, TokenStoreError> {
    let rows = sqlx::query(&format!("{SELECT} ORDER BY created_at DESC")).fetch_all(pool).await?;
    Ok(rows.iter().map(info).collect::<Result<_, _>>()?)
}

/// Revokes a token (idempotent: revoking twice keeps the first instant).
pub async fn revoke(pool: &PgPool, actor: &str, token_id: &str) -> Result<(), TokenStoreError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!("{SELECT} WHERE token_id = $1 FOR UPDATE"))
        .bind(token_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| TokenStoreError::BadInput(format!("token id {token_id:?}: no such token")))?;
    let before = info(&row)?;
    let revoked: i64 = sqlx::query_scalar(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE token_id = $1 \
         RETURNING extract(epoch FROM revoked_at)::bigint",
    )
    .bind(token_id)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "token.revoke",
        &format!("token:{token_id}"),
        Some(&scope_json(&before.role, &before.scope, before.expires_at_unix_s, before.revoked_at_unix_s)),
        Some(&scope_json(&before.role, &before.scope, before.expires_at_unix_s, Some(revoked))),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The principal of a presented token.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Principal, TokenStoreError> {
    let rest = token.strip_prefix(PREFIX).ok_or(TokenStoreError::Unknown)?;
    let (id, secret) = rest.split_once('_').ok_or(TokenStoreError::Unknown)?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TokenStoreError::Unknown);
    }
    let row = sqlx::query(&format!("{SELECT} WHERE token_id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(TokenStoreError::Unknown)?;
    let stored: Vec<u8> = row.try_get("secret_sha256")?;
    if !equal_constant_time(&stored, &sha256(secret.as_bytes())) {
        return Err(TokenStoreError::Unknown);
    }
    let token = info(&row)?;
    if token.revoked_at_unix_s.is_some() {
        return Err(TokenStoreError::Revoked(token.token_id));
    }
    if row.try_get::<bool, _>("expired")? {
        return Err(TokenStoreError::Expired(token.token_id));
    }
    let role = Role::parse(&token.role).ok_or_else(|| ScopeError::UnknownRole(token.role.clone()))?;
    principal::check(role, &token.scope)?;
    Ok(Principal { subject: format!("token:{}", token.token_id), role, scope: token.scope, method: AuthMethod::ApiToken })
}
