//! [`CurEstimator`]: the streaming part. `add` only groups and sums (the
//! Athena query CCF runs); all estimation happens in `finish`.

use std::collections::BTreeMap;

use super::intern::{FastMap, Interner, NONE_ID};
use super::line::CurLine;
use super::options::{EstimateOptions, Methodology};
use super::output::{CurEstimate, EstimateSummary};
use super::sum::NeumaierSum;
use super::{canopy, ccf};

/// Line item types that carry usage (CCF's Athena filter, case-sensitive).
pub(crate) const USAGE_LINE_ITEM_TYPES: [&str; 3] = ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"];

/// Group key of the Athena-style grouping, with interned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct GroupKey {
    period_start_unix_s: i64,
    account: u32,
    region: u32,
    product: u32,
    usage_type: u32,
    pricing_unit: u32,
    /// `product_vcpu` bits, `u64::MAX` when absent.
    product_vcpu_bits: u64,
    tag: u32,
}

/// Sums of one group.
#[derive(Debug, Clone, Copy, Default)]
struct GroupSums {
    usage_amount: NeumaierSum,
    blended_cost: NeumaierSum,
    unblended_cost: NeumaierSum,
    line_items: u64,
}

impl GroupSums {
    fn merge(&mut self, other: &GroupSums) {
        self.usage_amount.merge(other.usage_amount);
        self.blended_cost.merge(other.blended_cost);
        self.unblended_cost.merge(other.unblended_cost);
        self.line_items += other.line_items;
    }
}

/// One grouped row handed to a methodology: the equivalent of a row of CCF's Athena result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GroupedRow<'a> {
    pub period_start_unix_s: i64,
    pub account_id: &'a str,
    pub region: &'a str,
    pub product_code: &'a str,
    pub usage_type: &'a str,
    pub pricing_unit: &'a str,
    pub product_vcpu: Option<f64>,
    pub tag: Option<&'a str>,
    pub usage_amount: f64,
    pub blended_cost: f64,
    pub unblended_cost: f64,
}

/// Last interned id per text field, to skip hashing repeated values.
#[derive(Debug, Clone, Copy)]
struct LastIds([u32; 6]);

/// Streams CUR line items into groups and estimates them on [`CurEstimator::finish`].
///
/// Memory is bounded by the number of distinct groups, not by the input size.
/// Partial estimators over disjoint parts of the input can be combined with
/// [`CurEstimator::merge`]; sums are compensated, so the result does not depend
/// on row or merge order beyond ~1e-15 relative.
pub struct CurEstimator {
    options: EstimateOptions,
    grouping_period: super::Period,
    interner: Interner,
    groups: FastMap<GroupKey, GroupSums>,
    rows_read: u64,
    skipped: Vec<(Box<str>, u64)>,
    last: LastIds,
}

impl CurEstimator {
    /// An empty estimator.
    pub fn new(options: EstimateOptions) -> Self {
        // Hourly intensities need hourly groups; the output period is applied after estimation.
        let grouping_period = if options.methodology == Methodology::Canopy && options.canopy.intensity.is_some() {
            super::Period::Hour
        } else {
            options.period
        };
        Self {
            options,
            grouping_period,
            interner: Interner::default(),
            groups: FastMap::default(),
            rows_read: 0,
            skipped: Vec::new(),
            last: LastIds([NONE_ID; 6]),
        }
    }

    /// Adds one line item: filters the line item type, then adds usage and cost to its group.
    #[inline]
    pub fn add(&mut self, line: &CurLine<'_>) {
        self.rows_read += 1;
        if !USAGE_LINE_ITEM_TYPES.contains(&line.line_item_type) {
            self.count_skipped(line.line_item_type, 1);
            return;
        }
        let last = &mut self.last.0;
        let interner = &mut self.interner;
        let key = GroupKey {
            period_start_unix_s: self.grouping_period.start_of(line.usage_start_unix_s),
            account: interner.intern_cached(line.account_id, &mut last[0]),
            region: interner.intern_cached(line.region, &mut last[1]),
            product: interner.intern_cached(line.product_code, &mut last[2]),
            usage_type: interner.intern_cached(line.usage_type, &mut last[3]),
            pricing_unit: interner.intern_cached(line.pricing_unit, &mut last[4]),
            product_vcpu_bits: line.product_vcpu.map_or(u64::MAX, f64::to_bits),
            tag: match line.tag {
                Some(tag) if !tag.is_empty() => interner.intern_cached(tag, &mut last[5]),
                _ => NONE_ID,
            },
        };
        let sums = self.groups.entry(key).or_default();
        sums.usage_amount.add(line.usage_amount);
        sums.blended_cost.add(line.blended_cost);
        sums.unblended_cost.add(line.unblended_cost);
        sums.line_items += 1;
    }

    fn count_skipped(&mut self, line_item_type: &str, count: u64) {
        if let Some(entry) = self.skipped.iter_mut().find(|(name, _)| **name == *line_item_type) {
            entry.1 += count;
        } else {
            self.skipped.push((line_item_type.into(), count));
        }
    }

    /// Combines a partial estimator built over a disjoint part of the input
    /// (with the same options).
    pub fn merge(&mut self, other: CurEstimator) {
        self.rows_read += other.rows_read;
        for (name, count) in &other.skipped {
            self.count_skipped(name, *count);
        }
        let map = |id: u32, interner: &mut Interner| {
            if id == NONE_ID { NONE_ID } else { interner.intern(other.interner.text(id)) }
        };
        for (key, sums) in &other.groups {
            let key = GroupKey {
                account: map(key.account, &mut self.interner),
                region: map(key.region, &mut self.interner),
                product: map(key.product, &mut self.interner),
                usage_type: map(key.usage_type, &mut self.interner),
                pricing_unit: map(key.pricing_unit, &mut self.interner),
                tag: map(key.tag, &mut self.interner),
                ..*key
            };
            self.groups.entry(key).or_default().merge(sums);
        }
    }

    /// Number of distinct groups held (memory is proportional to it).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Classifies and estimates every group.
    pub fn finish(self) -> CurEstimate {
        let interner = &self.interner;
        let mut rows: Vec<GroupedRow<'_>> = self
            .groups
            .iter()
            .map(|(key, sums)| GroupedRow {
                period_start_unix_s: key.period_start_unix_s,
                account_id: interner.text(key.account),
                region: interner.text(key.region),
                product_code: interner.text(key.product),
                usage_type: interner.text(key.usage_type),
                pricing_unit: interner.text(key.pricing_unit),
                product_vcpu: (key.product_vcpu_bits != u64::MAX).then(|| f64::from_bits(key.product_vcpu_bits)),
                tag: interner.optional(key.tag),
                usage_amount: sums.usage_amount.value(),
                blended_cost: sums.blended_cost.value(),
                unblended_cost: sums.unblended_cost.value(),
            })
            .collect();
        // A fixed order makes every floating-point sum below reproducible.
        rows.sort_by(|a, b| {
            (a.period_start_unix_s, a.account_id, a.region, a.product_code, a.usage_type, a.pricing_unit, a.tag)
                .cmp(&(b.period_start_unix_s, b.account_id, b.region, b.product_code, b.usage_type, b.pricing_unit, b.tag))
                .then(a.product_vcpu.partial_cmp(&b.product_vcpu).unwrap_or(std::cmp::Ordering::Equal))
        });
        let mut summary = EstimateSummary {
            rows_read: self.rows_read,
            rows_skipped_by_line_item_type: self.skipped.iter().map(|(n, c)| (n.to_string(), *c)).collect::<BTreeMap<_, _>>(),
            not_estimated: BTreeMap::new(),
        };
        let estimated_rows = match self.options.methodology {
            Methodology::Ccf => ccf::estimate(&rows, &self.options, &mut summary),
            Methodology::Canopy => canopy::estimate(&rows, &self.options, &mut summary),
        };
        CurEstimate { rows: estimated_rows, summary }
    }
}
