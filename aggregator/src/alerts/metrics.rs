//! Prometheus counters of the alert evaluator and the outbox sender,
//! rendered by the aggregator's `/metrics` endpoint. Labels are bounded
//! (the route kind, three values), never a budget or route name.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::evaluate::RoundReport;

/// Counters and gauges of alerting.
#[derive(Debug, Default)]
pub struct AlertMetrics {
    /// Rounds completed.
    pub rounds_total: AtomicU64,
    /// Rounds that failed.
    pub round_failures_total: AtomicU64,
    /// "Now" of the last completed round (its data covers everything
    /// acknowledged before it), Unix seconds.
    pub last_round_now_unix_s: AtomicI64,
    /// Duration of the last completed round, milliseconds.
    pub last_round_ms: AtomicU64,
    /// Alerts fired or escalated (notifications decided).
    pub triggered_total: AtomicU64,
    /// Alerts resolved.
    pub resolved_total: AtomicU64,
    /// Outbox rows written.
    pub enqueued_total: AtomicU64,
    /// Deliveries accepted, by route kind (pagerduty, email, webhook).
    pub delivered_total: [AtomicU64; 3],
    /// Delivery attempts that failed and will be retried, by route kind.
    pub delivery_failures_total: [AtomicU64; 3],
    /// Deliveries refused for good, by route kind.
    pub delivery_rejected_total: [AtomicU64; 3],
    /// Times a route's notification waited for its rate limit or quiet hours.
    pub held_total: AtomicU64,
}

/// Index of a route kind in the per-kind counters.
pub fn kind_index(kind: &str) -> usize {
    match kind {
        "pagerduty" => 0,
        "email" => 1,
        _ => 2,
    }
}

const KINDS: [&str; 3] = ["pagerduty", "email", "webhook"];

impl AlertMetrics {
    /// Records a completed round.
    pub fn observe_round(&self, r: &RoundReport, now_unix_s: i64) {
        self.rounds_total.fetch_add(1, Ordering::Relaxed);
        self.last_round_now_unix_s.store(now_unix_s, Ordering::Relaxed);
        self.last_round_ms.store(((r.read_s + r.write_s) * 1_000.0) as u64, Ordering::Relaxed);
        self.triggered_total.fetch_add(r.triggered as u64, Ordering::Relaxed);
        self.resolved_total.fetch_add(r.resolved as u64, Ordering::Relaxed);
        self.enqueued_total.fetch_add(r.enqueued as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition at `now_unix_s`.
    pub fn render(&self, now_unix_s: i64) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let last = self.last_round_now_unix_s.load(Ordering::Relaxed);
        let lag = if last > 0 { now_unix_s - last } else { -1 };
        out.push_str(&format!(
            "# HELP canopy_alerts_evaluation_lag_seconds Age of the data the alert state reflects: seconds since the \
             start of the last completed evaluation round (-1 before the first).\n\
             # TYPE canopy_alerts_evaluation_lag_seconds gauge\ncanopy_alerts_evaluation_lag_seconds {lag}\n"
        ));
        out.push_str(&format!(
            "# HELP canopy_alerts_round_duration_seconds Duration of the last evaluation round.\n\
             # TYPE canopy_alerts_round_duration_seconds gauge\ncanopy_alerts_round_duration_seconds {:.3}\n",
            get(&self.last_round_ms) as f64 / 1_000.0
        ));
        for (name, help, value) in [
            ("canopy_alerts_rounds_total", "Alert evaluation rounds completed.", get(&self.rounds_total)),
            ("canopy_alerts_round_failures_total", "Alert evaluation rounds that failed.", get(&self.round_failures_total)),
            ("canopy_alerts_triggered_total", "Alert triggers and escalations decided.", get(&self.triggered_total)),
            ("canopy_alerts_resolved_total", "Alerts resolved.", get(&self.resolved_total)),
            ("canopy_alerts_outbox_enqueued_total", "Notifications written to the alert outbox.", get(&self.enqueued_total)),
            ("canopy_alerts_held_total", "Notifications held back by a route's rate limit or quiet hours.", get(&self.held_total)),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        }
        for (name, help, counters) in [
            ("canopy_alerts_delivered_total", "Notifications accepted by their receiver.", &self.delivered_total),
            (
                "canopy_alerts_delivery_failures_total",
                "Delivery attempts that failed and are retried.",
                &self.delivery_failures_total,
            ),
            (
                "canopy_alerts_delivery_rejected_total",
                "Notifications refused for good by their receiver (kept in the outbox, not retried).",
                &self.delivery_rejected_total,
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (i, kind) in KINDS.iter().enumerate() {
                out.push_str(&format!("{name}{{route_kind=\"{kind}\"}} {}\n", get(&counters[i])));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lag_and_per_kind_delivery_failures() {
        let m = AlertMetrics::default();
        assert!(m.render(1_000).contains("canopy_alerts_evaluation_lag_seconds -1\n"));
        m.observe_round(&RoundReport { triggered: 2, enqueued: 6, read_s: 1.0, write_s: 0.5, ..RoundReport::default() }, 1_000);
        m.delivery_failures_total[kind_index("email")].fetch_add(3, Ordering::Relaxed);
        let text = m.render(1_042);
        assert!(text.contains("canopy_alerts_evaluation_lag_seconds 42\n"), "{text}");
        assert!(text.contains("canopy_alerts_round_duration_seconds 1.500\n"), "{text}");
        assert!(text.contains("canopy_alerts_triggered_total 2\n"));
        assert!(text.contains("canopy_alerts_delivery_failures_total{route_kind=\"email\"} 3\n"));
        assert!(text.contains("canopy_alerts_delivery_failures_total{route_kind=\"pagerduty\"} 0\n"));
    }
}
