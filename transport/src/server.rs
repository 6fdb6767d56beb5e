//! The aggregator's QUIC server: enrolment connections and batch
//! connections on one UDP port, one bidirectional stream per batch.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use canopy_protocol::{
    Batch, CURRENT_VERSION, DecodeLimits, ErrorCode, FrameHeader, HEADER_LEN, Reply, ReplyError,
    decode_batch, encode_reply, is_supported,
};
use tokio::sync::Semaphore;

use crate::ca::CertificateAuthority;
use crate::enroll_server::{Enroller, EnrollmentPolicy, unix_s};
use crate::error::{CaError, TransportError};
use crate::identity::{PeerIdentity, identity_from_certificate};
use crate::tls::{ALPN_BATCH, ALPN_ENROLL, QuicTuning, server_config};

/// QUIC application close code: client certificate missing or unusable.
pub const CLOSE_UNAUTHENTICATED: u32 = 0x10;
/// QUIC application close code: the client certificate expired.
pub const CLOSE_CERT_EXPIRED: u32 = 0x11;
/// QUIC application close code: the server is shutting down.
pub const CLOSE_SHUTDOWN: u32 = 0x12;
/// QUIC application close code: unknown ALPN or enrolment disabled.
pub const CLOSE_UNSUPPORTED: u32 = 0x13;

/// A batch frame that passed decoding, validation limits and the account
/// check, handed to the [`BatchHandler`].
#[derive(Debug, Clone)]
pub struct InboundBatch {
    /// The frame as received (e.g. for quarantine or raw storage).
    pub frame: Vec<u8>,
    /// Protocol version of the frame; the reply is written in it.
    pub version: u16,
    /// The decoded batch; its `account_id` and `agent_id` equal the peer's.
    pub batch: Batch,
}

/// What the aggregator does with batches. Implemented by the ingest layer.
pub trait BatchHandler: Send + Sync + 'static {
    /// Stores `batch` from `peer` and answers it. Called only after the
    /// library checked that the batch names the certificate's account and
    /// agent id (so the (agent id, sequence) idempotency key cannot be
    /// claimed by another agent).
    /// Return an ack only once the batch is durable.
    fn handle(
        &self,
        peer: &PeerIdentity,
        batch: InboundBatch,
    ) -> impl Future<Output = Reply> + Send;

    /// Told about every frame the library refused before `handle` (bad
    /// frame, failed limits, wrong account), with the reply sent; lets the
    /// ingest layer log and quarantine it. Does nothing by default.
    fn rejected(
        &self,
        peer: &PeerIdentity,
        frame: &[u8],
        error: &ReplyError,
    ) -> impl Future<Output = ()> + Send {
        let _ = (peer, frame, error);
        async {}
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// DNS names and IP addresses for the server certificate.
    pub server_names: Vec<String>,
    /// Lifetime of the server certificate; re-issued after 2/3 of it.
    pub server_cert_lifetime: Duration,
    /// Enrolment policy; `None` refuses enrolment connections.
    pub enrollment: Option<EnrollmentPolicy>,
    /// QUIC limits (streams per connection, windows, idle timeout).
    pub tuning: QuicTuning,
    /// Batches read or handled at once across all connections.
    pub max_in_flight_batches: usize,
    /// Limits for decoding frames.
    pub decode_limits: DecodeLimits,
    /// Time allowed to receive one frame once its stream is accepted.
    pub frame_read_timeout: Duration,
}

impl ServerConfig {
    /// Defaults: 30-day server certificate, 32 streams per connection, 256
    /// batches in flight in total, default decode limits, 30 s frame reads.
    pub fn new(listen: SocketAddr, server_names: Vec<String>) -> Self {
        Self {
            listen,
            server_names,
            server_cert_lifetime: Duration::from_secs(30 * 24 * 3600),
            enrollment: None,
            tuning: QuicTuning::default(),
            max_in_flight_batches: 256,
            decode_limits: DecodeLimits::default(),
            frame_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Monotonic counters (read with [`Server::stats`]).
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Batch connections accepted (client certificate verified).
    pub connections_opened_total: AtomicU64,
    /// Batch connections ended.
    pub connections_closed_total: AtomicU64,
    /// Connections refused (no certificate, unknown ALPN, enrolment off).
    pub connections_refused_total: AtomicU64,
    /// Enrolment connections served.
    pub enrollments_total: AtomicU64,
    /// Batch streams accepted.
    pub batches_in_total: AtomicU64,
    /// Replies written.
    pub batches_out_total: AtomicU64,
    /// Frames refused by the library (malformed, limits, account).
    pub batches_refused_total: AtomicU64,
    /// Frames refused because their account differs from the certificate's.
    pub batches_unauthorized_total: AtomicU64,
    /// Highest number of batches in flight at once.
    pub max_in_flight_seen: AtomicU64,
    in_flight: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// See [`ServerCounters::connections_opened_total`].
    pub connections_opened_total: u64,
    /// See [`ServerCounters::connections_closed_total`].
    pub connections_closed_total: u64,
    /// See [`ServerCounters::connections_refused_total`].
    pub connections_refused_total: u64,
    /// See [`ServerCounters::enrollments_total`].
    pub enrollments_total: u64,
    /// See [`ServerCounters::batches_in_total`].
    pub batches_in_total: u64,
    /// See [`ServerCounters::batches_out_total`].
    pub batches_out_total: u64,
    /// See [`ServerCounters::batches_refused_total`].
    pub batches_refused_total: u64,
    /// See [`ServerCounters::batches_unauthorized_total`].
    pub batches_unauthorized_total: u64,
    /// See [`ServerCounters::max_in_flight_seen`].
    pub max_in_flight_seen: u64,
}

struct Shared<H> {
    handler: Arc<H>,
    enroller: Option<Enroller>,
    permits: Arc<Semaphore>,
    limits: DecodeLimits,
    frame_read_timeout: Duration,
    counters: Arc<ServerCounters>,
}

/// A running server. Dropping it without [`Server::shutdown`] leaves the
/// accept loop running until the runtime stops.
pub struct Server {
    endpoint: quinn::Endpoint,
    counters: Arc<ServerCounters>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Binds `config.listen`, issues the server certificate from `ca`, and
    /// starts accepting connections; batches go to `handler`. Must be
    /// called inside a tokio runtime (it spawns the accept loop).
    pub fn start<H: BatchHandler>(
        config: ServerConfig,
        ca: Arc<CertificateAuthority>,
        handler: Arc<H>,
    ) -> Result<Self, TransportError> {
        let server_key =
            ca.issue_server_certificate(&config.server_names, config.server_cert_lifetime)?;
        let quic = server_config(ca.cert_der(), &server_key, &config.tuning)?;
        let endpoint = quinn::Endpoint::server(quic, config.listen)?;
        let enroller = match config.enrollment.clone() {
            Some(policy) => Some(Enroller::new(policy, ca.clone()).map_err(|r| {
                TransportError::Ca(CaError::Verifier(format!(
                    "enrolment policy: {}",
                    r.message
                )))
            })?),
            None => None,
        };
        let counters = Arc::new(ServerCounters::default());
        let shared = Arc::new(Shared {
            handler,
            enroller,
            permits: Arc::new(Semaphore::new(config.max_in_flight_batches.max(1))),
            limits: config.decode_limits.clone(),
            frame_read_timeout: config.frame_read_timeout,
            counters: counters.clone(),
        });
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared));
        let renew = tokio::spawn(renew_server_certificate(endpoint.clone(), ca, config));
        Ok(Self {
            endpoint,
            counters,
            tasks: vec![accept, renew],
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Current counters.
    pub fn stats(&self) -> ServerStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerStats {
            connections_opened_total: get(&c.connections_opened_total),
            connections_closed_total: get(&c.connections_closed_total),
            connections_refused_total: get(&c.connections_refused_total),
            enrollments_total: get(&c.enrollments_total),
            batches_in_total: get(&c.batches_in_total),
            batches_out_total: get(&c.batches_out_total),
            batches_refused_total: get(&c.batches_refused_total),
            batches_unauthorized_total: get(&c.batches_unauthorized_total),
            max_in_flight_seen: get(&c.max_in_flight_seen),
        }
    }

    /// Closes every connection and the socket, waiting up to `grace` for
    /// the close to reach peers.
    pub async fn shutdown(self, grace: Duration) {
        for task in &self.tasks {
            task.abort();
        }
        self.endpoint
            .close(CLOSE_SHUTDOWN.into(), b"server shutting down");
        let _ = tokio::time::timeout(grace, self.endpoint.wait_idle()).await;
    }
}

async fn renew_server_certificate(
    endpoint: quinn::Endpoint,
    ca: Arc<CertificateAuthority>,
    config: ServerConfig,
) {
    loop {
        tokio::time::sleep(config.server_cert_lifetime * 2 / 3).await;
        let renewed = ca
            .issue_server_certificate(&config.server_names, config.server_cert_lifetime)
            .and_then(|key| server_config(ca.cert_der(), &key, &config.tuning));
        match renewed {
            Ok(quic) => {
                endpoint.set_server_config(Some(quic));
                tracing::info!("renewed the server certificate");
            }
            Err(e) => tracing::error!(error = %e, "cannot renew the server certificate"),
        }
    }
}

async fn accept_loop<H: BatchHandler>(endpoint: quinn::Endpoint, shared: Arc<Shared<H>>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => serve_connection(conn, shared).await,
                Err(e) => tracing::debug!(error = %e, "handshake failed"),
            }
        });
    }
}

fn alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

fn peer_identity(conn: &quinn::Connection) -> Result<PeerIdentity, String> {
    let certs = conn
        .peer_identity()
        .ok_or_else(|| "expected a client certificate, found none".to_owned())?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| "expected an x.509 client certificate chain".to_owned())?;
    let leaf = certs
        .first()
        .ok_or_else(|| "expected a client certificate, found an empty chain".to_owned())?;
    let identity = identity_from_certificate(leaf).map_err(|e| e.to_string())?;
    // TLS checked the validity period at the full handshake; a resumed
    // session would skip that, so expiry is enforced here as well.
    let now = unix_s(SystemTime::now());
    if identity.not_after_unix_s <= now {
        return Err(format!(
            "expected an unexpired client certificate, found one that expired {} s ago",
            now - identity.not_after_unix_s
        ));
    }
    Ok(identity)
}

async fn serve_connection<H: BatchHandler>(conn: quinn::Connection, shared: Arc<Shared<H>>) {
    let counters = &shared.counters;
    match alpn(&conn).as_deref() {
        Some(p) if p == ALPN_ENROLL => match &shared.enroller {
            Some(enroller) => {
                counters.enrollments_total.fetch_add(1, Ordering::Relaxed);
                enroller.serve(conn).await;
            }
            None => {
                counters
                    .connections_refused_total
                    .fetch_add(1, Ordering::Relaxed);
                conn.close(
                    CLOSE_UNSUPPORTED.into(),
                    b"enrolment is disabled on this listener",
                );
            }
        },
        Some(p) if p == ALPN_BATCH => match peer_identity(&conn) {
            Ok(peer) => {
                counters
                    .connections_opened_total
                    .fetch_add(1, Ordering::Relaxed);
                serve_batches(conn, peer, &shared).await;
                counters
                    .connections_closed_total
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                counters
                    .connections_refused_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(remote = %conn.remote_address(), %reason, "refused batch connection");
                conn.close(CLOSE_UNAUTHENTICATED.into(), reason.as_bytes());
            }
        },
        _ => {
            counters
                .connections_refused_total
                .fetch_add(1, Ordering::Relaxed);
            conn.close(CLOSE_UNSUPPORTED.into(), b"unknown application protocol");
        }
    }
}

async fn serve_batches<H: BatchHandler>(
    conn: quinn::Connection,
    peer: PeerIdentity,
    shared: &Arc<Shared<H>>,
) {
    let peer = Arc::new(peer);
    let expires_in =
        Duration::from_secs((peer.not_after_unix_s - unix_s(SystemTime::now())).max(0) as u64);
    let expiry = tokio::time::sleep(expires_in);
    tokio::pin!(expiry);
    loop {
        let accepted = tokio::select! {
            accepted = conn.accept_bi() => accepted,
            () = &mut expiry => {
                tracing::info!(agent_id = %peer.agent_id, "client certificate expired; closing");
                conn.close(CLOSE_CERT_EXPIRED.into(), b"client certificate expired");
                return;
            }
        };
        let (send, recv) = match accepted {
            Ok(streams) => streams,
            Err(_) => return,
        };
        shared
            .counters
            .batches_in_total
            .fetch_add(1, Ordering::Relaxed);
        // Waiting here stops this connection from accepting more streams;
        // QUIC's stream limit and windows then hold the agent back.
        let Ok(permit) = shared.permits.clone().acquire_owned().await else {
            return;
        };
        let in_flight = shared.counters.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        shared
            .counters
            .max_in_flight_seen
            .fetch_max(in_flight, Ordering::AcqRel);
        let shared = shared.clone();
        let peer = peer.clone();
        tokio::spawn(async move {
            serve_stream(send, recv, &peer, &shared).await;
            shared.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
            drop(permit);
        });
    }
}

fn refusal(sequence: Option<u64>, code: ErrorCode, message: String) -> ReplyError {
    ReplyError {
        sequence,
        code,
        message,
        retry_after_s: None,
    }
}

/// Why a frame could not be read.
enum ReadFailure {
    /// The frame itself is bad (short, over a limit, unparsable header): refuse
    /// it and keep it for inspection.
    Refused(u16, ReplyError, Vec<u8>),
    /// The stream or connection went away mid-frame (peer reset, connection
    /// lost, server shutting down): nothing to refuse, the agent resends.
    Interrupted(String),
}

/// A read error that is the transport going away rather than a bad frame.
fn interruption(e: &quinn::ReadExactError) -> Option<String> {
    match e {
        quinn::ReadExactError::FinishedEarly(_) => None,
        quinn::ReadExactError::ReadError(read) => Some(read.to_string()),
    }
}

async fn read_frame(
    recv: &mut quinn::RecvStream,
    limits: &DecodeLimits,
) -> Result<(u16, Vec<u8>), ReadFailure> {
    let mut frame = vec![0u8; HEADER_LEN];
    if let Err(e) = recv.read_exact(&mut frame).await {
        if let Some(reason) = interruption(&e) {
            return Err(ReadFailure::Interrupted(reason));
        }
        return Err(ReadFailure::Refused(
            CURRENT_VERSION,
            refusal(
                None,
                ErrorCode::MalformedFrame,
                format!("expected a {HEADER_LEN}-byte frame header, read failed: {e}"),
            ),
            Vec::new(),
        ));
    }
    let header = FrameHeader::parse(&frame, limits).map_err(|e| {
        let version = u16::from_le_bytes([frame[4], frame[5]]);
        let reply_version = if is_supported(version) {
            version
        } else {
            CURRENT_VERSION
        };
        ReadFailure::Refused(
            reply_version,
            refusal(None, e.reply_code(), e.to_string()),
            frame.clone(),
        )
    })?;
    frame.resize(header.frame_len(), 0);
    if let Err(e) = recv.read_exact(&mut frame[HEADER_LEN..]).await {
        if let Some(reason) = interruption(&e) {
            return Err(ReadFailure::Interrupted(reason));
        }
        frame.truncate(HEADER_LEN);
        return Err(ReadFailure::Refused(
            header.version,
            refusal(
                None,
                ErrorCode::MalformedFrame,
                format!("expected {} body bytes, read failed: {e}", header.body_len),
            ),
            frame,
        ));
    }
    Ok((header.version, frame))
}

async fn serve_stream<H: BatchHandler>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: &PeerIdentity,
    shared: &Shared<H>,
) {
    let read = tokio::time::timeout(
        shared.frame_read_timeout,
        read_frame(&mut recv, &shared.limits),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ReadFailure::Refused(
            CURRENT_VERSION,
            refusal(
                None,
                ErrorCode::MalformedFrame,
                format!(
                    "expected a whole frame within {} ms, found a stalled stream",
                    shared.frame_read_timeout.as_millis()
                ),
            ),
            Vec::new(),
        ))
    });
    let (version, reply, refused_frame) = match read {
        Err(ReadFailure::Interrupted(reason)) => {
            tracing::debug!(agent_id = %peer.agent_id, %reason, "batch stream interrupted before a whole frame");
            return;
        }
        Err(ReadFailure::Refused(version, error, partial)) => (version, Reply::Error(error), Some(partial)),
        Ok((version, frame)) => match decode_batch(&frame, &shared.limits) {
            Err(e) => (
                version,
                Reply::Error(refusal(None, e.reply_code(), e.to_string())),
                Some(frame),
            ),
            Ok(batch) if batch.agent_id != peer.agent_id => {
                shared
                    .counters
                    .batches_unauthorized_total
                    .fetch_add(1, Ordering::Relaxed);
                let message = format!(
                    "expected agent id {:?} (the client certificate's), found {:?}",
                    peer.agent_id, batch.agent_id
                );
                (
                    version,
                    Reply::Error(refusal(
                        Some(batch.sequence),
                        ErrorCode::Unauthorized,
                        message,
                    )),
                    Some(frame),
                )
            }
            Ok(batch) if batch.account_id != peer.account_id => {
                shared
                    .counters
                    .batches_unauthorized_total
                    .fetch_add(1, Ordering::Relaxed);
                let message = format!(
                    "expected records of account {} (the client certificate's), found account {}",
                    peer.account_id, batch.account_id
                );
                (
                    version,
                    Reply::Error(refusal(
                        Some(batch.sequence),
                        ErrorCode::Unauthorized,
                        message,
                    )),
                    Some(frame),
                )
            }
            Ok(batch) => {
                let reply = shared
                    .handler
                    .handle(
                        peer,
                        InboundBatch {
                            frame,
                            version,
                            batch,
                        },
                    )
                    .await;
                (version, reply, None)
            }
        },
    };
    if let (Some(frame), Reply::Error(error)) = (&refused_frame, &reply) {
        shared
            .counters
            .batches_refused_total
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            agent_id = %peer.agent_id,
            account_id = %peer.account_id,
            code = %error.code,
            reason = %error.message,
            "refused batch frame"
        );
        shared.handler.rejected(peer, frame, error).await;
    }
    let bytes = match encode_reply(&reply, version) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode reply");
            let _ = send.reset(1u32.into());
            return;
        }
    };
    if send.write_all(&bytes).await.is_ok() && send.finish().is_ok() {
        shared
            .counters
            .batches_out_total
            .fetch_add(1, Ordering::Relaxed);
        // Keep the stream until the agent has the reply (or gives up), so
        // a slow agent also holds its in-flight slot.
        let _ = send.stopped().await;
    }
}
