//! One evaluation round's read of the rollups: per (account, team, service)
//! the monthly location and market totals since the earliest budget period
//! start, and the sums over the last complete hour and the last 24 complete
//! hours, indexed by account, team and service so that tens of thousands of
//! budgets each read only their own series. Budget periods start on UTC
//! month boundaries, so the monthly rollups answer them exactly (they are
//! maintained by ingest, or real-time continuous aggregates on TimescaleDB,
//! so they include every acknowledged batch).

use std::collections::HashMap;

use sqlx::{PgPool, Row};

use super::basis::BasisColumn;
use super::budgets::Scope;

/// Location and market grams CO2e, totals and their operational parts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Grams {
    /// Location-based, operational + embodied, gCO2e.
    pub location_g_co2e: f64,
    /// Market-based, operational + embodied, gCO2e.
    pub market_g_co2e: f64,
    /// Location-based, operational only, gCO2e.
    pub operational_location_g_co2e: f64,
    /// Market-based, operational only, gCO2e.
    pub operational_market_g_co2e: f64,
}

impl Grams {
    /// The value on `column`.
    pub fn on(&self, column: BasisColumn) -> f64 {
        match column {
            BasisColumn::LocationTotal => self.location_g_co2e,
            BasisColumn::MarketTotal => self.market_g_co2e,
            BasisColumn::LocationOperational => self.operational_location_g_co2e,
            BasisColumn::MarketOperational => self.operational_market_g_co2e,
        }
    }

    fn add(&mut self, other: Grams) {
        self.location_g_co2e += other.location_g_co2e;
        self.market_g_co2e += other.market_g_co2e;
        self.operational_location_g_co2e += other.operational_location_g_co2e;
        self.operational_market_g_co2e += other.operational_market_g_co2e;
    }
}

/// One (account, team, service) series.
#[derive(Debug, Clone, Default)]
struct Series {
    account: u32,
    team: u32,
    service: u32,
    /// (month start Unix s, grams), ascending.
    months: Vec<(i64, Grams)>,
    last_1h: Grams,
    last_24h: Grams,
}

/// Sums of a scope for one period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScopeUsage {
    /// Within `[period start, period end)`.
    pub period: Grams,
    /// Over the last complete hour.
    pub last_1h: Grams,
    /// Over the last 24 complete hours.
    pub last_24h: Grams,
}

#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(s.to_owned(), id);
        id
    }
    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }
}

/// The rollups as one round sees them.
#[derive(Debug, Default)]
pub struct UsageSnapshot {
    accounts: Interner,
    teams: Interner,
    services: Interner,
    series: Vec<Series>,
    by_account: HashMap<u32, Vec<u32>>,
    by_team: HashMap<u32, Vec<u32>>,
    by_service: HashMap<u32, Vec<u32>>,
    /// OU id → accounts whose OU path contains it.
    by_ou: HashMap<String, Vec<u32>>,
    /// Rows read (for the round's log and the benchmark).
    pub rows_read: usize,
}

impl UsageSnapshot {
    /// Reads the rollups: monthly totals from `since_unix_s` (a UTC month
    /// start) to now, and the hours before `hour_end_unix_s` (a UTC hour).
    pub async fn load(pool: &PgPool, since_unix_s: i64, hour_end_unix_s: i64) -> Result<UsageSnapshot, sqlx::Error> {
        let mut snap = UsageSnapshot::default();
        let mut index: HashMap<(u32, u32, u32), u32> = HashMap::new();
        // One row per series, its months as arrays (13 x fewer rows to decode).
        let monthly = sqlx::query(
            "SELECT account_id, team, service, array_agg(m ORDER BY m) AS ms, array_agg(loc ORDER BY m) AS locs,
                    array_agg(mkt ORDER BY m) AS mkts, array_agg(oloc ORDER BY m) AS olocs,
                    array_agg(omkt ORDER BY m) AS omkts
             FROM (SELECT extract(epoch FROM bucket_start)::bigint AS m, account_id, team, service,
                          sum(location_g_co2e) AS loc, sum(market_g_co2e) AS mkt,
                          sum(operational_location_g_co2e) AS oloc, sum(operational_market_g_co2e) AS omkt
                   FROM rollup_monthly WHERE bucket_start >= to_timestamp($1)
                   GROUP BY 1, 2, 3, 4) per_month
             GROUP BY 1, 2, 3",
        )
        .bind(since_unix_s as f64)
        .fetch_all(pool)
        .await?;
        for row in &monthly {
            let i = snap.series_index(&mut index, row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let ms: Vec<i64> = row.try_get(3)?;
            let locs: Vec<f64> = row.try_get(4)?;
            let mkts: Vec<f64> = row.try_get(5)?;
            let olocs: Vec<f64> = row.try_get(6)?;
            let omkts: Vec<f64> = row.try_get(7)?;
            snap.rows_read += ms.len();
            snap.series[i as usize].months = (0..ms.len())
                .map(|j| {
                    let grams = Grams {
                        location_g_co2e: locs[j],
                        market_g_co2e: mkts[j],
                        operational_location_g_co2e: olocs[j],
                        operational_market_g_co2e: omkts[j],
                    };
                    (ms[j], grams)
                })
                .collect();
        }
        let hourly = sqlx::query(
            "SELECT account_id, team, service,
                    sum(location_g_co2e) AS loc24, sum(market_g_co2e) AS mkt24,
                    coalesce(sum(location_g_co2e) FILTER (WHERE bucket_start >= to_timestamp($2)), 0) AS loc1,
                    coalesce(sum(market_g_co2e) FILTER (WHERE bucket_start >= to_timestamp($2)), 0) AS mkt1,
                    sum(operational_location_g_co2e) AS oloc24, sum(operational_market_g_co2e) AS omkt24,
                    coalesce(sum(operational_location_g_co2e) FILTER (WHERE bucket_start >= to_timestamp($2)), 0) AS oloc1,
                    coalesce(sum(operational_market_g_co2e) FILTER (WHERE bucket_start >= to_timestamp($2)), 0) AS omkt1
             FROM rollup_hourly WHERE bucket_start >= to_timestamp($1) AND bucket_start < to_timestamp($3)
             GROUP BY 1, 2, 3",
        )
        .bind((hour_end_unix_s - 24 * 3_600) as f64)
        .bind((hour_end_unix_s - 3_600) as f64)
        .bind(hour_end_unix_s as f64)
        .fetch_all(pool)
        .await?;
        snap.rows_read += hourly.len();
        for row in &hourly {
            let i = snap.series_index(&mut index, row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            let s = &mut snap.series[i as usize];
            s.last_24h = Grams {
                location_g_co2e: row.try_get("loc24")?,
                market_g_co2e: row.try_get("mkt24")?,
                operational_location_g_co2e: row.try_get("oloc24")?,
                operational_market_g_co2e: row.try_get("omkt24")?,
            };
            s.last_1h = Grams {
                location_g_co2e: row.try_get("loc1")?,
                market_g_co2e: row.try_get("mkt1")?,
                operational_location_g_co2e: row.try_get("oloc1")?,
                operational_market_g_co2e: row.try_get("omkt1")?,
            };
        }
        let accounts = sqlx::query("SELECT account_id, ou_path FROM accounts WHERE ou_path <> ''").fetch_all(pool).await?;
        for row in &accounts {
            let account: String = row.try_get("account_id")?;
            let path: String = row.try_get("ou_path")?;
            let id = snap.accounts.id(&account);
            for ou in path.split('/').filter(|s| !s.is_empty()) {
                snap.by_ou.entry(ou.to_owned()).or_default().push(id);
            }
        }
        Ok(snap)
    }

    fn series_index(&mut self, index: &mut HashMap<(u32, u32, u32), u32>, account: String, team: String, service: String) -> u32 {
        let key = (self.accounts.id(&account), self.teams.id(&team), self.services.id(&service));
        *index.entry(key).or_insert_with(|| {
            let i = self.series.len() as u32;
            self.series.push(Series { account: key.0, team: key.1, service: key.2, ..Series::default() });
            self.by_account.entry(key.0).or_default().push(i);
            self.by_team.entry(key.1).or_default().push(i);
            self.by_service.entry(key.2).or_default().push(i);
            i
        })
    }

    /// Sums of `scope` within `[from, to)` and over the last hours.
    pub fn usage(&self, scope: &Scope, from_unix_s: i64, to_unix_s: i64) -> ScopeUsage {
        let account = match &scope.account_id {
            Some(a) => match self.accounts.get(a) {
                Some(id) => Some(id),
                None => return ScopeUsage::default(),
            },
            None => None,
        };
        let team = match &scope.team {
            Some(t) => match self.teams.get(t) {
                Some(id) => Some(id),
                None => return ScopeUsage::default(),
            },
            None => None,
        };
        let service = match &scope.service {
            Some(s) => match self.services.get(s) {
                Some(id) => Some(id),
                None => return ScopeUsage::default(),
            },
            None => None,
        };
        let ou_accounts: Option<&[u32]> = match &scope.ou_id {
            Some(ou) => match self.by_ou.get(ou) {
                Some(a) => Some(a),
                None => return ScopeUsage::default(),
            },
            None => None,
        };
        let mut out = ScopeUsage::default();
        let mut add = |s: &Series| {
            if account.is_some_and(|a| a != s.account)
                || team.is_some_and(|t| t != s.team)
                || service.is_some_and(|v| v != s.service)
            {
                return;
            }
            for (m, g) in &s.months {
                if *m >= from_unix_s && *m < to_unix_s {
                    out.period.add(*g);
                }
            }
            out.last_1h.add(s.last_1h);
            out.last_24h.add(s.last_24h);
        };
        fn ids(map: &HashMap<u32, Vec<u32>>, k: u32) -> &[u32] {
            map.get(&k).map(Vec::as_slice).unwrap_or(&[])
        }
        if let Some(a) = account {
            if ou_accounts.is_none_or(|accs| accs.contains(&a)) {
                ids(&self.by_account, a).iter().for_each(|i| add(&self.series[*i as usize]));
            }
        } else if let Some(accs) = ou_accounts {
            for a in accs {
                ids(&self.by_account, *a).iter().for_each(|i| add(&self.series[*i as usize]));
            }
        } else if let Some(t) = team {
            ids(&self.by_team, t).iter().for_each(|i| add(&self.series[*i as usize]));
        } else if let Some(v) = service {
            ids(&self.by_service, v).iter().for_each(|i| add(&self.series[*i as usize]));
        } else {
            self.series.iter().for_each(&mut add);
        }
        out
    }

    /// Series held (for the benchmark).
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}
