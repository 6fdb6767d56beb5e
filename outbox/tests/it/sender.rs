//! What the sender does with a batch the aggregator refuses for good (for
//! example one holding a record older than the aggregator's retention
//! horizon, issue 13 case 5): it counts it, keeps it in the outbox (only an
//! acknowledgement deletes a frame) and does not send it again in this
//! process, while the other frames are acknowledged and removed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use canopy_outbox::{OutboxStore, SenderConfig, SenderControl, SenderStats, sample, send_pending};
use canopy_protocol::{Ack, DecodeLimits, ErrorCode, Reply, ReplyError, decode_batch};

use crate::for_both_stores;
use crate::support::{config, open};

fn a_refused_batch_is_counted_kept_and_not_resent<S: OutboxStore + 'static>() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(open::<S>(dir.path(), config(10)));
    assert_eq!(outbox.append(&sample::cycle(5, 5, 2)).unwrap().sequences, vec![1, 2, 3]);
    let sent = Arc::new(Mutex::new(Vec::new()));
    let send = |frame: Vec<u8>| {
        let sent = sent.clone();
        async move {
            let batch = decode_batch(&frame, &DecodeLimits::default()).unwrap();
            sent.lock().unwrap().push(batch.sequence);
            Ok::<Reply, String>(if batch.sequence == 2 {
                Reply::Error(ReplyError {
                    sequence: Some(2),
                    code: ErrorCode::InvalidBatch,
                    message: "emissions[0].interval_start_unix_s: expected at or after 1761955200".into(),
                    retry_after_s: None,
                })
            } else {
                Reply::Ack(Ack { sequence: batch.sequence, idempotency_key: batch.idempotency_key, duplicate: false })
            })
        }
    };
    let stats = SenderStats::default();
    let control = SenderControl::new();
    control.drain();
    let cfg = SenderConfig { min_backoff: Duration::from_millis(1), ..SenderConfig::default() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(send_pending(outbox.clone(), send, &cfg, &stats, &control)).unwrap();

    let mut sent = sent.lock().unwrap().clone();
    sent.sort();
    assert_eq!(sent, vec![1, 2, 3], "the refused frame is sent once");
    assert_eq!(SenderStats::get(&stats.refused_batches), 1);
    assert_eq!(SenderStats::get(&stats.acked_batches), 2);
    let left: Vec<u64> = outbox.pending(0, usize::MAX).unwrap().iter().map(|p| p.sequence).collect();
    assert_eq!(left, vec![2]);
}
for_both_stores!(a_refused_batch_is_counted_kept_and_not_resent);
