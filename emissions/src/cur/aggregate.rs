//! Summing per-row estimates into output rows, and counting rows that got none.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::engine::GroupedRow;
use super::intern::{Interner, NONE_ID};
use super::options::Period;
use super::output::{EstimateRow, EstimateSummary, NotEstimatedReason};
use super::sum::NeumaierSum;
use crate::model::Quality;

/// The estimate of one grouped row. Values may be NaN (ccf mode reproduces CCF's NaNs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Contribution {
    pub energy_kwh: f64,
    pub co2e_location_kg: f64,
    pub co2e_market_kg: f64,
    pub co2e_low_kg: f64,
    pub co2e_high_kg: f64,
    /// IT energy (before PUE); NaN where the methodology does not split it (ccf).
    pub it_energy_kwh: f64,
    /// Embodied CO2e (kg) included in the location and market figures, with its bounds.
    pub embodied_kg: f64,
    pub embodied_low_kg: f64,
    pub embodied_high_kg: f64,
    pub cost: f64,
    pub quality: Quality,
}

/// (period start, account, region, product, usage type or `NONE_ID`, tag or `NONE_ID`), text interned.
type OutKey = (i64, u32, u32, u32, u32, u32);

/// Sums of one output row. Energy, location-based CO2e and cost are
/// compensated (they are compared with CCF to 1e-9); the derived figures are
/// plain sums, to keep an output row small.
#[derive(Default, Clone, Copy)]
struct OutSums {
    energy_kwh: NeumaierSum,
    location_kg: NeumaierSum,
    cost: NeumaierSum,
    market_kg: f64,
    low_kg: f64,
    high_kg: f64,
    it_energy_kwh: f64,
    embodied_kg: f64,
    embodied_low_kg: f64,
    embodied_high_kg: f64,
    quality: Option<Quality>,
}

/// Collects contributions into rows keyed by (period, account, region, service, [usage type], tag).
pub(crate) struct Aggregator {
    period: Period,
    by_usage_type: bool,
    rows: BTreeMap<OutKey, OutSums>,
}

impl Aggregator {
    pub(crate) fn new(period: Period, by_usage_type: bool) -> Self {
        Self { period, by_usage_type, rows: BTreeMap::new() }
    }

    /// Whether any contribution was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn add(&mut self, row: &GroupedRow<'_>, c: Contribution) {
        let ids = &row.key;
        let key = (
            self.period.start_of(row.period_start_unix_s),
            ids.account,
            ids.region,
            ids.product,
            if self.by_usage_type { ids.usage_type } else { NONE_ID },
            ids.tag,
        );
        let sums = self.rows.entry(key).or_default();
        sums.energy_kwh.add(c.energy_kwh);
        sums.location_kg.add(c.co2e_location_kg);
        sums.market_kg += c.co2e_market_kg;
        sums.low_kg += c.co2e_low_kg;
        sums.high_kg += c.co2e_high_kg;
        sums.it_energy_kwh += c.it_energy_kwh;
        sums.embodied_kg += c.embodied_kg;
        sums.embodied_low_kg += c.embodied_low_kg;
        sums.embodied_high_kg += c.embodied_high_kg;
        sums.cost.add(c.cost);
        sums.quality = Some(sums.quality.map_or(c.quality, |q| q.worst(c.quality)));
    }

    /// Adds the rows of `other`, whose text ids are translated by `translate`.
    pub(crate) fn merge(&mut self, other: Aggregator, mut translate: impl FnMut(u32) -> u32) {
        for ((period, account, region, product, usage_type, tag), s) in other.rows {
            let key = (period, translate(account), translate(region), translate(product), translate(usage_type), translate(tag));
            let sums = self.rows.entry(key).or_default();
            sums.energy_kwh.merge(s.energy_kwh);
            sums.location_kg.merge(s.location_kg);
            sums.market_kg += s.market_kg;
            sums.low_kg += s.low_kg;
            sums.high_kg += s.high_kg;
            sums.it_energy_kwh += s.it_energy_kwh;
            sums.embodied_kg += s.embodied_kg;
            sums.embodied_low_kg += s.embodied_low_kg;
            sums.embodied_high_kg += s.embodied_high_kg;
            sums.cost.merge(s.cost);
            sums.quality = match (sums.quality, s.quality) {
                (Some(a), Some(b)) => Some(a.worst(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// Output rows, sorted by (period, account, region, service, usage type, tag).
    /// Text is shared: one `Arc<str>` per distinct value, not one string per row.
    pub(crate) fn finish(self, interner: &Interner) -> Vec<EstimateRow> {
        let finite = |v: f64| (!v.is_nan()).then_some(v);
        let mut shared: Vec<Option<Arc<str>>> = Vec::new();
        let mut text = |id: u32| -> Arc<str> {
            let index = id as usize;
            if shared.len() <= index {
                shared.resize(index + 1, None);
            }
            shared[index].get_or_insert_with(|| Arc::from(interner.text(id))).clone()
        };
        let mut rows: Vec<EstimateRow> = self
            .rows
            .into_iter()
            .map(|((period_start_unix_s, account, region, service, usage_type, tag), s)| EstimateRow {
                period_start_unix_s,
                account_id: text(account),
                region: text(region),
                service: text(service),
                usage_type: (usage_type != NONE_ID).then(|| text(usage_type)),
                tag: (tag != NONE_ID).then(|| text(tag)),
                energy_kwh: finite(s.energy_kwh.value()),
                co2e_location_kg: finite(s.location_kg.value()),
                co2e_market_kg: finite(s.market_kg),
                co2e_low_kg: finite(s.low_kg),
                co2e_high_kg: finite(s.high_kg),
                it_energy_kwh: finite(s.it_energy_kwh),
                co2e_embodied_kg: finite(s.embodied_kg),
                co2e_embodied_low_kg: finite(s.embodied_low_kg),
                co2e_embodied_high_kg: finite(s.embodied_high_kg),
                cost: s.cost.value(),
                quality: s.quality.unwrap_or_default(),
            })
            .collect();
        rows.sort_by(|a, b| {
            (a.period_start_unix_s, &a.account_id, &a.region, &a.service, &a.usage_type, &a.tag).cmp(&(
                b.period_start_unix_s,
                &b.account_id,
                &b.region,
                &b.service,
                &b.usage_type,
                &b.tag,
            ))
        });
        rows
    }
}

/// Counts the line items of one grouped row under `reason`, with their cost.
pub(crate) fn count(summary: &mut EstimateSummary, reason: NotEstimatedReason, cost: f64, line_items: u64) {
    let totals = summary.not_estimated.entry(reason).or_default();
    totals.rows += line_items;
    totals.cost += cost;
}
