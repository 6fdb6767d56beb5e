//! Embodied (manufacturing) emissions amortised per instance-hour.
//!
//! `g CO2e per instance-hour = platform embodied kg × 1000 × instance vCPUs /
//! platform vCPUs / lifespan hours`, with a lifespan of
//! [`SERVER_LIFESPAN_YEARS`] × 8760 h. Sources in order:
//!
//! 1. Teads `platform_total_embodied_kg_co2e` and `platform_vcpu`;
//! 2. CCF's embodied table (server total, largest size of the family as the
//!    platform) for types Teads lacks;
//! 3. the 2026 catalogue's `platform_embodied_t_co2e` (largest catalogue size
//!    of the family as the platform). That figure appears to be the base
//!    server without Teads' additions for extra memory, drives and GPUs, so it
//!    is likely low; it is used only where nothing better exists.

use super::catalogue::{CATALOGUE_2026, CATALOGUE_2026_FAMILY_MAX_VCPUS, CCF_EMBODIED, TEADS};
use super::power::lookup_variants;
use super::quality::Provenance;
use crate::units::HOURS_PER_YEAR;

/// Server lifespan used for amortisation, years. Amazon extended the
/// estimated useful life of its servers from five to six years from January
/// 2024 (later shortening it to five years for a subset of servers); we use
/// six. Teads' original column used 4 years (of 360 days), as does CCF.
pub const SERVER_LIFESPAN_YEARS: f64 = 6.0;
/// [`SERVER_LIFESPAN_YEARS`] in hours: 6 × 8760 = 52 560 h.
pub const SERVER_LIFESPAN_HOURS: f64 = SERVER_LIFESPAN_YEARS * HOURS_PER_YEAR;

const TEADS_EMBODIED: Provenance = Provenance {
    source: "Teads platform embodied emissions (via CCF), 6-year life, vCPU share",
    vintage: "2021",
};
const CCF_EMBODIED_PROVENANCE: Provenance = Provenance {
    source: "Cloud Carbon Footprint embodied table, 6-year life, vCPU share of largest size",
    vintage: "2022",
};
const CATALOGUE_EMBODIED: Provenance = Provenance {
    source: "Cloud Carbon Footprint 2026 catalogue base-platform embodied, 6-year life, vCPU share",
    vintage: "2026",
};

/// Embodied emissions of one instance-hour of `instance_type`, gCO2e, with
/// provenance; `None` when no table covers the type.
pub fn embodied_g_co2e_per_instance_hour(instance_type: &str) -> Option<(f64, Provenance)> {
    lookup_variants(instance_type, embodied_exact)
}

fn amortise(platform_kg_co2e: f64, instance_vcpus: f64, platform_vcpus: f64) -> Option<f64> {
    if platform_vcpus <= 0.0 || instance_vcpus <= 0.0 {
        return None;
    }
    let share = (instance_vcpus / platform_vcpus).min(1.0);
    Some(platform_kg_co2e * 1000.0 * share / SERVER_LIFESPAN_HOURS)
}

fn embodied_exact(name: &str) -> Option<(f64, Provenance)> {
    if let Some(row) = TEADS.get(name) {
        let g = amortise(row.platform_total_embodied_kg_co2e, row.instance_vcpus, row.platform_vcpus)?;
        return Some((g, TEADS_EMBODIED));
    }
    if let Some(row) = CCF_EMBODIED.get(name) {
        let g = amortise(row.total_embodied_kg_co2e, row.instance_vcpus, row.family_largest_vcpus)?;
        return Some((g, CCF_EMBODIED_PROVENANCE));
    }
    let row = CATALOGUE_2026.get(name)?;
    let platform_t = row.platform_embodied_t_co2e?;
    let family = name.split('.').next().unwrap_or(name);
    let platform_vcpus = CATALOGUE_2026_FAMILY_MAX_VCPUS.get(family).copied()?;
    let g = amortise(platform_t * 1000.0, row.vcpus, platform_vcpus)?;
    Some((g, CATALOGUE_EMBODIED))
}
