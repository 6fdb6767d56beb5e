//! [`OutboxStore`] on redb.
//!
//! Two tables in one file: `frames` (sequence → frame bytes) and `meta`
//! (`outbox_id`, `next_sequence`). Each write is one write transaction
//! committed with `Durability::Immediate` (redb's default), which returns
//! after the data and the new root are fsynced.
//!
//! After a failed write (a full disk: ENOSPC) redb fails every later call
//! with "previous I/O error" until the file is opened again. The store
//! therefore drops its handle after an I/O failure and reopens the file on
//! the next call, which recovers the last committed state; once the disk has
//! space again (acknowledged batches removed, files deleted) the outbox
//! works without restarting the agent (found by the fault suite, scenario f).
//!
//! redb writes copy-on-write, so even deleting acknowledged frames needs free
//! pages: on a full disk the outbox could never drain. The store keeps a
//! ballast file of [`BALLAST_BYTES`] beside the database; when a removal
//! fails, the ballast is deleted and the removal retried, and the ballast is
//! written again after a later successful removal.

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tracing::warn;

use super::{FrameIndexEntry, OutboxStore, StoreMeta, path_bytes};
use crate::error::StoreError;

const FRAMES: TableDefinition<u64, &[u8]> = TableDefinition::new("frames");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const OUTBOX_ID: &str = "outbox_id";
const NEXT_SEQUENCE: &str = "next_sequence";

/// Size of the ballast file `<dir>/outbox.ballast`: space held back so
/// acknowledged frames can be removed on a full disk.
pub const BALLAST_BYTES: u64 = 1024 * 1024;

/// The redb-backed store (file `<dir>/outbox.redb`).
pub struct RedbStore {
    /// `None` after an I/O failure, until the next call reopens the file.
    db: RwLock<Option<Database>>,
    path: PathBuf,
}

/// True for the errors after which redb needs the file reopened.
fn is_io_failure(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
}

impl RedbStore {
    fn err(&self, source: impl Into<redb::Error>) -> StoreError {
        StoreError::Redb {
            path: self.path.clone(),
            source: source.into(),
        }
    }

    /// The open database, reopening the file first when an I/O failure
    /// closed it.
    fn open_db(&self) -> Result<RwLockReadGuard<'_, Option<Database>>, StoreError> {
        {
            let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
            if guard.is_some() {
                return Ok(guard);
            }
        }
        {
            let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                let db = Database::create(&self.path).map_err(|e| self.err(e))?;
                warn!(path = %self.path.display(), "outbox store reopened after an I/O failure");
                *slot = Some(db);
            }
        }
        Ok(self.db.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn ballast_path(&self) -> PathBuf {
        self.path.with_extension("ballast")
    }

    /// Writes the ballast file when it is missing (best effort: on a full
    /// disk the partial file is removed and the next removal tries again).
    fn ensure_ballast(&self) {
        use std::io::Write;
        let path = self.ballast_path();
        if path.exists() {
            return;
        }
        let written = std::fs::File::create(&path).and_then(|mut f| {
            f.write_all(&vec![0u8; BALLAST_BYTES as usize])?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            warn!(path = %path.display(), error = %e, "outbox ballast file cannot be written yet");
        }
    }

    /// Deletes the ballast file; true when there was one.
    fn release_ballast(&self) -> bool {
        let released = std::fs::remove_file(self.ballast_path()).is_ok();
        if released {
            warn!(path = %self.path.display(), ballast_bytes = BALLAST_BYTES, "outbox removal failed; ballast released to free space");
        }
        released
    }

    /// Runs `op` on the database. An I/O failure closes the handle (redb
    /// refuses every later call on it), so the next call reopens the file.
    fn with_db<T>(&self, op: impl FnOnce(&Database) -> Result<T, redb::Error>) -> Result<T, StoreError> {
        let guard = self.open_db()?;
        // Closed again by another thread's failure in between: report it
        // like any I/O failure (the caller retries).
        let Some(db) = guard.as_ref() else {
            return Err(self.err(redb::Error::DatabaseClosed));
        };
        match op(db) {
            Ok(value) => Ok(value),
            Err(e) => {
                if is_io_failure(&e) {
                    drop(guard);
                    let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
                    *slot = None;
                    warn!(path = %self.path.display(), error = %e, "outbox store I/O failed; it is reopened on the next call");
                }
                Err(self.err(e))
            }
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
        let store = Self {
            db: RwLock::new(Some(db)),
            path,
        };
        store.ensure_ballast();
        // Create both tables so readers never meet a missing table.
        store.with_db(|db| {
            let txn = db.begin_write()?;
            txn.open_table(FRAMES)?;
            txn.open_table(META)?;
            txn.commit()?;
            Ok(())
        })?;
        Ok(store)
    }

    fn meta(&self) -> Result<Option<StoreMeta>, StoreError> {
        let (id, next) = self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(META)?;
            let id = table.get(OUTBOX_ID)?.map(|v| v.value());
            let next = table.get(NEXT_SEQUENCE)?.map(|v| v.value());
            Ok((id, next))
        })?;
        match (id, next) {
            (Some(id), Some(next)) => Ok(Some(StoreMeta {
                outbox_id: id,
                next_sequence: next,
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
        self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(FRAMES)?;
                for (sequence, frame) in frames {
                    table.insert(*sequence, frame.as_slice())?;
                }
                let mut m = txn.open_table(META)?;
                m.insert(OUTBOX_ID, meta.outbox_id)?;
                m.insert(NEXT_SEQUENCE, meta.next_sequence)?;
            }
            txn.commit()?;
            Ok(())
        })
    }

    fn remove(&self, sequences: &[u64]) -> Result<(), StoreError> {
        let remove = |db: &Database| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(FRAMES)?;
                for sequence in sequences {
                    table.remove(*sequence)?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        match self.with_db(remove) {
            Err(e) if self.release_ballast() => {
                warn!(path = %self.path.display(), error = %e, "retrying the removal with the ballast's space");
                self.with_db(remove)?;
            }
            other => other?,
        }
        self.ensure_ballast();
        Ok(())
    }

    fn read_from(&self, from: u64, max_frames: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(FRAMES)?;
            let mut out = Vec::new();
            for item in table.range(from..)?.take(max_frames) {
                let (k, v) = item?;
                out.push((k.value(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    fn index(&self) -> Result<Vec<FrameIndexEntry>, StoreError> {
        self.with_db(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(FRAMES)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                out.push(FrameIndexEntry {
                    sequence: k.value(),
                    bytes: v.value().len() as u64,
                });
            }
            Ok(out)
        })
    }

    fn disk_bytes(&self) -> Result<u64, StoreError> {
        path_bytes(&self.path)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every commit is already durable; an empty immediate commit makes
        // sure nothing is left from a non-durable one.
        self.with_db(|db| {
            db.begin_write()?.commit()?;
            Ok(())
        })
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
