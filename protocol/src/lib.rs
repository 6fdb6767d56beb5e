//! Canopy's agent ↔ aggregator wire protocol: the only serialisation
//! boundary of the project.
//!
//! - In-memory message types: [`Batch`] (envelope + [`ResourceRecord`]s +
//!   [`EmissionRecord`]s + an optional [`AgentStatus`]) and [`Reply`] (ack
//!   or error).
//! - Frames: a 20-byte checksummed header and a postcard body, optionally
//!   LZ4-compressed ([`encode_batch`], [`decode_batch`], [`decode_message`],
//!   [`FrameHeader::parse`] for stream readers). The agent's outbox and the
//!   QUIC streams carry the same frames.
//! - Versions: each released wire version's types are frozen in their own
//!   module (`v1`, `v2`); decoders read every version from
//!   [`MIN_SUPPORTED_VERSION`] to [`CURRENT_VERSION`] and reject newer ones
//!   with an error naming both versions.
//! - Limits on everything a frame can make the decoder do ([`DecodeLimits`])
//!   and structural validation ([`Batch::validate`]).
//!
//! See `README.md` for the byte layout and the evolution rule.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod codec;
mod emission;
mod error;
mod frame;
mod key;
mod limits;
mod location;
mod reply;
mod resource;
mod status;
mod v1;
mod v2;
mod validate;
mod version;

pub use batch::{Batch, IdempotencyKey};
pub use codec::{
    Decoded, Message, decode_batch, decode_message, decode_reply, encode_batch, encode_batch_at_version,
    encode_reply,
};
pub use emission::{EmissionRecord, GridFactorUsed, GroupKey, Quality, Subject};
pub use error::{DecodeError, EncodeError};
pub use frame::{Compression, FLAG_LZ4, FrameHeader, HEADER_LEN, MAGIC, MessageKind};
pub use key::RecordKey;
pub use limits::DecodeLimits;
pub use location::RecordRef;
pub use reply::{Ack, Disposition, ErrorCode, Reply, ReplyError};
pub use resource::{
    Accelerator, AcceleratorKind, CpuArchitecture, LifecycleState, ResourceRecord, Size, SizeUnit,
};
pub use status::AgentStatus;
pub use validate::ValidationError;
pub use version::{CURRENT_VERSION, MIN_SUPPORTED_VERSION, is_supported};
