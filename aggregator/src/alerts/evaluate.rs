//! The alert evaluator: each round reads the budgets and the rollups once,
//! computes every budget's condition (threshold crossed on actual figures,
//! multi-window burn rate, and, through [`ForecastSource`] and
//! [`AnomalySource`], forecast overshoot and anomalies), then, in one
//! transaction under an advisory lock, compares them with the stored alert
//! state ([`decide`], pure), writes the new state, its history and the
//! outbox rows of the notifications it decided. It never sends anything:
//! the sender in [`super::outbox`] does.
//!
//! Identity: an alert is `budget/<budget id>/<kind>/<period start date>`;
//! it triggers once, re-notifies when its level rises (a higher threshold),
//! and resolves when its condition clears (data revised, budget raised or
//! deleted, or the period over). PagerDuty's `dedup_key` is the same key.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Row, Transaction};

use super::AlertsConfig;
use super::basis::{BasisColumn, basis_column};
use super::budgets::{self, Budget, Scope, period_window};
use super::metrics::AlertMetrics;
use super::silences::{self, Silence};
use super::usage::UsageSnapshot;
use crate::time::yyyymmdd;

/// Advisory lock key held by a round's transaction (two aggregators never
/// decide the same alert at once).
const EVALUATION_LOCK: i64 = 0x0063_616e_6f70_7941;

/// Forecasts of a scope's emissions, provided by the forecasting library
/// (issue 17 §2). Plugged in by `serve`; [`NoForecast`] until then.
pub trait ForecastSource: Send + Sync {
    /// The forecast total of `scope` on `column` over `[from, to)`, gCO2e,
    /// as (mean, lower, upper) of its 80 % interval; `None` when there is
    /// no forecast for the scope.
    fn forecast_total_g_co2e(&self, scope: &Scope, column: BasisColumn, from_unix_s: i64, to_unix_s: i64)
    -> Option<(f64, f64, f64)>;
}

/// No forecasts: forecast-overshoot alerts never fire.
pub struct NoForecast;

impl ForecastSource for NoForecast {
    fn forecast_total_g_co2e(&self, _: &Scope, _: BasisColumn, _: i64, _: i64) -> Option<(f64, f64, f64)> {
        None
    }
}

/// An anomaly found in a scope's residual (issue 17 §3).
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// Observed, gCO2e.
    pub observed_g_co2e: f64,
    /// Expected, gCO2e.
    pub expected_g_co2e: f64,
    /// What the detector says.
    pub description: String,
}

/// Anomalies of a scope, provided by the anomaly detector (issue 17 §3).
pub trait AnomalySource: Send + Sync {
    /// The anomaly open in `scope` at `now_unix_s`, if any.
    fn active_anomaly(&self, scope: &Scope, column: BasisColumn, now_unix_s: i64) -> Option<Anomaly>;
}

/// No anomaly detection: anomaly alerts never fire.
pub struct NoAnomalies;

impl AnomalySource for NoAnomalies {
    fn active_anomaly(&self, _: &Scope, _: BasisColumn, _: i64) -> Option<Anomaly> {
        None
    }
}

/// PagerDuty's severities, used by every route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Informational.
    Info,
    /// Worth a look.
    Warning,
    /// Needs action soon.
    Error,
    /// Needs action now.
    Critical,
}

impl Severity {
    /// The Events API v2 name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// The severity of a crossed threshold: 100 % and above critical, 80 %
    /// and above error, below that warning.
    pub fn for_threshold_pct(pct: f64) -> Severity {
        if pct >= 100.0 {
            Severity::Critical
        } else if pct >= 80.0 {
            Severity::Error
        } else {
            Severity::Warning
        }
    }
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// 1 + index of the highest crossed threshold (1 for other kinds).
    pub level: i16,
    /// Severity.
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
    /// The measured value, gCO2e.
    pub value_g_co2e: f64,
    /// The budget's amount, gCO2e.
    pub budget_g_co2e: f64,
}

/// The stored state of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Row id.
    pub alert_id: i64,
    /// Firing (else resolved).
    pub firing: bool,
    /// Current level.
    pub level: i16,
    /// Highest level notified since it last fired.
    pub notified_level: i16,
}

/// What to notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Trigger (or re-trigger at a higher level).
    Trigger,
    /// Acknowledged by a person.
    Acknowledge,
    /// Resolved.
    Resolve,
}

impl Action {
    /// The Events API v2 `event_action`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
        }
    }
}

/// The outcome of comparing a condition with the stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// New (firing, level, notified level) when the row changes.
    pub new_state: Option<(bool, i16, i16)>,
    /// History event.
    pub event: Option<&'static str>,
    /// Notification to enqueue.
    pub notify: Option<Action>,
}

/// Decides an alert: `prev` its stored state, `now` its condition,
/// `silenced` whether an active silence matches it.
pub fn decide(prev: Option<&Stored>, now: Option<&Firing>, silenced: bool) -> Decision {
    let nothing = Decision { new_state: None, event: None, notify: None };
    match (prev, now) {
        (None, None) => nothing,
        (Some(p), None) if !p.firing => nothing,
        (Some(p), None) => Decision {
            new_state: Some((false, 0, p.notified_level)),
            event: Some("resolved"),
            notify: (p.notified_level > 0).then_some(Action::Resolve),
        },
        (p, Some(f)) if p.is_none_or(|p| !p.firing) => {
            if silenced {
                Decision { new_state: Some((true, f.level, 0)), event: Some("silenced"), notify: None }
            } else {
                Decision { new_state: Some((true, f.level, f.level)), event: Some("fired"), notify: Some(Action::Trigger) }
            }
        }
        (Some(p), Some(f)) => {
            if !silenced && f.level > p.notified_level {
                let event = if p.notified_level == 0 { "fired" } else { "escalated" };
                Decision { new_state: Some((true, f.level, f.level)), event: Some(event), notify: Some(Action::Trigger) }
            } else if f.level != p.level {
                let event = match (f.level > p.level, silenced) {
                    (true, true) => Some("silenced"),
                    _ => None,
                };
                Decision { new_state: Some((true, f.level, p.notified_level)), event, notify: None }
            } else {
                nothing
            }
        }
        (None, Some(_)) => unreachable!("handled by the arm above"),
    }
}

/// One budget's figures in a round.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetBurn {
    /// Budget id.
    pub budget_id: i64,
    /// Period window.
    pub period_start_unix_s: i64,
    /// Period end.
    pub period_end_unix_s: i64,
    /// Emissions so far in the period, gCO2e, on the budget's basis.
    pub actual_g_co2e: f64,
    /// Last hour's rate over the even rate.
    pub burn_rate_1h: f64,
    /// Last 24 hours' rate over the even rate.
    pub burn_rate_24h: f64,
}

/// The conditions of one budget at `now`.
pub fn conditions(
    budget: &Budget,
    snap: &UsageSnapshot,
    forecast: &dyn ForecastSource,
    anomalies: &dyn AnomalySource,
    now_unix_s: i64,
) -> Option<(BudgetBurn, Vec<(&'static str, Firing)>)> {
    let spec = &budget.spec;
    let column = basis_column(spec.basis).ok()?;
    let (start, end) = period_window(spec.period, spec.fiscal_start_month, now_unix_s);
    let usage = snap.usage(&spec.scope, start, end);
    let actual = usage.period.on(column);
    let amount_g = spec.amount_kg_co2e * 1_000.0;
    let even_g_per_s = amount_g / (end - start) as f64;
    let burn = BudgetBurn {
        budget_id: budget.budget_id,
        period_start_unix_s: start,
        period_end_unix_s: end,
        actual_g_co2e: actual,
        burn_rate_1h: usage.last_1h.on(column) / 3_600.0 / even_g_per_s,
        burn_rate_24h: usage.last_24h.on(column) / 86_400.0 / even_g_per_s,
    };
    let period_text = format!("{}..{}", yyyymmdd(start), yyyymmdd(end));
    let mut out = Vec::new();
    let crossed = spec.thresholds_pct.iter().take_while(|t| actual >= *t / 100.0 * amount_g).count();
    if crossed > 0 {
        let pct = spec.thresholds_pct[crossed - 1];
        out.push((
            "threshold",
            Firing {
                level: crossed as i16,
                severity: Severity::for_threshold_pct(pct),
                summary: format!(
                    "Carbon budget \"{}\" crossed {pct} %: {} of {} kgCO2e ({:.1} %, {}-based, {period_text})",
                    spec.name,
                    kg_text(actual / 1_000.0),
                    kg_text(spec.amount_kg_co2e),
                    actual / amount_g * 100.0,
                    if column == BasisColumn::MarketTotal { "market" } else { "location" },
                ),
                value_g_co2e: actual,
                budget_g_co2e: amount_g,
            },
        ));
    }
    if let Some(b) = spec.burn_rate
        && burn.burn_rate_1h >= b.factor_1h
        && burn.burn_rate_24h >= b.factor_24h
    {
        out.push((
            "burn_rate",
            Firing {
                level: 1,
                severity: Severity::Error,
                summary: format!(
                    "Carbon budget \"{}\" burning {:.1}x (last hour) and {:.1}x (last 24 h) the even rate ({period_text})",
                    spec.name, burn.burn_rate_1h, burn.burn_rate_24h
                ),
                value_g_co2e: usage.last_24h.on(column),
                budget_g_co2e: amount_g,
            },
        ));
    }
    if spec.forecast_overshoot
        && let Some((mean, lo, hi)) = forecast.forecast_total_g_co2e(&spec.scope, column, start, end)
        && mean > amount_g
    {
        out.push((
            "forecast_overshoot",
            Firing {
                level: 1,
                severity: Severity::Warning,
                summary: format!(
                    "Carbon budget \"{}\" forecast to reach {:.1} kgCO2e (80 % interval {:.1}-{:.1}) of {:.1} by {}",
                    spec.name,
                    mean / 1_000.0,
                    lo / 1_000.0,
                    hi / 1_000.0,
                    spec.amount_kg_co2e,
                    yyyymmdd(end)
                ),
                value_g_co2e: mean,
                budget_g_co2e: amount_g,
            },
        ));
    }
    if let Some(a) = anomalies.active_anomaly(&spec.scope, column, now_unix_s) {
        out.push((
            "anomaly",
            Firing {
                level: 1,
                severity: Severity::Warning,
                summary: format!("Anomaly in the scope of \"{}\": {}", spec.name, a.description),
                value_g_co2e: a.observed_g_co2e,
                budget_g_co2e: amount_g,
            },
        ));
    }
    Some((burn, out))
}

/// kgCO2e for humans: one decimal, three below 10 kg (small budgets).
fn kg_text(kg: f64) -> String {
    if kg.abs() < 10.0 { format!("{kg:.3}") } else { format!("{kg:.1}") }
}

/// The alert key of a budget's alert of `kind` in the period starting at `period_start`.
pub fn alert_key(budget_id: i64, kind: &str, period_start_unix_s: i64) -> String {
    format!("budget/{budget_id}/{kind}/{}", yyyymmdd(period_start_unix_s))
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundReport {
    /// Budgets evaluated.
    pub budgets: usize,
    /// Rollup rows read.
    pub rows_read: usize,
    /// Alerts fired or escalated.
    pub triggered: usize,
    /// Alerts resolved.
    pub resolved: usize,
    /// Outbox rows written.
    pub enqueued: usize,
    /// Seconds spent reading, deciding and writing.
    pub read_s: f64,
    /// Seconds spent deciding and writing.
    pub write_s: f64,
}

/// The evaluator and its plug-ins.
pub struct Evaluator {
    /// Pool (the alerting pool, not the query API's).
    pub pool: PgPool,
    /// Configuration.
    pub config: AlertsConfig,
    /// Forecasts.
    pub forecast: Arc<dyn ForecastSource>,
    /// Anomalies.
    pub anomalies: Arc<dyn AnomalySource>,
    /// Counters.
    pub metrics: Arc<AlertMetrics>,
    /// Woken after a round enqueued notifications.
    pub outbox_wake: Arc<tokio::sync::Notify>,
}

struct Pending<'a> {
    key: String,
    budget: Option<&'a Budget>,
    kind: String,
    period_start_unix_s: i64,
    firing: Option<Firing>,
}

impl Evaluator {
    /// One round at `now_unix_s`.
    pub async fn run_round(&self, now_unix_s: i64) -> Result<RoundReport, sqlx::Error> {
        let started = std::time::Instant::now();
        let all = budgets::list(&self.pool).await?;
        let earliest = all
            .iter()
            .map(|b| period_window(b.spec.period, b.spec.fiscal_start_month, now_unix_s).0)
            .min()
            .unwrap_or(now_unix_s);
        let hour_end = now_unix_s.div_euclid(3_600) * 3_600;
        let snap = UsageSnapshot::load(&self.pool, earliest, hour_end).await?;
        let mut burns = Vec::with_capacity(all.len());
        let mut pending: Vec<Pending> = Vec::new();
        for b in &all {
            let Some((burn, firing)) =
                conditions(b, &snap, self.forecast.as_ref(), self.anomalies.as_ref(), now_unix_s)
            else {
                tracing::warn!(budget_id = b.budget_id, basis = b.spec.basis.name(), "budget basis cannot be measured; skipped");
                continue;
            };
            for (kind, f) in firing {
                pending.push(Pending {
                    key: alert_key(b.budget_id, kind, burn.period_start_unix_s),
                    budget: Some(b),
                    kind: kind.to_owned(),
                    period_start_unix_s: burn.period_start_unix_s,
                    firing: Some(f),
                });
            }
            burns.push(burn);
        }
        let read_s = started.elapsed().as_secs_f64();
        let mut report = RoundReport { budgets: all.len(), rows_read: snap.rows_read, read_s, ..RoundReport::default() };
        drop(snap);

        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(EVALUATION_LOCK).execute(&mut *tx).await?;
        let keys: Vec<String> = pending.iter().map(|p| p.key.clone()).collect();
        let rows = sqlx::query(
            "SELECT alert_id, alert_key, status, level, notified_level, kind,
                    extract(epoch FROM period_start)::bigint AS ps
             FROM alerts WHERE status = 'firing' OR alert_key = ANY ($1)",
        )
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?;
        let mut stored: HashMap<String, Stored> = HashMap::new();
        let firing_now: HashSet<&str> = keys.iter().map(String::as_str).collect();
        for r in &rows {
            let key: String = r.try_get("alert_key")?;
            let s = Stored {
                alert_id: r.try_get("alert_id")?,
                firing: r.try_get::<String, _>("status")? == "firing",
                level: r.try_get("level")?,
                notified_level: r.try_get("notified_level")?,
            };
            if s.firing && !firing_now.contains(key.as_str()) {
                pending.push(Pending {
                    key: key.clone(),
                    budget: None,
                    kind: r.try_get("kind")?,
                    period_start_unix_s: r.try_get("ps")?,
                    firing: None,
                });
            }
            stored.insert(key, s);
        }
        let active: Vec<Silence> = silences::list(&self.pool, now_unix_s, false).await?;
        // Decide every alert, then write in a few set-based statements (a
        // first round over many budgets can fire tens of thousands at once).
        let mut upserts: Vec<(usize, Decision, bool)> = Vec::new();
        let mut updates: Vec<(i64, Decision)> = Vec::new();
        for (i, p) in pending.iter().enumerate() {
            let prev = stored.get(&p.key);
            let silenced = p.budget.is_some_and(|b| active.iter().any(|s| s.matches(b, &p.kind, now_unix_s)));
            let d = decide(prev, p.firing.as_ref(), silenced);
            if d.new_state.is_none() {
                continue;
            }
            match (&p.firing, prev) {
                (Some(_), prev) => upserts.push((i, d, prev.is_none_or(|s| !s.firing))),
                (None, Some(s)) => updates.push((s.alert_id, d)),
                (None, None) => {}
            }
        }
        let ids = upsert_alerts(&mut tx, &pending, &upserts, now_unix_s).await?;
        update_alerts(&mut tx, &updates, now_unix_s).await?;
        let mut events: Vec<(i64, &'static str, String)> = Vec::new();
        let mut outbox: Vec<(i64, String, &'static str, Value)> = Vec::new();
        let mut others: Vec<(i64, Action)> = Vec::new();
        for ((i, d, _), alert_id) in upserts.iter().zip(&ids) {
            let p = &pending[*i];
            let f = p.firing.as_ref().expect("upserts are firing");
            if let Some(e) = d.event {
                events.push((*alert_id, e, f.summary.clone()));
            }
            if d.notify == Some(Action::Trigger) {
                report.triggered += 1;
                let budget = p.budget.expect("a firing condition has its budget");
                let facts = AlertFacts {
                    alert_id: *alert_id,
                    key: &p.key,
                    kind: &p.kind,
                    severity: f.severity.name(),
                    summary: &f.summary,
                    level: f.level,
                    period_start_unix_s: p.period_start_unix_s,
                    value_g_co2e: f.value_g_co2e,
                    budget_g_co2e: f.budget_g_co2e,
                    acknowledged_by: None,
                };
                let event = build_event(&facts, Some(budget), Action::Trigger, &self.config, now_unix_s);
                for route in &budget.spec.routes {
                    outbox.push((*alert_id, route.clone(), Action::Trigger.name(), event.clone()));
                }
            }
        }
        for (alert_id, d) in &updates {
            if let Some(e) = d.event {
                events.push((*alert_id, e, "condition cleared".to_owned()));
            }
            if d.new_state.is_some_and(|(firing, _, _)| !firing) {
                report.resolved += 1;
            }
            if let Some(a) = d.notify {
                others.push((*alert_id, a));
            }
        }
        insert_events(&mut tx, &events, now_unix_s).await?;
        report.enqueued += insert_outbox(&mut tx, &outbox, now_unix_s).await?;
        for (alert_id, action) in others {
            report.enqueued += enqueue(&mut tx, alert_id, action, &self.config, now_unix_s).await?;
        }
        write_status(&mut tx, &burns, now_unix_s).await?;
        tx.commit().await?;
        report.write_s = started.elapsed().as_secs_f64() - read_s;
        if report.enqueued > 0 {
            self.outbox_wake.notify_one();
        }
        self.metrics.observe_round(&report, now_unix_s);
        Ok(report)
    }

    /// Rounds forever, every `config.evaluate_interval`.
    pub async fn run_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.evaluate_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = crate::http::system_clock();
            match self.run_round(now).await {
                Ok(r) => tracing::info!(
                    budgets = r.budgets,
                    rows_read = r.rows_read,
                    triggered = r.triggered,
                    resolved = r.resolved,
                    enqueued = r.enqueued,
                    read_s = r.read_s,
                    write_s = r.write_s,
                    "alert evaluation round"
                ),
                Err(e) => {
                    self.metrics.round_failures_total.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "alert evaluation round failed; retrying next tick");
                }
            }
        }
    }
}

/// What a notification says about an alert.
struct AlertFacts<'a> {
    alert_id: i64,
    key: &'a str,
    kind: &'a str,
    severity: &'a str,
    summary: &'a str,
    level: i16,
    period_start_unix_s: i64,
    value_g_co2e: f64,
    budget_g_co2e: f64,
    acknowledged_by: Option<&'a str>,
}

/// The outbox event (what notifiers render) of an alert for `action`.
fn build_event(f: &AlertFacts, budget: Option<&Budget>, action: Action, config: &AlertsConfig, now_unix_s: i64) -> Value {
    let spec = budget.map(|b| &b.spec);
    json!({
        "alert_id": f.alert_id,
        "alert_key": f.key,
        "dedup_key": format!("canopy/{}", f.key),
        "action": action.name(),
        "kind": f.kind,
        "severity": f.severity,
        "summary": f.summary,
        "level": f.level,
        "budget_id": budget.map(|b| b.budget_id),
        "budget_name": spec.map(|s| s.name.clone()),
        "basis": spec.map(|s| s.basis.name()),
        "period": spec.map(|s| s.period.name()),
        "scope": {
            "ou_id": spec.and_then(|s| s.scope.ou_id.clone()),
            "account_id": spec.and_then(|s| s.scope.account_id.clone()),
            "team": spec.and_then(|s| s.scope.team.clone()),
            "service": spec.and_then(|s| s.scope.service.clone()),
        },
        "period_start_unix_s": f.period_start_unix_s,
        "value_kg_co2e": f.value_g_co2e / 1_000.0,
        "budget_kg_co2e": f.budget_g_co2e / 1_000.0,
        "percent_of_budget": if f.budget_g_co2e > 0.0 { f.value_g_co2e / f.budget_g_co2e * 100.0 } else { 0.0 },
        "acknowledged_by": f.acknowledged_by,
        "occurred_unix_s": now_unix_s,
        "dashboard_url": format!("{}/alerts#alert-{}", config.dashboard_url.trim_end_matches('/'), f.alert_id),
        "pagerduty_routing_key": spec.and_then(|s| s.pagerduty_routing_key.clone()),
    })
}

/// The event of a stored alert for `action`, and the routes it goes to:
/// a trigger to the budget's routes; acknowledge and resolve to every
/// route that got a trigger (the budget may be gone or changed).
async fn event_json(
    tx: &mut Transaction<'_, Postgres>,
    alert_id: i64,
    action: Action,
    config: &AlertsConfig,
    now_unix_s: i64,
) -> Result<(Value, Vec<String>), sqlx::Error> {
    let r = sqlx::query(
        "SELECT alert_key, kind, severity, summary, value_g_co2e, budget_g_co2e, level,
                extract(epoch FROM period_start)::bigint AS ps, acknowledged_by, budget_id
         FROM alerts WHERE alert_id = $1",
    )
    .bind(alert_id)
    .fetch_one(&mut **tx)
    .await?;
    let budget_id: Option<i64> = r.try_get("budget_id")?;
    let budget = match budget_id {
        Some(id) => match budgets::get_in(&mut **tx, id).await {
            Ok(b) => Some(b),
            Err(super::AlertError::Sql(e)) => return Err(e),
            Err(_) => None,
        },
        None => None,
    };
    let routes: Vec<String> = match action {
        Action::Trigger => budget.as_ref().map(|b| b.spec.routes.clone()).unwrap_or_default(),
        _ => {
            sqlx::query_scalar(
                "SELECT DISTINCT route FROM alert_outbox WHERE alert_id = $1 AND action = 'trigger' ORDER BY route",
            )
            .bind(alert_id)
            .fetch_all(&mut **tx)
            .await?
        }
    };
    let (key, kind, severity, summary): (String, String, String, String) =
        (r.try_get("alert_key")?, r.try_get("kind")?, r.try_get("severity")?, r.try_get("summary")?);
    let acknowledged_by: Option<String> = r.try_get("acknowledged_by")?;
    let facts = AlertFacts {
        alert_id,
        key: &key,
        kind: &kind,
        severity: &severity,
        summary: &summary,
        level: r.try_get("level")?,
        period_start_unix_s: r.try_get("ps")?,
        value_g_co2e: r.try_get("value_g_co2e")?,
        budget_g_co2e: r.try_get("budget_g_co2e")?,
        acknowledged_by: acknowledged_by.as_deref(),
    };
    Ok((build_event(&facts, budget.as_ref(), action, config, now_unix_s), routes))
}

/// Inserts or re-opens the firing alerts of `upserts` (index into
/// `pending`, decision, re-opened); returns their ids in order.
async fn upsert_alerts(
    tx: &mut Transaction<'_, Postgres>,
    pending: &[Pending<'_>],
    upserts: &[(usize, Decision, bool)],
    now_unix_s: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    if upserts.is_empty() {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    let mut budget_ids = Vec::new();
    let mut kinds = Vec::new();
    let mut levels = Vec::new();
    let mut notified = Vec::new();
    let mut severities = Vec::new();
    let mut summaries = Vec::new();
    let mut values = Vec::new();
    let mut amounts = Vec::new();
    let mut starts = Vec::new();
    let mut reopened = Vec::new();
    for (i, d, re) in upserts {
        let p = &pending[*i];
        let f = p.firing.as_ref().expect("upserts are firing");
        let (_, level, n) = d.new_state.expect("decided");
        keys.push(p.key.clone());
        budget_ids.push(p.budget.map(|b| b.budget_id));
        kinds.push(p.kind.clone());
        levels.push(level);
        notified.push(n);
        severities.push(f.severity.name());
        summaries.push(f.summary.clone());
        values.push(f.value_g_co2e);
        amounts.push(f.budget_g_co2e);
        starts.push(p.period_start_unix_s as f64);
        reopened.push(*re);
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO alerts (alert_key, budget_id, kind, status, level, notified_level, severity, summary,
             value_g_co2e, budget_g_co2e, period_start, fired_at, updated_at)
         SELECT u.k, u.b, u.kind, 'firing', u.l, u.n, u.sev, u.summ, u.v, u.a, to_timestamp(u.ps),
                to_timestamp($12), to_timestamp($12)
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::int2[], $5::int2[], $6::text[], $7::text[],
                     $8::float8[], $9::float8[], $10::float8[], $11::bool[])
              AS u(k, b, kind, l, n, sev, summ, v, a, ps, re)
         ON CONFLICT (alert_key) DO UPDATE SET status = 'firing', level = EXCLUDED.level,
             notified_level = EXCLUDED.notified_level, severity = EXCLUDED.severity,
             summary = EXCLUDED.summary, value_g_co2e = EXCLUDED.value_g_co2e,
             budget_g_co2e = EXCLUDED.budget_g_co2e, updated_at = EXCLUDED.updated_at,
             fired_at = CASE WHEN alerts.status = 'resolved' THEN EXCLUDED.fired_at ELSE alerts.fired_at END,
             resolved_at = NULL,
             acknowledged_at = CASE WHEN alerts.status = 'resolved' THEN NULL ELSE alerts.acknowledged_at END,
             acknowledged_by = CASE WHEN alerts.status = 'resolved' THEN NULL ELSE alerts.acknowledged_by END
         RETURNING alert_key, alert_id",
    )
    .bind(&keys)
    .bind(&budget_ids)
    .bind(&kinds)
    .bind(&levels)
    .bind(&notified)
    .bind(&severities)
    .bind(&summaries)
    .bind(&values)
    .bind(&amounts)
    .bind(&starts)
    .bind(&reopened)
    .bind(now_unix_s as f64)
    .fetch_all(&mut **tx)
    .await?;
    let by_key: HashMap<String, i64> = rows.into_iter().collect();
    keys.iter()
        .map(|k| by_key.get(k).copied().ok_or_else(|| sqlx::Error::Protocol(format!("alert {k} not returned"))))
        .collect()
}

/// Writes the new state of alerts whose condition is gone.
async fn update_alerts(tx: &mut Transaction<'_, Postgres>, updates: &[(i64, Decision)], now_unix_s: i64) -> Result<(), sqlx::Error> {
    if updates.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = updates.iter().map(|(id, _)| *id).collect();
    let state: Vec<(bool, i16, i16)> = updates.iter().map(|(_, d)| d.new_state.expect("decided")).collect();
    let firing: Vec<bool> = state.iter().map(|s| s.0).collect();
    let levels: Vec<i16> = state.iter().map(|s| s.1).collect();
    let notified: Vec<i16> = state.iter().map(|s| s.2).collect();
    sqlx::query(
        "UPDATE alerts SET status = CASE WHEN u.f THEN 'firing' ELSE 'resolved' END, level = u.l,
             notified_level = u.n, updated_at = to_timestamp($5),
             resolved_at = CASE WHEN u.f THEN NULL ELSE to_timestamp($5) END
         FROM unnest($1::bigint[], $2::bool[], $3::int2[], $4::int2[]) AS u(id, f, l, n)
         WHERE alerts.alert_id = u.id",
    )
    .bind(&ids)
    .bind(&firing)
    .bind(&levels)
    .bind(&notified)
    .bind(now_unix_s as f64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(i64, &'static str, String)],
    now_unix_s: i64,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = events.iter().map(|e| e.0).collect();
    let names: Vec<&str> = events.iter().map(|e| e.1).collect();
    let details: Vec<&str> = events.iter().map(|e| e.2.as_str()).collect();
    sqlx::query(
        "INSERT INTO alert_events (alert_id, at, event, detail)
         SELECT u.id, to_timestamp($4), u.e, u.d FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, e, d)",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&details)
    .bind(now_unix_s as f64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_outbox(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[(i64, String, &'static str, Value)],
    now_unix_s: i64,
) -> Result<usize, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let routes: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let actions: Vec<&str> = rows.iter().map(|r| r.2).collect();
    let events: Vec<Value> = rows.iter().map(|r| r.3.clone()).collect();
    sqlx::query(
        "INSERT INTO alert_outbox (alert_id, route, action, event, created_at)
         SELECT u.id, u.r, u.a, u.e, to_timestamp($5)
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS u(id, r, a, e, o) ORDER BY u.o",
    )
    .bind(&ids)
    .bind(&routes)
    .bind(&actions)
    .bind(&events)
    .bind(now_unix_s as f64)
    .execute(&mut **tx)
    .await?;
    Ok(rows.len())
}

/// Writes the outbox rows of `action` for `alert_id` (one per route), in
/// the deciding transaction. Returns how many.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    alert_id: i64,
    action: Action,
    config: &AlertsConfig,
    now_unix_s: i64,
) -> Result<usize, sqlx::Error> {
    let (event, routes) = event_json(tx, alert_id, action, config, now_unix_s).await?;
    for route in &routes {
        sqlx::query(
            "INSERT INTO alert_outbox (alert_id, route, action, event, created_at) VALUES ($1, $2, $3, $4, to_timestamp($5))",
        )
        .bind(alert_id)
        .bind(route)
        .bind(action.name())
        .bind(&event)
        .bind(now_unix_s as f64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(routes.len())
}

async fn write_status(tx: &mut Transaction<'_, Postgres>, burns: &[BudgetBurn], now_unix_s: i64) -> Result<(), sqlx::Error> {
    for chunk in burns.chunks(10_000) {
        let ids: Vec<i64> = chunk.iter().map(|b| b.budget_id).collect();
        let starts: Vec<f64> = chunk.iter().map(|b| b.period_start_unix_s as f64).collect();
        let ends: Vec<f64> = chunk.iter().map(|b| b.period_end_unix_s as f64).collect();
        let actual: Vec<f64> = chunk.iter().map(|b| b.actual_g_co2e).collect();
        let r1: Vec<f64> = chunk.iter().map(|b| b.burn_rate_1h).collect();
        let r24: Vec<f64> = chunk.iter().map(|b| b.burn_rate_24h).collect();
        sqlx::query(
            "INSERT INTO budget_status (budget_id, evaluated_at, period_start, period_end, actual_g_co2e, burn_rate_1h, burn_rate_24h)
             SELECT u.id, to_timestamp($7), to_timestamp(u.s), to_timestamp(u.e), u.a, u.r1, u.r24
             FROM unnest($1::bigint[], $2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[])
                  AS u(id, s, e, a, r1, r24)
             WHERE EXISTS (SELECT 1 FROM budgets WHERE budget_id = u.id)
             ON CONFLICT (budget_id) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at,
                 period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
                 actual_g_co2e = EXCLUDED.actual_g_co2e, burn_rate_1h = EXCLUDED.burn_rate_1h,
                 burn_rate_24h = EXCLUDED.burn_rate_24h",
        )
        .bind(&ids)
        .bind(&starts)
        .bind(&ends)
        .bind(&actual)
        .bind(&r1)
        .bind(&r24)
        .bind(now_unix_s as f64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Acknowledges a firing alert on behalf of `by` and enqueues the
/// acknowledgement to the routes that got its trigger.
/// Audited (`alert.acknowledge`, actor `actor`) in the same transaction.
pub async fn acknowledge(
    pool: &PgPool,
    config: &AlertsConfig,
    actor: &str,
    alert_id: i64,
    by: &str,
    now_unix_s: i64,
) -> Result<usize, super::AlertError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(EVALUATION_LOCK).execute(&mut *tx).await?;
    let n = sqlx::query(
        "UPDATE alerts SET acknowledged_at = to_timestamp($2), acknowledged_by = $3
         WHERE alert_id = $1 AND status = 'firing' AND acknowledged_at IS NULL",
    )
    .bind(alert_id)
    .bind(now_unix_s as f64)
    .bind(by)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(super::AlertError::NotFound(format!("unacknowledged firing alert {alert_id}")));
    }
    sqlx::query("INSERT INTO alert_events (alert_id, at, event, detail) VALUES ($1, to_timestamp($2), 'acknowledged', $3)")
        .bind(alert_id)
        .bind(now_unix_s as f64)
        .bind(format!("acknowledged by {by}"))
        .execute(&mut *tx)
        .await?;
    let enqueued = enqueue(&mut tx, alert_id, Action::Acknowledge, config, now_unix_s).await?;
    crate::auth::audit::record(
        &mut tx,
        actor,
        "alert.acknowledge",
        &format!("alert:{alert_id}"),
        Some(&serde_json::json!({ "status": "firing", "acknowledged_by": null })),
        Some(&serde_json::json!({ "status": "firing", "acknowledged_by": by, "acknowledged_unix_s": now_unix_s })),
    )
    .await?;
    tx.commit().await?;
    Ok(enqueued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(level: i16) -> Firing {
        Firing { level, severity: Severity::Warning, summary: String::new(), value_g_co2e: 0.0, budget_g_co2e: 1.0 }
    }

    fn s(firing: bool, level: i16, notified: i16) -> Stored {
        Stored { alert_id: 1, firing, level, notified_level: notified }
    }

    #[test]
    fn triggers_once_escalates_and_resolves() {
        // New condition: one trigger.
        let d = decide(None, Some(&f(1)), false);
        assert_eq!((d.new_state, d.event, d.notify), (Some((true, 1, 1)), Some("fired"), Some(Action::Trigger)));
        // Same level again: nothing.
        assert_eq!(decide(Some(&s(true, 1, 1)), Some(&f(1)), false).new_state, None);
        // Higher threshold: re-notify.
        let d = decide(Some(&s(true, 1, 1)), Some(&f(3)), false);
        assert_eq!((d.event, d.notify), (Some("escalated"), Some(Action::Trigger)));
        // Lower again: state follows, no notification; back up: no second notification.
        let d = decide(Some(&s(true, 3, 3)), Some(&f(2)), false);
        assert_eq!((d.new_state, d.notify), (Some((true, 2, 3)), None));
        assert_eq!(decide(Some(&s(true, 2, 3)), Some(&f(3)), false).notify, None);
        // Cleared: one resolve.
        let d = decide(Some(&s(true, 3, 3)), None, false);
        assert_eq!((d.new_state, d.event, d.notify), (Some((false, 0, 3)), Some("resolved"), Some(Action::Resolve)));
        assert_eq!(decide(Some(&s(false, 0, 3)), None, false), Decision { new_state: None, event: None, notify: None });
    }

    #[test]
    fn silences_hold_notifications_until_they_expire() {
        let d = decide(None, Some(&f(2)), true);
        assert_eq!((d.new_state, d.event, d.notify), (Some((true, 2, 0)), Some("silenced"), None));
        // Silence expired, still firing: notified now.
        let d = decide(Some(&s(true, 2, 0)), Some(&f(2)), false);
        assert_eq!((d.event, d.notify), (Some("fired"), Some(Action::Trigger)));
        // Never notified, clears: resolved without a resolve notification.
        let d = decide(Some(&s(true, 2, 0)), None, false);
        assert_eq!((d.event, d.notify), (Some("resolved"), None));
    }

    /// A forecast plug-in answering one fixed figure (stands for the
    /// forecasting library at the plug point; the evaluator's part is tested).
    struct Fixed(f64);

    impl ForecastSource for Fixed {
        fn forecast_total_g_co2e(&self, _: &Scope, _: BasisColumn, _: i64, _: i64) -> Option<(f64, f64, f64)> {
            Some((self.0, self.0 * 0.9, self.0 * 1.1))
        }
    }

    fn budget(forecast_overshoot: bool) -> Budget {
        let spec = budgets::parse_spec(&json!({
            "name": "web", "period": "month", "amount_kg_co2e": 10.0, "forecast_overshoot": forecast_overshoot,
        }))
        .unwrap();
        Budget { budget_id: 7, spec }
    }

    #[test]
    fn forecast_overshoot_plugs_in_through_the_trait() {
        let now = 1_796_601_600; // 2026-12-07
        let snap = UsageSnapshot::default();
        let (burn, firing) = conditions(&budget(true), &snap, &Fixed(12_000.0), &NoAnomalies, now).unwrap();
        assert_eq!(burn.actual_g_co2e, 0.0);
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].0, "forecast_overshoot");
        assert_eq!(firing[0].1.severity, Severity::Warning);
        assert!(firing[0].1.summary.contains("12.0 kgCO2e (80 % interval 10.8-13.2) of 10.0"), "{}", firing[0].1.summary);
        // Under the amount, or switched off: nothing.
        assert!(conditions(&budget(true), &snap, &Fixed(9_000.0), &NoAnomalies, now).unwrap().1.is_empty());
        assert!(conditions(&budget(false), &snap, &Fixed(12_000.0), &NoAnomalies, now).unwrap().1.is_empty());
        assert!(conditions(&budget(true), &snap, &NoForecast, &NoAnomalies, now).unwrap().1.is_empty());
        assert_eq!(alert_key(7, "forecast_overshoot", burn.period_start_unix_s), "budget/7/forecast_overshoot/20261201");
    }

    #[test]
    fn severity_mapping() {
        assert_eq!(Severity::for_threshold_pct(50.0), Severity::Warning);
        assert_eq!(Severity::for_threshold_pct(80.0), Severity::Error);
        assert_eq!(Severity::for_threshold_pct(100.0), Severity::Critical);
        assert_eq!(Severity::for_threshold_pct(150.0), Severity::Critical);
    }
}
