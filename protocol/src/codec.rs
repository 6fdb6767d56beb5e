//! Encoding messages into frames and decoding frames into messages, with
//! dispatch on the frame's protocol version.

use serde::Deserialize;

use crate::batch::Batch;
use crate::error::{DecodeError, EncodeError};
use crate::frame::{self, Compression, FrameHeader, MessageKind};
use crate::limits::DecodeLimits;
use crate::reply::Reply;
use crate::{v1, v2};
use crate::version::{CURRENT_VERSION, MIN_SUPPORTED_VERSION};

/// A decoded message of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A batch (agent → aggregator).
    Batch(Batch),
    /// A reply (aggregator → agent).
    Reply(Reply),
}

/// A decoded frame: its protocol version and its message, upgraded to the
/// current in-memory types.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Version the sender wrote; reply to it in this version.
    pub version: u16,
    /// The message.
    pub message: Message,
}

/// Encodes `batch` as one frame at [`CURRENT_VERSION`].
///
/// Encoding does not validate: call [`Batch::validate`] first to make sure
/// the receiver will accept it.
pub fn encode_batch(batch: &Batch, compression: Compression) -> Result<Vec<u8>, EncodeError> {
    encode_batch_at_version(batch, CURRENT_VERSION, compression)
}

/// Encodes `batch` as one frame at an older supported `version`, as an agent
/// of that version would (for tests of mixed fleets and for staged
/// roll-outs). A batch holding data `version` has no field for (resource
/// attributes or an agent status at v1) is refused with
/// [`EncodeError::NotInVersion`] rather than encoded without it.
pub fn encode_batch_at_version(
    batch: &Batch,
    version: u16,
    compression: Compression,
) -> Result<Vec<u8>, EncodeError> {
    let body = match version {
        1 => postcard::to_allocvec(&v1::batch_to_wire(batch)?)?,
        2 => postcard::to_allocvec(&v2::batch_to_wire(batch)?)?,
        requested => {
            return Err(EncodeError::UnsupportedVersion {
                requested,
                oldest: MIN_SUPPORTED_VERSION,
                newest: CURRENT_VERSION,
            });
        }
    };
    frame::seal(version, MessageKind::Batch, &body, compression)
}

/// Encodes `reply` as one uncompressed frame at `version`, which should be
/// the version of the batch frame it answers so an older agent can read it.
/// v2 replies have v1's body layout.
pub fn encode_reply(reply: &Reply, version: u16) -> Result<Vec<u8>, EncodeError> {
    let body = match version {
        1 | 2 => postcard::to_allocvec(&v1::reply_to_wire(reply))?,
        requested => {
            return Err(EncodeError::UnsupportedVersion {
                requested,
                oldest: MIN_SUPPORTED_VERSION,
                newest: CURRENT_VERSION,
            });
        }
    };
    frame::seal(version, MessageKind::Reply, &body, Compression::None)
}

/// Decodes one whole frame of either kind.
pub fn decode_message(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, DecodeError> {
    let (header, body) = frame::open(bytes, limits)?;
    let message = match header.kind {
        MessageKind::Batch => Message::Batch(batch_body(&header, &body, limits)?),
        MessageKind::Reply => Message::Reply(reply_body(&header, &body, limits)?),
    };
    Ok(Decoded {
        version: header.version,
        message,
    })
}

/// Decodes one whole frame that must carry a batch.
pub fn decode_batch(bytes: &[u8], limits: &DecodeLimits) -> Result<Batch, DecodeError> {
    let (header, body) = frame::open(bytes, limits)?;
    expect_kind(&header, MessageKind::Batch)?;
    batch_body(&header, &body, limits)
}

/// Decodes one whole frame that must carry a reply.
pub fn decode_reply(bytes: &[u8], limits: &DecodeLimits) -> Result<Reply, DecodeError> {
    let (header, body) = frame::open(bytes, limits)?;
    expect_kind(&header, MessageKind::Reply)?;
    reply_body(&header, &body, limits)
}

fn expect_kind(header: &FrameHeader, expected: MessageKind) -> Result<(), DecodeError> {
    if header.kind != expected {
        return Err(DecodeError::WrongMessageKind {
            expected,
            found: header.kind,
        });
    }
    Ok(())
}

fn batch_body(
    header: &FrameHeader,
    body: &[u8],
    limits: &DecodeLimits,
) -> Result<Batch, DecodeError> {
    match header.version {
        1 => v1::batch_from_wire(v1::parse_batch(body, limits)?, limits),
        2 => v2::batch_from_wire(v2::parse_batch(body, limits)?, limits),
        other => Err(unsupported(other)),
    }
}

fn reply_body(
    header: &FrameHeader,
    body: &[u8],
    limits: &DecodeLimits,
) -> Result<Reply, DecodeError> {
    match header.version {
        1 | 2 => v1::reply_from_wire(parse_body(body, header)?, limits),
        other => Err(unsupported(other)),
    }
}

/// The error for a version the header check let through but no body
/// decoder handles (kept so adding a version cannot silently misdecode).
fn unsupported(version: u16) -> DecodeError {
    if version > CURRENT_VERSION {
        DecodeError::NewerVersion {
            found: version,
            newest_supported: CURRENT_VERSION,
        }
    } else {
        DecodeError::OlderVersion {
            found: version,
            oldest_supported: MIN_SUPPORTED_VERSION,
        }
    }
}

fn parse_body<'b, T: Deserialize<'b>>(
    body: &'b [u8],
    header: &FrameHeader,
) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|source| DecodeError::Body {
            version: header.version,
            kind: header.kind,
            source,
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBodyBytes {
            version: header.version,
            extra: rest.len(),
        });
    }
    Ok(value)
}
