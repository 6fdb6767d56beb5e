//! The agent's own health, carried by a batch for the fleet view.

/// A snapshot of one agent's health, taken when it built a batch.
///
/// Counters count since the agent process started, so a restart resets them;
/// the aggregator keeps the snapshot with the newest `taken_at_unix_ms` per
/// agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentStatus {
    /// The agent's version, e.g. `0.1.0`.
    pub agent_version: String,
    /// Batches in the agent's outbox not yet acknowledged.
    pub outbox_backlog_frames: u64,
    /// Bytes of those batches.
    pub outbox_backlog_bytes: u64,
    /// Records the outbox shed or coarsened away to stay under its byte cap.
    pub records_shed_total: u64,
    /// Collection errors (AWS API operations that failed after all retries).
    pub collection_errors_total: u64,
    /// Batch sends that failed (connection trouble, refusals, timeouts).
    pub send_failures_total: u64,
    /// When the snapshot was taken, Unix milliseconds.
    pub taken_at_unix_ms: i64,
}
