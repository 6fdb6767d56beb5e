-- Canopy aggregator schema, part 6: rollups without the account dimension
-- ("org rollups"), so that organisation-, OU- and team-wide queries read a
-- number of rows that does not grow with the number of accounts.
--
-- org_rollup_5m / _hourly / _daily / _monthly are keyed by
-- (bucket, ou_path, region, service, resource_type, team, quality), where
-- ou_path is the account's *current* path in `accounts` ('' when the account
-- is unknown).
--
-- Native mode, maintained asynchronously but read exactly:
--   * the ingest statement appends its rollup delta (new facts minus the
--     revisions they replaced, per 5-minute bucket and account) to
--     org_rollup_pending, an append-only table, in the batch's transaction;
--   * canopy_drain_org_rollups() moves the pending rows into the four org
--     rollups in one statement, serialised by an advisory lock, so no ingest
--     transaction ever waits on a shared org row;
--   * queries read org rollup + pending rows of the range in one statement
--     (one snapshot), so answers are exact whatever the drain lag;
--   * a trigger on `accounts` moves an account's drained contribution when
--     its OU path changes (or the account appears / disappears).
-- Invariant, per level L: org_rollup_L + pending (with the current OU) =
-- rollup_L grouped by the account's current OU.
--
-- TimescaleDB mode: the same names are plain views over the account-level
-- continuous aggregates joined to `accounts` (a continuous aggregate cannot
-- follow OU changes of a joined table); the pending table exists and stays
-- empty. Untested here (TimescaleDB is not installable on this machine).

DO $timescale$
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'timescaledb' OR to_regclass('org_rollup_daily') IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE $v$ CREATE VIEW org_rollup_5m AS
        SELECT r.bucket_start, COALESCE(a.ou_path, '') AS ou_path, r.region, r.service, r.resource_type, r.team,
               r.quality, sum(r.energy_kwh) AS energy_kwh, sum(r.location_g_co2e) AS location_g_co2e,
               sum(r.market_g_co2e) AS market_g_co2e, sum(r.low_g_co2e) AS low_g_co2e,
               sum(r.high_g_co2e) AS high_g_co2e, sum(r.fact_count)::bigint AS fact_count
        FROM rollup_5m r LEFT JOIN accounts a ON a.account_id = r.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7 $v$;
    EXECUTE $v$ CREATE VIEW org_rollup_hourly AS
        SELECT r.bucket_start, COALESCE(a.ou_path, '') AS ou_path, r.region, r.service, r.resource_type, r.team,
               r.quality, sum(r.energy_kwh) AS energy_kwh, sum(r.location_g_co2e) AS location_g_co2e,
               sum(r.market_g_co2e) AS market_g_co2e, sum(r.low_g_co2e) AS low_g_co2e,
               sum(r.high_g_co2e) AS high_g_co2e, sum(r.fact_count)::bigint AS fact_count
        FROM rollup_hourly r LEFT JOIN accounts a ON a.account_id = r.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7 $v$;
    EXECUTE $v$ CREATE VIEW org_rollup_daily AS
        SELECT r.bucket_start, COALESCE(a.ou_path, '') AS ou_path, r.region, r.service, r.resource_type, r.team,
               r.quality, sum(r.energy_kwh) AS energy_kwh, sum(r.location_g_co2e) AS location_g_co2e,
               sum(r.market_g_co2e) AS market_g_co2e, sum(r.low_g_co2e) AS low_g_co2e,
               sum(r.high_g_co2e) AS high_g_co2e, sum(r.fact_count)::bigint AS fact_count
        FROM rollup_daily r LEFT JOIN accounts a ON a.account_id = r.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7 $v$;
    EXECUTE $v$ CREATE VIEW org_rollup_monthly AS
        SELECT r.bucket_start, COALESCE(a.ou_path, '') AS ou_path, r.region, r.service, r.resource_type, r.team,
               r.quality, sum(r.energy_kwh) AS energy_kwh, sum(r.location_g_co2e) AS location_g_co2e,
               sum(r.market_g_co2e) AS market_g_co2e, sum(r.low_g_co2e) AS low_g_co2e,
               sum(r.high_g_co2e) AS high_g_co2e, sum(r.fact_count)::bigint AS fact_count
        FROM rollup_monthly r LEFT JOIN accounts a ON a.account_id = r.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7 $v$;
END
$timescale$;

CREATE TABLE IF NOT EXISTS org_rollup_5m (
    bucket_start     timestamptz NOT NULL,
    ou_path          text NOT NULL,
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
    PRIMARY KEY (bucket_start, ou_path, region, service, resource_type, team, quality)
) PARTITION BY RANGE (bucket_start);

CREATE TABLE IF NOT EXISTS org_rollup_hourly (
    bucket_start     timestamptz NOT NULL,
    ou_path          text NOT NULL,
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
    PRIMARY KEY (bucket_start, ou_path, region, service, resource_type, team, quality)
) PARTITION BY RANGE (bucket_start);

CREATE TABLE IF NOT EXISTS org_rollup_daily (
    bucket_start     timestamptz NOT NULL,
    ou_path          text NOT NULL,
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
    PRIMARY KEY (bucket_start, ou_path, region, service, resource_type, team, quality)
);

CREATE TABLE IF NOT EXISTS org_rollup_monthly (
    bucket_start     timestamptz NOT NULL,
    ou_path          text NOT NULL,
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
    PRIMARY KEY (bucket_start, ou_path, region, service, resource_type, team, quality)
);

-- Rollup deltas not yet moved into the org rollups: one row per (ingest
-- statement, 5-minute bucket, account, group). Append-only; drained by
-- canopy_drain_org_rollups().
CREATE TABLE IF NOT EXISTS org_rollup_pending (
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
    fact_count       bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS org_rollup_pending_bucket_idx ON org_rollup_pending (bucket_start);
CREATE INDEX IF NOT EXISTS org_rollup_pending_account_idx ON org_rollup_pending (account_id);

-- Org partitions follow the account-level ones: 5-minute by day, hourly by
-- month. Returns how many it created.
CREATE OR REPLACE FUNCTION canopy_ensure_org_partitions(instants timestamptz[])
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    t        timestamptz;
    created  integer := 0;
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'native' THEN
        RETURN 0;
    END IF;
    FOREACH t IN ARRAY instants LOOP
        IF canopy_ensure_partition('org_rollup_hourly', 'month', t) THEN created := created + 1; END IF;
        IF canopy_ensure_partition('org_rollup_5m', 'day', t) THEN created := created + 1; END IF;
    END LOOP;
    RETURN created;
END
$fn$;

-- Same contract as in 0003, now also creating the org partitions.
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
        IF canopy_ensure_partition('org_rollup_hourly', 'month', to_timestamp(t)) THEN created := created + 1; END IF;
        IF canopy_ensure_partition('org_rollup_5m', 'day', to_timestamp(t)) THEN created := created + 1; END IF;
    END LOOP;
    RETURN created;
END
$fn$;

-- Moves every pending row into the org rollups. The delete and the four
-- upserts are one statement, so they see one snapshot: a pending row is
-- either still pending or in every org rollup, never both. Returns the
-- number of pending rows moved.
CREATE OR REPLACE FUNCTION canopy_drain_org_rollups()
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    moved  bigint;
    days   timestamptz[];
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'native' THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('canopy_org_rollups', 0));
    -- Partitions for every pending day (late data, or retention in between).
    SELECT array_agg(DISTINCT date_bin(interval '1 day', bucket_start, timestamptz 'epoch')) INTO days
    FROM org_rollup_pending;
    IF days IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM canopy_ensure_org_partitions(days);
    WITH d AS (
        DELETE FROM org_rollup_pending RETURNING *
    ),
    g AS (
        SELECT d.bucket_start, COALESCE(a.ou_path, '') AS ou_path, d.region, d.service, d.resource_type, d.team,
               d.quality, sum(d.energy_kwh) AS energy_kwh, sum(d.location_g_co2e) AS location_g_co2e,
               sum(d.market_g_co2e) AS market_g_co2e, sum(d.low_g_co2e) AS low_g_co2e,
               sum(d.high_g_co2e) AS high_g_co2e, sum(d.fact_count)::bigint AS fact_count, count(*) AS n
        FROM d LEFT JOIN accounts a ON a.account_id = d.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ),
    r5 AS (
        INSERT INTO org_rollup_5m AS t
        SELECT bucket_start, ou_path, region, service, resource_type, team, quality,
               energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, fact_count FROM g
        ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
            energy_kwh = t.energy_kwh + excluded.energy_kwh, location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
            market_g_co2e = t.market_g_co2e + excluded.market_g_co2e, low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
            high_g_co2e = t.high_g_co2e + excluded.high_g_co2e, fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    ),
    rh AS (
        INSERT INTO org_rollup_hourly AS t
        SELECT date_bin(interval '1 hour', bucket_start, timestamptz 'epoch'), ou_path, region, service,
               resource_type, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e),
               sum(low_g_co2e), sum(high_g_co2e), sum(fact_count)
        FROM g GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
            energy_kwh = t.energy_kwh + excluded.energy_kwh, location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
            market_g_co2e = t.market_g_co2e + excluded.market_g_co2e, low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
            high_g_co2e = t.high_g_co2e + excluded.high_g_co2e, fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    ),
    rd AS (
        INSERT INTO org_rollup_daily AS t
        SELECT date_bin(interval '1 day', bucket_start, timestamptz 'epoch'), ou_path, region, service,
               resource_type, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e),
               sum(low_g_co2e), sum(high_g_co2e), sum(fact_count)
        FROM g GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
            energy_kwh = t.energy_kwh + excluded.energy_kwh, location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
            market_g_co2e = t.market_g_co2e + excluded.market_g_co2e, low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
            high_g_co2e = t.high_g_co2e + excluded.high_g_co2e, fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    ),
    rm AS (
        INSERT INTO org_rollup_monthly AS t
        SELECT date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', ou_path, region, service,
               resource_type, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e),
               sum(low_g_co2e), sum(high_g_co2e), sum(fact_count)
        FROM g GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
            energy_kwh = t.energy_kwh + excluded.energy_kwh, location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
            market_g_co2e = t.market_g_co2e + excluded.market_g_co2e, low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
            high_g_co2e = t.high_g_co2e + excluded.high_g_co2e, fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    )
    -- Data-modifying CTEs run to completion whether or not they are read.
    SELECT COALESCE(sum(n), 0) INTO moved FROM g;
    RETURN moved;
END
$fn$;

-- Moves what the org rollups already hold for `account` from OU path
-- `from_ou` to `to_ou`, at every level. What they hold for the account is
-- its account-level rollup minus its still-pending rows, read in one
-- statement (one snapshot) per level; the caller holds the drain lock, so
-- no drain commits in between.
CREATE OR REPLACE FUNCTION canopy_move_org_rollups(account text, from_ou text, to_ou text)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    level   record;
    days    timestamptz[];
BEGIN
    SELECT array_agg(DISTINCT d) INTO days FROM (
        SELECT date_bin(interval '1 day', bucket_start, timestamptz 'epoch') AS d FROM rollup_5m WHERE account_id = account
        UNION SELECT date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM rollup_hourly
              WHERE account_id = account
    ) x;
    IF days IS NOT NULL THEN
        PERFORM canopy_ensure_org_partitions(days);
    END IF;
    FOR level IN
        SELECT * FROM (VALUES
            ('org_rollup_5m', 'rollup_5m', $b$bucket_start$b$),
            ('org_rollup_hourly', 'rollup_hourly', $b$date_bin(interval '1 hour', bucket_start, timestamptz 'epoch')$b$),
            ('org_rollup_daily', 'rollup_daily', $b$date_bin(interval '1 day', bucket_start, timestamptz 'epoch')$b$),
            ('org_rollup_monthly', 'rollup_monthly', $b$date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'$b$)
        ) v(org_table, account_table, pending_bucket)
    LOOP
        EXECUTE format($q$
            WITH held AS (
                SELECT bucket_start, region, service, resource_type, team, quality,
                       sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e,
                       sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e,
                       sum(high_g_co2e) AS high_g_co2e, sum(fact_count)::bigint AS fact_count
                FROM (
                    SELECT bucket_start, region, service, resource_type, team, quality, energy_kwh,
                           location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, fact_count
                    FROM %2$I WHERE account_id = $1
                    UNION ALL
                    SELECT %3$s, region, service, resource_type, team, quality, -energy_kwh,
                           -location_g_co2e, -market_g_co2e, -low_g_co2e, -high_g_co2e, -fact_count
                    FROM org_rollup_pending WHERE account_id = $1
                ) x
                GROUP BY 1, 2, 3, 4, 5, 6
            )
            INSERT INTO %1$I AS t
            SELECT bucket_start, ou, region, service, resource_type, team, quality, s * energy_kwh,
                   s * location_g_co2e, s * market_g_co2e, s * low_g_co2e, s * high_g_co2e, s::bigint * fact_count
            FROM held, (VALUES ($2, -1), ($3, 1)) m(ou, s)
            ORDER BY 1, 2, 3, 4, 5, 6, 7
            ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
                energy_kwh = t.energy_kwh + excluded.energy_kwh,
                location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
                market_g_co2e = t.market_g_co2e + excluded.market_g_co2e,
                low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
                high_g_co2e = t.high_g_co2e + excluded.high_g_co2e,
                fact_count = t.fact_count + excluded.fact_count
            $q$, level.org_table, level.account_table, level.pending_bucket)
        USING account, from_ou, to_ou;
    END LOOP;
END
$fn$;

-- An account's OU path appearing, changing or disappearing moves its data
-- between OU rows of the org rollups.
CREATE OR REPLACE FUNCTION canopy_accounts_ou_moved()
RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'native' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('canopy_org_rollups', 0));
    IF TG_OP = 'INSERT' THEN
        IF NEW.ou_path <> '' THEN
            PERFORM canopy_move_org_rollups(NEW.account_id, '', NEW.ou_path);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.ou_path <> '' THEN
            PERFORM canopy_move_org_rollups(OLD.account_id, OLD.ou_path, '');
        END IF;
    ELSIF OLD.account_id <> NEW.account_id THEN
        PERFORM canopy_move_org_rollups(OLD.account_id, OLD.ou_path, '');
        PERFORM canopy_move_org_rollups(NEW.account_id, '', NEW.ou_path);
    ELSIF OLD.ou_path <> NEW.ou_path THEN
        PERFORM canopy_move_org_rollups(NEW.account_id, OLD.ou_path, NEW.ou_path);
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS accounts_ou_moved ON accounts;
CREATE TRIGGER accounts_ou_moved AFTER INSERT OR DELETE OR UPDATE OF account_id, ou_path ON accounts
    FOR EACH ROW EXECUTE FUNCTION canopy_accounts_ou_moved();

-- Native mode: partitions and a backfill for data stored before this file.
DO $native$
DECLARE
    days  timestamptz[];
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'org_rollup_daily'::regclass) <> 'r'
       OR EXISTS (SELECT 1 FROM org_rollup_monthly) THEN
        RETURN;
    END IF;
    SELECT array_agg(DISTINCT d) INTO days FROM (
        SELECT date_bin(interval '1 day', bucket_start, timestamptz 'epoch') AS d FROM rollup_5m
        UNION SELECT date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM rollup_hourly
    ) x;
    IF days IS NULL THEN
        RETURN;
    END IF;
    PERFORM canopy_ensure_org_partitions(days);
    INSERT INTO org_rollup_5m
    SELECT r.bucket_start, COALESCE(a.ou_path, ''), r.region, r.service, r.resource_type, r.team, r.quality,
           sum(r.energy_kwh), sum(r.location_g_co2e), sum(r.market_g_co2e), sum(r.low_g_co2e), sum(r.high_g_co2e),
           sum(r.fact_count)
    FROM rollup_5m r LEFT JOIN accounts a ON a.account_id = r.account_id GROUP BY 1, 2, 3, 4, 5, 6, 7;
    INSERT INTO org_rollup_hourly
    SELECT r.bucket_start, COALESCE(a.ou_path, ''), r.region, r.service, r.resource_type, r.team, r.quality,
           sum(r.energy_kwh), sum(r.location_g_co2e), sum(r.market_g_co2e), sum(r.low_g_co2e), sum(r.high_g_co2e),
           sum(r.fact_count)
    FROM rollup_hourly r LEFT JOIN accounts a ON a.account_id = r.account_id GROUP BY 1, 2, 3, 4, 5, 6, 7;
    INSERT INTO org_rollup_daily
    SELECT r.bucket_start, COALESCE(a.ou_path, ''), r.region, r.service, r.resource_type, r.team, r.quality,
           sum(r.energy_kwh), sum(r.location_g_co2e), sum(r.market_g_co2e), sum(r.low_g_co2e), sum(r.high_g_co2e),
           sum(r.fact_count)
    FROM rollup_daily r LEFT JOIN accounts a ON a.account_id = r.account_id GROUP BY 1, 2, 3, 4, 5, 6, 7;
    INSERT INTO org_rollup_monthly
    SELECT r.bucket_start, COALESCE(a.ou_path, ''), r.region, r.service, r.resource_type, r.team, r.quality,
           sum(r.energy_kwh), sum(r.location_g_co2e), sum(r.market_g_co2e), sum(r.low_g_co2e), sum(r.high_g_co2e),
           sum(r.fact_count)
    FROM rollup_monthly r LEFT JOIN accounts a ON a.account_id = r.account_id GROUP BY 1, 2, 3, 4, 5, 6, 7;
END
$native$;
