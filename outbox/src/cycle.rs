//! What one collection cycle hands to the outbox.

use canopy_protocol::{AgentStatus, EmissionRecord, GroupKey, ResourceRecord};

/// One emission record with the group its subject belongs to.
///
/// For a `Subject::Resource` record, `group` is the resource's service,
/// resource type and team: what the outbox needs to coarsen it into a group
/// record when space runs short. For a `Subject::Group` record it should
/// equal the subject's own group (the subject wins if they differ).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedEmission {
    /// The record as it will be sent.
    pub record: EmissionRecord,
    /// The group the record's subject belongs to.
    pub group: GroupKey,
}

/// The records of one collection cycle for one account and region.
///
/// Group records (`Subject::Group`) in a cycle describe resources that are
/// not also reported individually in it: coarsening adds per-resource
/// records to the group record of the same group and interval.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cycle {
    /// AWS account id, 12 ASCII digits.
    pub account_id: String,
    /// AWS region code, e.g. `eu-west-1`.
    pub region: String,
    /// When the cycle finished, Unix milliseconds (stamped on its batches).
    pub created_at_unix_ms: i64,
    /// Resource inventory records.
    pub resources: Vec<ResourceRecord>,
    /// Emission records with their groups.
    pub emissions: Vec<GroupedEmission>,
    /// The agent's health when the cycle finished; every batch of the cycle
    /// carries it (protocol v2), so the aggregator's fleet view shows it.
    pub agent_status: Option<AgentStatus>,
}

impl Cycle {
    /// Resource plus emission records.
    pub fn record_count(&self) -> usize {
        self.resources.len() + self.emissions.len()
    }
}
