//! Idempotency keys derived from the outbox's identity and a sequence.

use canopy_protocol::IdempotencyKey;

/// The idempotency key of batch `sequence` in the outbox identified by
/// `outbox_id`: the id's 8 big-endian bytes followed by the sequence's.
///
/// Deterministic, so nothing per batch has to be stored to answer "does
/// this ack belong to that batch"; and unique across outboxes, because
/// `outbox_id` is 64 random bits chosen when the outbox is created (a
/// re-created outbox never repeats an earlier one's keys).
pub fn idempotency_key(outbox_id: u64, sequence: u64) -> IdempotencyKey {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&outbox_id.to_be_bytes());
    bytes[8..].copy_from_slice(&sequence.to_be_bytes());
    IdempotencyKey(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_id_then_sequence_big_endian() {
        let key = idempotency_key(0x0102_0304_0506_0708, 0x1122);
        assert_eq!(key.to_string(), "01020304050607080000000000001122");
        assert_ne!(idempotency_key(1, 2), idempotency_key(2, 1));
    }
}
