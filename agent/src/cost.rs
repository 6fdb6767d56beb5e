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

/// Monthly cost model at one configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    /// Utilisation fetches per month.
    pub fetches_per_month: f64,
    /// SQS receives per month when a change queue is configured (0 otherwise).
    pub sqs_requests_per_month: f64,
}

impl CostModel {
    /// The model for `config`.
    pub fn from_config(config: &AgentConfig) -> CostModel {
        let fetches_per_month = HOURS_PER_MONTH * 3_600.0 / f64::from(config.intervals.utilisation_s);
        // One receive per cycle at most (long polls end early when messages wait).
        let sqs_requests_per_month = if config.change_queue.queue_url.is_some() {
            HOURS_PER_MONTH * 3_600.0 / f64::from(config.intervals.cycle_s)
        } else {
            0.0
        };
        CostModel { fetches_per_month, sqs_requests_per_month }
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

    /// The most expensive kind's cost per resource per month (what the budget caps).
    pub fn max_usd_per_resource_month(&self) -> f64 {
        [CostedKind::CpuMetric, CostedKind::Function, CostedKind::Bucket]
            .into_iter()
            .map(|k| self.usd_per_resource_month(k))
            .fold(0.0, f64::max)
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
    fn default_cadence_stays_within_half_a_cent() {
        let m = model("");
        // 730 h / 2 h = 365 fetches → 365 metrics × $0.00001 = $0.00365.
        assert!((m.usd_per_resource_month(CostedKind::CpuMetric) - 0.00365).abs() < 1e-12);
        // Lambda: 365 + 30.4167 daily Invocations = 395.4167 metrics → $0.0039542.
        assert!((m.usd_per_resource_month(CostedKind::Function) - 0.003_954_166_7).abs() < 1e-9);
        // S3: 2 metrics × 30.4167 days = 60.83 metrics → $0.00060833.
        assert!((m.usd_per_resource_month(CostedKind::Bucket) - 0.000_608_333_3).abs() < 1e-9);
        assert!(m.max_usd_per_resource_month() <= 0.005);
        // Polling every 5 minutes would be 8,760 metrics → $0.0876 per resource.
        assert!((HOURS_PER_MONTH * 12.0 * USD_PER_METRIC_REQUESTED - 0.0876).abs() < 1e-12);
    }

    #[test]
    fn sqs_polling_is_a_fixed_cost() {
        let m = model("[change_queue]\nqueue_url = \"http://localhost/q\"\n");
        // 730 h × 12 receives = 8,760 requests × $0.0000004 = $0.003504 per month.
        assert!((m.fixed_usd_per_month() - 0.003504).abs() < 1e-12);
        let total = m.usd_per_month(&[(CostedKind::CpuMetric, 100), (CostedKind::Free, 50)]);
        assert!((total - (0.003504 + 0.365)).abs() < 1e-9);
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
