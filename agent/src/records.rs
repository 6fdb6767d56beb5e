//! The edge: agent domain types → protocol records, and protocol records →
//! the JSON-lines debug format (`collect --once`, the spool file).

use canopy_protocol::{
    AcceleratorKind, CpuArchitecture, EmissionRecord, GridFactorUsed, LifecycleState, Quality, ResourceRecord, Size,
    SizeUnit, Subject,
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
        tags: r.tags.clone(),
        lifecycle: r.lifecycle,
        first_seen_unix_s: r.first_seen_unix_s,
        last_seen_unix_s: r.last_seen_unix_s,
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
