//! rustls and quinn configurations for both sides.
//!
//! One UDP port serves two ALPN protocols: [`ALPN_ENROLL`] (client
//! certificate optional, only the enrolment stream is served) and
//! [`ALPN_BATCH`] (client certificate issued by the CA required).

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;

use crate::ca::CertifiedKey;
use crate::error::CaError;

/// ALPN of an enrolment connection.
pub const ALPN_ENROLL: &[u8] = b"canopy-enroll/1";
/// ALPN of a batch connection.
pub const ALPN_BATCH: &[u8] = b"canopy-batch/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_der: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, CaError> {
    let mut store = RootCertStore::empty();
    store.add(ca_der.clone())?;
    Ok(Arc::new(store))
}

/// QUIC transport tuning shared by both sides.
#[derive(Debug, Clone)]
pub struct QuicTuning {
    /// Bidirectional streams (batches) a peer may have open at once on one
    /// connection.
    pub max_concurrent_streams: u32,
    /// Bytes a peer may send on one stream before the reader consumes them.
    pub stream_receive_window: u32,
    /// Bytes a peer may send on one connection before the reader consumes them.
    pub connection_receive_window: u32,
    /// Bytes buffered for sending per connection.
    pub send_window: u64,
    /// Close an idle connection after this long without packets.
    pub idle_timeout: Duration,
    /// Send keep-alives this often (client side) so idle agents stay connected.
    pub keep_alive: Option<Duration>,
}

impl Default for QuicTuning {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 32,
            stream_receive_window: 1024 * 1024,
            connection_receive_window: 8 * 1024 * 1024,
            send_window: 8 * 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            keep_alive: Some(Duration::from_secs(20)),
        }
    }
}

impl QuicTuning {
    fn transport(&self) -> quinn::TransportConfig {
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(self.max_concurrent_streams.into());
        t.max_concurrent_uni_streams(0u32.into());
        t.stream_receive_window(self.stream_receive_window.into());
        t.receive_window(self.connection_receive_window.into());
        t.send_window(self.send_window);
        if let Ok(idle) = quinn::IdleTimeout::try_from(self.idle_timeout) {
            t.max_idle_timeout(Some(idle));
        }
        t.keep_alive_interval(self.keep_alive);
        t
    }
}

/// The aggregator's QUIC server configuration.
pub fn server_config(
    ca_der: &CertificateDer<'static>,
    server: &CertifiedKey,
    tuning: &QuicTuning,
) -> Result<quinn::ServerConfig, CaError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca_der)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| CaError::Verifier(e.to_string()))?;
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.cert_der.clone()], server.private_key())?;
    crypto.alpn_protocols = vec![ALPN_BATCH.to_vec(), ALPN_ENROLL.to_vec()];
    crypto.max_early_data_size = 0;
    // No resumption: every connection presents and verifies its client
    // certificate in full (and replicas share no ticket keys anyway).
    crypto.send_tls13_tickets = 0;
    crypto.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    let quic = QuicServerConfig::try_from(crypto)
        .map_err(|e| CaError::Verifier(format!("quic server config: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = tuning.transport();
    // The server never pings: idle agents keep their own connections alive.
    transport.keep_alive_interval(None);
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// An agent's QUIC client configuration for `alpn`, trusting only the CA,
/// presenting `client` when given.
pub fn client_config(
    ca_der: &CertificateDer<'static>,
    client: Option<&CertifiedKey>,
    alpn: &[u8],
    tuning: &QuicTuning,
) -> Result<quinn::ClientConfig, CaError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_der)?);
    let mut crypto = match client {
        Some(key) => {
            builder.with_client_auth_cert(vec![key.cert_der.clone()], key.private_key())?
        }
        None => builder.with_no_client_auth(),
    };
    crypto.alpn_protocols = vec![alpn.to_vec()];
    let quic = QuicClientConfig::try_from(crypto)
        .map_err(|e| CaError::Verifier(format!("quic client config: {e}")))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(Arc::new(tuning.transport()));
    Ok(config)
}
