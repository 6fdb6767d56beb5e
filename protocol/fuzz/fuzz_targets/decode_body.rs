//! Arbitrary bytes as the body of an otherwise valid frame (correct
//! lengths and checksum), so the fuzzer reaches the postcard decoder, the
//! string-table resolution and the limit checks instead of stopping at the
//! checksum. First byte: bit 0 = reply instead of batch, bit 1 = the body
//! is an LZ4 block (then the next 2 bytes are the declared size), bit 2 =
//! protocol version 2 instead of 1.
#![no_main]

use canopy_protocol::{DecodeLimits, FLAG_LZ4, MAGIC, decode_message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let kind = if control & 1 == 1 { 2u8 } else { 1u8 };
    let (flags, uncompressed_len, body) = if control & 2 == 2 {
        if rest.len() < 2 {
            return;
        }
        (
            FLAG_LZ4,
            u32::from(u16::from_le_bytes([rest[0], rest[1]])),
            &rest[2..],
        )
    } else {
        (0, rest.len() as u32, rest)
    };
    let version: u16 = if control & 4 == 4 { 2 } else { 1 };
    let mut frame = MAGIC.to_vec();
    frame.extend_from_slice(&version.to_le_bytes());
    frame.push(flags);
    frame.push(kind);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&uncompressed_len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&frame);
    crc.update(body);
    frame.extend_from_slice(&crc.finalize().to_le_bytes());
    frame.extend_from_slice(body);
    let _ = decode_message(&frame, &DecodeLimits::default());
});
