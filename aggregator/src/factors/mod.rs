//! Factor sets the aggregator owns (issue 14, section 2): the built-in
//! annual location factors (compiled into `canopy_emissions`, versioned with
//! it), Electricity Maps hourly intensity per zone and hour, and market
//! factors per region and year, the last two imported as versioned sets
//! into PostgreSQL (migration 0023) by `canopy-aggregator factors
//! import-hourly|import-market`.
//!
//! In the live path ([`crate::delivery`]) the aggregator computes the
//! reported CO2e from the energy the agent sent ([`apply`]): the hour's
//! intensity of the region's zone when imported, else the annual factor
//! (which one is recorded per fact in its location lineage); market-based
//! from the region's market factors of the year, else market = location,
//! flagged `location-fallback`. Embodied, energy, bounds' relative width and
//! everything else stay the agent's.
//!
//! This module must never store a file it has not validated whole
//! ([`import`]), never change an imported version, and never call out to
//! the network: factor data arrives as files.

pub mod import;

use std::collections::{BTreeSet, HashMap};

use canopy_emissions::grid::{location_factor, zone_for_region};
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::accounting::FactParts;
use crate::model::{Accounting, FactRow};
use import::{FactorFileError, HourlyFactor, MarketFactor};

/// Location lineage prefix of a fact priced with the hourly intensity.
pub const HOURLY_SOURCE: &str = "hourly: Electricity Maps direct intensity (imported)";
/// The factor-set lock: every transaction that prices facts (ingest,
/// restatement chunks) holds it shared from its first statement, before any
/// other lock; an import holds it exclusively while it commits. So no batch
/// priced with the old version commits after the new version is visible,
/// and the restatement planned after the import sees every fact priced
/// with the old one (none escapes it by committing late). Import holds no
/// other lock, and the pricing transactions take it before anything else,
/// so it adds no deadlock cycle.
pub const FACTORS_LOCK_SQL: &str = "hashtextextended('canopy_factor_sets', 0)";

/// Takes [`FACTORS_LOCK_SQL`] exclusively for the rest of `tx`.
async fn lock_factor_sets_exclusively(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({FACTORS_LOCK_SQL})")).execute(&mut **tx).await?;
    Ok(())
}

/// Location lineage prefix of a fact priced with the annual factor.
pub const ANNUAL_PREFIX: &str = "annual: ";

/// A failed import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file was refused (nothing was imported).
    #[error("{0}; nothing imported")]
    Invalid(#[from] FactorFileError),
    /// The database failed (nothing was imported).
    #[error("database: {0}; nothing imported")]
    Sql(#[from] sqlx::Error),
}

/// What an import stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// `location-hourly` or `market`.
    pub factor_set: &'static str,
    /// The new version.
    pub version: i32,
    /// Values stored.
    pub values: u64,
}

fn read(file: &str) -> Result<String, ImportError> {
    std::fs::read_to_string(file).map_err(|source| ImportError::Read { file: file.to_owned(), source })
}

/// Imports Electricity Maps hourly files as the next version of the
/// `location-hourly` set: every file validated first, then everything in
/// one transaction. Two files giving one (zone, hour) different values are
/// refused like a file doing so.
pub async fn import_hourly(pool: &PgPool, files: &[String]) -> Result<Imported, ImportError> {
    let mut rows: Vec<HourlyFactor> = Vec::new();
    let mut seen: HashMap<(String, i64), (f64, String)> = HashMap::new();
    for file in files {
        for row in import::hourly_file(file, &read(file)?)? {
            let key = (row.zone.clone(), row.hour_start_unix_s);
            match seen.get(&key) {
                Some((value, other)) if *value != row.g_co2e_per_kwh => {
                    return Err(FactorFileError {
                        file: file.clone(),
                        line: 1,
                        column: 1,
                        message: format!(
                            "zone {} hour {} has {value} gCO2e/kWh in {other}, found {}",
                            row.zone, row.hour_start_unix_s, row.g_co2e_per_kwh
                        ),
                    }
                    .into());
                }
                Some(_) => continue,
                None => {
                    seen.insert(key, (row.g_co2e_per_kwh, file.clone()));
                }
            }
            rows.push(row);
        }
    }
    let mut tx = pool.begin().await?;
    lock_factor_sets_exclusively(&mut tx).await?;
    let version = next_version(&mut tx, "location-hourly", files, rows.len()).await?;
    for chunk in rows.chunks(10_000) {
        sqlx::query(
            "INSERT INTO hourly_intensity (zone, hour_start, version, g_co2e_per_kwh, estimated)
             SELECT z, to_timestamp(h), $5, g, e FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::bool[]) AS t(z, h, g, e)",
        )
        .bind(chunk.iter().map(|r| r.zone.as_str()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.hour_start_unix_s).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.g_co2e_per_kwh).collect::<Vec<_>>())
        .bind(chunk.iter().map(|r| r.estimated).collect::<Vec<_>>())
        .bind(version)
        .execute(&mut *tx)
        .await?;
    }
    crate::restatement::record_import(&mut tx, "location-hourly", version).await?;
    tx.commit().await?;
    tracing::info!(version, values = rows.len(), files = files.len(), "imported hourly intensity");
    Ok(Imported { factor_set: "location-hourly", version, values: rows.len() as u64 })
}

/// Imports a market factor file as the next version of the `market` set.
pub async fn import_market(pool: &PgPool, file: &str) -> Result<Imported, ImportError> {
    let rows: Vec<MarketFactor> = import::market_file(file, &read(file)?)?;
    let mut tx = pool.begin().await?;
    lock_factor_sets_exclusively(&mut tx).await?;
    let version = next_version(&mut tx, "market", &[file.to_owned()], rows.len()).await?;
    sqlx::query(
        "INSERT INTO market_factors (region, year, version, supplier_g_co2e_per_kwh, renewable_share,
                residual_mix_g_co2e_per_kwh, source, vintage)
         SELECT r, y, $8, s, sh, res, src, v
         FROM unnest($1::text[], $2::int[], $3::float8[], $4::float8[], $5::float8[], $6::text[], $7::text[])
             AS t(r, y, s, sh, res, src, v)",
    )
    .bind(rows.iter().map(|r| r.region.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.year).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.supplier_g_co2e_per_kwh).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.renewable_share).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.residual_mix_g_co2e_per_kwh).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.vintage.as_str()).collect::<Vec<_>>())
    .bind(version)
    .execute(&mut *tx)
    .await?;
    crate::restatement::record_import(&mut tx, "market", version).await?;
    tx.commit().await?;
    tracing::info!(version, values = rows.len(), file, "imported market factors");
    Ok(Imported { factor_set: "market", version, values: rows.len() as u64 })
}

/// Records the next version of `set` (serialised by a lock on the versions
/// table, so two imports never get one number).
async fn next_version(
    tx: &mut Transaction<'_, Postgres>,
    set: &str,
    files: &[String],
    values: usize,
) -> Result<i32, sqlx::Error> {
    sqlx::query("LOCK TABLE factor_set_versions IN SHARE ROW EXCLUSIVE MODE").execute(&mut **tx).await?;
    sqlx::query_scalar(
        "INSERT INTO factor_set_versions (factor_set, version, files, values_count)
         SELECT $1, COALESCE(max(version), 0) + 1, $2, $3 FROM factor_set_versions WHERE factor_set = $1
         RETURNING version",
    )
    .bind(set)
    .bind(files)
    .bind(values as i64)
    .fetch_one(&mut **tx)
    .await
}

/// A market factor as stored, newest version.
#[derive(Debug, Clone, PartialEq)]
struct StoredMarket {
    version: i32,
    supplier: Option<f64>,
    share: f64,
    residual: Option<f64>,
    source: String,
    vintage: String,
}

fn year_of(unix_s: i64) -> i32 {
    i32::try_from(crate::time::civil_from_days(unix_s.div_euclid(crate::time::DAY_S)).0).unwrap_or(i32::MAX)
}

/// Prices the facts of one batch with the aggregator's factor sets (see the
/// module header). One statement reads the newest hourly values of the
/// batch's (zone, hour)s and market factors of its (region, year)s.
pub async fn apply(tx: &mut Transaction<'_, Postgres>, facts: &mut [FactRow]) -> Result<(), sqlx::Error> {
    if facts.is_empty() {
        return Ok(());
    }
    let mut hours: BTreeSet<(&'static str, i64)> = BTreeSet::new();
    let mut years: BTreeSet<(String, i32)> = BTreeSet::new();
    for f in facts.iter() {
        if let Some(zone) = zone_for_region(&f.region) {
            hours.insert((zone, crate::time::floor_to(f.period_start_unix_s, crate::time::HOUR_S)));
        }
        years.insert((f.region.clone(), year_of(f.period_start_unix_s)));
    }
    let rows = sqlx::query(
        "SELECT 'h' AS kind, k.z AS key, k.h::bigint AS at, v.version, v.g_co2e_per_kwh AS g, NULL::float8 AS share,
                NULL::float8 AS residual, NULL::text AS source, NULL::text AS vintage
         FROM unnest($1::text[], $2::bigint[]) AS k(z, h)
         CROSS JOIN LATERAL (SELECT version, g_co2e_per_kwh FROM hourly_intensity
                             WHERE zone = k.z AND hour_start = to_timestamp(k.h)
                             ORDER BY version DESC LIMIT 1) v
         UNION ALL
         SELECT 'm', k.r, k.y::bigint, m.version, m.supplier_g_co2e_per_kwh, m.renewable_share,
                m.residual_mix_g_co2e_per_kwh, m.source, m.vintage
         FROM unnest($3::text[], $4::int[]) AS k(r, y)
         CROSS JOIN LATERAL (SELECT * FROM market_factors WHERE region = k.r AND year = k.y
                             ORDER BY version DESC LIMIT 1) m",
    )
    .bind(hours.iter().map(|h| h.0).collect::<Vec<_>>())
    .bind(hours.iter().map(|h| h.1).collect::<Vec<_>>())
    .bind(years.iter().map(|y| y.0.as_str()).collect::<Vec<_>>())
    .bind(years.iter().map(|y| y.1).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    let mut hourly: HashMap<(String, i64), (i32, f64)> = HashMap::new();
    let mut market: HashMap<(String, i32), StoredMarket> = HashMap::new();
    for r in rows {
        let kind: String = r.try_get("kind")?;
        let key: String = r.try_get("key")?;
        let at: i64 = r.try_get("at")?;
        let version: i32 = r.try_get("version")?;
        if kind == "h" {
            hourly.insert((key, at), (version, r.try_get("g")?));
        } else {
            market.insert(
                (key, i32::try_from(at).unwrap_or(i32::MAX)),
                StoredMarket {
                    version,
                    supplier: r.try_get("g")?,
                    share: r.try_get("share")?,
                    residual: r.try_get("residual")?,
                    source: r.try_get("source")?,
                    vintage: r.try_get("vintage")?,
                },
            );
        }
    }
    for f in facts.iter_mut() {
        price(f, &hourly, &market);
    }
    Ok(())
}

/// Recomputes one fact's operational figures (see [`apply`]).
fn price(f: &mut FactRow, hourly: &HashMap<(String, i64), (i32, f64)>, market: &HashMap<(String, i32), StoredMarket>) {
    let old = f.parts();
    let annual = location_factor(&f.region);
    let hour = crate::time::floor_to(f.period_start_unix_s, crate::time::HOUR_S);
    let hourly_value = zone_for_region(&f.region).and_then(|z| hourly.get(&(z.to_owned(), hour)));
    let (location_g_per_kwh, location_source, location_vintage) = match hourly_value {
        Some((version, g)) => (*g, HOURLY_SOURCE.to_owned(), format!("location-hourly v{version}")),
        None => (annual.g_co2e_per_kwh, format!("{ANNUAL_PREFIX}{}", annual.provenance.source), annual.provenance.vintage.to_owned()),
    };
    let op_location = f.energy_kwh * location_g_per_kwh;
    let (market_g_per_kwh, market_source, market_vintage) = match market.get(&(f.region.clone(), year_of(f.period_start_unix_s))) {
        Some(m) => {
            let g = m.supplier.unwrap_or_else(|| (1.0 - m.share) * m.residual.unwrap_or(location_g_per_kwh));
            (g, format!("market v{}: {}", m.version, m.source), m.vintage.clone())
        }
        None => (location_g_per_kwh, crate::from_protocol::MARKET_FALLBACK.to_owned(), location_vintage.clone()),
    };
    let op_market = f.energy_kwh * market_g_per_kwh;
    // The agent's relative bounds of the operational part (energy's uncertainty).
    let ratio = |bound: f64| if old.operational_location_g_co2e > 0.0 { bound / old.operational_location_g_co2e } else { 1.0 };
    let (low_ratio, high_ratio) = (ratio(old.operational_location_low_g_co2e), ratio(old.operational_location_high_g_co2e));
    let parts = FactParts {
        it_energy_kwh: old.it_energy_kwh,
        operational_location_g_co2e: op_location,
        operational_location_low_g_co2e: op_location * low_ratio,
        operational_location_high_g_co2e: op_location * high_ratio,
        operational_market_g_co2e: op_market,
        operational_market_low_g_co2e: op_market * low_ratio,
        operational_market_high_g_co2e: op_market * high_ratio,
        embodied_g_co2e: old.embodied_g_co2e,
        embodied_low_g_co2e: old.embodied_low_g_co2e,
        embodied_high_g_co2e: old.embodied_high_g_co2e,
    };
    f.location_g_co2e = parts.operational_location_g_co2e + parts.embodied_g_co2e;
    f.market_g_co2e = parts.operational_market_g_co2e + parts.embodied_g_co2e;
    f.low_g_co2e = parts.operational_location_low_g_co2e + parts.embodied_low_g_co2e;
    f.high_g_co2e = parts.operational_location_high_g_co2e + parts.embodied_high_g_co2e;
    f.factor_source = location_source;
    f.factor_vintage = location_vintage;
    f.accounting = Some(Accounting { parts, market_factor_source: market_source, market_factor_vintage: market_vintage });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(region: &str, start: i64) -> FactRow {
        let mut f = FactRow::sample(start, 3_600);
        f.region = region.into();
        f.energy_kwh = 2.0;
        f.accounting = Some(Accounting {
            parts: FactParts::from_record(1.6, 800.0, 800.0, 50.0, 690.0, 1_050.0),
            market_factor_source: "x".into(),
            market_factor_vintage: "x".into(),
        });
        f
    }

    #[test]
    fn hourly_intensity_prices_the_hour_and_annual_the_rest() {
        // us-west-1 maps to US-CAL-CISO; 2023-01-01 00:00 UTC.
        let hour = 1_672_531_200;
        let hourly = HashMap::from([(("US-CAL-CISO".to_owned(), hour), (3, 218.3))]);
        let mut f = fact("us-west-1", hour + 600);
        price(&mut f, &hourly, &HashMap::new());
        let p = f.parts();
        assert_eq!(p.operational_location_g_co2e, 2.0 * 218.3);
        assert_eq!((f.factor_source.as_str(), f.factor_vintage.as_str()), (HOURLY_SOURCE, "location-hourly v3"));
        // No market data: market = location, flagged.
        assert_eq!(p.operational_market_g_co2e, p.operational_location_g_co2e);
        assert_eq!(f.market_lineage().0, "location-fallback");
        // Embodied unchanged, totals add up, the agent's relative bounds kept ((690 - 50) / 800).
        assert_eq!(p.embodied_g_co2e, 50.0);
        assert!((f.location_g_co2e - (2.0 * 218.3 + 50.0)).abs() < 1e-9);
        assert!((p.operational_location_low_g_co2e / p.operational_location_g_co2e - 640.0 / 800.0).abs() < 1e-12);
        // The next hour is not covered: the annual factor, said so.
        let mut g = fact("us-west-1", hour + 3_600);
        price(&mut g, &hourly, &HashMap::new());
        let annual = location_factor("us-west-1");
        assert_eq!(g.parts().operational_location_g_co2e, 2.0 * annual.g_co2e_per_kwh);
        assert!(g.factor_source.starts_with(ANNUAL_PREFIX), "{}", g.factor_source);
    }

    #[test]
    fn full_renewable_matching_zeroes_market_operational_only() {
        let start = 1_798_761_600; // 2027-01-01
        let market = HashMap::from([(
            ("eu-west-1".to_owned(), 2027),
            StoredMarket { version: 1, supplier: None, share: 1.0, residual: Some(380.0), source: "AIB".into(), vintage: "2026".into() },
        )]);
        let mut f = fact("eu-west-1", start);
        price(&mut f, &HashMap::new(), &market);
        let p = f.parts();
        assert_eq!(p.operational_market_g_co2e, 0.0);
        assert_eq!(p.operational_location_g_co2e, 2.0 * location_factor("eu-west-1").g_co2e_per_kwh);
        assert_eq!(p.embodied_g_co2e, 50.0);
        assert_eq!(f.market_g_co2e, 50.0);
        assert_eq!(f.market_lineage(), ("market v1: AIB", "2026"));
    }
}
