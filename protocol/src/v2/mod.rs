//! Protocol version 2 wire types. FROZEN: once released, nothing in this
//! module's types may change (field order, types, enum variant order), since
//! postcard encodes by position. A change means a new version module.
//!
//! v2 = v1 plus two additions, appended so every v1 part keeps its layout:
//! - each resource record ends with its `attributes` ((name, value) string
//!   indices in ascending name order), after v1's `last_seen_unix_s`;
//! - the batch ends with an optional [`AgentStatusV2`], after `emissions`.
//!
//! Everything v2 did not change is v1's frozen type, reused as is (postcard
//! writes a nested struct as its fields in order, so [`ResourceV2`] is
//! exactly v1's resource fields followed by `attributes`). Replies are v1's.

mod bounded;
mod from_wire;
mod to_wire;

use serde::{Deserialize, Serialize};

use crate::v1::{EmissionV1, ResourceV1, StrIdx};

pub(crate) use bounded::parse_batch;
pub(crate) use from_wire::batch_from_wire;
pub(crate) use to_wire::batch_to_wire;

/// A v2 batch body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BatchV2<'a> {
    #[serde(borrow)]
    pub agent_id: &'a str,
    #[serde(borrow)]
    pub account_id: &'a str,
    #[serde(borrow)]
    pub region: &'a str,
    pub sequence: u64,
    pub idempotency_key: [u8; 16],
    pub created_at_unix_ms: i64,
    #[serde(borrow)]
    pub strings: Vec<&'a str>,
    pub resources: Vec<ResourceV2>,
    pub emissions: Vec<EmissionV1>,
    #[serde(borrow)]
    pub agent_status: Option<AgentStatusV2<'a>>,
}

/// A v2 resource record: v1's fields, then the attributes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResourceV2 {
    pub v1: ResourceV1,
    /// (name, value) pairs in ascending name order.
    pub attributes: Vec<(StrIdx, StrIdx)>,
}

/// A v2 agent status.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AgentStatusV2<'a> {
    #[serde(borrow)]
    pub agent_version: &'a str,
    pub outbox_backlog_frames: u64,
    pub outbox_backlog_bytes: u64,
    pub records_shed_total: u64,
    pub collection_errors_total: u64,
    pub send_failures_total: u64,
    pub taken_at_unix_ms: i64,
}
