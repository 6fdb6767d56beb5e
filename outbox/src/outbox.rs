//! The outbox: batching, sequencing, the byte cap, and ack-driven removal.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use canopy_protocol::{Ack, Batch, DecodeLimits, EncodeError, IdempotencyKey, encode_batch};
use tracing::{error, info, warn};

use crate::DefaultStore;
use crate::coarsen::{CoarsenReport, coarsen};
use crate::config::OutboxConfig;
use crate::cycle::Cycle;
use crate::error::OutboxError;
use crate::idempotency::idempotency_key;
use crate::metrics::OutboxMetrics;
use crate::store::{OutboxStore, StoreMeta};

/// A durable, bounded queue of encoded batches, oldest first.
///
/// All methods take `&self`; appends and acks are serialised internally.
/// They block on disk I/O (an fsync per call): call them from a blocking
/// thread, not an async worker.
pub struct Outbox<S: OutboxStore = DefaultStore> {
    store: S,
    config: OutboxConfig,
    limits: DecodeLimits,
    outbox_id: u64,
    state: Mutex<State>,
    metrics: Arc<OutboxMetrics>,
}

struct State {
    next_sequence: u64,
    /// Pending sequence → frame bytes.
    index: BTreeMap<u64, u64>,
    pending_bytes: u64,
}

/// What [`Outbox::append`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Sequences of the new batches, ascending; durable on disk.
    pub sequences: Vec<u64>,
    /// Frame bytes written.
    pub bytes: u64,
    /// Records stored (after coarsening, if any).
    pub records: usize,
    /// Set when the cycle had to be coarsened to fit.
    pub coarsened: Option<CoarsenReport>,
}

/// One stored batch, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFrame {
    /// The batch's sequence.
    pub sequence: u64,
    /// The batch's idempotency key (also inside the frame).
    pub idempotency_key: IdempotencyKey,
    /// The encoded, checksummed frame exactly as stored.
    pub frame: Vec<u8>,
}

/// What [`Outbox::ack_all`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckOutcome {
    /// Batches removed.
    pub removed_batches: usize,
    /// Frame bytes freed.
    pub removed_bytes: u64,
    /// Acks for sequences that were not pending (already removed).
    pub not_pending: usize,
}

/// A snapshot of the outbox's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStats {
    /// Batches waiting for an acknowledgement.
    pub pending_batches: usize,
    /// Their frame bytes (what the cap counts).
    pub pending_bytes: u64,
    /// The cap.
    pub max_bytes: u64,
    /// Oldest pending sequence.
    pub oldest_sequence: Option<u64>,
    /// The sequence the next batch gets.
    pub next_sequence: u64,
    /// This outbox's id (first half of every idempotency key).
    pub outbox_id: u64,
}

impl<S: OutboxStore> Outbox<S> {
    /// Opens (or creates) the outbox in directory `dir`.
    ///
    /// A new outbox draws a random id and starts at
    /// [`OutboxConfig::first_sequence`]; an existing one continues after the
    /// highest sequence it ever stored, even if all were acknowledged.
    pub fn open(dir: &Path, config: OutboxConfig) -> Result<Self, OutboxError> {
        if config.max_records_per_batch == 0 {
            return Err(OutboxError::Config {
                field: "max_records_per_batch",
                expected: "at least 1",
                found: "0".into(),
            });
        }
        if config.agent_id.is_empty() {
            return Err(OutboxError::Config {
                field: "agent_id",
                expected: "a non-empty id",
                found: "an empty string".into(),
            });
        }
        let store = S::open(dir)?;
        let meta = match store.meta()? {
            Some(meta) => meta,
            None => {
                let meta = StoreMeta {
                    outbox_id: random_id()?,
                    next_sequence: config.first_sequence.unwrap_or_else(now_unix_us),
                };
                store.append(&[], meta)?;
                info!(
                    store = S::NAME,
                    outbox_id = meta.outbox_id,
                    first_sequence = meta.next_sequence,
                    "outbox created"
                );
                meta
            }
        };
        let mut index = BTreeMap::new();
        let mut pending_bytes = 0;
        for entry in store.index()? {
            index.insert(entry.sequence, entry.bytes);
            pending_bytes += entry.bytes;
        }
        let mut next_sequence = meta.next_sequence;
        if let Some((&last, _)) = index.last_key_value()
            && last >= next_sequence
        {
            warn!(
                store = S::NAME,
                last,
                next_sequence,
                "stored frame above the recorded next sequence; continuing after it"
            );
            next_sequence = last + 1;
        }
        Ok(Self {
            store,
            config,
            limits: DecodeLimits::default(),
            outbox_id: meta.outbox_id,
            state: Mutex::new(State {
                next_sequence,
                index,
                pending_bytes,
            }),
            metrics: Arc::new(OutboxMetrics::default()),
        })
    }

    /// Stores `cycle` as one or more batches and returns once they are on
    /// stable storage.
    ///
    /// When the frames do not fit under the cap, the cycle is coarsened
    /// ([`coarsen`]) and stored that way; when even that does not fit,
    /// nothing is stored and [`OutboxError::Full`] is returned. Every batch
    /// is validated first; an invalid one fails the whole cycle.
    pub fn append(&self, cycle: &Cycle) -> Result<Appended, OutboxError> {
        let mut state = self.lock();
        if cycle.record_count() == 0 {
            return Ok(Appended {
                sequences: Vec::new(),
                bytes: 0,
                records: 0,
                coarsened: None,
            });
        }
        let free_bytes = self.config.max_bytes.saturating_sub(state.pending_bytes);
        let mut frames = self.encode(cycle, state.next_sequence)?;
        let mut bytes = frame_bytes(&frames);
        let mut records = cycle.record_count();
        let mut coarsened = None;
        if bytes > free_bytes {
            let (coarse, report) = coarsen(cycle);
            let coarse_frames = self.encode(&coarse, state.next_sequence)?;
            let coarse_bytes = frame_bytes(&coarse_frames);
            if coarse_bytes > free_bytes {
                OutboxMetrics::add(&self.metrics.refused_cycles, 1);
                OutboxMetrics::add(&self.metrics.refused_records, cycle.record_count() as u64);
                error!(
                    store = S::NAME,
                    records = cycle.record_count(),
                    coarsened_records = coarse.record_count(),
                    needed_bytes = coarse_bytes,
                    free_bytes,
                    max_bytes = self.config.max_bytes,
                    "outbox full: cycle refused even after coarsening; the caller keeps it"
                );
                return Err(OutboxError::Full {
                    needed_bytes: coarse_bytes,
                    free_bytes,
                    max_bytes: self.config.max_bytes,
                    records: coarse.record_count(),
                });
            }
            OutboxMetrics::add(&self.metrics.coarsened_cycles, 1);
            OutboxMetrics::add(
                &self.metrics.coarsened_records,
                report.coarsened_records as u64,
            );
            OutboxMetrics::add(
                &self.metrics.shed_resource_records,
                report.shed_resource_records as u64,
            );
            warn!(
                store = S::NAME,
                coarsened_records = report.coarsened_records,
                group_records_built = report.group_records_built,
                shed_resource_records = report.shed_resource_records,
                fine_bytes = bytes,
                coarse_bytes,
                free_bytes,
                "outbox nearly full: per-resource records coarsened into group records, totals kept"
            );
            frames = coarse_frames;
            bytes = coarse_bytes;
            records = coarse.record_count();
            coarsened = Some(report);
        }
        let after_last = state.next_sequence + frames.len() as u64;
        let meta = StoreMeta {
            outbox_id: self.outbox_id,
            next_sequence: after_last,
        };
        // Whatever the outcome, these sequences are never handed out again:
        // a failed write may still have reached the disk.
        state.next_sequence = after_last;
        self.store.append(&frames, meta)?;
        let sequences: Vec<u64> = frames.iter().map(|(s, _)| *s).collect();
        for (sequence, frame) in &frames {
            state.index.insert(*sequence, frame.len() as u64);
        }
        state.pending_bytes += bytes;
        OutboxMetrics::add(&self.metrics.appended_batches, frames.len() as u64);
        OutboxMetrics::add(&self.metrics.appended_records, records as u64);
        OutboxMetrics::add(&self.metrics.appended_bytes, bytes);
        Ok(Appended {
            sequences,
            bytes,
            records,
            coarsened,
        })
    }

    /// Up to `max_frames` pending batches with sequence >= `from`, oldest
    /// first. Pass the last sequence sent + 1 to page on, or 0 to start
    /// over after a reconnect.
    pub fn pending(&self, from: u64, max_frames: usize) -> Result<Vec<PendingFrame>, OutboxError> {
        Ok(self
            .store
            .read_from(from, max_frames)?
            .into_iter()
            .map(|(sequence, frame)| PendingFrame {
                sequence,
                idempotency_key: idempotency_key(self.outbox_id, sequence),
                frame,
            })
            .collect())
    }

    /// Removes the acknowledged batch; see [`ack_all`](Self::ack_all).
    pub fn ack(&self, ack: &Ack) -> Result<AckOutcome, OutboxError> {
        self.ack_all(std::slice::from_ref(ack))
    }

    /// Removes every acknowledged batch in one durable write. Acks may come
    /// in any order; an ack for a sequence no longer pending is counted and
    /// ignored. An ack whose idempotency key is not this outbox's key for
    /// its sequence fails the call before anything is removed.
    pub fn ack_all(&self, acks: &[Ack]) -> Result<AckOutcome, OutboxError> {
        for ack in acks {
            let expected = idempotency_key(self.outbox_id, ack.sequence);
            if ack.idempotency_key != expected {
                return Err(OutboxError::AckKeyMismatch {
                    sequence: ack.sequence,
                    expected,
                    found: ack.idempotency_key,
                });
            }
        }
        let mut state = self.lock();
        let mut remove: Vec<u64> = acks
            .iter()
            .map(|a| a.sequence)
            .filter(|s| state.index.contains_key(s))
            .collect();
        remove.sort_unstable();
        remove.dedup();
        let mut outcome = AckOutcome {
            not_pending: acks.len() - remove.len(),
            ..AckOutcome::default()
        };
        if !remove.is_empty() {
            self.store.remove(&remove)?;
        }
        for sequence in &remove {
            outcome.removed_bytes += state.index.remove(sequence).unwrap_or(0);
        }
        outcome.removed_batches = remove.len();
        state.pending_bytes -= outcome.removed_bytes;
        OutboxMetrics::add(&self.metrics.acked_batches, outcome.removed_batches as u64);
        OutboxMetrics::add(&self.metrics.acked_bytes, outcome.removed_bytes);
        OutboxMetrics::add(&self.metrics.acks_not_pending, outcome.not_pending as u64);
        Ok(outcome)
    }

    /// Current size and sequence position.
    pub fn stats(&self) -> OutboxStats {
        let state = self.lock();
        OutboxStats {
            pending_batches: state.index.len(),
            pending_bytes: state.pending_bytes,
            max_bytes: self.config.max_bytes,
            oldest_sequence: state.index.keys().next().copied(),
            next_sequence: state.next_sequence,
            outbox_id: self.outbox_id,
        }
    }

    /// The idempotency key this outbox gives batch `sequence`.
    pub fn idempotency_key(&self, sequence: u64) -> IdempotencyKey {
        idempotency_key(self.outbox_id, sequence)
    }

    /// The outbox's counters (shared; clone the `Arc` to export them).
    pub fn metrics(&self) -> Arc<OutboxMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The settings the outbox was opened with.
    pub fn config(&self) -> &OutboxConfig {
        &self.config
    }

    /// Bytes the store occupies on disk (more than
    /// [`OutboxStats::pending_bytes`]: engine overhead and free pages).
    pub fn disk_bytes(&self) -> Result<u64, OutboxError> {
        Ok(self.store.disk_bytes()?)
    }

    /// Flushes the store (every append and ack already is durable; this is
    /// for an orderly shutdown).
    pub fn flush(&self) -> Result<(), OutboxError> {
        Ok(self.store.flush()?)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent with
        // the store at worst conservatively (sequences advanced), so the
        // poison flag carries no information here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Splits `cycle` into batches numbered from `first`, validates and
    /// encodes them.
    fn encode(&self, cycle: &Cycle, first: u64) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        let per_batch = self.config.max_records_per_batch;
        let total = cycle.record_count();
        let mut frames = Vec::with_capacity(total.div_ceil(per_batch));
        let mut start = 0;
        while start < total {
            let end = (start + per_batch).min(total);
            let sequence = first + frames.len() as u64;
            let n_res = cycle.resources.len();
            let batch = Batch {
                agent_id: self.config.agent_id.clone(),
                account_id: cycle.account_id.clone(),
                region: cycle.region.clone(),
                sequence,
                idempotency_key: idempotency_key(self.outbox_id, sequence),
                created_at_unix_ms: cycle.created_at_unix_ms,
                resources: cycle.resources[start.min(n_res)..end.min(n_res)].to_vec(),
                emissions: cycle.emissions[start.max(n_res) - n_res..end.max(n_res) - n_res]
                    .iter()
                    .map(|e| e.record.clone())
                    .collect(),
                agent_status: cycle.agent_status.clone(),
            };
            batch
                .validate(&self.limits)
                .map_err(|source| OutboxError::Invalid { sequence, source })?;
            let frame = encode_batch(&batch, self.config.compression)
                .map_err(|source| OutboxError::Encode { sequence, source })?;
            if frame.len() > self.limits.max_frame_bytes {
                return Err(OutboxError::Encode {
                    sequence,
                    source: EncodeError::TooLarge {
                        what: "frame bytes",
                        max: self.limits.max_frame_bytes as u64,
                        found: frame.len() as u64,
                    },
                });
            }
            frames.push((sequence, frame));
            start = end;
        }
        Ok(frames)
    }
}

fn frame_bytes(frames: &[(u64, Vec<u8>)]) -> u64 {
    frames.iter().map(|(_, f)| f.len() as u64).sum()
}

fn random_id() -> Result<u64, OutboxError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| OutboxError::Random(e.to_string()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn now_unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
