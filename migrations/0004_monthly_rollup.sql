-- Canopy aggregator schema, part 4: monthly rollups (UTC calendar months),
-- so that ranges of many months read one row per group and month. Native
-- mode: a plain table maintained by the ingest statement like the others.
-- TimescaleDB mode: a continuous aggregate on the daily one.
DO $timescale$
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'timescaledb' OR to_regclass('rollup_monthly') IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE $v$
        CREATE MATERIALIZED VIEW rollup_monthly
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 month', bucket_start) AS bucket_start,
               account_id, region, service, resource_type, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e,
               sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e,
               sum(high_g_co2e) AS high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM rollup_daily
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        WITH NO DATA $v$;
    PERFORM add_continuous_aggregate_policy('rollup_monthly', start_offset => NULL,
        end_offset => interval '1 day', schedule_interval => interval '1 hour');
END
$timescale$;

CREATE TABLE IF NOT EXISTS rollup_monthly (
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

DO $native$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'rollup_monthly'::regclass) = 'r' THEN
        CREATE INDEX IF NOT EXISTS rollup_monthly_account_idx ON rollup_monthly (account_id, bucket_start);
        -- Backfill from the daily rollups of data stored before this migration.
        IF NOT EXISTS (SELECT 1 FROM rollup_monthly) THEN
            INSERT INTO rollup_monthly
            SELECT date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                   account_id, region, service, resource_type, team, quality,
                   sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e), sum(low_g_co2e),
                   sum(high_g_co2e), sum(fact_count)
            FROM rollup_daily GROUP BY 1, 2, 3, 4, 5, 6, 7;
        END IF;
    END IF;
END
$native$;
