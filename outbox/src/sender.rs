//! Shipping pending batches until the aggregator acknowledges them.
//!
//! [`send_pending`] is the loop every sender of an outbox runs (the agent
//! and the simulated agent): read up to [`SenderConfig::frames_per_round`]
//! pending frames, send them concurrently through the caller's transport,
//! remove the acknowledged ones in one durable write, and wait with
//! exponential backoff and jitter when a send failed or the aggregator asked
//! to retry later. The transport is a closure, so this crate stays free of
//! QUIC and TLS.
//!
//! A frame the aggregator refuses permanently (`InvalidBatch`,
//! `MalformedFrame`, `UnsupportedVersion`, `Unauthorized`) is **not
//! deleted**: no acknowledgement names it, so the outbox keeps it. The
//! aggregator quarantines its copy (`quarantined_batches`); this sender
//! counts it ([`SenderStats::refused_batches`]), logs it at ERROR and does
//! not send it again until the process restarts, so one bad frame neither
//! blocks the others nor loops forever.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use canopy_protocol::{Ack, ErrorCode, Reply};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::OutboxError;
use crate::outbox::Outbox;
use crate::store::OutboxStore;

/// How [`send_pending`] paces itself.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Pending frames read and sent concurrently per round (the transport
    /// bounds how many are really in flight).
    pub frames_per_round: usize,
    /// Longest wait at an empty outbox before looking again
    /// ([`SenderControl::wake`] ends it early).
    pub idle_poll: Duration,
    /// Wait after the first failed round; doubles per failed round.
    pub min_backoff: Duration,
    /// Longest wait after failed rounds.
    pub max_backoff: Duration,
    /// Longest wait honoured from an aggregator's `retry_after_s`.
    pub max_retry_after: Duration,
    /// Return [`SenderError::GaveUp`] when frames are pending and nothing
    /// was acknowledged for this long; `None` retries forever.
    pub give_up_after: Option<Duration>,
}

impl Default for SenderConfig {
    /// 64 frames per round, 1 s idle poll, backoff 100 ms → 30 s, retry
    /// hints up to 30 s, never give up.
    fn default() -> Self {
        Self {
            frames_per_round: 64,
            idle_poll: Duration::from_secs(1),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(30),
            give_up_after: None,
        }
    }
}

/// Monotonic counters of a sender (shared; read them while it runs).
#[derive(Debug, Default)]
pub struct SenderStats {
    /// Batches acknowledged and removed from the outbox.
    pub acked_batches: AtomicU64,
    /// Frame bytes those acknowledgements freed.
    pub acked_bytes: AtomicU64,
    /// Acknowledgements saying the batch was already stored (a resend).
    pub duplicate_acks: AtomicU64,
    /// Sends that failed in the transport (after its own retries).
    pub send_failures: AtomicU64,
    /// Replies asking to retry later (`Unavailable`, `Throttled`,
    /// `Internal`, or a code this build does not know).
    pub retry_replies: AtomicU64,
    /// Frames refused permanently; kept in the outbox, not resent.
    pub refused_batches: AtomicU64,
}

impl SenderStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Value of one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Tells a running [`send_pending`] when there is work and when to stop.
#[derive(Debug, Default)]
pub struct SenderControl {
    notify: Notify,
    drain: AtomicBool,
    stop: AtomicBool,
}

impl SenderControl {
    /// A control in the running state.
    pub fn new() -> Self {
        Self::default()
    }

    /// New frames were appended: end an idle wait now.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Return once no sendable frame is pending (the producer finished).
    pub fn drain(&self) {
        self.drain.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Return after the current round, even with frames pending (they stay
    /// in the outbox for the next run).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn draining(&self) -> bool {
        self.drain.load(Ordering::SeqCst)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, or less when woken.
    async fn wait(&self, d: Duration) {
        tokio::select! {
            _ = self.notify.notified() => {}
            _ = tokio::time::sleep(d) => {}
        }
    }
}

/// Why [`send_pending`] stopped before its control said so.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// Reading or acknowledging the outbox failed.
    #[error("outbox: {0}")]
    Outbox(#[from] OutboxError),
    /// Frames were pending and nothing was acknowledged for too long.
    #[error("expected an acknowledgement within {after_s} s, found none; giving up")]
    GaveUp {
        /// [`SenderConfig::give_up_after`], seconds.
        after_s: u64,
    },
    /// A blocking outbox task panicked or was cancelled.
    #[error("outbox task: {0}")]
    Task(String),
}

/// What one reply means for its frame.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Acked(Ack),
    RetryAfter(Option<u32>),
    Refused,
}

fn classify(reply: &Reply) -> Outcome {
    match reply {
        Reply::Ack(ack) => Outcome::Acked(ack.clone()),
        Reply::Error(e) => match e.code {
            ErrorCode::Unavailable | ErrorCode::Throttled | ErrorCode::Internal | ErrorCode::Unknown(_) => {
                Outcome::RetryAfter(e.retry_after_s)
            }
            ErrorCode::UnsupportedVersion
            | ErrorCode::MalformedFrame
            | ErrorCode::InvalidBatch
            | ErrorCode::Unauthorized => Outcome::Refused,
        },
    }
}

/// `d` scaled by a random factor in [0.5, 1] (jitter, so agents that failed
/// together do not retry together).
fn jittered(d: Duration) -> Duration {
    let mut b = [0u8; 4];
    let r = match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    d.mul_f64(0.5 + 0.5 * r)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, SenderError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SenderError::Task(e.to_string()))?.map_err(SenderError::from)
}

/// Sends pending frames of `outbox` through `send` until `control` says
/// stop (or drain, and nothing sendable is left).
///
/// `send` ships one encoded frame and returns the aggregator's reply or a
/// transport error; it is called concurrently for the frames of a round.
/// Acknowledged frames are removed with [`Outbox::ack_all`] (one fsync per
/// round). Counters go to `stats`.
pub async fn send_pending<S, F, Fut, E>(
    outbox: Arc<Outbox<S>>,
    send: F,
    config: &SenderConfig,
    stats: &SenderStats,
    control: &SenderControl,
) -> Result<(), SenderError>
where
    S: OutboxStore + 'static,
    F: Fn(Vec<u8>) -> Fut,
    Fut: Future<Output = Result<Reply, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let per_round = config.frames_per_round.max(1);
    let mut refused: BTreeSet<u64> = BTreeSet::new();
    let mut backoff = config.min_backoff;
    let mut last_progress = Instant::now();
    loop {
        if control.stopped() {
            return Ok(());
        }
        let ob = outbox.clone();
        let read = per_round + refused.len();
        let pending: Vec<_> = blocking(move || ob.pending(0, read))
            .await?
            .into_iter()
            .filter(|f| !refused.contains(&f.sequence))
            .take(per_round)
            .collect();
        if pending.is_empty() {
            if control.draining() {
                return Ok(());
            }
            last_progress = Instant::now();
            control.wait(config.idle_poll).await;
            continue;
        }
        let mut sends = tokio::task::JoinSet::new();
        for frame in pending {
            let reply = send(frame.frame);
            sends.spawn(async move { (frame.sequence, reply.await) });
        }
        let mut acks = Vec::new();
        let mut wait: Option<Duration> = None;
        while let Some(joined) = sends.join_next().await {
            let (sequence, result) = joined.map_err(|e| SenderError::Task(e.to_string()))?;
            match result.as_ref().map(classify) {
                Ok(Outcome::Acked(ack)) => {
                    if ack.duplicate {
                        SenderStats::add(&stats.duplicate_acks, 1);
                    }
                    acks.push(ack);
                }
                Ok(Outcome::RetryAfter(after_s)) => {
                    SenderStats::add(&stats.retry_replies, 1);
                    let hint = Duration::from_secs(u64::from(after_s.unwrap_or(1))).min(config.max_retry_after);
                    if let Ok(Reply::Error(e)) = &result {
                        tracing::warn!(sequence, code = %e.code, message = %e.message, "aggregator asked to retry later");
                    }
                    wait = Some(wait.map_or(hint, |w| w.max(hint)));
                }
                Ok(Outcome::Refused) => {
                    SenderStats::add(&stats.refused_batches, 1);
                    refused.insert(sequence);
                    if let Ok(Reply::Error(e)) = &result {
                        tracing::error!(
                            sequence,
                            code = %e.code,
                            message = %e.message,
                            "aggregator refused the batch; it stays in the outbox and is not resent until restart"
                        );
                    }
                }
                Err(e) => {
                    SenderStats::add(&stats.send_failures, 1);
                    tracing::warn!(sequence, error = %e, "sending failed; will retry");
                    wait = Some(wait.map_or(backoff, |w| w.max(backoff)));
                }
            }
        }
        if !acks.is_empty() {
            let ob = outbox.clone();
            let outcome = blocking(move || ob.ack_all(&acks)).await?;
            SenderStats::add(&stats.acked_batches, outcome.removed_batches as u64);
            SenderStats::add(&stats.acked_bytes, outcome.removed_bytes);
            last_progress = Instant::now();
            backoff = config.min_backoff;
        }
        if let Some(w) = wait {
            if let Some(limit) = config.give_up_after
                && last_progress.elapsed() > limit
            {
                return Err(SenderError::GaveUp { after_s: limit.as_secs() });
            }
            control.wait(jittered(w)).await;
            backoff = (backoff * 2).min(config.max_backoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use canopy_protocol::{IdempotencyKey, ReplyError};

    use super::*;

    fn error(code: ErrorCode, retry_after_s: Option<u32>) -> Reply {
        Reply::Error(ReplyError { sequence: None, code, message: "m".into(), retry_after_s })
    }

    #[test]
    fn replies_are_classified_by_code() {
        let ack = Ack { sequence: 7, idempotency_key: IdempotencyKey([1; 16]), duplicate: false };
        assert_eq!(classify(&Reply::Ack(ack.clone())), Outcome::Acked(ack));
        assert_eq!(classify(&error(ErrorCode::Unavailable, Some(2))), Outcome::RetryAfter(Some(2)));
        assert_eq!(classify(&error(ErrorCode::Unknown(99), None)), Outcome::RetryAfter(None));
        assert_eq!(classify(&error(ErrorCode::InvalidBatch, None)), Outcome::Refused);
        assert_eq!(classify(&error(ErrorCode::Unauthorized, None)), Outcome::Refused);
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        for _ in 0..100 {
            let j = jittered(Duration::from_millis(1_000));
            assert!(j >= Duration::from_millis(500) && j <= Duration::from_millis(1_000), "{j:?}");
        }
    }
}
