//! Summing per-row estimates into output rows, and counting rows that got none.

use std::collections::BTreeMap;

use super::engine::GroupedRow;
use super::options::Period;
use super::output::{EstimateRow, EstimateSummary, NotEstimatedReason, ReasonTotals};
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
    pub cost: f64,
    pub quality: Quality,
}

type OutKey<'a> = (i64, &'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);

#[derive(Default)]
struct OutSums {
    energy_kwh: NeumaierSum,
    location_kg: NeumaierSum,
    market_kg: NeumaierSum,
    low_kg: NeumaierSum,
    high_kg: NeumaierSum,
    cost: NeumaierSum,
    quality: Option<Quality>,
}

/// Collects contributions into rows keyed by (period, account, region, service, [usage type], tag).
pub(crate) struct Aggregator<'a> {
    period: Period,
    by_usage_type: bool,
    rows: BTreeMap<OutKey<'a>, OutSums>,
}

impl<'a> Aggregator<'a> {
    pub(crate) fn new(period: Period, by_usage_type: bool) -> Self {
        Self { period, by_usage_type, rows: BTreeMap::new() }
    }

    /// Whether any contribution was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn add(&mut self, row: &GroupedRow<'a>, c: Contribution) {
        let key = (
            self.period.start_of(row.period_start_unix_s),
            row.account_id,
            row.region,
            row.product_code,
            self.by_usage_type.then_some(row.usage_type),
            row.tag,
        );
        let sums = self.rows.entry(key).or_default();
        sums.energy_kwh.add(c.energy_kwh);
        sums.location_kg.add(c.co2e_location_kg);
        sums.market_kg.add(c.co2e_market_kg);
        sums.low_kg.add(c.co2e_low_kg);
        sums.high_kg.add(c.co2e_high_kg);
        sums.cost.add(c.cost);
        sums.quality = Some(sums.quality.map_or(c.quality, |q| q.worst(c.quality)));
    }

    pub(crate) fn finish(self) -> Vec<EstimateRow> {
        let finite = |s: NeumaierSum| {
            let v = s.value();
            (!v.is_nan()).then_some(v)
        };
        self.rows
            .into_iter()
            .map(|((period_start_unix_s, account, region, service, usage_type, tag), s)| EstimateRow {
                period_start_unix_s,
                account_id: account.to_owned(),
                region: region.to_owned(),
                service: service.to_owned(),
                usage_type: usage_type.map(str::to_owned),
                tag: tag.map(str::to_owned),
                energy_kwh: finite(s.energy_kwh),
                co2e_location_kg: finite(s.location_kg),
                co2e_market_kg: finite(s.market_kg),
                co2e_low_kg: finite(s.low_kg),
                co2e_high_kg: finite(s.high_kg),
                cost: s.cost.value(),
                quality: s.quality.unwrap_or_default(),
            })
            .collect()
    }
}

/// Counts one grouped row under `reason` with its cost.
pub(crate) fn count(summary: &mut EstimateSummary, reason: NotEstimatedReason, cost: f64) {
    let totals = summary.not_estimated.entry(reason).or_insert_with(ReasonTotals::default);
    totals.rows += 1;
    totals.cost += cost;
}
