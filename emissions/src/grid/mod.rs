//! Grid carbon intensity: annual location-based factors per AWS region,
//! configurable market-based factors, hourly intensity sources and the
//! AWS region → Electricity Maps zone map.

mod error;
mod hourly;
mod location;
mod market;
mod zones;

pub use error::GridError;
pub use hourly::{CarbonIntensitySource, HourlyIntensity, HourlyIntensityTable, HourlyRow, hourly_rows};
pub use location::{UNKNOWN_REGION, is_known_region, location_factor};
pub use market::{MarketConfig, MarketRegion};
pub use zones::{is_known_zone, regions_for_zone, zone_for_region};

use crate::model::Provenance;

/// Carbon intensity of electricity, with where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridFactor {
    /// Grams of CO2e per kWh consumed.
    pub g_co2e_per_kwh: f64,
    /// Data set and vintage.
    pub provenance: Provenance,
}
