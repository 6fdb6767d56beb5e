//! TEST-ONLY client certificates for simulated agents, issued straight from
//! the aggregator CA's private key instead of enrolling through STS (the
//! same shortcut `canopy-simagent --dev-cert-from-ca-key` takes). A CA key
//! must never be handed to a real agent.

use std::time::{Duration, SystemTime};

use canopy_transport::ca::generate_agent_key_and_csr;
use canopy_transport::{AgentCertificate, CaError, CertificateAuthority, CertifiedKey, PeerIdentity};

/// Lifetime of a simulated agent's certificate.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3_600);

/// Issues `agent_id` of `account_id` a client certificate from `ca`.
pub fn dev_certificate(
    ca: &CertificateAuthority,
    agent_id: &str,
    account_id: &str,
) -> Result<AgentCertificate, CaError> {
    let (key_der, csr_der) = generate_agent_key_and_csr(agent_id)?;
    let now = SystemTime::now();
    let now_unix_s = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let identity = PeerIdentity {
        agent_id: agent_id.to_owned(),
        account_id: account_id.to_owned(),
        role_name: "CanopyAgent".into(),
        caller_arn: format!("arn:aws:sts::{account_id}:assumed-role/CanopyAgent/{agent_id}"),
        not_after_unix_s: now_unix_s + LIFETIME.as_secs() as i64,
    };
    let cert_der = ca.issue_client_certificate(&csr_der, &identity, now, LIFETIME)?;
    Ok(AgentCertificate {
        key: CertifiedKey { cert_der, key_pkcs8_der: key_der },
        identity,
        received_at: now,
        lifetime: LIFETIME,
    })
}
