//! Agent side of the proof: a SigV4-signed `sts:GetCallerIdentity` request
//! carrying the aggregator's challenge in a signed header.
//!
//! The agent never sends its AWS credentials, only a request signed with
//! them; STS answers it with the caller's account and ARN. The signature
//! covers the challenge header, so the request is useless to any other
//! aggregator (other server id) or a later enrolment (other nonce).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;

use crate::error::EnrollError;
use crate::wire::{Challenge, SignedRequest};

/// The only body the aggregator forwards to STS.
pub const GET_CALLER_IDENTITY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// Content type of the STS query request.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Signed header carrying the challenge, `<server id>/<nonce>`.
pub const SERVER_ID_HEADER: &str = "x-canopy-server-id";

/// Builds and signs the `GetCallerIdentity` POST for `challenge` with
/// `credentials` at time `now`.
///
/// Signed headers: `content-type`, `host`, `x-amz-content-sha256` (SHA-256
/// of the body), `x-amz-date`, `x-canopy-server-id`, and
/// `x-amz-security-token` when the credentials are temporary.
pub fn sign_get_caller_identity(
    credentials: &Credentials,
    challenge: &Challenge,
    now: SystemTime,
) -> Result<SignedRequest, EnrollError> {
    let uri: http::Uri = challenge
        .sts_url
        .parse()
        .map_err(|e| EnrollError::Signing(format!("sts url {:?}: {e}", challenge.sts_url)))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| {
            EnrollError::Signing(format!(
                "expected a host in sts url {:?}",
                challenge.sts_url
            ))
        })?;
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), FORM_CONTENT_TYPE.into()),
        ("host".into(), host),
        (SERVER_ID_HEADER.into(), challenge.server_id_header.clone()),
    ];
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&challenge.sts_region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| EnrollError::Signing(e.to_string()))?
        .into();
    let body = GET_CALLER_IDENTITY_BODY.as_bytes();
    let signable = SignableRequest::new(
        "POST",
        &challenge.sts_url,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| EnrollError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| EnrollError::Signing(e.to_string()))?
        .into_parts();
    for (name, value) in instructions.headers() {
        headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    Ok(SignedRequest {
        method: "POST".into(),
        url: challenge.sts_url.clone(),
        headers,
        body: body.to_vec(),
    })
}
