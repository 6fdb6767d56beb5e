//! Aggregator side of enrolment: challenge, local checks, STS, account and
//! role checks, certificate issuance.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::allowed::AllowedAccounts;
use crate::ca::{CertificateAuthority, random_bytes};
use crate::error::{Refusal, RefusalCode, TransportError};
use crate::identity::{PeerIdentity, parse_caller_arn};
use crate::sts::StsForwarder;
use crate::verify::{ReplayCache, RequestPolicy, check_signed_request};
use crate::wire::{
    Challenge, ENROLL_WIRE_VERSION, EnrollRequest, EnrollResponse, Hello, read_message,
    write_message,
};

/// Who may enrol, and how.
#[derive(Debug, Clone)]
pub struct EnrollmentPolicy {
    /// This aggregator deployment's id, part of the signed challenge
    /// (as Vault's `iam_server_id_header_value`). Same on all replicas.
    pub server_id: String,
    /// Accounts of the organisation allowed to enrol (12-digit ids); shared,
    /// so an organisation refresh can replace it while the server runs.
    pub allowed_accounts: AllowedAccounts,
    /// Role name the agent must run as, e.g. `CanopyAgent`; `{region}`
    /// matches one AWS region code (`canopy-agent-{region}`: the StackSet's
    /// per-region roles `canopy-agent-<region>`, IAM names being
    /// account-global, and not its host role `canopy-agent-host-<region>`);
    /// a trailing `*` matches any suffix (see [`role_name_matches`]).
    pub expected_role_name: String,
    /// STS endpoint requests are forwarded to, e.g.
    /// `https://sts.us-east-1.amazonaws.com` (moto's URL in tests).
    pub sts_url: String,
    /// SigV4 region agents sign for.
    pub sts_region: String,
    /// Largest allowed distance between `x-amz-date` and this clock.
    pub max_clock_skew: Duration,
    /// Lifetime of issued client certificates.
    pub client_cert_lifetime: Duration,
    /// Time allowed for one STS call.
    pub sts_timeout: Duration,
    /// Time allowed for a whole enrolment exchange.
    pub exchange_timeout: Duration,
    /// Enrolment exchanges served at once; more are closed at once (the
    /// agent retries with backoff). Bounds the STS calls unauthenticated
    /// peers can cause.
    pub max_concurrent_enrollments: usize,
    /// Time allowed from the connection to the agent's `Hello`: an idle
    /// connection gives its slot back after this.
    pub hello_timeout: Duration,
    /// Enrolment exchanges one source IP address may hold at once.
    pub max_enrollments_per_source: usize,
}

impl EnrollmentPolicy {
    /// A policy with the defaults: ±5 min skew, 24 h certificates, 10 s STS
    /// timeout, 30 s exchange timeout, 5 s until the `Hello`, 64 concurrent
    /// enrolments, 4 per source IP address.
    pub fn new(
        server_id: impl Into<String>,
        allowed_accounts: AllowedAccounts,
        expected_role_name: impl Into<String>,
        sts_url: impl Into<String>,
        sts_region: impl Into<String>,
    ) -> Self {
        Self {
            server_id: server_id.into(),
            allowed_accounts,
            expected_role_name: expected_role_name.into(),
            sts_url: sts_url.into(),
            sts_region: sts_region.into(),
            max_clock_skew: Duration::from_secs(300),
            client_cert_lifetime: Duration::from_secs(24 * 3600),
            sts_timeout: Duration::from_secs(10),
            exchange_timeout: Duration::from_secs(30),
            max_concurrent_enrollments: 64,
            hello_timeout: Duration::from_secs(5),
            max_enrollments_per_source: 4,
        }
    }
}

/// Serves enrolment connections.
#[derive(Debug)]
pub(crate) struct Enroller {
    policy: EnrollmentPolicy,
    request_policy: RequestPolicy,
    forwarder: StsForwarder,
    replay: ReplayCache,
    ca: Arc<CertificateAuthority>,
    slots: tokio::sync::Semaphore,
    per_source: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One source address's enrolment slot, given back on drop.
struct SourceSlot<'a> {
    map: &'a std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    ip: std::net::IpAddr,
}

impl Drop for SourceSlot<'_> {
    fn drop(&mut self) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// QUIC application close code: too many enrolments in progress.
pub const ENROLL_BUSY: u32 = 0x20;

/// Upper bound on remembered signatures (each a 64-byte key).
const REPLAY_CACHE_ENTRIES: usize = 200_000;

impl Enroller {
    pub(crate) fn new(
        policy: EnrollmentPolicy,
        ca: Arc<CertificateAuthority>,
    ) -> Result<Self, Refusal> {
        let uri: http::Uri = policy.sts_url.parse().map_err(|e| {
            Refusal::new(
                RefusalCode::Internal,
                format!("sts url {:?}: {e}", policy.sts_url),
            )
        })?;
        let sts_host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| {
                Refusal::new(
                    RefusalCode::Internal,
                    format!("expected a host in sts url {:?}", policy.sts_url),
                )
            })?;
        let request_policy = RequestPolicy {
            sts_host,
            sts_region: policy.sts_region.clone(),
            max_clock_skew: policy.max_clock_skew,
        };
        let forwarder = StsForwarder::new(&policy.sts_url, policy.sts_timeout)?;
        let replay = ReplayCache::new(policy.max_clock_skew * 2, REPLAY_CACHE_ENTRIES);
        let slots = tokio::sync::Semaphore::new(policy.max_concurrent_enrollments.max(1));
        Ok(Self {
            policy,
            request_policy,
            forwarder,
            replay,
            ca,
            slots,
            per_source: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Runs one enrolment exchange on the first stream of `conn`.
    pub(crate) async fn serve(&self, conn: quinn::Connection) {
        let remote = conn.remote_address();
        let ip = remote.ip();
        let source = {
            let mut map = self
                .per_source
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = map.entry(ip).or_insert(0);
            *n += 1;
            let over = *n > self.policy.max_enrollments_per_source;
            drop(map);
            (
                SourceSlot {
                    map: &self.per_source,
                    ip,
                },
                over,
            )
        };
        if source.1 {
            tracing::warn!(%remote, "enrolment refused: too many enrolments from this address");
            conn.close(
                ENROLL_BUSY.into(),
                b"too many enrolments from this address; retry later",
            );
            return;
        }
        let Ok(_slot) = self.slots.try_acquire() else {
            tracing::warn!(%remote, "enrolment refused: too many enrolments in progress");
            conn.close(
                ENROLL_BUSY.into(),
                b"too many enrolments in progress; retry later",
            );
            return;
        };
        let outcome =
            tokio::time::timeout(self.policy.exchange_timeout, self.exchange(&conn)).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%remote, error = %e, "enrolment exchange failed"),
            Err(_) => tracing::warn!(%remote, "enrolment exchange timed out"),
        }
        conn.close(0u32.into(), b"enrolment done");
    }

    async fn exchange(&self, conn: &quinn::Connection) -> Result<(), TransportError> {
        let hello_timeout = self.policy.hello_timeout;
        let (mut send, mut recv, hello) = tokio::time::timeout(hello_timeout, async {
            let (send, mut recv) = conn.accept_bi().await?;
            let hello: Hello = read_message(&mut recv).await?;
            Ok::<_, TransportError>((send, recv, hello))
        })
        .await
        .map_err(|_| {
            TransportError::Protocol(format!(
                "expected a hello within {} ms, found none",
                hello_timeout.as_millis()
            ))
        })??;
        let mut nonce = [0u8; 16];
        random_bytes(&mut nonce);
        let nonce_hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let challenge = Challenge {
            server_id_header: format!("{}/{nonce_hex}", self.policy.server_id),
            sts_url: self.policy.sts_url.clone(),
            sts_region: self.policy.sts_region.clone(),
            server_time_unix_s: unix_s(SystemTime::now()),
        };
        write_message(&mut send, &challenge).await?;
        let request: EnrollRequest = read_message(&mut recv).await?;
        let response = match self
            .decide(&hello, &challenge.server_id_header, &request)
            .await
        {
            Ok((identity, cert_der)) => {
                tracing::info!(
                    agent_id = %identity.agent_id,
                    account_id = %identity.account_id,
                    role = %identity.role_name,
                    "enrolled agent"
                );
                EnrollResponse::Issued {
                    cert_der,
                    lifetime_s: self.policy.client_cert_lifetime.as_secs(),
                }
            }
            Err(refusal) => {
                tracing::warn!(
                    agent_id = %hello.agent_id,
                    code = ?refusal.code,
                    reason = %refusal.message,
                    "enrolment refused"
                );
                EnrollResponse::Refused(refusal)
            }
        };
        write_message(&mut send, &response).await?;
        send.finish()
            .map_err(|e| TransportError::Protocol(e.to_string()))?;
        // Wait until the agent has read the answer (it closes the connection).
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        Ok(())
    }

    async fn decide(
        &self,
        hello: &Hello,
        server_id_header: &str,
        request: &EnrollRequest,
    ) -> Result<(PeerIdentity, Vec<u8>), Refusal> {
        if hello.version != ENROLL_WIRE_VERSION {
            return Err(Refusal::new(
                RefusalCode::BadRequest,
                format!(
                    "expected enrolment version {ENROLL_WIRE_VERSION}, found {}",
                    hello.version
                ),
            ));
        }
        if hello.agent_id.is_empty()
            || hello.agent_id.len() > 128
            || !hello
                .agent_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@".contains(&b))
        {
            return Err(Refusal::new(
                RefusalCode::BadRequest,
                format!(
                    "expected an agent id of 1-128 characters [A-Za-z0-9-_.:/@], found {:?}",
                    hello.agent_id
                ),
            ));
        }
        let now = SystemTime::now();
        let auth = check_signed_request(
            &request.sts_request,
            server_id_header,
            &self.request_policy,
            now,
        )?;
        self.replay.check_and_insert(&auth.signature, now)?;
        let caller = self
            .forwarder
            .get_caller_identity(&request.sts_request)
            .await?;
        let arn = parse_caller_arn(&caller.arn)
            .map_err(|e| Refusal::new(RefusalCode::WrongRole, e.to_string()))?;
        if arn.account_id != caller.account {
            return Err(Refusal::new(
                RefusalCode::StsRejected,
                format!(
                    "expected the caller arn's account {} to equal sts account {}",
                    arn.account_id, caller.account
                ),
            ));
        }
        if !self.policy.allowed_accounts.contains(&caller.account) {
            return Err(Refusal::new(
                RefusalCode::AccountNotAllowed,
                format!(
                    "expected one of the organisation's {} allowed accounts, found {}",
                    self.policy.allowed_accounts.len(),
                    caller.account
                ),
            ));
        }
        if !role_name_matches(&self.policy.expected_role_name, &arn.role_name) {
            return Err(Refusal::new(
                RefusalCode::WrongRole,
                format!(
                    "expected role {}, found {}",
                    self.policy.expected_role_name, arn.role_name
                ),
            ));
        }
        let identity = PeerIdentity {
            agent_id: hello.agent_id.clone(),
            account_id: caller.account.clone(),
            role_name: arn.role_name,
            caller_arn: caller.arn,
            not_after_unix_s: unix_s(now + self.policy.client_cert_lifetime),
        };
        let cert = self
            .ca
            .issue_client_certificate(
                &request.csr_der,
                &identity,
                now,
                self.policy.client_cert_lifetime,
            )
            .map_err(|e| Refusal::new(RefusalCode::BadCsr, e.to_string()))?;
        Ok((identity, cert.to_vec()))
    }
}

/// Placeholder in an expected role name that matches exactly one AWS
/// region code (`canopy-agent-{region}`).
pub const REGION_PLACEHOLDER: &str = "{region}";

/// True for an AWS region code: two letters, one or more lowercase words,
/// a number (`eu-west-1`, `us-gov-west-1`, `ap-southeast-2`).
pub fn is_region_code(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// `found` equals `expected`; or, when `expected` holds
/// [`REGION_PLACEHOLDER`], equals it with the placeholder replaced by one
/// region code (`canopy-agent-{region}` matches `canopy-agent-eu-west-1`
/// but not the StackSet's host role `canopy-agent-host-eu-west-1`); or
/// starts with its text before a trailing `*` (any suffix: explicit opt-in,
/// not the default).
pub fn role_name_matches(expected: &str, found: &str) -> bool {
    if let Some((before, after)) = expected.split_once(REGION_PLACEHOLDER) {
        return found.len() > before.len() + after.len()
            && found.starts_with(before)
            && found.ends_with(after)
            && is_region_code(&found[before.len()..found.len() - after.len()]);
    }
    match expected.strip_suffix('*') {
        Some(prefix) => found.starts_with(prefix) && found.len() > prefix.len(),
        None => found == expected,
    }
}

pub(crate) fn unix_s(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod role_tests {
    use super::role_name_matches;

    #[test]
    fn role_names_match_exactly_or_by_prefix() {
        assert!(role_name_matches("CanopyAgent", "CanopyAgent"));
        assert!(!role_name_matches("CanopyAgent", "CanopyAgent2"));
        assert!(role_name_matches(
            "canopy-agent-*",
            "canopy-agent-eu-west-1"
        ));
        assert!(!role_name_matches("canopy-agent-*", "canopy-agent-"));
        assert!(!role_name_matches("canopy-agent-*", "canopy-agent"));
        assert!(!role_name_matches(
            "canopy-agent-*",
            "other-canopy-agent-eu-west-1"
        ));
    }

    /// Issue 19: the default must not accept the StackSet's host role.
    #[test]
    fn the_region_placeholder_matches_only_the_per_region_agent_role() {
        let expected = "canopy-agent-{region}";
        for ok in [
            "canopy-agent-eu-west-1",
            "canopy-agent-us-gov-west-1",
            "canopy-agent-ap-southeast-2",
        ] {
            assert!(role_name_matches(expected, ok), "{ok}");
        }
        for bad in [
            "canopy-agent-host-eu-west-1",
            "canopy-agent-",
            "canopy-agent-eu-west",
            "canopy-agent-eu-west-1x",
            "canopy-agent-EU-west-1",
            "canopy-agent-eu--1",
            "xcanopy-agent-eu-west-1",
        ] {
            assert!(!role_name_matches(expected, bad), "{bad}");
        }
        // The old wildcard accepted the host role: why it is no longer the default.
        assert!(role_name_matches(
            "canopy-agent-*",
            "canopy-agent-host-eu-west-1"
        ));
    }
}
