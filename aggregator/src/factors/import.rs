//! Validation of factor files before anything is stored: a file is accepted
//! whole or refused whole, with an error naming the file, line and column.
//! Pure: texts in, rows out; no SQL here.

use std::collections::HashMap;

use canopy_emissions::grid::{GridError, hourly_rows, is_known_region, is_known_zone};

/// Largest plausible grid intensity or market factor, gCO2e/kWh: above the
/// dirtiest grid's hourly peak (lignite, ~1,300) with a wide margin.
pub const MAX_G_CO2E_PER_KWH: f64 = 2_000.0;

/// A factor file refused: which file, line and column, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: line {line}, column {column}: {message}")]
pub struct FactorFileError {
    /// The file as given.
    pub file: String,
    /// 1-based line (1 = header).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// One validated hour of an Electricity Maps zone.
#[derive(Debug, Clone, PartialEq)]
pub struct HourlyFactor {
    /// Electricity Maps zone id.
    pub zone: String,
    /// Hour start, Unix seconds.
    pub hour_start_unix_s: i64,
    /// Direct intensity (Scope 2 location-based), gCO2e/kWh.
    pub g_co2e_per_kwh: f64,
    /// Electricity Maps estimated the hour.
    pub estimated: bool,
}

/// Validates one Electricity Maps hourly CSV (both header variants):
/// format (via `canopy_emissions`), zones some AWS region maps to, values at
/// most [`MAX_G_CO2E_PER_KWH`], and one value per (zone, hour): the same
/// hour twice with another value is refused (twice with the same value is
/// kept once).
pub fn hourly_file(file: &str, text: &str) -> Result<Vec<HourlyFactor>, FactorFileError> {
    let err = |line: usize, column: usize, message: String| FactorFileError { file: file.to_owned(), line, column, message };
    let rows = hourly_rows(text).map_err(|e| match e {
        GridError::BadField { line, column, expected, found } => {
            err(line, column, format!("expected {expected}, found {found:?}"))
        }
        GridError::ShortLine { line, expected, found } => {
            err(line, found + 1, format!("expected at least {expected} fields, found {found}"))
        }
        GridError::MissingColumn { expected, position, found } => {
            err(1, position, format!("expected a column {expected:?} (Electricity Maps hourly CSV), found header {found:?}"))
        }
        GridError::EmptyInput => err(1, 1, "expected the Electricity Maps hourly CSV header, found an empty file".into()),
        other => err(1, 1, other.to_string()),
    })?;
    if rows.is_empty() {
        return Err(err(2, 1, "expected at least one hour, found none".into()));
    }
    let mut seen: HashMap<(&str, i64), (usize, f64)> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        if !is_known_zone(&row.zone) {
            return Err(err(row.line, row.zone_column, format!("expected the zone of an AWS region, found unknown zone {:?}", row.zone)));
        }
        let g = row.value.direct_g_co2e_per_kwh;
        if g > MAX_G_CO2E_PER_KWH {
            return Err(err(row.line, row.direct_column, format!("expected at most {MAX_G_CO2E_PER_KWH} gCO2e/kWh, found {g}")));
        }
        match seen.get(&(row.zone.as_str(), row.hour_start_unix_s)) {
            Some((first, value)) if *value != g => {
                return Err(err(
                    row.line,
                    row.direct_column,
                    format!("zone {} hour {} already has {value} gCO2e/kWh on line {first}, found {g}", row.zone, row.hour_start_unix_s),
                ));
            }
            Some(_) => continue,
            None => {
                seen.insert((row.zone.as_str(), row.hour_start_unix_s), (row.line, g));
            }
        }
        out.push(HourlyFactor {
            zone: row.zone.clone(),
            hour_start_unix_s: row.hour_start_unix_s,
            g_co2e_per_kwh: g,
            estimated: row.value.estimated,
        });
    }
    Ok(out)
}

/// The header of a market factor file, exactly (see `docs/factors.md`).
pub const MARKET_HEADER: [&str; 7] =
    ["region", "year", "supplier_g_co2e_per_kwh", "renewable_share", "residual_mix_g_co2e_per_kwh", "source", "vintage"];

/// One validated market factor row: per region and year, either a
/// supplier-specific factor, or a renewable-matching share with a residual
/// mix (empty residual: the region's location factor as residual, as in
/// `canopy estimate --market`).
#[derive(Debug, Clone, PartialEq)]
pub struct MarketFactor {
    /// AWS region.
    pub region: String,
    /// Calendar year (UTC) the factor applies to.
    pub year: i32,
    /// Supplier-specific factor, gCO2e/kWh.
    pub supplier_g_co2e_per_kwh: Option<f64>,
    /// Share of consumption matched by renewable contracts, 0..=1.
    pub renewable_share: f64,
    /// Residual-mix factor, gCO2e/kWh.
    pub residual_mix_g_co2e_per_kwh: Option<f64>,
    /// Where the figures come from (e.g. `AIB European Residual Mix`).
    pub source: String,
    /// Their vintage (e.g. `2024`).
    pub vintage: String,
}

/// Validates a market factor CSV (plain comma-separated, no quoting, header
/// [`MARKET_HEADER`]): known regions, years 2000..=2100, factors 0..=
/// [`MAX_G_CO2E_PER_KWH`], shares 0..=1, a supplier factor or a share (not
/// both), non-empty source and vintage, and one row per (region, year) (a
/// repeat with other values is refused).
pub fn market_file(file: &str, text: &str) -> Result<Vec<MarketFactor>, FactorFileError> {
    let err = |line: usize, column: usize, message: String| FactorFileError { file: file.to_owned(), line, column, message };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let (_, header) = lines.next().ok_or_else(|| err(1, 1, "expected a header line, found an empty file".into()))?;
    let fields: Vec<&str> = header.trim_start_matches('\u{feff}').split(',').map(str::trim).collect();
    for (i, want) in MARKET_HEADER.iter().enumerate() {
        let found = fields.get(i).copied().unwrap_or("");
        if found != *want {
            return Err(err(1, i + 1, format!("expected header column {want:?}, found {found:?}")));
        }
    }
    if fields.len() != MARKET_HEADER.len() {
        return Err(err(1, MARKET_HEADER.len() + 1, format!("expected {} header columns, found {}", MARKET_HEADER.len(), fields.len())));
    }
    let mut out: Vec<MarketFactor> = Vec::new();
    let mut seen: HashMap<(String, i32), (usize, usize)> = HashMap::new();
    for (line, text) in lines {
        if text.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = text.split(',').map(str::trim).collect();
        if f.len() != MARKET_HEADER.len() {
            return Err(err(line, f.len().min(MARKET_HEADER.len()) + 1, format!("expected {} fields, found {}", MARKET_HEADER.len(), f.len())));
        }
        let region = f[0];
        if !is_known_region(region) {
            return Err(err(line, 1, format!("expected an AWS region, found unknown region {region:?}")));
        }
        let year: i32 = f[1]
            .parse()
            .ok()
            .filter(|y| (2000..=2100).contains(y))
            .ok_or_else(|| err(line, 2, format!("expected a year 2000..2100, found {:?}", f[1])))?;
        let factor = |column: usize| -> Result<Option<f64>, FactorFileError> {
            let t = f[column - 1];
            if t.is_empty() {
                return Ok(None);
            }
            match t.parse::<f64>() {
                Ok(v) if v.is_finite() && (0.0..=MAX_G_CO2E_PER_KWH).contains(&v) => Ok(Some(v)),
                _ => Err(err(line, column, format!("expected a factor 0..{MAX_G_CO2E_PER_KWH} gCO2e/kWh or nothing, found {t:?}"))),
            }
        };
        let supplier = factor(3)?;
        let residual = factor(5)?;
        let share = match f[3] {
            "" => None,
            t => Some(
                t.parse::<f64>()
                    .ok()
                    .filter(|s| (0.0..=1.0).contains(s))
                    .ok_or_else(|| err(line, 4, format!("expected a share 0..1 or nothing, found {t:?}")))?,
            ),
        };
        let renewable_share = match (supplier, share, residual) {
            (Some(_), None, None) => 0.0,
            (Some(_), _, _) => {
                let column = if share.is_some() { 4 } else { 5 };
                return Err(err(line, column, "expected either a supplier factor or a renewable share with a residual mix, found both".into()));
            }
            (None, Some(s), _) => s,
            (None, None, _) => {
                return Err(err(line, 3, "expected a supplier factor or a renewable share, found neither".into()));
            }
        };
        for (column, value) in [(6, f[5]), (7, f[6])] {
            if value.is_empty() {
                return Err(err(line, column, format!("expected a non-empty {}, found nothing", MARKET_HEADER[column - 1])));
            }
        }
        let row = MarketFactor {
            region: region.to_owned(),
            year,
            supplier_g_co2e_per_kwh: supplier,
            renewable_share,
            residual_mix_g_co2e_per_kwh: residual,
            source: f[5].to_owned(),
            vintage: f[6].to_owned(),
        };
        match seen.get(&(row.region.clone(), year)) {
            Some(&(first, i)) if out[i] != row => {
                return Err(err(line, 1, format!("region {region} year {year} already has other factors on line {first}")));
            }
            Some(_) => continue,
            None => {
                seen.insert((row.region.clone(), year), (line, out.len()));
            }
        }
        out.push(row);
    }
    if out.is_empty() {
        return Err(err(2, 1, "expected at least one region and year, found none".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EM_HEADER: &str = "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,Data Estimated,Data Estimation Method";
    const EM_2024_HEADER: &str = "Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method";

    fn em(header: &str, rows: &[&str]) -> String {
        std::iter::once(header).chain(rows.iter().copied()).collect::<Vec<_>>().join("\r\n") + "\r\n"
    }

    #[test]
    fn hourly_files_of_both_header_variants_load() {
        for header in [EM_HEADER, EM_2024_HEADER] {
            let text = em(header, &["2023-01-01 00:00:00,Spain,Spain,ES,82.99,114.42,84.03,50.66,entsoe.eu,false,"]);
            let rows = hourly_file("es.csv", &text).unwrap();
            assert_eq!(rows, vec![HourlyFactor { zone: "ES".into(), hour_start_unix_s: 1_672_531_200, g_co2e_per_kwh: 82.99, estimated: false }]);
        }
    }

    #[test]
    fn bad_hourly_files_name_file_line_and_column() {
        let ok = "2023-01-01 00:00:00,Spain,Spain,ES,82.99,114.42,84.03,50.66,entsoe.eu,false,";
        let check = |text: String, line: usize, column: usize, contains: &str| {
            let e = hourly_file("f.csv", &text).unwrap_err();
            assert_eq!((e.file.as_str(), e.line, e.column), ("f.csv", line, column), "{e}");
            assert!(e.to_string().contains(contains), "{e}");
        };
        check(em(EM_HEADER, &[ok, "2023-01-01 01:00:00,X,X,XX-NOWHERE,82.99,114.42,84.03,50.66,x,false,"]), 3, 4, "unknown zone");
        check(em(EM_HEADER, &[ok, "2023-01-01 01:00:00,Spain,Spain,ES,-1,114.42,84.03,50.66,x,false,"]), 3, 5, "non-negative");
        check(em(EM_HEADER, &[ok, "2023-01-01 01:00:00,Spain,Spain,ES,9000,114.42,84.03,50.66,x,false,"]), 3, 5, "at most 2000");
        check(em(EM_HEADER, &[ok, "2023-01-01 00:00:00,Spain,Spain,ES,90,114.42,84.03,50.66,x,false,"]), 3, 5, "already has 82.99");
        check("zone,hour\nES,1\n".into(), 1, 4, "expected a column");
        check(String::new(), 1, 1, "empty");
        // The same hour twice with the same value is kept once.
        assert_eq!(hourly_file("f.csv", &em(EM_HEADER, &[ok, ok])).unwrap().len(), 1);
    }

    const MARKET: &str = "region,year,supplier_g_co2e_per_kwh,renewable_share,residual_mix_g_co2e_per_kwh,source,vintage";

    #[test]
    fn market_files_hold_a_supplier_factor_or_a_share() {
        let text = format!("{MARKET}\neu-west-1,2026,,1,380,AIB residual mix,2025\nus-east-1,2026,12.5,,,utility,2026\n");
        let rows = market_file("m.csv", &text).unwrap();
        assert_eq!(rows[0].renewable_share, 1.0);
        assert_eq!(rows[0].residual_mix_g_co2e_per_kwh, Some(380.0));
        assert_eq!((rows[1].supplier_g_co2e_per_kwh, rows[1].renewable_share), (Some(12.5), 0.0));
    }

    #[test]
    fn bad_market_files_name_file_line_and_column() {
        let check = |text: String, line: usize, column: usize, contains: &str| {
            let e = market_file("m.csv", &text).unwrap_err();
            assert_eq!((e.file.as_str(), e.line, e.column), ("m.csv", line, column), "{e}");
            assert!(e.to_string().contains(contains), "{e}");
        };
        let ok = "eu-west-1,2026,,0.5,380,AIB,2025";
        check(format!("{MARKET}\n{ok}\nmars-1,2026,,0.5,380,AIB,2025\n"), 3, 1, "unknown region");
        check(format!("{MARKET}\n{ok}\neu-west-2,2026,,1.5,380,AIB,2025\n"), 3, 4, "share 0..1");
        check(format!("{MARKET}\n{ok}\neu-west-2,2026,,0.5,-3,AIB,2025\n"), 3, 5, "factor 0..2000");
        check(format!("{MARKET}\n{ok}\neu-west-2,2026,5000,,,AIB,2025\n"), 3, 3, "factor 0..2000");
        check(format!("{MARKET}\n{ok}\neu-west-1,2026,,0.6,380,AIB,2025\n"), 3, 1, "already has other factors on line 2");
        check(format!("{MARKET}\n{ok}\neu-west-2,2026,,,,AIB,2025\n"), 3, 3, "neither");
        check(format!("{MARKET}\n{ok}\neu-west-2,2026,10,0.5,,AIB,2025\n"), 3, 4, "both");
        check(format!("{MARKET}\n{ok}\neu-west-2,2026,,0.5,,,2025\n"), 3, 6, "non-empty source");
        check(format!("{MARKET}\n{ok}\neu-west-2,1999,,0.5,,x,2025\n"), 3, 2, "year");
        check(format!("region,yr,supplier_g_co2e_per_kwh\n{ok}\n"), 1, 2, "expected header column \"year\"");
    }
}
