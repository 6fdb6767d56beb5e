//! The agent's own AWS bill: a meter of billed calls as they happen and a
//! model of the monthly cost per resource at a configuration.
//!
//! Prices (us-east-1 list prices, the same in most regions): CloudWatch
//! GetMetricData $0.01 per 1,000 metrics requested; ListMetrics $0.01 per
//! 1,000 requests; SQS $0.40 per million requests. Describe/List calls of
//! EC2, RDS, S3 bucket configuration, Lambda, ECS, EKS, DynamoDB,
//! ElastiCache and EFS, and STS, are free.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::AgentConfig;

/// USD per metric requested through GetMetricData.
pub const USD_PER_METRIC_REQUESTED: f64 = 0.01 / 1_000.0;
/// USD per ListMetrics request.
pub const USD_PER_LIST_METRICS_REQUEST: f64 = 0.01 / 1_000.0;
/// USD per SQS request.
pub const USD_PER_SQS_REQUEST: f64 = 0.40 / 1_000_000.0;
/// Hours per month in AWS pricing.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Daily metrics (S3 storage, Lambda invocations) per month: 730 / 24.
pub const DAYS_PER_MONTH: f64 = HOURS_PER_MONTH / 24.0;
/// Storage-type series assumed per bucket by the model (plus NumberOfObjects).
pub const MODEL_STORAGE_CLASSES_PER_BUCKET: f64 = 1.0;

/// Counts of billed calls; shared by the metric source and change queue.
#[derive(Debug, Default)]
pub struct CostMeter {
    get_metric_data_calls: AtomicU64,
    metrics_requested: AtomicU64,
    list_metrics_calls: AtomicU64,
    sqs_requests: AtomicU64,
}

/// A reading of the meter.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CostReading {
    /// GetMetricData requests.
    pub get_metric_data_calls: u64,
    /// Metrics requested through GetMetricData.
    pub metrics_requested: u64,
    /// ListMetrics requests.
    pub list_metrics_calls: u64,
    /// SQS requests.
    pub sqs_requests: u64,
}

impl CostReading {
    /// Estimated charges, USD.
    pub fn usd(&self) -> f64 {
        self.metrics_requested as f64 * USD_PER_METRIC_REQUESTED
            + self.list_metrics_calls as f64 * USD_PER_LIST_METRICS_REQUEST
            + self.sqs_requests as f64 * USD_PER_SQS_REQUEST
    }

    /// Difference `self - earlier`.
    pub fn since(&self, earlier: &CostReading) -> CostReading {
        CostReading {
            get_metric_data_calls: self.get_metric_data_calls - earlier.get_metric_data_calls,
            metrics_requested: self.metrics_requested - earlier.metrics_requested,
            list_metrics_calls: self.list_metrics_calls - earlier.list_metrics_calls,
            sqs_requests: self.sqs_requests - earlier.sqs_requests,
        }
    }
}

impl CostMeter {
    /// A zeroed meter.
    pub fn new() -> CostMeter {
        CostMeter::default()
    }

    /// One GetMetricData request asking for `metrics` metrics.
    pub fn get_metric_data(&self, metrics: usize) {
        self.get_metric_data_calls.fetch_add(1, Ordering::Relaxed);
        self.metrics_requested.fetch_add(metrics as u64, Ordering::Relaxed);
    }

    /// One ListMetrics request.
    pub fn list_metrics(&self) {
        self.list_metrics_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// One SQS request.
    pub fn sqs(&self) {
        self.sqs_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Current totals.
    pub fn reading(&self) -> CostReading {
        CostReading {
            get_metric_data_calls: self.get_metric_data_calls.load(Ordering::Relaxed),
            metrics_requested: self.metrics_requested.load(Ordering::Relaxed),
            list_metrics_calls: self.list_metrics_calls.load(Ordering::Relaxed),
            sqs_requests: self.sqs_requests.load(Ordering::Relaxed),
        }
    }
}

/// How a resource is metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CostedKind {
    /// One CPU metric per utilisation fetch (EC2, RDS, ElastiCache).
    CpuMetric,
    /// Duration per utilisation fetch plus daily Invocations (Lambda).
    Function,
    /// Daily storage-class sizes and object count (S3).
    Bucket,
    /// No billed call (EBS, EFS, DynamoDB, ECS, EKS, Aurora storage).
    Free,
}

/// Longest utilisation cadence, seconds (one fetch a day).
pub const MAX_UTILISATION_S: i64 = 86_400;

/// Monthly cost model at one configuration.
///
/// The budget caps the bill **per resource**: the agent's whole monthly API
/// cost divided by its active resources. Storage-only resources cost
/// nothing, so the average over a real inventory is well below the cost of
/// the most expensive kind; when an inventory's average at the configured
/// cadence would pass the budget (say an account of Lambda functions only),
/// the agent lengthens the cadence by whole hours until it fits
/// ([`CostModel::cadence_within_budget`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Utilisation fetches per month.
    pub fetches_per_month: f64,
    /// SQS receives per month when a change queue is configured (0 otherwise).
    pub sqs_requests_per_month: f64,
    /// Configured utilisation cadence, seconds.
    pub utilisation_s: i64,
    /// Budget: USD per resource per month, averaged over the inventory.
    pub budget_usd_per_resource_month: f64,
}

impl CostModel {
    /// The model for `config`.
    pub fn from_config(config: &AgentConfig) -> CostModel {
        // One receive per cycle at most (long polls end early when messages wait).
        let sqs_requests_per_month = if config.change_queue.queue_url.is_some() {
            HOURS_PER_MONTH * 3_600.0 / f64::from(config.intervals.cycle_s)
        } else {
            0.0
        };
        CostModel {
            fetches_per_month: 0.0,
            sqs_requests_per_month,
            utilisation_s: 0,
            budget_usd_per_resource_month: config.budget.max_cost_usd_per_resource_month,
        }
        .at_cadence(i64::from(config.intervals.utilisation_s))
    }

    /// The same model with a utilisation fetch every `utilisation_s`.
    pub fn at_cadence(&self, utilisation_s: i64) -> CostModel {
        CostModel {
            fetches_per_month: HOURS_PER_MONTH * 3_600.0 / utilisation_s.max(1) as f64,
            utilisation_s,
            ..*self
        }
    }

    /// Metrics requested per month for one resource of `kind`.
    pub fn metrics_per_month(&self, kind: CostedKind) -> f64 {
        match kind {
            CostedKind::CpuMetric => self.fetches_per_month,
            CostedKind::Function => self.fetches_per_month + DAYS_PER_MONTH,
            CostedKind::Bucket => (MODEL_STORAGE_CLASSES_PER_BUCKET + 1.0) * DAYS_PER_MONTH,
            CostedKind::Free => 0.0,
        }
    }

    /// USD per month for one resource of `kind`.
    pub fn usd_per_resource_month(&self, kind: CostedKind) -> f64 {
        self.metrics_per_month(kind) * USD_PER_METRIC_REQUESTED
    }

    /// The most expensive kind's cost per resource per month at this cadence.
    pub fn worst_kind_usd_per_resource_month(&self) -> f64 {
        [CostedKind::CpuMetric, CostedKind::Function, CostedKind::Bucket]
            .into_iter()
            .map(|k| self.usd_per_resource_month(k))
            .fold(0.0, f64::max)
    }

    /// The most any inventory can average per resource per month with this
    /// configuration: the worst kind's cost at the configured cadence,
    /// capped by the budget the agent enforces by lengthening the cadence
    /// (unless even the longest cadence cannot meet it).
    pub fn max_usd_per_resource_month(&self) -> f64 {
        let floor = self.at_cadence(MAX_UTILISATION_S).worst_kind_usd_per_resource_month();
        self.worst_kind_usd_per_resource_month().min(self.budget_usd_per_resource_month.max(floor))
    }

    /// Per-agent cost independent of the inventory (SQS long polling), USD per month.
    pub fn fixed_usd_per_month(&self) -> f64 {
        self.sqs_requests_per_month * USD_PER_SQS_REQUEST
    }

    /// Whole-agent monthly cost for an inventory of `counts` per kind.
    pub fn usd_per_month(&self, counts: &[(CostedKind, usize)]) -> f64 {
        self.fixed_usd_per_month()
            + counts.iter().map(|(k, n)| self.usd_per_resource_month(*k) * *n as f64).sum::<f64>()
    }

    /// The bill per resource: whole-agent monthly cost over the number of
    /// resources in `counts` (0 when there are none).
    pub fn average_usd_per_resource_month(&self, counts: &[(CostedKind, usize)]) -> f64 {
        let resources: usize = counts.iter().map(|(_, n)| n).sum();
        if resources == 0 { 0.0 } else { self.usd_per_month(counts) / resources as f64 }
    }

    /// The utilisation cadence for an inventory of `counts`: the configured
    /// one, lengthened by whole hours (up to a day) while the average cost
    /// per resource would exceed the budget.
    pub fn cadence_within_budget(&self, counts: &[(CostedKind, usize)]) -> i64 {
        let mut cadence = self.utilisation_s;
        while cadence < MAX_UTILISATION_S
            && self.at_cadence(cadence).average_usd_per_resource_month(counts) > self.budget_usd_per_resource_month
        {
            cadence += 3_600;
        }
        cadence
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn model(extra: &str) -> CostModel {
        let text = format!("config_version = 1\nagent_id = \"a\"\nregion = \"eu-west-1\"\n{extra}");
        let config = AgentConfig::from_toml(&text, "t", &MapEnv::default()).unwrap();
        CostModel::from_config(&config)
    }

    #[test]
    fn per_kind_costs_at_hourly_and_two_hourly_cadences() {
        let m = model("");
        // Default: hourly, 730 fetches → 730 metrics × $0.00001 = $0.0073.
        assert_eq!(m.utilisation_s, 3_600);
        assert!((m.usd_per_resource_month(CostedKind::CpuMetric) - 0.0073).abs() < 1e-12);
        // Lambda: 730 + 30.4167 daily Invocations = 760.4167 metrics → $0.0076042.
        assert!((m.usd_per_resource_month(CostedKind::Function) - 0.007_604_166_7).abs() < 1e-9);
        // S3: 2 metrics × 30.4167 days = 60.83 metrics → $0.00060833.
        assert!((m.usd_per_resource_month(CostedKind::Bucket) - 0.000_608_333_3).abs() < 1e-9);
        // Every 2 h: 365 metrics → $0.00365; Lambda 395.4167 → $0.0039542.
        let two = m.at_cadence(7_200);
        assert!((two.usd_per_resource_month(CostedKind::CpuMetric) - 0.00365).abs() < 1e-12);
        assert!((two.usd_per_resource_month(CostedKind::Function) - 0.003_954_166_7).abs() < 1e-9);
        // Polling every 5 minutes would be 8,760 metrics → $0.0876 per resource.
        assert!((HOURS_PER_MONTH * 12.0 * USD_PER_METRIC_REQUESTED - 0.0876).abs() < 1e-12);
    }

    /// The simulated source's mix per 20 resources: 8 EC2 + 2 RDS (CPU), 3
    /// Lambda, 2 S3 buckets, 4 EBS volumes + 1 Fargate task (free).
    const SIMULATED_MIX: &[(CostedKind, usize)] =
        &[(CostedKind::CpuMetric, 10), (CostedKind::Function, 3), (CostedKind::Bucket, 2), (CostedKind::Free, 5)];

    #[test]
    fn hourly_default_averages_within_half_a_cent_on_the_simulated_mix() {
        let m = model("");
        // (10 × 730 + 3 × 760.4167 + 2 × 60.8333) / 20 = 485.15 metrics → $0.0048515.
        let avg = m.average_usd_per_resource_month(SIMULATED_MIX);
        assert!((avg - 0.004_851_458_3).abs() < 1e-9, "{avg}");
        assert_eq!(m.cadence_within_budget(SIMULATED_MIX), 3_600);
        // The same with the SQS change queue (8,760 receives, $0.0035 per
        // agent) at 5,000 resources: + $0.0000007 per resource.
        let q = model("[change_queue]\nqueue_url = \"http://localhost/q\"\n");
        let scaled: Vec<_> = SIMULATED_MIX.iter().map(|(k, n)| (*k, n * 250)).collect();
        assert!(q.average_usd_per_resource_month(&scaled) <= 0.005);
        assert_eq!(q.cadence_within_budget(&scaled), 3_600);
    }

    #[test]
    fn cadence_lengthens_when_the_inventory_average_would_pass_the_budget() {
        let m = model("");
        // Lambda only: $0.0076 hourly > $0.005 → 2 h ($0.00395).
        assert_eq!(m.cadence_within_budget(&[(CostedKind::Function, 100)]), 7_200);
        // EC2 instances with one root volume each: $0.00365 hourly → stays hourly.
        assert_eq!(m.cadence_within_budget(&[(CostedKind::CpuMetric, 100), (CostedKind::Free, 100)]), 3_600);
        // A tighter budget: $0.001 for CPU-only needs 730 × 0.00001 / n ≤ 0.001 → n ≥ 7.3 h → 8 h.
        let tight = model("[budget]\nmax_cost_usd_per_resource_month = 0.001\n");
        assert_eq!(tight.cadence_within_budget(&[(CostedKind::CpuMetric, 10)]), 8 * 3_600);
        // Nothing metered: the configured cadence.
        assert_eq!(m.cadence_within_budget(&[]), 3_600);
        // The most an inventory can average is the budget, not the worst kind's hourly cost.
        assert!((m.max_usd_per_resource_month() - 0.005).abs() < 1e-15);
        assert!((m.worst_kind_usd_per_resource_month() - 0.007_604_166_7).abs() < 1e-9);
    }

    #[test]
    fn sqs_polling_is_a_fixed_cost() {
        let m = model("[change_queue]\nqueue_url = \"http://localhost/q\"\n");
        // 730 h × 12 receives = 8,760 requests × $0.0000004 = $0.003504 per month.
        assert!((m.fixed_usd_per_month() - 0.003504).abs() < 1e-12);
        let total = m.usd_per_month(&[(CostedKind::CpuMetric, 100), (CostedKind::Free, 50)]);
        // Hourly: 100 × $0.0073 = $0.73.
        assert!((total - (0.003504 + 0.73)).abs() < 1e-9);
    }

    #[test]
    fn meter_counts_and_prices() {
        let meter = CostMeter::new();
        meter.get_metric_data(500);
        meter.get_metric_data(20);
        meter.list_metrics();
        let r = meter.reading();
        assert_eq!((r.get_metric_data_calls, r.metrics_requested, r.list_metrics_calls), (2, 520, 1));
        // 520 × $0.00001 + 1 × $0.00001 = $0.00521.
        assert!((r.usd() - 0.00521).abs() < 1e-12);
    }
}
