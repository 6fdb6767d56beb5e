//! Golden bytes: the committed v1 frames must keep decoding to the fixed
//! sample values, and encoding the samples must keep giving those bytes.

use std::path::PathBuf;

use canopy_protocol::*;

use crate::fixtures::{sample_ack, sample_batch, sample_v2_batch};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn read_golden(name: &str) -> Vec<u8> {
    let path = golden(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// The golden files are frozen: v1's were written once from `sample_batch()`
// and `sample_ack()` with `encode_batch(.., Compression::None)` (then v1) and
// `encode_reply(.., 1)`; v2's from `sample_v2_batch()` with
// `encode_batch(.., Compression::None)` at version 2. A new protocol version
// adds its own files the same way (see protocol/README.md) and never rewrites
// these.

#[test]
fn committed_v1_batch_decodes_to_the_sample() {
    let bytes = read_golden("v1_batch.bin");
    let decoded = decode_message(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.version, 1);
    assert_eq!(decoded.message, Message::Batch(sample_batch()));
}

#[test]
fn encoding_the_sample_at_v1_reproduces_the_committed_v1_batch() {
    let bytes = read_golden("v1_batch.bin");
    let encoded = encode_batch_at_version(&sample_batch(), 1, Compression::None).unwrap();
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

#[test]
fn committed_v2_batch_decodes_to_the_v2_sample() {
    let bytes = read_golden("v2_batch.bin");
    let decoded = decode_message(&bytes, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.version, 2);
    let Message::Batch(batch) = decoded.message else {
        panic!("expected a batch")
    };
    assert_eq!(batch, sample_v2_batch());
    assert_eq!(batch.resources[2].attributes["iops"], "3000");
    let status = batch.agent_status.unwrap();
    assert_eq!(
        (
            status.agent_version.as_str(),
            status.outbox_backlog_frames,
            status.outbox_backlog_bytes,
            status.send_failures_total
        ),
        ("0.2.0", 3, 123_456, 5)
    );
}

#[test]
fn encoding_the_v2_sample_reproduces_the_committed_v2_batch() {
    let bytes = read_golden("v2_batch.bin");
    let encoded = encode_batch(&sample_v2_batch(), Compression::None).unwrap();
    assert_eq!(
        encoded, bytes,
        "v2 batch encoding changed: that needs a new protocol version"
    );
}

#[test]
fn v2_layout_is_v1_plus_appended_fields() {
    // The same batch without v2 data differs from its v1 encoding only by
    // one empty attribute list per resource and the absent status (0 bytes).
    let v1 = encode_batch_at_version(&sample_batch(), 1, Compression::None).unwrap();
    let v2 = encode_batch(&sample_batch(), Compression::None).unwrap();
    assert_eq!(v2.len(), v1.len() + sample_batch().resources.len() + 1);
    assert_eq!(u16::from_le_bytes([v2[4], v2[5]]), 2);
    assert_eq!(*v2.last().unwrap(), 0, "agent_status None is the last byte");
    // The v2 frame of the v1 sample decodes to the same value.
    assert_eq!(decode_batch(&v2, &DecodeLimits::default()).unwrap(), sample_batch());
}

#[test]
fn committed_v1_ack_is_answered_the_same_at_v2() {
    let v1 = read_golden("v1_reply_ack.bin");
    let v2 = encode_reply(&sample_ack(), 2).unwrap();
    assert_eq!(&v2[HEADER_LEN..], &v1[HEADER_LEN..]);
    assert_eq!(decode_reply(&v2, &DecodeLimits::default()).unwrap(), sample_ack());
}
