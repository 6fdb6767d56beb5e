-- Partition bounds independent of the session's time zone (issue 13, case 3).
--
-- Until now a day partition's upper bound was `lo + interval '1 day'`, and
-- adding a day to a timestamptz follows the session's TimeZone: in an
-- 'America/New_York' session the 5-minute partition starting 2026-11-01
-- 00:00 UTC ended 25 hours later, and creating the next day's partition
-- failed with "would overlap", which stopped ingest and maintenance. The
-- aggregator's own sessions run in UTC (sqlx sets TimeZone), but the
-- functions are also called by hand (psql, a database with a default time
-- zone). Every bound is now computed on UTC wall-clock timestamps
-- (`timestamptz AT TIME ZONE 'UTC'` is a timestamp without time zone, whose
-- arithmetic has no daylight-saving rules) and written into the DDL as an
-- explicit UTC literal instead of the session-formatted text of a
-- timestamptz.
--
-- Replaces canopy_ensure_partition (last replaced whole in 0012) whole;
-- canopy_ensure_time_partitions (0012) and canopy_ensure_org_partitions
-- (0006) pass absolute instants (to_timestamp, date_bin on the epoch) and
-- are unchanged. The rollup bucketing the ingest, drain and query SQL use is
-- date_bin(interval '1 hour' | '1 day', t, timestamptz 'epoch') (a fixed
-- number of microseconds, no calendar) and
-- date_trunc('month', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', both
-- independent of the session's time zone; the integration test
-- `storage::rollup_buckets_ignore_the_session_time_zone` checks it.
CREATE OR REPLACE FUNCTION canopy_ensure_partition(parent text, unit text, at timestamptz)
RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    lo_utc  timestamp;
    hi_utc  timestamp;
    child   text;
BEGIN
    IF unit = 'day' THEN
        lo_utc := date_trunc('day', at AT TIME ZONE 'UTC');
        hi_utc := lo_utc + interval '1 day';
    ELSIF unit = 'month' THEN
        lo_utc := date_trunc('month', at AT TIME ZONE 'UTC');
        hi_utc := lo_utc + interval '1 month';
    ELSE
        RAISE EXCEPTION 'partition unit must be day or month, found %', unit;
    END IF;
    child := parent || '_p' || to_char(lo_utc, 'YYYYMMDD');
    IF to_regclass(child) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Serialise concurrent creators of the same partition.
    PERFORM pg_advisory_xact_lock(hashtext('canopy_partition:' || child));
    IF to_regclass(child) IS NOT NULL THEN
        RETURN false;
    END IF;
    BEGIN
        -- ISO 8601 with an explicit +00 offset: parsed the same under any
        -- TimeZone and DateStyle.
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                       child, parent,
                       to_char(lo_utc, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'),
                       to_char(hi_utc, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
    EXCEPTION WHEN duplicate_table OR unique_violation THEN
        RETURN false;
    END;
    RETURN true;
END
$fn$;
