//! Counters the agent exports (Prometheus conventions: monotonic `_total`
//! counters; queue depth as in/out pairs, not a gauge).

use std::sync::atomic::{AtomicU64, Ordering};

/// The outbox's counters. All are monotonic since the process started.
#[derive(Debug, Default)]
pub struct OutboxMetrics {
    /// Batches written durably (`canopy_outbox_appended_batches_total`).
    pub appended_batches: AtomicU64,
    /// Records in those batches (`canopy_outbox_appended_records_total`).
    pub appended_records: AtomicU64,
    /// Frame bytes written (`canopy_outbox_appended_bytes_total`).
    pub appended_bytes: AtomicU64,
    /// Batches removed after an acknowledgement (`canopy_outbox_acked_batches_total`).
    pub acked_batches: AtomicU64,
    /// Frame bytes removed after an acknowledgement (`canopy_outbox_acked_bytes_total`).
    pub acked_bytes: AtomicU64,
    /// Acknowledgements for sequences no longer pending, e.g. a second ack
    /// of a re-sent batch (`canopy_outbox_acks_not_pending_total`).
    pub acks_not_pending: AtomicU64,
    /// Cycles coarsened because they did not fit (`canopy_outbox_coarsened_cycles_total`).
    pub coarsened_cycles: AtomicU64,
    /// Per-resource emission records folded into group records
    /// (`canopy_outbox_coarsened_records_total`); their totals are kept.
    pub coarsened_records: AtomicU64,
    /// Resource inventory records dropped while coarsening
    /// (`canopy_outbox_shed_resource_records_total`).
    pub shed_resource_records: AtomicU64,
    /// Cycles refused because even the coarsened cycle did not fit
    /// (`canopy_outbox_refused_cycles_total`); the caller still has them.
    pub refused_cycles: AtomicU64,
    /// Records in refused cycles, before coarsening (`canopy_outbox_refused_records_total`).
    pub refused_records: AtomicU64,
}

impl OutboxMetrics {
    /// Every counter with its Prometheus name, in a fixed order.
    pub fn samples(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "canopy_outbox_appended_batches_total",
                get(&self.appended_batches),
            ),
            (
                "canopy_outbox_appended_records_total",
                get(&self.appended_records),
            ),
            (
                "canopy_outbox_appended_bytes_total",
                get(&self.appended_bytes),
            ),
            (
                "canopy_outbox_acked_batches_total",
                get(&self.acked_batches),
            ),
            ("canopy_outbox_acked_bytes_total", get(&self.acked_bytes)),
            (
                "canopy_outbox_acks_not_pending_total",
                get(&self.acks_not_pending),
            ),
            (
                "canopy_outbox_coarsened_cycles_total",
                get(&self.coarsened_cycles),
            ),
            (
                "canopy_outbox_coarsened_records_total",
                get(&self.coarsened_records),
            ),
            (
                "canopy_outbox_shed_resource_records_total",
                get(&self.shed_resource_records),
            ),
            (
                "canopy_outbox_refused_cycles_total",
                get(&self.refused_cycles),
            ),
            (
                "canopy_outbox_refused_records_total",
                get(&self.refused_records),
            ),
        ]
    }

    /// The counters in Prometheus' text exposition format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        for (name, value) in self.samples() {
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(" counter\n");
            out.push_str(name);
            out.push(' ');
            out.push_str(&value.to_string());
            out.push('\n');
        }
        out
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_in_text_format() {
        let m = OutboxMetrics::default();
        OutboxMetrics::add(&m.refused_records, 7);
        let text = m.render_prometheus();
        assert!(text.contains(
            "# TYPE canopy_outbox_refused_records_total counter\ncanopy_outbox_refused_records_total 7\n"
        ));
        assert_eq!(m.samples().len(), 11);
    }
}
