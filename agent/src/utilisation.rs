//! Utilisation: which CloudWatch metric each resource needs, the
//! [`MetricSource`] trait, batching into GetMetricData calls, and the store
//! of measured 5-minute points with each resource's last known value.
//!
//! One metric per resource at the utilisation cadence: `CPUUtilization`
//! (Average) for EC2, RDS and ElastiCache, `Duration` (Sum) for Lambda.
//! Lambda `Invocations` is informational and fetched once per full
//! inventory, with S3's daily storage metrics, to keep the cost per resource
//! within budget (see `cost`).

use std::collections::HashMap;

use crate::collectors::{BoxFuture, CollectError};
use crate::inventory::{Basis, Resource};

/// 5-minute metric period, seconds.
pub const PERIOD_S: i64 = 300;
/// GetMetricData's maximum number of queries per call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// What a metric measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// CPU utilisation, percent (Average).
    CpuPct,
    /// Lambda duration, milliseconds (Sum).
    DurationMs,
    /// Lambda invocations (Sum).
    Invocations,
    /// S3 bytes stored in one storage type (Average, daily).
    BucketBytes,
    /// S3 object count (Average, daily).
    ObjectCount,
}

/// One metric query.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// Resource the metric belongs to.
    pub arn: String,
    /// CloudWatch namespace, e.g. `AWS/EC2`.
    pub namespace: &'static str,
    /// Metric name, e.g. `CPUUtilization`.
    pub metric_name: &'static str,
    /// Dimension name and value, e.g. `InstanceId` = `i-…`.
    pub dimension: (&'static str, String),
    /// Second dimension (S3's `StorageType`).
    pub extra_dimension: Option<(&'static str, String)>,
    /// Statistic: `Average` or `Sum`.
    pub stat: &'static str,
    /// What the value means.
    pub kind: MetricKind,
}

/// One datapoint: the metric of `queries[query]` over `[start_unix_s, start_unix_s + period)`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// Index of the query in the slice passed to [`MetricSource::fetch`].
    pub query: usize,
    /// Period start, Unix seconds.
    pub start_unix_s: i64,
    /// Value (percent, milliseconds or count).
    pub value: f64,
}

/// Where datapoints come from (CloudWatch GetMetricData, or the simulation).
pub trait MetricSource: Send + Sync {
    /// Datapoints of `queries` (at most [`MAX_QUERIES_PER_CALL`]) over
    /// `[start_unix_s, end_unix_s)` at `period_s` resolution: one
    /// GetMetricData request (plus continuation pages).
    fn fetch<'a>(
        &'a self,
        queries: &'a [MetricQuery],
        start_unix_s: i64,
        end_unix_s: i64,
        period_s: i64,
    ) -> BoxFuture<'a, Result<Vec<MetricPoint>, CollectError>>;
}

/// The utilisation metric `resource` needs at the utilisation cadence, if any.
pub fn utilisation_query(resource: &Resource) -> Option<MetricQuery> {
    if !resource.is_active() {
        return None;
    }
    let (namespace, metric_name, dimension, stat, kind) =
        match (resource.service, resource.resource_type, &resource.basis) {
            ("ec2", "instance", _) => ("AWS/EC2", "CPUUtilization", "InstanceId", "Average", MetricKind::CpuPct),
            ("rds", "db", _) => ("AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", "Average", MetricKind::CpuPct),
            ("elasticache", "cluster", _) => {
                ("AWS/ElastiCache", "CPUUtilization", "CacheClusterId", "Average", MetricKind::CpuPct)
            }
            ("lambda", "function", Basis::Function { .. }) => {
                ("AWS/Lambda", "Duration", "FunctionName", "Sum", MetricKind::DurationMs)
            }
            _ => return None,
        };
    Some(MetricQuery {
        arn: resource.arn.clone(),
        namespace,
        metric_name,
        dimension: (dimension, resource.id.clone()),
        extra_dimension: None,
        stat,
        kind,
    })
}

/// Number of GetMetricData calls needed for `metrics` queries: ceil(metrics / 500).
pub fn get_metric_data_calls(metrics: usize) -> usize {
    metrics.div_ceil(MAX_QUERIES_PER_CALL)
}

/// One resource's measured points, sorted by start time (a sorted vector:
/// a third of a B-tree's memory for these small series).
#[derive(Debug, Default, Clone)]
struct Series {
    kind: Option<MetricKind>,
    points: Vec<(i64, f64)>,
    last_known: Option<f64>,
}

impl Series {
    fn range(&self, start: i64, end: i64) -> impl Iterator<Item = f64> + '_ {
        let from = self.points.partition_point(|(t, _)| *t < start);
        self.points[from..].iter().take_while(move |(t, _)| *t < end).map(|(_, v)| *v)
    }
}

/// Measured 5-minute points per resource and the windows they cover.
#[derive(Debug, Default, Clone)]
pub struct UtilisationStore {
    series: HashMap<String, Series>,
    /// Measured windows `[start, end)`, merged.
    windows: Vec<(i64, i64)>,
}

/// Utilisation of one resource over one interval, as the estimate needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UtilisationValue {
    /// Mean CPU percent; `None` when no datapoint exists (documented default applies).
    CpuPct(Option<f64>),
    /// Lambda duration in the interval, ms; `None` when unknown.
    DurationMs(Option<f64>),
}

impl UtilisationStore {
    /// An empty store.
    pub fn new() -> UtilisationStore {
        UtilisationStore::default()
    }

    /// Records the result of one fetch over `[start, end)` for `queries`:
    /// stores the points, marks the window measured and updates each
    /// queried resource's last known value from its latest hour with data.
    pub fn record(&mut self, queries: &[MetricQuery], points: Vec<MetricPoint>, start_unix_s: i64, end_unix_s: i64) {
        for q in queries {
            let s = self.series.entry(q.arn.clone()).or_default();
            s.kind = Some(q.kind);
        }
        for p in points {
            let Some(q) = queries.get(p.query) else { continue };
            if !matches!(q.kind, MetricKind::CpuPct | MetricKind::DurationMs) || !p.value.is_finite() {
                continue;
            }
            if let Some(s) = self.series.get_mut(&q.arn) {
                s.points.push((p.start_unix_s, p.value));
            }
        }
        for q in queries {
            let s = self.series.get_mut(&q.arn).expect("inserted above");
            // Sort by time; a later fetch of the same period replaces the earlier value.
            s.points.reverse();
            s.points.sort_by_key(|(t, _)| *t);
            s.points.dedup_by_key(|(t, _)| *t);
            let mut hour = end_unix_s - 3600;
            while hour >= start_unix_s {
                let in_hour: Vec<f64> = s.range(hour, hour + 3600).collect();
                if !in_hour.is_empty() {
                    s.last_known = Some(match q.kind {
                        MetricKind::CpuPct => in_hour.iter().sum::<f64>() / in_hour.len() as f64,
                        _ => in_hour.iter().sum::<f64>(),
                    });
                    break;
                }
                if q.kind == MetricKind::DurationMs {
                    // No datapoint for a function hour means no invocation.
                    s.last_known = Some(0.0);
                    break;
                }
                hour -= 3600;
            }
        }
        self.windows.push((start_unix_s, end_unix_s));
        self.windows.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (s, e) in self.windows.drain(..) {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.windows = merged;
    }

    /// True when `[start, end)` lies inside a measured window.
    pub fn is_measured(&self, start_unix_s: i64, end_unix_s: i64) -> bool {
        self.windows.iter().any(|(s, e)| *s <= start_unix_s && end_unix_s <= *e)
    }

    /// Measured utilisation of `resource` over `[start, end)` (mean of CPU
    /// points; sum of duration points, zero when none).
    pub fn measured(&self, resource: &Resource, start_unix_s: i64, end_unix_s: i64) -> UtilisationValue {
        let series = self.series.get(&resource.arn);
        let sum = || series.map_or(0.0, |s| s.range(start_unix_s, end_unix_s).sum::<f64>());
        match &resource.basis {
            Basis::Function { .. } => {
                // Queried but silent = no invocations; never queried = unknown.
                UtilisationValue::DurationMs(series.map(|_| sum()))
            }
            _ => match series.map_or(0, |s| s.range(start_unix_s, end_unix_s).count()) {
                0 => UtilisationValue::CpuPct(None),
                n => UtilisationValue::CpuPct(Some(sum() / n as f64)),
            },
        }
    }

    /// Provisional utilisation of `resource` over an interval of
    /// `interval_s`: its last known hourly value (duration scaled to the
    /// interval), or unknown.
    pub fn provisional(&self, resource: &Resource, interval_s: i64) -> UtilisationValue {
        let last = self.series.get(&resource.arn).and_then(|s| s.last_known);
        match &resource.basis {
            Basis::Function { .. } => {
                UtilisationValue::DurationMs(last.map(|ms_per_hour| ms_per_hour * interval_s as f64 / 3600.0))
            }
            _ => UtilisationValue::CpuPct(last),
        }
    }

    /// Last known hourly value of `arn` (CPU percent, or duration ms per hour).
    pub fn last_known(&self, arn: &str) -> Option<f64> {
        self.series.get(arn).and_then(|s| s.last_known)
    }

    /// Drops every stored point, keeping each resource's last known value
    /// and the measured windows: once a window's records are made, its
    /// points are not needed again.
    pub fn drop_points(&mut self) {
        for s in self.series.values_mut() {
            s.points = Vec::new();
        }
    }

    /// Drops points before `before_unix_s` and series of resources not in `keep`.
    pub fn prune(&mut self, before_unix_s: i64, keep: &dyn Fn(&str) -> bool) {
        self.series.retain(|arn, _| keep(arn));
        for s in self.series.values_mut() {
            s.points.retain(|(t, _)| *t >= before_unix_s);
        }
        self.windows.retain(|(_, e)| *e > before_unix_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_protocol::LifecycleState;

    fn instance() -> Resource {
        let mut r = Resource::new(
            "ec2",
            "ec2",
            "instance",
            "arn:aws:ec2:eu-west-1:123456789012:instance/i-1".into(),
            "i-1".into(),
            Basis::Instance { instance_type: "m5.large".into(), count: 1, storage: Vec::new() },
        );
        r.lifecycle = LifecycleState::Running;
        r
    }

    fn point(t: i64, v: f64) -> MetricPoint {
        MetricPoint { query: 0, start_unix_s: t, value: v }
    }

    #[test]
    fn calls_are_ceil_of_metrics_over_500() {
        assert_eq!(get_metric_data_calls(0), 0);
        assert_eq!(get_metric_data_calls(500), 1);
        assert_eq!(get_metric_data_calls(501), 2);
        assert_eq!(get_metric_data_calls(5_000), 10);
    }

    #[test]
    fn hourly_mean_last_known_and_missing() {
        let r = instance();
        let q = utilisation_query(&r).unwrap();
        assert_eq!(q.dimension, ("InstanceId", "i-1".to_owned()));
        let mut store = UtilisationStore::new();
        // Window 0..7200; first hour 10 % and 20 %, second hour has no data.
        store.record(&[q], vec![point(0, 10.0), point(300, 20.0)], 0, 7_200);
        assert_eq!(store.measured(&r, 0, 3_600), UtilisationValue::CpuPct(Some(15.0)));
        assert_eq!(store.measured(&r, 3_600, 7_200), UtilisationValue::CpuPct(None));
        assert_eq!(store.measured(&r, 300, 600), UtilisationValue::CpuPct(Some(20.0)));
        // The latest hour with data is the first one.
        assert_eq!(store.last_known(&r.arn), Some(15.0));
        assert!(store.is_measured(3_600, 7_200));
        assert!(!store.is_measured(7_200, 7_500));
        assert_eq!(store.provisional(&r, 300), UtilisationValue::CpuPct(Some(15.0)));
    }
}
