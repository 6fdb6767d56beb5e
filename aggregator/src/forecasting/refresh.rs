//! The forecast refresher: each refresh reads the complete UTC days of the
//! last [`HISTORY_DAYS`] from the daily rollups and the complete UTC hours
//! since an anchored Monday from the hourly rollups, per (account, team,
//! service), sums them into every scope (the organisation, each OU, account,
//! team and service, and each budget's own scope) on every basis column the
//! budgets use (and location-based, the API's default), then, off the async
//! workers, forecasts each scope's daily series and scans the team, account,
//! service and budget scopes for anomalies at hourly and daily resolution.
//! The results replace the cache the evaluator reads ([`Forecasts`]) and
//! each scope's rows of `forecast_points` (one transaction per scope).
//!
//! Anomaly windows start at a Monday 00:00 UTC (5 to 6 weeks back for hours,
//! 13 to 14 weeks for days) that moves once a week, and at a scope's first
//! data when that is later, so consecutive refreshes report the same
//! episodes with the same start. An episode is *open* while it reaches the
//! last complete point or ended less than `anomaly_hold` before it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use canopy_forecast::{AnomalyConfig, AnomalyKind, DailyForecast, Resolution, detect};
use sqlx::{PgPool, Row};

use super::metrics::ForecastMetrics;
use super::{
    DAY_S, ForecastingConfig, HISTORY_DAYS, basis_of, forecast_history, model_name,
    monday_on_or_before, scope_key,
};
use crate::alerts::basis::{BasisColumn, basis_column};
use crate::alerts::budgets::{self, Scope};
use crate::alerts::evaluate::{Anomaly as AlertAnomaly, AnomalySource, ForecastSource};
use crate::query::plan::rfc3339;

const HOUR_S: i64 = 3_600;
const WEEK_S: i64 = 7 * DAY_S;
/// Weeks of hourly history before the anchor moves (the crate's hourly
/// warm-up is 3 weeks; 5 is what its round benchmark uses).
const HOURLY_WEEKS: i64 = 5;
/// Weeks of daily history scanned for anomalies (warm-up 4 weeks + 1 day).
const DAILY_WEEKS: i64 = 13;

/// One scope's forecast as the evaluator uses it: the history it was
/// computed from (for the period's actual part) and the forecast.
#[derive(Debug, Clone)]
struct CachedForecast {
    history_first_day_unix_s: i64,
    history_g_co2e: Vec<f64>,
    forecast: DailyForecast,
}

/// An open anomaly episode of a scope.
#[derive(Debug, Clone)]
pub struct OpenAnomaly {
    /// Hourly or daily.
    pub resolution: Resolution,
    /// The episode as the detector reported it.
    pub anomaly: canopy_forecast::Anomaly,
}

#[derive(Debug, Default)]
struct Cache {
    refreshed_for_unix_s: Option<i64>,
    forecasts: HashMap<(String, &'static str), CachedForecast>,
    anomalies: HashMap<(String, &'static str), Vec<OpenAnomaly>>,
}

/// The latest refresh's results, shared by the refresher (writer) and the
/// alert evaluator (reader).
#[derive(Debug, Default)]
pub struct Forecasts {
    cache: RwLock<Cache>,
}

impl Forecasts {
    /// An empty cache (no forecast, no anomaly until the first refresh).
    pub fn new() -> Arc<Forecasts> {
        Arc::new(Forecasts::default())
    }

    /// The "now" of the refresh the cache holds.
    pub fn refreshed_for_unix_s(&self) -> Option<i64> {
        self.cache
            .read()
            .expect("forecast cache lock")
            .refreshed_for_unix_s
    }

    /// The open anomaly episodes of `scope` on `column` (hourly first).
    pub fn open_anomalies(&self, scope: &Scope, column: BasisColumn) -> Vec<OpenAnomaly> {
        let cache = self.cache.read().expect("forecast cache lock");
        cache
            .anomalies
            .get(&(scope_key(scope), column.sql_name()))
            .cloned()
            .unwrap_or_default()
    }
}

impl ForecastSource for Forecasts {
    /// Emitted in `[from, first forecast day)` (complete days) plus the
    /// forecast through `to`, with the 80 % interval of the forecast part.
    fn forecast_total_g_co2e(
        &self,
        scope: &Scope,
        column: BasisColumn,
        from_unix_s: i64,
        to_unix_s: i64,
    ) -> Option<(f64, f64, f64)> {
        let cache = self.cache.read().expect("forecast cache lock");
        let c = cache
            .forecasts
            .get(&(scope_key(scope), column.sql_name()))?;
        let first = c.forecast.first_day_unix_s;
        if from_unix_s > first {
            // Only periods that contain the forecast's start are asked for.
            return None;
        }
        let actual: f64 = c
            .history_g_co2e
            .iter()
            .enumerate()
            .filter(|(i, _)| c.history_first_day_unix_s + *i as i64 * DAY_S >= from_unix_s)
            .map(|(_, v)| v)
            .sum();
        let (lo, point, hi) = c.forecast.total_interval_until_g_co2e(to_unix_s, 0.8);
        Some((actual + point, actual + lo, actual + hi))
    }
}

impl AnomalySource for Forecasts {
    fn active_anomaly(
        &self,
        scope: &Scope,
        column: BasisColumn,
        _now_unix_s: i64,
    ) -> Option<AlertAnomaly> {
        let open = self.open_anomalies(scope, column);
        let o = open
            .iter()
            .find(|o| o.anomaly.ongoing)
            .or_else(|| open.first())?;
        let a = &o.anomaly;
        Some(AlertAnomaly {
            observed_g_co2e: a.peak_actual_g_co2e,
            expected_g_co2e: a.peak_expected_g_co2e,
            description: format!(
                "{} {} since {} ({} {}{}): peak {:.3} kgCO2e at {} against {:.3} expected ({:+.1} sigma), {:.3} kgCO2e above expected in all",
                match o.resolution {
                    Resolution::Hourly => "hourly",
                    Resolution::Daily => "daily",
                },
                match a.kind {
                    AnomalyKind::Spike => "spike",
                    AnomalyKind::LevelShift => "level shift",
                },
                rfc3339(a.start_unix_s),
                a.points,
                match o.resolution {
                    Resolution::Hourly => "hours",
                    Resolution::Daily => "days",
                },
                if a.ongoing { ", ongoing" } else { "" },
                a.peak_actual_g_co2e / 1_000.0,
                rfc3339(a.peak_unix_s),
                a.peak_expected_g_co2e / 1_000.0,
                a.peak_score,
                a.excess_g_co2e / 1_000.0,
            ),
        })
    }
}

/// What one refresh did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefreshReport {
    /// Scopes summed.
    pub scopes: usize,
    /// Forecast series computed (scope × basis) and stored.
    pub forecasts: usize,
    /// Forecast and anomaly series skipped for too little history.
    pub skipped_short_history: usize,
    /// Series the library refused (logged).
    pub errors: usize,
    /// Anomaly series scanned (hourly and daily).
    pub anomaly_series: usize,
    /// Anomaly episodes open at the end.
    pub open_anomalies: usize,
    /// Rollup rows read.
    pub rows_read: usize,
    /// Seconds the refresh took.
    pub duration_s: f64,
}

/// One scope the refresh sums.
#[derive(Debug, Clone)]
struct ScopeDef {
    scope: Scope,
    key: String,
    /// Scanned for anomalies (teams, accounts, services, budget scopes
    /// narrower than an OU).
    anomalies: bool,
    /// A budget's scope: its forecast is kept in the cache.
    budget: bool,
}

#[derive(Debug, Default)]
struct Scopes {
    defs: Vec<ScopeDef>,
    ids: HashMap<String, u32>,
}

impl Scopes {
    fn register(&mut self, scope: Scope, anomalies: bool, budget: bool) -> u32 {
        let key = scope_key(&scope);
        if let Some(id) = self.ids.get(&key) {
            let d = &mut self.defs[*id as usize];
            d.anomalies |= anomalies;
            d.budget |= budget;
            return *id;
        }
        let id = self.defs.len() as u32;
        self.ids.insert(key.clone(), id);
        self.defs.push(ScopeDef {
            scope,
            key,
            anomalies,
            budget,
        });
        id
    }
}

/// The series of every scope, one refresh's worth.
struct Sums {
    columns: Vec<BasisColumn>,
    days: usize,
    hours: usize,
    /// Per scope: `columns × days` values (None: no row).
    daily: Vec<Option<Vec<f64>>>,
    /// Per anomaly scope: `columns × hours` values.
    hourly: Vec<Option<Vec<f64>>>,
}

fn add(slot: &mut Option<Vec<f64>>, len: usize, at: usize, values: &[f64]) {
    let v = slot.get_or_insert_with(|| vec![0.0; len * values.len()]);
    for (c, x) in values.iter().enumerate() {
        v[c * len + at] += x;
    }
}

/// The refresh loop's state.
pub struct Refresher {
    /// Pool (the alerting pool: reads rollups, writes `forecast_points`).
    pub pool: PgPool,
    /// Configuration.
    pub config: ForecastingConfig,
    /// The cache the evaluator reads.
    pub forecasts: Arc<Forecasts>,
    /// Counters.
    pub metrics: Arc<ForecastMetrics>,
}

impl Refresher {
    /// One refresh at `now_unix_s`: reads, computes, replaces the cache and
    /// the stored forecasts.
    pub async fn refresh(&self, now_unix_s: i64) -> Result<RefreshReport, sqlx::Error> {
        let started = std::time::Instant::now();
        let today = now_unix_s.div_euclid(DAY_S) * DAY_S;
        let hour_end = now_unix_s.div_euclid(HOUR_S) * HOUR_S;
        let from_day = today - HISTORY_DAYS * DAY_S;
        let hourly_from = monday_on_or_before(hour_end - HOURLY_WEEKS * WEEK_S);
        let daily_anomaly_from = monday_on_or_before(today - DAILY_WEEKS * WEEK_S);

        // Scopes: budgets' first (their columns decide the bases).
        let budgets = budgets::list(&self.pool).await?;
        let mut columns = vec![BasisColumn::LocationTotal];
        let mut scopes = Scopes::default();
        // Budget scopes with more than one field (or an OU and more),
        // indexed under exactly one of their fields.
        let mut combos: HashMap<(u8, String), Vec<u32>> = HashMap::new();
        for b in &budgets {
            if let Ok(c) = basis_column(b.spec.basis)
                && !columns.contains(&c)
            {
                columns.push(c);
            }
            let s = &b.spec.scope;
            let narrower_than_ou =
                s.account_id.is_some() || s.team.is_some() || s.service.is_some();
            let id = scopes.register(s.clone(), narrower_than_ou, true);
            let fields = [&s.ou_id, &s.account_id, &s.team, &s.service]
                .iter()
                .filter(|f| f.is_some())
                .count();
            if fields > 1 {
                let index = if let Some(a) = &s.account_id {
                    (1, a.clone())
                } else if let Some(t) = &s.team {
                    (2, t.clone())
                } else if let Some(v) = &s.service {
                    (3, v.clone())
                } else {
                    (0, s.ou_id.clone().unwrap_or_default())
                };
                let list = combos.entry(index).or_default();
                if !list.contains(&id) {
                    list.push(id);
                }
            }
        }
        let org = scopes.register(Scope::default(), false, false);
        let mut ou_paths: HashMap<String, String> = HashMap::new();
        for row in sqlx::query("SELECT account_id, ou_path FROM accounts")
            .fetch_all(&self.pool)
            .await?
        {
            ou_paths.insert(row.try_get("account_id")?, row.try_get("ou_path")?);
        }

        let days = HISTORY_DAYS as usize;
        let hours = ((hour_end - hourly_from) / HOUR_S) as usize;
        let mut sums = Sums {
            columns: columns.clone(),
            days,
            hours,
            daily: Vec::new(),
            hourly: Vec::new(),
        };
        let mut leaves: HashMap<(String, String, String), Vec<u32>> = HashMap::new();
        let mut leaf_ids =
            |scopes: &mut Scopes, account: &str, team: &str, service: &str| -> Vec<u32> {
                if let Some(ids) =
                    leaves.get(&(account.to_owned(), team.to_owned(), service.to_owned()))
                {
                    return ids.clone();
                }
                let path = ou_paths.get(account).map(String::as_str).unwrap_or("");
                let mut ids = vec![org];
                for seg in path.split('/').filter(|s| !s.is_empty()) {
                    ids.push(scopes.register(
                        Scope {
                            ou_id: Some(seg.to_owned()),
                            ..Scope::default()
                        },
                        false,
                        false,
                    ));
                }
                ids.push(scopes.register(
                    Scope {
                        account_id: Some(account.to_owned()),
                        ..Scope::default()
                    },
                    true,
                    false,
                ));
                if !team.is_empty() {
                    ids.push(scopes.register(
                        Scope {
                            team: Some(team.to_owned()),
                            ..Scope::default()
                        },
                        true,
                        false,
                    ));
                }
                ids.push(scopes.register(
                    Scope {
                        service: Some(service.to_owned()),
                        ..Scope::default()
                    },
                    true,
                    false,
                ));
                let mut keys: Vec<(u8, String)> = vec![
                    (1, account.to_owned()),
                    (2, team.to_owned()),
                    (3, service.to_owned()),
                ];
                keys.extend(
                    path.split('/')
                        .filter(|s| !s.is_empty())
                        .map(|s| (0, s.to_owned())),
                );
                for k in &keys {
                    for id in combos.get(k).into_iter().flatten() {
                        if scopes.defs[*id as usize].scope.covers(account, path, team, service) {
                            ids.push(*id);
                        }
                    }
                }
                ids.sort_unstable();
                ids.dedup();
                leaves.insert(
                    (account.to_owned(), team.to_owned(), service.to_owned()),
                    ids.clone(),
                );
                ids
            };

        let value_columns = |row: &sqlx::postgres::PgRow| -> Result<Vec<f64>, sqlx::Error> {
            columns
                .iter()
                .map(|c| row.try_get::<f64, _>(c.sql_name()))
                .collect()
        };
        let select = |table: &str| {
            format!(
                "SELECT account_id, team, service, extract(epoch FROM bucket_start)::bigint AS t,
                        sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e,
                        sum(operational_location_g_co2e) AS operational_location_g_co2e,
                        sum(operational_market_g_co2e) AS operational_market_g_co2e
                 FROM {table} WHERE bucket_start >= to_timestamp($1) AND bucket_start < to_timestamp($2)
                 GROUP BY 1, 2, 3, 4"
            )
        };
        let daily_rows = sqlx::query(&select("rollup_daily"))
            .bind(from_day as f64)
            .bind(today as f64)
            .fetch_all(&self.pool)
            .await?;
        let mut rows_read = daily_rows.len();
        for row in &daily_rows {
            let (account, team, service): (String, String, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let t: i64 = row.try_get(3)?;
            let values = value_columns(row)?;
            let at = ((t - from_day) / DAY_S) as usize;
            for id in leaf_ids(&mut scopes, &account, &team, &service) {
                let id = id as usize;
                if sums.daily.len() <= id {
                    sums.daily.resize(id + 1, None);
                }
                add(&mut sums.daily[id], days, at, &values);
            }
        }
        drop(daily_rows);
        let hourly_rows = sqlx::query(&select("rollup_hourly"))
            .bind(hourly_from as f64)
            .bind(hour_end as f64)
            .fetch_all(&self.pool)
            .await?;
        rows_read += hourly_rows.len();
        for row in &hourly_rows {
            let (account, team, service): (String, String, String) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let t: i64 = row.try_get(3)?;
            let values = value_columns(row)?;
            let at = ((t - hourly_from) / HOUR_S) as usize;
            for id in leaf_ids(&mut scopes, &account, &team, &service) {
                if !scopes.defs[id as usize].anomalies {
                    continue;
                }
                let id = id as usize;
                if sums.hourly.len() <= id {
                    sums.hourly.resize(id + 1, None);
                }
                add(&mut sums.hourly[id], hours, at, &values);
            }
        }
        drop(hourly_rows);
        let defs = scopes.defs;
        sums.daily.resize(defs.len(), None);
        sums.hourly.resize(defs.len(), None);

        // Computation off the async workers.
        let config = self.config.clone();
        let window = Window {
            from_day,
            today,
            hourly_from,
            hour_end,
            daily_anomaly_from,
        };
        let (defs, sums, computed) = tokio::task::spawn_blocking(move || {
            let computed = compute(&defs, &sums, &config, &window);
            (defs, sums, computed)
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("forecast computation panicked: {e}")))?;

        let mut report = RefreshReport {
            scopes: defs.len(),
            forecasts: computed.forecasts.len(),
            skipped_short_history: computed.skipped,
            errors: computed.errors,
            anomaly_series: computed.anomaly_series,
            open_anomalies: computed.anomalies.values().map(Vec::len).sum(),
            rows_read,
            duration_s: 0.0,
        };

        // Store every forecast, one scope per transaction, then sweep the
        // scopes this refresh no longer forecasts.
        for (id, column, f) in &computed.forecasts {
            self.store(&defs[*id].key, basis_of(*column).name(), f, now_unix_s)
                .await?;
        }
        sqlx::query("DELETE FROM forecast_points WHERE computed_at < to_timestamp($1)")
            .bind(now_unix_s as f64)
            .execute(&self.pool)
            .await?;

        let mut cache = Cache {
            refreshed_for_unix_s: Some(now_unix_s),
            ..Cache::default()
        };
        for (id, column, f) in computed.forecasts {
            let def = &defs[id];
            if !def.budget {
                continue;
            }
            let c = columns
                .iter()
                .position(|c| *c == column)
                .expect("a computed column");
            let history = daily_of(&sums, id, c);
            cache.forecasts.insert(
                (def.key.clone(), column.sql_name()),
                CachedForecast {
                    history_first_day_unix_s: from_day,
                    history_g_co2e: history,
                    forecast: f,
                },
            );
        }
        for ((id, c), list) in computed.anomalies {
            cache
                .anomalies
                .insert((defs[id].key.clone(), columns[c].sql_name()), list);
        }
        *self.forecasts.cache.write().expect("forecast cache lock") = cache;
        report.duration_s = started.elapsed().as_secs_f64();
        self.metrics.observe(&report);
        Ok(report)
    }

    /// Replaces the stored forecast of one scope and basis.
    async fn store(
        &self,
        key: &str,
        basis: &str,
        f: &DailyForecast,
        now_unix_s: i64,
    ) -> Result<(), sqlx::Error> {
        let days: Vec<i64> = (0..f.len()).map(|i| f.day_unix_s(i)).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM forecast_points WHERE scope_key = $1 AND basis = $2")
            .bind(key)
            .bind(basis)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO forecast_points (scope_key, basis, day, point_g_co2e, lower80_g_co2e, upper80_g_co2e,
                    lower95_g_co2e, upper95_g_co2e, model, computed_at)
             SELECT $1, $2, to_timestamp(d), p, l80, u80, l95, u95, $3, to_timestamp($4)
             FROM unnest($5::bigint[], $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[])
                 AS t(d, p, l80, u80, l95, u95)",
        )
        .bind(key)
        .bind(basis)
        .bind(model_name(&f.model))
        .bind(now_unix_s as f64)
        .bind(&days)
        .bind(&f.point_g_co2e)
        .bind(&f.lower80_g_co2e)
        .bind(&f.upper80_g_co2e)
        .bind(&f.lower95_g_co2e)
        .bind(&f.upper95_g_co2e)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Refreshes forever, every `config.refresh_interval` (the first at once).
    pub async fn run_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.refresh_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.refresh(crate::http::system_clock()).await {
                Ok(r) => tracing::info!(
                    scopes = r.scopes,
                    forecasts = r.forecasts,
                    skipped_short_history = r.skipped_short_history,
                    errors = r.errors,
                    anomaly_series = r.anomaly_series,
                    open_anomalies = r.open_anomalies,
                    rows_read = r.rows_read,
                    duration_s = r.duration_s,
                    "forecast refresh"
                ),
                Err(e) => {
                    self.metrics
                        .refresh_failures_total
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "forecast refresh failed; the previous results stay in use, retrying next tick");
                }
            }
        }
    }
}

/// The instants one refresh works with.
struct Window {
    from_day: i64,
    today: i64,
    hourly_from: i64,
    hour_end: i64,
    daily_anomaly_from: i64,
}

/// What the computation produced.
struct Computed {
    /// (scope index, column, forecast).
    forecasts: Vec<(usize, BasisColumn, DailyForecast)>,
    /// (scope index, column index) → open episodes.
    anomalies: HashMap<(usize, usize), Vec<OpenAnomaly>>,
    skipped: usize,
    errors: usize,
    anomaly_series: usize,
}

/// One scope's daily history on one column.
fn daily_of(sums: &Sums, id: usize, column_index: usize) -> Vec<f64> {
    let d = sums.days;
    match &sums.daily[id] {
        Some(v) => v[column_index * d..(column_index + 1) * d].to_vec(),
        None => vec![0.0; d],
    }
}

fn compute(defs: &[ScopeDef], sums: &Sums, config: &ForecastingConfig, w: &Window) -> Computed {
    let mut out = Computed {
        forecasts: Vec::new(),
        anomalies: HashMap::new(),
        skipped: 0,
        errors: 0,
        anomaly_series: 0,
    };
    let hold_s = config.anomaly_hold.as_secs() as i64;
    let hourly_config = AnomalyConfig::hourly(config.anomaly_min_hourly_g_co2e);
    let daily_config = AnomalyConfig::daily(config.anomaly_min_daily_g_co2e);
    let (d, h) = (sums.days, sums.hours);
    for (id, def) in defs.iter().enumerate() {
        for (c, column) in sums.columns.iter().enumerate() {
            let Some(daily) = &sums.daily[id] else {
                out.skipped += 1;
                continue;
            };
            let daily = &daily[c * d..(c + 1) * d];
            match forecast_history(w.from_day, daily) {
                Ok(f) => out.forecasts.push((id, *column, f)),
                Err(canopy_forecast::Error::NotEnoughHistory { .. }) => out.skipped += 1,
                Err(e) => {
                    out.errors += 1;
                    tracing::warn!(scope = %def.key, basis = basis_of(*column).name(), error = %e, "forecast refused");
                }
            }
            if !def.anomalies {
                continue;
            }
            let mut open = Vec::new();
            let skip = ((w.daily_anomaly_from - w.from_day) / DAY_S) as usize;
            let series: [(Resolution, i64, &[f64], &AnomalyConfig, i64); 2] = [
                (
                    Resolution::Hourly,
                    w.hourly_from,
                    sums.hourly
                        .get(id)
                        .and_then(Option::as_ref)
                        .map_or(&[][..], |v| &v[c * h..(c + 1) * h]),
                    &hourly_config,
                    w.hour_end,
                ),
                (
                    Resolution::Daily,
                    w.daily_anomaly_from,
                    &daily[skip.min(d)..],
                    &daily_config,
                    w.today,
                ),
            ];
            for (resolution, first, values, cfg, end) in series {
                let step = resolution.step_s();
                let Some(start) = values.iter().position(|v| *v > 0.0) else {
                    out.skipped += 1;
                    continue;
                };
                let values = &values[start..];
                if values.len() <= cfg.warmup_points() {
                    out.skipped += 1;
                    continue;
                }
                out.anomaly_series += 1;
                match detect(values, first + start as i64 * step, cfg) {
                    Ok(found) => open.extend(
                        found
                            .into_iter()
                            .filter(|a| a.ongoing || a.end_unix_s + hold_s > end)
                            .map(|anomaly| OpenAnomaly {
                                resolution,
                                anomaly,
                            }),
                    ),
                    Err(e) => {
                        out.errors += 1;
                        tracing::warn!(scope = %def.key, error = %e, "anomaly scan refused");
                    }
                }
            }
            if !open.is_empty() {
                out.anomalies.insert((id, c), open);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_scopes_cover_their_leaves() {
        let s = Scope {
            team: Some("web".into()),
            ou_id: Some("ou-a".into()),
            ..Scope::default()
        };
        assert!(s.covers("1", "r-1/ou-a/ou-b", "web", "AmazonEC2"));
        assert!(!s.covers("1", "r-1/ou-ab", "web", "AmazonEC2"));
        assert!(!s.covers("1", "r-1/ou-a", "data", "AmazonEC2"));
        assert!(Scope::default().covers("1", "", "", "x"));
    }

    #[test]
    fn sums_are_laid_out_per_column() {
        let mut slot = None;
        add(&mut slot, 3, 1, &[1.0, 10.0]);
        add(&mut slot, 3, 1, &[2.0, 20.0]);
        assert_eq!(slot.unwrap(), vec![0.0, 3.0, 0.0, 0.0, 30.0, 0.0]);
    }
}
