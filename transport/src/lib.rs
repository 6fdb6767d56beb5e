//! QUIC transport between Canopy agents and aggregators.
//!
//! - **Enrolment** ([`enroll`], [`EnrollmentSession`]): the agent proves its
//!   AWS account and role by sending a SigV4-signed `sts:GetCallerIdentity`
//!   request bound to a per-enrolment challenge; the aggregator checks it,
//!   forwards it to STS, checks account and role, and issues a short-lived
//!   client certificate from its own CA ([`CertificateAuthority`]).
//! - **Batches** ([`Client`], [`Server`], [`BatchHandler`]): mutual TLS;
//!   each batch frame travels on its own bidirectional stream and gets one
//!   reply frame. The server refuses any batch whose account differs from
//!   the client certificate's before a handler sees it.
//!
//! See `README.md` for the protocol, what is verified where, and limits.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod allowed;
pub mod ca;
pub mod client;
pub mod enroll_client;
pub mod enroll_server;
pub mod error;
pub mod identity;
pub mod server;
pub mod sigv4;
pub mod sts;
pub mod tls;
pub mod verify;
pub mod wire;

pub use allowed::AllowedAccounts;
pub use ca::{CertificateAuthority, CertifiedKey};
pub use client::{Client, ClientConfig, RetryPolicy};
pub use enroll_client::{AgentCertificate, ChallengePin, EnrollConfig, EnrollmentSession, enroll};
pub use enroll_server::EnrollmentPolicy;
pub use error::{CaError, EnrollError, IdentityError, Refusal, RefusalCode, TransportError};
pub use identity::PeerIdentity;
pub use server::{BatchHandler, InboundBatch, PeerLimits, Server, ServerConfig, ServerStats};
pub use tls::QuicTuning;
