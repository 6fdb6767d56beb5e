-- Canopy aggregator schema, part 11: team rollups, the org rollups reduced
-- to (bucket, team, quality): at most teams x quality flags rows per bucket
-- (150 for 50 teams), so organisation-wide and per-team series over 13
-- months read a few thousand rows instead of every (OU, region, service,
-- resource type, team, quality) group.
--
-- org_team_rollup_daily / _monthly, keyed by (bucket_start, team, quality).
-- Native mode: plain tables filled by canopy_drain_org_rollups() in the same
-- statement that moves pending rows into the org rollups (one snapshot: a
-- pending row is either still pending or in every org and team rollup), and
-- read with the pending rows like the org rollups. No OU dimension, so an
-- account changing OU moves nothing here. Daily and monthly data are kept
-- forever, as at the other levels.
-- Invariant: org_team_rollup_L + pending = org_rollup_L grouped by (bucket,
-- team, quality).
--
-- TimescaleDB mode: views over the org views (untested here: TimescaleDB is
-- not installable on this machine).

DO $timescale$
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'timescaledb' OR to_regclass('org_team_rollup_daily') IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE $v$ CREATE VIEW org_team_rollup_daily AS
        SELECT bucket_start, team, quality, sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e,
               sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e,
               sum(high_g_co2e) AS high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM org_rollup_daily GROUP BY 1, 2, 3 $v$;
    EXECUTE $v$ CREATE VIEW org_team_rollup_monthly AS
        SELECT bucket_start, team, quality, sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e,
               sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e,
               sum(high_g_co2e) AS high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM org_rollup_monthly GROUP BY 1, 2, 3 $v$;
END
$timescale$;

CREATE TABLE IF NOT EXISTS org_team_rollup_daily (
    bucket_start     timestamptz NOT NULL,
    team             text NOT NULL,
    quality          text NOT NULL,
    energy_kwh       double precision NOT NULL,
    location_g_co2e  double precision NOT NULL,
    market_g_co2e    double precision NOT NULL,
    low_g_co2e       double precision NOT NULL,
    high_g_co2e      double precision NOT NULL,
    fact_count       bigint NOT NULL,
    PRIMARY KEY (bucket_start, team, quality)
);

CREATE TABLE IF NOT EXISTS org_team_rollup_monthly (
    bucket_start     timestamptz NOT NULL,
    team             text NOT NULL,
    quality          text NOT NULL,
    energy_kwh       double precision NOT NULL,
    location_g_co2e  double precision NOT NULL,
    market_g_co2e    double precision NOT NULL,
    low_g_co2e       double precision NOT NULL,
    high_g_co2e      double precision NOT NULL,
    fact_count       bigint NOT NULL,
    PRIMARY KEY (bucket_start, team, quality)
);

-- Same contract as in 0006, now also feeding the team rollups.
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
    ),
    tg AS (
        SELECT date_bin(interval '1 day', bucket_start, timestamptz 'epoch') AS day, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e,
               sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e,
               sum(high_g_co2e) AS high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM g GROUP BY 1, 2, 3
    ),
    td AS (
        INSERT INTO org_team_rollup_daily AS t
        SELECT day, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, fact_count
        FROM tg ORDER BY 1, 2, 3
        ON CONFLICT (bucket_start, team, quality) DO UPDATE SET
            energy_kwh = t.energy_kwh + excluded.energy_kwh, location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
            market_g_co2e = t.market_g_co2e + excluded.market_g_co2e, low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
            high_g_co2e = t.high_g_co2e + excluded.high_g_co2e, fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    ),
    tm AS (
        INSERT INTO org_team_rollup_monthly AS t
        SELECT date_trunc('month', day AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', team, quality, sum(energy_kwh),
               sum(location_g_co2e), sum(market_g_co2e), sum(low_g_co2e), sum(high_g_co2e), sum(fact_count)
        FROM tg GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (bucket_start, team, quality) DO UPDATE SET
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

-- Native mode: backfill from the org rollups drained before this file
-- (pending rows stay pending and reach the team rollups with the next drain).
DO $native$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'org_team_rollup_daily'::regclass) <> 'r'
       OR EXISTS (SELECT 1 FROM org_team_rollup_monthly) THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('canopy_org_rollups', 0));
    INSERT INTO org_team_rollup_daily
    SELECT bucket_start, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e),
           sum(low_g_co2e), sum(high_g_co2e), sum(fact_count)
    FROM org_rollup_daily GROUP BY 1, 2, 3;
    INSERT INTO org_team_rollup_monthly
    SELECT bucket_start, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e),
           sum(low_g_co2e), sum(high_g_co2e), sum(fact_count)
    FROM org_rollup_monthly GROUP BY 1, 2, 3;
END
$native$;
