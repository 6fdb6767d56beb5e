//! The agent's durable outbox.
//!
//! Every collection cycle's records are grouped into batches, encoded as
//! checksummed, LZ4-compressed protocol frames ([`canopy_protocol::encode_batch`])
//! with strictly increasing sequence numbers, and written to local disk with
//! an fsync before [`Outbox::append`] returns. A batch leaves the outbox only
//! when the aggregator's [`Ack`](canopy_protocol::Ack) for it arrives
//! ([`Outbox::ack`]); until then [`Outbox::pending`] hands it out again, in
//! sequence order, as often as needed (after a reconnect, after days of
//! outage, after a crash).
//!
//! - Storage sits behind the [`OutboxStore`] trait with two implementations:
//!   [`RedbStore`] (the default, see `README.md` for the measurements behind
//!   that choice) and [`SledStore`].
//! - The outbox is bounded ([`OutboxConfig::max_bytes`], 1 GiB by default).
//!   When a cycle does not fit, its per-resource records are coarsened into
//!   group records with the same totals ([`coarsen`]); if even that does not
//!   fit, the cycle is refused with [`OutboxError::Full`] and the caller keeps
//!   it. Everything coarsened, shed or refused is counted in
//!   [`OutboxMetrics`] and logged.
//! - [`send_pending`] is the loop that ships pending frames through the
//!   caller's transport until they are acknowledged (backoff with jitter,
//!   permanently refused frames kept but not resent).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod coarsen;
mod config;
mod cycle;
mod error;
mod idempotency;
mod metrics;
mod outbox;
pub mod sample;
pub mod sender;
mod store;

pub use coarsen::{CoarsenReport, coarsen};
pub use config::OutboxConfig;
pub use cycle::{Cycle, GroupedEmission};
pub use error::{OutboxError, StoreError};
pub use idempotency::idempotency_key;
pub use metrics::OutboxMetrics;
pub use outbox::{AckOutcome, Appended, Outbox, OutboxStats, PendingFrame};
pub use sender::{SenderConfig, SenderControl, SenderError, SenderStats, send_pending};
pub use store::{FrameIndexEntry, OutboxStore, RedbStore, SledStore, StoreMeta};

/// The store the agent uses unless told otherwise.
pub type DefaultStore = RedbStore;
