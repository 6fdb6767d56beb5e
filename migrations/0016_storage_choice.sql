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
