//! The storage engine under the outbox, behind one small trait.

mod redb_store;
mod sled_store;

use std::path::Path;

pub use redb_store::RedbStore;
pub use sled_store::SledStore;

use crate::error::StoreError;

/// What the outbox keeps beside its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreMeta {
    /// 64 random bits naming this outbox (part of every idempotency key).
    pub outbox_id: u64,
    /// The sequence the next batch gets; above every sequence ever stored.
    pub next_sequence: u64,
}

/// One stored frame's sequence and length, as listed on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameIndexEntry {
    /// The batch's sequence.
    pub sequence: u64,
    /// The frame's length in bytes.
    pub bytes: u64,
}

/// A durable map from sequence to frame bytes, plus [`StoreMeta`].
///
/// Every write method is atomic (all of it or none of it survives a crash)
/// and durable when it returns (flushed to stable storage).
pub trait OutboxStore: Sized + Send + Sync {
    /// Short name for logs and benchmarks, e.g. `redb`.
    const NAME: &'static str;

    /// Opens the store kept in directory `dir`, creating it if missing.
    /// Opening after a crash recovers the last durable state.
    fn open(dir: &Path) -> Result<Self, StoreError>;

    /// The stored metadata, `None` for a new store.
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError>;

    /// Stores `frames` (sequence, bytes) and `meta` in one atomic, durable
    /// write. A sequence already present is overwritten.
    fn append(&self, frames: &[(u64, Vec<u8>)], meta: StoreMeta) -> Result<(), StoreError>;

    /// Removes the frames with `sequences` (absent ones are ignored) in one
    /// atomic, durable write.
    fn remove(&self, sequences: &[u64]) -> Result<(), StoreError>;

    /// Up to `max_frames` frames with sequence >= `from`, in sequence order.
    fn read_from(&self, from: u64, max_frames: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Every stored frame's sequence and length, in sequence order.
    fn index(&self) -> Result<Vec<FrameIndexEntry>, StoreError>;

    /// Bytes the store occupies on disk.
    fn disk_bytes(&self) -> Result<u64, StoreError>;

    /// Flushes anything buffered to stable storage.
    fn flush(&self) -> Result<(), StoreError>;
}

/// Size of a file, or the sum over a directory tree.
pub(crate) fn path_bytes(path: &Path) -> Result<u64, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(io)? {
        total += path_bytes(&entry.map_err(io)?.path())?;
    }
    Ok(total)
}
