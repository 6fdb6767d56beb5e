//! AWS region → Electricity Maps zone.
//!
//! Compiled in from `data/regions/aws_region_zones.csv`: the zone Electricity
//! Maps assigns to the AWS region where it lists one, else the zone Cloud
//! Carbon Footprint uses; regions neither names (the China regions) have none.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::csv_text::{column, records};

const REGION_ZONES_CSV: &str = include_str!("../../data/regions/aws_region_zones.csv");

static REGION_ZONES: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    let mut rows = records(REGION_ZONES_CSV).map(|r| r.unwrap_or_else(|e| panic!("compiled-in table: {e}")));
    let header = rows.next().expect("compiled-in table has a header");
    let (region, zone) = (column(&header, "region_code"), column(&header, "em_zone_id"));
    rows.filter_map(|r| {
        let text = |i: usize| match r.fields.get(i) {
            Some(std::borrow::Cow::Borrowed(s)) => *s,
            _ => "",
        };
        let z = text(zone);
        (!z.is_empty()).then(|| (text(region), z))
    })
    .collect()
});

/// The AWS regions whose Electricity Maps zone is `zone` (sorted).
pub fn regions_for_zone(zone: &str) -> Vec<&'static str> {
    let mut regions: Vec<&'static str> = REGION_ZONES.iter().filter(|(_, z)| **z == zone).map(|(r, _)| *r).collect();
    regions.sort_unstable();
    regions
}

/// Electricity Maps zone of an AWS region (`us-west-1` → `US-CAL-CISO`);
/// `None` for regions without a known zone or unknown regions.
pub fn zone_for_region(region: &str) -> Option<&'static str> {
    REGION_ZONES.get(region.trim()).copied()
}

/// True when some AWS region maps to Electricity Maps zone `zone`.
pub fn is_known_zone(zone: &str) -> bool {
    REGION_ZONES.values().any(|z| *z == zone.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_for_zone_inverts_the_map() {
        for zone in ["US-CAL-CISO", "IE", "ES"] {
            let regions = regions_for_zone(zone);
            assert!(!regions.is_empty(), "{zone}");
            assert!(regions.iter().all(|r| zone_for_region(r) == Some(zone)), "{zone}: {regions:?}");
        }
        assert!(regions_for_zone("US-CAL-CISO").contains(&"us-west-1"));
        assert!(regions_for_zone("XX-NOWHERE").is_empty());
    }

    #[test]
    fn all_mapped_regions_load() {
        // 37 regions, of which the two China regions have no zone
        assert_eq!(REGION_ZONES.len(), 35);
    }
}
