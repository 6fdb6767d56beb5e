//! [`OutboxStore`] on sled 0.34.
//!
//! One tree holds everything so that an append (frames + metadata) is one
//! atomic `apply_batch`: frames under `b'f'` + big-endian sequence, the
//! metadata under `b"m"` (outbox id and next sequence, 16 bytes).
//!
//! Durability: on Linux, sled 0.34's `Db::flush` writes its log with
//! `pwrite` + `sync_file_range` and leaves the real `fsync` to a background
//! thread every 500 ms (`strace` of the crash writer: 1,365
//! `sync_file_range` calls and 7 `fsync`s in 3 s). `sync_file_range`
//! flushes neither the file's metadata (its size, as the log grows) nor
//! the drive's write cache, so after a power cut the last half second of
//! "flushed" writes can be gone. A kill -9 cannot show this (the page
//! cache survives the process); a power cut would. This store therefore
//! follows every `Db::flush` with `fsync` on sled's log file (`<dir>/sled/db`,
//! through its own read-only handle: `fsync` applies to the file, whichever
//! descriptor asks).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{FrameIndexEntry, OutboxStore, StoreMeta, path_bytes};
use crate::error::StoreError;

const FRAME_PREFIX: u8 = b'f';
const META_KEY: &[u8] = b"m";

/// The sled-backed store (directory `<dir>/sled`).
pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
    /// sled's log file, for the `fsync` sled itself does not do on flush.
    log: File,
}

fn frame_key(sequence: u64) -> [u8; 9] {
    let mut key = [FRAME_PREFIX; 9];
    key[1..].copy_from_slice(&sequence.to_be_bytes());
    key
}

impl SledStore {
    fn err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, expected: &'static str, found: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            expected,
            found,
        }
    }

    fn sequence_of(&self, key: &[u8]) -> Result<u64, StoreError> {
        match key {
            [FRAME_PREFIX, rest @ ..] if rest.len() == 8 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(rest);
                Ok(u64::from_be_bytes(be))
            }
            other => Err(self.corrupt("a 9-byte frame key", format!("{other:?}"))),
        }
    }

    fn frames_from(&self, from: u64) -> sled::Iter {
        self.db.range(frame_key(from)..=frame_key(u64::MAX))
    }

    fn durable(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.err(e))?;
        self.log.sync_all().map_err(|source| StoreError::Io {
            path: self.path.join("db"),
            source,
        })
    }
}

/// How long [`open_db`] waits for a previous handle's file lock.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens the database, waiting while a handle dropped in this process
/// still holds the file lock: sled releases it when its background
/// flusher thread lets go of the last reference, which can be a moment
/// after `Db` is dropped.
fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let started = Instant::now();
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(source) => {
                return Err(StoreError::Sled {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

impl OutboxStore for SledStore {
    const NAME: &'static str = "sled";

    fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("sled");
        let db = open_db(&path)?;
        let log_path = path.join("db");
        let log = File::open(&log_path).map_err(|source| StoreError::Io {
            path: log_path,
            source,
        })?;
        Ok(Self { db, path, log })
    }

    fn meta(&self) -> Result<Option<StoreMeta>, StoreError> {
        let Some(raw) = self.db.get(META_KEY).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let bytes: [u8; 16] = raw
            .as_ref()
            .try_into()
            .map_err(|_| self.corrupt("16 metadata bytes", format!("{} bytes", raw.len())))?;
        let (id, next) = bytes.split_at(8);
        Ok(Some(StoreMeta {
            outbox_id: u64::from_be_bytes(id.try_into().unwrap_or_default()),
            next_sequence: u64::from_be_bytes(next.try_into().unwrap_or_default()),
        }))
    }

    fn append(&self, frames: &[(u64, Vec<u8>)], meta: StoreMeta) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (sequence, frame) in frames {
            batch.insert(&frame_key(*sequence), frame.as_slice());
        }
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&meta.outbox_id.to_be_bytes());
        raw[8..].copy_from_slice(&meta.next_sequence.to_be_bytes());
        batch.insert(META_KEY, &raw);
        self.db.apply_batch(batch).map_err(|e| self.err(e))?;
        self.durable()
    }

    fn remove(&self, sequences: &[u64]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for sequence in sequences {
            batch.remove(&frame_key(*sequence));
        }
        self.db.apply_batch(batch).map_err(|e| self.err(e))?;
        self.durable()
    }

    fn read_from(&self, from: u64, max_frames: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.frames_from(from).take(max_frames) {
            let (key, value) = item.map_err(|e| self.err(e))?;
            out.push((self.sequence_of(&key)?, value.to_vec()));
        }
        Ok(out)
    }

    fn index(&self) -> Result<Vec<FrameIndexEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.frames_from(0) {
            let (key, value) = item.map_err(|e| self.err(e))?;
            out.push(FrameIndexEntry {
                sequence: self.sequence_of(&key)?,
                bytes: value.len() as u64,
            });
        }
        Ok(out)
    }

    fn disk_bytes(&self) -> Result<u64, StoreError> {
        path_bytes(&self.path)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.durable()
    }
}
