//! The accounting split every stored figure keeps (issue 14, §1): energy as
//! IT energy and facility energy (IT × PUE), CO2e as operational
//! location-based, operational market-based and embodied parts, each with
//! low/high bounds, next to the totals of before (location = operational
//! location + embodied, market = operational market + embodied).
//!
//! This module owns the one ordered list of measure columns
//! ([`MEASURE_COLUMNS`]) that facts, segments, every rollup level, the org
//! and team rollups and the query layer sum, so a statement can never add
//! one part and forget another. It must never decide factors or touch SQL
//! itself: it only names columns and derives the parts of a record.

/// The measure columns, in storage order: the five columns of before, then
/// the parts. Every rollup relation has all of them plus `fact_count`.
pub const MEASURE_COLUMNS: [&str; MEASURES] = [
    "energy_kwh",
    "location_g_co2e",
    "market_g_co2e",
    "low_g_co2e",
    "high_g_co2e",
    "it_energy_kwh",
    "operational_location_g_co2e",
    "operational_location_low_g_co2e",
    "operational_location_high_g_co2e",
    "operational_market_g_co2e",
    "operational_market_low_g_co2e",
    "operational_market_high_g_co2e",
    "embodied_g_co2e",
    "embodied_low_g_co2e",
    "embodied_high_g_co2e",
];

/// Number of measure columns.
pub const MEASURES: usize = 15;

/// Position of the first part column in [`MEASURE_COLUMNS`] (the columns
/// before it are the totals of before).
pub const FIRST_PART: usize = 5;

/// The measures of one record or sum, in [`MEASURE_COLUMNS`] order.
pub type Measures = [f64; MEASURES];

/// The parts of one record the agent sent (protocol v1/v2 carry them all).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FactParts {
    /// IT energy (sum of the components), kWh.
    pub it_energy_kwh: f64,
    /// Operational location-based CO2e, grams.
    pub operational_location_g_co2e: f64,
    /// Its lower bound, grams.
    pub operational_location_low_g_co2e: f64,
    /// Its upper bound, grams.
    pub operational_location_high_g_co2e: f64,
    /// Operational market-based CO2e, grams.
    pub operational_market_g_co2e: f64,
    /// Its lower bound, grams.
    pub operational_market_low_g_co2e: f64,
    /// Its upper bound, grams.
    pub operational_market_high_g_co2e: f64,
    /// Embodied (hardware manufacturing, amortised) CO2e, grams.
    pub embodied_g_co2e: f64,
    /// Its lower bound, grams.
    pub embodied_low_g_co2e: f64,
    /// Its upper bound, grams.
    pub embodied_high_g_co2e: f64,
}

impl FactParts {
    /// The parts of a wire record: the protocol's low/high bracket the sum
    /// of embodied and operational location (the emissions model gives embodied as a
    /// point value, so its bounds are the value itself and the operational
    /// location bounds are the record's bounds minus embodied). The market
    /// part has no bounds of its own on the wire: it is energy × a market
    /// factor, so it keeps the operational location part's relative bounds
    /// (the energy's uncertainty); with a zero location part it is a point.
    pub fn from_record(
        it_energy_kwh: f64,
        operational_location_g_co2e: f64,
        operational_market_g_co2e: f64,
        embodied_g_co2e: f64,
        low_g_co2e: f64,
        high_g_co2e: f64,
    ) -> FactParts {
        let op_low = (low_g_co2e - embodied_g_co2e).max(0.0).min(operational_location_g_co2e);
        let op_high = (high_g_co2e - embodied_g_co2e).max(operational_location_g_co2e);
        let (mk_low, mk_high) = if operational_location_g_co2e > 0.0 {
            (
                operational_market_g_co2e * op_low / operational_location_g_co2e,
                operational_market_g_co2e * op_high / operational_location_g_co2e,
            )
        } else {
            (operational_market_g_co2e, operational_market_g_co2e)
        };
        FactParts {
            it_energy_kwh,
            operational_location_g_co2e,
            operational_location_low_g_co2e: op_low,
            operational_location_high_g_co2e: op_high,
            operational_market_g_co2e,
            operational_market_low_g_co2e: mk_low,
            operational_market_high_g_co2e: mk_high,
            embodied_g_co2e,
            embodied_low_g_co2e: embodied_g_co2e,
            embodied_high_g_co2e: embodied_g_co2e,
        }
    }

    /// The parts of a record whose embodied share is unknown (figures stored
    /// before migration 0022, or a fact built without parts): everything is
    /// operational, embodied is zero, IT energy equals facility energy, the
    /// location bounds are the record's and the market part has no bounds
    /// (low = high = the value). Linear in the record's values, so a rollup
    /// moved forward with the same rule (migration 0022, [`UNSPLIT_SQL`])
    /// equals the sum of its facts moved forward.
    pub fn unsplit(energy_kwh: f64, location_g_co2e: f64, market_g_co2e: f64, low_g_co2e: f64, high_g_co2e: f64) -> FactParts {
        FactParts {
            it_energy_kwh: energy_kwh,
            operational_location_g_co2e: location_g_co2e,
            operational_location_low_g_co2e: low_g_co2e,
            operational_location_high_g_co2e: high_g_co2e,
            operational_market_g_co2e: market_g_co2e,
            operational_market_low_g_co2e: market_g_co2e,
            operational_market_high_g_co2e: market_g_co2e,
            embodied_g_co2e: 0.0,
            embodied_low_g_co2e: 0.0,
            embodied_high_g_co2e: 0.0,
        }
    }

    /// Parts from [`FactParts::values`]' order.
    pub fn from_values(v: [f64; MEASURES - FIRST_PART]) -> FactParts {
        FactParts {
            it_energy_kwh: v[0],
            operational_location_g_co2e: v[1],
            operational_location_low_g_co2e: v[2],
            operational_location_high_g_co2e: v[3],
            operational_market_g_co2e: v[4],
            operational_market_low_g_co2e: v[5],
            operational_market_high_g_co2e: v[6],
            embodied_g_co2e: v[7],
            embodied_low_g_co2e: v[8],
            embodied_high_g_co2e: v[9],
        }
    }

    /// The part measures, in [`MEASURE_COLUMNS`] order from [`FIRST_PART`].
    pub fn values(&self) -> [f64; MEASURES - FIRST_PART] {
        [
            self.it_energy_kwh,
            self.operational_location_g_co2e,
            self.operational_location_low_g_co2e,
            self.operational_location_high_g_co2e,
            self.operational_market_g_co2e,
            self.operational_market_low_g_co2e,
            self.operational_market_high_g_co2e,
            self.embodied_g_co2e,
            self.embodied_low_g_co2e,
            self.embodied_high_g_co2e,
        ]
    }
}

/// The rule of [`FactParts::unsplit`] in SQL: for each part column (in
/// order), the expression of the five total columns it takes when a record
/// has no parts (`{a}` stands for the relation's alias prefix).
pub const UNSPLIT_SQL: [&str; MEASURES - FIRST_PART] = [
    "{a}energy_kwh",
    "{a}location_g_co2e",
    "{a}low_g_co2e",
    "{a}high_g_co2e",
    "{a}market_g_co2e",
    "{a}market_g_co2e",
    "{a}market_g_co2e",
    "0::float8",
    "0::float8",
    "0::float8",
];

/// Every measure of a relation whose part columns may be NULL (facts stored
/// before migration 0022): `COALESCE(part, unsplit rule) AS part`.
pub fn coalesced(prefix: &str) -> String {
    let mut cols: Vec<String> = MEASURE_COLUMNS[..FIRST_PART].iter().map(|c| format!("{prefix}{c} AS {c}")).collect();
    for (c, rule) in MEASURE_COLUMNS[FIRST_PART..].iter().zip(UNSPLIT_SQL) {
        cols.push(format!("COALESCE({prefix}{c}, {}) AS {c}", rule.replace("{a}", prefix)));
    }
    cols.join(", ")
}

/// `prefix` + each measure column, joined with `, ` (e.g. `u.energy_kwh, …`).
pub fn columns(prefix: &str) -> String {
    MEASURE_COLUMNS.iter().map(|c| format!("{prefix}{c}")).collect::<Vec<_>>().join(", ")
}

/// `sum(prefix + c) AS c` for each measure column.
pub fn sums(prefix: &str) -> String {
    MEASURE_COLUMNS.iter().map(|c| format!("sum({prefix}{c}) AS {c}")).collect::<Vec<_>>().join(", ")
}

/// `c = t.c + excluded.c` for each measure column (an upsert adding a delta).
pub fn add_excluded() -> String {
    MEASURE_COLUMNS.iter().map(|c| format!("{c} = t.{c} + excluded.{c}")).collect::<Vec<_>>().join(", ")
}

/// `c = excluded.c` for each measure column (an upsert replacing values).
pub fn set_excluded() -> String {
    MEASURE_COLUMNS.iter().map(|c| format!("{c} = excluded.{c}")).collect::<Vec<_>>().join(", ")
}

/// `$first::float8[], …` for each measure column (unnest arguments).
pub fn float_params(first: usize) -> String {
    (0..MEASURES).map(|i| format!("${}::float8[]", first + i)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bounds_split_into_operational_and_embodied() {
        // 4.4 g operational location, 0.5 g market, 1.5 g embodied; bounds 3..9 of 5.9.
        let p = FactParts::from_record(0.013, 4.4, 0.5, 1.5, 3.0, 9.0);
        assert_eq!(p.embodied_low_g_co2e, 1.5);
        assert_eq!(p.embodied_high_g_co2e, 1.5);
        assert!((p.operational_location_low_g_co2e - 1.5).abs() < 1e-12);
        assert!((p.operational_location_high_g_co2e - 7.5).abs() < 1e-12);
        assert!((p.operational_market_low_g_co2e - 0.5 * 1.5 / 4.4).abs() < 1e-12);
        assert!((p.operational_market_high_g_co2e - 0.5 * 7.5 / 4.4).abs() < 1e-12);
        // The parts' bounds add up to the record's bounds.
        assert!((p.operational_location_low_g_co2e + p.embodied_low_g_co2e - 3.0).abs() < 1e-12);
        assert!((p.operational_location_high_g_co2e + p.embodied_high_g_co2e - 9.0).abs() < 1e-12);
    }

    #[test]
    fn unsplit_is_all_operational() {
        let p = FactParts::unsplit(2.0, 10.0, 8.0, 7.0, 14.0);
        assert_eq!(p.values(), [2.0, 10.0, 7.0, 14.0, 8.0, 8.0, 8.0, 0.0, 0.0, 0.0]);
        assert_eq!(UNSPLIT_SQL.len(), MEASURES - FIRST_PART);
    }

    #[test]
    fn column_lists_follow_the_measure_order() {
        assert_eq!(columns("u.").split(", ").count(), MEASURES);
        assert!(sums("").starts_with("sum(energy_kwh) AS energy_kwh, sum(location_g_co2e)"));
        assert_eq!(float_params(3).split(", ").last(), Some("$17::float8[]"));
    }
}
