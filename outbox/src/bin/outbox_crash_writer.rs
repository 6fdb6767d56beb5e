//! Appends to an outbox until killed, for the kill -9 tests.
//!
//! `outbox_crash_writer <sled|redb> <dir> <records-per-cycle> <records-per-batch>`
//!
//! Each cycle is `sample::emissions_only(records, hour)` with `hour` = the
//! cycle's first sequence, so every frame of one cycle carries the same
//! `created_at_unix_ms`. After an append returns (durable) it prints one
//! line `D <seq>` per batch; every fourth cycle it acknowledges the oldest
//! pending cycle's batches: it prints `a <seq>` for each before the ack
//! (those may or may not be gone after a kill) and `A <seq>` after it
//! returns (those must be gone). Lines are flushed one by one, so whatever the parent reads was
//! durable before it was written.

use std::io::Write;
use std::path::Path;

use canopy_outbox::{Outbox, OutboxConfig, OutboxStore, RedbStore, SledStore, sample};
use canopy_protocol::Ack;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!(
            "usage: outbox_crash_writer <sled|redb> <dir> <records-per-cycle> <records-per-batch>"
        );
        std::process::exit(2);
    }
    let records: usize = args[3]
        .parse()
        .expect("records-per-cycle: expected an integer");
    let per_batch: usize = args[4]
        .parse()
        .expect("records-per-batch: expected an integer");
    let dir = Path::new(&args[2]);
    let result = match args[1].as_str() {
        "sled" => run::<SledStore>(dir, records, per_batch),
        "redb" => run::<RedbStore>(dir, records, per_batch),
        other => Err(format!("store: expected sled or redb, found {other:?}")),
    };
    if let Err(e) = result {
        eprintln!("outbox_crash_writer: {e}");
        std::process::exit(1);
    }
}

fn run<S: OutboxStore>(dir: &Path, records: usize, per_batch: usize) -> Result<(), String> {
    let mut config = OutboxConfig::new("crash-writer");
    config.max_records_per_batch = per_batch;
    config.first_sequence = Some(1);
    let outbox = Outbox::<S>::open(dir, config).map_err(|e| e.to_string())?;
    let batches_per_cycle = records.div_ceil(per_batch);
    let mut out = std::io::stdout().lock();
    for cycle_no in 0u64.. {
        let hour = outbox.stats().next_sequence as i64;
        let cycle = sample::emissions_only(records, hour, 4);
        let appended = outbox.append(&cycle).map_err(|e| e.to_string())?;
        for seq in &appended.sequences {
            writeln!(out, "D {seq}")
                .and_then(|()| out.flush())
                .map_err(|e| e.to_string())?;
        }
        if cycle_no % 4 == 3 {
            let oldest = outbox
                .pending(0, batches_per_cycle)
                .map_err(|e| e.to_string())?;
            let acks: Vec<Ack> = oldest
                .iter()
                .map(|p| Ack {
                    sequence: p.sequence,
                    idempotency_key: p.idempotency_key,
                    duplicate: false,
                })
                .collect();
            for ack in &acks {
                writeln!(out, "a {}", ack.sequence)
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())?;
            }
            outbox.ack_all(&acks).map_err(|e| e.to_string())?;
            for ack in &acks {
                writeln!(out, "A {}", ack.sequence)
                    .and_then(|()| out.flush())
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}
