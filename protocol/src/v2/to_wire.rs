//! Current in-memory types → v2 wire types.

use crate::batch::Batch;
use crate::error::EncodeError;
use crate::resource::ResourceRecord;
use crate::v1::{self, Interner};

use super::*;

/// Builds the v2 body of `batch`, interning every record string (resource
/// strings first, in record order, then emission strings, as v1 does).
pub(crate) fn batch_to_wire(batch: &Batch) -> Result<BatchV2<'_>, EncodeError> {
    let mut strings = Interner::default();
    let resources = batch
        .resources
        .iter()
        .map(|r| resource_to_wire(r, &mut strings))
        .collect::<Result<Vec<_>, _>>()?;
    let emissions = batch
        .emissions
        .iter()
        .map(|e| v1::emission_to_wire(e, &mut strings))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BatchV2 {
        agent_id: &batch.agent_id,
        account_id: &batch.account_id,
        region: &batch.region,
        sequence: batch.sequence,
        idempotency_key: batch.idempotency_key.0,
        created_at_unix_ms: batch.created_at_unix_ms,
        strings: strings.into_strings(),
        resources,
        emissions,
        agent_status: batch.agent_status.as_ref().map(|s| AgentStatusV2 {
            agent_version: &s.agent_version,
            outbox_backlog_frames: s.outbox_backlog_frames,
            outbox_backlog_bytes: s.outbox_backlog_bytes,
            records_shed_total: s.records_shed_total,
            collection_errors_total: s.collection_errors_total,
            send_failures_total: s.send_failures_total,
            taken_at_unix_ms: s.taken_at_unix_ms,
        }),
    })
}

fn resource_to_wire<'a>(
    r: &'a ResourceRecord,
    strings: &mut Interner<'a>,
) -> Result<ResourceV2, EncodeError> {
    let base = v1::resource_to_wire(r, strings)?;
    let attributes = r
        .attributes
        .iter()
        .map(|(k, v)| Ok((strings.intern(k)?, strings.intern(v)?)))
        .collect::<Result<Vec<_>, EncodeError>>()?;
    Ok(ResourceV2 {
        v1: base,
        attributes,
    })
}
