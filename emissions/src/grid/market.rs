//! Market-based (GHG Protocol Scope 2) grid factors from configured
//! contractual instruments.
//!
//! Formula: `market = (1 − renewable_share) × residual_mix`, where
//! `renewable_share` (0..=1) is the share of the region's consumption covered
//! by contractual renewable energy (PPAs, certificates) and `residual_mix` is
//! the intensity of the uncovered remainder. When no residual mix is
//! configured the location factor stands in for it; when the region is not
//! configured at all the market factor equals the location factor.

use std::collections::HashMap;

use super::{GridError, GridFactor};
use crate::model::Provenance;

/// Contractual data for one region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarketRegion {
    /// Share of consumption covered by contractual renewable energy, 0..=1.
    pub renewable_share: f64,
    /// Residual-mix intensity, gCO2e/kWh; `None` → the location factor.
    pub residual_mix_g_co2e_per_kwh: Option<f64>,
}

/// Per-region market-based configuration; the default configures nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarketConfig {
    regions: HashMap<String, MarketRegion>,
}

const CONFIGURED_RESIDUAL: Provenance = Provenance {
    source: "market-based: (1 - contractual renewable share) x configured residual mix",
    vintage: "configured",
};
const LOCATION_AS_RESIDUAL: Provenance = Provenance {
    source: "market-based: (1 - contractual renewable share) x location factor as residual mix",
    vintage: "configured share",
};

impl MarketConfig {
    /// An empty configuration (market factor = location factor everywhere).
    pub fn new() -> MarketConfig {
        MarketConfig::default()
    }

    /// Sets the contractual data of `region`, rejecting a share outside
    /// 0..=1 or a negative / non-finite residual mix.
    pub fn set_region(&mut self, region: &str, market: MarketRegion) -> Result<(), GridError> {
        if !(0.0..=1.0).contains(&market.renewable_share) {
            return Err(GridError::BadMarketValue {
                region: region.to_owned(),
                expected: "a renewable share between 0 and 1",
                found: market.renewable_share,
            });
        }
        if let Some(residual) = market.residual_mix_g_co2e_per_kwh
            && !(residual.is_finite() && residual >= 0.0)
        {
            return Err(GridError::BadMarketValue {
                region: region.to_owned(),
                expected: "a residual mix of at least 0 gCO2e/kWh",
                found: residual,
            });
        }
        self.regions.insert(region.to_owned(), market);
        Ok(())
    }

    /// The configured data of `region`, if any.
    pub fn region(&self, region: &str) -> Option<MarketRegion> {
        self.regions.get(region).copied()
    }

    /// True when no region is configured.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Market-based factor of `region`, given its location-based factor.
    pub fn market_factor(&self, region: &str, location: &GridFactor) -> GridFactor {
        let Some(market) = self.regions.get(region) else {
            return *location;
        };
        let (residual, provenance) = match market.residual_mix_g_co2e_per_kwh {
            Some(r) => (r, CONFIGURED_RESIDUAL),
            None => (location.g_co2e_per_kwh, LOCATION_AS_RESIDUAL),
        };
        GridFactor { g_co2e_per_kwh: (1.0 - market.renewable_share) * residual, provenance }
    }
}
