//! Sequencing, acks, paging and validation.

use canopy_outbox::{OutboxError, OutboxStore, sample};
use canopy_protocol::Subject;

use crate::for_both_stores;
use crate::support::{ack_of, config, open, pending_batches};

fn frames_round_trip_in_order_with_their_records<S: OutboxStore>() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open::<S>(dir.path(), config(10));
    // 5 resources + 5 x 5 emission records = 30 records -> 3 batches of 10.
    let cycle = sample::cycle(5, 5, 2);
    let appended = outbox.append(&cycle).unwrap();
    assert_eq!(appended.sequences, vec![1, 2, 3]);
    assert_eq!(appended.records, 30);
    let batches = pending_batches(&outbox);
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].resources.len(), 5);
    assert_eq!(batches[0].emissions.len(), 5);
    assert_eq!(batches[1].emissions.len(), 10);
    assert_eq!(batches[2].emissions.len(), 10);
    let emitted: Vec<_> = batches.iter().flat_map(|b| b.emissions.clone()).collect();
    let expected: Vec<_> = cycle.emissions.iter().map(|e| e.record.clone()).collect();
    assert_eq!(emitted, expected);
    assert_eq!(batches[2].agent_id, "test-agent");
    assert_eq!(batches[2].account_id, sample::ACCOUNT_ID);
    let stats = outbox.stats();
    assert_eq!(stats.pending_batches, 3);
    assert_eq!(stats.pending_bytes, appended.bytes);
    assert_eq!(stats.next_sequence, 4);
    assert_eq!(stats.oldest_sequence, Some(1));
}
for_both_stores!(frames_round_trip_in_order_with_their_records);

fn sequences_survive_a_full_drain_and_reopen<S: OutboxStore>() {
    let dir = tempfile::tempdir().unwrap();
    let outbox_id;
    {
        let outbox = open::<S>(dir.path(), config(100));
        outbox_id = outbox.stats().outbox_id;
        for hour in 0..3 {
            outbox.append(&sample::emissions_only(10, hour, 1)).unwrap();
        }
        let acks: Vec<_> = (1..=3).map(|s| ack_of(&outbox, s)).collect();
        let outcome = outbox.ack_all(&acks).unwrap();
        assert_eq!(outcome.removed_batches, 3);
        assert_eq!(outbox.stats().pending_bytes, 0);
    }
    let outbox = open::<S>(dir.path(), config(100));
    assert_eq!(outbox.stats().outbox_id, outbox_id);
    assert_eq!(outbox.stats().pending_batches, 0);
    let appended = outbox.append(&sample::emissions_only(10, 9, 1)).unwrap();
    assert_eq!(appended.sequences, vec![4]);
}
for_both_stores!(sequences_survive_a_full_drain_and_reopen);

fn acks_in_any_order_and_repeated_acks_are_harmless<S: OutboxStore>() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open::<S>(dir.path(), config(100));
    for hour in 0..4 {
        outbox.append(&sample::emissions_only(3, hour, 1)).unwrap();
    }
    let before = outbox.stats().pending_bytes;
    let frame3 = outbox.pending(3, 1).unwrap()[0].frame.len() as u64;
    let outcome = outbox.ack(&ack_of(&outbox, 3)).unwrap();
    assert_eq!(outcome.removed_batches, 1);
    assert_eq!(outcome.removed_bytes, frame3);
    let again = outbox
        .ack_all(&[ack_of(&outbox, 3), ack_of(&outbox, 1), ack_of(&outbox, 99)])
        .unwrap();
    assert_eq!(again.removed_batches, 1);
    assert_eq!(again.not_pending, 2);
    let left: Vec<u64> = outbox
        .pending(0, 10)
        .unwrap()
        .iter()
        .map(|p| p.sequence)
        .collect();
    assert_eq!(left, vec![2, 4]);
    assert_eq!(
        outbox.stats().pending_bytes,
        before - frame3 - again.removed_bytes
    );
    let m = outbox.metrics();
    assert_eq!(
        m.acked_batches.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        m.acks_not_pending
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}
for_both_stores!(acks_in_any_order_and_repeated_acks_are_harmless);

fn ack_with_another_outboxs_key_removes_nothing<S: OutboxStore>() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open::<S>(dir.path(), config(100));
    outbox.append(&sample::emissions_only(3, 0, 1)).unwrap();
    let mut ack = ack_of(&outbox, 1);
    ack.idempotency_key.0[0] ^= 0xff;
    let err = outbox.ack(&ack).unwrap_err();
    assert!(matches!(
        err,
        OutboxError::AckKeyMismatch { sequence: 1, .. }
    ));
    assert!(!err.is_retryable());
    assert_eq!(outbox.stats().pending_batches, 1);
}
for_both_stores!(ack_with_another_outboxs_key_removes_nothing);

fn paging_returns_frames_from_a_sequence<S: OutboxStore>() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open::<S>(dir.path(), config(2));
    // 9 records in batches of 2 -> sequences 1..=5
    outbox.append(&sample::emissions_only(9, 0, 1)).unwrap();
    let page: Vec<u64> = outbox
        .pending(2, 2)
        .unwrap()
        .iter()
        .map(|p| p.sequence)
        .collect();
    assert_eq!(page, vec![2, 3]);
    let rest: Vec<u64> = outbox
        .pending(4, 100)
        .unwrap()
        .iter()
        .map(|p| p.sequence)
        .collect();
    assert_eq!(rest, vec![4, 5]);
    assert!(outbox.pending(6, 100).unwrap().is_empty());
}
for_both_stores!(paging_returns_frames_from_a_sequence);

fn invalid_records_are_refused_before_anything_is_stored<S: OutboxStore>() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = open::<S>(dir.path(), config(2));
    let mut cycle = sample::emissions_only(5, 0, 1);
    cycle.emissions[4].record.energy_compute_kwh = f64::NAN;
    let err = outbox.append(&cycle).unwrap_err();
    // records 4 is in the third batch: sequence 3
    assert!(
        matches!(err, OutboxError::Invalid { sequence: 3, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(outbox.stats().pending_batches, 0);
    assert_eq!(outbox.stats().next_sequence, 1);
}
for_both_stores!(invalid_records_are_refused_before_anything_is_stored);

fn new_outbox_without_first_sequence_starts_at_the_clock<S: OutboxStore>() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(10);
    c.first_sequence = None;
    let before_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let outbox = open::<S>(dir.path(), c);
    let next = outbox.stats().next_sequence;
    assert!(next >= before_us && next < before_us + 60_000_000, "{next}");
    let batches = {
        outbox.append(&sample::emissions_only(1, 0, 1)).unwrap();
        pending_batches(&outbox)
    };
    assert_eq!(batches[0].sequence, next);
    assert!(matches!(
        batches[0].emissions[0].subject,
        Subject::Resource { .. }
    ));
}
for_both_stores!(new_outbox_without_first_sequence_starts_at_the_clock);

/// Two collectors append while a sender acks: every sequence is handed out
/// once, and what was acked plus what is pending is everything appended.
fn concurrent_appends_and_acks_lose_nothing<S: OutboxStore + 'static>() {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(open::<S>(dir.path(), config(5)));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let o = Arc::clone(&outbox);
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for hour in 0..15 {
                    // 12 records in batches of 5 -> 3 batches per append
                    let cycle = sample::emissions_only(12, w * 100 + hour, 2);
                    seqs.extend(o.append(&cycle).unwrap().sequences);
                }
                seqs
            })
        })
        .collect();
    let acker = {
        let o = Arc::clone(&outbox);
        std::thread::spawn(move || {
            let mut acked = BTreeSet::new();
            for _ in 0..40 {
                for p in o.pending(0, 4).unwrap() {
                    o.ack(&ack_of(&o, p.sequence)).unwrap();
                    acked.insert(p.sequence);
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            acked
        })
    };
    let mut appended = BTreeSet::new();
    for w in writers {
        for seq in w.join().unwrap() {
            assert!(appended.insert(seq), "sequence {seq} handed out twice");
        }
    }
    let acked = acker.join().unwrap();
    // 2 writers x 15 appends x 3 batches
    assert_eq!(appended.len(), 90);
    assert_eq!(appended, (1..=90).collect::<BTreeSet<u64>>());
    let pending: BTreeSet<u64> = outbox
        .pending(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|p| p.sequence)
        .collect();
    assert!(pending.is_disjoint(&acked));
    let union: BTreeSet<u64> = pending.union(&acked).copied().collect();
    assert_eq!(union, appended);
    assert_eq!(outbox.stats().pending_batches, pending.len());
}
for_both_stores!(concurrent_appends_and_acks_lose_nothing);

/// Regression (fault suite): a process killed while the redb file was first
/// being created left a file redb could never open. Creation now happens under
/// a temporary name; a leftover temporary file is replaced, while a damaged
/// real store is still reported, never silently recreated.
#[test]
fn interrupted_first_creation_does_not_block_the_next_open() {
    use canopy_outbox::{OutboxStore, RedbStore};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("outbox.redb.creating"), b"half-written by a killed process").unwrap();
    let store = RedbStore::open(dir.path()).expect("a leftover temporary file is replaced");
    assert_eq!(store.meta().unwrap(), None);
    drop(store);
    assert!(!dir.path().join("outbox.redb.creating").exists());
    assert!(dir.path().join("outbox.redb").exists());

    let damaged = tempfile::tempdir().unwrap();
    std::fs::write(damaged.path().join("outbox.redb"), b"not a database").unwrap();
    let err = RedbStore::open(damaged.path()).err().expect("a damaged store is an error");
    assert!(err.to_string().contains("outbox.redb"), "{err}");
}
