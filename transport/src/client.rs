//! The agent's batch client: one connection (re-established with backoff
//! and jitter), one stream per batch, a bounded number in flight, and
//! certificate renewal before expiry.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use backon::{ExponentialBuilder, Retryable};
use canopy_protocol::{DecodeLimits, Reply, decode_reply};
use rustls::pki_types::CertificateDer;
use tokio::sync::Semaphore;

use crate::enroll_client::{AgentCertificate, EnrollConfig, enroll};
use crate::error::TransportError;
use crate::identity::PeerIdentity;
use crate::tls::{ALPN_BATCH, QuicTuning, client_config};

/// Largest reply frame read, bytes.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Reconnect and resend policy: exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First delay.
    pub min_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
    /// Attempts after the first before [`Client::send`] returns the error.
    pub max_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            max_retries: 8,
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}

/// Agent client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Aggregator address.
    pub server_addr: SocketAddr,
    /// Name in the aggregator's server certificate.
    pub server_name: String,
    /// The aggregator CA certificate, DER.
    pub ca_cert_der: CertificateDer<'static>,
    /// QUIC limits.
    pub tuning: QuicTuning,
    /// Batches sent and awaiting a reply at once.
    pub max_in_flight: usize,
    /// Time allowed for a handshake.
    pub connect_timeout: Duration,
    /// Time allowed from opening a batch stream to its reply.
    pub reply_timeout: Duration,
    /// Reconnect and resend policy.
    pub retry: RetryPolicy,
    /// Limits for decoding replies.
    pub decode_limits: DecodeLimits,
}

impl ClientConfig {
    /// Defaults: 16 batches in flight, 10 s connect, 120 s reply timeouts.
    pub fn new(
        server_addr: SocketAddr,
        server_name: String,
        ca_cert_der: CertificateDer<'static>,
    ) -> Self {
        Self {
            server_addr,
            server_name,
            ca_cert_der,
            tuning: QuicTuning::default(),
            max_in_flight: 16,
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            decode_limits: DecodeLimits::default(),
        }
    }
}

struct Current {
    cert: AgentCertificate,
    quic: quinn::ClientConfig,
    generation: u64,
}

struct Inner {
    config: ClientConfig,
    endpoint: quinn::Endpoint,
    current: Mutex<Current>,
    conn: tokio::sync::Mutex<Option<(u64, quinn::Connection)>>,
    permits: Semaphore,
    renewal: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The agent's batch client. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// A client on its own UDP socket presenting `cert`. Connects lazily.
    pub fn new(config: ClientConfig, cert: AgentCertificate) -> Result<Self, TransportError> {
        let bind = if config.server_addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let endpoint = quinn::Endpoint::client(bind)?;
        Self::with_endpoint(config, cert, endpoint)
    }

    /// A client sharing `endpoint` (one UDP socket can carry many clients'
    /// connections).
    pub fn with_endpoint(
        config: ClientConfig,
        cert: AgentCertificate,
        endpoint: quinn::Endpoint,
    ) -> Result<Self, TransportError> {
        let quic = client_config(
            &config.ca_cert_der,
            Some(&cert.key),
            ALPN_BATCH,
            &config.tuning,
        )?;
        let permits = Semaphore::new(config.max_in_flight.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                endpoint,
                current: Mutex::new(Current {
                    cert,
                    quic,
                    generation: 0,
                }),
                conn: tokio::sync::Mutex::new(None),
                permits,
                renewal: Mutex::new(None),
            }),
        })
    }

    /// The identity in the current certificate.
    pub fn identity(&self) -> PeerIdentity {
        self.lock_current().cert.identity.clone()
    }

    /// The current certificate.
    pub fn certificate(&self) -> AgentCertificate {
        self.lock_current().cert.clone()
    }

    fn lock_current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.inner.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the certificate. Batches already in flight finish on the
    /// old connection; the next batch opens a connection with `cert`.
    pub fn set_certificate(&self, cert: AgentCertificate) -> Result<(), TransportError> {
        let config = &self.inner.config;
        let quic = client_config(
            &config.ca_cert_der,
            Some(&cert.key),
            ALPN_BATCH,
            &config.tuning,
        )?;
        let mut current = self.lock_current();
        current.cert = cert;
        current.quic = quic;
        current.generation += 1;
        Ok(())
    }

    /// Opens the connection now instead of at the first batch.
    pub async fn connect(&self) -> Result<(), TransportError> {
        self.connection().await.map(|_| ())
    }

    async fn connection(&self) -> Result<quinn::Connection, TransportError> {
        let mut slot = self.inner.conn.lock().await;
        let (generation, quic) = {
            let current = self.lock_current();
            (current.generation, current.quic.clone())
        };
        if let Some((conn_generation, conn)) = slot.as_ref()
            && *conn_generation == generation
            && conn.close_reason().is_none()
        {
            return Ok(conn.clone());
        }
        let config = &self.inner.config;
        let connecting =
            self.inner
                .endpoint
                .connect_with(quic, config.server_addr, &config.server_name)?;
        let conn = tokio::time::timeout(config.connect_timeout, connecting)
            .await
            .map_err(|_| TransportError::Timeout {
                during: "connecting",
                after_ms: config.connect_timeout.as_millis() as u64,
            })??;
        *slot = Some((generation, conn.clone()));
        Ok(conn)
    }

    async fn forget(&self, conn: &quinn::Connection) {
        let mut slot = self.inner.conn.lock().await;
        if slot
            .as_ref()
            .is_some_and(|(_, c)| c.stable_id() == conn.stable_id())
        {
            *slot = None;
        }
    }

    /// Sends one batch frame (from `canopy_protocol::encode_batch`) on its
    /// own stream and returns the aggregator's reply. Waits for an
    /// in-flight slot first. One attempt: transport errors are returned.
    pub async fn send_once(&self, frame: &[u8]) -> Result<Reply, TransportError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| TransportError::Closed)?;
        let conn = self.connection().await?;
        let config = &self.inner.config;
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_all(frame).await?;
            send.finish()
                .map_err(|e| TransportError::Protocol(e.to_string()))?;
            let bytes = recv
                .read_to_end(MAX_REPLY_BYTES)
                .await
                .map_err(|e| TransportError::Read(e.to_string()))?;
            decode_reply(&bytes, &config.decode_limits)
                .map_err(|e| TransportError::Protocol(format!("cannot decode reply: {e}")))
        };
        let result = tokio::time::timeout(config.reply_timeout, exchange)
            .await
            .unwrap_or(Err(TransportError::Timeout {
                during: "waiting for a reply",
                after_ms: config.reply_timeout.as_millis() as u64,
            }));
        if let Err(e) = &result
            && e.is_retryable()
        {
            self.forget(&conn).await;
        }
        result
    }

    /// Like [`Client::send_once`], but reconnects and resends after
    /// transport errors, with exponential backoff and jitter, up to the
    /// configured retries. Resending is safe: the aggregator treats a
    /// batch it already stored as a duplicate.
    pub async fn send(&self, frame: &[u8]) -> Result<Reply, TransportError> {
        (|| self.send_once(frame))
            .retry(self.inner.config.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(TransportError::is_retryable)
            .notify(|e, delay| {
                tracing::warn!(error = %e, delay_ms = delay.as_millis() as u64, "batch send failed; retrying");
            })
            .await
    }

    /// Starts a task that re-enrols at 2/3 of each certificate's lifetime
    /// (retrying with backoff until it succeeds) and swaps the new
    /// certificate in. Replaces an earlier renewal task.
    pub fn spawn_renewal(
        &self,
        enroll_config: EnrollConfig,
        credentials: SharedCredentialsProvider,
    ) {
        let client = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let renew_at = client.lock_current().cert.renew_at();
                let wait = renew_at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                tokio::time::sleep(wait).await;
                let backoff = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(60))
                    .with_jitter()
                    .without_max_times();
                let renewed = (|| enroll(&enroll_config, &credentials))
                    .retry(backoff)
                    .sleep(tokio::time::sleep)
                    .when(|e| e.is_retryable())
                    .notify(|e, delay| {
                        tracing::warn!(error = %e, delay_ms = delay.as_millis() as u64, "certificate renewal failed; retrying");
                    })
                    .await;
                match renewed {
                    Ok(cert) => {
                        tracing::info!(account_id = %cert.identity.account_id, "renewed client certificate");
                        if let Err(e) = client.set_certificate(cert) {
                            tracing::error!(error = %e, "cannot use the renewed certificate");
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "certificate renewal refused; operator action needed");
                        return;
                    }
                }
            }
        });
        let mut slot = self.inner.renewal.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.replace(task) {
            old.abort();
        }
    }

    /// Stops renewal and closes the connection.
    pub async fn close(&self) {
        if let Some(task) = self
            .inner
            .renewal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
        if let Some((_, conn)) = self.inner.conn.lock().await.take() {
            conn.close(0u32.into(), b"agent closing");
        }
    }
}
