//! v1 wire types → current in-memory types, enforcing [`DecodeLimits`].
//!
//! Fields added after v1 get their documented defaults: no resource
//! attributes, no agent status. The resolver and record conversions are
//! shared with v2, whose records extend v1's.

use std::collections::BTreeMap;

use crate::batch::{Batch, IdempotencyKey};
use crate::emission::{EmissionRecord, GridFactorUsed, GroupKey, Quality, Subject};
use crate::error::DecodeError;
use crate::limits::DecodeLimits;
use crate::location::RecordRef;
use crate::reply::{Ack, ErrorCode, Reply, ReplyError};
use crate::resource::{
    Accelerator, AcceleratorKind, CpuArchitecture, LifecycleState, ResourceRecord, Size, SizeUnit,
};

use super::*;

/// Resolves string-table indices into owned strings, checking per-field
/// length limits and the batch's total decoded-string budget.
pub(crate) struct Resolver<'w, 'a> {
    strings: &'w [&'a str],
    budget_left: usize,
    budget_max: usize,
}

impl<'w, 'a> Resolver<'w, 'a> {
    /// A resolver over `strings` with the batch's decoded-string budget.
    pub(crate) fn new(strings: &'w [&'a str], limits: &DecodeLimits) -> Self {
        Resolver {
            strings,
            budget_left: limits.max_decoded_string_bytes,
            budget_max: limits.max_decoded_string_bytes,
        }
    }

    /// The string at `idx`, checked against `max_len` and the budget.
    pub(crate) fn get(
        &mut self,
        idx: StrIdx,
        record: RecordRef,
        field: &'static str,
        max_len: usize,
    ) -> Result<String, DecodeError> {
        let s = *self
            .strings
            .get(idx as usize)
            .ok_or(DecodeError::DanglingString {
                record,
                field,
                index: idx,
                table_len: self.strings.len(),
            })?;
        check_len(s, record, field, max_len)?;
        self.budget_left =
            self.budget_left
                .checked_sub(s.len())
                .ok_or(DecodeError::LimitExceeded {
                    record,
                    field: "decoded_string_bytes",
                    max: self.budget_max,
                    found: self.budget_max - self.budget_left + s.len(),
                })?;
        Ok(s.to_owned())
    }
}

pub(crate) fn check_len(
    s: &str,
    record: RecordRef,
    field: &'static str,
    max: usize,
) -> Result<(), DecodeError> {
    if s.len() > max {
        return Err(DecodeError::LimitExceeded {
            record,
            field,
            max,
            found: s.len(),
        });
    }
    Ok(())
}

pub(crate) fn check_count(
    found: usize,
    max: usize,
    record: RecordRef,
    field: &'static str,
) -> Result<(), DecodeError> {
    if found > max {
        return Err(DecodeError::LimitExceeded {
            record,
            field,
            max,
            found,
        });
    }
    Ok(())
}

/// Upgrades a decoded v1 batch body to a [`Batch`].
pub(crate) fn batch_from_wire(
    wire: BatchV1<'_>,
    limits: &DecodeLimits,
) -> Result<Batch, DecodeError> {
    let env = RecordRef::Envelope;
    check_count(
        wire.resources.len() + wire.emissions.len(),
        limits.max_records_per_batch,
        env,
        "records",
    )?;
    check_len(wire.agent_id, env, "agent_id", limits.max_string_bytes)?;
    check_len(wire.account_id, env, "account_id", limits.max_string_bytes)?;
    check_len(wire.region, env, "region", limits.max_string_bytes)?;
    let mut strings = Resolver::new(&wire.strings, limits);
    let resources = wire
        .resources
        .into_iter()
        .enumerate()
        .map(|(i, r)| resource_from_wire(r, RecordRef::Resource(i), &mut strings, limits))
        .collect::<Result<Vec<_>, _>>()?;
    let emissions = wire
        .emissions
        .into_iter()
        .enumerate()
        .map(|(i, e)| emission_from_wire(e, RecordRef::Emission(i), &mut strings, limits))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        agent_id: wire.agent_id.to_owned(),
        account_id: wire.account_id.to_owned(),
        region: wire.region.to_owned(),
        sequence: wire.sequence,
        idempotency_key: IdempotencyKey(wire.idempotency_key),
        created_at_unix_ms: wire.created_at_unix_ms,
        resources,
        emissions,
        agent_status: None,
    })
}

pub(crate) fn resource_from_wire(
    r: ResourceV1,
    at: RecordRef,
    strings: &mut Resolver<'_, '_>,
    limits: &DecodeLimits,
) -> Result<ResourceRecord, DecodeError> {
    let max = limits.max_string_bytes;
    check_count(r.tags.len(), limits.max_tags_per_resource, at, "tags")?;
    check_count(
        r.accelerators.len(),
        limits.max_accelerators_per_resource,
        at,
        "accelerators",
    )?;
    let mut tags = BTreeMap::new();
    for (k, v) in r.tags {
        let key = strings.get(k, at, "tags.key", limits.max_tag_key_bytes)?;
        let value = strings.get(v, at, "tags.value", limits.max_tag_value_bytes)?;
        if tags.contains_key(&key) {
            return Err(DecodeError::DuplicateTagKey { record: at, key });
        }
        tags.insert(key, value);
    }
    let accelerators = r
        .accelerators
        .into_iter()
        .map(|a| {
            Ok(Accelerator {
                kind: match a.kind {
                    AcceleratorKindV1::Gpu => AcceleratorKind::Gpu,
                    AcceleratorKindV1::Inferentia => AcceleratorKind::Inferentia,
                    AcceleratorKindV1::Trainium => AcceleratorKind::Trainium,
                    AcceleratorKindV1::Fpga => AcceleratorKind::Fpga,
                    AcceleratorKindV1::Other => AcceleratorKind::Other,
                },
                model: strings.get(a.model, at, "accelerators.model", max)?,
                count: a.count,
            })
        })
        .collect::<Result<Vec<_>, DecodeError>>()?;
    Ok(ResourceRecord {
        arn: strings.get(r.arn, at, "arn", max)?,
        service: strings.get(r.service, at, "service", max)?,
        resource_type: strings.get(r.resource_type, at, "resource_type", max)?,
        class: r
            .class
            .map(|c| strings.get(c, at, "class", max))
            .transpose()?,
        size: r.size.map(|s| Size {
            value: s.value,
            unit: match s.unit {
                SizeUnitV1::Bytes => SizeUnit::Bytes,
                SizeUnitV1::Kib => SizeUnit::Kib,
                SizeUnitV1::Mib => SizeUnit::Mib,
                SizeUnitV1::Gib => SizeUnit::Gib,
                SizeUnitV1::Tib => SizeUnit::Tib,
            },
        }),
        vcpus: r.vcpus,
        memory_mib: r.memory_mib,
        cpu_architecture: r.cpu_architecture.map(|a| match a {
            CpuArchitectureV1::X86_64 => CpuArchitecture::X86_64,
            CpuArchitectureV1::Arm64 => CpuArchitecture::Arm64,
            CpuArchitectureV1::Other => CpuArchitecture::Other,
        }),
        accelerators,
        tags,
        attributes: BTreeMap::new(),
        lifecycle: match r.lifecycle {
            LifecycleV1::Pending => LifecycleState::Pending,
            LifecycleV1::Running => LifecycleState::Running,
            LifecycleV1::Stopping => LifecycleState::Stopping,
            LifecycleV1::Stopped => LifecycleState::Stopped,
            LifecycleV1::Terminated => LifecycleState::Terminated,
            LifecycleV1::Unknown => LifecycleState::Unknown,
        },
        first_seen_unix_s: r.first_seen_unix_s,
        last_seen_unix_s: r.last_seen_unix_s,
    })
}

pub(crate) fn emission_from_wire(
    e: EmissionV1,
    at: RecordRef,
    strings: &mut Resolver<'_, '_>,
    limits: &DecodeLimits,
) -> Result<EmissionRecord, DecodeError> {
    let max = limits.max_string_bytes;
    let subject = match e.subject {
        SubjectV1::Resource { arn } => Subject::Resource {
            arn: strings.get(arn, at, "subject.arn", max)?,
        },
        SubjectV1::Group {
            service,
            resource_type,
            team,
        } => Subject::Group(GroupKey {
            service: strings.get(service, at, "subject.service", max)?,
            resource_type: strings.get(resource_type, at, "subject.resource_type", max)?,
            team: team
                .map(|t| strings.get(t, at, "subject.team", limits.max_tag_value_bytes))
                .transpose()?,
        }),
    };
    let mut grid = |g: GridFactorV1,
                    source: &'static str,
                    vintage: &'static str|
     -> Result<GridFactorUsed, DecodeError> {
        Ok(GridFactorUsed {
            g_co2e_per_kwh: g.g_co2e_per_kwh,
            source: strings.get(g.source, at, source, max)?,
            vintage: strings.get(g.vintage, at, vintage, max)?,
        })
    };
    let grid_location = grid(
        e.grid_location,
        "grid_location.source",
        "grid_location.vintage",
    )?;
    let grid_market = grid(e.grid_market, "grid_market.source", "grid_market.vintage")?;
    Ok(EmissionRecord {
        subject,
        interval_start_unix_s: e.interval_start_unix_s,
        interval_end_unix_s: e.interval_start_unix_s.wrapping_add(e.interval_length_s),
        energy_compute_kwh: e.energy_compute_kwh,
        energy_memory_kwh: e.energy_memory_kwh,
        energy_storage_kwh: e.energy_storage_kwh,
        energy_networking_kwh: e.energy_networking_kwh,
        energy_accelerators_kwh: e.energy_accelerators_kwh,
        pue: e.pue,
        embodied_g_co2e: e.embodied_g_co2e,
        operational_location_g_co2e: e.operational_location_g_co2e,
        operational_market_g_co2e: e.operational_market_g_co2e,
        grid_location,
        grid_market,
        quality: match e.quality {
            QualityV1::Measured => Quality::Measured,
            QualityV1::Estimated => Quality::Estimated,
            QualityV1::Default => Quality::Default,
        },
        low_g_co2e: e.low_g_co2e,
        high_g_co2e: e.high_g_co2e,
        methodology_version: strings.get(e.methodology_version, at, "methodology_version", max)?,
        revision: e.revision,
    })
}

/// Upgrades a decoded v1 reply body to a [`Reply`].
pub(crate) fn reply_from_wire(
    wire: ReplyV1<'_>,
    limits: &DecodeLimits,
) -> Result<Reply, DecodeError> {
    Ok(match wire {
        ReplyV1::Ack {
            sequence,
            idempotency_key,
            duplicate,
        } => Reply::Ack(Ack {
            sequence,
            idempotency_key: IdempotencyKey(idempotency_key),
            duplicate,
        }),
        ReplyV1::Error {
            sequence,
            code,
            message,
            retry_after_s,
        } => {
            check_len(
                message,
                RecordRef::Reply,
                "message",
                limits.max_string_bytes,
            )?;
            Reply::Error(ReplyError {
                sequence,
                code: ErrorCode::from_u16(code),
                message: message.to_owned(),
                retry_after_s,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(arn: StrIdx, tags: Vec<(StrIdx, StrIdx)>) -> ResourceV1 {
        ResourceV1 {
            arn,
            service: 1,
            resource_type: 1,
            class: None,
            size: None,
            vcpus: None,
            memory_mib: None,
            cpu_architecture: None,
            accelerators: vec![],
            tags,
            lifecycle: LifecycleV1::Running,
            first_seen_unix_s: 0,
            last_seen_unix_s: 0,
        }
    }

    fn batch(resources: Vec<ResourceV1>) -> BatchV1<'static> {
        BatchV1 {
            agent_id: "a",
            account_id: "123456789012",
            region: "eu-west-1",
            sequence: 1,
            idempotency_key: [0; 16],
            created_at_unix_ms: 0,
            strings: vec!["arn:aws:s3:::b", "s3", "team"],
            resources,
            emissions: vec![],
        }
    }

    #[test]
    fn index_past_the_string_table_is_named() {
        let err = batch_from_wire(
            batch(vec![resource(0, vec![]), resource(5, vec![])]),
            &DecodeLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "resources[1].arn: expected a string index below 3, found 5"
        );
    }

    #[test]
    fn repeated_tag_key_is_refused() {
        let err = batch_from_wire(
            batch(vec![resource(0, vec![(2, 1), (2, 0)])]),
            &DecodeLimits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "resources[0].tags: duplicate tag key \"team\""
        );
    }

    #[test]
    fn strings_resolve_in_place() {
        let decoded = batch_from_wire(
            batch(vec![resource(0, vec![(2, 1)])]),
            &DecodeLimits::default(),
        )
        .unwrap();
        let r = &decoded.resources[0];
        assert_eq!(
            (r.arn.as_str(), r.service.as_str()),
            ("arn:aws:s3:::b", "s3")
        );
        assert_eq!(r.tags.get("team").map(String::as_str), Some("s3"));
    }
}
