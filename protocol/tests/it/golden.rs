//! Golden bytes: the committed v1 frames must keep decoding to the fixed
//! sample values, and encoding the samples must keep giving those bytes.

use std::path::PathBuf;

use canopy_protocol::*;

use crate::fixtures::{sample_ack, sample_batch};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn read_golden(name: &str) -> Vec<u8> {
    let path = golden(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// The v1 golden files are frozen: they were written once from `sample_batch()`
// and `sample_ack()` with `encode_batch(.., Compression::None)` and
// `encode_reply(.., 1)`. A new protocol version adds its own files the same way
// (see protocol/README.md) and never rewrites these.

#[test]
fn committed_v1_batch_decodes_to_the_sample() {
    let bytes = read_golden("v1_batch.bin");
    let decoded = decode_message(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.version, 1);
    assert_eq!(decoded.message, Message::Batch(sample_batch()));
}

#[test]
fn encoding_the_sample_reproduces_the_committed_v1_batch() {
    let bytes = read_golden("v1_batch.bin");
    let encoded = encode_batch(&sample_batch(), Compression::None).unwrap();
    assert_eq!(
        encoded, bytes,
        "v1 batch encoding changed: that needs a new protocol version"
    );
}

#[test]
fn committed_v1_batch_header_matches_the_documented_layout() {
    let bytes = read_golden("v1_batch.bin");
    assert_eq!(&bytes[0..4], b"CNPY");
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 1);
    assert_eq!(bytes[6], 0, "uncompressed");
    assert_eq!(bytes[7], 1, "batch");
    let body_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    assert_eq!(body_len, bytes.len() - HEADER_LEN);
    assert_eq!(&bytes[12..16], &bytes[8..12]);
    // Body starts with agent_id: varint length 10, then "agent-7f3a".
    assert_eq!(bytes[20], 10);
    assert_eq!(&bytes[21..31], b"agent-7f3a");
    // Then account_id: length 12 and the digits.
    assert_eq!(bytes[31], 12);
    assert_eq!(&bytes[32..44], b"123456789012");
}

#[test]
fn committed_v1_ack_round_trips() {
    let bytes = read_golden("v1_reply_ack.bin");
    assert_eq!(
        decode_reply(&bytes, &DecodeLimits::default()).unwrap(),
        sample_ack()
    );
    assert_eq!(encode_reply(&sample_ack(), 1).unwrap(), bytes);
    // Body: variant 0 (ack), sequence varint 42, 16 key bytes, duplicate false.
    assert_eq!(bytes.len(), HEADER_LEN + 1 + 1 + 16 + 1);
    assert_eq!(&bytes[20..22], &[0, 42]);
}
