-- Canopy aggregator schema, part 9: the real-time path, kept apart from the
-- totals so nothing is counted twice.
--
-- An agent sends two views of the same energy: per-resource hourly records
-- (the detail, and the source of every rollup and total) and 5-minute group
-- records per (service, resource type, team) that arrive within one cycle of
-- the interval (the "last hour at 5-minute resolution" view). Summing both
-- would double every figure, so the 5-minute group records (a group subject
-- with an interval shorter than an hour) are stored here and only here:
-- never in emission_facts, never in a rollup. Group records of a whole hour
-- (an outbox that coarsened per-resource records when full) stand in for the
-- resources they replaced and go to emission_facts like any fact.
--
-- Same keys and revision rule as emission_facts: (bucket_start, account_id,
-- region, record_key), a higher revision replaces a lower one (provisional
-- → measured). `fact_count` is always 1 so the rollup query code reads this
-- table like a 5-minute rollup. Retention: the 5-minute retention (35 days
-- by default), by daily partitions (native) or a retention policy
-- (TimescaleDB).
DO $realtime$
DECLARE
    timescale boolean := (SELECT storage_mode FROM canopy_settings) = 'timescaledb';
BEGIN
    IF to_regclass('realtime_group_facts') IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE $t$
        CREATE TABLE realtime_group_facts (
            bucket_start         timestamptz NOT NULL,
            period_s             integer NOT NULL CHECK (period_s > 0 AND period_s < 3600),
            account_id           text NOT NULL,
            region               text NOT NULL,
            record_key           text NOT NULL,
            revision             bigint NOT NULL,
            service              text NOT NULL,
            resource_type        text NOT NULL,
            team                 text NOT NULL,
            quality              text NOT NULL,
            energy_kwh           double precision NOT NULL,
            location_g_co2e      double precision NOT NULL,
            market_g_co2e        double precision NOT NULL,
            low_g_co2e           double precision NOT NULL,
            high_g_co2e          double precision NOT NULL,
            fact_count           bigint NOT NULL DEFAULT 1 CHECK (fact_count = 1),
            methodology_version  text NOT NULL,
            factor_source        text NOT NULL,
            factor_vintage       text NOT NULL,
            agent_id             text NOT NULL,
            batch_sequence       bigint NOT NULL,
            PRIMARY KEY (bucket_start, account_id, region, record_key)
        )$t$ || CASE WHEN timescale THEN '' ELSE ' PARTITION BY RANGE (bucket_start)' END;
    IF timescale THEN
        PERFORM create_hypertable('realtime_group_facts', 'bucket_start', chunk_time_interval => interval '1 day');
        PERFORM add_retention_policy('realtime_group_facts', interval '35 days');
    END IF;
END
$realtime$;
