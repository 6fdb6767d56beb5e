//! [`OutboxStore`] on redb.
//!
//! Two tables in one file: `frames` (sequence → frame bytes) and `meta`
//! (`outbox_id`, `next_sequence`). Each write is one write transaction
//! committed with `Durability::Immediate` (redb's default), which returns
//! after the data and the new root are fsynced.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{FrameIndexEntry, OutboxStore, StoreMeta, path_bytes};
use crate::error::StoreError;

const FRAMES: TableDefinition<u64, &[u8]> = TableDefinition::new("frames");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const OUTBOX_ID: &str = "outbox_id";
const NEXT_SEQUENCE: &str = "next_sequence";

/// The redb-backed store (file `<dir>/outbox.redb`).
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    fn err(&self, source: impl Into<redb::Error>) -> StoreError {
        StoreError::Redb {
            path: self.path.clone(),
            source: source.into(),
        }
    }
}

impl OutboxStore for RedbStore {
    const NAME: &'static str = "redb";

    fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("outbox.redb");
        if !path.exists() {
            create_atomically(dir, &path)?;
        }
        let db = Database::create(&path).map_err(|source| StoreError::Redb {
            path: path.clone(),
            source: source.into(),
        })?;
        let store = Self { db, path };
        // Create both tables so readers never meet a missing table.
        let txn = store.db.begin_write().map_err(|e| store.err(e))?;
        txn.open_table(FRAMES).map_err(|e| store.err(e))?;
        txn.open_table(META).map_err(|e| store.err(e))?;
        txn.commit().map_err(|e| store.err(e))?;
        Ok(store)
    }

    fn meta(&self) -> Result<Option<StoreMeta>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(META).map_err(|e| self.err(e))?;
        let id = table.get(OUTBOX_ID).map_err(|e| self.err(e))?;
        let next = table.get(NEXT_SEQUENCE).map_err(|e| self.err(e))?;
        match (id, next) {
            (Some(id), Some(next)) => Ok(Some(StoreMeta {
                outbox_id: id.value(),
                next_sequence: next.value(),
            })),
            (None, None) => Ok(None),
            _ => Err(StoreError::Corrupt {
                path: self.path.clone(),
                expected: "both outbox_id and next_sequence",
                found: "only one of them".into(),
            }),
        }
    }

    fn append(&self, frames: &[(u64, Vec<u8>)], meta: StoreMeta) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(FRAMES).map_err(|e| self.err(e))?;
            for (sequence, frame) in frames {
                table
                    .insert(*sequence, frame.as_slice())
                    .map_err(|e| self.err(e))?;
            }
            let mut m = txn.open_table(META).map_err(|e| self.err(e))?;
            m.insert(OUTBOX_ID, meta.outbox_id)
                .map_err(|e| self.err(e))?;
            m.insert(NEXT_SEQUENCE, meta.next_sequence)
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn remove(&self, sequences: &[u64]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(FRAMES).map_err(|e| self.err(e))?;
            for sequence in sequences {
                table.remove(*sequence).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn read_from(&self, from: u64, max_frames: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(FRAMES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table
            .range(from..)
            .map_err(|e| self.err(e))?
            .take(max_frames)
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn index(&self) -> Result<Vec<FrameIndexEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(FRAMES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push(FrameIndexEntry {
                sequence: k.value(),
                bytes: v.value().len() as u64,
            });
        }
        Ok(out)
    }

    fn disk_bytes(&self) -> Result<u64, StoreError> {
        path_bytes(&self.path)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every commit is already durable; an empty immediate commit makes
        // sure nothing is left from a non-durable one.
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }
}

/// Creates a new, empty outbox database as `path` without ever leaving a
/// half-written file under that name: it is built and committed under a
/// temporary name, synced, then renamed into place and the folder synced. A
/// process killed during creation leaves at most the temporary file, which
/// the next open replaces (found by the fault suite: kill -9 during the first
/// `Database::create` left a file redb could never open again).
fn create_atomically(dir: &Path, path: &Path) -> Result<(), StoreError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| StoreError::Io { path: p, source }
    };
    let tmp = dir.join("outbox.redb.creating");
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&tmp)(e)),
    }
    {
        let db = Database::create(&tmp).map_err(|source| StoreError::Redb { path: tmp.clone(), source: source.into() })?;
        let redb_err = |source: redb::Error| StoreError::Redb { path: tmp.clone(), source };
        let txn = db.begin_write().map_err(|e| redb_err(e.into()))?;
        txn.open_table(FRAMES).map_err(|e| redb_err(e.into()))?;
        txn.open_table(META).map_err(|e| redb_err(e.into()))?;
        txn.commit().map_err(|e| redb_err(e.into()))?;
    }
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))?;
    Ok(())
}
