//! Aggregator-side checks of a signed `GetCallerIdentity` request before it
//! is forwarded to STS, and the replay cache.
//!
//! What is checked here (locally, before STS sees the request):
//! method `POST`; body exactly [`GET_CALLER_IDENTITY_BODY`]; a single
//! well-formed `authorization` header using `AWS4-HMAC-SHA256` with scope
//! `<date>/<configured region>/sts/aws4_request`; the signed-header list
//! includes `host`, `x-amz-date`, `x-amz-content-sha256`, `content-type`
//! and `x-canopy-server-id` (and `x-amz-security-token` when present);
//! `host` equals the configured STS endpoint's host; the challenge header
//! equals this enrolment's `<server id>/<nonce>`; `x-amz-date` is within
//! the allowed skew and its day equals the scope's; `x-amz-content-sha256`
//! equals the SHA-256 of the body; no header appears twice; the signature
//! has not been seen before within its validity window.
//!
//! What only STS checks: that the signature is the HMAC of this exact
//! request under a secret key AWS knows, i.e. that no signed header value
//! (challenge, date, host, token) nor the body was changed after signing,
//! and that the credentials are valid and unexpired.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Refusal, RefusalCode};
use crate::sigv4::{GET_CALLER_IDENTITY_BODY, SERVER_ID_HEADER};
use crate::wire::SignedRequest;

/// Headers that must be listed in `SignedHeaders`.
pub const REQUIRED_SIGNED_HEADERS: [&str; 5] = [
    "content-type",
    "host",
    "x-amz-content-sha256",
    "x-amz-date",
    SERVER_ID_HEADER,
];

/// What a signed request must match.
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    /// `host[:port]` of the configured STS endpoint.
    pub sts_host: String,
    /// SigV4 region the request must be scoped to.
    pub sts_region: String,
    /// Largest allowed difference between `x-amz-date` and the aggregator's clock.
    pub max_clock_skew: Duration,
}

/// The parsed `authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Access key id.
    pub access_key_id: String,
    /// Scope date, `YYYYMMDD`.
    pub scope_date: String,
    /// Scope region.
    pub scope_region: String,
    /// Scope service.
    pub scope_service: String,
    /// Signed header names, lowercase.
    pub signed_headers: Vec<String>,
    /// Hex signature.
    pub signature: String,
}

fn bad(code: RefusalCode, message: impl Into<String>) -> Refusal {
    Refusal::new(code, message)
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
pub fn parse_authorization(value: &str) -> Result<Authorization, Refusal> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ").ok_or_else(|| {
        bad(
            RefusalCode::BadRequest,
            "expected an AWS4-HMAC-SHA256 authorization header",
        )
    })?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (key, val) = part.trim().split_once('=').ok_or_else(|| {
            bad(
                RefusalCode::BadRequest,
                format!("expected key=value in authorization header, found {part:?}"),
            )
        })?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(bad(
                    RefusalCode::BadRequest,
                    format!("unexpected authorization field {other:?}"),
                ));
            }
        };
        if slot.replace(val).is_some() {
            return Err(bad(
                RefusalCode::BadRequest,
                format!("authorization field {key} appears twice"),
            ));
        }
    }
    let missing = |f: &str| bad(RefusalCode::BadRequest, format!("authorization lacks {f}"));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(bad(
            RefusalCode::BadRequest,
            format!(
                "expected credential <key>/<date>/<region>/<service>/aws4_request, found {credential:?}"
            ),
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            RefusalCode::BadRequest,
            format!(
                "expected a 64-hex-digit signature, found {} characters",
                signature.len()
            ),
        ));
    }
    Ok(Authorization {
        access_key_id: scope[0].to_owned(),
        scope_date: scope[1].to_owned(),
        scope_region: scope[2].to_owned(),
        scope_service: scope[3].to_owned(),
        signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// Parses an `x-amz-date` value `YYYYMMDDTHHMMSSZ` into Unix seconds.
pub fn parse_amz_date(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> { value.get(r)?.parse::<u32>().ok() };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?;
    let day = u8::try_from(digits(6..8)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let t = time::Time::from_hms(
        u8::try_from(digits(9..11)?).ok()?,
        u8::try_from(digits(11..13)?).ok()?,
        u8::try_from(digits(13..15)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_s(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn single_header<'a>(req: &'a SignedRequest, name: &str) -> Result<&'a str, Refusal> {
    let mut values = req.header_values(name);
    let first = values.next().ok_or_else(|| {
        bad(
            RefusalCode::BadRequest,
            format!("expected header {name}, found none"),
        )
    })?;
    Ok(first)
}

/// Runs every local check on `req` for an enrolment whose challenge is
/// `expected_server_id` at aggregator time `now`. Returns the parsed
/// authorization (its signature is the replay-cache key).
pub fn check_signed_request(
    req: &SignedRequest,
    expected_server_id: &str,
    policy: &RequestPolicy,
    now: SystemTime,
) -> Result<Authorization, Refusal> {
    if req.method != "POST" {
        return Err(bad(
            RefusalCode::BadRequest,
            format!("expected method POST, found {:?}", req.method),
        ));
    }
    let mut names: Vec<String> = req
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(
            RefusalCode::BadRequest,
            format!("expected each header once, found {} twice", w[0]),
        ));
    }
    let auth = parse_authorization(single_header(req, "authorization")?)?;
    for required in REQUIRED_SIGNED_HEADERS {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(bad(
                RefusalCode::BadRequest,
                format!(
                    "expected {required} among the signed headers, found {:?}",
                    auth.signed_headers
                ),
            ));
        }
    }
    for (name, _) in &req.headers {
        let name = name.to_ascii_lowercase();
        if name != "authorization" && !auth.signed_headers.contains(&name) {
            return Err(bad(
                RefusalCode::BadRequest,
                format!("expected only signed headers, found unsigned header {name}"),
            ));
        }
    }
    for signed in &auth.signed_headers {
        if req.header_values(signed).next().is_none() {
            return Err(bad(
                RefusalCode::BadRequest,
                format!("signed header {signed} is missing from the request"),
            ));
        }
    }
    if auth.scope_service != "sts" {
        return Err(bad(
            RefusalCode::BadRequest,
            format!(
                "expected credential scope service sts, found {:?}",
                auth.scope_service
            ),
        ));
    }
    if auth.scope_region != policy.sts_region {
        return Err(bad(
            RefusalCode::BadRequest,
            format!(
                "expected credential scope region {:?}, found {:?}",
                policy.sts_region, auth.scope_region
            ),
        ));
    }
    let host = single_header(req, "host")?;
    if !host.eq_ignore_ascii_case(&policy.sts_host) {
        return Err(bad(
            RefusalCode::BadRequest,
            format!("expected host {:?}, found {host:?}", policy.sts_host),
        ));
    }
    let challenge = single_header(req, SERVER_ID_HEADER)?;
    if challenge != expected_server_id {
        return Err(bad(
            RefusalCode::BadChallenge,
            format!("expected {SERVER_ID_HEADER} {expected_server_id:?}, found {challenge:?}"),
        ));
    }
    let amz_date = single_header(req, "x-amz-date")?;
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        bad(
            RefusalCode::BadRequest,
            format!("expected x-amz-date as YYYYMMDDTHHMMSSZ, found {amz_date:?}"),
        )
    })?;
    if !amz_date.starts_with(&auth.scope_date) || auth.scope_date.len() != 8 {
        return Err(bad(
            RefusalCode::BadRequest,
            format!(
                "expected credential scope date {:?} to match x-amz-date {amz_date:?}",
                auth.scope_date
            ),
        ));
    }
    let skew_s = (unix_s(now) - signed_at).abs();
    if skew_s as u64 > policy.max_clock_skew.as_secs() {
        return Err(bad(
            RefusalCode::StaleDate,
            format!(
                "expected x-amz-date within {} s of the aggregator clock, found {skew_s} s apart",
                policy.max_clock_skew.as_secs()
            ),
        ));
    }
    if req.body != GET_CALLER_IDENTITY_BODY.as_bytes() {
        return Err(bad(
            RefusalCode::Tampered,
            format!(
                "expected body {GET_CALLER_IDENTITY_BODY:?}, found {:?}",
                String::from_utf8_lossy(&req.body)
            ),
        ));
    }
    let declared = single_header(req, "x-amz-content-sha256")?;
    let actual = sha256_hex(&req.body);
    if !declared.eq_ignore_ascii_case(&actual) {
        return Err(bad(
            RefusalCode::Tampered,
            format!("expected x-amz-content-sha256 {actual} for the body, found {declared}"),
        ));
    }
    Ok(auth)
}

/// Signatures seen recently; a second use is a replay.
///
/// A signature can be valid for at most `2 × max_clock_skew` around its
/// date, so entries are kept that long. Per aggregator process: the
/// per-enrolment nonce is what stops replays across replicas.
#[derive(Debug)]
pub struct ReplayCache {
    window: Duration,
    max_entries: usize,
    seen: Mutex<HashMap<String, SystemTime>>,
}

impl ReplayCache {
    /// A cache keeping signatures for `window`, at most `max_entries`.
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Self {
            window,
            max_entries,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records `signature` at `now`; refuses it if already recorded within
    /// the window, or if the cache is full of unexpired entries.
    pub fn check_and_insert(&self, signature: &str, now: SystemTime) -> Result<(), Refusal> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(expiry) = seen.get(signature)
            && *expiry > now
        {
            return Err(bad(
                RefusalCode::Replayed,
                "expected a fresh signature, found one already used for an enrolment",
            ));
        }
        if seen.len() >= self.max_entries {
            seen.retain(|_, expiry| *expiry > now);
            if seen.len() >= self.max_entries {
                return Err(bad(
                    RefusalCode::Internal,
                    format!(
                        "replay cache full ({} entries); retry later",
                        self.max_entries
                    ),
                ));
            }
        }
        seen.insert(signature.to_owned(), now + self.window);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_date_parses_to_unix_seconds() {
        // 2024-01-02T03:04:05Z: 19724 days after 1970-01-01 → 19724 × 86400
        // + 3 × 3600 + 4 × 60 + 5 = 1_704_164_645.
        assert_eq!(parse_amz_date("20240102T030405Z"), Some(1_704_164_645));
        assert_eq!(parse_amz_date("20240102 030405Z"), None);
        assert_eq!(parse_amz_date("20241302T030405Z"), None);
    }

    #[test]
    fn sha256_of_the_fixed_body() {
        // Known digest of the empty string.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn authorization_header_parses() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKID/20240102/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .expect("parses");
        assert_eq!(a.access_key_id, "AKID");
        assert_eq!(a.scope_date, "20240102");
        assert_eq!(a.scope_region, "us-east-1");
        assert_eq!(a.signed_headers, vec!["content-type", "host", "x-amz-date"]);
        assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=AKID/x, Signature=00").is_err());
    }

    #[test]
    fn replay_cache_refuses_second_use_until_window_passes() {
        let cache = ReplayCache::new(Duration::from_secs(600), 2);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(cache.check_and_insert("a", t0).is_ok());
        let err = cache
            .check_and_insert("a", t0 + Duration::from_secs(599))
            .unwrap_err();
        assert_eq!(err.code, RefusalCode::Replayed);
        assert!(cache.check_and_insert("b", t0).is_ok());
        // Full of live entries: refused as retryable, not silently evicted.
        assert_eq!(
            cache.check_and_insert("c", t0).unwrap_err().code,
            RefusalCode::Internal
        );
        // After the window, old entries expire and make room.
        assert!(
            cache
                .check_and_insert("a", t0 + Duration::from_secs(601))
                .is_ok()
        );
    }
}
