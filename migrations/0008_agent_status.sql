-- Protocol v2: resource attributes and the agents' own status.
-- Idempotent like every migration here, so a replay by hand is harmless.

-- Service-specific details the agent discovered (EBS IOPS and attachment,
-- RDS engine / storage type / Multi-AZ, S3 object counts, ...), name → text.
-- Batches of protocol v1 carry none and store '{}'.
ALTER TABLE resources ADD COLUMN IF NOT EXISTS attributes jsonb NOT NULL DEFAULT '{}'::jsonb;

-- The newest status each agent reported (one row per agent): written in the
-- transaction of the batch that carried it; a status taken earlier than the
-- stored one (a delayed resend) does not replace it. Counters count since
-- the agent process started.
CREATE TABLE IF NOT EXISTS agent_status (
    agent_id                 text PRIMARY KEY,
    account_id               text NOT NULL CHECK (account_id ~ '^[0-9]{12}$'),
    region                   text NOT NULL,
    agent_version            text NOT NULL CHECK (agent_version <> ''),
    outbox_backlog_frames    bigint NOT NULL CHECK (outbox_backlog_frames >= 0),
    outbox_backlog_bytes     bigint NOT NULL CHECK (outbox_backlog_bytes >= 0),
    records_shed_total       bigint NOT NULL CHECK (records_shed_total >= 0),
    collection_errors_total  bigint NOT NULL CHECK (collection_errors_total >= 0),
    send_failures_total      bigint NOT NULL CHECK (send_failures_total >= 0),
    taken_at                 timestamptz NOT NULL,
    batch_sequence           bigint NOT NULL,
    received_at              timestamptz NOT NULL DEFAULT now()
);
