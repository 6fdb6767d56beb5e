-- Per-resource daily rollup (issue 20 section 1): top resources and resource
-- history read one row per (UTC day, account, region, resource, service,
-- resource type, team, quality flag) instead of unnesting every fact segment
-- of the range. Ragged range edges are read from the per-resource facts (the
-- query planner's usual "coarse bucket minus the finer piece" rule,
-- aggregator::query::plan); facts are hourly or 5-minute records, so an hourly
-- per-resource level would hold about as many rows as the facts it replaces
-- and none is kept.
--
-- Columns: every measure of migration 0022 (totals and parts), fact_count,
-- and last_period_start, the latest period start the row ever received (the
-- resource's service, resource type and team are reported from its row with
-- the latest one, as the facts query did).
--
-- Resource history per day (GET /v1/resource-history?step=1d) reads it
-- too, through an index on (account, region, resource, day).
--
-- Native path: a plain table kept by ingest in the batch's transaction, by
-- the same difference as the other rollups (aggregator::ingest::rollup_ctes:
-- new facts, minus the facts a higher revision, a coarsened group record or
-- a restatement replaced), deleted before the daily retention cutoff with
-- the other daily rollups (aggregator::maintenance). Backfilled here from
-- every live fact.
--
-- TimescaleDB path: a continuous aggregate on emission_facts with real-time
-- aggregation (the facts are rows there, a revision replaces the row, so
-- the aggregate follows), refreshed by a policy over the last 12 months like
-- rollup_daily, and by the late-data refresh (aggregator::timescale) for
-- queued days. Days holding facts when this file runs are queued there, so
-- the refresh materialises them.
DO $native$
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) = 'timescaledb' OR to_regclass('resource_rollup_daily') IS NOT NULL THEN
        RETURN;
    END IF;
    CREATE TABLE resource_rollup_daily (
    bucket_start                       timestamptz NOT NULL,
    account_id                         text NOT NULL,
    region                             text NOT NULL,
    resource_id                        text NOT NULL,
    service                            text NOT NULL,
    resource_type                      text NOT NULL,
    team                               text NOT NULL,
    quality                            text NOT NULL,
    energy_kwh                         double precision NOT NULL,
    location_g_co2e                    double precision NOT NULL,
    market_g_co2e                      double precision NOT NULL,
    low_g_co2e                         double precision NOT NULL,
    high_g_co2e                        double precision NOT NULL,
    it_energy_kwh                      double precision NOT NULL,
    operational_location_g_co2e        double precision NOT NULL,
    operational_location_low_g_co2e    double precision NOT NULL,
    operational_location_high_g_co2e   double precision NOT NULL,
    operational_market_g_co2e          double precision NOT NULL,
    operational_market_low_g_co2e      double precision NOT NULL,
    operational_market_high_g_co2e     double precision NOT NULL,
    embodied_g_co2e                    double precision NOT NULL,
    embodied_low_g_co2e                double precision NOT NULL,
    embodied_high_g_co2e               double precision NOT NULL,
    fact_count                         bigint NOT NULL,
    last_period_start                  timestamptz NOT NULL,
    PRIMARY KEY (bucket_start, account_id, region, resource_id, service, resource_type, team, quality)
    );
    -- One resource's days (resource history per day).
    CREATE INDEX resource_rollup_daily_resource_idx ON resource_rollup_daily (account_id, region, resource_id, bucket_start);
    INSERT INTO resource_rollup_daily (bucket_start, account_id, region, resource_id, service, resource_type, team,
           quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count, last_period_start)
    SELECT date_bin(interval '1 day', period_start, timestamptz 'epoch'), account_id, region, resource_id, service,
           resource_type, team, quality, sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(it_energy_kwh) AS it_energy_kwh, sum(operational_location_g_co2e) AS operational_location_g_co2e, sum(operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(operational_market_g_co2e) AS operational_market_g_co2e, sum(operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(embodied_g_co2e) AS embodied_g_co2e, sum(embodied_low_g_co2e) AS embodied_low_g_co2e, sum(embodied_high_g_co2e) AS embodied_high_g_co2e, count(*), max(period_start)
    FROM emission_facts_all_parts
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
END
$native$;

DO $timescale$
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'timescaledb' OR to_regclass('resource_rollup_daily') IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE $v$
        CREATE MATERIALIZED VIEW resource_rollup_daily
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 day', period_start) AS bucket_start,
               account_id, region, resource_id, service, resource_type, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(COALESCE(it_energy_kwh, energy_kwh)) AS it_energy_kwh, sum(COALESCE(operational_location_g_co2e, location_g_co2e)) AS operational_location_g_co2e, sum(COALESCE(operational_location_low_g_co2e, low_g_co2e)) AS operational_location_low_g_co2e, sum(COALESCE(operational_location_high_g_co2e, high_g_co2e)) AS operational_location_high_g_co2e, sum(COALESCE(operational_market_g_co2e, market_g_co2e)) AS operational_market_g_co2e, sum(COALESCE(operational_market_low_g_co2e, market_g_co2e)) AS operational_market_low_g_co2e, sum(COALESCE(operational_market_high_g_co2e, market_g_co2e)) AS operational_market_high_g_co2e, sum(COALESCE(embodied_g_co2e, 0)) AS embodied_g_co2e, sum(COALESCE(embodied_low_g_co2e, 0)) AS embodied_low_g_co2e, sum(COALESCE(embodied_high_g_co2e, 0)) AS embodied_high_g_co2e, count(*) AS fact_count, max(period_start) AS last_period_start
        FROM emission_facts
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        WITH NO DATA $v$;
    PERFORM add_continuous_aggregate_policy('resource_rollup_daily', start_offset => interval '12 months',
        end_offset => interval '1 day', schedule_interval => interval '1 hour');
    INSERT INTO timescale_refresh_pending (day_start)
    SELECT DISTINCT time_bucket(interval '1 day', period_start) FROM emission_facts;
END
$timescale$;
