//! Batch ingest over QUIC: the [`BatchHandler`] the transport server calls
//! for every batch an agent sends.
//!
//! For each batch: validate (protocol version, limits, finite non-negative
//! values through [`canopy_protocol::Batch::validate`], interval lengths,
//! record starts at or after the retention horizon
//! ([`RetentionPolicy::accept_horizon_unix_s`]) and ends at most
//! [`DeliveryConfig::max_future_s`] ahead, every number within its
//! [`crate::plausibility`] bound), convert with [`batch_from_protocol`],
//! write in **one** transaction (that also checks the account's
//! [`DimensionQuota`] and, for a duplicate, that the stored idempotency key
//! is the batch's) with [`store_batch`], commit, and **only then** answer
//! `Ack { sequence, idempotency_key, duplicate }`. The batch log is keyed by
//! (certificate account, agent id, sequence): see migration 0018.
//!
//! The transaction first takes the retention lock shared (see
//! [`crate::maintenance`]) and checks the horizon again with the clock read
//! after the lock was granted: retention cannot drop a partition the batch
//! writes, and a batch cannot write a record retention has already expired
//! (it would be dropped again while its share stayed in the daily rollups,
//! and a later revision would be counted on top of it).
//!
//! - A retryable database error is answered `Unavailable` with
//!   `retry_after_s`; the agent keeps the batch and sends it again (a resend
//!   is a no-op once stored, keyed by (account, agent id, sequence)). Retryable means
//!   [`StoreError::is_retryable`] or any condition of the server, not of the
//!   batch (see [`classify`]).
//! - An invalid batch is answered `InvalidBatch` with a message naming the
//!   field, logged, and its raw frame stored in `quarantined_batches`.
//!   Frames the transport refused before the handler are quarantined too.
//!   Only errors that the batch's own values provably caused are classed
//!   so; a record older than the horizon refuses the whole batch, as every
//!   other invalid record does (the agent counts it as refused).
//! - Flow control: the database pool is bounded and the transport holds a
//!   semaphore of batches in flight; a slow database holds both, the
//!   transport stops accepting streams and agents wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use canopy_protocol::{self as wire, Ack, DecodeLimits, ErrorCode, Reply, ReplyError};
use canopy_transport::{BatchHandler, InboundBatch, PeerIdentity, ServerStats};
use sqlx::{PgPool, Row};

use crate::from_protocol::{agent_status_from_protocol, batch_from_protocol};
use crate::ingest::{StoreError, StoreOutcome, store_agent_status, store_batch};
use crate::db::StorageMode;
use crate::maintenance::{ACCEPT_HORIZON_MARGIN_S, RETENTION_LOCK_SQL, RetentionPolicy};
use crate::time::{DAY_S, civil_from_days, month_start_shifted};

/// Longest interval of one emission record, seconds (facts lie within one hour).
pub const MAX_INTERVAL_S: i64 = 3_600;

/// Most distinct values of each free-form dimension one account may use in
/// one UTC month (see [`crate::plausibility`] for the numeric bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimensionQuota {
    /// Distinct `team` values.
    pub team: u32,
    /// Distinct `service` values.
    pub service: u32,
    /// Distinct `resource_type` values.
    pub resource_type: u32,
}

impl Default for DimensionQuota {
    /// 1,000 teams, 200 services and 1,000 resource types per account and
    /// month: far above a real account (AWS has about 250 services).
    fn default() -> Self {
        Self { team: 1_000, service: 200, resource_type: 1_000 }
    }
}

impl DimensionQuota {
    fn limit(&self, field: &str) -> u32 {
        match field {
            "team" => self.team,
            "service" => self.service,
            _ => self.resource_type,
        }
    }
}

/// Bytes of a refused frame kept in `quarantined_batches.frame_sample`.
pub const QUARANTINE_SAMPLE_BYTES: usize = 4 * 1024;

/// Ingest settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The retention applied by maintenance: records older than
    /// [`RetentionPolicy::accept_horizon_unix_s`] are refused.
    pub retention: RetentionPolicy,
    /// Latest accepted interval end, seconds after the aggregator's clock.
    pub max_future_s: i64,
    /// Limits re-checked on every batch (the transport decodes with its own).
    pub limits: DecodeLimits,
    /// Delay suggested to agents when the database is unavailable.
    pub retry_after_s: u32,
    /// The storage path: on TimescaleDB the extension's own retention
    /// policies drop chunks older than 13 months (not whole months), so the
    /// horizon there is the next month start after that ([`Self::accept_horizon_unix_s`]).
    pub storage: StorageMode,
    /// Distinct team / service / resource type values per account and month.
    pub quota: DimensionQuota,
}

impl DeliveryConfig {
    /// [`Self::for_retention`] with the default retention except facts kept
    /// `facts_months` months.
    pub fn new(facts_months: u32) -> Self {
        Self::for_retention(RetentionPolicy { facts_months, ..RetentionPolicy::default() })
    }

    /// Defaults for the retention maintenance applies: records accepted only
    /// from the horizon that retention keeps, 15 minutes of clock skew into
    /// the future, default decode limits, retry after 2 s.
    pub fn for_retention(retention: RetentionPolicy) -> Self {
        Self {
            retention,
            max_future_s: 15 * 60,
            limits: DecodeLimits::default(),
            retry_after_s: 2,
            quota: DimensionQuota::default(),
            storage: StorageMode::Native,
        }
    }

    /// The same settings for the storage path `storage`.
    pub fn with_storage(mut self, storage: StorageMode) -> Self {
        self.storage = storage;
        self
    }

    /// The oldest record start ingest accepts at `now_unix_s`: what native
    /// retention keeps ([`RetentionPolicy::accept_horizon_unix_s`]) and, on
    /// the TimescaleDB path, no earlier than the month start that follows
    /// `now + margin - 13 months`, where the facts' retention policy drops
    /// chunks (migration 0002). A record before it could be stored, dropped
    /// with its chunk and, revised later, counted again (issue 13, case 5).
    pub fn accept_horizon_unix_s(&self, now_unix_s: i64) -> i64 {
        let native = self.retention.accept_horizon_unix_s(now_unix_s);
        match self.storage {
            StorageMode::Native => native,
            StorageMode::TimescaleDb => {
                native.max(month_start_shifted(now_unix_s + ACCEPT_HORIZON_MARGIN_S, -12))
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix second (for messages).
fn rfc3339(t_unix_s: i64) -> String {
    let (y, m, d) = civil_from_days(t_unix_s.div_euclid(DAY_S));
    let s = t_unix_s.rem_euclid(DAY_S);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3_600, s / 60 % 60, s % 60)
}

/// Refuses a batch holding a record that starts before the retention
/// horizon at `now_unix_s`; the message names the record, the horizon and
/// what was found.
pub fn check_horizon(batch: &wire::Batch, now_unix_s: i64, config: &DeliveryConfig) -> Result<(), String> {
    let oldest = config.accept_horizon_unix_s(now_unix_s);
    match batch.emissions.iter().position(|e| e.interval_start_unix_s < oldest) {
        None => Ok(()),
        Some(i) => {
            let found = batch.emissions[i].interval_start_unix_s;
            Err(format!(
                "emissions[{i}].interval_start_unix_s: expected at or after {oldest} ({}, the start of the oldest \
                 month retention keeps), found {found} ({}); data past retention is not stored",
                rfc3339(oldest),
                rfc3339(found)
            ))
        }
    }
}

/// Why the aggregator refused a batch (the `reason` label of
/// `canopy_aggregator_batches_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Failed protocol validation or the store's checks.
    Invalid,
    /// A record older than the retention horizon.
    PastRetention,
    /// A value outside its physical plausibility bound.
    Implausible,
    /// The account's distinct team / service / resource type quota.
    Cardinality,
    /// A stored sequence re-sent with another idempotency key.
    IdempotencyConflict,
    /// Refused by the transport before the handler (malformed frame,
    /// limits, foreign account or agent id, revoked account).
    Transport,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Refusal; 6] = [
        Refusal::Invalid,
        Refusal::PastRetention,
        Refusal::Implausible,
        Refusal::Cardinality,
        Refusal::IdempotencyConflict,
        Refusal::Transport,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Invalid => "invalid",
            Refusal::PastRetention => "past_retention",
            Refusal::Implausible => "implausible",
            Refusal::Cardinality => "cardinality",
            Refusal::IdempotencyConflict => "idempotency_conflict",
            Refusal::Transport => "transport",
        }
    }
}

/// Upper bounds (milliseconds) of the acknowledgement latency histogram.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// Monotonic ingest counters, rendered in the Prometheus text format.
#[derive(Debug, Default)]
pub struct DeliveryMetrics {
    /// Batches handed to the handler, plus frames refused by the transport.
    pub batches_received_total: AtomicU64,
    /// Batches acknowledged (stored or duplicate).
    pub batches_acked_total: AtomicU64,
    /// Of those, re-sent batches that were already stored.
    pub batches_duplicate_total: AtomicU64,
    /// Batches refused as invalid, malformed or unauthorized (quarantined).
    pub batches_rejected_total: AtomicU64,
    /// Of the rejected batches, those refused for a record older than the
    /// retention horizon.
    pub batches_past_retention_total: AtomicU64,
    /// Batches answered "unavailable" (database trouble; the agent retries).
    pub batches_unavailable_total: AtomicU64,
    /// Batches answered "internal" after a database error that is neither
    /// transient nor caused by the batch (the agent retries; not quarantined).
    pub batches_internal_error_total: AtomicU64,
    /// Emission records written (new or replacing a lower revision).
    pub records_stored_total: AtomicU64,
    /// Quarantine writes that failed (the frame is lost for inspection only).
    pub quarantine_failures_total: AtomicU64,
    /// Refused batches by [`Refusal`] (index in [`Refusal::ALL`]).
    pub refused_by_reason: [AtomicU64; Refusal::ALL.len()],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl DeliveryMetrics {
    /// Records one acknowledgement latency.
    pub fn observe_ack_latency(&self, elapsed: std::time::Duration) {
        let ms = elapsed.as_millis() as u64;
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_MS) {
            if ms <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition of these counters and, when given, the
    /// transport server's counters.
    pub fn render(&self, transport: Option<&ServerStats>) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (name, help, value) in [
            ("canopy_aggregator_batches_received_total", "Batch frames received.", get(&self.batches_received_total)),
            ("canopy_aggregator_batches_acked_total", "Batches acknowledged.", get(&self.batches_acked_total)),
            (
                "canopy_aggregator_batches_duplicate_total",
                "Acknowledged batches that were already stored.",
                get(&self.batches_duplicate_total),
            ),
            (
                "canopy_aggregator_batches_rejected_total",
                "Batches refused and quarantined.",
                get(&self.batches_rejected_total),
            ),
            (
                "canopy_aggregator_batches_past_retention_total",
                "Refused batches holding a record older than the retention horizon.",
                get(&self.batches_past_retention_total),
            ),
            (
                "canopy_aggregator_batches_unavailable_total",
                "Batches answered unavailable (agent retries).",
                get(&self.batches_unavailable_total),
            ),
            (
                "canopy_aggregator_batches_internal_error_total",
                "Batches answered internal error after a database error not caused by the batch (agent retries).",
                get(&self.batches_internal_error_total),
            ),
            (
                "canopy_aggregator_records_stored_total",
                "Emission records written.",
                get(&self.records_stored_total),
            ),
            (
                "canopy_aggregator_quarantine_failures_total",
                "Refused frames that could not be quarantined.",
                get(&self.quarantine_failures_total),
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        }
        let name = "canopy_aggregator_batches_refused_total";
        out.push_str(&format!("# HELP {name} Refused batches by reason.\n# TYPE {name} counter\n"));
        for (reason, count) in Refusal::ALL.iter().zip(&self.refused_by_reason) {
            out.push_str(&format!("{name}{{reason=\"{}\"}} {}\n", reason.label(), get(count)));
        }
        let name = "canopy_aggregator_ack_latency_seconds";
        out.push_str(&format!(
            "# HELP {name} Time from receiving a batch to its reply.\n# TYPE {name} histogram\n"
        ));
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS_MS) {
            out.push_str(&format!("{name}_bucket{{le=\"{}\"}} {}\n", bound as f64 / 1_000.0, get(bucket)));
        }
        let count = get(&self.latency_count);
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!("{name}_sum {}\n", get(&self.latency_sum_us) as f64 / 1e6));
        out.push_str(&format!("{name}_count {count}\n"));
        if let Some(s) = transport {
            for (name, value) in [
                ("canopy_transport_connections_opened_total", s.connections_opened_total),
                ("canopy_transport_connections_closed_total", s.connections_closed_total),
                ("canopy_transport_connections_refused_total", s.connections_refused_total),
                ("canopy_transport_enrollments_total", s.enrollments_total),
                ("canopy_transport_batches_in_total", s.batches_in_total),
                ("canopy_transport_batches_out_total", s.batches_out_total),
                ("canopy_transport_batches_refused_total", s.batches_refused_total),
                ("canopy_transport_batches_unauthorized_total", s.batches_unauthorized_total),
                ("canopy_transport_connections_over_limit_total", s.connections_over_limit_total),
                ("canopy_transport_revoked_total", s.revoked_total),
                ("canopy_transport_frames_stalled_total", s.frames_stalled_total),
                ("canopy_transport_retries_sent_total", s.retries_sent_total),
            ] {
                out.push_str(&format!("# TYPE {name} counter\n{name} {value}\n"));
            }
        }
        out
    }
}

/// Checks a decoded batch before storage. `Err` is the message sent to the
/// agent; it names the record and field, what was expected and what was found.
pub fn validate_batch(batch: &wire::Batch, version: u16, now_unix_s: i64, config: &DeliveryConfig) -> Result<(), String> {
    if !wire::is_supported(version) {
        return Err(format!(
            "protocol version: expected {}..={}, found {version}",
            wire::MIN_SUPPORTED_VERSION,
            wire::CURRENT_VERSION
        ));
    }
    batch.validate(&config.limits).map_err(|e| e.to_string())?;
    check_horizon(batch, now_unix_s, config)?;
    let latest = now_unix_s + config.max_future_s;
    for (i, e) in batch.emissions.iter().enumerate() {
        if e.interval_end_unix_s > latest {
            return Err(format!(
                "emissions[{i}].interval_end_unix_s: expected at most {latest} (15 min ahead of the aggregator clock), found {}",
                e.interval_end_unix_s
            ));
        }
        let length_s = e.interval_end_unix_s - e.interval_start_unix_s;
        if length_s > MAX_INTERVAL_S {
            return Err(format!(
                "emissions[{i}]: expected an interval of at most {MAX_INTERVAL_S} s, found {length_s} s"
            ));
        }
    }
    crate::plausibility::check_batch(batch, latest.saturating_mul(1_000))?;
    Ok(())
}

/// The ingest handler: validates, stores in one transaction, commits, then acks.
pub struct Ingest {
    pool: PgPool,
    config: DeliveryConfig,
    metrics: Arc<DeliveryMetrics>,
    clock: fn() -> i64,
}

impl Ingest {
    /// A handler writing to `pool`; `clock` gives the current Unix seconds.
    pub fn new(pool: PgPool, config: DeliveryConfig, clock: fn() -> i64) -> Self {
        Self { pool, config, metrics: Arc::new(DeliveryMetrics::default()), clock }
    }

    /// The handler's counters (shared; read them while it runs).
    pub fn metrics(&self) -> Arc<DeliveryMetrics> {
        self.metrics.clone()
    }

    /// Stores `batch` of `peer` in one transaction; `Ok(Err((reason,
    /// message)))` when the batch is refused inside it: once the retention
    /// lock was granted it turned out older than the horizon (retention ran
    /// since [`validate_batch`]), it would take the account past its
    /// [`DimensionQuota`], or its sequence was stored before with another
    /// idempotency key.
    async fn store(&self, peer: &PeerIdentity, batch: &wire::Batch) -> Result<Result<StoreOutcome, (Refusal, String)>, StoreError> {
        let model = batch_from_protocol(batch);
        let mut tx = self.pool.begin().await?;
        // The batch log's account and idempotency key columns default to
        // these transaction-local settings (migration 0018).
        let key_hex: String = batch.idempotency_key.0.iter().map(|b| format!("{b:02x}")).collect();
        sqlx::query(&format!(
            "SELECT pg_advisory_xact_lock_shared({RETENTION_LOCK_SQL}), \
             pg_advisory_xact_lock_shared({factors_lock}), set_config('canopy.batch_account', $1, true), \
             set_config('canopy.batch_key', $2, true)",
            factors_lock = crate::factors::FACTORS_LOCK_SQL
        ))
        .bind(&peer.account_id)
        .bind(&key_hex)
        .execute(&mut *tx)
        .await?;
        if let Err(message) = check_horizon(batch, (self.clock)(), &self.config) {
            return Ok(Err((Refusal::PastRetention, message)));
        }
        if let Err(message) = check_quota(&mut tx, &peer.account_id, &model, &self.config.quota).await? {
            return Ok(Err((Refusal::Cardinality, message)));
        }
        // The reported CO2e: the aggregator's factor sets over the agent's energy.
        let mut model = model;
        crate::factors::apply(&mut tx, &mut model.facts).await?;
        let outcome = store_batch(&mut tx, &model).await?;
        if outcome == StoreOutcome::Duplicate {
            let stored: Option<Option<Vec<u8>>> = sqlx::query_scalar(
                "SELECT idempotency_key FROM ingested_batches WHERE account_id = $1 AND agent_id = $2 AND sequence = $3",
            )
            .bind(&peer.account_id)
            .bind(&batch.agent_id)
            .bind(i64::try_from(batch.sequence).unwrap_or(i64::MAX))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(Some(stored)) = stored
                && stored.as_slice() != batch.idempotency_key.0.as_slice()
            {
                let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
                return Ok(Err((
                    Refusal::IdempotencyConflict,
                    format!(
                        "idempotency_key: sequence {} of agent {:?} was stored with idempotency key {}, found {}; \
                         a re-sent sequence must carry the same key",
                        batch.sequence,
                        batch.agent_id,
                        hex(&stored),
                        hex(&batch.idempotency_key.0)
                    ),
                )));
            }
        }
        // Protocol v2: the agent's status, in the batch's transaction.
        if let (StoreOutcome::Stored(_), Some(status)) = (outcome, agent_status_from_protocol(batch)) {
            store_agent_status(&mut tx, &status).await?;
        }
        tx.commit().await?;
        Ok(Ok(outcome))
    }

    async fn refuse(&self, peer: &PeerIdentity, frame: &[u8], error: &ReplyError, reason: Refusal) {
        self.metrics.batches_rejected_total.fetch_add(1, Ordering::Relaxed);
        let index = Refusal::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.metrics.refused_by_reason[index].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            reason = reason.label(),
            agent_id = %peer.agent_id,
            account_id = %peer.account_id,
            sequence = ?error.sequence,
            code = %error.code,
            error = %error.message,
            "batch refused and quarantined"
        );
        if let Err(e) = quarantine(&self.pool, peer, frame, error).await {
            self.metrics.quarantine_failures_total.fetch_add(1, Ordering::Relaxed);
            tracing::error!(agent_id = %peer.agent_id, error = %e, "quarantining a refused frame failed");
        }
    }
}

/// What a failed store means for the batch and the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The batch's own values caused it: refuse and quarantine.
    BadInput,
    /// A transient condition of the server (connection, lock, concurrent
    /// retention, resources, shutdown): `Unavailable`, the agent retries.
    Transient,
    /// Any other server-side error (schema, permissions, a bug): `Internal`,
    /// logged at ERROR, the agent retries; never quarantined.
    Server,
}

/// Classes a failed store. Bad input only when the batch is provably at
/// fault: a fact, inventory row or batch identity failed validation, or
/// PostgreSQL refused a value of the batch ([`sqlstate_is_bad_input`]).
/// Everything else is the server's, whatever the batch held.
fn classify(e: &StoreError) -> Failure {
    match e {
        StoreError::InvalidFact { .. } | StoreError::InvalidInventory { .. } | StoreError::InvalidBatch(_) => {
            Failure::BadInput
        }
        _ if e.is_retryable() => Failure::Transient,
        StoreError::Sql(sqlx::Error::Database(db)) | StoreError::Db(crate::db::DbError::Sql(sqlx::Error::Database(db))) => {
            match db.code() {
                Some(code) if sqlstate_is_bad_input(&code) => Failure::BadInput,
                Some(code) if sqlstate_is_transient(&code) => Failure::Transient,
                _ => Failure::Server,
            }
        }
        _ => Failure::Server,
    }
}

/// SQLSTATEs only a value carried by the batch can raise in the ingest
/// statements: text PostgreSQL cannot store (22021 a NUL byte or invalid
/// encoding, 22P05 `\u0000` in a JSON tag or attribute) and an instant
/// outside PostgreSQL's timestamp range (22008, an inventory row's
/// `observed` time). The rest of classes 22 and 23 is not provable: 23514
/// is also "no partition of relation found for row" (a partition dropped
/// by retention or not yet created), 23505/23P01 come from concurrent
/// writers, 23502/23503 from the schema or rows the batch does not
/// control, 22003/22012 from sums over stored rows.
fn sqlstate_is_bad_input(code: &str) -> bool {
    matches!(code, "22021" | "22P05" | "22008")
}

/// SQLSTATEs of conditions that pass: 08 connection exceptions, 40
/// transaction rollback (serialisation failure, deadlock), 53 insufficient
/// resources (disk full, out of memory, too many connections), 57 operator
/// intervention (shutdown, cancel, crash recovery), 55P03 lock not
/// available, 55006 object in use, 58 system errors (I/O) and 23514 a row
/// with no partition (the retention lock keeps retention from causing it;
/// should a partition be missing anyway, it is the server's state, not the
/// batch's). Other errors (42P01 a missing table, XX000) are `Server`.
fn sqlstate_is_transient(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58")) || matches!(code, "55P03" | "55006" | "23514")
}

/// Stores a refused frame's reason, SHA-256, length and first
/// [`QUARANTINE_SAMPLE_BYTES`] bytes in `quarantined_batches` (never the
/// whole frame: a hostile agent could fill the disk with 8 MiB frames).
pub async fn quarantine(pool: &PgPool, peer: &PeerIdentity, frame: &[u8], error: &ReplyError) -> Result<(), sqlx::Error> {
    let digest = ring::digest::digest(&ring::digest::SHA256, frame);
    sqlx::query(
        "INSERT INTO quarantined_batches (agent_id, account_id, sequence, error_code, error, frame_sha256, frame_len,
                                          frame_sample)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&peer.agent_id)
    .bind(&peer.account_id)
    .bind(error.sequence.and_then(|s| i64::try_from(s).ok()))
    .bind(error.code.name())
    .bind(&error.message)
    .bind(digest.as_ref())
    .bind(i32::try_from(frame.len()).unwrap_or(i32::MAX))
    .bind(&frame[..frame.len().min(QUARANTINE_SAMPLE_BYTES)])
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the batch's team, service and resource type values for its
/// account and month(s) in `account_dimension_values` and refuses the batch
/// (`Ok(Err(message))`) when that takes a (month, field) past `quota`. Teams
/// are the explicit group teams and the values of the configured team tag.
async fn check_quota(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    account_id: &str,
    batch: &crate::model::Batch,
    quota: &DimensionQuota,
) -> Result<Result<(), String>, StoreError> {
    let month = |t: i64| {
        let (y, m, _) = civil_from_days(t.div_euclid(DAY_S));
        crate::time::days_from_civil(y, m, 1) * DAY_S
    };
    let (mut months, mut fields, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tag_months, mut tag_keys, mut tag_values) = (Vec::new(), Vec::new(), Vec::new());
    let mut push = |m: i64, f: &'static str, v: &str| {
        months.push(m);
        fields.push(f);
        values.push(v.to_owned());
    };
    for fact in &batch.facts {
        let m = month(fact.period_start_unix_s);
        push(m, "service", &fact.service);
        push(m, "resource_type", &fact.resource_type);
        if let Some(team) = fact.team.as_deref().filter(|t| !t.is_empty()) {
            push(m, "team", team);
        }
        for (k, v) in fact.tags.iter().flatten() {
            tag_months.push(m);
            tag_keys.push(k.clone());
            tag_values.push(v.clone());
        }
    }
    for row in &batch.inventory {
        let m = month(row.observed_unix_s);
        push(m, "service", &row.service);
        push(m, "resource_type", &row.resource_type);
        for (k, v) in &row.tags {
            tag_months.push(m);
            tag_keys.push(k.clone());
            tag_values.push(v.clone());
        }
    }
    if months.is_empty() {
        return Ok(Ok(()));
    }
    let rows = sqlx::query(
        "WITH v AS (
            SELECT DISTINCT to_timestamp(m) AS month_start, f AS field, v AS value
            FROM (SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[]) AS t(m, f, v)
                  UNION ALL
                  SELECT m, 'team', v FROM unnest($5::bigint[], $6::text[], $7::text[]) AS t(m, k, v)
                  WHERE k = (SELECT team_tag_key FROM canopy_settings) AND v <> '') x
         ),
         ins AS (
            INSERT INTO account_dimension_values (account_id, month_start, field, value)
            SELECT $1, month_start, field, value FROM v ORDER BY 2, 3, 4
            ON CONFLICT DO NOTHING RETURNING month_start, field
         ),
         touched AS (SELECT DISTINCT month_start, field FROM v)
         SELECT extract(epoch FROM t.month_start)::bigint AS month_unix_s, t.field,
                (SELECT count(*) FROM account_dimension_values d
                 WHERE d.account_id = $1 AND d.month_start = t.month_start AND d.field = t.field)
                + (SELECT count(*) FROM ins WHERE ins.month_start = t.month_start AND ins.field = t.field) AS n
         FROM touched t ORDER BY 1, 2",
    )
    .bind(account_id)
    .bind(&months)
    .bind(&fields)
    .bind(&values)
    .bind(&tag_months)
    .bind(&tag_keys)
    .bind(&tag_values)
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let field: String = row.try_get("field")?;
        let n: i64 = row.try_get("n")?;
        let limit = quota.limit(&field);
        if n > i64::from(limit) {
            let month_unix_s: i64 = row.try_get("month_unix_s")?;
            return Ok(Err(format!(
                "{field}: expected at most {limit} distinct {field} values per account and month (cardinality quota), \
                 found {n} for account {account_id} in {}",
                &rfc3339(month_unix_s)[..7]
            )));
        }
    }
    Ok(Ok(()))
}

impl BatchHandler for Ingest {
    async fn handle(&self, peer: &PeerIdentity, inbound: InboundBatch) -> Reply {
        let started = Instant::now();
        self.metrics.batches_received_total.fetch_add(1, Ordering::Relaxed);
        let batch = &inbound.batch;
        let invalid = |message: String| ReplyError {
            sequence: Some(batch.sequence),
            code: ErrorCode::InvalidBatch,
            message,
            retry_after_s: None,
        };
        let now_unix_s = (self.clock)();
        if let Err(message) = validate_batch(batch, inbound.version, now_unix_s, &self.config) {
            let reason = if check_horizon(batch, now_unix_s, &self.config).is_err() {
                self.metrics.batches_past_retention_total.fetch_add(1, Ordering::Relaxed);
                Refusal::PastRetention
            } else if message.contains("physical plausibility") || message.starts_with("agent_status.taken_at") {
                Refusal::Implausible
            } else {
                Refusal::Invalid
            };
            let error = invalid(message);
            self.refuse(peer, &inbound.frame, &error, reason).await;
            return Reply::Error(error);
        }
        let reply = match self.store(peer, batch).await {
            Ok(Err((reason, message))) => {
                if reason == Refusal::PastRetention {
                    self.metrics.batches_past_retention_total.fetch_add(1, Ordering::Relaxed);
                }
                let error = invalid(message);
                self.refuse(peer, &inbound.frame, &error, reason).await;
                Reply::Error(error)
            }
            Ok(Ok(outcome)) => {
                let duplicate = outcome == StoreOutcome::Duplicate;
                self.metrics.batches_acked_total.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    StoreOutcome::Duplicate => {
                        self.metrics.batches_duplicate_total.fetch_add(1, Ordering::Relaxed);
                    }
                    StoreOutcome::Stored(summary) => {
                        self.metrics.records_stored_total.fetch_add(summary.facts_written, Ordering::Relaxed);
                    }
                }
                Reply::Ack(Ack { sequence: batch.sequence, idempotency_key: batch.idempotency_key, duplicate })
            }
            Err(e) if classify(&e) == Failure::Transient => {
                self.metrics.batches_unavailable_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(agent_id = %peer.agent_id, sequence = batch.sequence, error = %e, "storing a batch failed; agent will retry");
                Reply::Error(ReplyError {
                    sequence: Some(batch.sequence),
                    code: ErrorCode::Unavailable,
                    message: format!("database unavailable: {e}"),
                    retry_after_s: Some(self.config.retry_after_s),
                })
            }
            Err(e) if classify(&e) == Failure::BadInput => {
                let error = invalid(e.to_string());
                self.refuse(peer, &inbound.frame, &error, Refusal::Invalid).await;
                Reply::Error(error)
            }
            Err(e) => {
                self.metrics.batches_internal_error_total.fetch_add(1, Ordering::Relaxed);
                tracing::error!(agent_id = %peer.agent_id, sequence = batch.sequence, error = %e, "storing a batch failed with a database error not caused by the batch; agent will retry");
                Reply::Error(ReplyError {
                    sequence: Some(batch.sequence),
                    code: ErrorCode::Internal,
                    message: format!("storing the batch failed: {e}"),
                    retry_after_s: Some(self.config.retry_after_s),
                })
            }
        };
        self.metrics.observe_ack_latency(started.elapsed());
        reply
    }

    async fn rejected(&self, peer: &PeerIdentity, frame: &[u8], error: &ReplyError) {
        self.metrics.batches_received_total.fetch_add(1, Ordering::Relaxed);
        self.refuse(peer, frame, error, Refusal::Transport).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(start: i64, end: i64, compute_kwh: f64) -> wire::EmissionRecord {
        wire::EmissionRecord {
            subject: wire::Subject::Resource { arn: "arn:aws:ec2:eu-west-1:123456789012:instance/i-1".into() },
            interval_start_unix_s: start,
            interval_end_unix_s: end,
            energy_compute_kwh: compute_kwh,
            energy_memory_kwh: 0.0,
            energy_storage_kwh: 0.0,
            energy_networking_kwh: 0.0,
            energy_accelerators_kwh: 0.0,
            pue: 1.0,
            embodied_g_co2e: 0.0,
            operational_location_g_co2e: 0.0,
            operational_market_g_co2e: 0.0,
            grid_location: wire::GridFactorUsed { g_co2e_per_kwh: 0.0, source: "ccf".into(), vintage: "2024".into() },
            grid_market: wire::GridFactorUsed { g_co2e_per_kwh: 0.0, source: "ccf".into(), vintage: "2024".into() },
            quality: wire::Quality::Estimated,
            low_g_co2e: 0.0,
            high_g_co2e: 0.0,
            methodology_version: "m".into(),
            revision: 0,
        }
    }

    fn batch(records: Vec<wire::EmissionRecord>) -> wire::Batch {
        wire::Batch {
            agent_id: "a".into(),
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            sequence: 1,
            idempotency_key: wire::IdempotencyKey([0; 16]),
            created_at_unix_ms: 0,
            resources: vec![],
            emissions: records,
            agent_status: None,
        }
    }

    const NOW: i64 = 1_800_000_000;

    /// One case per rule: `None` = accepted, `Some(text)` = refused with a
    /// message containing `text`.
    fn check(records: Vec<wire::EmissionRecord>, version: u16, expected: Option<&str>) {
        let config = DeliveryConfig::new(13);
        let found = validate_batch(&batch(records), version, NOW, &config);
        match (found, expected) {
            (Ok(()), None) => {}
            (Err(message), Some(text)) => assert!(message.contains(text), "{message:?} lacks {text:?}"),
            (found, expected) => panic!("expected {expected:?}, found {found:?}"),
        }
    }

    #[test]
    fn validation_names_the_problem() {
        let hour = NOW - NOW % 3_600 - 3_600;
        check(vec![record(hour, hour + 3_600, 1.0)], 1, None);
        let version_message = format!("protocol version: expected 1..={}, found 9", wire::CURRENT_VERSION);
        check(vec![record(hour, hour + 3_600, 1.0)], 9, Some(&version_message));
        check(vec![record(hour, hour + 3_600, -1.0)], 1, Some("energy_compute_kwh"));
        check(vec![record(hour, hour + 3_600, f64::NAN)], 1, Some("energy_compute_kwh"));
        // NOW = 2027-01-15T08:00Z: retention keeps facts and hourly rollups
        // from 2025-12-01 (13 months back); one second older is refused.
        let oldest = 1_764_547_200;
        check(vec![record(oldest, oldest + 60, 0.01)], 1, None);
        check(
            vec![record(hour, hour + 3_600, 1.0), record(oldest - 60, oldest, 1.0)],
            1,
            Some(
                "emissions[1].interval_start_unix_s: expected at or after 1764547200 (2025-12-01T00:00:00Z, \
                 the start of the oldest month retention keeps), found 1764547140 (2025-11-30T23:59:00Z)",
            ),
        );
        // 15 min ahead: end at NOW + 900 is accepted, NOW + 901 is not.
        check(vec![record(NOW, NOW + 900, 1.0)], 1, None);
        check(vec![record(NOW, NOW + 901, 1.0)], 1, Some("interval_end_unix_s: expected at most 1800000900"));
        check(vec![record(hour - 3_600, hour + 1, 1.0)], 1, Some("at most 3600 s, found 3601 s"));
    }

    /// Issue 13, case 5: the horizon is the start of the month retention
    /// keeps, as retention computes it, one day ahead.
    #[test]
    fn the_horizon_is_the_oldest_month_retention_keeps() {
        let day = |y, m, d| crate::time::days_from_civil(y, m, d) * DAY_S;
        let policy = RetentionPolicy::default();
        // 2026-12-07: retention drops October 2025, so 30-31 Oct 2025 are refused.
        let now = day(2026, 12, 7) + 12 * 3_600;
        assert_eq!(policy.accept_horizon_unix_s(now), day(2025, 11, 1));
        assert_eq!(policy.facts_cutoff_unix_s(now), day(2025, 11, 1));
        // Half an hour before December, October 2025 is refused already: a
        // run a moment later drops it.
        let eve = day(2026, 12, 1) - 1_800;
        assert_eq!(policy.facts_cutoff_unix_s(eve), day(2025, 10, 1));
        assert_eq!(policy.accept_horizon_unix_s(eve), day(2025, 11, 1));
        // Shorter hourly or daily retention moves the horizon with it.
        let short = RetentionPolicy { hourly_months: 3, daily_months: Some(6), ..policy };
        assert_eq!(short.accept_horizon_unix_s(now), day(2026, 9, 1));
        let daily = RetentionPolicy { daily_months: Some(6), ..policy };
        assert_eq!(daily.accept_horizon_unix_s(now), day(2026, 6, 1));
        assert_eq!(rfc3339(day(2025, 10, 30) + 3_661), "2025-10-30T01:01:01Z");
    }

    /// On the TimescaleDB path the facts' chunks go 13 months after their
    /// end, not at month boundaries: on 2026-12-07 November 2025 is still
    /// partly stored but will be dropped within days, so ingest accepts
    /// from 1 December 2025 only; native keeps November 2025 whole.
    #[test]
    fn the_timescaledb_horizon_is_the_month_after_its_chunk_retention() {
        let day = |y, m, d| crate::time::days_from_civil(y, m, d) * DAY_S;
        let now = day(2026, 12, 7) + 12 * 3_600;
        let native = DeliveryConfig::for_retention(RetentionPolicy::default());
        let timescale = native.clone().with_storage(StorageMode::TimescaleDb);
        assert_eq!(native.accept_horizon_unix_s(now), day(2025, 11, 1));
        assert_eq!(timescale.accept_horizon_unix_s(now), day(2025, 12, 1));
        // The last day of a month: the margin already counts the next one.
        assert_eq!(timescale.accept_horizon_unix_s(day(2026, 12, 31) + 3_600), day(2026, 1, 1));
        // A shorter native policy still wins where it is later.
        let short = DeliveryConfig::for_retention(RetentionPolicy { hourly_months: 3, ..RetentionPolicy::default() })
            .with_storage(StorageMode::TimescaleDb);
        assert_eq!(short.accept_horizon_unix_s(now), day(2026, 9, 1));
    }

    #[test]
    fn only_batch_faults_are_quarantined() {
        let fact = StoreError::InvalidFact { agent_id: "a".into(), sequence: 1, index: 0, reason: "r".into() };
        assert_eq!(classify(&fact), Failure::BadInput);
        assert_eq!(classify(&StoreError::InvalidBatch("empty agent id".into())), Failure::BadInput);
        // A database error the batch did not cause (here a query that found
        // no row) is the server's problem: answered `Internal`, not quarantined.
        assert_eq!(classify(&StoreError::Sql(sqlx::Error::RowNotFound)), Failure::Server);
        assert_eq!(classify(&StoreError::Db(crate::db::DbError::UnknownStorageMode("x".into()))), Failure::Server);
        assert_eq!(classify(&StoreError::Sql(sqlx::Error::PoolTimedOut)), Failure::Transient);
    }

    #[test]
    fn sqlstates_quarantine_only_values_of_the_batch() {
        for code in ["22021", "22P05", "22008"] {
            assert!(sqlstate_is_bad_input(code), "{code}");
        }
        // 23514 is also "no partition of relation found for row": a partition
        // retention dropped is the server's doing, so the batch is retried.
        for code in ["23514", "40001", "40P01", "53100", "53200", "53300", "57014", "57P01", "08006", "55P03", "58030"] {
            assert!(!sqlstate_is_bad_input(code) && sqlstate_is_transient(code), "{code}");
        }
        for code in ["23502", "23503", "23P01", "22003", "22012", "42P01", "42501", "XX000", "2"] {
            assert!(!sqlstate_is_bad_input(code) && !sqlstate_is_transient(code), "{code}");
        }
    }

    #[test]
    fn latency_histogram_is_cumulative() {
        let m = DeliveryMetrics::default();
        m.observe_ack_latency(std::time::Duration::from_millis(3));
        m.observe_ack_latency(std::time::Duration::from_millis(700));
        let text = m.render(None);
        assert!(text.contains("canopy_aggregator_ack_latency_seconds_bucket{le=\"0.001\"} 0\n"), "{text}");
        assert!(text.contains("canopy_aggregator_ack_latency_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("canopy_aggregator_ack_latency_seconds_bucket{le=\"0.5\"} 1\n"), "{text}");
        assert!(text.contains("canopy_aggregator_ack_latency_seconds_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("canopy_aggregator_ack_latency_seconds_count 2\n"), "{text}");
        assert!(text.contains("canopy_aggregator_ack_latency_seconds_sum 0.703\n"), "{text}");
    }
}
