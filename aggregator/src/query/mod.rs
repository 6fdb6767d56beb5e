//! The query layer: validated requests, exact rollup choice and
//! parameterised SQL. HTTP and gRPC both parse into these request types and
//! serve these responses, so their semantics are the same.
//!
//! - [`authz`]: the caller's scope narrows every request's filters.
//! - [`params`]: parsing and validating request parameters.
//! - [`plan`]: the planner (signed rollup segments, retention horizons).
//! - [`horizons`]: each level's retention horizon, stored by maintenance
//!   and read by every answer.
//! - `sql`: the statements, run in one snapshot per answer.

pub mod authz;
pub mod horizons;
pub mod params;
pub mod plan;
mod sql;

pub use plan::{Horizons, RetentionError, Segment, Source};
pub use sql::{QueryEngine, QueryError, Snapshot};

/// A dimension results can be grouped or filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// AWS account id.
    Account,
    /// The account's organisational-unit path.
    Ou,
    /// AWS region.
    Region,
    /// AWS service.
    Service,
    /// Resource type.
    ResourceType,
    /// Team / cost centre (attribution).
    Team,
    /// Quality flag of the estimates.
    Quality,
}

impl Dimension {
    /// Every dimension.
    pub const ALL: [Dimension; 7] = [
        Dimension::Account,
        Dimension::Ou,
        Dimension::Region,
        Dimension::Service,
        Dimension::ResourceType,
        Dimension::Team,
        Dimension::Quality,
    ];

    /// Parameter and field name.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Account => "account",
            Dimension::Ou => "ou",
            Dimension::Region => "region",
            Dimension::Service => "service",
            Dimension::ResourceType => "resource_type",
            Dimension::Team => "team",
            Dimension::Quality => "quality",
        }
    }

    /// Parses a parameter name.
    pub fn parse(text: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == text)
    }
}

/// Filters: within a dimension any listed value matches; across dimensions
/// all must match. An empty list does not filter. An `ou` value matches the
/// OU itself and every OU below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Account ids.
    pub account: Vec<String>,
    /// OU paths (or path prefixes ending at an OU).
    pub ou: Vec<String>,
    /// Regions.
    pub region: Vec<String>,
    /// Services.
    pub service: Vec<String>,
    /// Resource types.
    pub resource_type: Vec<String>,
    /// Teams.
    pub team: Vec<String>,
    /// Quality flags.
    pub quality: Vec<String>,
}

impl Filters {
    /// Values for `dimension`.
    pub fn values(&self, dimension: Dimension) -> &[String] {
        match dimension {
            Dimension::Account => &self.account,
            Dimension::Ou => &self.ou,
            Dimension::Region => &self.region,
            Dimension::Service => &self.service,
            Dimension::ResourceType => &self.resource_type,
            Dimension::Team => &self.team,
            Dimension::Quality => &self.quality,
        }
    }

    /// Mutable values for `dimension`.
    pub fn values_mut(&mut self, dimension: Dimension) -> &mut Vec<String> {
        match dimension {
            Dimension::Account => &mut self.account,
            Dimension::Ou => &mut self.ou,
            Dimension::Region => &mut self.region,
            Dimension::Service => &mut self.service,
            Dimension::ResourceType => &mut self.resource_type,
            Dimension::Team => &mut self.team,
            Dimension::Quality => &mut self.quality,
        }
    }
}

/// Offset pagination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows per page (1..=10 000).
    pub limit: u32,
    /// Rows skipped.
    pub offset: u64,
}

impl Default for Page {
    fn default() -> Self {
        Page { limit: 100, offset: 0 }
    }
}

/// Time-series resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// 5 minutes.
    FiveMinutes,
    /// 1 hour.
    Hour,
    /// 1 day (UTC).
    Day,
}

impl Step {
    /// Width in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Step::FiveMinutes => crate::time::FIVE_MINUTES_S,
            Step::Hour => crate::time::HOUR_S,
            Step::Day => crate::time::DAY_S,
        }
    }

    /// Parameter spelling.
    pub fn name(self) -> &'static str {
        match self {
            Step::FiveMinutes => "5m",
            Step::Hour => "1h",
            Step::Day => "1d",
        }
    }

    /// The rollup with this bucket width.
    pub fn source(self) -> Source {
        match self {
            Step::FiveMinutes => Source::FiveMinute,
            Step::Hour => Source::Hourly,
            Step::Day => Source::Daily,
        }
    }
}

/// Totals over a range, optionally grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalsRequest {
    /// Inclusive start, Unix seconds.
    pub from_unix_s: i64,
    /// Exclusive end, Unix seconds.
    pub to_unix_s: i64,
    /// Grouping dimensions (none: one row).
    pub group_by: Vec<Dimension>,
    /// Filters.
    pub filters: Filters,
    /// Page of groups, largest location-based CO2e first.
    pub page: Page,
}

/// A time series over a step-aligned range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRequest {
    /// Inclusive start, a multiple of the step.
    pub from_unix_s: i64,
    /// Exclusive end, a multiple of the step.
    pub to_unix_s: i64,
    /// Resolution.
    pub step: Step,
    /// Grouping dimensions.
    pub group_by: Vec<Dimension>,
    /// Filters.
    pub filters: Filters,
    /// Page of (bucket, group) rows in time order.
    pub page: Page,
}

/// The largest resources by location-based CO2e over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopResourcesRequest {
    /// Inclusive start, Unix seconds.
    pub from_unix_s: i64,
    /// Exclusive end, Unix seconds.
    pub to_unix_s: i64,
    /// Filters.
    pub filters: Filters,
    /// `limit` is N.
    pub page: Page,
}

/// Summed figures. CO2e in kilograms (stored as grams). The totals keep
/// their meaning of before (location = operational location + embodied,
/// market = operational market + embodied); the parts are kept apart
/// ([`crate::accounting`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// Facility energy (IT energy × PUE), kWh.
    pub energy_kwh: f64,
    /// Location-based CO2e (operational location + embodied), kg.
    pub location_kg_co2e: f64,
    /// Market-based CO2e (operational market + embodied), kg.
    pub market_kg_co2e: f64,
    /// Lower bound of location-based CO2e, kg.
    pub low_kg_co2e: f64,
    /// Upper bound of location-based CO2e, kg.
    pub high_kg_co2e: f64,
    /// IT energy (before PUE), kWh.
    pub it_energy_kwh: f64,
    /// Operational location-based CO2e, kg.
    pub operational_location_kg_co2e: f64,
    /// Its lower bound, kg.
    pub operational_location_low_kg_co2e: f64,
    /// Its upper bound, kg.
    pub operational_location_high_kg_co2e: f64,
    /// Operational market-based CO2e, kg.
    pub operational_market_kg_co2e: f64,
    /// Its lower bound, kg.
    pub operational_market_low_kg_co2e: f64,
    /// Its upper bound, kg.
    pub operational_market_high_kg_co2e: f64,
    /// Embodied CO2e (hardware manufacturing, amortised), kg.
    pub embodied_kg_co2e: f64,
    /// Its lower bound, kg.
    pub embodied_low_kg_co2e: f64,
    /// Its upper bound, kg.
    pub embodied_high_kg_co2e: f64,
    /// Number of facts summed.
    pub fact_count: i64,
}

impl Metrics {
    /// From sums of the stored measures (grams, kWh) in
    /// [`crate::accounting::MEASURE_COLUMNS`] order.
    pub fn from_stored(m: &crate::accounting::Measures, fact_count: i64) -> Metrics {
        let kg = |g: f64| g / 1_000.0;
        Metrics {
            energy_kwh: m[0],
            location_kg_co2e: kg(m[1]),
            market_kg_co2e: kg(m[2]),
            low_kg_co2e: kg(m[3]),
            high_kg_co2e: kg(m[4]),
            it_energy_kwh: m[5],
            operational_location_kg_co2e: kg(m[6]),
            operational_location_low_kg_co2e: kg(m[7]),
            operational_location_high_kg_co2e: kg(m[8]),
            operational_market_kg_co2e: kg(m[9]),
            operational_market_low_kg_co2e: kg(m[10]),
            operational_market_high_kg_co2e: kg(m[11]),
            embodied_kg_co2e: kg(m[12]),
            embodied_low_kg_co2e: kg(m[13]),
            embodied_high_kg_co2e: kg(m[14]),
            fact_count,
        }
    }

    /// The figures as (name, value) pairs, in
    /// [`crate::accounting::MEASURE_COLUMNS`] order, named as served
    /// (`_kg_co2e`); for the HTTP body.
    pub fn named(&self) -> [(&'static str, f64); crate::accounting::MEASURES] {
        [
            ("energy_kwh", self.energy_kwh),
            ("location_kg_co2e", self.location_kg_co2e),
            ("market_kg_co2e", self.market_kg_co2e),
            ("low_kg_co2e", self.low_kg_co2e),
            ("high_kg_co2e", self.high_kg_co2e),
            ("it_energy_kwh", self.it_energy_kwh),
            ("operational_location_kg_co2e", self.operational_location_kg_co2e),
            ("operational_location_low_kg_co2e", self.operational_location_low_kg_co2e),
            ("operational_location_high_kg_co2e", self.operational_location_high_kg_co2e),
            ("operational_market_kg_co2e", self.operational_market_kg_co2e),
            ("operational_market_low_kg_co2e", self.operational_market_low_kg_co2e),
            ("operational_market_high_kg_co2e", self.operational_market_high_kg_co2e),
            ("embodied_kg_co2e", self.embodied_kg_co2e),
            ("embodied_low_kg_co2e", self.embodied_low_kg_co2e),
            ("embodied_high_kg_co2e", self.embodied_high_kg_co2e),
        ]
    }

    /// The figures in stored units (kWh, grams), in
    /// [`crate::accounting::MEASURE_COLUMNS`] order: the inverse of
    /// [`Metrics::from_stored`].
    pub fn as_stored(&self) -> crate::accounting::Measures {
        let mut m = [0.0; crate::accounting::MEASURES];
        for (i, (name, v)) in self.named().iter().enumerate() {
            m[i] = if name.ends_with("_kwh") { *v } else { v * 1_000.0 };
        }
        m
    }

    /// Checks that the parts add up to the totals (operational location +
    /// embodied = location, operational market + embodied = market, and
    /// the same for the location bounds), within `tolerance` relative to
    /// the larger side; names the first that does not.
    pub fn parts_add_up(&self, tolerance: f64) -> Result<(), String> {
        let pairs = [
            ("location", self.location_kg_co2e, self.operational_location_kg_co2e + self.embodied_kg_co2e),
            ("market", self.market_kg_co2e, self.operational_market_kg_co2e + self.embodied_kg_co2e),
            ("low", self.low_kg_co2e, self.operational_location_low_kg_co2e + self.embodied_low_kg_co2e),
            ("high", self.high_kg_co2e, self.operational_location_high_kg_co2e + self.embodied_high_kg_co2e),
        ];
        for (name, total, parts) in pairs {
            if (total - parts).abs() > tolerance * total.abs().max(parts.abs()).max(1e-9) {
                return Err(format!("{name}: total {total} kg, parts add up to {parts} kg"));
            }
        }
        Ok(())
    }

    /// Adds `other` to these figures.
    pub fn add(&mut self, other: &Metrics) {
        self.energy_kwh += other.energy_kwh;
        self.location_kg_co2e += other.location_kg_co2e;
        self.market_kg_co2e += other.market_kg_co2e;
        self.low_kg_co2e += other.low_kg_co2e;
        self.high_kg_co2e += other.high_kg_co2e;
        self.it_energy_kwh += other.it_energy_kwh;
        self.operational_location_kg_co2e += other.operational_location_kg_co2e;
        self.operational_location_low_kg_co2e += other.operational_location_low_kg_co2e;
        self.operational_location_high_kg_co2e += other.operational_location_high_kg_co2e;
        self.operational_market_kg_co2e += other.operational_market_kg_co2e;
        self.operational_market_low_kg_co2e += other.operational_market_low_kg_co2e;
        self.operational_market_high_kg_co2e += other.operational_market_high_kg_co2e;
        self.embodied_kg_co2e += other.embodied_kg_co2e;
        self.embodied_low_kg_co2e += other.embodied_low_kg_co2e;
        self.embodied_high_kg_co2e += other.embodied_high_kg_co2e;
        self.fact_count += other.fact_count;
    }
}

/// One group of a totals answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// Values of the requested dimensions, in request order.
    pub dims: Vec<(Dimension, String)>,
    /// Figures.
    pub metrics: Metrics,
}

/// One (bucket, group) of a series answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    /// Bucket start, Unix seconds.
    pub bucket_start_unix_s: i64,
    /// Values of the requested dimensions, in request order.
    pub dims: Vec<(Dimension, String)>,
    /// Figures.
    pub metrics: Metrics,
}

/// Share of the estimates with one quality flag.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityShare {
    /// Quality flag.
    pub quality: String,
    /// Figures of that flag.
    pub metrics: Metrics,
    /// Fraction of the location-based CO2e (0 when the total is 0).
    pub share_of_location_co2e: f64,
}

/// Answer to a [`TotalsRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct TotalsResponse {
    /// Sources read, in time order.
    pub segments: Vec<Segment>,
    /// This page of groups.
    pub rows: Vec<GroupRow>,
    /// Sum over all groups (not just this page).
    pub total: Metrics,
    /// Breakdown of the total by quality flag.
    pub by_quality: Vec<QualityShare>,
    /// Offset of the next page when there is one.
    pub next_offset: Option<u64>,
    /// The factor sets and versions behind the figures (per account and
    /// UTC month of the range, [`crate::lineage`]).
    pub factor_sets: Vec<crate::lineage::FactorSet>,
}

/// Answer to a [`SeriesRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesResponse {
    /// Sources read.
    pub segments: Vec<Segment>,
    /// This page of rows.
    pub rows: Vec<SeriesRow>,
    /// Offset of the next page when there is one.
    pub next_offset: Option<u64>,
    /// The factor sets and versions behind the figures (per account and
    /// UTC month of the range, [`crate::lineage`]).
    pub factor_sets: Vec<crate::lineage::FactorSet>,
}

/// One resource of a top-N answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    /// Account id.
    pub account_id: String,
    /// Region.
    pub region: String,
    /// Resource id.
    pub resource_id: String,
    /// Service (latest seen in the range).
    pub service: String,
    /// Resource type (latest seen in the range).
    pub resource_type: String,
    /// Team (latest seen in the range).
    pub team: String,
    /// Figures.
    pub metrics: Metrics,
}

/// Answer to a [`TopResourcesRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct TopResourcesResponse {
    /// Sources read, in time order (the per-resource daily rollup for whole
    /// days, per-resource facts for ragged edges).
    pub segments: Vec<Segment>,
    /// This page of resources.
    pub rows: Vec<ResourceRow>,
    /// Offset of the next page when there is one.
    pub next_offset: Option<u64>,
    /// The factor sets and versions behind the figures (per account and
    /// UTC month of the range, [`crate::lineage`]).
    pub factor_sets: Vec<crate::lineage::FactorSet>,
}
