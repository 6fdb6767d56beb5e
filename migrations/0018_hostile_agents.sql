-- Defences against a hostile enrolled agent (issue 19, section 1).
-- Idempotent like every migration here.
--
-- 1. The batch log and the agents' status are keyed by (account, agent id):
--    an agent enrolled in account A can no longer claim the (agent id,
--    sequence) keys of B's agent, nor freeze B's status row. The batch log
--    also keeps each batch's idempotency key, so a re-sent sequence whose
--    key differs is refused instead of acknowledged as a duplicate.
--    `ingest::store_batch` inserts (agent_id, sequence, counts) only; the
--    account and the idempotency key are filled by the column defaults
--    from two transaction-local settings (`canopy.batch_account`,
--    `canopy.batch_key`, hex) that `delivery` sets in the batch's
--    transaction before it calls `store_batch`. Batches stored without
--    them (tests, benches) get account '' and no key.
-- 2. `agent_fleet`: per (account, agent) the newest batch, its sequence
--    and the number of batches, kept by a trigger on the batch log, so
--    `/v1/fleet` reads one row per agent however long the log is (and the
--    log can be pruned by maintenance without losing the count).
-- 3. Quarantine keeps the reason, the frame's SHA-256, its length and a
--    bounded sample (the first 4 KiB) instead of the whole frame.
-- 4. `account_dimension_values`: the distinct team, service and
--    resource_type values each account used per UTC month, for the
--    cardinality quota checked by `delivery`.
-- 5. `org_rollup_pending_rejected`: pending org-rollup deltas the drain
--    moved aside because a value was not finite or beyond 1e15 (they would
--    overflow the drain's sums and wedge it).

-- 1. Batch log keyed by (account, agent id, sequence).
ALTER TABLE ingested_batches
    ADD COLUMN IF NOT EXISTS account_id text NOT NULL
        DEFAULT COALESCE(current_setting('canopy.batch_account', true), '');
ALTER TABLE ingested_batches
    ADD COLUMN IF NOT EXISTS idempotency_key bytea
        DEFAULT decode(NULLIF(current_setting('canopy.batch_key', true), ''), 'hex');
-- Rows logged before this file: the account their agent reported, else the
-- account of the resources it wrote.
UPDATE ingested_batches b SET account_id = s.account_id
FROM agent_status s WHERE b.account_id = '' AND s.agent_id = b.agent_id;
UPDATE ingested_batches b SET account_id = r.account_id
FROM (SELECT DISTINCT ON (agent_id) agent_id, account_id FROM resources ORDER BY agent_id, last_seen DESC) r
WHERE b.account_id = '' AND r.agent_id = b.agent_id;
DO $pk$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'ingested_batches_account_pkey') THEN
        ALTER TABLE ingested_batches DROP CONSTRAINT IF EXISTS ingested_batches_pkey;
        ALTER TABLE ingested_batches
            ADD CONSTRAINT ingested_batches_account_pkey PRIMARY KEY (account_id, agent_id, sequence);
    END IF;
END
$pk$;
CREATE INDEX IF NOT EXISTS ingested_batches_received_at ON ingested_batches (received_at);

-- Status keyed by (account, agent id).
DO $pk$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'agent_status_account_pkey') THEN
        ALTER TABLE agent_status DROP CONSTRAINT IF EXISTS agent_status_pkey;
        ALTER TABLE agent_status ADD CONSTRAINT agent_status_account_pkey PRIMARY KEY (account_id, agent_id);
    END IF;
END
$pk$;

-- 2. One row per (account, agent): what /v1/fleet reads.
CREATE TABLE IF NOT EXISTS agent_fleet (
    account_id     text NOT NULL,
    agent_id       text NOT NULL,
    last_batch_at  timestamptz NOT NULL,
    last_sequence  bigint NOT NULL,
    batches        bigint NOT NULL,
    PRIMARY KEY (account_id, agent_id)
);
INSERT INTO agent_fleet (account_id, agent_id, last_batch_at, last_sequence, batches)
SELECT account_id, agent_id, max(received_at), max(sequence), count(*)
FROM ingested_batches GROUP BY account_id, agent_id
ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION canopy_agent_fleet_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO agent_fleet AS f (account_id, agent_id, last_batch_at, last_sequence, batches)
    VALUES (NEW.account_id, NEW.agent_id, NEW.received_at, NEW.sequence, 1)
    ON CONFLICT (account_id, agent_id) DO UPDATE SET
        last_batch_at = GREATEST(f.last_batch_at, excluded.last_batch_at),
        last_sequence = GREATEST(f.last_sequence, excluded.last_sequence),
        batches = f.batches + 1;
    RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS ingested_batches_fleet ON ingested_batches;
CREATE TRIGGER ingested_batches_fleet AFTER INSERT ON ingested_batches
    FOR EACH ROW EXECUTE FUNCTION canopy_agent_fleet_count();

-- 3. Quarantine: reason, hash, length and a bounded sample.
ALTER TABLE quarantined_batches ALTER COLUMN frame DROP NOT NULL;
ALTER TABLE quarantined_batches ADD COLUMN IF NOT EXISTS frame_sha256 bytea;
ALTER TABLE quarantined_batches ADD COLUMN IF NOT EXISTS frame_len integer;
ALTER TABLE quarantined_batches ADD COLUMN IF NOT EXISTS frame_sample bytea;

-- 4. Distinct dimension values per account and UTC month.
CREATE TABLE IF NOT EXISTS account_dimension_values (
    account_id    text NOT NULL,
    month_start   timestamptz NOT NULL,
    field         text NOT NULL CHECK (field IN ('team', 'service', 'resource_type')),
    value         text NOT NULL,
    PRIMARY KEY (account_id, month_start, field, value)
);

-- 5. Pending org-rollup deltas the drain refused.
CREATE TABLE IF NOT EXISTS org_rollup_pending_rejected (
    LIKE org_rollup_pending,
    rejected_at  timestamptz NOT NULL DEFAULT now()
);
