//! Annual, location-based grid factors per AWS region.
//!
//! Values: Cloud Carbon Footprint's AWS region table (EPA eGRID2020 NERC
//! factors for US regions, carbonfootprint.com 2021 country factors and EEA
//! intensities elsewhere), compiled in from
//! `data/grid/ccf_region_emission_factors.csv`. Regions missing from it get
//! CCF's `Unknown` factor (the mean of its listed regions).

use std::collections::HashMap;
use std::sync::LazyLock;

use super::GridFactor;
use crate::csv_text::{column, opt_f64, records};
use crate::model::Provenance;

/// Name of the fallback row for regions the table lacks.
pub const UNKNOWN_REGION: &str = "Unknown";

const REGION_FACTORS_CSV: &str = include_str!("../../data/grid/ccf_region_emission_factors.csv");

static REGION_FACTORS: LazyLock<HashMap<&'static str, GridFactor>> = LazyLock::new(|| {
    let mut rows = records(REGION_FACTORS_CSV).map(|r| r.unwrap_or_else(|e| panic!("compiled-in table: {e}")));
    let header = rows.next().expect("compiled-in table has a header");
    let (region, value, source, vintage) = (
        column(&header, "region"),
        column(&header, "g_co2e_per_kwh"),
        column(&header, "source"),
        column(&header, "vintage"),
    );
    rows.map(|r| {
        let text = |i: usize| match r.fields.get(i) {
            Some(std::borrow::Cow::Borrowed(s)) => *s,
            _ => "",
        };
        let factor = GridFactor {
            g_co2e_per_kwh: opt_f64(r.get(value)).unwrap_or_else(|| panic!("no factor for {}", r.get(region))),
            provenance: Provenance { source: text(source), vintage: text(vintage) },
        };
        (text(region), factor)
    })
    .collect()
});

/// Annual location-based factor of `region` (e.g. `us-east-1`); CCF's
/// `Unknown` factor when the region is not in the table.
pub fn location_factor(region: &str) -> GridFactor {
    REGION_FACTORS
        .get(region.trim())
        .or_else(|| REGION_FACTORS.get(UNKNOWN_REGION))
        .copied()
        .expect("compiled-in table has an Unknown row")
}

/// True when `region` has its own row in the table (not the `Unknown`
/// fallback) or an Electricity Maps zone: an AWS region the library knows.
pub fn is_known_region(region: &str) -> bool {
    let region = region.trim();
    (region != UNKNOWN_REGION && REGION_FACTORS.contains_key(region)) || super::zone_for_region(region).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_all_ccf_regions() {
        assert_eq!(REGION_FACTORS.len(), 28);
    }
}
