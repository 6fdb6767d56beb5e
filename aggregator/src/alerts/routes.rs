//! Named notification routes: where an alert goes (PagerDuty routing key,
//! email recipients, webhook URL and signing secret), how many
//! notifications per hour the route takes, and its quiet hours (UTC) during
//! which everything but critical triggers and resolves waits.

use serde_json::{Map, Value, json};
use sqlx::{PgPool, Row};

use super::{AlertError, FieldError};
use crate::auth::audit;

/// Where a route delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// PagerDuty Events API v2 with this integration (routing) key.
    PagerDuty {
        /// Integration key.
        routing_key: String,
    },
    /// Email to these addresses.
    Email {
        /// Recipients.
        to: Vec<String>,
    },
    /// Slack-compatible JSON POSTed to `url`, signed with HMAC-SHA256.
    Webhook {
        /// Receiver URL.
        url: String,
        /// Signing secret.
        secret: String,
    },
}

/// A stored route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Name (`[a-z0-9][a-z0-9_-]*`).
    pub name: String,
    /// Destination.
    pub target: Target,
    /// Notifications per rolling hour, when limited.
    pub max_per_hour: Option<u32>,
    /// Quiet hours `[start, end)` in UTC hours, wrapping midnight when start > end.
    pub quiet_hours_utc: Option<(u32, u32)>,
}

impl Route {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self.target {
            Target::PagerDuty { .. } => "pagerduty",
            Target::Email { .. } => "email",
            Target::Webhook { .. } => "webhook",
        }
    }

    /// True when `now_unix_s` lies in the route's quiet hours.
    pub fn is_quiet(&self, now_unix_s: i64) -> bool {
        let Some((start, end)) = self.quiet_hours_utc else { return false };
        let hour = (now_unix_s.rem_euclid(86_400) / 3_600) as u32;
        if start <= end { (start..end).contains(&hour) } else { hour >= start || hour < end }
    }

    /// Seconds until the quiet hours end (0 when not quiet).
    pub fn quiet_remaining_s(&self, now_unix_s: i64) -> i64 {
        if !self.is_quiet(now_unix_s) {
            return 0;
        }
        let (_, end) = self.quiet_hours_utc.unwrap_or((0, 0));
        let day_s = now_unix_s.rem_euclid(86_400);
        (i64::from(end) * 3_600 - day_s).rem_euclid(86_400)
    }
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

fn str_field<'a>(obj: &'a Map<String, Value>, field: &str, path: &str) -> Result<&'a str, FieldError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        Some(other) => Err(FieldError::new(path, format!("expected a non-empty string, found {other}"))),
        None => Err(FieldError::new(path, "required")),
    }
}

fn hour_field(obj: &Map<String, Value>, field: &str) -> Result<Option<u32>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|h| *h < 24)
            .map(|h| Some(h as u32))
            .ok_or_else(|| FieldError::new(field, format!("expected an hour 0-23 (UTC), found {v}"))),
    }
}

/// Parses a route body for route `name` (the path parameter).
pub fn parse_route(name: &str, body: &Value) -> Result<Route, FieldError> {
    if !valid_name(name) {
        return Err(FieldError::new("name", format!("expected [a-z0-9][a-z0-9_-]{{0,62}}, found {name:?}")));
    }
    let obj = body.as_object().ok_or_else(|| FieldError::new("body", "expected a JSON object"))?;
    let known = ["kind", "routing_key", "to", "url", "secret", "max_per_hour", "quiet_start_hour_utc", "quiet_end_hour_utc"];
    if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(FieldError::new(k.clone(), format!("unknown field; expected one of {known:?}")));
    }
    let target = match str_field(obj, "kind", "kind")? {
        "pagerduty" => {
            let key = str_field(obj, "routing_key", "routing_key")?;
            if key.len() != 32 || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(FieldError::new("routing_key", "expected a 32-character integration key"));
            }
            Target::PagerDuty { routing_key: key.to_owned() }
        }
        "email" => {
            let items = obj.get("to").and_then(Value::as_array).ok_or_else(|| FieldError::new("to", "expected an array of addresses"))?;
            if items.is_empty() || items.len() > 50 {
                return Err(FieldError::new("to", format!("expected 1 to 50 addresses, found {}", items.len())));
            }
            let mut to = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let addr = item.as_str().filter(|a| a.parse::<lettre::Address>().is_ok()).ok_or_else(|| {
                    FieldError::new(format!("to[{i}]"), format!("expected an email address, found {item}"))
                })?;
                to.push(addr.to_owned());
            }
            Target::Email { to }
        }
        "webhook" => {
            let url = str_field(obj, "url", "url")?;
            if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(url).is_err() {
                return Err(FieldError::new("url", format!("expected an http(s) URL, found {url:?}")));
            }
            let secret = str_field(obj, "secret", "secret")?;
            if secret.len() < 16 {
                return Err(FieldError::new("secret", "expected a signing secret of at least 16 bytes"));
            }
            Target::Webhook { url: url.to_owned(), secret: secret.to_owned() }
        }
        other => {
            return Err(FieldError::new("kind", format!("expected pagerduty, email or webhook, found {other:?}")));
        }
    };
    let max_per_hour = match obj.get("max_per_hour") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| FieldError::new("max_per_hour", format!("expected 1 to 10000, found {v}")))? as u32,
        ),
    };
    let quiet_hours_utc = match (hour_field(obj, "quiet_start_hour_utc")?, hour_field(obj, "quiet_end_hour_utc")?) {
        (None, None) => None,
        (Some(s), Some(e)) if s != e => Some((s, e)),
        (Some(_), Some(_)) => return Err(FieldError::new("quiet_end_hour_utc", "expected an end hour other than the start")),
        (Some(_), None) => return Err(FieldError::new("quiet_end_hour_utc", "required with quiet_start_hour_utc")),
        (None, Some(_)) => return Err(FieldError::new("quiet_start_hour_utc", "required with quiet_end_hour_utc")),
    };
    Ok(Route { name: name.to_owned(), target, max_per_hour, quiet_hours_utc })
}

fn config_json(target: &Target) -> Value {
    match target {
        Target::PagerDuty { routing_key } => json!({ "routing_key": routing_key }),
        Target::Email { to } => json!({ "to": to }),
        Target::Webhook { url, secret } => json!({ "url": url, "secret": secret }),
    }
}

/// The API form (secrets and keys are not echoed in full).
pub fn route_json(r: &Route) -> Value {
    let target = match &r.target {
        Target::PagerDuty { routing_key } => json!({ "routing_key_suffix": &routing_key[routing_key.len().saturating_sub(4)..] }),
        Target::Email { to } => json!({ "to": to }),
        Target::Webhook { url, .. } => json!({ "url": url, "secret": "(set)" }),
    };
    json!({
        "name": r.name, "kind": r.kind(), "target": target, "max_per_hour": r.max_per_hour,
        "quiet_start_hour_utc": r.quiet_hours_utc.map(|q| q.0), "quiet_end_hour_utc": r.quiet_hours_utc.map(|q| q.1),
    })
}

fn from_row(row: &sqlx::postgres::PgRow) -> Result<Route, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let config: Value = row.try_get("config")?;
    let text = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let target = match kind.as_str() {
        "pagerduty" => Target::PagerDuty { routing_key: text("routing_key") },
        "email" => Target::Email {
            to: config
                .get("to")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        },
        _ => Target::Webhook { url: text("url"), secret: text("secret") },
    };
    let max: Option<i32> = row.try_get("max_per_hour")?;
    let qs: Option<i16> = row.try_get("quiet_start_hour_utc")?;
    let qe: Option<i16> = row.try_get("quiet_end_hour_utc")?;
    Ok(Route {
        name: row.try_get("name")?,
        target,
        max_per_hour: max.map(|m| m as u32),
        quiet_hours_utc: qs.zip(qe).map(|(s, e)| (s as u32, e as u32)),
    })
}

/// Every route.
pub async fn list(pool: &PgPool) -> Result<Vec<Route>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM alert_routes ORDER BY name").fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

/// One route, if it exists.
pub async fn get(pool: &PgPool, name: &str) -> Result<Option<Route>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM alert_routes WHERE name = $1").bind(name).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// Creates or replaces a route, audited (secrets redacted) with its state
/// before and after in the same transaction.
pub async fn put(pool: &PgPool, actor: &str, route: &Route) -> Result<(), AlertError> {
    let mut tx = pool.begin().await?;
    let before = sqlx::query("SELECT * FROM alert_routes WHERE name = $1 FOR UPDATE")
        .bind(&route.name)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()?;
    sqlx::query(
        "INSERT INTO alert_routes (name, kind, config, max_per_hour, quiet_start_hour_utc, quiet_end_hour_utc)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, config = EXCLUDED.config,
             max_per_hour = EXCLUDED.max_per_hour, quiet_start_hour_utc = EXCLUDED.quiet_start_hour_utc,
             quiet_end_hour_utc = EXCLUDED.quiet_end_hour_utc, updated_at = now()",
    )
    .bind(&route.name)
    .bind(route.kind())
    .bind(config_json(&route.target))
    .bind(route.max_per_hour.map(|m| m as i32))
    .bind(route.quiet_hours_utc.map(|q| q.0 as i16))
    .bind(route.quiet_hours_utc.map(|q| q.1 as i16))
    .execute(&mut *tx)
    .await?;
    let action = if before.is_some() { "alert_route.update" } else { "alert_route.create" };
    audit::record(
        &mut tx,
        actor,
        action,
        &format!("alert_route:{}", route.name),
        before.as_ref().map(route_json).as_ref(),
        Some(&route_json(route)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a route (audited); refused while a budget names it.
pub async fn delete(pool: &PgPool, actor: &str, name: &str) -> Result<(), AlertError> {
    let mut tx = pool.begin().await?;
    let users: Vec<i64> = sqlx::query_scalar("SELECT budget_id FROM budgets WHERE $1 = ANY (routes) ORDER BY budget_id")
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
    if !users.is_empty() {
        return Err(FieldError::new("name", format!("route {name:?} is used by budgets {users:?}")).into());
    }
    let before = sqlx::query("DELETE FROM alert_routes WHERE name = $1 RETURNING *")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| AlertError::NotFound(format!("route {name:?}")))?;
    audit::record(&mut tx, actor, "alert_route.delete", &format!("alert_route:{name}"), Some(&route_json(&before)), None)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wrap_midnight() {
        let r = Route {
            name: "x".into(),
            target: Target::Email { to: vec!["a@b.c".into()] },
            max_per_hour: None,
            quiet_hours_utc: Some((22, 6)),
        };
        assert!(r.is_quiet(23 * 3_600));
        assert!(r.is_quiet(86_400 + 5 * 3_600));
        assert!(!r.is_quiet(12 * 3_600));
        assert_eq!(r.quiet_remaining_s(23 * 3_600), 7 * 3_600);
        assert_eq!(r.quiet_remaining_s(12 * 3_600), 0);
    }

    #[test]
    fn bad_route_fields_are_named() {
        let f = |name: &str, body: Value| parse_route(name, &body).unwrap_err().field;
        assert_eq!(f("Bad Name", json!({ "kind": "email", "to": ["a@b.c"] })), "name");
        assert_eq!(f("r", json!({ "kind": "sms" })), "kind");
        assert_eq!(f("r", json!({ "kind": "email", "to": ["not an address"] })), "to[0]");
        assert_eq!(f("r", json!({ "kind": "webhook", "url": "ftp://x", "secret": "0123456789abcdef" })), "url");
        assert_eq!(f("r", json!({ "kind": "webhook", "url": "http://x/", "secret": "short" })), "secret");
        assert_eq!(f("r", json!({ "kind": "pagerduty", "routing_key": "abc" })), "routing_key");
        assert_eq!(f("r", json!({ "kind": "email", "to": ["a@b.c"], "quiet_start_hour_utc": 3 })), "quiet_end_hour_utc");
        assert_eq!(f("r", json!({ "kind": "email", "to": ["a@b.c"], "max_per_hour": 0 })), "max_per_hour");
    }
}
