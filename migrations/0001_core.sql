-- Canopy aggregator schema, part 1: organisation, accounts, attribution,
-- inventory and batch bookkeeping. Every statement is idempotent so the file
-- can be replayed by hand; sqlx records it as applied once.

-- One-row settings table. `storage_mode` is decided by 0002: 'timescaledb'
-- when the extension is available, otherwise 'native' (range partitions and
-- rollup tables maintained by the aggregator).
CREATE TABLE IF NOT EXISTS canopy_settings (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    storage_mode   text    NOT NULL DEFAULT 'native' CHECK (storage_mode IN ('native', 'timescaledb')),
    -- Resource tag whose value names the team / cost centre of a resource.
    team_tag_key   text    NOT NULL DEFAULT 'team' CHECK (team_tag_key <> '')
);
INSERT INTO canopy_settings (singleton) VALUES (true) ON CONFLICT DO NOTHING;

-- AWS Organizations, refreshed through an agent in the management account.
CREATE TABLE IF NOT EXISTS organisations (
    organisation_id        text PRIMARY KEY,
    management_account_id  text NOT NULL,
    name                   text NOT NULL DEFAULT '',
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS accounts (
    account_id       text PRIMARY KEY CHECK (account_id ~ '^[0-9]{12}$'),
    organisation_id  text REFERENCES organisations (organisation_id) ON DELETE SET NULL,
    name             text NOT NULL DEFAULT '',
    -- Path of organisational-unit ids from the root, '/'-separated,
    -- e.g. 'r-ab12/ou-ab12-prod0001/ou-ab12-web00001'. Empty when unknown.
    ou_path          text NOT NULL DEFAULT '',
    tags             jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL DEFAULT 'ACTIVE',
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS accounts_ou_path_idx ON accounts (ou_path text_pattern_ops);

-- Attribution: the team of a resource is the value of the configured tag key;
-- without that tag the account's default rule applies; otherwise 'untagged'.
CREATE TABLE IF NOT EXISTS account_team_rules (
    account_id    text PRIMARY KEY CHECK (account_id ~ '^[0-9]{12}$'),
    default_team  text NOT NULL CHECK (default_team <> '')
);

-- Current inventory: one row per resource, last observation wins.
CREATE TABLE IF NOT EXISTS resources (
    account_id      text NOT NULL,
    region          text NOT NULL,
    resource_id     text NOT NULL,
    resource_type   text NOT NULL,
    service         text NOT NULL,
    tags            jsonb NOT NULL DEFAULT '{}'::jsonb,
    team            text NOT NULL,
    first_seen      timestamptz NOT NULL,
    last_seen       timestamptz NOT NULL,
    deleted         boolean NOT NULL DEFAULT false,
    agent_id        text NOT NULL,
    batch_sequence  bigint NOT NULL,
    PRIMARY KEY (account_id, region, resource_id)
);

-- Inventory history: a row each time a resource's type, tags or deletion
-- state changes (including its first sighting).
CREATE TABLE IF NOT EXISTS resource_history (
    account_id      text NOT NULL,
    region          text NOT NULL,
    resource_id     text NOT NULL,
    valid_from      timestamptz NOT NULL,
    resource_type   text NOT NULL,
    service         text NOT NULL,
    tags            jsonb NOT NULL,
    team            text NOT NULL,
    deleted         boolean NOT NULL,
    agent_id        text NOT NULL,
    batch_sequence  bigint NOT NULL,
    PRIMARY KEY (account_id, region, resource_id, valid_from)
);

-- Batch idempotency: a batch is identified by (agent id, sequence number).
CREATE TABLE IF NOT EXISTS ingested_batches (
    agent_id         text   NOT NULL,
    sequence         bigint NOT NULL CHECK (sequence >= 0),
    received_at      timestamptz NOT NULL DEFAULT now(),
    fact_count       integer NOT NULL,
    inventory_count  integer NOT NULL,
    PRIMARY KEY (agent_id, sequence)
);
