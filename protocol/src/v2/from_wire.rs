//! v2 wire types → current in-memory types, enforcing [`DecodeLimits`].

use std::collections::BTreeMap;

use crate::batch::{Batch, IdempotencyKey};
use crate::error::DecodeError;
use crate::limits::DecodeLimits;
use crate::location::RecordRef;
use crate::resource::ResourceRecord;
use crate::status::AgentStatus;
use crate::v1::{self, Resolver, check_count, check_len};

use super::*;

/// Converts a decoded v2 batch body to a [`Batch`].
pub(crate) fn batch_from_wire(
    wire: BatchV2<'_>,
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
    let agent_status = match wire.agent_status {
        Some(s) => {
            check_len(
                s.agent_version,
                env,
                "agent_status.agent_version",
                limits.max_string_bytes,
            )?;
            Some(AgentStatus {
                agent_version: s.agent_version.to_owned(),
                outbox_backlog_frames: s.outbox_backlog_frames,
                outbox_backlog_bytes: s.outbox_backlog_bytes,
                records_shed_total: s.records_shed_total,
                collection_errors_total: s.collection_errors_total,
                send_failures_total: s.send_failures_total,
                taken_at_unix_ms: s.taken_at_unix_ms,
            })
        }
        None => None,
    };
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
        .map(|(i, e)| v1::emission_from_wire(e, RecordRef::Emission(i), &mut strings, limits))
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
        agent_status,
    })
}

fn resource_from_wire(
    r: ResourceV2,
    at: RecordRef,
    strings: &mut Resolver<'_, '_>,
    limits: &DecodeLimits,
) -> Result<ResourceRecord, DecodeError> {
    check_count(
        r.attributes.len(),
        limits.max_attributes_per_resource,
        at,
        "attributes",
    )?;
    let mut record = v1::resource_from_wire(r.v1, at, strings, limits)?;
    let mut attributes = BTreeMap::new();
    for (k, v) in r.attributes {
        let key = strings.get(k, at, "attributes.key", limits.max_attribute_key_bytes)?;
        let value = strings.get(
            v,
            at,
            "attributes.value",
            limits.max_attribute_value_bytes,
        )?;
        if attributes.contains_key(&key) {
            return Err(DecodeError::DuplicateAttributeKey { record: at, key });
        }
        attributes.insert(key, value);
    }
    record.attributes = attributes;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::LifecycleV1;

    fn resource(attributes: Vec<(StrIdx, StrIdx)>) -> ResourceV2 {
        ResourceV2 {
            v1: ResourceV1 {
                arn: 0,
                service: 1,
                resource_type: 1,
                class: None,
                size: None,
                vcpus: None,
                memory_mib: None,
                cpu_architecture: None,
                accelerators: vec![],
                tags: vec![],
                lifecycle: LifecycleV1::Running,
                first_seen_unix_s: 0,
                last_seen_unix_s: 0,
            },
            attributes,
        }
    }

    fn batch(resources: Vec<ResourceV2>) -> BatchV2<'static> {
        BatchV2 {
            agent_id: "a",
            account_id: "123456789012",
            region: "eu-west-1",
            sequence: 1,
            idempotency_key: [0; 16],
            created_at_unix_ms: 0,
            strings: vec!["arn:aws:rds:eu-west-1:123456789012:db:x", "rds", "engine", "postgres"],
            resources,
            emissions: vec![],
            agent_status: None,
        }
    }

    #[test]
    fn attributes_resolve_and_repeats_are_refused() {
        let limits = DecodeLimits::default();
        let ok = batch_from_wire(batch(vec![resource(vec![(2, 3)])]), &limits).unwrap();
        assert_eq!(
            ok.resources[0].attributes.get("engine").map(String::as_str),
            Some("postgres")
        );
        let err = batch_from_wire(batch(vec![resource(vec![(2, 3), (2, 1)])]), &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "resources[0].attributes: duplicate attribute key \"engine\""
        );
    }

    #[test]
    fn attribute_count_and_lengths_are_limited() {
        let limits = DecodeLimits {
            max_attributes_per_resource: 1,
            max_attribute_value_bytes: 4,
            ..DecodeLimits::default()
        };
        let err = batch_from_wire(batch(vec![resource(vec![(2, 3), (1, 1)])]), &limits).unwrap_err();
        assert_eq!(err.to_string(), "resources[0].attributes: expected at most 1, found 2");
        let err = batch_from_wire(batch(vec![resource(vec![(2, 3)])]), &limits).unwrap_err();
        assert_eq!(err.to_string(), "resources[0].attributes.value: expected at most 4, found 8");
    }
}
