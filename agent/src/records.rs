//! The edge: agent domain types → protocol records (resources with their
//! attributes, the agent's own status), and protocol records → the
//! JSON-lines debug format (`collect --once`, the spool file).

use std::collections::BTreeMap;

use canopy_protocol::{
    AcceleratorKind, AgentStatus, CpuArchitecture, DecodeLimits, EmissionRecord, GridFactorUsed, LifecycleState,
    Quality, ResourceRecord, Size, SizeUnit, Subject,
};
use serde_json::{Value, json};

use crate::inventory::Resource;

/// The protocol record of one inventory resource.
pub fn resource_record(r: &Resource) -> ResourceRecord {
    ResourceRecord {
        arn: r.arn.clone(),
        service: r.service.to_owned(),
        resource_type: r.resource_type.to_owned(),
        class: r.class.clone(),
        size: r.size_bytes.map(|value| Size { value, unit: SizeUnit::Bytes }),
        vcpus: r.vcpus,
        memory_mib: r.memory_mib,
        cpu_architecture: r.architecture,
        accelerators: r.accelerators.clone(),
        tags: r.tags.to_map(),
        attributes: wire_attributes(&r.attributes),
        lifecycle: r.lifecycle,
        first_seen_unix_s: r.first_seen_unix_s,
        last_seen_unix_s: r.last_seen_unix_s,
    }
}

/// A resource's attributes as the protocol carries them, within the
/// protocol's default limits so a batch is never refused for them: at most
/// `max_attributes_per_resource` names (the first in name order) and values
/// cut at a character boundary to `max_attribute_value_bytes` (names are the
/// collectors' own short constants).
pub fn wire_attributes(attributes: &BTreeMap<&'static str, String>) -> BTreeMap<String, String> {
    let limits = DecodeLimits::default();
    attributes
        .iter()
        .filter(|(k, _)| !k.is_empty() && k.len() <= limits.max_attribute_key_bytes)
        .take(limits.max_attributes_per_resource)
        .map(|(k, v)| ((*k).to_owned(), cut_to(v, limits.max_attribute_value_bytes).to_owned()))
        .collect()
}

fn cut_to(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Agent metric families an [`AgentStatus`] is read from (the delivery
/// layer copies the outbox's and the sender's counters into the agent's
/// metrics each cycle).
pub mod status_metrics {
    /// Failed AWS API operations (after retries), all labels summed.
    pub const COLLECTION_ERRORS: &str = "canopy_agent_api_failures_total";
    /// Batches in the outbox not yet acknowledged.
    pub const BACKLOG_BATCHES: &str = "canopy_agent_delivery_backlog_batches";
    /// Bytes of those batches.
    pub const BACKLOG_BYTES: &str = "canopy_agent_delivery_backlog_bytes";
    /// Failed batch sends.
    pub const SEND_FAILURES: &str = "canopy_agent_delivery_send_failures_total";
    /// Outbox counters of records shed, folded into groups or refused.
    pub const SHED: [&str; 3] = [
        "canopy_outbox_shed_resource_records_total",
        "canopy_outbox_coarsened_records_total",
        "canopy_outbox_refused_records_total",
    ];
}

/// The agent's status as the protocol carries it (protocol v2, shown in the
/// aggregator's fleet view), read from the agent's metrics: this build's
/// version, the outbox backlog, records shed by the outbox, collection
/// errors and send failures since the process started.
pub fn agent_status(metrics: &crate::metrics::Metrics, taken_at_unix_ms: i64) -> AgentStatus {
    use status_metrics::*;
    let count = |name: &str| metrics.sum(name).max(0.0) as u64;
    AgentStatus {
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        outbox_backlog_frames: count(BACKLOG_BATCHES),
        outbox_backlog_bytes: count(BACKLOG_BYTES),
        records_shed_total: SHED.iter().map(|name| count(name)).sum(),
        collection_errors_total: count(COLLECTION_ERRORS),
        send_failures_total: count(SEND_FAILURES),
        taken_at_unix_ms,
    }
}

fn lifecycle_str(l: LifecycleState) -> &'static str {
    match l {
        LifecycleState::Pending => "pending",
        LifecycleState::Running => "running",
        LifecycleState::Stopping => "stopping",
        LifecycleState::Stopped => "stopped",
        LifecycleState::Terminated => "terminated",
        LifecycleState::Unknown => "unknown",
    }
}

fn arch_str(a: CpuArchitecture) -> &'static str {
    match a {
        CpuArchitecture::X86_64 => "x86_64",
        CpuArchitecture::Arm64 => "arm64",
        CpuArchitecture::Other => "other",
    }
}

fn accelerator_kind_str(k: AcceleratorKind) -> &'static str {
    match k {
        AcceleratorKind::Gpu => "gpu",
        AcceleratorKind::Inferentia => "inferentia",
        AcceleratorKind::Trainium => "trainium",
        AcceleratorKind::Fpga => "fpga",
        AcceleratorKind::Other => "other",
    }
}

/// One JSON line for a resource record, with the domain attributes that
/// have no protocol field.
pub fn resource_json(record: &ResourceRecord, attributes: &std::collections::BTreeMap<&'static str, String>) -> Value {
    json!({
        "kind": "resource",
        "arn": record.arn,
        "service": record.service,
        "resource_type": record.resource_type,
        "class": record.class,
        "size_bytes": record.size.and_then(|s| s.bytes()),
        "vcpus": record.vcpus,
        "memory_mib": record.memory_mib,
        "cpu_architecture": record.cpu_architecture.map(arch_str),
        "accelerators": record.accelerators.iter().map(|a| json!({"kind": accelerator_kind_str(a.kind), "model": a.model, "count": a.count})).collect::<Vec<_>>(),
        "tags": record.tags,
        "lifecycle": lifecycle_str(record.lifecycle),
        "first_seen_unix_s": record.first_seen_unix_s,
        "last_seen_unix_s": record.last_seen_unix_s,
        "attributes": attributes,
    })
}

fn grid_json(g: &GridFactorUsed) -> Value {
    json!({"g_co2e_per_kwh": g.g_co2e_per_kwh, "source": g.source, "vintage": g.vintage})
}

fn quality_str(q: Quality) -> &'static str {
    q.as_str()
}

/// One JSON line for an emission record.
pub fn emission_json(record: &EmissionRecord) -> Value {
    let subject = match &record.subject {
        Subject::Resource { arn } => json!({"resource": arn}),
        Subject::Group(g) => json!({"group": {"service": g.service, "resource_type": g.resource_type, "team": g.team}}),
    };
    json!({
        "kind": "emission",
        "subject": subject,
        "interval_start_unix_s": record.interval_start_unix_s,
        "interval_end_unix_s": record.interval_end_unix_s,
        "energy_compute_kwh": record.energy_compute_kwh,
        "energy_memory_kwh": record.energy_memory_kwh,
        "energy_storage_kwh": record.energy_storage_kwh,
        "energy_networking_kwh": record.energy_networking_kwh,
        "energy_accelerators_kwh": record.energy_accelerators_kwh,
        "pue": record.pue,
        "embodied_g_co2e": record.embodied_g_co2e,
        "operational_location_g_co2e": record.operational_location_g_co2e,
        "operational_market_g_co2e": record.operational_market_g_co2e,
        "grid_location": grid_json(&record.grid_location),
        "grid_market": grid_json(&record.grid_market),
        "quality": quality_str(record.quality),
        "low_g_co2e": record.low_g_co2e,
        "high_g_co2e": record.high_g_co2e,
        "methodology_version": record.methodology_version,
        "revision": record.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn attributes_go_on_the_wire_within_the_limits() {
        let mut attributes = BTreeMap::new();
        attributes.insert("iops", "3000".to_owned());
        attributes.insert("engine", "é".repeat(600)); // 1,200 bytes
        let wire = wire_attributes(&attributes);
        assert_eq!(wire["iops"], "3000");
        // Cut to 1,024 bytes at a character boundary: 512 two-byte characters.
        assert_eq!((wire["engine"].len(), wire["engine"].chars().count()), (1_024, 512));
        let many: BTreeMap<&'static str, String> =
            (0..70).map(|i| (&*format!("a{i:02}").leak(), "1".to_owned())).collect();
        assert_eq!(wire_attributes(&many).len(), 64);
    }

    #[test]
    fn status_is_read_from_the_metrics() {
        let metrics = Metrics::new();
        metrics.add(status_metrics::COLLECTION_ERRORS, &[("service", "ec2"), ("operation", "DescribeVolumes")], 2.0);
        metrics.add(status_metrics::COLLECTION_ERRORS, &[("service", "rds"), ("operation", "DescribeDBInstances")], 1.0);
        metrics.set(status_metrics::BACKLOG_BATCHES, &[], 4.0);
        metrics.set(status_metrics::BACKLOG_BYTES, &[], 81_920.0);
        metrics.set(status_metrics::SEND_FAILURES, &[], 6.0);
        metrics.set(status_metrics::SHED[0], &[], 10.0);
        metrics.set(status_metrics::SHED[1], &[], 20.0);
        let status = agent_status(&metrics, 1_700_000_000_000);
        assert_eq!(
            status,
            AgentStatus {
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
                outbox_backlog_frames: 4,
                outbox_backlog_bytes: 81_920,
                records_shed_total: 30,
                collection_errors_total: 3,
                send_failures_total: 6,
                taken_at_unix_ms: 1_700_000_000_000,
            }
        );
        assert!(!status.agent_version.is_empty());
    }
}
