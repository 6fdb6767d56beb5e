-- Canopy aggregator schema, part 3: the native PostgreSQL path (no
-- TimescaleDB). When 0002 already created the TimescaleDB relations, every
-- CREATE ... IF NOT EXISTS below is skipped.
--
-- Facts are range-partitioned by month, 5-minute rollups by day, hourly
-- rollups by month; daily rollups are one plain table. The aggregator creates
-- partitions ahead of time (canopy_ensure_time_partitions) and drops expired
-- ones for retention. Rollups are maintained incrementally by the ingest
-- statement, in the same transaction as each batch.
--
-- A fact belongs to the rollup bucket that contains its period_start; a fact
-- never crosses an hour boundary (checked on ingest), so the 5-minute, hourly
-- and daily rollups of any range are exact sums of the facts in it.

CREATE TABLE IF NOT EXISTS emission_facts (
    period_start         timestamptz NOT NULL,
    period_s             integer NOT NULL CHECK (period_s > 0 AND period_s <= 3600),
    account_id           text NOT NULL,
    region               text NOT NULL,
    -- Stable identity of the record within (account, region, period_start),
    -- chosen by the agent; a higher revision replaces a lower one.
    record_key           text NOT NULL,
    revision             bigint NOT NULL,
    resource_id          text NOT NULL,
    resource_type        text NOT NULL,
    service              text NOT NULL,
    team                 text NOT NULL,
    quality              text NOT NULL,
    energy_kwh           double precision NOT NULL,
    location_g_co2e      double precision NOT NULL,
    market_g_co2e        double precision NOT NULL,
    low_g_co2e           double precision NOT NULL,
    high_g_co2e          double precision NOT NULL,
    -- Lineage.
    methodology_version  text NOT NULL,
    factor_source        text NOT NULL,
    factor_vintage       text NOT NULL,
    agent_id             text NOT NULL,
    batch_sequence       bigint NOT NULL,
    PRIMARY KEY (period_start, account_id, region, record_key)
) PARTITION BY RANGE (period_start);

CREATE TABLE IF NOT EXISTS rollup_5m (
    bucket_start     timestamptz NOT NULL,
    account_id       text NOT NULL,
    region           text NOT NULL,
    service          text NOT NULL,
    resource_type    text NOT NULL,
    team             text NOT NULL,
    quality          text NOT NULL,
    energy_kwh       double precision NOT NULL,
    location_g_co2e  double precision NOT NULL,
    market_g_co2e    double precision NOT NULL,
    low_g_co2e       double precision NOT NULL,
    high_g_co2e      double precision NOT NULL,
    fact_count       bigint NOT NULL,
    PRIMARY KEY (bucket_start, account_id, region, service, resource_type, team, quality)
) PARTITION BY RANGE (bucket_start);

CREATE TABLE IF NOT EXISTS rollup_hourly (
    bucket_start     timestamptz NOT NULL,
    account_id       text NOT NULL,
    region           text NOT NULL,
    service          text NOT NULL,
    resource_type    text NOT NULL,
    team             text NOT NULL,
    quality          text NOT NULL,
    energy_kwh       double precision NOT NULL,
    location_g_co2e  double precision NOT NULL,
    market_g_co2e    double precision NOT NULL,
    low_g_co2e       double precision NOT NULL,
    high_g_co2e      double precision NOT NULL,
    fact_count       bigint NOT NULL,
    PRIMARY KEY (bucket_start, account_id, region, service, resource_type, team, quality)
) PARTITION BY RANGE (bucket_start);

CREATE TABLE IF NOT EXISTS rollup_daily (
    bucket_start     timestamptz NOT NULL,
    account_id       text NOT NULL,
    region           text NOT NULL,
    service          text NOT NULL,
    resource_type    text NOT NULL,
    team             text NOT NULL,
    quality          text NOT NULL,
    energy_kwh       double precision NOT NULL,
    location_g_co2e  double precision NOT NULL,
    market_g_co2e    double precision NOT NULL,
    low_g_co2e       double precision NOT NULL,
    high_g_co2e      double precision NOT NULL,
    fact_count       bigint NOT NULL,
    PRIMARY KEY (bucket_start, account_id, region, service, resource_type, team, quality)
);

-- Secondary indexes for account-filtered queries and top-N resources; only on
-- the native tables (relkind 'p' partitioned or 'r' plain).
DO $idx$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'emission_facts'::regclass) = 'p' THEN
        CREATE INDEX IF NOT EXISTS emission_facts_account_idx
            ON emission_facts (account_id, period_start);
        CREATE INDEX IF NOT EXISTS rollup_5m_account_idx ON rollup_5m (account_id, bucket_start);
        CREATE INDEX IF NOT EXISTS rollup_hourly_account_idx ON rollup_hourly (account_id, bucket_start);
        CREATE INDEX IF NOT EXISTS rollup_daily_account_idx ON rollup_daily (account_id, bucket_start);
    END IF;
END
$idx$;

-- Creates the partition of `parent` covering `at` (a UTC day or UTC month)
-- unless it exists. Returns true when it created one. Partition names are
-- `<parent>_pYYYYMMDD` after their lower bound, which retention relies on.
CREATE OR REPLACE FUNCTION canopy_ensure_partition(parent text, unit text, at timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    lo     timestamptz;
    hi     timestamptz;
    child  text;
BEGIN
    IF unit = 'day' THEN
        lo := date_bin(interval '1 day', at, timestamptz 'epoch');
        hi := lo + interval '1 day';
    ELSIF unit = 'month' THEN
        lo := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        hi := (date_trunc('month', at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    ELSE
        RAISE EXCEPTION 'partition unit must be day or month, found %', unit;
    END IF;
    child := parent || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
    IF to_regclass(child) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Serialise concurrent creators of the same partition.
    PERFORM pg_advisory_xact_lock(hashtext('canopy_partition:' || child));
    IF to_regclass(child) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   child, parent, lo, hi);
    RETURN true;
END
$fn$;

-- Ensures every native partition that data starting on each of the given
-- instants (Unix seconds) needs: facts and hourly rollups by month, 5-minute
-- rollups by day. Does nothing in TimescaleDB mode. Returns how many
-- partitions it created.
CREATE OR REPLACE FUNCTION canopy_ensure_time_partitions(instants_unix_s bigint[])
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    t        bigint;
    created  integer := 0;
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'native' THEN
        RETURN 0;
    END IF;
    FOREACH t IN ARRAY instants_unix_s LOOP
        IF canopy_ensure_partition('emission_facts', 'month', to_timestamp(t)) THEN created := created + 1; END IF;
        IF canopy_ensure_partition('rollup_hourly', 'month', to_timestamp(t)) THEN created := created + 1; END IF;
        IF canopy_ensure_partition('rollup_5m', 'day', to_timestamp(t)) THEN created := created + 1; END IF;
    END LOOP;
    RETURN created;
END
$fn$;
