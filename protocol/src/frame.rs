//! The frame: a fixed 20-byte header followed by a (possibly compressed)
//! postcard body. Layout, little-endian:
//!
//! | offset | size | field                                             |
//! |--------|------|---------------------------------------------------|
//! | 0      | 4    | magic `b"CNPY"`                                   |
//! | 4      | 2    | protocol version (u16)                            |
//! | 6      | 1    | flags: bit 0 = body is an LZ4 block; others zero  |
//! | 7      | 1    | message kind: 1 = batch, 2 = reply                |
//! | 8      | 4    | body length as sent (u32)                         |
//! | 12     | 4    | body length after decompression (u32)             |
//! | 16     | 4    | CRC-32 (IEEE) of bytes 0..16 followed by the body |
//! | 20     | n    | body                                              |
//!
//! Bytes 0..6 (magic and version) keep their meaning in every version, so
//! any decoder can name the version of a frame it cannot read.

use std::borrow::Cow;
use std::fmt;

use crate::error::{DecodeError, EncodeError};
use crate::limits::DecodeLimits;
use crate::version::{CURRENT_VERSION, MIN_SUPPORTED_VERSION};

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"CNPY";

/// Length of the frame header in bytes.
pub const HEADER_LEN: usize = 20;

/// Flag bit: the body is one LZ4 block.
pub const FLAG_LZ4: u8 = 0x01;

const KNOWN_FLAGS: u8 = FLAG_LZ4;

/// Bytes of the header covered by the checksum (everything before it).
const CHECKSUMMED_HEADER_LEN: usize = 16;

/// Which message a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A [`Batch`](crate::Batch), agent → aggregator.
    Batch,
    /// A [`Reply`](crate::Reply), aggregator → agent.
    Reply,
}

impl MessageKind {
    /// The header byte for this kind.
    pub fn as_u8(&self) -> u8 {
        match self {
            MessageKind::Batch => 1,
            MessageKind::Reply => 2,
        }
    }

    /// The kind for a header byte, if it names one.
    pub fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(MessageKind::Batch),
            2 => Some(MessageKind::Reply),
            _ => None,
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageKind::Batch => "batch",
            MessageKind::Reply => "reply",
        })
    }
}

/// Body compression requested of an encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Send the postcard body as is.
    #[default]
    None,
    /// Compress the body as one LZ4 block when that makes it smaller;
    /// otherwise send it uncompressed (the flag says which).
    Lz4,
}

/// A parsed and limit-checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Protocol version of the body.
    pub version: u16,
    /// True when the body is an LZ4 block.
    pub compressed: bool,
    /// Message carried.
    pub kind: MessageKind,
    /// Body bytes following the header.
    pub body_len: u32,
    /// Body bytes after decompression (equals `body_len` when uncompressed).
    pub uncompressed_len: u32,
    /// CRC-32 of header bytes 0..16 and the body.
    pub crc32: u32,
}

impl FrameHeader {
    /// Parses and checks the header at the start of `bytes` (only the first
    /// [`HEADER_LEN`] bytes are read, so a stream reader can call this on
    /// the header alone and then read [`FrameHeader::frame_len`] bytes).
    ///
    /// Checks, in order: magic, version (naming both versions when the frame
    /// is newer), flags, message kind, frame and body size limits.
    pub fn parse(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        if bytes.len() < 6 {
            return Err(DecodeError::Truncated {
                expected: HEADER_LEN,
                found: bytes.len(),
            });
        }
        let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != MAGIC {
            return Err(DecodeError::BadMagic {
                expected: MAGIC,
                found: magic,
            });
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version > CURRENT_VERSION {
            return Err(DecodeError::NewerVersion {
                found: version,
                newest_supported: CURRENT_VERSION,
            });
        }
        if version < MIN_SUPPORTED_VERSION {
            return Err(DecodeError::OlderVersion {
                found: version,
                oldest_supported: MIN_SUPPORTED_VERSION,
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::Truncated {
                expected: HEADER_LEN,
                found: bytes.len(),
            });
        }
        let flags = bytes[6];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::UnknownFlags {
                known: KNOWN_FLAGS,
                found: flags,
            });
        }
        let kind = MessageKind::from_u8(bytes[7])
            .ok_or(DecodeError::UnknownMessageKind { found: bytes[7] })?;
        let body_len = read_u32(bytes, 8);
        let uncompressed_len = read_u32(bytes, 12);
        let crc32 = read_u32(bytes, 16);
        let frame_len = HEADER_LEN as u64 + u64::from(body_len);
        if frame_len > limits.max_frame_bytes as u64 {
            return Err(DecodeError::FrameTooLarge {
                max: limits.max_frame_bytes,
                found: frame_len,
            });
        }
        if u64::from(uncompressed_len) > limits.max_body_bytes as u64 {
            return Err(DecodeError::BodyTooLarge {
                max: limits.max_body_bytes,
                found: u64::from(uncompressed_len),
            });
        }
        let compressed = flags & FLAG_LZ4 != 0;
        if !compressed && body_len != uncompressed_len {
            return Err(DecodeError::LengthMismatch {
                body_len,
                uncompressed_len,
            });
        }
        Ok(Self {
            version,
            compressed,
            kind,
            body_len,
            uncompressed_len,
            crc32,
        })
    }

    /// Length of the whole frame (header + body) in bytes.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn checksum(header: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..CHECKSUMMED_HEADER_LEN]);
    hasher.update(body);
    hasher.finalize()
}

/// Wraps an encoded body into a frame, compressing it if asked and useful.
pub(crate) fn seal(
    version: u16,
    kind: MessageKind,
    body: &[u8],
    compression: Compression,
) -> Result<Vec<u8>, EncodeError> {
    let uncompressed_len = to_u32(body.len(), "body length")?;
    let packed = match compression {
        Compression::None => None,
        Compression::Lz4 => {
            Some(lz4_flex::block::compress(body)).filter(|packed| packed.len() < body.len())
        }
    };
    let (flags, wire_body): (u8, &[u8]) = match &packed {
        Some(packed) => (FLAG_LZ4, packed),
        None => (0, body),
    };
    let body_len = to_u32(wire_body.len(), "compressed body length")?;
    let mut frame = Vec::with_capacity(HEADER_LEN + wire_body.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&version.to_le_bytes());
    frame.push(flags);
    frame.push(kind.as_u8());
    frame.extend_from_slice(&body_len.to_le_bytes());
    frame.extend_from_slice(&uncompressed_len.to_le_bytes());
    let crc = checksum(&frame, wire_body);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame.extend_from_slice(wire_body);
    Ok(frame)
}

fn to_u32(len: usize, what: &'static str) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLarge {
        what,
        max: u64::from(u32::MAX),
        found: len as u64,
    })
}

/// Checks a whole frame and returns its header and decompressed body.
pub(crate) fn open<'f>(
    frame: &'f [u8],
    limits: &DecodeLimits,
) -> Result<(FrameHeader, Cow<'f, [u8]>), DecodeError> {
    let header = FrameHeader::parse(frame, limits)?;
    let expected = header.frame_len();
    if frame.len() < expected {
        return Err(DecodeError::Truncated {
            expected,
            found: frame.len(),
        });
    }
    if frame.len() > expected {
        return Err(DecodeError::TrailingBytes {
            expected,
            found: frame.len(),
        });
    }
    let wire_body = &frame[HEADER_LEN..];
    let computed = checksum(frame, wire_body);
    if computed != header.crc32 {
        return Err(DecodeError::ChecksumMismatch {
            expected: header.crc32,
            computed,
        });
    }
    if !header.compressed {
        return Ok((header, Cow::Borrowed(wire_body)));
    }
    // The output buffer is exactly the declared size, which the header check
    // bounded by `max_body_bytes`: the decompressor cannot write past it.
    let mut body = vec![0u8; header.uncompressed_len as usize];
    let written = lz4_flex::block::decompress_into(wire_body, &mut body).map_err(|e| {
        DecodeError::Decompress {
            detail: e.to_string(),
        }
    })?;
    if written != body.len() {
        return Err(DecodeError::Decompress {
            detail: format!(
                "expected {} bytes after decompression, found {written}",
                body.len()
            ),
        });
    }
    Ok((header, Cow::Owned(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    #[test]
    fn sealed_uncompressed_frame_has_documented_layout() {
        let frame = seal(1, MessageKind::Reply, b"abc", Compression::None).unwrap();
        assert_eq!(frame.len(), HEADER_LEN + 3);
        assert_eq!(&frame[0..4], b"CNPY");
        assert_eq!(&frame[4..6], &[1, 0]);
        assert_eq!(frame[6], 0);
        assert_eq!(frame[7], 2);
        assert_eq!(&frame[8..12], &[3, 0, 0, 0]);
        assert_eq!(&frame[12..16], &[3, 0, 0, 0]);
        let mut h = crc32fast::Hasher::new();
        h.update(&frame[..16]);
        h.update(b"abc");
        assert_eq!(&frame[16..20], &h.finalize().to_le_bytes());
        let (header, body) = open(&frame, &limits()).unwrap();
        assert_eq!(header.kind, MessageKind::Reply);
        assert_eq!(&*body, b"abc");
    }

    #[test]
    fn compressible_body_is_compressed_and_restored() {
        let body = vec![7u8; 10_000];
        let frame = seal(1, MessageKind::Batch, &body, Compression::Lz4).unwrap();
        assert_eq!(frame[6], FLAG_LZ4);
        assert!(
            frame.len() < 200,
            "10,000 equal bytes compressed to {} bytes",
            frame.len()
        );
        let (header, restored) = open(&frame, &limits()).unwrap();
        assert!(header.compressed);
        assert_eq!(header.uncompressed_len, 10_000);
        assert_eq!(&*restored, &body[..]);
    }

    #[test]
    fn incompressible_body_is_sent_raw() {
        let frame = seal(1, MessageKind::Batch, b"xy", Compression::Lz4).unwrap();
        assert_eq!(frame[6], 0);
    }

    #[test]
    fn declared_decompressed_size_above_limit_is_refused_before_allocating() {
        let body = vec![0u8; 4_096];
        let frame = seal(1, MessageKind::Batch, &body, Compression::Lz4).unwrap();
        let small = DecodeLimits {
            max_body_bytes: 1_024,
            ..limits()
        };
        match open(&frame, &small) {
            Err(DecodeError::BodyTooLarge {
                max: 1_024,
                found: 4_096,
            }) => {}
            other => panic!("expected BodyTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn lying_uncompressed_length_is_a_decompress_error() {
        let body = vec![1u8; 4_096];
        let mut frame = seal(1, MessageKind::Batch, &body, Compression::Lz4).unwrap();
        // Claim 8,192 decompressed bytes and fix the checksum.
        frame[12..16].copy_from_slice(&8_192u32.to_le_bytes());
        let crc = checksum(&frame, &frame[HEADER_LEN..]);
        frame[16..20].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            open(&frame, &limits()),
            Err(DecodeError::Decompress { .. })
        ));
    }
}
