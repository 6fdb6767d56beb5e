//! Hourly carbon intensity: a source trait and an in-memory table imported
//! from Electricity Maps' published hourly CSV files.
//!
//! **Direct, not life-cycle.** [`CarbonIntensitySource::intensity`] returns
//! the *direct* (combustion-only) intensity, which is what the GHG Protocol
//! Scope 2 location-based method counts and what Electricity Maps recommends
//! for Scope 2. The life-cycle (LCA) value is kept in [`HourlyIntensity`] for
//! callers who report it separately.

use std::collections::{BTreeMap, HashMap};

use super::{GridError, GridFactor};
use crate::csv_text::{Record, records};
use crate::model::Provenance;
use crate::time;

/// A source of hourly grid intensity by Electricity Maps zone.
pub trait CarbonIntensitySource: Send + Sync {
    /// Intensity of `zone` in the hour starting at `hour_start_unix_s`
    /// (timestamps inside the hour are floored to its start); `None` when
    /// the source has no value for that zone and hour.
    fn intensity(&self, zone: &str, hour_start_unix_s: i64) -> Option<GridFactor>;
}

/// One imported hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HourlyIntensity {
    /// Direct (combustion) intensity, gCO2e/kWh: used for Scope 2 location-based.
    pub direct_g_co2e_per_kwh: f64,
    /// Life-cycle intensity, gCO2e/kWh.
    pub lca_g_co2e_per_kwh: f64,
    /// True when Electricity Maps estimated the hour rather than measuring it.
    pub estimated: bool,
}

/// Hourly intensities by zone and hour start, imported offline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HourlyIntensityTable {
    zones: BTreeMap<String, HashMap<i64, HourlyIntensity>>,
}

const HOURLY_PROVENANCE: Provenance = Provenance {
    source: "Electricity Maps hourly carbon intensity, direct (imported)",
    vintage: "hourly",
};

/// A column the importer needs: accepted names (lower case) and the 0-based
/// position used when no name matches.
struct Wanted {
    names: &'static [&'static str],
    position: usize,
}

const DATETIME: Wanted = Wanted { names: &["datetime (utc)"], position: 0 };
const ZONE_ID: Wanted = Wanted { names: &["zone id"], position: 3 };
const DIRECT: Wanted = Wanted { names: &["carbon intensity gco₂eq/kwh (direct)", "carbon intensity gco2eq/kwh (direct)"], position: 4 };
const LCA: Wanted = Wanted {
    names: &[
        "carbon intensity gco₂eq/kwh (lca)",
        "carbon intensity gco₂eq/kwh (life cycle)",
        "carbon intensity gco2eq/kwh (lca)",
        "carbon intensity gco2eq/kwh (life cycle)",
    ],
    position: 5,
};
const ESTIMATED: Wanted = Wanted { names: &["data estimated"], position: 9 };

fn find_column(header: &Record<'_>, wanted: &Wanted) -> Result<usize, GridError> {
    let by_name = header.fields.iter().position(|f| {
        let name = f.trim().trim_start_matches('\u{feff}').to_lowercase();
        wanted.names.contains(&name.as_str())
    });
    match by_name {
        Some(i) => Ok(i),
        None if wanted.position < header.fields.len() => Ok(wanted.position),
        None => Err(GridError::MissingColumn {
            expected: wanted.names[0],
            position: wanted.position + 1,
            found: header.fields.join(","),
        }),
    }
}

/// One data line of an Electricity Maps hourly CSV, with where it stands in
/// the text (for callers that check more than the format: zones they know,
/// plausible values, one value per zone and hour).
#[derive(Debug, Clone, PartialEq)]
pub struct HourlyRow {
    /// 1-based line number.
    pub line: usize,
    /// Zone id.
    pub zone: String,
    /// 1-based column of the zone id.
    pub zone_column: usize,
    /// Hour start, Unix seconds.
    pub hour_start_unix_s: i64,
    /// 1-based column of the hour.
    pub hour_column: usize,
    /// The intensities.
    pub value: HourlyIntensity,
    /// 1-based column of the direct intensity.
    pub direct_column: usize,
}

/// The data lines of an Electricity Maps hourly CSV (the format of
/// [`HourlyIntensityTable::from_electricity_maps_csv`]), in file order.
pub fn hourly_rows(text: &str) -> Result<Vec<HourlyRow>, GridError> {
    let mut lines = records(text);
    let header = lines.next().ok_or(GridError::EmptyInput)??;
    let columns = [
        find_column(&header, &DATETIME)?,
        find_column(&header, &ZONE_ID)?,
        find_column(&header, &DIRECT)?,
        find_column(&header, &LCA)?,
        find_column(&header, &ESTIMATED)?,
    ];
    let [datetime, zone, direct, lca, estimated] = columns;
    let needed = columns.iter().max().map_or(0, |m| m + 1);
    let mut rows = Vec::new();
    for record in lines {
        let record = record?;
        if record.fields.len() < needed {
            return Err(GridError::ShortLine { line: record.line, expected: needed, found: record.fields.len() });
        }
        let bad = |column: usize, expected: &'static str| GridError::BadField {
            line: record.line,
            column: column + 1,
            expected,
            found: record.get(column).to_owned(),
        };
        let hour = parse_hour_start(record.get(datetime))
            .ok_or_else(|| bad(datetime, "a UTC hour start like 2023-01-01 00:00:00"))?;
        let zone_id = record.get(zone).trim();
        if zone_id.is_empty() {
            return Err(bad(zone, "a zone id"));
        }
        let direct_value =
            parse_intensity(record.get(direct)).ok_or_else(|| bad(direct, "a non-negative intensity in gCO2e/kWh"))?;
        let lca_value =
            parse_intensity(record.get(lca)).ok_or_else(|| bad(lca, "a non-negative intensity in gCO2e/kWh"))?;
        let is_estimated = match record.get(estimated).trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" | "" => false,
            _ => return Err(bad(estimated, "true or false")),
        };
        rows.push(HourlyRow {
            line: record.line,
            zone: zone_id.to_owned(),
            zone_column: zone + 1,
            hour_start_unix_s: hour,
            hour_column: datetime + 1,
            value: HourlyIntensity { direct_g_co2e_per_kwh: direct_value, lca_g_co2e_per_kwh: lca_value, estimated: is_estimated },
            direct_column: direct + 1,
        });
    }
    Ok(rows)
}

impl HourlyIntensityTable {
    /// An empty table.
    pub fn new() -> HourlyIntensityTable {
        HourlyIntensityTable::default()
    }

    /// Imports an Electricity Maps hourly CSV (data-portal format, both the
    /// 2021–2023 header spelling and the 2024 one). Columns are found by
    /// name, case-insensitively, falling back to their usual position; CRLF
    /// and LF line ends are accepted. Errors name the line and column.
    pub fn from_electricity_maps_csv(text: &str) -> Result<HourlyIntensityTable, GridError> {
        let mut table = HourlyIntensityTable::new();
        for row in hourly_rows(text)? {
            table.insert(&row.zone, row.hour_start_unix_s, row.value);
        }
        Ok(table)
    }

    /// Adds or replaces one hour of `zone`.
    pub fn insert(&mut self, zone: &str, hour_start_unix_s: i64, value: HourlyIntensity) {
        let hour = time::hour_start(hour_start_unix_s);
        match self.zones.get_mut(zone) {
            Some(hours) => {
                hours.insert(hour, value);
            }
            None => {
                self.zones.insert(zone.to_owned(), HashMap::from([(hour, value)]));
            }
        }
    }

    /// Adds every hour of `other`; where both hold the same zone and hour,
    /// `other`'s value wins.
    pub fn merge(&mut self, other: HourlyIntensityTable) {
        for (zone, hours) in other.zones {
            self.zones.entry(zone).or_default().extend(hours);
        }
    }

    /// The imported hour of `zone` containing `unix_s`, if any.
    pub fn get(&self, zone: &str, unix_s: i64) -> Option<HourlyIntensity> {
        self.zones.get(zone)?.get(&time::hour_start(unix_s)).copied()
    }

    /// Zones present, in order.
    pub fn zones(&self) -> impl Iterator<Item = &str> {
        self.zones.keys().map(String::as_str)
    }

    /// All imported hours of `zone` (hour start, value), in no particular order.
    pub fn hours(&self, zone: &str) -> impl Iterator<Item = (i64, HourlyIntensity)> + '_ {
        self.zones.get(zone).into_iter().flat_map(|h| h.iter().map(|(k, v)| (*k, *v)))
    }

    /// Number of (zone, hour) values held.
    pub fn len(&self) -> usize {
        self.zones.values().map(HashMap::len).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CarbonIntensitySource for HourlyIntensityTable {
    fn intensity(&self, zone: &str, hour_start_unix_s: i64) -> Option<GridFactor> {
        self.get(zone, hour_start_unix_s)
            .map(|h| GridFactor { g_co2e_per_kwh: h.direct_g_co2e_per_kwh, provenance: HOURLY_PROVENANCE })
    }
}

fn parse_intensity(text: &str) -> Option<f64> {
    let value: f64 = text.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value)
}

fn parse_number<T: std::str::FromStr>(text: &str, len: usize) -> Option<T> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

/// Parses `YYYY-MM-DD HH:MM:SS` (also with `T`, fractional seconds and a `Z`
/// or `+00:00` suffix) into the Unix seconds of an hour start; `None` when
/// malformed or not on the hour.
fn parse_hour_start(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text.strip_suffix('Z').or_else(|| text.strip_suffix("+00:00")).unwrap_or(text);
    let (date, clock) = text.split_once([' ', 'T'])?;
    let clock = clock.split_once('.').map_or(clock, |(whole, _)| whole);
    let mut d = date.split('-');
    let year: i32 = parse_number(d.next()?, 4)?;
    let month: u8 = parse_number(d.next()?, 2)?;
    let day: u8 = parse_number(d.next()?, 2)?;
    let mut c = clock.split(':');
    let hour: u8 = parse_number(c.next()?, 2)?;
    let minute: u8 = parse_number(c.next()?, 2)?;
    let second: u8 = c.next().map_or(Some(0), |s| parse_number(s, 2))?;
    if d.next().is_some() || c.next().is_some() {
        return None;
    }
    let valid = (1..=12).contains(&month)
        && (1..=time::days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute == 0
        && second == 0;
    valid.then(|| time::unix_seconds(year, month, day, hour, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hour_starts() {
        assert_eq!(parse_hour_start("1970-01-01 01:00:00"), Some(3600));
        assert_eq!(parse_hour_start("2023-01-01 00:00:00"), Some(1_672_531_200));
        assert_eq!(parse_hour_start("2023-01-01T00:00:00.000Z"), Some(1_672_531_200));
        assert_eq!(parse_hour_start("2023-01-01 00:30:00"), None);
        assert_eq!(parse_hour_start("2023-02-30 00:00:00"), None);
        assert_eq!(parse_hour_start("2023-1-01 00:00:00"), None);
        assert_eq!(parse_hour_start("yesterday"), None);
    }
}
