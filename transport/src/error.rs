//! Error types. Messages are lowercase and name what was expected and what
//! was found.

use serde::{Deserialize, Serialize};

/// A certificate or ARN does not describe a usable agent identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// An account id that is not 12 ASCII digits.
    #[error("expected a 12-digit aws account id, found {found:?}")]
    BadAccountId {
        /// The rejected value.
        found: String,
    },
    /// A caller ARN that is not a role.
    #[error("caller arn {arn:?} refused: {reason}")]
    BadCallerArn {
        /// The rejected ARN.
        arn: String,
        /// What was expected.
        reason: String,
    },
    /// A certificate without the expected identity fields.
    #[error("client certificate: {0}")]
    Certificate(String),
}

/// Building or loading certificates and keys failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// rcgen refused the parameters, key or CSR.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A PEM input had no usable item of the expected kind.
    #[error("expected {expected} in pem input, found none")]
    Pem {
        /// The item that was looked for.
        expected: &'static str,
    },
    /// rustls refused the key or certificate.
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A TLS client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// Why the aggregator refused an enrolment, sent to the agent as a code and
/// a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalCode {
    /// The signed request is malformed or lacks a required signed header.
    BadRequest,
    /// The challenge (server id and nonce) is missing or wrong.
    BadChallenge,
    /// `X-Amz-Date` is outside the allowed clock skew.
    StaleDate,
    /// The same signature was seen before within its validity window.
    Replayed,
    /// The body does not match the signed payload hash.
    Tampered,
    /// STS refused the signature or credentials.
    StsRejected,
    /// STS could not be reached or answered something unreadable.
    StsUnavailable,
    /// The account is not one of the organisation's allowed accounts.
    AccountNotAllowed,
    /// The caller is not the expected role.
    WrongRole,
    /// The certificate signing request could not be used.
    BadCsr,
    /// The aggregator failed internally.
    Internal,
}

impl RefusalCode {
    /// True when trying again later (with a fresh signature) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RefusalCode::StsUnavailable | RefusalCode::Internal | RefusalCode::StaleDate
        )
    }
}

/// A refusal: code and lowercase message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct Refusal {
    /// Class of the refusal.
    pub code: RefusalCode,
    /// What was expected and what was found.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Agent-side enrolment failures.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The aggregator refused the request.
    #[error("enrolment refused: {0}")]
    Refused(#[from] Refusal),
    /// QUIC connection or stream failure.
    #[error("enrolment transport: {0}")]
    Transport(#[from] TransportError),
    /// AWS credentials could not be obtained.
    #[error("aws credentials: {0}")]
    Credentials(String),
    /// SigV4 signing failed.
    #[error("signing sts:GetCallerIdentity: {0}")]
    Signing(String),
    /// Key or CSR generation, or the issued certificate, failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The issued certificate lacks the expected identity.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The aggregator's challenge named another server id or STS endpoint
    /// than the agent is configured with; nothing was signed.
    #[error("enrolment challenge: {0}")]
    ChallengeNotPinned(String),
}

impl EnrollError {
    /// True when the same enrolment may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            EnrollError::Refused(r) => r.code.is_retryable(),
            EnrollError::Transport(t) => t.is_retryable(),
            EnrollError::Credentials(_) => true,
            EnrollError::Signing(_)
            | EnrollError::Ca(_)
            | EnrollError::Identity(_)
            | EnrollError::ChallengeNotPinned(_) => false,
        }
    }
}

/// QUIC, TLS and framing failures shared by client and server.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Socket or endpoint error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// TLS or certificate configuration error.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The QUIC connection could not be started.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC connection failed or was closed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing a stream failed.
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading a stream failed.
    #[error("stream read: {0}")]
    Read(String),
    /// Establishing the connection took longer than allowed.
    #[error("timed out after {after_ms} ms while {during}")]
    Timeout {
        /// What was being waited for.
        during: &'static str,
        /// Time allowed.
        after_ms: u64,
    },
    /// The peer sent bytes that do not follow the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The client was shut down.
    #[error("client is closed")]
    Closed,
}

impl TransportError {
    /// True for failures a reconnect or resend can cure.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Io(_)
            | TransportError::Connect(_)
            | TransportError::Connection(_)
            | TransportError::Write(_)
            | TransportError::Read(_)
            | TransportError::Timeout { .. } => true,
            TransportError::Ca(_) | TransportError::Protocol(_) | TransportError::Closed => false,
        }
    }
}
