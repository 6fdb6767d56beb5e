//! [`CurEstimator`]: the streaming part. `add` only groups and sums (the
//! Athena query CCF runs); all estimation happens in `finish`.

use std::collections::BTreeMap;

use super::intern::{FastMap, Interner, NONE_ID};
use super::line::CurLine;
use super::options::{EstimateOptions, Methodology};
use super::aggregate::Aggregator;
use super::canopy::CanopyState;
use super::ccf::CcfState;
use super::output::{CurEstimate, EstimateSummary};
use super::sum::NeumaierSum;

// Groups are held up to `EstimateOptions::max_groups_in_memory`, then the known
// ones are estimated and dropped. Estimates are linear in usage and cost, so
// estimating a group in several parts gives the same sums; the bound keeps
// memory independent of the number of groups in the input.

/// Line item types that carry usage (CCF's Athena filter, case-sensitive).
pub(crate) const USAGE_LINE_ITEM_TYPES: [&str; 3] = ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"];

/// Group key of the Athena-style grouping, with interned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey {
    pub period_start_unix_s: i64,
    pub account: u32,
    pub region: u32,
    pub product: u32,
    pub usage_type: u32,
    pub pricing_unit: u32,
    /// `product_vcpu` bits, `u64::MAX` when absent.
    pub product_vcpu_bits: u64,
    pub tag: u32,
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
    /// The interned key (output rows are keyed by its ids).
    pub key: GroupKey,
    /// Line items summed into this row.
    pub line_items: u64,
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
    grouping_period: super::Period,
    max_groups: usize,
    interner: Interner,
    /// Groups not yet estimated (at most `max_groups`).
    groups: FastMap<GroupKey, GroupSums>,
    /// Groups the methodology defers to the end (unknown usage).
    deferred: FastMap<GroupKey, GroupSums>,
    state: MethodState,
    /// Rows not estimated, counted as groups are estimated.
    not_estimated: EstimateSummary,
    rows_read: u64,
    skipped: Vec<(Box<str>, u64)>,
    last: LastIds,
}

/// The running state of the chosen methodology.
enum MethodState {
    Ccf(CcfState),
    Canopy(CanopyState),
}

impl MethodState {
    fn known(&mut self, rows: &[GroupedRow<'_>], summary: &mut EstimateSummary) -> Vec<usize> {
        match self {
            MethodState::Ccf(s) => s.known(rows, summary),
            MethodState::Canopy(s) => s.known(rows, summary),
        }
    }

    fn finish(self, deferred: &[GroupedRow<'_>], summary: &mut EstimateSummary) -> Aggregator {
        match self {
            MethodState::Ccf(s) => s.finish(deferred, summary),
            MethodState::Canopy(s) => s.finish(deferred, summary),
        }
    }

    fn merge(&mut self, other: MethodState, translate: impl FnMut(u32) -> u32) {
        match (self, other) {
            (MethodState::Ccf(a), MethodState::Ccf(b)) => a.merge(b, translate),
            (MethodState::Canopy(a), MethodState::Canopy(b)) => a.merge(b, translate),
            _ => panic!("merged estimators must use the same methodology"),
        }
    }
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
        let state = match options.methodology {
            Methodology::Ccf => MethodState::Ccf(CcfState::new(&options)),
            Methodology::Canopy => MethodState::Canopy(CanopyState::new(&options)),
        };
        Self {
            grouping_period,
            max_groups: options.max_groups_in_memory.max(1),
            interner: Interner::default(),
            groups: FastMap::default(),
            deferred: FastMap::default(),
            state,
            not_estimated: EstimateSummary::default(),
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
        if self.groups.len() >= self.max_groups {
            self.flush();
        }
    }

    /// Rows for the methodology, in a fixed order so floating-point sums are reproducible.
    fn grouped_rows<'i>(interner: &'i Interner, groups: &FastMap<GroupKey, GroupSums>) -> Vec<GroupedRow<'i>> {
        let mut rows: Vec<GroupedRow<'_>> = groups
            .iter()
            .map(|(key, sums)| GroupedRow {
                key: *key,
                line_items: sums.line_items,
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
        rows.sort_by(|a, b| {
            (a.period_start_unix_s, a.account_id, a.region, a.product_code, a.usage_type, a.pricing_unit, a.tag)
                .cmp(&(b.period_start_unix_s, b.account_id, b.region, b.product_code, b.usage_type, b.pricing_unit, b.tag))
                .then(a.product_vcpu.partial_cmp(&b.product_vcpu).unwrap_or(std::cmp::Ordering::Equal))
        });
        rows
    }

    /// Estimates the groups held so far (known usage) and drops them; groups
    /// the methodology defers move to `deferred`.
    fn flush(&mut self) {
        if self.groups.is_empty() {
            return;
        }
        let rows = Self::grouped_rows(&self.interner, &self.groups);
        let deferred = self.state.known(&rows, &mut self.not_estimated);
        for index in deferred {
            let key = rows[index].key;
            if let Some(sums) = self.groups.get(&key) {
                self.deferred.entry(key).or_default().merge(sums);
            }
        }
        drop(rows);
        self.groups.clear();
        if self.groups.capacity() > 4 * self.max_groups {
            self.groups.shrink_to(2 * self.max_groups);
        }
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
    pub fn merge(&mut self, mut other: CurEstimator) {
        other.flush();
        self.rows_read += other.rows_read;
        for (name, count) in &other.skipped {
            self.count_skipped(name, *count);
        }
        for (reason, totals) in &other.not_estimated.not_estimated {
            let mine = self.not_estimated.not_estimated.entry(*reason).or_default();
            mine.rows += totals.rows;
            mine.cost += totals.cost;
        }
        let mut ids: FastMap<u32, u32> = FastMap::default();
        let interner = &mut self.interner;
        let mut map = |id: u32| -> u32 {
            if id == NONE_ID {
                return NONE_ID;
            }
            *ids.entry(id).or_insert_with(|| interner.intern(other.interner.text(id)))
        };
        let translate_key = |key: &GroupKey, map: &mut dyn FnMut(u32) -> u32| GroupKey {
            account: map(key.account),
            region: map(key.region),
            product: map(key.product),
            usage_type: map(key.usage_type),
            pricing_unit: map(key.pricing_unit),
            tag: map(key.tag),
            ..*key
        };
        for (key, sums) in &other.deferred {
            self.deferred.entry(translate_key(key, &mut map)).or_default().merge(sums);
        }
        self.state.merge(other.state, &mut map);
    }

    /// Number of distinct groups held now (at most `max_groups_in_memory` plus deferred ones).
    pub fn group_count(&self) -> usize {
        self.groups.len() + self.deferred.len()
    }

    /// Estimates every group and returns the output rows and summary.
    pub fn finish(mut self) -> CurEstimate {
        self.flush();
        // The group map keeps its capacity after a flush; it is not needed any more.
        self.groups = FastMap::default();
        let mut summary = self.not_estimated;
        summary.rows_read = self.rows_read;
        summary.rows_skipped_by_line_item_type =
            self.skipped.iter().map(|(n, c)| (n.to_string(), *c)).collect::<BTreeMap<_, _>>();
        let deferred = Self::grouped_rows(&self.interner, &self.deferred);
        let out = self.state.finish(&deferred, &mut summary);
        drop(deferred);
        CurEstimate { rows: out.finish(&self.interner), summary }
    }
}
