-- Canopy aggregator schema, part 5: quarantine of refused batch frames.
-- Every frame the aggregator refuses (malformed, failed limits or
-- validation, wrong account, a fact the store rejects) is kept here with
-- the reason, for an operator to inspect; nothing reads it automatically.
-- Idempotent like the other files.

CREATE TABLE IF NOT EXISTS quarantined_batches (
    id           bigserial   PRIMARY KEY,
    -- Agent and account from the client certificate (not from the frame,
    -- which may be unreadable).
    agent_id     text        NOT NULL,
    account_id   text        NOT NULL,
    -- Batch sequence when the frame could be decoded far enough.
    sequence     bigint,
    -- Reply error code name sent to the agent, e.g. 'invalid_batch'.
    error_code   text        NOT NULL,
    -- Reply message sent to the agent, naming the problem.
    error        text        NOT NULL,
    -- The frame exactly as received.
    frame        bytea       NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS quarantined_batches_received_at ON quarantined_batches (received_at);
CREATE INDEX IF NOT EXISTS quarantined_batches_agent ON quarantined_batches (agent_id, sequence);
