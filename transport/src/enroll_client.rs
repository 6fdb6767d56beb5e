//! Agent side of enrolment.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use rustls::pki_types::CertificateDer;

use crate::ca::{CertifiedKey, generate_agent_key_and_csr};
use crate::error::{EnrollError, TransportError};
use crate::identity::{PeerIdentity, identity_from_certificate};
use crate::sigv4::sign_get_caller_identity;
use crate::tls::{ALPN_ENROLL, QuicTuning, client_config};
use crate::wire::{
    Challenge, ENROLL_WIRE_VERSION, EnrollRequest, EnrollResponse, Hello, SignedRequest,
    read_message, write_message,
};

/// Where and as whom to enrol.
#[derive(Debug, Clone)]
pub struct EnrollConfig {
    /// Aggregator address.
    pub server_addr: SocketAddr,
    /// Name in the aggregator's server certificate.
    pub server_name: String,
    /// The aggregator CA certificate, DER (the only trust anchor).
    pub ca_cert_der: CertificateDer<'static>,
    /// Agent id to put in the certificate.
    pub agent_id: String,
    /// Time allowed for the whole exchange.
    pub timeout: Duration,
    /// What the agent agrees to sign for: the aggregator's challenge must
    /// name this server id and STS endpoint, else nothing is signed.
    pub pin: ChallengePin,
}

/// The server id and STS endpoint an agent is configured with. A
/// challenge naming anything else is refused before signing, so an
/// impostor holding a certificate for the name cannot obtain a signed
/// `sts:GetCallerIdentity` usable against another aggregator or STS host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengePin {
    /// The aggregator deployment's id (its `server_id`).
    pub server_id: String,
    /// STS endpoint URL, e.g. `https://sts.amazonaws.com`; scheme, host
    /// and port must equal the challenge's.
    pub sts_url: String,
}

impl ChallengePin {
    /// `Err` names what the challenge asked for and what is configured.
    pub fn check(&self, challenge: &Challenge) -> Result<(), String> {
        let id = challenge
            .server_id_header
            .rsplit_once('/')
            .map(|(id, _nonce)| id)
            .unwrap_or("");
        if id != self.server_id {
            return Err(format!(
                "expected a challenge for server id {:?}, found {:?}; refusing to sign",
                self.server_id, id
            ));
        }
        let origin = |url: &str| -> Option<String> {
            let uri: http::Uri = url.parse().ok()?;
            Some(format!(
                "{}://{}",
                uri.scheme_str()?.to_ascii_lowercase(),
                uri.authority()?.as_str().to_ascii_lowercase()
            ))
        };
        match (origin(&self.sts_url), origin(&challenge.sts_url)) {
            (Some(want), Some(found)) if want == found => Ok(()),
            (want, _) => Err(format!(
                "expected a challenge for sts endpoint {}, found {:?}; refusing to sign",
                want.unwrap_or_else(|| self.sts_url.clone()),
                challenge.sts_url
            )),
        }
    }
}

/// An issued client certificate with its private key and identity.
#[derive(Debug, Clone)]
pub struct AgentCertificate {
    /// Certificate and key.
    pub key: CertifiedKey,
    /// Identity written in the certificate.
    pub identity: PeerIdentity,
    /// Local time the certificate was received.
    pub received_at: SystemTime,
    /// Lifetime the aggregator granted.
    pub lifetime: Duration,
}

impl AgentCertificate {
    /// When to renew: 2/3 of the lifetime after receipt (local clock, so
    /// clock skew between agent and aggregator does not matter).
    pub fn renew_at(&self) -> SystemTime {
        self.received_at + self.lifetime * 2 / 3
    }
}

/// An open enrolment exchange: the connection is up and the challenge
/// received. Lets a caller sign the request itself (tests use this to
/// tamper with or replay requests).
pub struct EnrollmentSession {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    challenge: Challenge,
    agent_id: String,
}

fn bind_addr(server: SocketAddr) -> SocketAddr {
    if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    }
}

impl EnrollmentSession {
    /// Connects (server certificate checked against the CA, no client
    /// certificate), sends the hello and reads the challenge.
    pub async fn open(config: &EnrollConfig) -> Result<Self, EnrollError> {
        let run = async {
            let endpoint = quinn::Endpoint::client(bind_addr(config.server_addr))
                .map_err(TransportError::Io)?;
            let client = client_config(
                &config.ca_cert_der,
                None,
                ALPN_ENROLL,
                &QuicTuning::default(),
            )
            .map_err(TransportError::Ca)?;
            let conn = endpoint
                .connect_with(client, config.server_addr, &config.server_name)
                .map_err(TransportError::Connect)?
                .await
                .map_err(TransportError::Connection)?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(TransportError::Connection)?;
            write_message(
                &mut send,
                &Hello {
                    version: ENROLL_WIRE_VERSION,
                    agent_id: config.agent_id.clone(),
                },
            )
            .await?;
            let challenge: Challenge = read_message(&mut recv).await?;
            if let Err(reason) = config.pin.check(&challenge) {
                conn.close(0u32.into(), b"challenge refused");
                return Err(EnrollError::ChallengeNotPinned(reason));
            }
            Ok::<_, EnrollError>(Self {
                _endpoint: endpoint,
                conn,
                send,
                recv,
                challenge,
                agent_id: config.agent_id.clone(),
            })
        };
        tokio::time::timeout(config.timeout, run)
            .await
            .map_err(|_| TransportError::Timeout {
                during: "opening an enrolment",
                after_ms: config.timeout.as_millis() as u64,
            })?
    }

    /// The aggregator's challenge.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// Signs the request for this session's challenge with `credentials`.
    pub fn sign(
        &self,
        credentials: &aws_credential_types::Credentials,
    ) -> Result<SignedRequest, EnrollError> {
        sign_get_caller_identity(credentials, &self.challenge, SystemTime::now())
    }

    /// Generates a key pair, sends `sts_request` with a CSR for it, and
    /// returns the issued certificate or the aggregator's refusal.
    pub async fn submit(
        mut self,
        sts_request: SignedRequest,
    ) -> Result<AgentCertificate, EnrollError> {
        let (key_der, csr_der) = generate_agent_key_and_csr(&self.agent_id)?;
        write_message(
            &mut self.send,
            &EnrollRequest {
                sts_request,
                csr_der,
            },
        )
        .await?;
        let _ = self.send.finish();
        let response: EnrollResponse = read_message(&mut self.recv).await?;
        self.conn.close(0u32.into(), b"done");
        match response {
            EnrollResponse::Refused(refusal) => Err(EnrollError::Refused(refusal)),
            EnrollResponse::Issued {
                cert_der,
                lifetime_s,
            } => {
                let identity = identity_from_certificate(&cert_der)?;
                Ok(AgentCertificate {
                    key: CertifiedKey {
                        cert_der: CertificateDer::from(cert_der),
                        key_pkcs8_der: key_der,
                    },
                    identity,
                    received_at: SystemTime::now(),
                    lifetime: Duration::from_secs(lifetime_s),
                })
            }
        }
    }
}

/// Enrols with credentials from `provider` (e.g. the AWS default chain:
/// `aws_config::load_defaults(..).await.credentials_provider()`).
pub async fn enroll(
    config: &EnrollConfig,
    provider: &SharedCredentialsProvider,
) -> Result<AgentCertificate, EnrollError> {
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| EnrollError::Credentials(e.to_string()))?;
    let session = EnrollmentSession::open(config).await?;
    let request = session.sign(&credentials)?;
    tokio::time::timeout(config.timeout, session.submit(request))
        .await
        .map_err(|_| {
            EnrollError::Transport(TransportError::Timeout {
                during: "waiting for the enrolment answer",
                after_ms: config.timeout.as_millis() as u64,
            })
        })?
}
