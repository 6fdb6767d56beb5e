-- Retention horizons: for each stored level, the oldest instant from which
-- its data is complete. `canopy-aggregator maintain` (and the maintenance
-- loop of `serve`) raises a level's horizon, in its own committed
-- transaction, before dropping anything older; the query planner reads the
-- horizons in the snapshot of each answer and never reads a level before
-- its horizon (it answers from coarser levels that remain, or refuses the
-- range naming the boundary to round to). So a query node configured with
-- other `--retain-*` flags than the process that ran retention still
-- agrees with what was dropped.
--
-- Levels: 'five_minute' (rollup_5m, org_rollup_5m, realtime_group_facts),
-- 'hourly' (rollup_hourly, org_rollup_hourly), 'facts' (emission_facts,
-- emission_fact_segments), 'daily' (daily and monthly rollups: account,
-- org and team). NULL: nothing dropped yet. A horizon only ever moves
-- forward.
--
-- Ordering with readers: a reader locks this table in ACCESS SHARE mode
-- before its snapshot is taken (LOCK TABLE takes none); maintenance updates
-- it under ACCESS EXCLUSIVE, which waits for every reader that might hold
-- an older horizon to finish, and drops partitions only after that commit.

CREATE TABLE IF NOT EXISTS retention_horizons (
    level   text PRIMARY KEY CHECK (level IN ('five_minute', 'hourly', 'facts', 'daily')),
    horizon timestamptz
);

INSERT INTO retention_horizons (level) VALUES ('five_minute'), ('hourly'), ('facts'), ('daily')
ON CONFLICT DO NOTHING;
