//! Arbitrary bytes as a whole frame: decoding must return (never panic),
//! and anything that decodes must re-encode to a frame that decodes to the
//! same value and re-encodes to the same bytes.
#![no_main]

use canopy_protocol::{
    Compression, DecodeLimits, Message, decode_message, encode_batch_at_version, encode_reply,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    let Ok(decoded) = decode_message(data, &limits) else {
        return;
    };
    // A compressed input may hold a body larger than the frame limit once
    // re-encoded uncompressed; allow for that when decoding the re-encoding.
    let roomy = DecodeLimits {
        max_frame_bytes: limits.max_body_bytes + canopy_protocol::HEADER_LEN,
        ..limits
    };
    let first = match &decoded.message {
        Message::Batch(batch) => {
            encode_batch_at_version(batch, decoded.version, Compression::None)
                .expect("a decoded batch re-encodes at its version")
        }
        Message::Reply(reply) => {
            encode_reply(reply, decoded.version).expect("a decoded reply re-encodes")
        }
    };
    let again = decode_message(&first, &roomy).expect("a re-encoded message decodes");
    let second = match &again.message {
        Message::Batch(batch) => encode_batch_at_version(batch, again.version, Compression::None)
            .expect("re-encodes"),
        Message::Reply(reply) => encode_reply(reply, again.version).expect("re-encodes"),
    };
    assert_eq!(first, second, "encoding is not stable across a decode");
});
