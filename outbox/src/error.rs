//! Errors of the store layer and of the outbox.

use std::path::PathBuf;

use canopy_protocol::{EncodeError, IdempotencyKey, ValidationError};
use thiserror::Error;

/// A failure of the storage engine under an [`OutboxStore`](crate::OutboxStore).
#[derive(Debug, Error)]
pub enum StoreError {
    /// sled reported an error.
    #[error("sled outbox store at {path}: {source}")]
    Sled {
        /// The store's directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// redb reported an error.
    #[error("redb outbox store at {path}: {source}")]
    Redb {
        /// The store's file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: redb::Error,
    },
    /// A file-system operation failed.
    #[error("outbox store at {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes do not have the layout this crate writes.
    #[error("outbox store at {path}: expected {expected}, found {found}")]
    Corrupt {
        /// The store's path.
        path: PathBuf,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
}

/// Why an [`Outbox`](crate::Outbox) operation failed.
#[derive(Debug, Error)]
pub enum OutboxError {
    /// The storage engine failed; nothing of the operation is durable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cycle does not fit even after coarsening; it was not stored and
    /// the caller still owns it.
    #[error(
        "outbox full: expected at most {free_bytes} free bytes to be needed (cap {max_bytes}), found {needed_bytes} needed for {records} records after coarsening"
    )]
    Full {
        /// Bytes the coarsened cycle's frames need.
        needed_bytes: u64,
        /// Bytes left under the cap.
        free_bytes: u64,
        /// The cap.
        max_bytes: u64,
        /// Records (after coarsening) that did not fit.
        records: usize,
    },
    /// A batch built from the cycle fails the protocol's validation; the
    /// aggregator would reject it, so it is not stored.
    #[error("batch {sequence} is invalid: {source}")]
    Invalid {
        /// The sequence the batch would have had.
        sequence: u64,
        /// The first problem found.
        #[source]
        source: ValidationError,
    },
    /// A batch could not be encoded.
    #[error("batch {sequence} cannot be encoded: {source}")]
    Encode {
        /// The sequence the batch would have had.
        sequence: u64,
        /// The encoder's error.
        #[source]
        source: EncodeError,
    },
    /// An acknowledgement names a pending sequence with a different
    /// idempotency key: it is for another outbox, so nothing is deleted.
    #[error("ack for batch {sequence}: expected idempotency key {expected}, found {found}")]
    AckKeyMismatch {
        /// The acknowledged sequence.
        sequence: u64,
        /// The key of the pending batch with that sequence.
        expected: IdempotencyKey,
        /// The key in the acknowledgement.
        found: IdempotencyKey,
    },
    /// The operating system could not supply random bytes for a new outbox id.
    #[error("cannot draw a random outbox id: {0}")]
    Random(String),
    /// The configuration cannot work.
    #[error("outbox config {field}: expected {expected}, found {found}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
}

impl OutboxError {
    /// True when the same call may succeed later without any change by the
    /// caller: storage errors (a full or flaky disk) and a full outbox
    /// (acknowledgements free space). Invalid batches, encoding failures,
    /// mismatched acks and bad configs never succeed on retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            OutboxError::Store(_) | OutboxError::Full { .. } | OutboxError::Random(_) => true,
            OutboxError::Invalid { .. }
            | OutboxError::Encode { .. }
            | OutboxError::AckKeyMismatch { .. }
            | OutboxError::Config { .. } => false,
        }
    }
}
