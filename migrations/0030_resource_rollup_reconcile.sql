-- canopy_reconcile_coarsened_hours (contract of 0013, measures of 0022)
-- replaced whole: the records it supersedes also leave the per-resource
-- daily rollup of 0029 (native path; on the TimescaleDB path the queued
-- days' refresh rebuilds it with the other continuous aggregates).
CREATE OR REPLACE FUNCTION canopy_reconcile_coarsened_hours(from_ts timestamptz, to_ts timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    superseded bigint;
BEGIN
    -- Ingest's locks of every (account, region) with facts in the range, in
    -- sorted order as ingest takes them (evaluated after the sort).
    PERFORM count(*) FROM (
        SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
        FROM (SELECT DISTINCT 'canopy_scope:' || account_id || '/' || region AS k
              FROM emission_facts_all WHERE period_start >= from_ts AND period_start < to_ts) AS d
        ORDER BY k
    ) AS locked;
    CREATE TEMP TABLE canopy_reconcile_scopes ON COMMIT DROP AS
    WITH f AS (
        SELECT account_id, region, date_bin(interval '1 hour', period_start, timestamptz 'epoch') AS hour_start,
               (period_s = 3600 AND starts_with(record_key, 'group:')) AS is_group, revision
        FROM emission_facts_all
        WHERE period_start >= from_ts AND period_start < to_ts
    ),
    s AS (
        SELECT account_id, region, hour_start,
               max(revision) FILTER (WHERE is_group) AS group_max,
               max(revision) FILTER (WHERE NOT is_group) AS resource_max
        FROM f GROUP BY 1, 2, 3
        HAVING bool_or(is_group)
    )
    SELECT s.account_id, s.region, s.hour_start,
           GREATEST(s.group_max, c.group_revision) AS group_revision, s.resource_max
    FROM s LEFT JOIN coarsened_hours c
      ON c.account_id = s.account_id AND c.region = s.region AND c.hour_start = s.hour_start;
    ALTER TABLE canopy_reconcile_scopes
        ADD COLUMN group_below bigint, ADD COLUMN resource_upto bigint;
    UPDATE canopy_reconcile_scopes SET
        group_below = CASE WHEN resource_max IS NULL OR resource_max <= group_revision
                           THEN group_revision ELSE 9223372036854775807 END,
        resource_upto = group_revision;

    CREATE TEMP TABLE canopy_reconcile_gone ON COMMIT DROP AS
    WITH pos AS (
        SELECT s.period_start, s.account_id, s.region, s.segment_id, u.ord::int AS ord, u.resource_id, u.service,
               u.resource_type, u.team, u.quality,
               u.energy_kwh AS energy_kwh, u.location_g_co2e AS location_g_co2e, u.market_g_co2e AS market_g_co2e, u.low_g_co2e AS low_g_co2e, u.high_g_co2e AS high_g_co2e, COALESCE(u.it_energy_kwh, u.energy_kwh) AS it_energy_kwh, COALESCE(u.operational_location_g_co2e, u.location_g_co2e) AS operational_location_g_co2e, COALESCE(u.operational_location_low_g_co2e, u.low_g_co2e) AS operational_location_low_g_co2e, COALESCE(u.operational_location_high_g_co2e, u.high_g_co2e) AS operational_location_high_g_co2e, COALESCE(u.operational_market_g_co2e, u.market_g_co2e) AS operational_market_g_co2e, COALESCE(u.operational_market_low_g_co2e, u.market_g_co2e) AS operational_market_low_g_co2e, COALESCE(u.operational_market_high_g_co2e, u.market_g_co2e) AS operational_market_high_g_co2e, COALESCE(u.embodied_g_co2e, 0) AS embodied_g_co2e, COALESCE(u.embodied_low_g_co2e, 0) AS embodied_low_g_co2e, COALESCE(u.embodied_high_g_co2e, 0) AS embodied_high_g_co2e
        FROM canopy_reconcile_scopes k
        JOIN emission_fact_segments s
          ON s.account_id = k.account_id AND s.region = k.region
         AND s.period_start >= k.hour_start AND s.period_start < k.hour_start + interval '1 hour'
        CROSS JOIN LATERAL unnest(s.period_s, s.record_keys, s.revisions, s.resource_ids, s.services, s.resource_types, s.teams,
                                  s.qualities, s.energy_kwh, s.location_g_co2e, s.market_g_co2e, s.low_g_co2e, s.high_g_co2e, s.it_energy_kwh, s.operational_location_g_co2e, s.operational_location_low_g_co2e, s.operational_location_high_g_co2e, s.operational_market_g_co2e, s.operational_market_low_g_co2e, s.operational_market_high_g_co2e, s.embodied_g_co2e, s.embodied_low_g_co2e, s.embodied_high_g_co2e) WITH ORDINALITY
            AS u(period_s, record_key, revision, resource_id, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, ord)
        WHERE u.ord::int <> ALL (s.superseded)
          AND CASE WHEN u.period_s = 3600 AND starts_with(u.record_key, 'group:')
                   THEN u.revision < k.group_below ELSE u.revision <= k.resource_upto END
    ),
    sup AS (
        UPDATE emission_fact_segments AS s SET superseded = s.superseded || m.ords
        FROM (SELECT period_start, account_id, region, segment_id, array_agg(ord ORDER BY ord) AS ords
              FROM pos GROUP BY 1, 2, 3, 4) AS m
        WHERE s.account_id = m.account_id AND s.region = m.region AND s.period_start = m.period_start
          AND s.segment_id = m.segment_id
        RETURNING 1
    ),
    del AS (
        DELETE FROM emission_facts AS f USING canopy_reconcile_scopes k
        WHERE f.account_id = k.account_id AND f.region = k.region
          AND f.period_start >= k.hour_start AND f.period_start < k.hour_start + interval '1 hour'
          AND CASE WHEN f.period_s = 3600 AND starts_with(f.record_key, 'group:')
                   THEN f.revision < k.group_below ELSE f.revision <= k.resource_upto END
        RETURNING f.period_start, f.account_id, f.region, f.resource_id, f.service, f.resource_type, f.team, f.quality,
                  f.energy_kwh AS energy_kwh, f.location_g_co2e AS location_g_co2e, f.market_g_co2e AS market_g_co2e, f.low_g_co2e AS low_g_co2e, f.high_g_co2e AS high_g_co2e, COALESCE(f.it_energy_kwh, f.energy_kwh) AS it_energy_kwh, COALESCE(f.operational_location_g_co2e, f.location_g_co2e) AS operational_location_g_co2e, COALESCE(f.operational_location_low_g_co2e, f.low_g_co2e) AS operational_location_low_g_co2e, COALESCE(f.operational_location_high_g_co2e, f.high_g_co2e) AS operational_location_high_g_co2e, COALESCE(f.operational_market_g_co2e, f.market_g_co2e) AS operational_market_g_co2e, COALESCE(f.operational_market_low_g_co2e, f.market_g_co2e) AS operational_market_low_g_co2e, COALESCE(f.operational_market_high_g_co2e, f.market_g_co2e) AS operational_market_high_g_co2e, COALESCE(f.embodied_g_co2e, 0) AS embodied_g_co2e, COALESCE(f.embodied_low_g_co2e, 0) AS embodied_low_g_co2e, COALESCE(f.embodied_high_g_co2e, 0) AS embodied_high_g_co2e
    )
    SELECT period_start, account_id, region, resource_id, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e FROM pos
    UNION ALL
    SELECT * FROM del;

    INSERT INTO coarsened_hours AS c (account_id, region, hour_start, group_revision)
    SELECT account_id, region, hour_start, group_revision FROM canopy_reconcile_scopes
    ON CONFLICT (account_id, region, hour_start) DO UPDATE
        SET group_revision = GREATEST(c.group_revision, excluded.group_revision);

    SELECT count(*) INTO superseded FROM canopy_reconcile_gone;
    IF superseded > 0 AND (SELECT storage_mode FROM canopy_settings) = 'native' THEN
        CREATE TEMP TABLE canopy_reconcile_delta ON COMMIT DROP AS
        SELECT date_bin(interval '5 minutes', period_start, timestamptz 'epoch') AS bucket_start,
               account_id, region, service, resource_type, team, quality,
               -sum(energy_kwh) AS energy_kwh, -sum(location_g_co2e) AS location_g_co2e, -sum(market_g_co2e) AS market_g_co2e, -sum(low_g_co2e) AS low_g_co2e, -sum(high_g_co2e) AS high_g_co2e, -sum(it_energy_kwh) AS it_energy_kwh, -sum(operational_location_g_co2e) AS operational_location_g_co2e, -sum(operational_location_low_g_co2e) AS operational_location_low_g_co2e, -sum(operational_location_high_g_co2e) AS operational_location_high_g_co2e, -sum(operational_market_g_co2e) AS operational_market_g_co2e, -sum(operational_market_low_g_co2e) AS operational_market_low_g_co2e, -sum(operational_market_high_g_co2e) AS operational_market_high_g_co2e, -sum(embodied_g_co2e) AS embodied_g_co2e, -sum(embodied_low_g_co2e) AS embodied_low_g_co2e, -sum(embodied_high_g_co2e) AS embodied_high_g_co2e, -count(*) AS fact_count
        FROM canopy_reconcile_gone GROUP BY 1, 2, 3, 4, 5, 6, 7;
        PERFORM canopy_reconcile_add_delta('rollup_5m', 'bucket_start');
        PERFORM canopy_reconcile_add_delta('rollup_hourly', $b$date_bin(interval '1 hour', bucket_start, timestamptz 'epoch')$b$);
        PERFORM canopy_reconcile_add_delta('rollup_daily', $b$date_bin(interval '1 day', bucket_start, timestamptz 'epoch')$b$);
        PERFORM canopy_reconcile_add_delta('rollup_monthly',
            $b$date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'$b$);
        INSERT INTO org_rollup_pending (bucket_start, account_id, region, service, resource_type, team, quality,
                                        energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count)
        SELECT bucket_start, account_id, region, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count
        FROM canopy_reconcile_delta;
        DROP TABLE canopy_reconcile_delta;
        -- The per-resource daily rollup (0029) loses the same records.
        INSERT INTO resource_rollup_daily AS t (bucket_start, account_id, region, resource_id, service,
               resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count, last_period_start)
        SELECT date_bin(interval '1 day', period_start, timestamptz 'epoch'), account_id, region, resource_id,
               service, resource_type, team, quality, -sum(energy_kwh), -sum(location_g_co2e), -sum(market_g_co2e), -sum(low_g_co2e), -sum(high_g_co2e), -sum(it_energy_kwh), -sum(operational_location_g_co2e), -sum(operational_location_low_g_co2e), -sum(operational_location_high_g_co2e), -sum(operational_market_g_co2e), -sum(operational_market_low_g_co2e), -sum(operational_market_high_g_co2e), -sum(embodied_g_co2e), -sum(embodied_low_g_co2e), -sum(embodied_high_g_co2e), -count(*),
               timestamptz '-infinity'
        FROM canopy_reconcile_gone GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        ON CONFLICT (bucket_start, account_id, region, resource_id, service, resource_type, team, quality)
        DO UPDATE SET energy_kwh = t.energy_kwh + excluded.energy_kwh, location_g_co2e = t.location_g_co2e + excluded.location_g_co2e, market_g_co2e = t.market_g_co2e + excluded.market_g_co2e, low_g_co2e = t.low_g_co2e + excluded.low_g_co2e, high_g_co2e = t.high_g_co2e + excluded.high_g_co2e, it_energy_kwh = t.it_energy_kwh + excluded.it_energy_kwh, operational_location_g_co2e = t.operational_location_g_co2e + excluded.operational_location_g_co2e, operational_location_low_g_co2e = t.operational_location_low_g_co2e + excluded.operational_location_low_g_co2e, operational_location_high_g_co2e = t.operational_location_high_g_co2e + excluded.operational_location_high_g_co2e, operational_market_g_co2e = t.operational_market_g_co2e + excluded.operational_market_g_co2e, operational_market_low_g_co2e = t.operational_market_low_g_co2e + excluded.operational_market_low_g_co2e, operational_market_high_g_co2e = t.operational_market_high_g_co2e + excluded.operational_market_high_g_co2e, embodied_g_co2e = t.embodied_g_co2e + excluded.embodied_g_co2e, embodied_low_g_co2e = t.embodied_low_g_co2e + excluded.embodied_low_g_co2e, embodied_high_g_co2e = t.embodied_high_g_co2e + excluded.embodied_high_g_co2e,
            fact_count = t.fact_count + excluded.fact_count;
    ELSIF superseded > 0 THEN
        -- TimescaleDB path: the continuous aggregates follow the deleted
        -- rows through the late-data refresh queue (migration 0016), the
        -- days of every deleted row.
        INSERT INTO timescale_refresh_pending (day_start)
        SELECT DISTINCT date_bin(interval '1 day', period_start, timestamptz 'epoch') FROM canopy_reconcile_gone;
    END IF;
    DROP TABLE canopy_reconcile_gone;
    DROP TABLE canopy_reconcile_scopes;
    RETURN superseded;
END
$fn$;
