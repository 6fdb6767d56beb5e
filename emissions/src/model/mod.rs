//! The resource-level estimation model: instance power curves, embodied
//! emissions, PUE, storage / network / memory coefficients and the
//! per-resource estimate the agent, aggregator and CLI share.

mod catalogue;
mod coefficients;
mod embodied;
mod power;
mod pue;
mod quality;
mod resource;

pub use coefficients::{
    COEFFICIENT_UNCERTAINTY, HDD_WH_PER_TB_HOUR, MEMORY_KWH_PER_GB_HOUR, NETWORKING_KWH_PER_GB, SSD_WH_PER_TB_HOUR,
    StorageMedium, memory_kwh, networking_kwh, storage_kwh,
};
pub use embodied::{SERVER_LIFESPAN_HOURS, SERVER_LIFESPAN_YEARS, embodied_g_co2e_per_instance_hour};
pub use power::{
    CpuArchitecture, DEFAULT_CPU_UTILISATION_HIGH_PCT, DEFAULT_CPU_UTILISATION_LOW_PCT, DEFAULT_CPU_UTILISATION_PCT,
    InstancePower, MEMORY_W_PER_GB, PowerW, base_instance_type, instance_power, vcpu_hours_kwh, vcpu_power_w,
};
pub use pue::{CCF_PUE, pue};
pub use quality::{Bounds, Provenance, Quality};
pub use resource::{
    ComponentEnergy, EstimateContext, EstimateError, LAMBDA_GB_PER_VCPU, METHODOLOGY_VERSION, Resource,
    ResourceEstimate, estimate_instance_hours, estimate_resource,
};
