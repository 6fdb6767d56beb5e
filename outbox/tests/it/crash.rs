//! Real kill -9: a child process appends (and acks) continuously and
//! prints each sequence once it is durable; the test SIGKILLs it at random
//! moments, reopens the outbox and checks that nothing printed was lost,
//! nothing acked came back (a batch whose ack was under way when the
//! kill came may be either present or gone), every frame decodes and every append was
//! all-or-nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use canopy_outbox::{OutboxStore, RedbStore, SledStore};

use crate::support::{config, open, pending_batches};

const KILLS: usize = 20;
const RECORDS_PER_CYCLE: usize = 300;
const RECORDS_PER_BATCH: usize = 100;
const BATCHES_PER_CYCLE: usize = 3;

/// xorshift64*, seeded from the clock; the seed is printed for replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn kill_nine<S: OutboxStore>() {
    let seed = std::env::var("OUTBOX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{} kill -9 test seed {seed}", S::NAME);
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut durable = BTreeSet::new();
    let mut acked = BTreeSet::new();
    let mut acking = BTreeSet::new();
    let mut highest_seen = 0u64;
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_outbox_crash_writer"))
            .arg(S::NAME)
            .arg(dir.path())
            .arg(RECORDS_PER_CYCLE.to_string())
            .arg(RECORDS_PER_BATCH.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Let it get going (first durable append), then kill at a random
        // moment within the next 150 ms.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("round {round}: writer printed nothing: {e}"));
        std::thread::sleep(Duration::from_micros(rng.next() % 150_000));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let mut round_durable = Vec::new();
        for line in std::iter::once(first).chain(rx.try_iter()) {
            let (kind, seq) = line.split_once(' ').unwrap();
            let seq: u64 = seq.parse().unwrap();
            match kind {
                "D" => round_durable.push(seq),
                "a" => {
                    acking.insert(seq);
                }
                "A" => {
                    acked.insert(seq);
                }
                other => panic!("unexpected line kind {other:?}"),
            }
        }
        assert!(
            round_durable[0] > highest_seen,
            "round {round}: sequence {} reused (highest seen {highest_seen})",
            round_durable[0]
        );
        durable.extend(round_durable);

        let outbox = open::<S>(dir.path(), config(RECORDS_PER_BATCH));
        let batches = pending_batches(&outbox);
        let present: BTreeSet<u64> = batches.iter().map(|b| b.sequence).collect();
        for seq in durable.difference(&acking) {
            assert!(
                present.contains(seq),
                "round {round}: durable batch {seq} lost"
            );
        }
        for seq in &acked {
            assert!(
                !present.contains(seq),
                "round {round}: acked batch {seq} came back"
            );
        }
        let mut per_cycle: BTreeMap<i64, usize> = BTreeMap::new();
        for b in &batches {
            assert_eq!(b.emissions.len(), RECORDS_PER_BATCH, "batch {}", b.sequence);
            *per_cycle.entry(b.created_at_unix_ms).or_default() += 1;
        }
        for (created, n) in per_cycle {
            assert_eq!(
                n, BATCHES_PER_CYCLE,
                "round {round}: cycle {created} stored partially"
            );
        }
        let stats = outbox.stats();
        let top = present
            .iter()
            .chain(durable.iter())
            .max()
            .copied()
            .unwrap_or(0);
        assert!(stats.next_sequence > top);
        highest_seen = stats.next_sequence - 1;
        eprintln!(
            "{} round {round}: {} durable printed so far, {} acked, {} pending after kill",
            S::NAME,
            durable.len(),
            acked.len(),
            present.len()
        );
    }
    assert!(durable.len() >= KILLS * BATCHES_PER_CYCLE);
}

#[test]
fn redb_survives_kill_nine() {
    kill_nine::<RedbStore>();
}

#[test]
fn sled_survives_kill_nine() {
    kill_nine::<SledStore>();
}
