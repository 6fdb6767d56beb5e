//! `GET /v1/forecast` and the gRPC `Forecast` method: a scope's daily
//! forecast with its 80 % and 95 % intervals, computed on request from the
//! complete UTC days of the daily rollups through the query layer (so the
//! caller's scope narrows the filters exactly as for `/v1/series`, and the
//! answer carries the same lineage: sources read and factor sets), with the
//! same history window and the same computation as the stored forecasts.
//!
//! Parameters: `team`, `account`, `ou`, `service` (comma-separated, as the
//! other query endpoints), `basis` (`location` default, `market`,
//! `location_operational`, `market_operational`), `horizon` (`month`,
//! `quarter`, `year`: to the end of the current one; `12m`, the default:
//! 12 months after the last complete day), `budget_id` (the budget's scope,
//! basis and period instead, with its exhaustion date; only a budget the
//! caller may read, else 404), `now` (the instant the answer is for, as
//! `/v1/overview`). Every refusal names its parameter.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Query, State};
use canopy_forecast::forecast::add_months;
use canopy_forecast::{DailyForecast, Exhaustion};
use serde_json::{Value, json};

use super::{DAY_S, HISTORY_DAYS, forecast_history, model_name, trim_history};
use crate::alerts::access::BudgetFilter;
use crate::alerts::basis::{Basis, BasisColumn, basis_column};
use crate::alerts::budgets::{self, Budget, PeriodKind, period_window};
use crate::auth::Principal;
use crate::dashboard::DashboardError;
use crate::http::Clock;
use crate::query::params::{self, ParamError};
use crate::query::plan::rfc3339;
use crate::query::{Filters, Metrics, QueryEngine, QueryError, Segment, Source};
use crate::route_table::RouteTable;

/// How far a forecast answer reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    /// To the end of the current UTC month.
    Month,
    /// To the end of the current UTC quarter.
    Quarter,
    /// To the end of the current UTC year.
    Year,
    /// 12 calendar months after the last complete day.
    TwelveMonths,
}

impl Horizon {
    /// Parameter spelling.
    pub fn name(self) -> &'static str {
        match self {
            Horizon::Month => "month",
            Horizon::Quarter => "quarter",
            Horizon::Year => "year",
            Horizon::TwelveMonths => "12m",
        }
    }

    fn parse(text: &str) -> Option<Horizon> {
        [
            Horizon::Month,
            Horizon::Quarter,
            Horizon::Year,
            Horizon::TwelveMonths,
        ]
        .into_iter()
        .find(|h| h.name() == text)
    }
}

/// A validated forecast request.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastRequest {
    /// Scope filters as (parameter, comma-separated values).
    pub scope_pairs: Vec<(String, String)>,
    /// Basis.
    pub basis: Basis,
    /// Horizon.
    pub horizon: Horizon,
    /// A budget instead of the scope, basis and horizon.
    pub budget_id: Option<i64>,
    /// The instant the answer is for (default: the server's clock).
    pub now_unix_s: Option<i64>,
}

const SCOPE_NAMES: [&str; 4] = ["team", "account", "ou", "service"];
const NAMES: [&str; 8] = [
    "team",
    "account",
    "ou",
    "service",
    "basis",
    "horizon",
    "budget_id",
    "now",
];

fn err(parameter: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        parameter: parameter.to_owned(),
        message: message.into(),
    }
}

/// Parses `/v1/forecast`'s parameters (the gRPC method builds the same pairs).
pub fn parse_forecast(pairs: &[(String, String)]) -> Result<ForecastRequest, ParamError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut req = ForecastRequest {
        scope_pairs: Vec::new(),
        basis: Basis::Location,
        horizon: Horizon::TwelveMonths,
        budget_id: None,
        now_unix_s: None,
    };
    for (key, value) in pairs {
        let Some(name) = NAMES.iter().find(|n| **n == key) else {
            return Err(err(
                key,
                format!("unknown parameter; expected one of {}", NAMES.join(", ")),
            ));
        };
        if seen.contains(name) {
            return Err(err(
                name,
                "given more than once; list values are comma-separated",
            ));
        }
        seen.push(name);
        match *name {
            "basis" => {
                req.basis = Basis::parse(value).ok_or_else(|| {
                    err("basis", format!("expected location, market, location_operational or market_operational, found {value:?}"))
                })?
            }
            "horizon" => {
                req.horizon = Horizon::parse(value)
                    .ok_or_else(|| err("horizon", format!("expected month, quarter, year or 12m, found {value:?}")))?
            }
            "budget_id" => {
                req.budget_id = Some(
                    value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err("budget_id", format!("expected a positive integer, found {value:?}")))?,
                )
            }
            "now" => req.now_unix_s = Some(params::parse_instant(value).map_err(|m| err("now", m))?),
            _ => req.scope_pairs.push((key.clone(), value.clone())),
        }
    }
    if req.budget_id.is_some()
        && let Some(other) = seen
            .iter()
            .find(|n| SCOPE_NAMES.contains(n) || **n == "basis" || **n == "horizon")
    {
        return Err(err(
            other,
            "not accepted with budget_id: the budget's scope, basis and period are used",
        ));
    }
    // The scope values are checked as the query API checks them.
    series_request(&req.scope_pairs, 0, DAY_S)?;
    Ok(req)
}

fn series_request(
    scope_pairs: &[(String, String)],
    from: i64,
    to: i64,
) -> Result<crate::query::SeriesRequest, ParamError> {
    let mut pairs = scope_pairs.to_vec();
    pairs.extend([
        ("from".to_owned(), from.to_string()),
        ("to".to_owned(), to.to_string()),
        ("step".to_owned(), "1d".to_owned()),
        ("limit".to_owned(), params::MAX_LIMIT.to_string()),
    ]);
    params::parse_series(&pairs)
}

/// Why an answer failed.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// A parameter is invalid.
    #[error(transparent)]
    BadParameter(#[from] ParamError),
    /// The query layer refused or failed (403 outside the scope).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// No such budget in the caller's scope.
    #[error("no budget {0} in your scope")]
    BudgetNotFound(i64),
    /// Reading the budget failed.
    #[error("database error while reading a budget: {0}")]
    Sql(#[from] sqlx::Error),
}

/// A budget's view of its forecast.
#[derive(Debug, Clone)]
pub struct BudgetForecast {
    /// The budget.
    pub budget: Budget,
    /// Its current period.
    pub period_start_unix_s: i64,
    /// Its end.
    pub period_end_unix_s: i64,
    /// Emitted in the period's complete days, gCO2e.
    pub actual_g_co2e: f64,
    /// Amount minus actual (at least 0), gCO2e.
    pub remaining_g_co2e: f64,
    /// Actual plus the forecast to the period's end: (lower 80 %, point, upper 80 %).
    pub total80_g_co2e: (f64, f64, f64),
    /// The same with the 95 % interval.
    pub total95_g_co2e: (f64, f64, f64),
    /// When the remaining amount runs out within the period (None: no forecast).
    pub exhaustion: Option<Exhaustion>,
}

/// The answer, before rendering.
#[derive(Debug, Clone)]
pub struct ForecastAnswer {
    /// The instant it is for.
    pub now_unix_s: i64,
    /// Basis.
    pub basis: Basis,
    /// Horizon name (the budget's period name with `budget_id`).
    pub horizon: String,
    /// The points reach the days before this instant.
    pub horizon_end_unix_s: i64,
    /// The filters the answer is for, narrowed to the caller's scope.
    pub filters: Filters,
    /// Daily history read (complete days), gCO2e, from `history_from_unix_s`.
    pub history_from_unix_s: i64,
    /// Its values.
    pub history_g_co2e: Vec<f64>,
    /// The forecast truncated to the horizon, or why there is none.
    pub forecast: Result<DailyForecast, String>,
    /// Sources read for the history.
    pub segments: Vec<Segment>,
    /// Factor sets behind the history.
    pub factor_sets: Vec<crate::lineage::FactorSet>,
    /// With `budget_id`.
    pub budget: Option<BudgetForecast>,
}

fn value_on(m: &Metrics, column: BasisColumn) -> f64 {
    1_000.0
        * match column {
            BasisColumn::LocationTotal => m.location_kg_co2e,
            BasisColumn::MarketTotal => m.market_kg_co2e,
            BasisColumn::LocationOperational => m.operational_location_kg_co2e,
            BasisColumn::MarketOperational => m.operational_market_kg_co2e,
        }
}

/// The OU path filter of a budget's OU id (from the accounts below it).
async fn ou_path_of(pool: &sqlx::PgPool, ou_id: &str) -> Result<Option<String>, sqlx::Error> {
    let paths: Vec<String> = sqlx::query_scalar("SELECT ou_path FROM accounts WHERE ou_path <> ''")
        .fetch_all(pool)
        .await?;
    Ok(paths.iter().find_map(|path| {
        let segments: Vec<&str> = path.split('/').collect();
        segments
            .iter()
            .position(|s| *s == ou_id)
            .map(|i| segments[..=i].join("/"))
    }))
}

/// `forecast` cut to the days before `end_unix_s`.
fn truncated(mut f: DailyForecast, end_unix_s: i64) -> DailyForecast {
    let n = ((end_unix_s - f.first_day_unix_s).div_euclid(DAY_S)).clamp(0, f.len() as i64) as usize;
    for v in [
        &mut f.point_g_co2e,
        &mut f.lower80_g_co2e,
        &mut f.upper80_g_co2e,
        &mut f.lower95_g_co2e,
        &mut f.upper95_g_co2e,
    ] {
        v.truncate(n);
    }
    f
}

/// Computes the answer within `principal`'s scope; `clock_now` is the
/// server's clock (retention horizons are taken at it).
pub async fn compute(
    engine: &QueryEngine,
    principal: &Principal,
    req: &ForecastRequest,
    clock_now: i64,
) -> Result<ForecastAnswer, ForecastError> {
    let now = req.now_unix_s.unwrap_or(clock_now);
    let today = now.div_euclid(DAY_S) * DAY_S;
    let (mut scope_pairs, mut basis, mut budget, mut period) =
        (req.scope_pairs.clone(), req.basis, None, None);
    let mut horizon_name = req.horizon.name().to_owned();
    if let Some(id) = req.budget_id {
        let b = match budgets::get(engine.pool(), id).await {
            Ok(b) => b,
            Err(crate::alerts::AlertError::NotFound(_)) => {
                return Err(ForecastError::BudgetNotFound(id));
            }
            Err(crate::alerts::AlertError::Sql(e)) => return Err(ForecastError::Sql(e)),
            Err(_) => return Err(ForecastError::BudgetNotFound(id)),
        };
        if !BudgetFilter::load(engine.pool(), principal)
            .await?
            .allows(&b)
        {
            return Err(ForecastError::BudgetNotFound(id));
        }
        let s = &b.spec.scope;
        scope_pairs.clear();
        for (name, value) in [
            ("account", &s.account_id),
            ("team", &s.team),
            ("service", &s.service),
        ] {
            if let Some(v) = value {
                scope_pairs.push((name.to_owned(), v.clone()));
            }
        }
        if let Some(ou) = &s.ou_id {
            // An OU no account sits in yet: its own id (matches nothing).
            let path = ou_path_of(engine.pool(), ou)
                .await?
                .unwrap_or_else(|| ou.clone());
            scope_pairs.push(("ou".to_owned(), path));
        }
        basis = b.spec.basis;
        horizon_name = b.spec.period.name().to_owned();
        period = Some(period_window(b.spec.period, b.spec.fiscal_start_month, now));
        budget = Some(b);
    }
    let column = basis_column(basis).map_err(|e| err("basis", e.message))?;
    let horizon_end = match (period, req.horizon) {
        (Some((_, end)), _) => end,
        (None, Horizon::Month) => period_window(PeriodKind::Month, 1, now).1,
        (None, Horizon::Quarter) => period_window(PeriodKind::Quarter, 1, now).1,
        (None, Horizon::Year) => period_window(PeriodKind::Year, 1, now).1,
        (None, Horizon::TwelveMonths) => add_months(today - DAY_S, 12) + DAY_S,
    };

    // History: complete days, within what retention still holds at day grain.
    let mut snapshot = engine.snapshot(clock_now).await?;
    let usable = snapshot.horizons().usable_from(Source::Daily);
    let usable_day = if usable == i64::MIN {
        i64::MIN
    } else {
        (usable + DAY_S - 1).div_euclid(DAY_S) * DAY_S
    };
    let from = (today - HISTORY_DAYS * DAY_S).max(usable_day);
    let days = ((today - from) / DAY_S).max(0) as usize;
    let mut history = vec![0.0; days];
    let (filters, segments, factor_sets) = if days > 0 {
        let series = series_request(&scope_pairs, from, today)?;
        let narrowed =
            crate::query::authz::series_request(&series, principal).map_err(QueryError::from)?;
        let resp = snapshot.series(&narrowed).await?;
        for row in &resp.rows {
            let i = ((row.bucket_start_unix_s - from) / DAY_S) as usize;
            if i < days {
                history[i] += value_on(&row.metrics, column);
            }
        }
        (narrowed.filters, resp.segments, resp.factor_sets)
    } else {
        let series = series_request(&scope_pairs, 0, DAY_S)?;
        let narrowed =
            crate::query::authz::series_request(&series, principal).map_err(QueryError::from)?;
        (narrowed.filters, Vec::new(), Vec::new())
    };
    snapshot.finish().await?;

    let forecast = forecast_history(from, &history).map_err(|e| match e {
        canopy_forecast::Error::NotEnoughHistory { needed, got } => {
            format!("not enough history: {needed} complete days with emissions needed, {got} found")
        }
        other => other.to_string(),
    });
    let budget = budget.map(|b| {
        let (start, end) = period.expect("a budget's period");
        let actual: f64 = history
            .iter()
            .enumerate()
            .filter(|(i, _)| from + *i as i64 * DAY_S >= start)
            .map(|(_, v)| v)
            .sum();
        let amount_g = b.spec.amount_kg_co2e * 1_000.0;
        let remaining = (amount_g - actual).max(0.0);
        let (total80, total95, exhaustion) = match &forecast {
            Ok(f) => {
                let (l80, p, u80) = f.total_interval_until_g_co2e(end, 0.8);
                let (l95, _, u95) = f.total_interval_until_g_co2e(end, 0.95);
                let e = truncated(f.clone(), end).exhaustion(remaining).ok();
                (
                    (actual + l80, actual + p, actual + u80),
                    (actual + l95, actual + p, actual + u95),
                    e,
                )
            }
            Err(_) => ((actual, actual, actual), (actual, actual, actual), None),
        };
        BudgetForecast {
            budget: b,
            period_start_unix_s: start,
            period_end_unix_s: end,
            actual_g_co2e: actual,
            remaining_g_co2e: remaining,
            total80_g_co2e: total80,
            total95_g_co2e: total95,
            exhaustion,
        }
    });
    Ok(ForecastAnswer {
        now_unix_s: now,
        basis,
        horizon: horizon_name,
        horizon_end_unix_s: horizon_end,
        filters,
        history_from_unix_s: from,
        history_g_co2e: history,
        forecast: forecast.map(|f| truncated(f, horizon_end)),
        segments,
        factor_sets,
        budget,
    })
}

fn kg(g: f64) -> f64 {
    g / 1_000.0
}

fn day_json(t: Option<i64>) -> Value {
    t.map_or(
        Value::Null,
        |t| json!({ "day_unix_s": t, "day": rfc3339(t) }),
    )
}

/// The JSON body of an answer (kgCO2e per day, as the other endpoints).
pub fn answer_json(a: &ForecastAnswer) -> Value {
    let (first_history, _) = trim_history(a.history_from_unix_s, &a.history_g_co2e);
    let history: Vec<Value> = a
        .history_g_co2e
        .iter()
        .enumerate()
        .map(|(i, v)| (a.history_from_unix_s + i as i64 * DAY_S, v))
        .filter(|(t, _)| *t >= first_history)
        .map(|(t, v)| json!({ "day_unix_s": t, "actual_kg_co2e": kg(*v) }))
        .collect();
    let (status, message, model, points) = match &a.forecast {
        Ok(f) => (
            "ok",
            Value::Null,
            json!({
                "name": model_name(&f.model),
                "log_scale": f.model.log_scale,
                "alpha": f.model.alpha,
                "beta": f.model.beta,
                "phi": f.model.phi,
                "sigma_kg_co2e": kg(f.model.sigma_g_co2e),
                "drift_per_day": f.model.drift_per_day,
                "weekday_indices": f.model.weekday_indices,
                "level_shifts_unix_s": f.model.level_shifts_unix_s,
                "outliers_cleaned": f.model.outliers_cleaned,
            }),
            (0..f.len())
                .map(|i| {
                    json!({
                        "day_unix_s": f.day_unix_s(i),
                        "point_kg_co2e": kg(f.point_g_co2e[i]),
                        "lower80_kg_co2e": kg(f.lower80_g_co2e[i]),
                        "upper80_kg_co2e": kg(f.upper80_g_co2e[i]),
                        "lower95_kg_co2e": kg(f.lower95_g_co2e[i]),
                        "upper95_kg_co2e": kg(f.upper95_g_co2e[i]),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Err(m) => ("not_enough_history", json!(m), Value::Null, Vec::new()),
    };
    let scope = json!({
        "team": a.filters.team, "account": a.filters.account, "ou": a.filters.ou, "service": a.filters.service,
    });
    let budget = a.budget.as_ref().map(|b| {
        let e = b.exhaustion;
        json!({
            "budget_id": b.budget.budget_id,
            "name": b.budget.spec.name,
            "amount_kg_co2e": b.budget.spec.amount_kg_co2e,
            "period_start_unix_s": b.period_start_unix_s,
            "period_end_unix_s": b.period_end_unix_s,
            "actual_kg_co2e": kg(b.actual_g_co2e),
            "remaining_kg_co2e": kg(b.remaining_g_co2e),
            "forecast_total_kg_co2e": kg(b.total80_g_co2e.1),
            "forecast_total_lower80_kg_co2e": kg(b.total80_g_co2e.0),
            "forecast_total_upper80_kg_co2e": kg(b.total80_g_co2e.2),
            "forecast_total_lower95_kg_co2e": kg(b.total95_g_co2e.0),
            "forecast_total_upper95_kg_co2e": kg(b.total95_g_co2e.2),
            "exhaustion": e.map(|e| json!({
                "day": day_json(e.day_unix_s),
                "earliest80": day_json(e.earliest80_unix_s),
                "latest80": day_json(e.latest80_unix_s),
                "earliest95": day_json(e.earliest95_unix_s),
                "latest95": day_json(e.latest95_unix_s),
            })),
        })
    });
    json!({
        "now_unix_s": a.now_unix_s,
        "basis": a.basis.name(),
        "horizon": a.horizon,
        "horizon_end_unix_s": a.horizon_end_unix_s,
        "scope": scope,
        "status": status,
        "message": message,
        "model": model,
        "history": history,
        "points": points,
        "budget": budget,
        "sources": a.segments.iter().map(|s| json!({
            "source": s.source.name(), "from_unix_s": s.from_unix_s, "to_unix_s": s.to_unix_s, "subtract": s.subtract,
        })).collect::<Vec<_>>(),
        "factor_sets": crate::http::factor_sets_json(&a.factor_sets),
    })
}

#[derive(Clone)]
struct ForecastState {
    engine: QueryEngine,
    clock: Clock,
}

/// The route: `GET /v1/forecast`.
pub fn route_table(engine: QueryEngine, clock: Clock) -> RouteTable {
    RouteTable::new()
        .get("/v1/forecast", handler)
        .with_state(Arc::new(ForecastState { engine, clock }))
}

async fn handler(
    State(s): State<Arc<ForecastState>>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, DashboardError> {
    let req = parse_forecast(&pairs)?;
    match compute(&s.engine, &principal, &req, (s.clock)()).await {
        Ok(a) => Ok(Json(answer_json(&a))),
        Err(ForecastError::BadParameter(e)) => Err(DashboardError::BadParameter(e)),
        Err(ForecastError::Query(e)) => Err(DashboardError::Query(e)),
        Err(ForecastError::BudgetNotFound(_)) => Err(DashboardError::NotInScope),
        Err(ForecastError::Sql(e)) => Err(DashboardError::Sql(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases: [(&[(&str, &str)], &str); 8] = [
            (&[("basis", "embodied")], "basis"),
            (&[("horizon", "2y")], "horizon"),
            (&[("budget_id", "-3")], "budget_id"),
            (&[("budget_id", "1"), ("team", "web")], "team"),
            (&[("budget_id", "1"), ("horizon", "month")], "horizon"),
            (&[("step", "1d")], "step"),
            (&[("now", "yesterday")], "now"),
            (&[("team", "web"), ("team", "data")], "team"),
        ];
        for (input, parameter) in cases {
            let e = parse_forecast(&pairs(input)).unwrap_err();
            assert_eq!(e.parameter, parameter, "{input:?}: {e}");
        }
        let ok = parse_forecast(&pairs(&[
            ("team", "web,data"),
            ("basis", "market"),
            ("horizon", "quarter"),
        ]))
        .unwrap();
        assert_eq!((ok.basis, ok.horizon), (Basis::Market, Horizon::Quarter));
        assert_eq!(parse_forecast(&[]).unwrap().horizon, Horizon::TwelveMonths);
    }
}
