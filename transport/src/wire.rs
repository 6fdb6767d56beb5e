//! Enrolment messages on the enrolment stream: each is a 4-byte
//! little-endian length followed by a postcard body. Transport-internal:
//! both ends come from this crate, and [`ENROLL_WIRE_VERSION`] in the
//! `Hello` lets a later version refuse an older peer by name.

use serde::{Deserialize, Serialize};

use crate::error::{Refusal, TransportError};

/// Version of the enrolment messages.
pub const ENROLL_WIRE_VERSION: u16 = 1;

/// Largest enrolment message accepted, bytes.
pub const MAX_ENROLL_MESSAGE_BYTES: usize = 64 * 1024;

/// Agent → aggregator: opens an enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`ENROLL_WIRE_VERSION`] of the agent.
    pub version: u16,
    /// Agent id to put in the certificate.
    pub agent_id: String,
}

/// Aggregator → agent: what the signed request must contain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Value the agent must send, signed, in `X-Canopy-Server-Id`:
    /// `<server id>/<nonce>`.
    pub server_id_header: String,
    /// STS endpoint to sign for (its host must be the signed `Host`).
    pub sts_url: String,
    /// SigV4 region to sign for.
    pub sts_region: String,
    /// Aggregator clock, Unix seconds (lets the agent report skew).
    pub server_time_unix_s: i64,
}

/// A signed HTTP request, as sent by the agent and forwarded to STS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRequest {
    /// HTTP method.
    pub method: String,
    /// Full URL the request was signed for.
    pub url: String,
    /// Headers as signed (names lowercase), including `authorization`.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

impl SignedRequest {
    /// Values of header `name` (case-insensitive).
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let name = name.to_owned();
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every value of header `name` with `value` (adds it when
    /// absent).
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
    }
}

/// Agent → aggregator: the proof and the key to certify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// Signed `sts:GetCallerIdentity` request.
    pub sts_request: SignedRequest,
    /// PKCS#10 certificate signing request, DER.
    pub csr_der: Vec<u8>,
}

/// Aggregator → agent: the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrollResponse {
    /// The certificate was issued.
    Issued {
        /// Client certificate, DER.
        cert_der: Vec<u8>,
        /// Lifetime from issuance, seconds (the agent renews after 2/3).
        lifetime_s: u64,
    },
    /// Enrolment was refused.
    Refused(Refusal),
}

/// Writes one length-prefixed message.
pub async fn write_message<T: Serialize>(
    send: &mut quinn::SendStream,
    message: &T,
) -> Result<(), TransportError> {
    let body = postcard::to_allocvec(message)
        .map_err(|e| TransportError::Protocol(format!("cannot encode enrolment message: {e}")))?;
    if body.len() > MAX_ENROLL_MESSAGE_BYTES {
        return Err(TransportError::Protocol(format!(
            "expected an enrolment message of at most {MAX_ENROLL_MESSAGE_BYTES} bytes, found {}",
            body.len()
        )));
    }
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&(body.len() as u32).to_le_bytes());
    framed.extend_from_slice(&body);
    send.write_all(&framed).await?;
    Ok(())
}

/// Reads one length-prefixed message.
pub async fn read_message<T: for<'de> Deserialize<'de>>(
    recv: &mut quinn::RecvStream,
) -> Result<T, TransportError> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len)
        .await
        .map_err(|e| TransportError::Read(e.to_string()))?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_ENROLL_MESSAGE_BYTES {
        return Err(TransportError::Protocol(format!(
            "expected an enrolment message of at most {MAX_ENROLL_MESSAGE_BYTES} bytes, found {len}"
        )));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| TransportError::Read(e.to_string()))?;
    postcard::from_bytes(&body)
        .map_err(|e| TransportError::Protocol(format!("cannot decode enrolment message: {e}")))
}
