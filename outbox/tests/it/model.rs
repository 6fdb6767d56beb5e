//! Model-based property test: random append / ack / reopen sequences
//! against an in-memory model.
//!
//! A "crash" here drops the outbox without `flush` and reopens it; both
//! engines lock their files, so an in-process test cannot abandon a handle
//! without dropping it. Real abrupt stops are in `crash.rs` (kill -9).

use std::collections::BTreeMap;

use canopy_outbox::{Outbox, OutboxStore, sample};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::{ack_of, config, pending_batches};

#[derive(Debug, Clone)]
enum Op {
    /// Append a cycle of this many emission records.
    Append(usize),
    /// Ack the pending batch at this position (modulo the pending count).
    Ack(usize),
    /// Ack several pending batches at once, plus one unknown sequence.
    AckMany(Vec<usize>),
    /// Drop without flushing, then reopen.
    Crash,
    /// Flush, drop, reopen.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..25).prop_map(Op::Append),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => proptest::collection::vec(any::<usize>(), 1..5).prop_map(Op::AckMany),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

const PER_BATCH: usize = 7;

fn run<S: OutboxStore>(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let open = || Outbox::<S>::open(dir.path(), config(PER_BATCH)).unwrap();
    let mut outbox = Some(open());
    // the model: pending sequence -> emission records in that batch
    let mut model: BTreeMap<u64, usize> = BTreeMap::new();
    let mut highest_assigned = 0u64;
    let mut hour = 0i64;
    for op in ops {
        let o = outbox.as_ref().unwrap();
        match op {
            Op::Append(n) => {
                hour += 1;
                let appended = o.append(&sample::emissions_only(*n, hour, 3)).unwrap();
                prop_assert_eq!(appended.sequences.len(), n.div_ceil(PER_BATCH));
                for (k, seq) in appended.sequences.iter().enumerate() {
                    prop_assert!(*seq > highest_assigned, "sequence {} reused", seq);
                    highest_assigned = *seq;
                    let in_batch = (*n - k * PER_BATCH).min(PER_BATCH);
                    model.insert(*seq, in_batch);
                }
            }
            Op::Ack(i) => {
                if !model.is_empty() {
                    let seq = *model.keys().nth(i % model.len()).unwrap();
                    let outcome = o.ack(&ack_of(o, seq)).unwrap();
                    prop_assert_eq!(outcome.removed_batches, 1);
                    model.remove(&seq);
                }
            }
            Op::AckMany(positions) => {
                let keys: Vec<u64> = model.keys().copied().collect();
                let mut acks = vec![ack_of(o, highest_assigned + 1_000)];
                let mut expect_removed = std::collections::BTreeSet::new();
                if !keys.is_empty() {
                    for p in positions {
                        let seq = keys[p % keys.len()];
                        acks.push(ack_of(o, seq));
                        expect_removed.insert(seq);
                    }
                }
                let outcome = o.ack_all(&acks).unwrap();
                prop_assert_eq!(outcome.removed_batches, expect_removed.len());
                prop_assert_eq!(outcome.not_pending, acks.len() - expect_removed.len());
                for seq in expect_removed {
                    model.remove(&seq);
                }
            }
            Op::Crash => {
                drop(outbox.take());
                outbox = Some(open());
            }
            Op::Reopen => {
                outbox.as_ref().unwrap().flush().unwrap();
                drop(outbox.take());
                outbox = Some(open());
            }
        }
        let o = outbox.as_ref().unwrap();
        let batches = pending_batches(o);
        let found: Vec<(u64, usize)> = batches
            .iter()
            .map(|b| (b.sequence, b.emissions.len()))
            .collect();
        let expected: Vec<(u64, usize)> = model.iter().map(|(s, n)| (*s, *n)).collect();
        prop_assert_eq!(found, expected);
        let stats = o.stats();
        prop_assert_eq!(stats.pending_batches, model.len());
        prop_assert!(stats.next_sequence > highest_assigned);
        let frame_bytes: u64 = o
            .pending(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|p| p.frame.len() as u64)
            .sum();
        prop_assert_eq!(stats.pending_bytes, frame_bytes);
    }
    Ok(())
}

fn check<S: OutboxStore>() {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            run::<S>(&ops)
        })
        .unwrap();
}

#[test]
fn redb_matches_the_model() {
    check::<canopy_outbox::RedbStore>();
}

#[test]
fn sled_matches_the_model() {
    check::<canopy_outbox::SledStore>();
}
