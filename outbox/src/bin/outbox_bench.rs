//! Prints append, drain and reopen figures for both stores.
//!
//! `cargo run --release -p canopy-outbox --bin outbox_bench [cycles] [dir]`
//!
//! For each store, in a fresh directory under `dir` (default: the system
//! temp directory; use a real disk, not tmpfs, or fsync costs nothing):
//! 1. `cycles` appends of a 1,000-record cycle (one batch, one fsync each);
//! 2. a reopen of the full outbox (index scan);
//! 3. drain: `pending` + one `ack` per batch (one fsync each), as acks
//!    arrive one by one from the aggregator;
//! 4. the same volume again as 10,000-record cycles (10 batches per fsync),
//!    drained with `ack_all` of 100 acks at a time;
//! 5. steady state, as a connected agent runs: `5 x cycles` appends of a
//!    1,000-record cycle, each followed by the ack of the oldest batch once
//!    50 are pending;
//!
//! and the on-disk size when full and after each phase (the byte cap
//! counts frame bytes, so disk size over frame bytes is what the cap does
//! not see).

use std::path::{Path, PathBuf};
use std::time::Instant;

use canopy_outbox::{Outbox, OutboxConfig, OutboxStore, RedbStore, SledStore, sample};
use canopy_protocol::Ack;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cycles: usize = args
        .get(1)
        .map(|s| s.parse().expect("cycles: expected an integer"))
        .unwrap_or(200);
    let base = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    println!(
        "outbox_bench: {cycles} x 1,000 records ({} records) per scenario, dir {}",
        cycles * 1_000,
        base.display()
    );
    println!(
        "{:<5} {:<32} {:>12} {:>10} {:>10} {:>12}",
        "store", "phase", "records/s", "batches/s", "seconds", "disk MiB"
    );
    encode_only(cycles);
    for result in [
        bench::<RedbStore>(&base, cycles),
        bench::<SledStore>(&base, cycles),
    ] {
        if let Err(e) = result {
            eprintln!("outbox_bench: {e}");
            std::process::exit(1);
        }
    }
}

fn bench<S: OutboxStore>(base: &Path, cycles: usize) -> Result<(), String> {
    let dir = base.join(format!("outbox_bench_{}_{}", std::process::id(), S::NAME));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = OutboxConfig::new("bench-agent");
    config.first_sequence = Some(1);
    let result = run::<S>(&dir, config, cycles);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run<S: OutboxStore>(dir: &Path, config: OutboxConfig, cycles: usize) -> Result<(), String> {
    let e = |e: canopy_outbox::OutboxError| e.to_string();
    let small: Vec<_> = (0..cycles)
        .map(|h| sample::emissions_only(1_000, h as i64, 8))
        .collect();
    let outbox = Outbox::<S>::open(dir, config.clone()).map_err(e)?;
    let t = Instant::now();
    for cycle in &small {
        outbox.append(cycle).map_err(e)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let full_disk = outbox.disk_bytes().map_err(e)?;
    let stats = outbox.stats();
    row::<S>(
        "append 1k-record cycles",
        cycles * 1_000,
        stats.pending_batches,
        secs,
        full_disk,
    );
    println!(
        "{:<5} pending {} batches, {} frame bytes ({:.1} bytes/record)",
        S::NAME,
        stats.pending_batches,
        stats.pending_bytes,
        stats.pending_bytes as f64 / (cycles * 1_000) as f64
    );
    drop(outbox);

    let t = Instant::now();
    let outbox = Outbox::<S>::open(dir, config).map_err(e)?;
    let secs = t.elapsed().as_secs_f64();
    row::<S>(
        "reopen full",
        cycles * 1_000,
        outbox.stats().pending_batches,
        secs,
        full_disk,
    );

    let t = Instant::now();
    let mut acked = 0;
    loop {
        let frames = outbox.pending(0, 64).map_err(e)?;
        if frames.is_empty() {
            break;
        }
        for f in frames {
            outbox.ack(&ack(f.sequence, f.idempotency_key)).map_err(e)?;
            acked += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    row::<S>(
        "drain, one ack per batch",
        acked * 1_000,
        acked,
        secs,
        outbox.disk_bytes().map_err(e)?,
    );

    let big: Vec<_> = (0..cycles / 10)
        .map(|h| {
            let mut c = sample::emissions_only(1_000, h as i64 * 10, 8);
            for k in 1..10 {
                let more = sample::emissions_only(1_000, h as i64 * 10 + k, 8);
                c.emissions.extend(more.emissions);
            }
            c
        })
        .collect();
    let t = Instant::now();
    for cycle in &big {
        outbox.append(cycle).map_err(e)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let n = outbox.stats().pending_batches;
    row::<S>(
        "append 10k-record cycles",
        big.len() * 10_000,
        n,
        secs,
        outbox.disk_bytes().map_err(e)?,
    );

    let t = Instant::now();
    let mut acked = 0;
    loop {
        let frames = outbox.pending(0, 100).map_err(e)?;
        if frames.is_empty() {
            break;
        }
        let acks: Vec<Ack> = frames
            .iter()
            .map(|f| ack(f.sequence, f.idempotency_key))
            .collect();
        outbox.ack_all(&acks).map_err(e)?;
        acked += acks.len();
    }
    let secs = t.elapsed().as_secs_f64();
    row::<S>(
        "drain, ack_all of 100",
        acked * 1_000,
        acked,
        secs,
        outbox.disk_bytes().map_err(e)?,
    );

    let t = Instant::now();
    let steady = 5 * cycles;
    for h in 0..steady {
        outbox.append(&small[h % small.len()]).map_err(e)?;
        if outbox.stats().pending_batches > 50 {
            let oldest = outbox.pending(0, 1).map_err(e)?;
            let (seq, key) = (oldest[0].sequence, oldest[0].idempotency_key);
            outbox.ack(&ack(seq, key)).map_err(e)?;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let stats = outbox.stats();
    let disk = outbox.disk_bytes().map_err(e)?;
    row::<S>(
        "steady append + ack, 50 pending",
        steady * 1_000,
        steady,
        secs,
        disk,
    );
    println!(
        "{:<5} steady state: {} frame bytes pending, {:.2} MiB on disk",
        S::NAME,
        stats.pending_bytes,
        disk as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The CPU part of an append without any store: building, validating and
/// encoding the same 1,000-record batches.
fn encode_only(cycles: usize) {
    let limits = canopy_protocol::DecodeLimits::default();
    let cycles_data: Vec<_> = (0..cycles)
        .map(|h| sample::emissions_only(1_000, h as i64, 8))
        .collect();
    let t = Instant::now();
    let mut bytes = 0;
    for (seq, cycle) in cycles_data.iter().enumerate() {
        let batch = canopy_protocol::Batch {
            agent_id: "bench-agent".into(),
            account_id: cycle.account_id.clone(),
            region: cycle.region.clone(),
            sequence: seq as u64,
            idempotency_key: canopy_outbox::idempotency_key(1, seq as u64),
            created_at_unix_ms: cycle.created_at_unix_ms,
            resources: Vec::new(),
            emissions: cycle.emissions.iter().map(|e| e.record.clone()).collect(),
            agent_status: None,
        };
        batch.validate(&limits).expect("sample batch is valid");
        bytes += canopy_protocol::encode_batch(&batch, canopy_protocol::Compression::Lz4)
            .expect("sample batch encodes")
            .len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{:<5} {:<32} {:>12.0} {:>10.1} {:>10.3} {:>12.2}",
        "none",
        "clone + validate + encode only",
        (cycles * 1_000) as f64 / secs,
        cycles as f64 / secs,
        secs,
        bytes as f64 / (1024.0 * 1024.0)
    );
}

fn ack(sequence: u64, idempotency_key: canopy_protocol::IdempotencyKey) -> Ack {
    Ack {
        sequence,
        idempotency_key,
        duplicate: false,
    }
}

fn row<S: OutboxStore>(phase: &str, records: usize, batches: usize, secs: f64, disk_bytes: u64) {
    println!(
        "{:<5} {:<32} {:>12.0} {:>10.1} {:>10.3} {:>12.2}",
        S::NAME,
        phase,
        records as f64 / secs,
        batches as f64 / secs,
        secs,
        disk_bytes as f64 / (1024.0 * 1024.0)
    );
}
