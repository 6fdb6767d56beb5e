//! Prints encoded sizes and encode/decode throughput of a day of hourly
//! emission records. Run: `cargo run --release -p canopy-protocol --example codec_bench`.

use std::hint::black_box;
use std::time::Instant;

use canopy_protocol::{
    Batch, Compression, DecodeLimits, EmissionRecord, GridFactorUsed, IdempotencyKey, Quality,
    Subject, decode_batch, encode_batch,
};

const RECORDS: usize = 1_000;
const ROUNDS: usize = 200;

fn record(i: usize) -> EmissionRecord {
    let compute_kwh = 0.004 + (i % 97) as f64 * 0.000_113;
    let memory_kwh = 0.0015 + (i % 13) as f64 * 0.000_07;
    let operational = (compute_kwh + memory_kwh) * 1.135 * 334.0;
    let embodied = 1.2 + (i / 24 % 5) as f64 * 0.4;
    let hour = (i % 24) as i64;
    EmissionRecord {
        subject: Subject::Resource {
            arn: format!(
                "arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc{:013x}",
                i / 24
            ),
        },
        interval_start_unix_s: 1_700_006_400 + hour * 3_600,
        interval_end_unix_s: 1_700_006_400 + (hour + 1) * 3_600,
        energy_compute_kwh: compute_kwh,
        energy_memory_kwh: memory_kwh,
        energy_storage_kwh: 0.0,
        energy_networking_kwh: 0.0,
        energy_accelerators_kwh: 0.0,
        pue: 1.135,
        embodied_g_co2e: embodied,
        operational_location_g_co2e: operational,
        operational_market_g_co2e: 0.0,
        grid_location: GridFactorUsed {
            g_co2e_per_kwh: 334.0,
            source: "ccf".into(),
            vintage: "2023".into(),
        },
        grid_market: GridFactorUsed {
            g_co2e_per_kwh: 0.0,
            source: "market-config".into(),
            vintage: "2024".into(),
        },
        quality: Quality::Estimated,
        low_g_co2e: (operational + embodied) * 0.7,
        high_g_co2e: (operational + embodied) * 1.6,
        methodology_version: "canopy-1".into(),
        revision: 0,
    }
}

fn main() {
    let batch = Batch {
        agent_id: "agent-7f3a".into(),
        account_id: "123456789012".into(),
        region: "eu-west-1".into(),
        sequence: 1,
        idempotency_key: IdempotencyKey([7; 16]),
        created_at_unix_ms: 1_700_100_000_000,
        resources: vec![],
        emissions: (0..RECORDS).map(record).collect(),
        agent_status: None,
    };
    let limits = DecodeLimits::default();
    for compression in [Compression::None, Compression::Lz4] {
        let frame = encode_batch(&batch, compression).expect("encodes");
        let start = Instant::now();
        for _ in 0..ROUNDS {
            black_box(encode_batch(black_box(&batch), compression).expect("encodes"));
        }
        let encode_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        for _ in 0..ROUNDS {
            black_box(decode_batch(black_box(&frame), &limits).expect("decodes"));
        }
        let decode_s = start.elapsed().as_secs_f64();
        let records = (RECORDS * ROUNDS) as f64;
        println!(
            "{compression:?}: {RECORDS} records = {} bytes ({:.1} B/record); encode {:.2} M records/s, decode {:.2} M records/s",
            frame.len(),
            frame.len() as f64 / RECORDS as f64,
            records / encode_s / 1e6,
            records / decode_s / 1e6,
        );
    }
}
