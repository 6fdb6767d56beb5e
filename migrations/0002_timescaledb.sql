-- Canopy aggregator schema, part 2: the TimescaleDB path, applied only when
-- the extension is available on the server (otherwise this file does nothing
-- and 0003 creates the native partitioned tables). Hypertable for facts,
-- hierarchical continuous aggregates 5 minutes -> hourly -> daily with
-- real-time aggregation, compression and retention policies. The relation
-- and column names match 0003 so the query layer serves both modes.
DO $timescale$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       OR to_regclass('emission_facts') IS NOT NULL THEN
        RETURN;
    END IF;

    CREATE EXTENSION IF NOT EXISTS timescaledb;

    CREATE TABLE emission_facts (
        period_start         timestamptz NOT NULL,
        period_s             integer NOT NULL CHECK (period_s > 0 AND period_s <= 3600),
        account_id           text NOT NULL,
        region               text NOT NULL,
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
        methodology_version  text NOT NULL,
        factor_source        text NOT NULL,
        factor_vintage       text NOT NULL,
        agent_id             text NOT NULL,
        batch_sequence       bigint NOT NULL,
        PRIMARY KEY (period_start, account_id, region, record_key)
    );
    PERFORM create_hypertable('emission_facts', 'period_start', chunk_time_interval => interval '1 day');

    EXECUTE $v$
        CREATE MATERIALIZED VIEW rollup_5m
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '5 minutes', period_start) AS bucket_start,
               account_id, region, service, resource_type, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e,
               sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e,
               sum(high_g_co2e) AS high_g_co2e, count(*) AS fact_count
        FROM emission_facts
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        WITH NO DATA $v$;
    EXECUTE $v$
        CREATE MATERIALIZED VIEW rollup_hourly
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 hour', bucket_start) AS bucket_start,
               account_id, region, service, resource_type, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e,
               sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e,
               sum(high_g_co2e) AS high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM rollup_5m
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        WITH NO DATA $v$;
    EXECUTE $v$
        CREATE MATERIALIZED VIEW rollup_daily
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 day', bucket_start) AS bucket_start,
               account_id, region, service, resource_type, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e,
               sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e,
               sum(high_g_co2e) AS high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM rollup_hourly
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        WITH NO DATA $v$;

    PERFORM add_continuous_aggregate_policy('rollup_5m', start_offset => interval '35 days',
        end_offset => interval '5 minutes', schedule_interval => interval '1 minute');
    PERFORM add_continuous_aggregate_policy('rollup_hourly', start_offset => interval '13 months',
        end_offset => interval '1 hour', schedule_interval => interval '5 minutes');
    PERFORM add_continuous_aggregate_policy('rollup_daily', start_offset => NULL,
        end_offset => interval '1 day', schedule_interval => interval '1 hour');

    ALTER TABLE emission_facts SET (timescaledb.compress,
        timescaledb.compress_segmentby = 'account_id, region',
        timescaledb.compress_orderby = 'period_start');
    PERFORM add_compression_policy('emission_facts', interval '7 days');

    PERFORM add_retention_policy('emission_facts', interval '13 months');
    PERFORM add_retention_policy('rollup_5m', interval '35 days');
    PERFORM add_retention_policy('rollup_hourly', interval '13 months');

    UPDATE canopy_settings SET storage_mode = 'timescaledb';
END
$timescale$;
