//! Shared helpers.

use std::path::Path;

use canopy_outbox::{Outbox, OutboxConfig, OutboxStore};
use canopy_protocol::{Ack, Batch, DecodeLimits, decode_batch};

/// Runs `$body` as a generic function for both stores.
#[macro_export]
macro_rules! for_both_stores {
    ($name:ident) => {
        mod $name {
            #[test]
            fn redb() {
                super::$name::<canopy_outbox::RedbStore>();
            }
            #[test]
            fn sled() {
                super::$name::<canopy_outbox::SledStore>();
            }
        }
    };
}

/// A config with small batches and a fixed first sequence.
pub fn config(per_batch: usize) -> OutboxConfig {
    let mut c = OutboxConfig::new("test-agent");
    c.max_records_per_batch = per_batch;
    c.first_sequence = Some(1);
    c
}

pub fn open<S: OutboxStore>(dir: &Path, config: OutboxConfig) -> Outbox<S> {
    Outbox::<S>::open(dir, config).expect("open outbox")
}

/// Every pending frame, decoded, oldest first.
pub fn pending_batches<S: OutboxStore>(outbox: &Outbox<S>) -> Vec<Batch> {
    outbox
        .pending(0, usize::MAX)
        .expect("pending")
        .iter()
        .map(|p| {
            let batch = decode_batch(&p.frame, &DecodeLimits::default()).expect("frame decodes");
            assert_eq!(batch.sequence, p.sequence);
            assert_eq!(batch.idempotency_key, p.idempotency_key);
            batch
        })
        .collect()
}

pub fn ack_of<S: OutboxStore>(outbox: &Outbox<S>, sequence: u64) -> Ack {
    Ack {
        sequence,
        idempotency_key: outbox.idempotency_key(sequence),
        duplicate: false,
    }
}
