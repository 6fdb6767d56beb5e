-- Per-resource facts as columnar segments (native mode).
--
-- A row of `emission_facts` costs PostgreSQL a heap tuple, two index entries
-- and their WAL per record: at 1,000 records per batch that alone used most
-- of the CPU the ingest target allows on the reference machine. In native
-- mode ingest now writes one segment per (period_start, account, region) of
-- a batch: the batch's records of that group as parallel arrays (one array
-- per fact column, lz4-compressed), one heap tuple and one index entry for
-- up to a batch of records.
--
-- Identity and revisions: a record is still identified by (period_start,
-- account_id, region, record_key). `key_hashes` holds a 64-bit hash of each
-- record key (FNV-1a of its UTF-8 bytes, computed by the aggregator); ingest
-- reads the hashes of the group's earlier segments, confirms a match against
-- the stored key itself, and a higher revision marks the old position in
-- `superseded` (1-based ordinals) instead of rewriting the segment. The rows
-- of `emission_facts` written before this migration (and by TimescaleDB
-- mode, which keeps rows: its compression does the same job) stay where
-- they are and take part in the same revision check.
--
-- Readers use `emission_facts_all`: the rows, then every segment position
-- not superseded, with the columns of `emission_facts`.

CREATE SEQUENCE IF NOT EXISTS emission_fact_segment_ids;

CREATE TABLE IF NOT EXISTS emission_fact_segments (
    period_start          timestamptz NOT NULL,
    account_id            text NOT NULL,
    region                text NOT NULL,
    segment_id            bigint NOT NULL DEFAULT nextval('emission_fact_segment_ids'),
    agent_id              text NOT NULL,
    batch_sequence        bigint NOT NULL,
    record_count          integer NOT NULL CHECK (record_count > 0),
    key_hashes            bigint[] NOT NULL,
    period_s              integer[] NOT NULL,
    record_keys           text[] NOT NULL,
    revisions             bigint[] NOT NULL,
    resource_ids          text[] NOT NULL,
    resource_types        text[] NOT NULL,
    services              text[] NOT NULL,
    teams                 text[] NOT NULL,
    qualities             text[] NOT NULL,
    energy_kwh            double precision[] NOT NULL,
    location_g_co2e       double precision[] NOT NULL,
    market_g_co2e         double precision[] NOT NULL,
    low_g_co2e            double precision[] NOT NULL,
    high_g_co2e           double precision[] NOT NULL,
    methodology_versions  text[] NOT NULL,
    factor_sources        text[] NOT NULL,
    factor_vintages       text[] NOT NULL,
    -- Positions (1-based) replaced by a higher revision of the same key.
    superseded            integer[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (account_id, region, period_start, segment_id)
) PARTITION BY RANGE (period_start);

ALTER TABLE emission_fact_segments
    ALTER COLUMN key_hashes SET COMPRESSION lz4,
    ALTER COLUMN record_keys SET COMPRESSION lz4,
    ALTER COLUMN resource_ids SET COMPRESSION lz4,
    ALTER COLUMN resource_types SET COMPRESSION lz4,
    ALTER COLUMN services SET COMPRESSION lz4,
    ALTER COLUMN teams SET COMPRESSION lz4,
    ALTER COLUMN qualities SET COMPRESSION lz4,
    ALTER COLUMN energy_kwh SET COMPRESSION lz4,
    ALTER COLUMN location_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN market_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN low_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN high_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN methodology_versions SET COMPRESSION lz4,
    ALTER COLUMN factor_sources SET COMPRESSION lz4,
    ALTER COLUMN factor_vintages SET COMPRESSION lz4;

CREATE OR REPLACE VIEW emission_facts_all AS
SELECT period_start, period_s, account_id, region, record_key, revision, resource_id, resource_type, service,
       team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e,
       methodology_version, factor_source, factor_vintage, agent_id, batch_sequence
FROM emission_facts
UNION ALL
SELECT s.period_start, u.period_s, s.account_id, s.region, u.record_key, u.revision, u.resource_id,
       u.resource_type, u.service, u.team, u.quality, u.energy_kwh, u.location_g_co2e, u.market_g_co2e,
       u.low_g_co2e, u.high_g_co2e, u.methodology_version, u.factor_source, u.factor_vintage,
       s.agent_id, s.batch_sequence
FROM emission_fact_segments s
CROSS JOIN LATERAL unnest(s.period_s, s.record_keys, s.revisions, s.resource_ids, s.resource_types, s.services,
                          s.teams, s.qualities, s.energy_kwh, s.location_g_co2e, s.market_g_co2e,
                          s.low_g_co2e, s.high_g_co2e, s.methodology_versions, s.factor_sources,
                          s.factor_vintages)
    WITH ORDINALITY AS u(period_s, record_key, revision, resource_id, resource_type, service, team, quality,
                         energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e,
                         methodology_version, factor_source, factor_vintage, ord)
WHERE u.ord::integer <> ALL (s.superseded);

-- The partitions data starting at each instant needs: as in 0006, plus the
-- segments' monthly partition.
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
        IF canopy_ensure_partition('emission_fact_segments', 'month', to_timestamp(t)) THEN created := created + 1; END IF;
        IF canopy_ensure_partition('rollup_hourly', 'month', to_timestamp(t)) THEN created := created + 1; END IF;
        IF canopy_ensure_partition('rollup_5m', 'day', to_timestamp(t)) THEN created := created + 1; END IF;
        IF canopy_ensure_partition('org_rollup_hourly', 'month', to_timestamp(t)) THEN created := created + 1; END IF;
        IF canopy_ensure_partition('org_rollup_5m', 'day', to_timestamp(t)) THEN created := created + 1; END IF;
    END LOOP;
    RETURN created;
END
$fn$;

-- As in 0003, except that a partition another transaction created first is
-- not an error. The advisory lock makes a second creator wait until the
-- first commits, but its re-check can still miss the new table: name
-- lookups go through the catalogue cache, which an advisory lock does not
-- refresh. Concurrent batches needing the same new partition (late data,
-- an agent's first batch of a new month, two replicas) then failed with
-- "relation ... already exists"; the ingest bench showed it when 20 agents
-- started in a month without partitions.
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
    BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       child, parent, lo, hi);
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        RETURN false;
    END;
    RETURN true;
END
$fn$;
