//! Damaged, hostile and foreign frames: always an error, never a panic.

use canopy_protocol::*;
use proptest::prelude::*;

use crate::fixtures::sample_batch;

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn sample_frame(compression: Compression) -> Vec<u8> {
    encode_batch(&sample_batch(), compression).unwrap()
}

/// Recomputes the header checksum after a deliberate edit, so the test
/// reaches the check it is aimed at.
fn fix_checksum(frame: &mut [u8]) {
    let mut h = bitwise_crc32::Crc::new();
    h.update(&frame[..16]);
    h.update(&frame[HEADER_LEN..]);
    let crc = h.finish();
    frame[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// A bitwise CRC-32 (IEEE, reflected, poly 0xEDB88320), written here so the
/// tests check the frame's checksum against an independent implementation.
mod bitwise_crc32 {
    pub struct Crc(u32);
    impl Crc {
        pub fn new() -> Self {
            Crc(0xFFFF_FFFF)
        }
        pub fn update(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 ^= u32::from(b);
                for _ in 0..8 {
                    let mask = (self.0 & 1).wrapping_neg();
                    self.0 = (self.0 >> 1) ^ (0xEDB8_8320 & mask);
                }
            }
        }
        pub fn finish(&self) -> u32 {
            !self.0
        }
    }
}

#[test]
fn independent_crc_matches_the_encoder() {
    let frame = sample_frame(Compression::None);
    let mut copy = frame.clone();
    fix_checksum(&mut copy);
    assert_eq!(copy, frame);
    // CRC-32 check value of "123456789" is 0xCBF43926.
    let mut h = bitwise_crc32::Crc::new();
    h.update(b"123456789");
    assert_eq!(h.finish(), 0xCBF4_3926);
}

#[test]
fn every_truncation_is_an_error() {
    for compression in [Compression::None, Compression::Lz4] {
        let frame = sample_frame(compression);
        for len in 0..frame.len() {
            match decode_batch(&frame[..len], &limits()) {
                Err(DecodeError::Truncated { expected, found }) => {
                    assert_eq!(found, len);
                    assert!(expected > len);
                }
                other => panic!("prefix of {len} bytes: expected Truncated, got {other:?}"),
            }
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    let mut frame = sample_frame(Compression::None);
    let expected = frame.len();
    frame.push(0);
    match decode_batch(&frame, &limits()) {
        Err(DecodeError::TrailingBytes { expected: e, found }) => {
            assert_eq!(e, expected);
            assert_eq!(found, expected + 1);
        }
        other => panic!("expected TrailingBytes, got {other:?}"),
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    for compression in [Compression::None, Compression::Lz4] {
        let frame = sample_frame(compression);
        for bit in 0..frame.len() * 8 {
            let mut damaged = frame.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let result = decode_batch(&damaged, &limits());
            assert!(result.is_err(), "flip of bit {bit} went unnoticed");
            if bit / 8 >= HEADER_LEN {
                assert!(
                    matches!(result, Err(DecodeError::ChecksumMismatch { .. })),
                    "body bit {bit}: expected ChecksumMismatch, got {result:?}"
                );
            }
        }
    }
}

#[test]
fn wrong_magic_is_named() {
    let mut frame = sample_frame(Compression::None);
    frame[0..4].copy_from_slice(b"HTTP");
    let err = decode_batch(&frame, &limits()).unwrap_err();
    assert!(matches!(err, DecodeError::BadMagic { found, .. } if &found == b"HTTP"));
    assert!(err.to_string().starts_with("bad magic"), "{err}");
}

#[test]
fn newer_version_is_rejected_naming_both_versions() {
    let mut frame = sample_frame(Compression::None);
    frame[4..6].copy_from_slice(&3u16.to_le_bytes());
    let err = decode_batch(&frame, &limits()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::NewerVersion {
                found: 3,
                newest_supported: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.reply_code(), ErrorCode::UnsupportedVersion);
    assert_eq!(
        err.to_string(),
        "frame protocol version 3 is newer than the newest version this decoder supports (2); upgrade the receiver"
    );
}

#[test]
fn newer_version_is_named_even_if_its_header_is_shorter() {
    // A future version might shrink the header; magic + version still decide.
    let mut frame = b"CNPY".to_vec();
    frame.extend_from_slice(&9u16.to_le_bytes());
    assert!(matches!(
        decode_message(&frame, &limits()),
        Err(DecodeError::NewerVersion {
            found: 9,
            newest_supported: 2
        })
    ));
}

#[test]
fn version_zero_is_older_than_supported() {
    let mut frame = sample_frame(Compression::None);
    frame[4..6].copy_from_slice(&0u16.to_le_bytes());
    assert!(matches!(
        decode_batch(&frame, &limits()),
        Err(DecodeError::OlderVersion {
            found: 0,
            oldest_supported: 1
        })
    ));
}

#[test]
fn unknown_flags_and_kinds_are_rejected() {
    let mut frame = sample_frame(Compression::None);
    frame[6] = 0x80;
    fix_checksum(&mut frame);
    assert!(matches!(
        decode_batch(&frame, &limits()),
        Err(DecodeError::UnknownFlags { found: 0x80, .. })
    ));
    let mut frame = sample_frame(Compression::None);
    frame[7] = 9;
    fix_checksum(&mut frame);
    assert!(matches!(
        decode_message(&frame, &limits()),
        Err(DecodeError::UnknownMessageKind { found: 9 })
    ));
}

#[test]
fn oversized_frame_is_rejected_from_the_header_alone() {
    let frame = sample_frame(Compression::None);
    let tight = DecodeLimits {
        max_frame_bytes: frame.len() - 1,
        ..limits()
    };
    // Only the header is needed to refuse: a stream reader never reads the body.
    match FrameHeader::parse(&frame[..HEADER_LEN], &tight) {
        Err(DecodeError::FrameTooLarge { max, found }) => {
            assert_eq!(max, frame.len() - 1);
            assert_eq!(found, frame.len() as u64);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    let mut huge = frame[..HEADER_LEN].to_vec();
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        FrameHeader::parse(&huge, &limits()),
        Err(DecodeError::FrameTooLarge { .. })
    ));
}

#[test]
fn header_parse_gives_the_length_a_stream_reader_needs() {
    let frame = sample_frame(Compression::Lz4);
    let header = FrameHeader::parse(&frame[..HEADER_LEN], &limits()).unwrap();
    assert_eq!(header.frame_len(), frame.len());
    assert_eq!(header.kind, MessageKind::Batch);
    assert!(header.compressed);
}

#[test]
fn zip_bomb_is_refused_by_declared_size() {
    // 16 MiB of zeros compress to a few tens of KiB.
    let bomb = vec![0u8; 16 * 1024 * 1024];
    let packed = lz4_flex::block::compress(&bomb);
    assert!(
        packed.len() < 100_000,
        "bomb compressed to {} bytes",
        packed.len()
    );
    let frame = raw_frame(FLAG_LZ4, 1, &packed, bomb.len() as u32);
    let limits = DecodeLimits {
        max_body_bytes: 1024 * 1024,
        ..limits()
    };
    assert!(matches!(
        decode_batch(&frame, &limits),
        Err(DecodeError::BodyTooLarge {
            max: 1_048_576,
            found: 16_777_216
        })
    ));
    // Declaring a small size instead makes decompression stop at that size.
    let frame = raw_frame(FLAG_LZ4, 1, &packed, 1024);
    assert!(matches!(
        decode_batch(&frame, &limits),
        Err(DecodeError::Decompress { .. })
    ));
}

fn raw_frame(flags: u8, kind: u8, body: &[u8], uncompressed_len: u32) -> Vec<u8> {
    let mut frame = b"CNPY".to_vec();
    frame.extend_from_slice(&1u16.to_le_bytes());
    frame.push(flags);
    frame.push(kind);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&uncompressed_len.to_le_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(body);
    fix_checksum(&mut frame);
    frame
}

#[test]
fn a_valid_frame_around_a_garbage_body_is_a_body_error() {
    let frame = raw_frame(0, 1, &[0xFF; 64], 64);
    let err = decode_batch(&frame, &limits()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Body {
                version: 1,
                kind: MessageKind::Batch,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("malformed v1 batch body"),
        "{err}"
    );
}

#[test]
fn extra_bytes_after_the_body_message_are_an_error() {
    let frame = encode_batch_at_version(&sample_batch(), 1, Compression::None).unwrap();
    let mut body = frame[HEADER_LEN..].to_vec();
    body.push(0);
    let frame = raw_frame(0, 1, &body, body.len() as u32);
    assert!(matches!(
        decode_batch(&frame, &limits()),
        Err(DecodeError::TrailingBodyBytes {
            version: 1,
            extra: 1
        })
    ));
    // A v2 body (one byte longer per resource, plus the status) in a v1
    // frame is not a v1 body.
    let v2 = sample_frame(Compression::None);
    let frame = raw_frame(0, 1, &v2[HEADER_LEN..], (v2.len() - HEADER_LEN) as u32);
    assert!(decode_batch(&frame, &limits()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_message(&bytes, &limits());
        let _ = FrameHeader::parse(&bytes, &limits());
    }

    #[test]
    fn random_bodies_in_valid_frames_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        kind in 1u8..=2,
        compressed in any::<bool>(),
        uncompressed_len in 0u32..4096,
    ) {
        let (flags, len) = if compressed { (FLAG_LZ4, uncompressed_len) } else { (0, body.len() as u32) };
        let frame = raw_frame(flags, kind, &body, len);
        let _ = decode_message(&frame, &limits());
    }

    #[test]
    fn mutated_sample_bodies_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let frame = sample_frame(Compression::None);
        let mut body = frame[HEADER_LEN..].to_vec();
        for (at, byte) in edits {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let frame = raw_frame(0, 1, &body, body.len() as u32);
        if let Ok(Decoded { message: Message::Batch(batch), .. }) = decode_message(&frame, &limits()) {
            // Whatever decodes must still respect the limits.
            prop_assert!(batch.record_count() <= limits().max_records_per_batch);
        }
    }
}
