//! One agent cycle: inventory (full or incremental), utilisation (when
//! due), emission records (provisional for the latest interval, measured
//! for the window a utilisation fetch covered).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use canopy_protocol::{EmissionRecord, LifecycleState, ResourceRecord};

use crate::changes::{Change, ChangeSource};
use crate::collectors::{CollectContext, Collector};
use crate::cost::{CostMeter, CostModel, CostReading, CostedKind};
use crate::estimate::{Estimator, REVISION_MEASURED, REVISION_PROVISIONAL, group_estimates};
use crate::inventory::{Basis, Inventory, Resource};
use crate::metrics::Metrics;
use crate::utilisation::{
    MAX_QUERIES_PER_CALL, MetricSource, PERIOD_S, UtilisationStore, UtilisationValue, utilisation_query,
};

/// Cadences the cycle follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cadence {
    /// Cycle length, seconds.
    pub cycle_s: i64,
    /// Utilisation window, seconds (whole hours).
    pub utilisation_s: i64,
    /// Seconds between full inventories.
    pub full_inventory_s: i64,
}

/// What a cycle produced.
#[derive(Debug, Clone, Default)]
pub struct CycleOutput {
    /// Inventory records (all after a full inventory, else the changed ones),
    /// with the domain attributes that have no protocol field.
    pub resources: Vec<(ResourceRecord, BTreeMap<&'static str, String>)>,
    /// Emission records.
    pub emissions: Vec<EmissionRecord>,
    /// Figures about the cycle.
    pub stats: CycleStats,
}

/// Figures about one cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CycleStats {
    /// End of the cycle's interval, Unix seconds.
    pub cycle_end_unix_s: i64,
    /// A full inventory ran.
    pub full_inventory: bool,
    /// Collectors that failed (their previous resources are kept).
    pub collector_failures: usize,
    /// Change events applied / malformed / ignored.
    pub changes_applied: usize,
    /// Malformed change messages.
    pub changes_malformed: usize,
    /// The utilisation window fetched, if any.
    pub utilisation_window: Option<(i64, i64)>,
    /// Billed calls during the cycle.
    pub cost: CostReading,
    /// Resources in the inventory.
    pub inventory_resources: usize,
    /// Estimates that failed (unknown type and no vCPU count).
    pub estimate_failures: usize,
}

/// The agent's state between cycles.
pub struct Agent {
    context: CollectContext,
    cadence: Cadence,
    collectors: Vec<Box<dyn Collector>>,
    metric_source: Box<dyn MetricSource>,
    changes: Option<Box<dyn ChangeSource>>,
    inventory: Inventory,
    utilisation: UtilisationStore,
    estimator: Estimator,
    cost_model: CostModel,
    metrics: Arc<Metrics>,
    meter: Arc<CostMeter>,
    last_full_unix_s: Option<i64>,
    measured_until_unix_s: Option<i64>,
    /// Utilisation cadence in effect, seconds (see [`Agent::utilisation_interval_s`]).
    utilisation_s: i64,
}

/// Everything an [`Agent`] is made of.
pub struct AgentParts {
    /// Account id and region (the context's `now_unix_s` is ignored).
    pub context: CollectContext,
    /// Cadences.
    pub cadence: Cadence,
    /// Enabled collectors.
    pub collectors: Vec<Box<dyn Collector>>,
    /// Utilisation source.
    pub metric_source: Box<dyn MetricSource>,
    /// Change-event source, if configured.
    pub changes: Option<Box<dyn ChangeSource>>,
    /// Estimator.
    pub estimator: Estimator,
    /// Cost model of the configuration.
    pub cost_model: CostModel,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Billed-call meter.
    pub meter: Arc<CostMeter>,
}

fn costed_kind(r: &Resource) -> CostedKind {
    match (&r.basis, r.service) {
        (Basis::Function { .. }, _) => CostedKind::Function,
        (_, "s3") => CostedKind::Bucket,
        _ if utilisation_query(r).is_some() => CostedKind::CpuMetric,
        _ => CostedKind::Free,
    }
}

impl Agent {
    /// An agent with an empty inventory.
    pub fn new(parts: AgentParts) -> Agent {
        Agent {
            context: parts.context,
            cadence: parts.cadence,
            collectors: parts.collectors,
            metric_source: parts.metric_source,
            changes: parts.changes,
            inventory: Inventory::new(),
            utilisation: UtilisationStore::new(),
            estimator: parts.estimator,
            cost_model: parts.cost_model,
            metrics: parts.metrics,
            meter: parts.meter,
            last_full_unix_s: None,
            measured_until_unix_s: None,
            utilisation_s: parts.cadence.utilisation_s,
        }
    }

    /// The current inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The utilisation store.
    pub fn utilisation(&self) -> &UtilisationStore {
        &self.utilisation
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Account id the agent reports for.
    pub fn account_id(&self) -> &str {
        &self.context.account_id
    }

    /// Active resources per cost kind.
    fn cost_counts(&self) -> Vec<(CostedKind, usize)> {
        let mut counts: BTreeMap<CostedKind, usize> = BTreeMap::new();
        for r in self.inventory.iter().filter(|r| r.is_active()) {
            *counts.entry(costed_kind(r)).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Utilisation cadence in effect, seconds: the configured one, or
    /// longer (whole hours) while the inventory's average API cost per
    /// resource would exceed `budget.max_cost_usd_per_resource_month`.
    pub fn utilisation_interval_s(&self) -> i64 {
        self.utilisation_s
    }

    /// Estimated monthly API cost at the current inventory and cadence, USD.
    pub fn estimated_usd_per_month(&self) -> f64 {
        self.cost_model.at_cadence(self.utilisation_s).usd_per_month(&self.cost_counts())
    }

    /// Estimated monthly API cost per active resource at the current
    /// inventory and cadence, USD (what the budget caps).
    pub fn estimated_usd_per_resource_month(&self) -> f64 {
        self.cost_model.at_cadence(self.utilisation_s).average_usd_per_resource_month(&self.cost_counts())
    }

    async fn run_collector(&mut self, index: usize, now_unix_s: i64, stats: &mut CycleStats) -> bool {
        let ctx = CollectContext { now_unix_s, ..self.context.clone() };
        let collector = &self.collectors[index];
        let name = collector.name();
        match collector.collect(&ctx).await {
            Ok(found) => {
                let summary = self.inventory.reconcile(name, found, now_unix_s);
                tracing::info!(
                    collector = name,
                    added = summary.added,
                    kept = summary.kept,
                    terminated = summary.terminated,
                    "collected"
                );
                true
            }
            Err(e) => {
                stats.collector_failures += 1;
                self.metrics.inc("canopy_agent_api_failures_total", &[("service", name)]);
                tracing::warn!(collector = name, error = %e, "collector failed; keeping its previous resources");
                false
            }
        }
    }

    /// Runs one cycle at `now_unix_s`.
    pub async fn run_cycle(&mut self, now_unix_s: i64) -> CycleOutput {
        let started = std::time::Instant::now();
        let before = self.meter.reading();
        let cycle_end = now_unix_s - now_unix_s.rem_euclid(self.cadence.cycle_s);
        let mut stats = CycleStats { cycle_end_unix_s: cycle_end, ..CycleStats::default() };
        let mut touched: BTreeSet<String> = BTreeSet::new();

        let full_due = self.last_full_unix_s.is_none_or(|t| now_unix_s - t >= self.cadence.full_inventory_s);
        if full_due {
            for i in 0..self.collectors.len() {
                self.run_collector(i, now_unix_s, &mut stats).await;
            }
            self.last_full_unix_s = Some(now_unix_s);
            stats.full_inventory = true;
        } else if let Some(source) = &self.changes {
            match source.poll().await {
                Ok(batch) => {
                    self.metrics.add(
                        "canopy_agent_change_events_total",
                        &[("outcome", "malformed")],
                        batch.malformed as f64,
                    );
                    self.metrics.add(
                        "canopy_agent_change_events_total",
                        &[("outcome", "ignored")],
                        batch.ignored as f64,
                    );
                    stats.changes_malformed = batch.malformed;
                    let mut refresh = BTreeSet::new();
                    for change in batch.changes {
                        stats.changes_applied += 1;
                        self.metrics.inc("canopy_agent_change_events_total", &[("outcome", "applied")]);
                        match change {
                            Change::Terminated { arn } => {
                                if self.inventory.terminate(&arn, now_unix_s) {
                                    touched.insert(arn);
                                }
                            }
                            Change::Refresh { collector } => {
                                refresh.insert(collector);
                            }
                        }
                    }
                    for i in 0..self.collectors.len() {
                        let name = self.collectors[i].name();
                        if refresh.contains(name) && self.run_collector(i, now_unix_s, &mut stats).await {
                            touched
                                .extend(self.inventory.iter().filter(|r| r.collector == name).map(|r| r.arn.clone()));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "change queue poll failed; the next full inventory reconciles"),
            }
        }

        let mut output = CycleOutput::default();
        let cadence = self.cost_model.cadence_within_budget(&self.cost_counts());
        if cadence != self.utilisation_s {
            tracing::info!(
                configured_s = self.cadence.utilisation_s,
                effective_s = cadence,
                budget_usd_per_resource_month = self.cost_model.budget_usd_per_resource_month,
                "utilisation cadence set to keep the average API cost per resource within budget"
            );
            self.utilisation_s = cadence;
        }
        // Utilisation window ends on the last whole hour.
        let hour_end = cycle_end - cycle_end.rem_euclid(3_600);
        let fetch_due = self.measured_until_unix_s.is_none_or(|m| hour_end - m >= self.utilisation_s);
        let window = fetch_due.then_some((hour_end - self.utilisation_s, hour_end));
        output.emissions.reserve_exact(self.emission_capacity(window, cycle_end));
        if let Some(window) = window {
            self.fetch_utilisation(window).await;
            self.measured_until_unix_s = Some(hour_end);
            stats.utilisation_window = Some(window);
            self.measured_records(window, &mut output.emissions, &mut stats);
            // The window's records are made: only each resource's last known value is needed now.
            self.utilisation.drop_points();
        }
        self.provisional_records(cycle_end, &mut output.emissions, &mut stats);

        // Inventory records: everything after a full inventory, else what changed.
        let reported = |r: &&Resource| stats.full_inventory || touched.contains(&r.arn);
        output.resources.reserve_exact(self.inventory.iter().filter(reported).count());
        for r in self.inventory.iter().filter(reported) {
            output.resources.push((crate::records::resource_record(r), r.attributes.clone()));
        }
        self.inventory.prune_terminated(now_unix_s - 2 * self.utilisation_s.max(3_600));
        let keep: BTreeSet<&str> = self.inventory.iter().map(|r| r.arn.as_str()).collect();
        self.utilisation.prune(now_unix_s - 2 * self.utilisation_s - 3_600, &|arn| keep.contains(arn));

        stats.inventory_resources = self.inventory.len();
        stats.cost = self.meter.reading().since(&before);
        let m = &self.metrics;
        m.inc("canopy_agent_cycles_total", &[]);
        let elapsed = started.elapsed().as_secs_f64();
        m.set("canopy_agent_cycle_duration_seconds", &[], elapsed);
        m.add("canopy_agent_cycle_duration_seconds_total", &[], elapsed);
        m.add("canopy_agent_api_cost_usd_total", &[], stats.cost.usd());
        m.add("canopy_agent_cloudwatch_metrics_requested_total", &[], stats.cost.metrics_requested as f64);
        m.set("canopy_agent_estimated_api_cost_usd_per_month", &[], self.estimated_usd_per_month());
        m.set("canopy_agent_estimated_api_cost_usd_per_resource_month", &[], self.estimated_usd_per_resource_month());
        m.set("canopy_agent_utilisation_interval_seconds", &[], self.utilisation_s as f64);
        m.set("canopy_agent_inventory_resources", &[], stats.inventory_resources as f64);
        m.add("canopy_agent_records_total", &[("kind", "resource")], output.resources.len() as f64);
        m.add("canopy_agent_records_total", &[("kind", "emission")], output.emissions.len() as f64);
        output.stats = stats;
        output
    }

    /// Fetches the window chunk by chunk (one GetMetricData request per
    /// 500 queries) and stores each chunk's points as it arrives, so no more
    /// than one chunk's queries and points are held at once.
    async fn fetch_utilisation(&mut self, (start, end): (i64, i64)) {
        let mut metered = self.inventory.iter().filter_map(utilisation_query);
        let mut chunks = 0;
        loop {
            let chunk: Vec<_> = metered.by_ref().take(MAX_QUERIES_PER_CALL).collect();
            if chunk.is_empty() {
                break;
            }
            chunks += 1;
            let points = match self.metric_source.fetch(&chunk, start, end, PERIOD_S).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "utilisation fetch failed; records of this window use defaults");
                    Vec::new()
                }
            };
            self.utilisation.record(&chunk, points, start, end);
        }
        if chunks == 0 {
            // Nothing metered (storage only): the window is measured all the same.
            self.utilisation.record(&[], Vec::new(), start, end);
        }
    }

    fn present(r: &Resource, start: i64) -> bool {
        !(r.lifecycle == LifecycleState::Terminated && r.last_seen_unix_s <= start)
    }

    fn measured_records(&self, (start, end): (i64, i64), out: &mut Vec<EmissionRecord>, stats: &mut CycleStats) {
        let mut hour = start;
        while hour < end {
            for r in self.inventory.iter().filter(|r| Self::present(r, hour)) {
                let util = self.utilisation.measured(r, hour, hour + 3_600);
                match self.estimator.estimate(r, hour, hour + 3_600, util, REVISION_MEASURED) {
                    Ok(Some(rec)) => out.push(rec),
                    Ok(None) => {}
                    Err(_) => stats.estimate_failures += 1,
                }
            }
            hour += 3_600;
        }
        let mut t = start;
        while t < end {
            self.group_interval(t, true, out, stats);
            t += PERIOD_S;
        }
    }

    fn group_interval(&self, start: i64, measured: bool, out: &mut Vec<EmissionRecord>, stats: &mut CycleStats) {
        let end = start + PERIOD_S;
        let keys = self.estimator.team_tag_keys();
        let mut failures = 0;
        // Estimates are summed into their group as they are made, one resource at a time.
        let items = self.inventory.iter().filter(|r| Self::present(r, start)).filter_map(|r| {
            let util = if measured {
                self.utilisation.measured(r, start, end)
            } else {
                self.utilisation.provisional(r, PERIOD_S)
            };
            match self.estimator.estimates(r, start, end, util) {
                Ok(Some(estimates)) => Some(((r.service, r.resource_type, r.team(keys)), estimates)),
                Ok(None) => None,
                Err(_) => {
                    failures += 1;
                    None
                }
            }
        });
        let revision = if measured { REVISION_MEASURED } else { REVISION_PROVISIONAL };
        out.extend(group_estimates(start, end, revision, items));
        stats.estimate_failures += failures;
    }

    /// An upper bound of the emission records a cycle makes (per-resource
    /// hourly records and 5-minute group records), so the output vector is
    /// allocated once instead of doubling (which held old and new buffers
    /// at once at the cycle's memory peak).
    fn emission_capacity(&self, window: Option<(i64, i64)>, cycle_end: i64) -> usize {
        let keys = self.estimator.team_tag_keys();
        let mut groups = BTreeSet::new();
        let mut per_resource = 0;
        for r in self.inventory.iter().filter(|r| !matches!(r.basis, Basis::CountedElsewhere)) {
            per_resource += 1;
            groups.insert((r.service, r.resource_type, r.team(keys)));
        }
        let groups = groups.len();
        let measured = |s: i64, e: i64| {
            self.utilisation.is_measured(s, e) || window.is_some_and(|(ws, we)| ws <= s && e <= we)
        };
        let mut n = 0;
        if let Some((start, end)) = window {
            n += per_resource * ((end - start) / 3_600) as usize + groups * ((end - start) / PERIOD_S) as usize;
        }
        for t in provisional_buckets(cycle_end, self.cadence.cycle_s) {
            if !measured(t, t + PERIOD_S) {
                n += groups;
            }
        }
        if let Some(hour) = provisional_hour(cycle_end, self.cadence.cycle_s)
            && !measured(hour, hour + 3_600)
        {
            n += per_resource;
        }
        n
    }

    fn provisional_records(&self, cycle_end: i64, out: &mut Vec<EmissionRecord>, stats: &mut CycleStats) {
        for t in provisional_buckets(cycle_end, self.cadence.cycle_s) {
            if !self.utilisation.is_measured(t, t + PERIOD_S) {
                self.group_interval(t, false, out, stats);
            }
        }
        if let Some(start) = provisional_hour(cycle_end, self.cadence.cycle_s)
            && !self.utilisation.is_measured(start, start + 3_600)
        {
            for r in self.inventory.iter().filter(|r| Self::present(r, start)) {
                let util: UtilisationValue = self.utilisation.provisional(r, 3_600);
                match self.estimator.estimate(r, start, start + 3_600, util, REVISION_PROVISIONAL) {
                    Ok(Some(rec)) => out.push(rec),
                    Ok(None) => {}
                    Err(_) => stats.estimate_failures += 1,
                }
            }
        }
    }
}

/// Starts of the 5-minute buckets (aligned to the epoch, so none crosses an
/// hour) that ended during the cycle `(cycle_end - cycle_s, cycle_end]`: the
/// run loop's clock is not aligned, and over successive cycles every bucket
/// falls in exactly one cycle.
fn provisional_buckets(cycle_end: i64, cycle_s: i64) -> impl Iterator<Item = i64> {
    let last_end = cycle_end - cycle_end.rem_euclid(PERIOD_S);
    let first_end = (cycle_end - cycle_s).div_euclid(PERIOD_S) * PERIOD_S + PERIOD_S;
    (first_end..=last_end).step_by(PERIOD_S as usize).map(|end| end - PERIOD_S)
}

/// Start of the UTC hour that ended during the cycle, if one did.
fn provisional_hour(cycle_end: i64, cycle_s: i64) -> Option<i64> {
    let hour_end = cycle_end - cycle_end.rem_euclid(3_600);
    (hour_end > cycle_end - cycle_s).then_some(hour_end - 3_600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::{BoxFuture, CollectError};

    #[test]
    fn provisional_intervals_are_aligned_whatever_the_cycle_clock() {
        // Aligned 5-minute cycle: the bucket that just ended.
        assert_eq!(provisional_buckets(3_600, 300).collect::<Vec<_>>(), vec![3_300]);
        // Unaligned: 56 min 30 s ends the 55-minute bucket; nothing crosses
        // the hour.
        assert_eq!(provisional_buckets(3_390, 300).collect::<Vec<_>>(), vec![3_000]);
        // 60-second cycles: each bucket in exactly one cycle.
        let all: Vec<i64> = (1..=15).flat_map(|k| provisional_buckets(k * 60 + 7, 60)).collect();
        assert_eq!(all, vec![0, 300, 600]);
        // An hour cycle covers its twelve buckets.
        assert_eq!(provisional_buckets(7_200, 3_600).count(), 12);
        assert_eq!(provisional_hour(7_200, 300), Some(3_600));
        assert_eq!(provisional_hour(7_230, 60), Some(3_600));
        assert_eq!(provisional_hour(7_290, 60), None);
    }
    use crate::config::AgentConfig;
    use crate::env::MapEnv;
    use crate::utilisation::{MetricPoint, MetricQuery};
    use canopy_emissions::grid::MarketConfig;
    use canopy_protocol::CpuArchitecture;

    const H: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    /// `functions` Lambda functions and nothing else.
    struct Functions(usize);

    impl Collector for Functions {
        fn name(&self) -> &'static str {
            "lambda"
        }
        fn iam_actions(&self) -> &'static [&'static str] {
            &[]
        }
        fn collect<'a>(&'a self, _ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
            Box::pin(async move {
                Ok((0..self.0)
                    .map(|i| {
                        let basis = Basis::Function { memory_mb: 512, architecture: CpuArchitecture::Arm64 };
                        let mut r = Resource::new("lambda", "lambda", "function", format!("arn:f{i}"), format!("f{i}"), basis);
                        r.lifecycle = LifecycleState::Running;
                        r
                    })
                    .collect())
            })
        }
    }

    /// Counts requested metrics; returns no datapoints.
    struct Silent(Arc<CostMeter>);

    impl MetricSource for Silent {
        fn fetch<'a>(
            &'a self,
            queries: &'a [MetricQuery],
            _start_unix_s: i64,
            _end_unix_s: i64,
            _period_s: i64,
        ) -> BoxFuture<'a, Result<Vec<MetricPoint>, CollectError>> {
            self.0.get_metric_data(queries.len());
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    fn agent(functions: usize) -> Agent {
        let text = "config_version = 1\nagent_id = \"t\"\nregion = \"eu-west-1\"\n";
        let config = AgentConfig::from_toml(text, "t", &MapEnv::default()).unwrap();
        let meter = Arc::new(CostMeter::new());
        Agent::new(AgentParts {
            context: CollectContext { account_id: "123456789012".into(), region: "eu-west-1".into(), now_unix_s: 0 },
            cadence: Cadence { cycle_s: 300, utilisation_s: 3_600, full_inventory_s: 6 * 3_600 },
            collectors: vec![Box::new(Functions(functions))],
            metric_source: Box::new(Silent(meter.clone())),
            changes: None,
            estimator: Estimator::new("eu-west-1", MarketConfig::new(), vec!["Team".into()]),
            cost_model: CostModel::from_config(&config),
            metrics: Arc::new(Metrics::new()),
            meter,
        })
    }

    #[tokio::test]
    async fn a_lambda_only_account_lengthens_the_cadence_to_stay_within_budget() {
        let mut a = agent(600);
        let out = a.run_cycle(H).await;
        // Hourly would be (730 + 30.42) metrics × $0.00001 = $0.0076 per function; 2 h is $0.00395.
        assert_eq!(a.utilisation_interval_s(), 7_200);
        assert_eq!(out.stats.utilisation_window, Some((H - 7_200, H)));
        // 600 queries: two GetMetricData requests (500 + 100).
        assert_eq!((out.stats.cost.get_metric_data_calls, out.stats.cost.metrics_requested), (2, 600));
        let per_resource = a.estimated_usd_per_resource_month();
        assert!((per_resource - 0.003_954_166_7).abs() < 1e-9, "{per_resource}");
        assert!((a.estimated_usd_per_month() - 600.0 * per_resource).abs() < 1e-9);
        assert_eq!(a.metrics().get("canopy_agent_utilisation_interval_seconds", &[]), 7_200.0);
        // No fetch an hour later; the next one two hours after the first.
        assert_eq!(a.run_cycle(H + 3_600).await.stats.utilisation_window, None);
        assert_eq!(a.run_cycle(H + 7_200).await.stats.utilisation_window, Some((H, H + 7_200)));
        // Measured records for every function and hour of the window; no
        // datapoint for a queried function = no invocation = zero energy.
        let measured: Vec<_> = out.emissions.iter().filter(|e| matches!(e.subject, canopy_protocol::Subject::Resource { .. })).collect();
        assert_eq!(measured.len(), 1_200);
        assert!(measured.iter().all(|e| e.energy_total_kwh() == 0.0 && e.revision == REVISION_MEASURED));
        // The output vector was sized once, to the bound: 1,200 hourly records
        // + 24 five-minute intervals × 1 group (no provisional interval: all measured).
        assert_eq!((out.emissions.len(), out.emissions.capacity()), (1_224, 1_224));
    }
}
