//! What the engine decides: one recommendation per resource with its
//! carbon and cost saving, confidence, evidence, risk, target and the
//! alternatives that lost the deduplication.
//!
//! Also the monthly footprint arithmetic every rule uses: **all energy and
//! CO2e figures go through `canopy_emissions::model::estimate_resource`**
//! (power curves, embodied, PUE, location and market factors, hourly
//! intensity when it covers the month); this module never carries a
//! coefficient of its own.

use canopy_emissions::model::{CpuArchitecture, Resource, StorageMedium, estimate_resource};

use crate::input::Inventory;
use crate::prices::HOURS_PER_MONTH;

/// Kinds of recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A smaller size of the same family.
    Rightsizing,
    /// The arm64 equivalent class.
    Graviton,
    /// Stop or delete an idle or orphaned resource.
    Idle,
    /// gp2 → gp3 or an S3 storage class / lifecycle change.
    StorageClass,
    /// Move to a cleaner region the placement policy allows.
    RegionMigration,
    /// Stop non-production resources outside working hours.
    OffHoursSchedule,
    /// Shift batch work to the cleanest hours of the day.
    TimeShift,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 7] = [
        Kind::Rightsizing,
        Kind::Graviton,
        Kind::Idle,
        Kind::StorageClass,
        Kind::RegionMigration,
        Kind::OffHoursSchedule,
        Kind::TimeShift,
    ];

    /// Stable lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Rightsizing => "rightsizing",
            Kind::Graviton => "graviton",
            Kind::Idle => "idle",
            Kind::StorageClass => "storage-class",
            Kind::RegionMigration => "region-migration",
            Kind::OffHoursSchedule => "off-hours-schedule",
            Kind::TimeShift => "time-shift",
        }
    }
}

/// What to change to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Another instance type or RDS class.
    InstanceType(String),
    /// Stop (instances) — data kept.
    Stop,
    /// Delete (after a final snapshot where the resource holds data).
    Delete,
    /// Remove provisioned concurrency.
    RemoveProvisionedConcurrency,
    /// Another EBS volume type.
    VolumeType(String),
    /// S3 Intelligent-Tiering.
    IntelligentTiering,
    /// A lifecycle rule to this storage class after `after_days`.
    Lifecycle {
        /// S3 storage class.
        storage_class: &'static str,
        /// Days after creation.
        after_days: u32,
    },
    /// Another region.
    Region(String),
    /// Run only in these hours of the week (UTC, Monday 00 = 0), stop otherwise.
    Schedule {
        /// Hours kept per week.
        on_hours_per_week: u32,
        /// Human description, e.g. "Mon-Fri 07:00-19:00 UTC".
        description: String,
    },
    /// Start the batch at this UTC hour of the day.
    StartAtHour(u8),
}

/// Carbon saved per month, kgCO2e, location- and market-based with bounds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CarbonSaving {
    /// Location-based central value.
    pub location_kg_co2e: f64,
    /// Location-based low bound.
    pub location_low_kg_co2e: f64,
    /// Location-based high bound.
    pub location_high_kg_co2e: f64,
    /// Market-based central value.
    pub market_kg_co2e: f64,
    /// Market-based low bound.
    pub market_low_kg_co2e: f64,
    /// Market-based high bound.
    pub market_high_kg_co2e: f64,
}

/// Where a cost figure comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CostBasis {
    /// The resource's billed cost (CUR).
    Billing,
    /// The crate's list-price table ([`crate::prices::PRICE_TABLE_SOURCE`]).
    PriceTable(&'static str),
}

/// Dollars saved per month, or why it is unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum CostSaving {
    /// Known saving, USD per month.
    Known {
        /// USD per month.
        usd_per_month: f64,
        /// Billing or price table.
        basis: CostBasis,
    },
    /// No billed cost and no listed price.
    Unknown {
        /// Why.
        reason: String,
    },
}

impl CostSaving {
    /// The saving in USD, 0 when unknown (for ranking only).
    pub fn usd_or_zero(&self) -> f64 {
        match self {
            CostSaving::Known { usd_per_month, .. } => *usd_per_month,
            CostSaving::Unknown { .. } => 0.0,
        }
    }
}

/// How sure the engine is that the action is right and the figures hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Confidence {
    /// Weak evidence (short window, default utilisation, unknown state age).
    Low,
    /// Good evidence with a modelled step.
    Medium,
    /// Measured over the full window with a clear margin.
    High,
}

/// Risk of the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Risk {
    /// Reversible, no behaviour change.
    Low,
    /// Restart or performance change.
    Medium,
    /// Data deletion or a migration.
    High,
}

/// Effort of the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effort {
    /// A console click or one API call.
    Low,
    /// A change window, a rebuild or a schedule to set up.
    Medium,
    /// A project (region migration).
    High,
}

/// Why the rule fired.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evidence {
    /// The rule, e.g. `rightsizing: p95 cpu 18.0 % of 8 vcpus fits 2 vcpus at <= 70 %`.
    pub rule: String,
    /// Metric window, Unix seconds.
    pub window_start_unix_s: Option<i64>,
    /// Metric window end, Unix seconds.
    pub window_end_unix_s: Option<i64>,
    /// p95 CPU, percent.
    pub cpu_p95_pct: Option<f64>,
    /// Mean CPU, percent.
    pub cpu_mean_pct: Option<f64>,
    /// p95 memory, percent.
    pub memory_p95_pct: Option<f64>,
    /// Other figures, name → value with unit.
    pub figures: Vec<(String, String)>,
}

/// An action that lost the deduplication for the same resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    /// Kind.
    pub kind: Kind,
    /// Target.
    pub target: Target,
    /// Carbon saved.
    pub carbon: CarbonSaving,
    /// Cost saved.
    pub cost: CostSaving,
}

/// One recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// Stable id: `kind:arn`.
    pub id: String,
    /// Kind.
    pub kind: Kind,
    /// The resource.
    pub arn: String,
    /// Its account.
    pub account_id: String,
    /// Its region.
    pub region: String,
    /// Its team.
    pub team: Option<String>,
    /// One-line action, e.g. `resize m5.2xlarge to m5.large`.
    pub action: String,
    /// What to change to.
    pub target: Target,
    /// Carbon saved per month.
    pub carbon: CarbonSaving,
    /// Dollars saved per month.
    pub cost: CostSaving,
    /// Confidence.
    pub confidence: Confidence,
    /// Evidence.
    pub evidence: Evidence,
    /// Risk.
    pub risk: Risk,
    /// Effort.
    pub effort: Effort,
    /// Caveats to check before acting.
    pub caveats: Vec<String>,
    /// Other actions for the same resource (filled by deduplication).
    pub alternatives: Vec<Alternative>,
}

/// Monthly footprint of one configuration, gCO2e, embodied included.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Footprint {
    /// Location-based (embodied + operational).
    pub location_g: f64,
    /// Low bound.
    pub location_low_g: f64,
    /// High bound.
    pub location_high_g: f64,
    /// Market-based (embodied + operational).
    pub market_g: f64,
    /// Low bound.
    pub market_low_g: f64,
    /// High bound.
    pub market_high_g: f64,
    /// Facility energy, kWh.
    pub energy_kwh: f64,
}

impl Footprint {
    /// Scales everything (e.g. a share of the month).
    pub fn scale(self, f: f64) -> Footprint {
        Footprint {
            location_g: self.location_g * f,
            location_low_g: self.location_low_g * f,
            location_high_g: self.location_high_g * f,
            market_g: self.market_g * f,
            market_low_g: self.market_low_g * f,
            market_high_g: self.market_high_g * f,
            energy_kwh: self.energy_kwh * f,
        }
    }

    /// Sum of two footprints.
    pub fn plus(self, o: Footprint) -> Footprint {
        Footprint {
            location_g: self.location_g + o.location_g,
            location_low_g: self.location_low_g + o.location_low_g,
            location_high_g: self.location_high_g + o.location_high_g,
            market_g: self.market_g + o.market_g,
            market_low_g: self.market_low_g + o.market_low_g,
            market_high_g: self.market_high_g + o.market_high_g,
            energy_kwh: self.energy_kwh + o.energy_kwh,
        }
    }

    /// Saving of going from `self` to `after`, kg; the bounds are the
    /// extremes of the low-low, central and high-high differences (the two
    /// configurations share the model's coefficients, so their errors move
    /// together).
    pub fn saving_to(&self, after: &Footprint) -> CarbonSaving {
        let spread = |c: f64, a: f64, b: f64| (c.min(a).min(b), c.max(a).max(b));
        let loc = self.location_g - after.location_g;
        let (loc_lo, loc_hi) = spread(
            loc,
            self.location_low_g - after.location_low_g,
            self.location_high_g - after.location_high_g,
        );
        let mkt = self.market_g - after.market_g;
        let (mkt_lo, mkt_hi) = spread(
            mkt,
            self.market_low_g - after.market_low_g,
            self.market_high_g - after.market_high_g,
        );
        CarbonSaving {
            location_kg_co2e: loc / 1000.0,
            location_low_kg_co2e: loc_lo / 1000.0,
            location_high_kg_co2e: loc_hi / 1000.0,
            market_kg_co2e: mkt / 1000.0,
            market_low_kg_co2e: mkt_lo / 1000.0,
            market_high_kg_co2e: mkt_hi / 1000.0,
        }
    }
}

/// Start of the month the footprints describe: the 730 hours before the snapshot.
pub fn month_start(inv: &Inventory<'_>) -> i64 {
    inv.as_of_unix_s - (HOURS_PER_MONTH * 3600.0) as i64
}

fn footprint(
    inv: &Inventory<'_>,
    region: &str,
    resource: &Resource<'_>,
    hours: f64,
    cpu_pct: Option<f64>,
) -> Option<Footprint> {
    let ctx = canopy_emissions::model::EstimateContext {
        region,
        interval_start_unix_s: month_start(inv),
        market: inv.market,
        hourly: inv.hourly,
    };
    let e = estimate_resource(resource, hours, cpu_pct, &ctx).ok()?;
    let market_per_kwh = e.market_factor.g_co2e_per_kwh;
    Some(Footprint {
        location_g: e.embodied_g_co2e + e.operational_location_g_co2e,
        location_low_g: e.embodied_g_co2e + e.operational_location_bounds_g_co2e.low,
        location_high_g: e.embodied_g_co2e + e.operational_location_bounds_g_co2e.high,
        market_g: e.embodied_g_co2e + e.operational_market_g_co2e,
        market_low_g: e.embodied_g_co2e + e.energy_bounds_kwh.low * market_per_kwh,
        market_high_g: e.embodied_g_co2e + e.energy_bounds_kwh.high * market_per_kwh,
        energy_kwh: e.energy_kwh,
    })
}

/// An instance (EC2 or RDS class) running `hours` of the month at `cpu_pct`
/// (`None` = the model's default utilisation); `None` when the model knows
/// neither the type nor a vCPU count.
pub fn instance_month(
    inv: &Inventory<'_>,
    region: &str,
    instance_type: &str,
    vcpus_if_unknown: Option<f64>,
    hours: f64,
    cpu_pct: Option<f64>,
) -> Option<Footprint> {
    footprint(
        inv,
        region,
        &Resource::Instance {
            instance_type,
            vcpus_if_unknown,
        },
        hours,
        cpu_pct,
    )
}

/// Storage held for `hours` of the month.
pub fn storage_month(
    inv: &Inventory<'_>,
    region: &str,
    gb: f64,
    medium: StorageMedium,
    replication: f64,
    hours: f64,
) -> Option<Footprint> {
    footprint(
        inv,
        region,
        &Resource::Storage {
            gb,
            medium,
            replication,
        },
        hours,
        None,
    )
}

/// Provisioned-concurrency environments kept warm for a month: `gb`
/// provisioned (concurrency × memory) as serverless compute at `cpu_pct`.
pub fn function_month(
    inv: &Inventory<'_>,
    region: &str,
    gb: f64,
    architecture: CpuArchitecture,
    cpu_pct: f64,
) -> Option<Footprint> {
    let gb_seconds = gb * HOURS_PER_MONTH * 3600.0;
    footprint(
        inv,
        region,
        &Resource::Function {
            gb_seconds,
            architecture,
        },
        HOURS_PER_MONTH,
        Some(cpu_pct),
    )
}
