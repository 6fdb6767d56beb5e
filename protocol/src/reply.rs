//! The aggregator's reply to one batch frame.

use std::fmt;

use crate::batch::IdempotencyKey;

/// The aggregator's answer to one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The batch is durably stored; the agent may delete it from its outbox.
    Ack(Ack),
    /// The batch was not stored; see [`ErrorCode`] for what the agent should do.
    Error(ReplyError),
}

/// Acknowledgement of a durably stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The acknowledged batch's sequence number.
    pub sequence: u64,
    /// The acknowledged batch's idempotency key.
    pub idempotency_key: IdempotencyKey,
    /// True when the batch had already been stored earlier (a re-send).
    pub duplicate: bool,
}

/// A refusal, with a machine-readable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError {
    /// Sequence of the refused batch, when the frame was readable far enough.
    pub sequence: Option<u64>,
    /// What went wrong, and so what the agent should do.
    pub code: ErrorCode,
    /// Lowercase message naming the problem (what was expected, what was found).
    pub message: String,
    /// For [`ErrorCode::Throttled`]: seconds to wait before retrying.
    pub retry_after_s: Option<u32>,
}

/// Error classes an aggregator can report. Sent as a `u16`, so codes added
/// later reach older agents as [`ErrorCode::Unknown`] instead of failing to
/// decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The frame's protocol version is not supported (code 1).
    UnsupportedVersion,
    /// The frame could not be decoded: bad magic, checksum, body (code 2).
    MalformedFrame,
    /// The frame decoded but the batch failed validation or limits (code 3).
    InvalidBatch,
    /// The agent is not allowed to send for this account (code 4).
    Unauthorized,
    /// The aggregator is overloaded; retry after a delay (code 5).
    Throttled,
    /// A dependency (e.g. the database) is unavailable (code 6).
    Unavailable,
    /// An internal error in the aggregator (code 7).
    Internal,
    /// A code this build does not know.
    Unknown(u16),
}

impl ErrorCode {
    /// The wire number of this code.
    pub fn as_u16(&self) -> u16 {
        match self {
            ErrorCode::UnsupportedVersion => 1,
            ErrorCode::MalformedFrame => 2,
            ErrorCode::InvalidBatch => 3,
            ErrorCode::Unauthorized => 4,
            ErrorCode::Throttled => 5,
            ErrorCode::Unavailable => 6,
            ErrorCode::Internal => 7,
            ErrorCode::Unknown(code) => *code,
        }
    }

    /// The code for a wire number; unknown numbers map to [`ErrorCode::Unknown`].
    pub fn from_u16(code: u16) -> Self {
        match code {
            1 => ErrorCode::UnsupportedVersion,
            2 => ErrorCode::MalformedFrame,
            3 => ErrorCode::InvalidBatch,
            4 => ErrorCode::Unauthorized,
            5 => ErrorCode::Throttled,
            6 => ErrorCode::Unavailable,
            7 => ErrorCode::Internal,
            other => ErrorCode::Unknown(other),
        }
    }

    /// What the agent should do with the refused batch.
    ///
    /// Unknown codes are treated as retryable so that no data is dropped
    /// because of a code this build does not understand.
    pub fn disposition(&self) -> Disposition {
        match self {
            ErrorCode::Throttled
            | ErrorCode::Unavailable
            | ErrorCode::Internal
            | ErrorCode::Unknown(_) => Disposition::Retry,
            ErrorCode::UnsupportedVersion | ErrorCode::Unauthorized => Disposition::KeepAndStop,
            ErrorCode::MalformedFrame | ErrorCode::InvalidBatch => Disposition::Reject,
        }
    }

    /// Snake-case name, e.g. `invalid_batch`; `unknown_<n>` for unknown codes.
    pub fn name(&self) -> String {
        match self {
            ErrorCode::UnsupportedVersion => "unsupported_version".into(),
            ErrorCode::MalformedFrame => "malformed_frame".into(),
            ErrorCode::InvalidBatch => "invalid_batch".into(),
            ErrorCode::Unauthorized => "unauthorized".into(),
            ErrorCode::Throttled => "throttled".into(),
            ErrorCode::Unavailable => "unavailable".into(),
            ErrorCode::Internal => "internal".into(),
            ErrorCode::Unknown(code) => format!("unknown_{code}"),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What an agent does with a batch the aggregator refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Transient: keep the batch and send it again after a back-off.
    Retry,
    /// Needs operator action (upgrade, credentials): keep the batch, stop
    /// sending, and report.
    KeepAndStop,
    /// The batch itself is bad: sending it again cannot succeed; set it
    /// aside and count it.
    Reject,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_u16() {
        for n in 0..=20u16 {
            assert_eq!(ErrorCode::from_u16(n).as_u16(), n);
        }
        assert_eq!(ErrorCode::from_u16(3), ErrorCode::InvalidBatch);
        assert_eq!(ErrorCode::from_u16(999), ErrorCode::Unknown(999));
    }

    #[test]
    fn unknown_codes_are_retried_not_dropped() {
        assert_eq!(ErrorCode::Unknown(42).disposition(), Disposition::Retry);
        assert_eq!(ErrorCode::InvalidBatch.disposition(), Disposition::Reject);
        assert_eq!(
            ErrorCode::UnsupportedVersion.disposition(),
            Disposition::KeepAndStop
        );
        assert_eq!(ErrorCode::Unknown(42).to_string(), "unknown_42");
    }
}
