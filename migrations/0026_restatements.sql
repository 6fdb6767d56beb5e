-- Reportable carbon accounting, part 3 (issue 14, section 3): restatement
-- instead of overwrite. Written only by aggregator::restatement.
--
-- restatements: one row per factor set version that may change stored
-- periods, created in the import's transaction (state 'running', planned
-- false). The restatement loop plans it (chunks and the before totals, one
-- transaction, planned true), restates chunk by chunk (each its own
-- transaction, marked done in it), then sums the chunks into the months and
-- sets state 'done'. A crash leaves 'running'; the next run continues from
-- the chunks not done.
-- restatement_chunks: one (account, region, UTC day) with facts the new
-- version may price differently; done, how many facts changed, and the
-- change it made (location and market CO2e, grams).
-- restatement_months: per account and UTC month touched, the totals before
-- (summed from the facts when planned) and the restatement's own change;
-- after = before + delta.
CREATE TABLE IF NOT EXISTS restatements (
    id              bigserial PRIMARY KEY,
    factor_set      text NOT NULL CHECK (factor_set IN ('location-hourly', 'market')),
    old_version     integer NOT NULL CHECK (old_version >= 0),
    new_version     integer NOT NULL CHECK (new_version > old_version),
    state           text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
    planned         boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    chunks_total    integer NOT NULL DEFAULT 0,
    facts_restated  bigint NOT NULL DEFAULT 0,
    UNIQUE (factor_set, new_version)
);

CREATE TABLE IF NOT EXISTS restatement_chunks (
    restatement_id      bigint NOT NULL REFERENCES restatements (id),
    account_id          text NOT NULL,
    region              text NOT NULL,
    day_start           timestamptz NOT NULL,
    done                boolean NOT NULL DEFAULT false,
    facts_changed       integer NOT NULL DEFAULT 0,
    delta_location_g_co2e double precision NOT NULL DEFAULT 0,
    delta_market_g_co2e   double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (restatement_id, account_id, region, day_start)
);

CREATE TABLE IF NOT EXISTS restatement_months (
    restatement_id          bigint NOT NULL REFERENCES restatements (id),
    account_id              text NOT NULL,
    month_start             timestamptz NOT NULL,
    before_location_g_co2e  double precision NOT NULL,
    before_market_g_co2e    double precision NOT NULL,
    delta_location_g_co2e   double precision NOT NULL DEFAULT 0,
    delta_market_g_co2e     double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (restatement_id, account_id, month_start)
);
