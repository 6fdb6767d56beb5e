//! The batch envelope: one agent's report for one AWS account and region.

use std::fmt;

use crate::emission::EmissionRecord;
use crate::key::RecordKey;
use crate::resource::ResourceRecord;
use crate::status::AgentStatus;

/// 128 random bits chosen by the agent when it first builds a batch.
///
/// The aggregator stores it with the batch; a frame re-sent after a lost
/// acknowledgement carries the same key, so the aggregator acknowledges it
/// again as a duplicate instead of storing it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IdempotencyKey(pub [u8; 16]);

impl fmt::Display for IdempotencyKey {
    /// Lowercase hex, 32 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// One batch as the agent sends it and the aggregator stores it.
///
/// The protocol version is not a field: it is the frame header's version,
/// which says how the body was encoded. Every record in a batch belongs to
/// the envelope's `account_id` and `region`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Stable identifier of the sending agent (e.g. its enrolment id).
    pub agent_id: String,
    /// AWS account id, 12 ASCII digits.
    pub account_id: String,
    /// AWS region code, e.g. `eu-west-1`.
    pub region: String,
    /// Per-agent monotonic batch number; the acknowledgement names it.
    pub sequence: u64,
    /// Deduplication key, see [`IdempotencyKey`].
    pub idempotency_key: IdempotencyKey,
    /// When the agent built the batch, Unix milliseconds.
    pub created_at_unix_ms: i64,
    /// Inventory of resources seen.
    pub resources: Vec<ResourceRecord>,
    /// Emission estimates.
    pub emissions: Vec<EmissionRecord>,
    /// The agent's own health when it built the batch (protocol v2; `None`
    /// when decoded from a v1 frame or when the sender had none to report).
    pub agent_status: Option<AgentStatus>,
}

impl Batch {
    /// Total number of records (resources and emissions) in the batch.
    pub fn record_count(&self) -> usize {
        self.resources.len() + self.emissions.len()
    }

    /// The stable key of `record` within this batch's account and region.
    pub fn record_key(&self, record: &EmissionRecord) -> RecordKey {
        record.key(&self.account_id, &self.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_key_displays_as_32_hex_digits() {
        let mut bytes = [0u8; 16];
        bytes[0] = 0xab;
        bytes[15] = 0x01;
        let text = IdempotencyKey(bytes).to_string();
        assert_eq!(text, "ab000000000000000000000000000001");
    }
}
