//! Outbox settings.

use canopy_protocol::Compression;

/// How an [`Outbox`](crate::Outbox) batches, compresses and bounds its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// The agent's stable id, written into every batch envelope.
    pub agent_id: String,
    /// Most bytes of pending frames the outbox holds (the byte cap).
    pub max_bytes: u64,
    /// Most records (resources + emissions) per batch.
    pub max_records_per_batch: usize,
    /// Frame body compression.
    pub compression: Compression,
    /// Sequence of the first batch of a newly created outbox; `None` takes
    /// the current time in Unix microseconds, so an outbox re-created after
    /// its disk was wiped still numbers above everything it sent before.
    /// Ignored when the outbox already exists.
    pub first_sequence: Option<u64>,
}

impl OutboxConfig {
    /// Default [`max_bytes`](Self::max_bytes): 1 GiB.
    pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
    /// Default [`max_records_per_batch`](Self::max_records_per_batch).
    pub const DEFAULT_MAX_RECORDS_PER_BATCH: usize = 1_000;

    /// Defaults for the agent `agent_id`: 1 GiB cap, 1,000 records per
    /// batch, LZ4, time-based first sequence.
    pub fn new(agent_id: impl Into<String>) -> Self {
        Self {
            agent_id: agent_id.into(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_records_per_batch: Self::DEFAULT_MAX_RECORDS_PER_BATCH,
            compression: Compression::Lz4,
            first_sequence: None,
        }
    }
}
