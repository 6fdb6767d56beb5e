//! The when-full policy: coarsen first, keep totals, refuse last, count all.

use std::sync::atomic::Ordering::Relaxed;

use canopy_outbox::{OutboxError, OutboxStore, sample};
use canopy_protocol::{Batch, Subject};

use crate::for_both_stores;
use crate::support::{ack_of, config, open, pending_batches};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} != {b}");
}

/// Bytes the frames of `cycle` take in a fresh, unbounded outbox.
fn fine_bytes<S: OutboxStore>(cycle: &canopy_outbox::Cycle) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    open::<S>(dir.path(), config(1_000))
        .append(cycle)
        .unwrap()
        .bytes
}

fn totals(batches: &[Batch]) -> (f64, f64, f64, f64) {
    let e = batches.iter().flat_map(|b| &b.emissions);
    e.fold((0.0, 0.0, 0.0, 0.0), |(kwh, emb, loc, hi), r| {
        (
            kwh + r.energy_total_kwh(),
            emb + r.embodied_g_co2e,
            loc + r.operational_location_g_co2e,
            hi + r.high_g_co2e,
        )
    })
}

fn coarsens_when_the_cycle_does_not_fit_and_keeps_totals<S: OutboxStore>() {
    // 40 instances x 2 hours = 80 resource emission records + 40 inventory
    // records, over 4 teams.
    let cycle = sample::cycle(40, 2, 4);
    let fine = fine_bytes::<S>(&cycle);
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(1_000);
    c.max_bytes = fine - 1;
    let outbox = open::<S>(dir.path(), c);
    let appended = outbox.append(&cycle).unwrap();
    let report = appended.coarsened.expect("coarsened");
    assert_eq!(report.coarsened_records, 80);
    assert_eq!(report.shed_resource_records, 40);
    // 4 teams x 2 hours
    assert_eq!(report.group_records_built, 8);
    assert_eq!(appended.records, 8);
    assert!(appended.bytes < fine);

    let batches = pending_batches(&outbox);
    assert!(batches.iter().all(|b| b.resources.is_empty()));
    let groups: Vec<_> = batches.iter().flat_map(|b| &b.emissions).collect();
    assert_eq!(groups.len(), 8);
    assert!(
        groups
            .iter()
            .all(|r| matches!(r.subject, Subject::Group(_)))
    );
    let (kwh, embodied, location, high) = totals(&batches);
    // energy: 2 hours x sum_{i=0..39} (0.010 (i + 1) + 0.002)
    //       = 2 x (0.010 x 820 + 40 x 0.002) = 16.56 kWh
    close(kwh, 16.56);
    // embodied: 80 x 1.5 g = 120 g
    close(embodied, 120.0);
    // operational location: 16.56 kWh x 1.135 x 334 g/kWh = 6,277.7304 g
    close(location, 6277.7304);
    // high bound = 2 x central = 2 x (120 + 6,277.7304) = 12,795.4608 g
    close(high, 12795.4608);
    // Team 0 holds i = 0, 4, ..., 36: compute 0.010 x (1 + 5 + ... + 37)
    // = 0.010 x 190 = 1.90 kWh per hour.
    let team0 = groups
        .iter()
        .find(|r| matches!(&r.subject, Subject::Group(g) if g.team.as_deref() == Some("team-0")))
        .unwrap();
    close(team0.energy_compute_kwh, 1.90);
    close(team0.energy_memory_kwh, 0.020);

    let m = outbox.metrics();
    assert_eq!(m.coarsened_cycles.load(Relaxed), 1);
    assert_eq!(m.coarsened_records.load(Relaxed), 80);
    assert_eq!(m.shed_resource_records.load(Relaxed), 40);
    assert_eq!(m.refused_cycles.load(Relaxed), 0);
}
for_both_stores!(coarsens_when_the_cycle_does_not_fit_and_keeps_totals);

fn refuses_what_does_not_fit_even_coarsened_and_stores_nothing<S: OutboxStore>() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(1_000);
    c.max_bytes = 100;
    let outbox = open::<S>(dir.path(), c);
    let cycle = sample::cycle(40, 2, 4);
    let err = outbox.append(&cycle).unwrap_err();
    match &err {
        OutboxError::Full {
            free_bytes,
            max_bytes,
            records,
            needed_bytes,
        } => {
            assert_eq!((*free_bytes, *max_bytes, *records), (100, 100, 8));
            assert!(*needed_bytes > 100);
        }
        other => panic!("expected Full, got {other}"),
    }
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .starts_with("outbox full: expected at most 100 free bytes")
    );
    assert_eq!(outbox.stats().pending_batches, 0);
    assert_eq!(outbox.stats().next_sequence, 1);
    let m = outbox.metrics();
    assert_eq!(m.refused_cycles.load(Relaxed), 1);
    // 40 inventory + 80 emission records, counted before coarsening
    assert_eq!(m.refused_records.load(Relaxed), 120);
    assert_eq!(m.coarsened_records.load(Relaxed), 0);
}
for_both_stores!(refuses_what_does_not_fit_even_coarsened_and_stores_nothing);

/// Disk-full behaviour under the byte cap: group-only cycles (nothing to
/// coarsen) fill the outbox until it refuses; an ack frees room again and
/// sequences continue without a gap or a reuse.
fn full_outbox_recovers_after_acks<S: OutboxStore>() {
    let mut group_cycle = sample::emissions_only(1, 0, 1);
    let group = group_cycle.emissions[0].group.clone();
    group_cycle.emissions[0].record.subject = Subject::Group(group);
    let one = fine_bytes::<S>(&group_cycle);
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(1_000);
    // room for exactly 3 such frames (every frame of this cycle has the
    // same length: only the sequence differs, and 1..=4 are one varint byte)
    c.max_bytes = 3 * one + one / 2;
    let outbox = open::<S>(dir.path(), c);
    for expected in 1..=3 {
        assert_eq!(
            outbox.append(&group_cycle).unwrap().sequences,
            vec![expected]
        );
    }
    let err = outbox.append(&group_cycle).unwrap_err();
    assert!(matches!(err, OutboxError::Full { records: 1, .. }), "{err}");
    let m = outbox.metrics();
    assert_eq!(m.refused_cycles.load(Relaxed), 1);
    assert_eq!(m.coarsened_records.load(Relaxed), 0);
    // the lone group record passed through coarsening unchanged: nothing shed
    assert_eq!(m.shed_resource_records.load(Relaxed), 0);

    outbox.ack(&ack_of(&outbox, 2)).unwrap();
    assert_eq!(outbox.append(&group_cycle).unwrap().sequences, vec![4]);
    let left: Vec<u64> = outbox
        .pending(0, 10)
        .unwrap()
        .iter()
        .map(|p| p.sequence)
        .collect();
    assert_eq!(left, vec![1, 3, 4]);
    let batches = pending_batches(&outbox);
    assert_eq!(batches[2].emissions[0], group_cycle.emissions[0].record);
}
for_both_stores!(full_outbox_recovers_after_acks);
