//! The agent's own metrics, rendered in the Prometheus text exposition
//! format.
//!
//! A small hand-rolled registry rather than the `prometheus-client` crate:
//! the agent has a dozen counters and gauges with one or two bounded labels
//! (service, operation, outcome: never a resource id), renders them to a
//! text file once per cycle, and needs no HTTP server or histogram
//! machinery; a map under a mutex does that with no dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic.
    Counter,
    /// Last value.
    Gauge,
}

/// Families the agent exports: name, kind, help.
pub const FAMILIES: &[(&str, MetricKind, &str)] = &[
    (
        "canopy_agent_api_calls_total",
        MetricKind::Counter,
        "AWS API attempts sent (retries included), by service and operation",
    ),
    ("canopy_agent_api_throttles_total", MetricKind::Counter, "AWS API attempts answered with a throttling error"),
    ("canopy_agent_api_server_errors_total", MetricKind::Counter, "AWS API attempts answered with a 5xx status"),
    ("canopy_agent_api_retries_total", MetricKind::Counter, "AWS API attempts that were retries of an earlier attempt"),
    ("canopy_agent_api_failures_total", MetricKind::Counter, "AWS API operations that failed after all attempts"),
    ("canopy_agent_api_cost_usd_total", MetricKind::Counter, "Estimated AWS charges of the agent's own API calls, USD"),
    (
        "canopy_agent_cloudwatch_metrics_requested_total",
        MetricKind::Counter,
        "Metrics requested from CloudWatch GetMetricData (the billed unit)",
    ),
    (
        "canopy_agent_estimated_api_cost_usd_per_month",
        MetricKind::Gauge,
        "Estimated monthly AWS API cost of the agent at its current inventory, USD",
    ),
    ("canopy_agent_cycles_total", MetricKind::Counter, "Completed precompute cycles"),
    (
        "canopy_agent_cycles_carried_over_total",
        MetricKind::Counter,
        "Cycle ticks skipped because the previous cycle overran",
    ),
    ("canopy_agent_cycle_duration_seconds", MetricKind::Gauge, "Wall time of the last cycle, seconds"),
    ("canopy_agent_cycle_duration_seconds_total", MetricKind::Counter, "Wall time of all cycles, seconds"),
    ("canopy_agent_change_events_total", MetricKind::Counter, "Change events received, by outcome"),
    ("canopy_agent_inventory_resources", MetricKind::Gauge, "Resources in the inventory"),
    ("canopy_agent_records_total", MetricKind::Counter, "Records handed to the sink, by kind"),
    ("canopy_agent_delivery_backlog_batches", MetricKind::Gauge, "Batches in the outbox awaiting an acknowledgement"),
    ("canopy_agent_delivery_backlog_bytes", MetricKind::Gauge, "Frame bytes in the outbox awaiting an acknowledgement"),
    ("canopy_agent_delivery_acked_batches_total", MetricKind::Counter, "Batches acknowledged and removed from the outbox"),
    ("canopy_agent_delivery_acked_bytes_total", MetricKind::Counter, "Frame bytes removed from the outbox after acknowledgement"),
    (
        "canopy_agent_delivery_duplicate_acks_total",
        MetricKind::Counter,
        "Acknowledgements of batches the aggregator had already stored (resends)",
    ),
    (
        "canopy_agent_delivery_send_failures_total",
        MetricKind::Counter,
        "Batch sends that failed in the transport after its retries",
    ),
    (
        "canopy_agent_delivery_retry_replies_total",
        MetricKind::Counter,
        "Aggregator replies asking to retry later (unavailable, throttled)",
    ),
    (
        "canopy_agent_delivery_refused_batches_total",
        MetricKind::Counter,
        "Batches the aggregator refused permanently (kept in the outbox, not resent)",
    ),
    ("canopy_agent_delivery_enrolments_total", MetricKind::Counter, "Enrolment attempts, by outcome"),
    (
        "canopy_agent_delivery_certificate_expiry_timestamp_seconds",
        MetricKind::Gauge,
        "Expiry of the current client certificate, Unix seconds",
    ),
    ("canopy_outbox_appended_batches_total", MetricKind::Counter, "Batches written durably to the outbox"),
    ("canopy_outbox_appended_records_total", MetricKind::Counter, "Records in batches written to the outbox"),
    ("canopy_outbox_appended_bytes_total", MetricKind::Counter, "Frame bytes written to the outbox"),
    ("canopy_outbox_acked_batches_total", MetricKind::Counter, "Batches removed from the outbox after an acknowledgement"),
    ("canopy_outbox_acked_bytes_total", MetricKind::Counter, "Frame bytes removed after an acknowledgement"),
    ("canopy_outbox_acks_not_pending_total", MetricKind::Counter, "Acknowledgements of batches no longer pending"),
    ("canopy_outbox_coarsened_cycles_total", MetricKind::Counter, "Cycles coarsened to fit under the outbox cap"),
    ("canopy_outbox_coarsened_records_total", MetricKind::Counter, "Per-resource records folded into group records"),
    ("canopy_outbox_shed_resource_records_total", MetricKind::Counter, "Inventory records dropped while coarsening"),
    ("canopy_outbox_refused_cycles_total", MetricKind::Counter, "Cycles refused because the outbox was full"),
    ("canopy_outbox_refused_records_total", MetricKind::Counter, "Records in cycles refused because the outbox was full"),
];

type Key = (&'static str, Vec<(&'static str, String)>);

/// A registry of counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<Key, f64>>,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Adds `value` to counter `name` with `labels`.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        *self.values.lock().expect("metrics lock").entry(key).or_insert(0.0) += value;
    }

    /// Increments counter `name` by one.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1.0);
    }

    /// Sets gauge `name`.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        self.values.lock().expect("metrics lock").insert(key, value);
    }

    /// Value of one series (0 when never touched).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let values = self.values.lock().expect("metrics lock");
        values
            .iter()
            .find(|((n, l), _)| {
                *n == name && l.len() == labels.len() && l.iter().zip(labels).all(|((a, b), (c, d))| a == c && b == d)
            })
            .map_or(0.0, |(_, v)| *v)
    }

    /// Sum of a family over all label values.
    pub fn sum(&self, name: &str) -> f64 {
        self.values.lock().expect("metrics lock").iter().filter(|((n, _), _)| *n == name).map(|(_, v)| v).sum()
    }

    /// Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let values = self.values.lock().expect("metrics lock");
        let mut out = String::new();
        for (name, kind, help) in FAMILIES {
            let kind = match kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, labels), value) in values.iter().filter(|((n, _), _)| n == name) {
                out.push_str(n);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                        let _ = write!(out, "{k}=\"{escaped}\"");
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {value}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_exposition() {
        let m = Metrics::new();
        m.inc("canopy_agent_api_calls_total", &[("service", "ec2"), ("operation", "DescribeInstances")]);
        m.add("canopy_agent_api_calls_total", &[("service", "ec2"), ("operation", "DescribeInstances")], 2.0);
        m.set("canopy_agent_inventory_resources", &[], 42.0);
        let text = m.render();
        assert!(text.contains("# TYPE canopy_agent_api_calls_total counter\n"));
        assert!(text.contains("canopy_agent_api_calls_total{service=\"ec2\",operation=\"DescribeInstances\"} 3\n"));
        assert!(text.contains("canopy_agent_inventory_resources 42\n"));
        assert_eq!(
            m.get("canopy_agent_api_calls_total", &[("service", "ec2"), ("operation", "DescribeInstances")]),
            3.0
        );
        assert_eq!(m.sum("canopy_agent_api_calls_total"), 3.0);
    }
}
