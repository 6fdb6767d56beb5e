//! The aggregator's QUIC server: enrolment connections and batch
//! connections on one UDP port, one bidirectional stream per batch.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use canopy_protocol::{
    Batch, CURRENT_VERSION, DecodeLimits, ErrorCode, FrameHeader, HEADER_LEN, Reply, ReplyError,
    decode_batch, encode_reply, is_supported,
};
use tokio::sync::Semaphore;

use crate::allowed::AllowedAccounts;
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
/// QUIC application close code: the certificate or account already holds
/// its most connections ([`PeerLimits`]).
pub const CLOSE_TOO_MANY_CONNECTIONS: u32 = 0x14;
/// QUIC application close code: the certificate's account left the
/// allow-list (revoked before the certificate expired).
pub const CLOSE_REVOKED: u32 = 0x15;

/// Per-peer caps, so one enrolled certificate or account cannot take the
/// server's memory or slots from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// Batch connections one certificate (account, agent id) may hold; a
    /// newer one closes the oldest.
    pub connections_per_certificate: usize,
    /// Batch connections one account may hold (all its agents).
    pub connections_per_account: usize,
    /// Batches one account may have in flight (read or handled) at once.
    pub streams_per_account: usize,
    /// Declared frame bytes one certificate may have in flight at once.
    pub bytes_per_certificate: usize,
    /// Declared frame bytes one account may have in flight at once.
    pub bytes_per_account: usize,
}

impl Default for PeerLimits {
    /// 4 connections per certificate, 64 per account, 64 batches and
    /// 32 MiB per account, 16 MiB per certificate (two 8 MiB frames).
    fn default() -> Self {
        Self {
            connections_per_certificate: 4,
            connections_per_account: 64,
            streams_per_account: 64,
            bytes_per_certificate: 16 * 1024 * 1024,
            bytes_per_account: 32 * 1024 * 1024,
        }
    }
}

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
    /// agent id, and that the account is still allowed. Agent ids are not
    /// unique across accounts: key anything per agent by (account, agent id).
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
    /// Time allowed without progress on a frame (header or body bytes): a
    /// stalled stream gives back its slot and bytes after this, long before
    /// `frame_read_timeout`.
    pub frame_stall_timeout: Duration,
    /// Declared frame bytes in flight across all peers. Buffers grow as
    /// bytes arrive, and a frame reserves its declared length from this
    /// budget (and the per-peer ones) before its body is read.
    pub max_in_flight_bytes: usize,
    /// Per-certificate and per-account caps.
    pub peer_limits: PeerLimits,
    /// Accounts allowed to send batches, checked per connection and per
    /// batch (an account removed from the organisation is refused at its
    /// next batch, not at certificate expiry). `None`: the enrolment
    /// policy's set when enrolment is on, else no check.
    pub allowed_accounts: Option<AllowedAccounts>,
    /// Answer new connections from unvalidated addresses with a QUIC
    /// stateless retry (address validation before any state is kept).
    pub stateless_retry: bool,
}

impl ServerConfig {
    /// Defaults: 30-day server certificate, 32 streams per connection, 256
    /// batches and 256 MiB in flight in total, default decode limits, 30 s
    /// frame reads with at most 5 s without progress, [`PeerLimits`]
    /// defaults, stateless retry on.
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
            frame_stall_timeout: Duration::from_secs(5),
            max_in_flight_bytes: 256 * 1024 * 1024,
            peer_limits: PeerLimits::default(),
            allowed_accounts: None,
            stateless_retry: true,
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
    /// Batch connections refused (account cap) or closed as the oldest of
    /// their certificate (certificate cap) by [`PeerLimits`].
    pub connections_over_limit_total: AtomicU64,
    /// Batch connections and frames refused because the account left the
    /// allow-list.
    pub revoked_total: AtomicU64,
    /// Frames that stalled (no bytes within `frame_stall_timeout`).
    pub frames_stalled_total: AtomicU64,
    /// Connections answered with a QUIC stateless retry.
    pub retries_sent_total: AtomicU64,
    /// Highest declared frame bytes in flight at once.
    pub max_in_flight_bytes_seen: AtomicU64,
    in_flight: AtomicU64,
    in_flight_bytes: AtomicU64,
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
    /// See [`ServerCounters::connections_over_limit_total`].
    pub connections_over_limit_total: u64,
    /// See [`ServerCounters::revoked_total`].
    pub revoked_total: u64,
    /// See [`ServerCounters::frames_stalled_total`].
    pub frames_stalled_total: u64,
    /// See [`ServerCounters::retries_sent_total`].
    pub retries_sent_total: u64,
    /// See [`ServerCounters::max_in_flight_bytes_seen`].
    pub max_in_flight_bytes_seen: u64,
}

struct Shared<H> {
    handler: Arc<H>,
    enroller: Option<Enroller>,
    permits: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    bytes_total: u32,
    limits: DecodeLimits,
    frame_read_timeout: Duration,
    frame_stall_timeout: Duration,
    peer_limits: PeerLimits,
    peers: Mutex<HashMap<String, Arc<PeerBudget>>>,
    allowed: Option<AllowedAccounts>,
    stateless_retry: bool,
    counters: Arc<ServerCounters>,
}

/// What one account (or one certificate) holds right now.
struct PeerBudget {
    connections: AtomicUsize,
    /// Open connections, oldest first (certificate budgets only).
    open: Mutex<std::collections::VecDeque<(usize, quinn::Connection)>>,
    streams: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    bytes_total: u32,
}

fn byte_budget(bytes: usize) -> u32 {
    u32::try_from(bytes.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX)
}

impl PeerBudget {
    fn new(streams: usize, bytes: usize) -> Self {
        let bytes_total = byte_budget(bytes);
        Self {
            connections: AtomicUsize::new(0),
            open: Mutex::new(std::collections::VecDeque::new()),
            streams: Arc::new(Semaphore::new(streams.max(1))),
            bytes: Arc::new(Semaphore::new(bytes_total as usize)),
            bytes_total,
        }
    }
}

/// The budgets of a connected certificate: its own and its account's.
struct PeerBudgets {
    certificate: Arc<PeerBudget>,
    account: Arc<PeerBudget>,
}

/// Gives a connection slot back when the connection ends.
struct ConnectionSlot(Arc<PeerBudgets>, usize);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0
            .certificate
            .connections
            .fetch_sub(1, Ordering::AcqRel);
        self.0.account.connections.fetch_sub(1, Ordering::AcqRel);
        self.0
            .certificate
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(id, _)| *id != self.1);
    }
}

impl<H> Shared<H> {
    fn budget(&self, key: String, streams: usize, bytes: usize) -> Arc<PeerBudget> {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        peers
            .entry(key)
            .or_insert_with(|| Arc::new(PeerBudget::new(streams, bytes)))
            .clone()
    }

    /// Takes a connection slot for `conn` of `peer`, or says why not. Past
    /// the certificate's cap the certificate's *oldest* connection is
    /// closed (an agent that reconnects after a crash or a network cut
    /// leaves stale connections until their idle timeout; the newest one is
    /// the live one); past the account's cap the new connection is refused.
    fn connect(
        &self,
        peer: &PeerIdentity,
        conn: &quinn::Connection,
    ) -> Result<ConnectionSlot, String> {
        let l = self.peer_limits;
        let budgets = Arc::new(PeerBudgets {
            certificate: self.budget(
                format!("cert:{}/{}", peer.account_id, peer.agent_id),
                l.streams_per_account,
                l.bytes_per_certificate,
            ),
            account: self.budget(
                format!("account:{}", peer.account_id),
                l.streams_per_account,
                l.bytes_per_account,
            ),
        });
        let cert = budgets
            .certificate
            .connections
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        let account = budgets.account.connections.fetch_add(1, Ordering::AcqRel) + 1;
        let id = conn.stable_id();
        let replaced = {
            let mut open = budgets
                .certificate
                .open
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            open.push_back((id, conn.clone()));
            (cert > l.connections_per_certificate)
                .then(|| open.pop_front())
                .flatten()
        };
        let slot = ConnectionSlot(budgets, id);
        if let Some((_, oldest)) = replaced {
            self.counters
                .connections_over_limit_total
                .fetch_add(1, Ordering::Relaxed);
            oldest.close(
                CLOSE_TOO_MANY_CONNECTIONS.into(),
                format!(
                    "replaced by a newer connection: at most {} connections per client certificate",
                    l.connections_per_certificate
                )
                .as_bytes(),
            );
        }
        if account > l.connections_per_account {
            return Err(format!(
                "expected at most {} connections per account, found {account} for account {}",
                l.connections_per_account, peer.account_id
            ));
        }
        Ok(slot)
    }

    fn revoked(&self, account_id: &str) -> bool {
        self.allowed
            .as_ref()
            .is_some_and(|a| !a.contains(account_id))
    }
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
        let allowed = config.allowed_accounts.clone().or_else(|| {
            config
                .enrollment
                .as_ref()
                .map(|p| p.allowed_accounts.clone())
        });
        let shared = Arc::new(Shared {
            handler,
            enroller,
            permits: Arc::new(Semaphore::new(config.max_in_flight_batches.max(1))),
            bytes: Arc::new(Semaphore::new(
                byte_budget(config.max_in_flight_bytes) as usize
            )),
            bytes_total: byte_budget(config.max_in_flight_bytes),
            limits: config.decode_limits.clone(),
            frame_read_timeout: config.frame_read_timeout,
            frame_stall_timeout: config.frame_stall_timeout,
            peer_limits: config.peer_limits,
            peers: Mutex::new(HashMap::new()),
            allowed,
            stateless_retry: config.stateless_retry,
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
            connections_over_limit_total: get(&c.connections_over_limit_total),
            revoked_total: get(&c.revoked_total),
            frames_stalled_total: get(&c.frames_stalled_total),
            retries_sent_total: get(&c.retries_sent_total),
            max_in_flight_bytes_seen: get(&c.max_in_flight_bytes_seen),
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
        // Stateless retry: a client must prove it receives at its address
        // before the server keeps any state or spends a handshake on it.
        if shared.stateless_retry && !incoming.remote_address_validated() && incoming.may_retry() {
            shared
                .counters
                .retries_sent_total
                .fetch_add(1, Ordering::Relaxed);
            if let Err(e) = incoming.retry() {
                tracing::debug!(error = %e, "cannot send a stateless retry");
            }
            continue;
        }
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
            Ok(peer) if shared.revoked(&peer.account_id) => {
                counters.revoked_total.fetch_add(1, Ordering::Relaxed);
                counters
                    .connections_refused_total
                    .fetch_add(1, Ordering::Relaxed);
                let reason = format!(
                    "account {} is not in the organisation's allow-list (revoked)",
                    peer.account_id
                );
                tracing::warn!(agent_id = %peer.agent_id, account_id = %peer.account_id, "refused batch connection of a revoked account");
                conn.close(CLOSE_REVOKED.into(), reason.as_bytes());
            }
            Ok(peer) => {
                let slot = match shared.connect(&peer, &conn) {
                    Ok(slot) => slot,
                    Err(reason) => {
                        counters
                            .connections_over_limit_total
                            .fetch_add(1, Ordering::Relaxed);
                        counters
                            .connections_refused_total
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(agent_id = %peer.agent_id, account_id = %peer.account_id, %reason, "refused batch connection");
                        conn.close(CLOSE_TOO_MANY_CONNECTIONS.into(), reason.as_bytes());
                        return;
                    }
                };
                counters
                    .connections_opened_total
                    .fetch_add(1, Ordering::Relaxed);
                serve_batches(conn, peer, slot.0.clone(), &shared).await;
                drop(slot);
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
    budgets: Arc<PeerBudgets>,
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
        // QUIC's stream limit and windows then hold the agent back. The
        // account's own stream cap comes first, so one account waits on
        // itself before it can hold any of the shared slots.
        let Ok(account_permit) = budgets.account.streams.clone().acquire_owned().await else {
            return;
        };
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
        let budgets = budgets.clone();
        tokio::spawn(async move {
            serve_stream(send, recv, &peer, &budgets, &shared).await;
            shared.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
            drop(permit);
            drop(account_permit);
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
    /// No bytes arrived within the stall timeout: answered, not quarantined
    /// (there is nothing worth keeping), slot and bytes given back.
    Stalled(ReplyError),
}

/// A read error that is the transport going away rather than a bad frame.
fn interruption(e: &quinn::ReadExactError) -> Option<String> {
    match e {
        quinn::ReadExactError::FinishedEarly(_) => None,
        quinn::ReadExactError::ReadError(read) => Some(read.to_string()),
    }
}

/// Reads exactly `buf.len()` bytes, each read within `stall`; `Ok(false)`
/// when the stream stalled.
async fn read_stalling(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    stall: Duration,
) -> Result<bool, quinn::ReadExactError> {
    let mut filled = 0;
    while filled < buf.len() {
        match tokio::time::timeout(stall, recv.read(&mut buf[filled..])).await {
            Err(_) => return Ok(false),
            Ok(Ok(Some(n))) => filled += n,
            Ok(Ok(None)) => return Err(quinn::ReadExactError::FinishedEarly(filled)),
            Ok(Err(e)) => return Err(quinn::ReadExactError::ReadError(e)),
        }
    }
    Ok(true)
}

/// Largest chunk the body buffer grows by at once.
const READ_CHUNK: usize = 64 * 1024;

/// The byte budgets a frame holds until its reply is sent.
struct BytePermits {
    _permits: Vec<tokio::sync::OwnedSemaphorePermit>,
    counters: Arc<ServerCounters>,
    bytes: u64,
}

impl Drop for BytePermits {
    fn drop(&mut self) {
        self.counters
            .in_flight_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

fn stalled(stall: Duration) -> ReadFailure {
    ReadFailure::Stalled(refusal(
        None,
        ErrorCode::MalformedFrame,
        format!(
            "expected frame bytes within {} ms, found a stalled stream",
            stall.as_millis()
        ),
    ))
}

/// Reads one frame. The header is read first; the frame's declared length
/// is then reserved from the certificate's, the account's and the global
/// byte budgets (waiting while they are full), and the body buffer grows
/// as bytes arrive (never allocated at the declared length up front).
async fn read_frame<H>(
    recv: &mut quinn::RecvStream,
    budgets: &PeerBudgets,
    shared: &Shared<H>,
) -> Result<(u16, Vec<u8>, BytePermits), ReadFailure> {
    let limits = &shared.limits;
    let stall = shared.frame_stall_timeout;
    let mut frame = vec![0u8; HEADER_LEN];
    match read_stalling(recv, &mut frame, stall).await {
        Ok(true) => {}
        Ok(false) => return Err(stalled(stall)),
        Err(e) => {
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
    let declared = header.frame_len();
    let n = u32::try_from(declared).unwrap_or(u32::MAX);
    let mut taken = Vec::with_capacity(3);
    for (budget, total) in [
        (&budgets.certificate.bytes, budgets.certificate.bytes_total),
        (&budgets.account.bytes, budgets.account.bytes_total),
        (&shared.bytes, shared.bytes_total),
    ] {
        // Never more than the whole budget, so a budget smaller than one
        // frame still lets frames through one at a time.
        match budget.clone().acquire_many_owned(n.min(total).max(1)).await {
            Ok(p) => taken.push(p),
            Err(_) => return Err(ReadFailure::Interrupted("server shutting down".into())),
        }
    }
    let held = shared
        .counters
        .in_flight_bytes
        .fetch_add(declared as u64, Ordering::AcqRel)
        + declared as u64;
    shared
        .counters
        .max_in_flight_bytes_seen
        .fetch_max(held, Ordering::AcqRel);
    let permits = BytePermits {
        _permits: taken,
        counters: shared.counters.clone(),
        bytes: declared as u64,
    };
    while frame.len() < declared {
        let start = frame.len();
        let chunk = (declared - start).min(READ_CHUNK);
        frame.resize(start + chunk, 0);
        match read_stalling(recv, &mut frame[start..], stall).await {
            Ok(true) => {}
            Ok(false) => return Err(stalled(stall)),
            Err(e) => {
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
        }
    }
    Ok((header.version, frame, permits))
}

async fn serve_stream<H: BatchHandler>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: &PeerIdentity,
    budgets: &PeerBudgets,
    shared: &Shared<H>,
) {
    let read = tokio::time::timeout(
        shared.frame_read_timeout,
        read_frame(&mut recv, budgets, shared),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ReadFailure::Stalled(refusal(
            None,
            ErrorCode::MalformedFrame,
            format!(
                "expected a whole frame within {} ms, found a stalled stream",
                shared.frame_read_timeout.as_millis()
            ),
        )))
    });
    let mut _held_bytes = None;
    let (version, reply, refused_frame) = match read {
        Err(ReadFailure::Interrupted(reason)) => {
            tracing::debug!(agent_id = %peer.agent_id, %reason, "batch stream interrupted before a whole frame");
            return;
        }
        Err(ReadFailure::Stalled(error)) => {
            shared
                .counters
                .frames_stalled_total
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(agent_id = %peer.agent_id, account_id = %peer.account_id, "stalled batch stream refused");
            let _ = recv.stop(1u32.into());
            (CURRENT_VERSION, Reply::Error(error), None)
        }
        Err(ReadFailure::Refused(version, error, partial)) => {
            (version, Reply::Error(error), Some(partial))
        }
        Ok((version, frame, held)) => {
            // The frame's byte budgets are held until its reply is sent.
            _held_bytes = Some(held);
            match decode_batch(&frame, &shared.limits) {
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
                Ok(batch) if shared.revoked(&peer.account_id) => {
                    shared
                        .counters
                        .revoked_total
                        .fetch_add(1, Ordering::Relaxed);
                    shared
                        .counters
                        .batches_unauthorized_total
                        .fetch_add(1, Ordering::Relaxed);
                    let message = format!(
                        "expected an account of the organisation's allow-list, found account {} (revoked)",
                        peer.account_id
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
            }
        }
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
