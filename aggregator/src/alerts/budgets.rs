//! Carbon budgets: the model, parsing of API bodies (every error names its
//! field), the period windows (UTC calendar months, quarters, years and
//! fiscal years) and storage. A budget is checked completely before
//! anything is written, and a write is one statement, so a refused request
//! stores nothing.

use serde_json::{Map, Value, json};
use sqlx::{PgPool, Row};

use super::basis::{Basis, basis_column};
use super::{AlertError, FieldError};
use crate::auth::audit;
use crate::time::{civil_from_days, days_from_civil};

/// Default thresholds, percent of the budget's amount.
pub const DEFAULT_THRESHOLDS_PCT: [f64; 3] = [50.0, 80.0, 100.0];

/// What a budget covers; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// An organisational unit id (`ou-...` or the root `r-...`): accounts
    /// whose OU path contains it.
    pub ou_id: Option<String>,
    /// A 12-digit account id.
    pub account_id: Option<String>,
    /// A team.
    pub team: Option<String>,
    /// A service, e.g. `AmazonEC2`.
    pub service: Option<String>,
}

impl Scope {
    /// Whether the scope covers one series (account, its OU path, team,
    /// service): every field set must match; an OU matches any segment of
    /// the path.
    pub fn covers(&self, account: &str, ou_path: &str, team: &str, service: &str) -> bool {
        self.account_id.as_deref().is_none_or(|a| a == account)
            && self.team.as_deref().is_none_or(|t| t == team)
            && self.service.as_deref().is_none_or(|s| s == service)
            && self.ou_id.as_deref().is_none_or(|ou| ou_path.split('/').any(|seg| seg == ou))
    }
}

/// The length of a budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodKind {
    /// UTC calendar month.
    Month,
    /// UTC calendar quarter (January, April, July, October).
    Quarter,
    /// UTC calendar year.
    Year,
    /// Twelve months from the budget's fiscal start month.
    FiscalYear,
}

impl PeriodKind {
    /// The API and database name.
    pub fn name(self) -> &'static str {
        match self {
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
            PeriodKind::Year => "year",
            PeriodKind::FiscalYear => "fiscal_year",
        }
    }

    /// Parses an API or database name.
    pub fn parse(text: &str) -> Option<PeriodKind> {
        [PeriodKind::Month, PeriodKind::Quarter, PeriodKind::Year, PeriodKind::FiscalYear]
            .into_iter()
            .find(|p| p.name() == text)
    }
}

/// Multi-window burn-rate factors: alert when both windows spend faster
/// than `factor ×` the even rate of the period's budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnRate {
    /// Factor over the last complete hour.
    pub factor_1h: f64,
    /// Factor over the last 24 complete hours.
    pub factor_24h: f64,
}

/// A budget as the API describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSpec {
    /// Display name.
    pub name: String,
    /// What it covers.
    pub scope: Scope,
    /// Period length.
    pub period: PeriodKind,
    /// First month (1-12) of a fiscal year; 1 for the other periods.
    pub fiscal_start_month: u32,
    /// What it counts.
    pub basis: Basis,
    /// The amount per period, kgCO2e.
    pub amount_kg_co2e: f64,
    /// Thresholds in percent of the amount, ascending.
    pub thresholds_pct: Vec<f64>,
    /// Alert when the forecast for the period's end exceeds the amount.
    pub forecast_overshoot: bool,
    /// Burn-rate alerting, when on.
    pub burn_rate: Option<BurnRate>,
    /// Names of the routes it notifies.
    pub routes: Vec<String>,
    /// PagerDuty routing key for this budget (overrides the route's).
    pub pagerduty_routing_key: Option<String>,
}

/// A stored budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Id.
    pub budget_id: i64,
    /// Its description.
    pub spec: BudgetSpec,
}

/// The UTC window `[start, end)` of the period of `kind` containing `now_unix_s`.
pub fn period_window(kind: PeriodKind, fiscal_start_month: u32, now_unix_s: i64) -> (i64, i64) {
    let (year, month, _) = civil_from_days(now_unix_s.div_euclid(86_400));
    let (first_month, length_months) = match kind {
        PeriodKind::Month => (month, 1),
        PeriodKind::Quarter => ((month - 1) / 3 * 3 + 1, 3),
        PeriodKind::Year => (1, 12),
        PeriodKind::FiscalYear => (fiscal_start_month, 12),
    };
    // Months since year 0 of the window's first month, at or before now.
    let now_index = year * 12 + i64::from(month - 1);
    let mut start_index = year * 12 + i64::from(first_month - 1);
    if start_index > now_index {
        start_index -= 12;
    }
    let at = |index: i64| days_from_civil(index.div_euclid(12), (index.rem_euclid(12) + 1) as u32, 1) * 86_400;
    (at(start_index), at(start_index + length_months))
}

fn take_str(obj: &Map<String, Value>, field: &str, path: &str) -> Result<Option<String>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(FieldError::new(path, "expected a non-empty string, found an empty one"))
        }
        Some(Value::String(s)) => {
            if s.len() > 256 {
                return Err(FieldError::new(path, format!("expected at most 256 bytes, found {}", s.len())));
            }
            Ok(Some(s.clone()))
        }
        Some(other) => Err(FieldError::new(path, format!("expected a string, found {other}"))),
    }
}

fn take_number(obj: &Map<String, Value>, field: &str) -> Result<Option<f64>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| FieldError::new(field, format!("expected a finite number, found {n}"))),
        Some(other) => Err(FieldError::new(field, format!("expected a number, found {other}"))),
    }
}

fn check_known_fields(obj: &Map<String, Value>, known: &[&str], prefix: &str) -> Result<(), FieldError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(FieldError::new(format!("{prefix}{k}"), format!("unknown field; expected one of {known:?}"))),
        None => Ok(()),
    }
}

/// Parses and checks a budget body (everything that needs no database).
pub fn parse_spec(body: &Value) -> Result<BudgetSpec, FieldError> {
    let obj = body.as_object().ok_or_else(|| FieldError::new("body", "expected a JSON object"))?;
    check_known_fields(
        obj,
        &[
            "name", "scope", "period", "fiscal_start_month", "basis", "amount_kg_co2e", "thresholds_pct",
            "forecast_overshoot", "burn_rate", "routes", "pagerduty_routing_key",
        ],
        "",
    )?;
    let name = take_str(obj, "name", "name")?.ok_or_else(|| FieldError::new("name", "required"))?;
    let scope = match obj.get("scope") {
        None | Some(Value::Null) => Scope::default(),
        Some(Value::Object(s)) => {
            check_known_fields(s, &["ou_id", "account_id", "team", "service"], "scope.")?;
            let scope = Scope {
                ou_id: take_str(s, "ou_id", "scope.ou_id")?,
                account_id: take_str(s, "account_id", "scope.account_id")?,
                team: take_str(s, "team", "scope.team")?,
                service: take_str(s, "service", "scope.service")?,
            };
            if let Some(a) = &scope.account_id
                && !crate::ingest::is_account_id(a)
            {
                return Err(FieldError::new("scope.account_id", format!("expected a 12-digit account id, found {a:?}")));
            }
            if let Some(ou) = &scope.ou_id
                && !(ou.starts_with("ou-") || ou.starts_with("r-"))
            {
                return Err(FieldError::new("scope.ou_id", format!("expected an OU id (ou-...) or root id (r-...), found {ou:?}")));
            }
            scope
        }
        Some(other) => return Err(FieldError::new("scope", format!("expected an object, found {other}"))),
    };
    let period_text = take_str(obj, "period", "period")?.ok_or_else(|| FieldError::new("period", "required"))?;
    let period = PeriodKind::parse(&period_text).ok_or_else(|| {
        FieldError::new("period", format!("expected month, quarter, year or fiscal_year, found {period_text:?}"))
    })?;
    let fiscal_start_month = match take_number(obj, "fiscal_start_month")? {
        None => 1,
        Some(m) if period != PeriodKind::FiscalYear && m != 1.0 => {
            return Err(FieldError::new("fiscal_start_month", "only a fiscal_year period has a start month"));
        }
        Some(m) if m.fract() == 0.0 && (1.0..=12.0).contains(&m) => m as u32,
        Some(m) => return Err(FieldError::new("fiscal_start_month", format!("expected a month 1-12, found {m}"))),
    };
    let basis_text = take_str(obj, "basis", "basis")?.unwrap_or_else(|| "location".to_owned());
    let basis = Basis::parse(&basis_text).ok_or_else(|| {
        FieldError::new(
            "basis",
            format!("expected location, market, location_operational or market_operational, found {basis_text:?}"),
        )
    })?;
    basis_column(basis)?;
    let amount_kg_co2e =
        take_number(obj, "amount_kg_co2e")?.ok_or_else(|| FieldError::new("amount_kg_co2e", "required"))?;
    if amount_kg_co2e <= 0.0 || amount_kg_co2e >= 1e12 {
        return Err(FieldError::new(
            "amount_kg_co2e",
            format!("expected a positive amount below 1e12 kgCO2e, found {amount_kg_co2e}"),
        ));
    }
    let thresholds_pct = match obj.get("thresholds_pct") {
        None | Some(Value::Null) => DEFAULT_THRESHOLDS_PCT.to_vec(),
        Some(Value::Array(items)) => {
            if items.is_empty() || items.len() > 10 {
                return Err(FieldError::new("thresholds_pct", format!("expected 1 to 10 thresholds, found {}", items.len())));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let v = item.as_f64().filter(|v| v.is_finite() && *v > 0.0 && *v <= 1000.0).ok_or_else(|| {
                    FieldError::new(format!("thresholds_pct[{i}]"), format!("expected a percentage in (0, 1000], found {item}"))
                })?;
                if out.last().is_some_and(|last| *last >= v) {
                    return Err(FieldError::new(format!("thresholds_pct[{i}]"), "expected strictly ascending thresholds"));
                }
                out.push(v);
            }
            out
        }
        Some(other) => return Err(FieldError::new("thresholds_pct", format!("expected an array, found {other}"))),
    };
    let forecast_overshoot = match obj.get("forecast_overshoot") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(FieldError::new("forecast_overshoot", format!("expected a boolean, found {other}"))),
    };
    let burn_rate = match obj.get("burn_rate") {
        None | Some(Value::Null) => None,
        Some(Value::Object(b)) => {
            check_known_fields(b, &["factor_1h", "factor_24h"], "burn_rate.")?;
            let factor = |f: &str| -> Result<f64, FieldError> {
                let path = format!("burn_rate.{f}");
                match b.get(f).and_then(Value::as_f64) {
                    Some(v) if v.is_finite() && v > 0.0 && v <= 10_000.0 => Ok(v),
                    _ => Err(FieldError::new(path, "expected a factor in (0, 10000]")),
                }
            };
            Some(BurnRate { factor_1h: factor("factor_1h")?, factor_24h: factor("factor_24h")? })
        }
        Some(other) => return Err(FieldError::new("burn_rate", format!("expected an object, found {other}"))),
    };
    let routes = match obj.get("routes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let r = item
                    .as_str()
                    .ok_or_else(|| FieldError::new(format!("routes[{i}]"), format!("expected a route name, found {item}")))?;
                if out.iter().any(|o| o == r) {
                    return Err(FieldError::new(format!("routes[{i}]"), format!("route {r:?} listed twice")));
                }
                out.push(r.to_owned());
            }
            out
        }
        Some(other) => return Err(FieldError::new("routes", format!("expected an array of route names, found {other}"))),
    };
    let pagerduty_routing_key = take_str(obj, "pagerduty_routing_key", "pagerduty_routing_key")?;
    if let Some(k) = &pagerduty_routing_key
        && (k.len() != 32 || !k.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(FieldError::new("pagerduty_routing_key", "expected a 32-character integration key"));
    }
    Ok(BudgetSpec {
        name,
        scope,
        period,
        fiscal_start_month,
        basis,
        amount_kg_co2e,
        thresholds_pct,
        forecast_overshoot,
        burn_rate,
        routes,
        pagerduty_routing_key,
    })
}

/// The API form of a budget (its PagerDuty routing key only as a suffix).
pub fn budget_json(b: &Budget) -> Value {
    let s = &b.spec;
    json!({
        "budget_id": b.budget_id,
        "name": s.name,
        "scope": {
            "ou_id": s.scope.ou_id, "account_id": s.scope.account_id,
            "team": s.scope.team, "service": s.scope.service,
        },
        "period": s.period.name(),
        "fiscal_start_month": s.fiscal_start_month,
        "basis": s.basis.name(),
        "amount_kg_co2e": s.amount_kg_co2e,
        "thresholds_pct": s.thresholds_pct,
        "forecast_overshoot": s.forecast_overshoot,
        "burn_rate": s.burn_rate.map(|b| json!({ "factor_1h": b.factor_1h, "factor_24h": b.factor_24h })),
        "routes": s.routes,
        "pagerduty_routing_key_suffix": s.pagerduty_routing_key.as_deref().map(secret_suffix),
    })
}

/// The last four characters of a key (all a reply or an audit entry ever
/// shows of a PagerDuty routing key).
pub fn secret_suffix(key: &str) -> String {
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

/// Checks what needs the database: the scope's account, OU, team and
/// service are known, the routes exist and no other budget overlaps.
async fn check_against_store(pool: &PgPool, spec: &BudgetSpec, except_id: Option<i64>) -> Result<(), AlertError> {
    if let Some(a) = &spec.scope.account_id {
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM accounts WHERE account_id = $1)
                 OR EXISTS (SELECT 1 FROM account_dimension_values WHERE account_id = $1)
                 OR EXISTS (SELECT 1 FROM rollup_monthly WHERE account_id = $1)",
        )
        .bind(a)
        .fetch_one(pool)
        .await?;
        if !known {
            return Err(FieldError::new("scope.account_id", format!("unknown account {a:?}")).into());
        }
    }
    if let Some(ou) = &spec.scope.ou_id {
        let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE $1 = ANY (string_to_array(ou_path, '/')))")
            .bind(ou)
            .fetch_one(pool)
            .await?;
        if !known {
            return Err(FieldError::new("scope.ou_id", format!("unknown organisational unit {ou:?} (no account in it)")).into());
        }
    }
    if let Some(t) = &spec.scope.team {
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM account_dimension_values WHERE field = 'team' AND value = $1)
                 OR EXISTS (SELECT 1 FROM account_team_rules WHERE default_team = $1)
                 OR EXISTS (SELECT 1 FROM rollup_monthly WHERE team = $1)",
        )
        .bind(t)
        .fetch_one(pool)
        .await?;
        if !known {
            return Err(FieldError::new("scope.team", format!("unknown team {t:?}")).into());
        }
    }
    if let Some(s) = &spec.scope.service {
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM account_dimension_values WHERE field = 'service' AND value = $1)
                 OR EXISTS (SELECT 1 FROM rollup_monthly WHERE service = $1)",
        )
        .bind(s)
        .fetch_one(pool)
        .await?;
        if !known {
            return Err(FieldError::new("scope.service", format!("unknown service {s:?}")).into());
        }
    }
    if !spec.routes.is_empty() {
        let known: Vec<String> = sqlx::query_scalar("SELECT name FROM alert_routes WHERE name = ANY ($1)")
            .bind(&spec.routes)
            .fetch_all(pool)
            .await?;
        if let Some((i, r)) = spec.routes.iter().enumerate().find(|(_, r)| !known.contains(r)) {
            return Err(FieldError::new(format!("routes[{i}]"), format!("unknown route {r:?}")).into());
        }
    }
    if let Some(other) = overlapping(pool, spec, except_id).await? {
        return Err(overlap_error(other).into());
    }
    Ok(())
}

fn overlap_error(other: i64) -> FieldError {
    FieldError::new(
        "period",
        format!("overlaps budget {other}: same scope, basis and period family (month, quarter or annual)"),
    )
}

fn period_family(kind: PeriodKind) -> &'static str {
    match kind {
        PeriodKind::Month => "month",
        PeriodKind::Quarter => "quarter",
        PeriodKind::Year | PeriodKind::FiscalYear => "annual",
    }
}

async fn overlapping(pool: &PgPool, spec: &BudgetSpec, except_id: Option<i64>) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT budget_id FROM budgets
         WHERE coalesce(scope_ou_id, '') = coalesce($1, '') AND coalesce(scope_account_id, '') = coalesce($2, '')
           AND coalesce(scope_team, '') = coalesce($3, '') AND coalesce(scope_service, '') = coalesce($4, '')
           AND basis = $5 AND period_family = $6 AND budget_id IS DISTINCT FROM $7
         LIMIT 1",
    )
    .bind(&spec.scope.ou_id)
    .bind(&spec.scope.account_id)
    .bind(&spec.scope.team)
    .bind(&spec.scope.service)
    .bind(spec.basis.name())
    .bind(period_family(spec.period))
    .bind(except_id)
    .fetch_optional(pool)
    .await
}

fn map_unique_violation(e: sqlx::Error) -> AlertError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
            FieldError::new("period", "overlaps another budget: same scope, basis and period family").into()
        }
        _ => AlertError::Sql(e),
    }
}

const COLUMNS: &str = "budget_id, name, scope_ou_id, scope_account_id, scope_team, scope_service, period, \
    fiscal_start_month, basis, amount_kg_co2e, thresholds_pct, forecast_overshoot, burn_rate_1h_factor, \
    burn_rate_24h_factor, routes, pagerduty_routing_key";

fn from_row(row: &sqlx::postgres::PgRow) -> Result<Budget, sqlx::Error> {
    let period: String = row.try_get("period")?;
    let basis: String = row.try_get("basis")?;
    let decode = |what: &str, v: &str| sqlx::Error::Decode(format!("unknown budget {what} {v:?}").into());
    let f1: Option<f64> = row.try_get("burn_rate_1h_factor")?;
    let f24: Option<f64> = row.try_get("burn_rate_24h_factor")?;
    Ok(Budget {
        budget_id: row.try_get("budget_id")?,
        spec: BudgetSpec {
            name: row.try_get("name")?,
            scope: Scope {
                ou_id: row.try_get("scope_ou_id")?,
                account_id: row.try_get("scope_account_id")?,
                team: row.try_get("scope_team")?,
                service: row.try_get("scope_service")?,
            },
            period: PeriodKind::parse(&period).ok_or_else(|| decode("period", &period))?,
            fiscal_start_month: row.try_get::<i16, _>("fiscal_start_month")? as u32,
            basis: Basis::parse(&basis).ok_or_else(|| decode("basis", &basis))?,
            amount_kg_co2e: row.try_get("amount_kg_co2e")?,
            thresholds_pct: row.try_get("thresholds_pct")?,
            forecast_overshoot: row.try_get("forecast_overshoot")?,
            burn_rate: f1.zip(f24).map(|(factor_1h, factor_24h)| BurnRate { factor_1h, factor_24h }),
            routes: row.try_get("routes")?,
            pagerduty_routing_key: row.try_get("pagerduty_routing_key")?,
        },
    })
}

/// Every budget, by id.
pub async fn list(pool: &PgPool) -> Result<Vec<Budget>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM budgets ORDER BY budget_id")).fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

/// One budget.
pub async fn get(pool: &PgPool, budget_id: i64) -> Result<Budget, AlertError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM budgets WHERE budget_id = $1"))
        .bind(budget_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| AlertError::NotFound(format!("budget {budget_id}")))?;
    Ok(from_row(&row)?)
}

/// One budget, read through `executor` (e.g. a transaction).
pub async fn get_in<'e>(executor: impl sqlx::PgExecutor<'e>, budget_id: i64) -> Result<Budget, AlertError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM budgets WHERE budget_id = $1"))
        .bind(budget_id)
        .fetch_optional(executor)
        .await?
        .ok_or_else(|| AlertError::NotFound(format!("budget {budget_id}")))?;
    Ok(from_row(&row)?)
}

/// Validates and stores a new budget; `actor` is recorded in the audit log
/// in the same transaction.
pub async fn create(pool: &PgPool, actor: &str, spec: &BudgetSpec) -> Result<Budget, AlertError> {
    check_against_store(pool, spec, None).await?;
    let mut tx = pool.begin().await?;
    let id: i64 = bind_spec(
        sqlx::query_scalar(
            "INSERT INTO budgets (name, scope_ou_id, scope_account_id, scope_team, scope_service, period,
                 fiscal_start_month, basis, amount_kg_co2e, thresholds_pct, forecast_overshoot,
                 burn_rate_1h_factor, burn_rate_24h_factor, routes, pagerduty_routing_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING budget_id",
        ),
        spec,
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(map_unique_violation)?;
    let b = Budget { budget_id: id, spec: spec.clone() };
    audit::record(&mut tx, actor, "budget.create", &format!("budget:{id}"), None, Some(&budget_json(&b))).await?;
    tx.commit().await?;
    Ok(b)
}

/// Validates and replaces a budget, audited with its state before and
/// after. With `keep_routing_key` the stored PagerDuty key is kept (a
/// client that never saw it in full need not resend it).
pub async fn update(
    pool: &PgPool,
    actor: &str,
    budget_id: i64,
    spec: &BudgetSpec,
    keep_routing_key: bool,
) -> Result<Budget, AlertError> {
    get(pool, budget_id).await?;
    check_against_store(pool, spec, Some(budget_id)).await?;
    let mut tx = pool.begin().await?;
    let before = get_in(&mut *tx, budget_id).await?;
    let mut spec = spec.clone();
    if keep_routing_key {
        spec.pagerduty_routing_key = before.spec.pagerduty_routing_key.clone();
    }
    let updated = bind_spec(
        sqlx::query_scalar(
            "UPDATE budgets SET name = $1, scope_ou_id = $2, scope_account_id = $3, scope_team = $4,
                 scope_service = $5, period = $6, fiscal_start_month = $7, basis = $8, amount_kg_co2e = $9,
                 thresholds_pct = $10, forecast_overshoot = $11, burn_rate_1h_factor = $12,
                 burn_rate_24h_factor = $13, routes = $14, pagerduty_routing_key = $15, updated_at = now()
             WHERE budget_id = $16 RETURNING budget_id",
        ),
        &spec,
    )
    .bind(budget_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(map_unique_violation)?;
    if updated.is_none() {
        return Err(AlertError::NotFound(format!("budget {budget_id}")));
    }
    let after = Budget { budget_id, spec };
    audit::record(
        &mut tx,
        actor,
        "budget.update",
        &format!("budget:{budget_id}"),
        Some(&budget_json(&before)),
        Some(&budget_json(&after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Deletes a budget (its firing alerts resolve at the next evaluation),
/// audited with its state before.
pub async fn delete(pool: &PgPool, actor: &str, budget_id: i64) -> Result<(), AlertError> {
    let mut tx = pool.begin().await?;
    let before = get_in(&mut *tx, budget_id).await?;
    let n = sqlx::query("DELETE FROM budgets WHERE budget_id = $1").bind(budget_id).execute(&mut *tx).await?.rows_affected();
    if n == 0 {
        return Err(AlertError::NotFound(format!("budget {budget_id}")));
    }
    audit::record(&mut tx, actor, "budget.delete", &format!("budget:{budget_id}"), Some(&budget_json(&before)), None)
        .await?;
    tx.commit().await?;
    Ok(())
}

fn bind_spec<'q>(
    q: sqlx::query::QueryScalar<'q, sqlx::Postgres, i64, sqlx::postgres::PgArguments>,
    spec: &'q BudgetSpec,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, i64, sqlx::postgres::PgArguments> {
    q.bind(&spec.name)
        .bind(&spec.scope.ou_id)
        .bind(&spec.scope.account_id)
        .bind(&spec.scope.team)
        .bind(&spec.scope.service)
        .bind(spec.period.name())
        .bind(spec.fiscal_start_month as i16)
        .bind(spec.basis.name())
        .bind(spec.amount_kg_co2e)
        .bind(&spec.thresholds_pct)
        .bind(spec.forecast_overshoot)
        .bind(spec.burn_rate.map(|b| b.factor_1h))
        .bind(spec.burn_rate.map(|b| b.factor_24h))
        .bind(&spec.routes)
        .bind(&spec.pagerduty_routing_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * 86_400
    }

    #[test]
    fn period_windows_are_utc_calendar_periods() {
        let now = utc(2026, 12, 7) + 3_600 * 14;
        assert_eq!(period_window(PeriodKind::Month, 1, now), (utc(2026, 12, 1), utc(2027, 1, 1)));
        assert_eq!(period_window(PeriodKind::Quarter, 1, now), (utc(2026, 10, 1), utc(2027, 1, 1)));
        assert_eq!(period_window(PeriodKind::Year, 1, now), (utc(2026, 1, 1), utc(2027, 1, 1)));
        assert_eq!(period_window(PeriodKind::FiscalYear, 4, now), (utc(2026, 4, 1), utc(2027, 4, 1)));
        // Before the fiscal start month: the fiscal year began last year.
        assert_eq!(period_window(PeriodKind::FiscalYear, 4, utc(2027, 2, 1)), (utc(2026, 4, 1), utc(2027, 4, 1)));
        assert_eq!(period_window(PeriodKind::FiscalYear, 12, now), (utc(2026, 12, 1), utc(2027, 12, 1)));
        assert_eq!(period_window(PeriodKind::Quarter, 1, utc(2027, 3, 31)), (utc(2027, 1, 1), utc(2027, 4, 1)));
    }

    fn field_of(body: Value) -> String {
        parse_spec(&body).unwrap_err().field
    }

    #[test]
    fn every_bad_field_is_named() {
        let ok = json!({ "name": "web", "period": "month", "amount_kg_co2e": 100.0 });
        let spec = parse_spec(&ok).unwrap();
        assert_eq!(spec.thresholds_pct, vec![50.0, 80.0, 100.0]);
        assert_eq!(spec.basis, Basis::Location);
        let with = |k: &str, v: Value| {
            let mut o = ok.clone();
            o[k] = v;
            o
        };
        assert_eq!(field_of(with("amount_kg_co2e", json!(-5))), "amount_kg_co2e");
        assert_eq!(field_of(with("amount_kg_co2e", json!("ten"))), "amount_kg_co2e");
        assert_eq!(field_of(with("period", json!("week"))), "period");
        assert_eq!(field_of(with("basis", json!("embodied"))), "basis");
        assert_eq!(field_of(with("thresholds_pct", json!([80, 50]))), "thresholds_pct[1]");
        assert_eq!(field_of(with("scope", json!({ "account_id": "12" }))), "scope.account_id");
        assert_eq!(field_of(with("scope", json!({ "region": "x" }))), "scope.region");
        assert_eq!(field_of(with("fiscal_start_month", json!(4))), "fiscal_start_month");
        assert_eq!(field_of(with("burn_rate", json!({ "factor_1h": 0 , "factor_24h": 2}))), "burn_rate.factor_1h");
        assert_eq!(field_of(with("routes", json!(["a", "a"]))), "routes[1]");
        assert_eq!(field_of(with("colour", json!("red"))), "colour");
        assert_eq!(field_of(json!({ "period": "month", "amount_kg_co2e": 1 })), "name");
    }
}
