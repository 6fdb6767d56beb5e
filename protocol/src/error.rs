//! Errors of encoding and decoding frames.

use thiserror::Error;

use crate::frame::MessageKind;
use crate::location::RecordRef;
use crate::reply::ErrorCode;

/// Why a frame could not be decoded. Decoding never panics: every problem
/// with untrusted bytes is one of these.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// Fewer bytes than the header or the header's body length requires.
    #[error("truncated frame: expected {expected} bytes, found {found}")]
    Truncated {
        /// Bytes required.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// More bytes than the header's body length accounts for.
    #[error("trailing bytes after frame: expected {expected} bytes, found {found}")]
    TrailingBytes {
        /// Bytes the header accounts for.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The first four bytes are not the Canopy magic.
    #[error("bad magic: expected {expected:02x?}, found {found:02x?}")]
    BadMagic {
        /// The magic every frame starts with.
        expected: [u8; 4],
        /// What the frame starts with.
        found: [u8; 4],
    },
    /// The frame was written by a newer protocol version than this build reads.
    #[error(
        "frame protocol version {found} is newer than the newest version this decoder supports ({newest_supported}); upgrade the receiver"
    )]
    NewerVersion {
        /// Version in the frame.
        found: u16,
        /// Newest version this build reads.
        newest_supported: u16,
    },
    /// The frame was written by a protocol version this build no longer reads.
    #[error(
        "frame protocol version {found} is older than the oldest version this decoder supports ({oldest_supported}); upgrade the sender"
    )]
    OlderVersion {
        /// Version in the frame.
        found: u16,
        /// Oldest version this build reads.
        oldest_supported: u16,
    },
    /// Flag bits this version does not define are set.
    #[error("unknown frame flags: expected only bits {known:#04x}, found {found:#04x}")]
    UnknownFlags {
        /// Bits this version defines.
        known: u8,
        /// The flags byte.
        found: u8,
    },
    /// The message-kind byte names no known message.
    #[error("unknown message kind: expected 1 (batch) or 2 (reply), found {found}")]
    UnknownMessageKind {
        /// The kind byte.
        found: u8,
    },
    /// The frame holds a different message than the caller asked for.
    #[error("wrong message kind: expected {expected}, found {found}")]
    WrongMessageKind {
        /// Kind asked for.
        expected: MessageKind,
        /// Kind in the frame.
        found: MessageKind,
    },
    /// The frame is larger than [`DecodeLimits::max_frame_bytes`](crate::DecodeLimits::max_frame_bytes).
    #[error("frame too large: expected at most {max} bytes, found {found}")]
    FrameTooLarge {
        /// The limit.
        max: usize,
        /// Declared frame size.
        found: u64,
    },
    /// The declared decompressed body is larger than
    /// [`DecodeLimits::max_body_bytes`](crate::DecodeLimits::max_body_bytes).
    #[error("body too large: expected at most {max} bytes after decompression, found {found}")]
    BodyTooLarge {
        /// The limit.
        max: usize,
        /// Declared decompressed size.
        found: u64,
    },
    /// An uncompressed frame whose two length fields disagree.
    #[error(
        "inconsistent lengths in uncompressed frame: body length {body_len}, uncompressed length {uncompressed_len}"
    )]
    LengthMismatch {
        /// Body length field.
        body_len: u32,
        /// Uncompressed length field.
        uncompressed_len: u32,
    },
    /// The CRC-32 over header and body does not match the header's.
    #[error("checksum mismatch: header says {expected:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum in the header.
        expected: u32,
        /// Checksum of the bytes received.
        computed: u32,
    },
    /// The LZ4 body is corrupt or does not expand to the declared size.
    #[error("corrupt compressed body: {detail}")]
    Decompress {
        /// What the decompressor reported.
        detail: String,
    },
    /// The body is not a valid encoding of the message at its version.
    #[error("malformed v{version} {kind} body: {source}")]
    Body {
        /// Protocol version of the frame.
        version: u16,
        /// Message kind of the frame.
        kind: MessageKind,
        /// The deserialiser's error.
        source: postcard::Error,
    },
    /// The body has bytes after the message.
    #[error("malformed v{version} body: {extra} unread bytes after the message")]
    TrailingBodyBytes {
        /// Protocol version of the frame.
        version: u16,
        /// Bytes left over.
        extra: usize,
    },
    /// A record refers to a string-table entry that does not exist.
    #[error("{record}.{field}: expected a string index below {table_len}, found {index}")]
    DanglingString {
        /// Where.
        record: RecordRef,
        /// Which field.
        field: &'static str,
        /// Index found.
        index: u32,
        /// Length of the string table.
        table_len: usize,
    },
    /// A count or size exceeds a [`DecodeLimits`](crate::DecodeLimits) limit.
    #[error("{record}.{field}: expected at most {max}, found {found}")]
    LimitExceeded {
        /// Where.
        record: RecordRef,
        /// Which field or quantity.
        field: &'static str,
        /// The limit.
        max: usize,
        /// Actual amount.
        found: usize,
    },
    /// A resource carries the same tag key twice.
    #[error("{record}.tags: duplicate tag key {key:?}")]
    DuplicateTagKey {
        /// Where.
        record: RecordRef,
        /// The repeated key.
        key: String,
    },
    /// A resource carries the same attribute name twice.
    #[error("{record}.attributes: duplicate attribute key {key:?}")]
    DuplicateAttributeKey {
        /// Where.
        record: RecordRef,
        /// The repeated name.
        key: String,
    },
}

impl DecodeError {
    /// The reply code an aggregator should answer this error with.
    pub fn reply_code(&self) -> ErrorCode {
        match self {
            DecodeError::NewerVersion { .. } | DecodeError::OlderVersion { .. } => {
                ErrorCode::UnsupportedVersion
            }
            DecodeError::FrameTooLarge { .. }
            | DecodeError::BodyTooLarge { .. }
            | DecodeError::LimitExceeded { .. }
            | DecodeError::DuplicateTagKey { .. }
            | DecodeError::DuplicateAttributeKey { .. } => ErrorCode::InvalidBatch,
            _ => ErrorCode::MalformedFrame,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// Encoding at a version this build cannot write was requested.
    #[error("cannot encode protocol version {requested}: expected {oldest}..={newest}")]
    UnsupportedVersion {
        /// Version asked for.
        requested: u16,
        /// Oldest version this build writes.
        oldest: u16,
        /// Newest version this build writes.
        newest: u16,
    },
    /// The body does not fit the frame's 32-bit length fields or string indices.
    #[error("message too large to encode: {what} expected at most {max}, found {found}")]
    TooLarge {
        /// What overflowed.
        what: &'static str,
        /// The maximum.
        max: u64,
        /// Actual amount.
        found: u64,
    },
    /// The batch holds data the requested (older) version has no field for;
    /// encoding it there would drop it silently.
    #[error("cannot encode at protocol version {version}: {what} has no field before version {since}")]
    NotInVersion {
        /// Version asked for.
        version: u16,
        /// What could not be represented, e.g. `resources[2].attributes`.
        what: String,
        /// First version with that field.
        since: u16,
    },
    /// The serialiser failed.
    #[error("cannot serialise message: {0}")]
    Serialize(#[from] postcard::Error),
}
