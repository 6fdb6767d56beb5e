//! The simulated agent's sender: pending outbox frames over its own QUIC
//! connection, acknowledged in the outbox as each `Ack` arrives, retried
//! with backoff when the aggregator is unreachable or asks to retry later.
//! (The same loop `canopy-simagent` runs; it moves to the agent library's
//! delivery module once that exists.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canopy_outbox::Outbox;
use canopy_protocol::{ErrorCode, Reply};
use canopy_transport::Client;
use tokio::sync::{Notify, watch};

/// Counters of one fleet's deliveries (all agents).
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    /// Batches acknowledged.
    pub batches_acked: AtomicU64,
    /// Sends that failed after the transport's retries.
    pub send_failures: AtomicU64,
    /// Replies asking to retry later.
    pub retry_replies: AtomicU64,
}

/// Why delivery stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The aggregator refused a batch (it is kept in its quarantine).
    #[error("batch {sequence} refused by the aggregator: {message} ({code})")]
    Refused {
        /// Outbox sequence.
        sequence: u64,
        /// The aggregator's error code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The outbox failed.
    #[error("outbox: {0}")]
    Outbox(#[from] canopy_outbox::OutboxError),
    /// A blocking outbox task panicked.
    #[error("outbox task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Sends pending frames until `done` is true and the outbox is empty.
/// `appended` is notified by the producer after each append.
pub async fn send_until_drained(
    client: &Client,
    outbox: &Arc<Outbox>,
    appended: &Notify,
    mut done: watch::Receiver<bool>,
    counters: &DeliveryCounters,
) -> Result<(), DeliverError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let ob = outbox.clone();
        let pending = tokio::task::spawn_blocking(move || ob.pending(0, 32)).await??;
        if pending.is_empty() {
            if *done.borrow() {
                return Ok(());
            }
            tokio::select! {
                _ = appended.notified() => {}
                _ = done.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        let mut sends = tokio::task::JoinSet::new();
        for frame in pending {
            let client = client.clone();
            sends.spawn(async move { (frame.sequence, client.send(&frame.frame).await) });
        }
        let mut acks = Vec::new();
        let mut wait = None;
        while let Some(joined) = sends.join_next().await {
            let (sequence, result) = joined?;
            match result {
                Ok(Reply::Ack(ack)) => acks.push(ack),
                Ok(Reply::Error(e)) => match e.code {
                    ErrorCode::Unavailable | ErrorCode::Throttled | ErrorCode::Internal => {
                        counters.retry_replies.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(sequence, code = %e.code, message = %e.message, "aggregator asked to retry");
                        wait = Some(Duration::from_secs(u64::from(e.retry_after_s.unwrap_or(1)).min(5)));
                    }
                    code => return Err(DeliverError::Refused { sequence, code, message: e.message }),
                },
                Err(e) => {
                    counters.send_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(sequence, error = %e, "sending failed; will retry");
                    wait = Some(backoff);
                }
            }
        }
        if !acks.is_empty() {
            counters.batches_acked.fetch_add(acks.len() as u64, Ordering::Relaxed);
            let ob = outbox.clone();
            tokio::task::spawn_blocking(move || ob.ack_all(&acks)).await??;
            backoff = Duration::from_millis(100);
        }
        if let Some(w) = wait {
            tokio::time::sleep(w).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
