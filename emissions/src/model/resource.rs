//! Resource-level estimate: one resource over one interval → energy by
//! component, embodied and operational CO2e, bounds and quality.
//!
//! How the figures are built:
//!
//! * **IT energy** by component (without PUE): instances from
//!   [`InstancePower::power_w`] × hours (`compute` = CPU package + the
//!   instance's share of the rest of the server, `memory`, `accelerators` =
//!   GPUs); serverless compute from watts per vCPU × vCPU-hours plus
//!   [`memory_kwh`]; storage from [`storage_kwh`]; transfer from
//!   [`networking_kwh`].
//! * **Facility energy** = IT energy × AWS fleet PUE of the interval's year ([`pue`]).
//! * **Location-based CO2e** = facility energy × grid factor: the hourly
//!   direct intensity of the region's Electricity Maps zone when an hourly
//!   source covers every hour of the interval (overlap-weighted mean), else
//!   the annual static factor ([`location_factor`]).
//! * **Market-based CO2e** = facility energy × [`MarketConfig::market_factor`]
//!   of that location factor.
//! * **Embodied** = [`embodied_g_co2e_per_instance_hour`] × instance-hours
//!   (instances only; no embodied figure exists for serverless, storage or
//!   network hardware in the shipped data).
//! * **Bounds** combine two things: utilisation (measured → the measured value;
//!   unknown → [`DEFAULT_CPU_UTILISATION_LOW_PCT`] and
//!   [`DEFAULT_CPU_UTILISATION_HIGH_PCT`]) and coefficient uncertainty (power:
//!   [`InstancePower::coefficient_uncertainty`]; storage, network and memory:
//!   [`COEFFICIENT_UNCERTAINTY`]): `low = energy(u_low) × (1 − rel)`,
//!   `high = energy(u_high) × (1 + rel)`. Grid-factor uncertainty is not included.
//! * **Quality** is the worst of the power model's quality and the
//!   utilisation's (`Measured` when given, `Default` when not); coefficient-only
//!   resources (storage, transfer) are `Estimated`.

use super::coefficients::{COEFFICIENT_UNCERTAINTY, StorageMedium, memory_kwh, networking_kwh, storage_kwh};
use super::embodied::embodied_g_co2e_per_instance_hour;
use super::power::{
    CpuArchitecture, DEFAULT_CPU_UTILISATION_HIGH_PCT, DEFAULT_CPU_UTILISATION_LOW_PCT,
    DEFAULT_CPU_UTILISATION_PCT, InstancePower, instance_power, vcpu_power_w,
};
use super::pue::pue;
use super::quality::{Bounds, Provenance, Quality};
use crate::grid::{CarbonIntensitySource, GridFactor, MarketConfig, location_factor, zone_for_region};
use crate::time;
use crate::units::{SECONDS_PER_HOUR, bytes_to_gb, gb_seconds_to_gb_hours, w_hours_to_kwh};

/// Version of the `canopy` methodology implemented here; reported with every
/// estimate so stored figures can be traced to the rules that made them.
pub const METHODOLOGY_VERSION: &str = "canopy-2026.11";

/// Memory per vCPU-equivalent of Lambda: AWS allocates CPU in proportion to
/// memory and documents one full vCPU at 1,769 MB.
pub const LAMBDA_GB_PER_VCPU: f64 = 1.769;

/// Relative uncertainty of serverless per-vCPU watts (microarchitecture
/// averages, same as an `Estimated` instance model).
const SERVERLESS_POWER_UNCERTAINTY: f64 = 0.30;

/// What is being estimated, with its size; usage over the interval is the
/// size × the interval length unless stated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resource<'a> {
    /// One running instance (EC2, RDS, ElastiCache, SageMaker, OpenSearch …).
    Instance {
        /// Instance type, service prefixes allowed (`db.r5.large`).
        instance_type: &'a str,
        /// vCPUs to use with fleet-average watts when no table knows the type.
        vcpus_if_unknown: Option<f64>,
    },
    /// Provisioned storage (EBS volume, S3 bucket, snapshot …).
    Storage {
        /// Provisioned or stored GB (decimal).
        gb: f64,
        /// SSD or HDD.
        medium: StorageMedium,
        /// Copies the service keeps (1 = none).
        replication: f64,
    },
    /// A Lambda function's consumption during the interval.
    Function {
        /// GB-seconds billed in the interval (memory size × duration).
        gb_seconds: f64,
        /// x86 or Arm.
        architecture: CpuArchitecture,
    },
    /// A container task with reserved vCPU and memory (ECS/EKS on Fargate).
    Container {
        /// Reserved vCPUs.
        vcpus: f64,
        /// Reserved memory, GB.
        memory_gb: f64,
        /// x86 or Arm.
        architecture: CpuArchitecture,
    },
    /// Data transferred during the interval.
    Transfer {
        /// Bytes transferred.
        bytes: f64,
    },
}

/// Where and when the resource ran, and how to turn energy into CO2e.
#[derive(Clone, Copy)]
pub struct EstimateContext<'a> {
    /// AWS region code, e.g. `eu-west-1`.
    pub region: &'a str,
    /// Start of the interval, Unix seconds (UTC).
    pub interval_start_unix_s: i64,
    /// Market-based configuration.
    pub market: &'a MarketConfig,
    /// Optional hourly intensity; the annual factor is used when absent or
    /// when it lacks any hour of the interval.
    pub hourly: Option<&'a dyn CarbonIntensitySource>,
}

/// IT energy by component, kWh, without PUE.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ComponentEnergy {
    /// CPU (and, for instances, the share of the rest of the server).
    pub compute_kwh: f64,
    /// Memory.
    pub memory_kwh: f64,
    /// Storage media.
    pub storage_kwh: f64,
    /// Network transfer.
    pub networking_kwh: f64,
    /// GPUs and other accelerators.
    pub accelerators_kwh: f64,
}

impl ComponentEnergy {
    /// Sum of all components.
    pub fn total_kwh(&self) -> f64 {
        self.compute_kwh + self.memory_kwh + self.storage_kwh + self.networking_kwh + self.accelerators_kwh
    }
}

/// Result of [`estimate_resource`].
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceEstimate {
    /// IT energy by component, without PUE.
    pub it_energy: ComponentEnergy,
    /// PUE applied.
    pub pue: f64,
    /// Source of the PUE.
    pub pue_provenance: Provenance,
    /// Facility energy: IT energy × PUE.
    pub energy_kwh: f64,
    /// Bounds of `energy_kwh`.
    pub energy_bounds_kwh: Bounds,
    /// Amortised embodied emissions over the interval.
    pub embodied_g_co2e: f64,
    /// Source of the embodied figure; `None` when none applies.
    pub embodied_provenance: Option<Provenance>,
    /// Operational emissions, location-based (Scope 2 location method).
    pub operational_location_g_co2e: f64,
    /// Bounds of `operational_location_g_co2e` (energy bounds × location factor).
    pub operational_location_bounds_g_co2e: Bounds,
    /// Operational emissions, market-based.
    pub operational_market_g_co2e: f64,
    /// Location-based factor used.
    pub location_factor: GridFactor,
    /// Market-based factor used.
    pub market_factor: GridFactor,
    /// Source of the power model; `None` for coefficient-only resources.
    pub power_provenance: Option<Provenance>,
    /// CPU utilisation used for the central value, percent.
    pub cpu_utilisation_pct: f64,
    /// Worst quality of the inputs.
    pub quality: Quality,
    /// [`METHODOLOGY_VERSION`].
    pub methodology: &'static str,
}

/// Why no estimate could be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EstimateError {
    /// The instance type is in no table and no vCPU count was given.
    #[error("unknown instance type {instance_type:?}: expected a type in the power tables or a vcpu count")]
    UnknownInstanceType {
        /// The type as given.
        instance_type: String,
    },
    /// A size or duration is negative or not a number.
    #[error("expected a non-negative finite {what}, found {found}")]
    BadQuantity {
        /// Which input.
        what: &'static str,
        /// The value given.
        found: f64,
    },
}

/// Utilisation for the central value and the two bounds, with its quality.
struct Utilisation {
    central_pct: f64,
    low_pct: f64,
    high_pct: f64,
    quality: Quality,
}

fn utilisation(measured_pct: Option<f64>) -> Utilisation {
    match measured_pct.filter(|u| u.is_finite()) {
        Some(u) => {
            let u = u.clamp(0.0, 100.0);
            Utilisation { central_pct: u, low_pct: u, high_pct: u, quality: Quality::Measured }
        }
        None => Utilisation {
            central_pct: DEFAULT_CPU_UTILISATION_PCT,
            low_pct: DEFAULT_CPU_UTILISATION_LOW_PCT,
            high_pct: DEFAULT_CPU_UTILISATION_HIGH_PCT,
            quality: Quality::Default,
        },
    }
}

fn check(what: &'static str, value: f64) -> Result<f64, EstimateError> {
    if value.is_finite() && value >= 0.0 { Ok(value) } else { Err(EstimateError::BadQuantity { what, found: value }) }
}

/// Energy, bounds and sources of one resource before grid factors.
struct Energy {
    it: ComponentEnergy,
    it_bounds: Bounds,
    embodied_g_co2e: f64,
    embodied_provenance: Option<Provenance>,
    power_provenance: Option<Provenance>,
    quality: Quality,
}

fn instance_energy(power: &InstancePower, hours: f64, embodied: Option<(f64, Provenance)>, u: &Utilisation) -> Energy {
    let central = power.power_w(u.central_pct);
    let rel = power.coefficient_uncertainty();
    let low_w = power.power_w(u.low_pct).total_w() * (1.0 - rel);
    let high_w = power.power_w(u.high_pct).total_w() * (1.0 + rel);
    Energy {
        it: ComponentEnergy {
            compute_kwh: w_hours_to_kwh(central.cpu_w + central.other_w, hours),
            memory_kwh: w_hours_to_kwh(central.memory_w, hours),
            accelerators_kwh: w_hours_to_kwh(central.gpu_w, hours),
            ..ComponentEnergy::default()
        },
        it_bounds: Bounds { low: w_hours_to_kwh(low_w, hours), high: w_hours_to_kwh(high_w, hours) },
        embodied_g_co2e: embodied.map_or(0.0, |(g, _)| g * hours),
        embodied_provenance: embodied.map(|(_, p)| p),
        power_provenance: Some(power.provenance()),
        quality: power.quality().worst(u.quality),
    }
}

fn serverless_energy(vcpu_hours: f64, memory_gb_hours: f64, architecture: CpuArchitecture, u: &Utilisation) -> Energy {
    let (central_w, provenance) = vcpu_power_w(architecture, u.central_pct);
    let (low_w, _) = vcpu_power_w(architecture, u.low_pct);
    let (high_w, _) = vcpu_power_w(architecture, u.high_pct);
    let memory = memory_kwh(memory_gb_hours);
    let rel = SERVERLESS_POWER_UNCERTAINTY;
    Energy {
        it: ComponentEnergy {
            compute_kwh: w_hours_to_kwh(central_w, vcpu_hours),
            memory_kwh: memory,
            ..ComponentEnergy::default()
        },
        it_bounds: Bounds {
            low: w_hours_to_kwh(low_w, vcpu_hours) * (1.0 - rel),
            high: w_hours_to_kwh(high_w, vcpu_hours) * (1.0 + rel),
        }
        .plus(Bounds::exact(memory).widen(COEFFICIENT_UNCERTAINTY)),
        embodied_g_co2e: 0.0,
        embodied_provenance: None,
        power_provenance: Some(provenance),
        quality: Quality::Estimated.worst(u.quality),
    }
}

fn coefficient_energy(it: ComponentEnergy) -> Energy {
    Energy {
        it,
        it_bounds: Bounds::exact(it.total_kwh()).widen(COEFFICIENT_UNCERTAINTY),
        embodied_g_co2e: 0.0,
        embodied_provenance: None,
        power_provenance: None,
        quality: Quality::Estimated,
    }
}

/// Location factor over `[start, start + hours)`: overlap-weighted mean of the
/// hourly source when it covers every hour, else the annual factor.
fn interval_location_factor(ctx: &EstimateContext<'_>, hours: f64) -> GridFactor {
    let annual = location_factor(ctx.region);
    let (Some(source), Some(zone)) = (ctx.hourly, zone_for_region(ctx.region)) else {
        return annual;
    };
    let start = ctx.interval_start_unix_s;
    let end = start + (hours * SECONDS_PER_HOUR).round() as i64;
    if end <= start {
        return source.intensity(zone, start).unwrap_or(annual);
    }
    let (mut weighted, mut seconds, mut provenance) = (0.0, 0.0, annual.provenance);
    let mut hour = time::hour_start(start);
    while hour < end {
        let Some(factor) = source.intensity(zone, hour) else {
            return annual;
        };
        let overlap = (end.min(hour + 3600) - start.max(hour)) as f64;
        weighted += factor.g_co2e_per_kwh * overlap;
        seconds += overlap;
        provenance = factor.provenance;
        hour += 3600;
    }
    GridFactor { g_co2e_per_kwh: weighted / seconds, provenance }
}

fn finish(energy: Energy, hours: f64, cpu_utilisation_pct: f64, ctx: &EstimateContext<'_>) -> ResourceEstimate {
    let year = time::civil_date(ctx.interval_start_unix_s).year;
    let (pue_ratio, pue_provenance) = pue(year);
    let location = interval_location_factor(ctx, hours);
    let market = ctx.market.market_factor(ctx.region, &location);
    let energy_kwh = energy.it.total_kwh() * pue_ratio;
    let energy_bounds_kwh = energy.it_bounds.scale(pue_ratio);
    ResourceEstimate {
        it_energy: energy.it,
        pue: pue_ratio,
        pue_provenance,
        energy_kwh,
        energy_bounds_kwh,
        embodied_g_co2e: energy.embodied_g_co2e,
        embodied_provenance: energy.embodied_provenance,
        operational_location_g_co2e: energy_kwh * location.g_co2e_per_kwh,
        operational_location_bounds_g_co2e: energy_bounds_kwh.scale(location.g_co2e_per_kwh),
        operational_market_g_co2e: energy_kwh * market.g_co2e_per_kwh,
        location_factor: location,
        market_factor: market,
        power_provenance: energy.power_provenance,
        cpu_utilisation_pct,
        quality: energy.quality,
        methodology: METHODOLOGY_VERSION,
    }
}

/// Estimates one resource over an interval of `interval_hours` starting at
/// `ctx.interval_start_unix_s`. `cpu_utilisation_pct`: the measured average
/// (quality `Measured`), or `None` for [`DEFAULT_CPU_UTILISATION_PCT`]
/// (quality `Default`); ignored for storage and transfer.
pub fn estimate_resource(
    resource: &Resource<'_>,
    interval_hours: f64,
    cpu_utilisation_pct: Option<f64>,
    ctx: &EstimateContext<'_>,
) -> Result<ResourceEstimate, EstimateError> {
    let hours = check("interval length in hours", interval_hours)?;
    let u = utilisation(cpu_utilisation_pct);
    let energy = match *resource {
        Resource::Instance { instance_type, vcpus_if_unknown } => {
            let power = match (instance_power(instance_type), vcpus_if_unknown) {
                (Some(p), _) => p,
                (None, Some(vcpus)) => InstancePower::fleet_average(check("vcpu count", vcpus)?),
                (None, None) => {
                    return Err(EstimateError::UnknownInstanceType { instance_type: instance_type.to_owned() });
                }
            };
            instance_energy(&power, hours, embodied_g_co2e_per_instance_hour(instance_type), &u)
        }
        Resource::Storage { gb, medium, replication } => {
            let tb_hours = check("storage size in GB", gb)? * hours / 1000.0;
            let replication = check("replication factor", replication)?;
            coefficient_energy(ComponentEnergy {
                storage_kwh: storage_kwh(tb_hours, medium, replication),
                ..ComponentEnergy::default()
            })
        }
        Resource::Function { gb_seconds, architecture } => {
            let gb_hours = gb_seconds_to_gb_hours(check("GB-seconds", gb_seconds)?);
            serverless_energy(gb_hours / LAMBDA_GB_PER_VCPU, gb_hours, architecture, &u)
        }
        Resource::Container { vcpus, memory_gb, architecture } => {
            let vcpu_hours = check("vcpu count", vcpus)? * hours;
            let gb_hours = check("memory in GB", memory_gb)? * hours;
            serverless_energy(vcpu_hours, gb_hours, architecture, &u)
        }
        Resource::Transfer { bytes } => coefficient_energy(ComponentEnergy {
            networking_kwh: networking_kwh(bytes_to_gb(check("bytes transferred", bytes)?)),
            ..ComponentEnergy::default()
        }),
    };
    Ok(finish(energy, hours, u.central_pct, ctx))
}

/// Estimates `instance_hours` of one instance type (e.g. 3 instances × 2 h =
/// 6): shorthand for [`estimate_resource`] with [`Resource::Instance`].
/// An hourly intensity source is looked up over `instance_hours` from the
/// interval start, so with hourly data pass one instance's hours per call.
pub fn estimate_instance_hours(
    instance_type: &str,
    instance_hours: f64,
    cpu_utilisation_pct: Option<f64>,
    ctx: &EstimateContext<'_>,
) -> Result<ResourceEstimate, EstimateError> {
    let resource = Resource::Instance { instance_type, vcpus_if_unknown: None };
    estimate_resource(&resource, instance_hours, cpu_utilisation_pct, ctx)
}
