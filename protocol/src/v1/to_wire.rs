//! Current in-memory types → v1 wire types.

use crate::batch::Batch;
use crate::emission::{EmissionRecord, GridFactorUsed, Quality, Subject};
use crate::error::EncodeError;
use crate::reply::Reply;
use crate::resource::{AcceleratorKind, CpuArchitecture, LifecycleState, ResourceRecord, SizeUnit};

use super::intern::Interner;
use super::*;

/// Builds the v1 body of `batch`, interning every record string. A batch
/// carrying what v1 cannot express (resource attributes, an agent status)
/// is refused rather than sent without it.
pub(crate) fn batch_to_wire(batch: &Batch) -> Result<BatchV1<'_>, EncodeError> {
    let not_in_v1 = |what: String| EncodeError::NotInVersion {
        version: 1,
        what,
        since: 2,
    };
    if let Some(i) = batch.resources.iter().position(|r| !r.attributes.is_empty()) {
        return Err(not_in_v1(format!("resources[{i}].attributes")));
    }
    if batch.agent_status.is_some() {
        return Err(not_in_v1("batch.agent_status".to_owned()));
    }
    let mut strings = Interner::default();
    let resources = batch
        .resources
        .iter()
        .map(|r| resource_to_wire(r, &mut strings))
        .collect::<Result<Vec<_>, _>>()?;
    let emissions = batch
        .emissions
        .iter()
        .map(|e| emission_to_wire(e, &mut strings))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BatchV1 {
        agent_id: &batch.agent_id,
        account_id: &batch.account_id,
        region: &batch.region,
        sequence: batch.sequence,
        idempotency_key: batch.idempotency_key.0,
        created_at_unix_ms: batch.created_at_unix_ms,
        strings: strings.into_strings(),
        resources,
        emissions,
    })
}

pub(crate) fn resource_to_wire<'a>(
    r: &'a ResourceRecord,
    strings: &mut Interner<'a>,
) -> Result<ResourceV1, EncodeError> {
    let accelerators = r
        .accelerators
        .iter()
        .map(|a| {
            Ok(AcceleratorV1 {
                kind: match a.kind {
                    AcceleratorKind::Gpu => AcceleratorKindV1::Gpu,
                    AcceleratorKind::Inferentia => AcceleratorKindV1::Inferentia,
                    AcceleratorKind::Trainium => AcceleratorKindV1::Trainium,
                    AcceleratorKind::Fpga => AcceleratorKindV1::Fpga,
                    AcceleratorKind::Other => AcceleratorKindV1::Other,
                },
                model: strings.intern(&a.model)?,
                count: a.count,
            })
        })
        .collect::<Result<Vec<_>, EncodeError>>()?;
    let tags = r
        .tags
        .iter()
        .map(|(k, v)| Ok((strings.intern(k)?, strings.intern(v)?)))
        .collect::<Result<Vec<_>, EncodeError>>()?;
    Ok(ResourceV1 {
        arn: strings.intern(&r.arn)?,
        service: strings.intern(&r.service)?,
        resource_type: strings.intern(&r.resource_type)?,
        class: r.class.as_deref().map(|c| strings.intern(c)).transpose()?,
        size: r.size.map(|s| SizeV1 {
            value: s.value,
            unit: match s.unit {
                SizeUnit::Bytes => SizeUnitV1::Bytes,
                SizeUnit::Kib => SizeUnitV1::Kib,
                SizeUnit::Mib => SizeUnitV1::Mib,
                SizeUnit::Gib => SizeUnitV1::Gib,
                SizeUnit::Tib => SizeUnitV1::Tib,
            },
        }),
        vcpus: r.vcpus,
        memory_mib: r.memory_mib,
        cpu_architecture: r.cpu_architecture.map(|a| match a {
            CpuArchitecture::X86_64 => CpuArchitectureV1::X86_64,
            CpuArchitecture::Arm64 => CpuArchitectureV1::Arm64,
            CpuArchitecture::Other => CpuArchitectureV1::Other,
        }),
        accelerators,
        tags,
        lifecycle: match r.lifecycle {
            LifecycleState::Pending => LifecycleV1::Pending,
            LifecycleState::Running => LifecycleV1::Running,
            LifecycleState::Stopping => LifecycleV1::Stopping,
            LifecycleState::Stopped => LifecycleV1::Stopped,
            LifecycleState::Terminated => LifecycleV1::Terminated,
            LifecycleState::Unknown => LifecycleV1::Unknown,
        },
        first_seen_unix_s: r.first_seen_unix_s,
        last_seen_unix_s: r.last_seen_unix_s,
    })
}

pub(crate) fn emission_to_wire<'a>(
    e: &'a EmissionRecord,
    strings: &mut Interner<'a>,
) -> Result<EmissionV1, EncodeError> {
    let subject = match &e.subject {
        Subject::Resource { arn } => SubjectV1::Resource {
            arn: strings.intern(arn)?,
        },
        Subject::Group(g) => SubjectV1::Group {
            service: strings.intern(&g.service)?,
            resource_type: strings.intern(&g.resource_type)?,
            team: g.team.as_deref().map(|t| strings.intern(t)).transpose()?,
        },
    };
    Ok(EmissionV1 {
        subject,
        interval_start_unix_s: e.interval_start_unix_s,
        interval_length_s: e.interval_end_unix_s.wrapping_sub(e.interval_start_unix_s),
        energy_compute_kwh: e.energy_compute_kwh,
        energy_memory_kwh: e.energy_memory_kwh,
        energy_storage_kwh: e.energy_storage_kwh,
        energy_networking_kwh: e.energy_networking_kwh,
        energy_accelerators_kwh: e.energy_accelerators_kwh,
        pue: e.pue,
        embodied_g_co2e: e.embodied_g_co2e,
        operational_location_g_co2e: e.operational_location_g_co2e,
        operational_market_g_co2e: e.operational_market_g_co2e,
        grid_location: grid_to_wire(&e.grid_location, strings)?,
        grid_market: grid_to_wire(&e.grid_market, strings)?,
        quality: match e.quality {
            Quality::Measured => QualityV1::Measured,
            Quality::Estimated => QualityV1::Estimated,
            Quality::Default => QualityV1::Default,
        },
        low_g_co2e: e.low_g_co2e,
        high_g_co2e: e.high_g_co2e,
        methodology_version: strings.intern(&e.methodology_version)?,
        revision: e.revision,
    })
}

fn grid_to_wire<'a>(
    g: &'a GridFactorUsed,
    strings: &mut Interner<'a>,
) -> Result<GridFactorV1, EncodeError> {
    Ok(GridFactorV1 {
        g_co2e_per_kwh: g.g_co2e_per_kwh,
        source: strings.intern(&g.source)?,
        vintage: strings.intern(&g.vintage)?,
    })
}

/// Builds the v1 body of `reply`.
pub(crate) fn reply_to_wire(reply: &Reply) -> ReplyV1<'_> {
    match reply {
        Reply::Ack(ack) => ReplyV1::Ack {
            sequence: ack.sequence,
            idempotency_key: ack.idempotency_key.0,
            duplicate: ack.duplicate,
        },
        Reply::Error(err) => ReplyV1::Error {
            sequence: err.sequence,
            code: err.code.as_u16(),
            message: &err.message,
            retry_after_s: err.retry_after_s,
        },
    }
}
