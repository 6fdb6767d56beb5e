//! The audit log of admin actions: who, what, when, before and after, in
//! the append-only `audit_log` table (migration 0021: UPDATE, DELETE and
//! TRUNCATE raise an error). Every write an admin makes records one entry
//! in the same transaction as the write. This module only appends and
//! reads; it never changes or removes an entry.

use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};

/// One entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Sequence number.
    pub audit_id: i64,
    /// When, Unix seconds (UTC).
    pub at_unix_s: i64,
    /// Who (`jwt:<sub>`, `token:<id>`, `cli:<user>`).
    pub actor: String,
    /// What (`token.create`, `token.revoke`, …).
    pub action: String,
    /// The object acted on.
    pub target: String,
    /// State before (none for a creation).
    pub before: Option<Value>,
    /// State after (none for a deletion).
    pub after: Option<Value>,
}

/// Appends one entry inside the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (actor, action, target, before, after) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)")
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(before.map(Value::to_string))
        .bind(after.map(Value::to_string))
        .execute(conn)
        .await?;
    Ok(())
}

/// The newest `limit` entries, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT audit_id, extract(epoch FROM at)::bigint AS at, actor, action, target, before::text AS before, after::text AS after \
         FROM audit_log ORDER BY audit_id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                audit_id: r.try_get("audit_id")?,
                at_unix_s: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                before: json(r.try_get("before")?),
                after: json(r.try_get("after")?),
            })
        })
        .collect()
}

fn json(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}
