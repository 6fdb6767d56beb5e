//! What [`super::CurEstimator::finish`] returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::fmt;

use crate::model::Quality;

/// All estimated rows plus an account of everything read, skipped or not estimated.
#[derive(Debug, Clone, PartialEq)]
pub struct CurEstimate {
    /// One row per (period, account, region, service, [usage type], tag),
    /// sorted by those fields.
    pub rows: Vec<EstimateRow>,
    /// Counts and costs of everything that did not become an estimate.
    pub summary: EstimateSummary,
}

/// Energy and emissions of one output group.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateRow {
    /// Start of the period (UTC, Unix seconds).
    pub period_start_unix_s: i64,
    /// `line_item_usage_account_id`.
    pub account_id: Arc<str>,
    /// `product_region`.
    pub region: Arc<str>,
    /// `line_item_product_code`.
    pub service: Arc<str>,
    /// Usage type; `Some` only when grouping by usage type.
    pub usage_type: Option<Arc<str>>,
    /// Value of the requested tag; `None` when untagged.
    pub tag: Option<Arc<str>>,
    /// Energy; `None` where CCF's result is NaN (ccf mode only).
    pub energy_kwh: Option<f64>,
    /// Location-based CO2e (kg).
    pub co2e_location_kg: Option<f64>,
    /// Market-based CO2e (kg); equals location-based in ccf mode.
    pub co2e_market_kg: Option<f64>,
    /// Low bound of location-based CO2e (kg).
    pub co2e_low_kg: Option<f64>,
    /// High bound of location-based CO2e (kg).
    pub co2e_high_kg: Option<f64>,
    /// IT energy before PUE (canopy mode; `None` in ccf mode).
    pub it_energy_kwh: Option<f64>,
    /// Embodied CO2e (kg), included in the location and market figures
    /// (canopy mode; 0 in ccf mode, which has none).
    pub co2e_embodied_kg: Option<f64>,
    /// Low bound of the embodied CO2e (kg).
    pub co2e_embodied_low_kg: Option<f64>,
    /// High bound of the embodied CO2e (kg).
    pub co2e_embodied_high_kg: Option<f64>,
    /// ccf: summed blended cost; canopy: summed unblended cost.
    pub cost: f64,
    /// The worst quality of the contributing rows.
    pub quality: Quality,
}

/// Totals for the rows that share one [`NotEstimatedReason`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReasonTotals {
    /// Grouped CUR rows (after the Athena-style grouping).
    pub rows: u64,
    /// Their cost (blended in ccf mode, unblended in canopy mode).
    pub cost: f64,
}

/// The bookkeeping side of an estimate: nothing is dropped silently.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EstimateSummary {
    /// CUR line items passed to `add`.
    pub rows_read: u64,
    /// Line items skipped because of their line item type (e.g. `"Tax" -> 12`).
    pub rows_skipped_by_line_item_type: BTreeMap<String, u64>,
    /// Grouped rows without a (full) estimate, by reason, with their cost.
    pub not_estimated: BTreeMap<NotEstimatedReason, ReasonTotals>,
}

/// Why a grouped row got no estimate, or only a degenerate one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NotEstimatedReason {
    /// Usage type on the unsupported list (double counted elsewhere or no energy); dropped.
    UnsupportedUsageType,
    /// Storage row whose medium is neither SSD nor HDD by the classification lists; dropped.
    StorageMediumUnknown,
    /// Row priced in GB whose usage type is not a data-transfer type; dropped.
    GbNotNetworking,
    /// CloudFront transfer, excluded by CCF's rules; dropped.
    CloudFrontExcluded,
    /// Internet egress, outside Canopy's networking scope (canopy mode); dropped.
    InternetEgressExcluded,
    /// Compute row whose vCPUs could not be resolved. ccf: kept with 0 kWh and
    /// no CO2e (NaN in CCF); canopy: dropped.
    VcpusUnknown,
    /// Unknown-usage row with no kWh-per-cost ratio to use: estimated as 0.
    NoCostRatio,
    /// Unknown-usage rows dropped because no known row produced an estimate (ccf).
    NoKnownRows,
}

impl NotEstimatedReason {
    /// Short snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotEstimatedReason::UnsupportedUsageType => "unsupported_usage_type",
            NotEstimatedReason::StorageMediumUnknown => "storage_medium_unknown",
            NotEstimatedReason::GbNotNetworking => "gb_not_networking",
            NotEstimatedReason::CloudFrontExcluded => "cloudfront_excluded",
            NotEstimatedReason::InternetEgressExcluded => "internet_egress_excluded",
            NotEstimatedReason::VcpusUnknown => "vcpus_unknown",
            NotEstimatedReason::NoCostRatio => "no_cost_ratio",
            NotEstimatedReason::NoKnownRows => "no_known_rows",
        }
    }
}

impl fmt::Display for NotEstimatedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
