//! Encoded sizes of typical payloads; run with `--nocapture` to see them.

use canopy_protocol::*;

use crate::fixtures::{day_of_hourly_records, sample_emission};

fn frame_len(batch: &Batch, compression: Compression) -> usize {
    encode_batch(batch, compression).unwrap().len()
}

#[test]
fn typical_sizes() {
    let empty = Batch {
        resources: vec![],
        emissions: vec![],
        ..crate::fixtures::sample_batch()
    };
    let one = Batch {
        emissions: vec![sample_emission()],
        ..empty.clone()
    };
    let empty_len = frame_len(&empty, Compression::None);
    let one_len = frame_len(&one, Compression::None);
    // A lone record also brings its 5 strings into the table; a record whose
    // strings are already in the table costs only its fixed part.
    let alone = one_len - empty_len;
    let mut two = one.clone();
    let mut second = sample_emission();
    second.interval_start_unix_s += 3_600;
    second.interval_end_unix_s += 3_600;
    two.emissions.push(second);
    let repeat = frame_len(&two, Compression::None) - one_len;

    let thousand = day_of_hourly_records(1_000);
    let raw = frame_len(&thousand, Compression::None);
    let lz4 = frame_len(&thousand, Compression::Lz4);
    println!("empty batch frame: {empty_len} bytes");
    println!(
        "one emission record, strings new: {alone} bytes; strings already in table: {repeat} bytes"
    );
    println!(
        "1,000 hourly emission records (42 instances): {raw} bytes uncompressed, {lz4} bytes lz4 ({:.1} / {:.1} bytes per record)",
        raw as f64 / 1000.0,
        lz4 as f64 / 1000.0
    );

    // Fixed part of a v1 emission record: 13 f64 fields (104 bytes) plus
    // subject, varints, quality and revision: well under 130 bytes.
    assert!(
        (104..130).contains(&repeat),
        "repeat record costs {repeat} bytes"
    );
    assert!(alone > repeat);
    assert!(raw < 1_000 * 130, "{raw}");
    assert!(lz4 < raw, "lz4 {lz4} >= raw {raw}");
}
