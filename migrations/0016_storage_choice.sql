-- The storage path's reason, and the TimescaleDB path's late-data refresh
-- queue (issue 13, case 8).
--
-- canopy_settings.storage_reason: why `canopy-aggregator migrate|serve
-- --storage auto|timescaledb|native` chose the path recorded in
-- storage_mode (written by the aggregator when it first migrates a
-- database; NULL for databases migrated before this file). The aggregator
-- chooses the path when 0002 would run: by hand, on a server where the
-- timescaledb extension is installed but not preloaded, skip 0002 (its
-- CREATE EXTENSION fails there) and the database stays native.
--
-- timescale_refresh_pending (TimescaleDB path only, empty otherwise): UTC
-- days that received facts older than the 5-minute continuous aggregate's
-- refresh window (its policy refreshes only the last 35 days, so without
-- this such late data, which ingest accepts, never reached rollup_5m and
-- therefore never any rollup above it). Ingest adds the days in the batch's
-- transaction; `canopy_aggregator::timescale::refresh_pending` (every few
-- seconds in `serve`, once in `maintain`) refreshes the four aggregates over
-- those whole days with force => true, lowest level first, and deletes the
-- rows it handled by id, so a day queued again meanwhile stays queued.
ALTER TABLE canopy_settings ADD COLUMN IF NOT EXISTS storage_reason text;

CREATE TABLE IF NOT EXISTS timescale_refresh_pending (
    id         bigserial PRIMARY KEY,
    day_start  timestamptz NOT NULL
);

-- TimescaleDB path: refresh policies that never reach data a retention
-- policy dropped from the aggregate they read. Refreshing a bucket whose
-- source chunks were dropped recomputes it from nothing: with the daily
-- policy reaching back forever, the daily (and then monthly) rollups of
-- days older than the hourly retention (13 months) went to zero at the
-- next daily refresh after the hourly chunks were dropped, although daily
-- and monthly rollups are kept forever (test
-- storage::timescaledb_retention_keeps_daily_and_monthly). Likewise the
-- hourly policy (13 months back) over the 5-minute aggregate (kept 35
-- days). The hourly policy now reaches back 34 days and the daily one 12
-- months; older changes reach them through the late-data refresh above,
-- which rebuilds whole days from the facts (kept 13 months).
DO $policies$
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'timescaledb' THEN
        RETURN;
    END IF;
    PERFORM remove_continuous_aggregate_policy('rollup_hourly', if_exists => true);
    PERFORM add_continuous_aggregate_policy('rollup_hourly', start_offset => interval '34 days',
        end_offset => interval '1 hour', schedule_interval => interval '5 minutes');
    PERFORM remove_continuous_aggregate_policy('rollup_daily', if_exists => true);
    PERFORM add_continuous_aggregate_policy('rollup_daily', start_offset => interval '12 months',
        end_offset => interval '1 day', schedule_interval => interval '1 hour');
END
$policies$;
