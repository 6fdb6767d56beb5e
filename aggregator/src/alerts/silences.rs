//! Silences: while a silence is active (`starts_at <= now < ends_at`), an
//! alert it matches is recorded (history event `silenced`) but not
//! notified; when the silence expires and the alert still fires, the next
//! evaluation notifies it. A silence matches when every matcher it sets
//! (budget, team, account, kind) equals the alert's.

use serde_json::{Value, json};
use sqlx::{PgPool, Row};

use super::budgets::Budget;
use super::{AlertError, FieldError};
use crate::auth::audit;

/// A silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// Id (0 before it is stored).
    pub silence_id: i64,
    /// Matches one budget.
    pub budget_id: Option<i64>,
    /// Matches budgets scoped to this team.
    pub team: Option<String>,
    /// Matches budgets scoped to this account.
    pub account_id: Option<String>,
    /// Matches one alert kind.
    pub kind: Option<String>,
    /// Start, Unix seconds.
    pub starts_unix_s: i64,
    /// Expiry, Unix seconds.
    pub ends_unix_s: i64,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
}

impl Silence {
    /// True when active at `now` and matching an alert of `kind` on `budget`.
    pub fn matches(&self, budget: &Budget, kind: &str, now_unix_s: i64) -> bool {
        self.starts_unix_s <= now_unix_s
            && now_unix_s < self.ends_unix_s
            && self.budget_id.is_none_or(|b| b == budget.budget_id)
            && self.team.as_ref().is_none_or(|t| budget.spec.scope.team.as_ref() == Some(t))
            && self.account_id.as_ref().is_none_or(|a| budget.spec.scope.account_id.as_ref() == Some(a))
            && self.kind.as_ref().is_none_or(|k| k == kind)
    }
}

const KINDS: [&str; 4] = ["threshold", "forecast_overshoot", "burn_rate", "anomaly"];

/// Parses a silence body; `now_unix_s` is the default start.
pub fn parse_silence(body: &Value, now_unix_s: i64) -> Result<Silence, FieldError> {
    let obj = body.as_object().ok_or_else(|| FieldError::new("body", "expected a JSON object"))?;
    let known = ["budget_id", "team", "account_id", "kind", "starts_unix_s", "ends_unix_s", "duration_s", "comment", "created_by"];
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(FieldError::new(k.clone(), format!("unknown field; expected one of {known:?}")));
    }
    let text = |f: &str| -> Result<Option<String>, FieldError> {
        match obj.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => Ok(Some(s.clone())),
            Some(other) => Err(FieldError::new(f, format!("expected a non-empty string of at most 256 bytes, found {other}"))),
        }
    };
    let int = |f: &str| -> Result<Option<i64>, FieldError> {
        match obj.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| FieldError::new(f, format!("expected an integer, found {v}"))),
        }
    };
    let budget_id = int("budget_id")?;
    let team = text("team")?;
    let account_id = text("account_id")?;
    if let Some(a) = &account_id
        && !crate::ingest::is_account_id(a)
    {
        return Err(FieldError::new("account_id", format!("expected a 12-digit account id, found {a:?}")));
    }
    let kind = text("kind")?;
    if let Some(k) = &kind
        && !KINDS.contains(&k.as_str())
    {
        return Err(FieldError::new("kind", format!("expected one of {KINDS:?}, found {k:?}")));
    }
    if budget_id.is_none() && team.is_none() && account_id.is_none() && kind.is_none() {
        return Err(FieldError::new("budget_id", "a silence needs at least one matcher: budget_id, team, account_id or kind"));
    }
    let starts_unix_s = int("starts_unix_s")?.unwrap_or(now_unix_s);
    let ends_unix_s = match (int("ends_unix_s")?, int("duration_s")?) {
        (Some(_), Some(_)) => return Err(FieldError::new("duration_s", "give ends_unix_s or duration_s, not both")),
        (Some(e), None) => e,
        (None, Some(d)) if d > 0 => starts_unix_s.saturating_add(d),
        (None, Some(d)) => return Err(FieldError::new("duration_s", format!("expected a positive duration, found {d}"))),
        (None, None) => return Err(FieldError::new("ends_unix_s", "required (or duration_s): a silence expires")),
    };
    if ends_unix_s <= starts_unix_s {
        return Err(FieldError::new("ends_unix_s", format!("expected an expiry after the start {starts_unix_s}, found {ends_unix_s}")));
    }
    if ends_unix_s <= now_unix_s {
        return Err(FieldError::new("ends_unix_s", format!("expected an expiry in the future, found {ends_unix_s}")));
    }
    if ends_unix_s - starts_unix_s > 366 * 86_400 {
        return Err(FieldError::new("ends_unix_s", "expected a silence of at most 366 days"));
    }
    Ok(Silence {
        silence_id: 0,
        budget_id,
        team,
        account_id,
        kind,
        starts_unix_s,
        ends_unix_s,
        comment: text("comment")?.unwrap_or_default(),
        created_by: text("created_by")?.unwrap_or_default(),
    })
}

/// The API form.
pub fn silence_json(s: &Silence, now_unix_s: i64) -> Value {
    json!({
        "silence_id": s.silence_id, "budget_id": s.budget_id, "team": s.team, "account_id": s.account_id,
        "kind": s.kind, "starts_unix_s": s.starts_unix_s, "ends_unix_s": s.ends_unix_s,
        "active": s.starts_unix_s <= now_unix_s && now_unix_s < s.ends_unix_s,
        "comment": s.comment, "created_by": s.created_by,
    })
}

/// Stores a silence after checking its budget exists, audited in the same
/// transaction.
pub async fn create(pool: &PgPool, actor: &str, s: &Silence) -> Result<Silence, AlertError> {
    if let Some(b) = s.budget_id {
        let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM budgets WHERE budget_id = $1)")
            .bind(b)
            .fetch_one(pool)
            .await?;
        if !known {
            return Err(FieldError::new("budget_id", format!("unknown budget {b}")).into());
        }
    }
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO alert_silences (budget_id, team, account_id, kind, starts_at, ends_at, comment, created_by)
         VALUES ($1, $2, $3, $4, to_timestamp($5), to_timestamp($6), $7, $8) RETURNING silence_id",
    )
    .bind(s.budget_id)
    .bind(&s.team)
    .bind(&s.account_id)
    .bind(&s.kind)
    .bind(s.starts_unix_s as f64)
    .bind(s.ends_unix_s as f64)
    .bind(&s.comment)
    .bind(&s.created_by)
    .fetch_one(&mut *tx)
    .await?;
    let stored = Silence { silence_id: id, ..s.clone() };
    let after = silence_json(&stored, s.starts_unix_s);
    audit::record(&mut tx, actor, "silence.create", &format!("silence:{id}"), None, Some(&after)).await?;
    tx.commit().await?;
    Ok(stored)
}

/// Silences not yet expired at `now` (active or future), or all when `include_expired`.
pub async fn list(pool: &PgPool, now_unix_s: i64, include_expired: bool) -> Result<Vec<Silence>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT silence_id, budget_id, team, account_id, kind, extract(epoch FROM starts_at)::bigint AS s,
                extract(epoch FROM ends_at)::bigint AS e, comment, created_by
         FROM alert_silences WHERE $2 OR ends_at > to_timestamp($1) ORDER BY silence_id",
    )
    .bind(now_unix_s as f64)
    .bind(include_expired)
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Expires a silence now (kept in the list of expired ones), audited with
/// its state before and after.
pub async fn expire(pool: &PgPool, actor: &str, silence_id: i64, now_unix_s: i64) -> Result<(), AlertError> {
    let mut tx = pool.begin().await?;
    let before = one(&mut tx, silence_id).await?;
    let n = sqlx::query(
        "UPDATE alert_silences SET ends_at = greatest(starts_at + interval '1 microsecond', to_timestamp($2))
         WHERE silence_id = $1 AND ends_at > to_timestamp($2)",
    )
    .bind(silence_id)
    .bind(now_unix_s as f64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let (Some(before), 1..) = (before, n) else {
        return Err(AlertError::NotFound(format!("active silence {silence_id}")));
    };
    let after = one(&mut tx, silence_id).await?;
    audit::record(
        &mut tx,
        actor,
        "silence.expire",
        &format!("silence:{silence_id}"),
        Some(&silence_json(&before, now_unix_s)),
        after.map(|a| silence_json(&a, now_unix_s)).as_ref(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One silence, read in `tx`.
async fn one(tx: &mut sqlx::PgConnection, silence_id: i64) -> Result<Option<Silence>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT silence_id, budget_id, team, account_id, kind, extract(epoch FROM starts_at)::bigint AS s,
                extract(epoch FROM ends_at)::bigint AS e, comment, created_by
         FROM alert_silences WHERE silence_id = $1",
    )
    .bind(silence_id)
    .fetch_optional(tx)
    .await?;
    row.as_ref().map(from_row).transpose()
}

fn from_row(r: &sqlx::postgres::PgRow) -> Result<Silence, sqlx::Error> {
    Ok(Silence {
        silence_id: r.try_get("silence_id")?,
        budget_id: r.try_get("budget_id")?,
        team: r.try_get("team")?,
        account_id: r.try_get("account_id")?,
        kind: r.try_get("kind")?,
        starts_unix_s: r.try_get("s")?,
        ends_unix_s: r.try_get("e")?,
        comment: r.try_get("comment")?,
        created_by: r.try_get("created_by")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_silences_name_the_field() {
        let f = |body: Value| parse_silence(&body, 1_000).unwrap_err().field;
        assert_eq!(f(json!({ "duration_s": 60 })), "budget_id");
        assert_eq!(f(json!({ "team": "web" })), "ends_unix_s");
        assert_eq!(f(json!({ "team": "web", "ends_unix_s": 999 })), "ends_unix_s");
        assert_eq!(f(json!({ "team": "web", "duration_s": -5 })), "duration_s");
        assert_eq!(f(json!({ "kind": "loud", "duration_s": 5 })), "kind");
        assert_eq!(f(json!({ "account_id": "1", "duration_s": 5 })), "account_id");
        assert_eq!(f(json!({ "budget_id": "x", "duration_s": 5 })), "budget_id");
        let ok = parse_silence(&json!({ "team": "web", "duration_s": 60 }), 1_000).unwrap();
        assert_eq!((ok.starts_unix_s, ok.ends_unix_s), (1_000, 1_060));
    }
}
