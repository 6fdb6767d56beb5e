-- Hour-long group records (an agent's outbox coarsening per-resource records
-- when full) replace the per-resource records of their hour, and the other
-- way round, so each kWh is counted once.
--
-- Before this migration a record replaced only a record of the same key:
-- `group:ec2/instance/web@3600s` and `resource:<arn>@3600s` of the same hour
-- both counted, and an hour sent provisional per resource and measured as a
-- coarsened group (or the reverse) was counted about twice.
--
-- The rule, per scope (account, region, UTC hour); "group record" = a group
-- subject over a whole hour, "per-resource record" = every other fact:
--   * a group record supersedes every per-resource record of its hour with a
--     revision lower than or equal to its own, and every group record of its
--     hour with a lower revision;
--   * a per-resource record supersedes every group record of its hour with a
--     lower revision;
--   * within one key, the higher revision wins as before.
-- A record counts when nothing that has arrived for its scope supersedes it.
-- So an hour counts either its group records (all of the highest group
-- revision) or its per-resource records, never both. It relies on the
-- outbox coarsening a cycle whole: a coarsened cycle's group records carry
-- every resource of the hour at that revision.
--
-- Superseding is final (what has been superseded never counts again), so
-- the aggregator marks superseded segment positions / deletes superseded
-- rows and corrects the rollups by the difference, as for revisions. What it
-- must remember beyond the live facts is the highest revision of any group
-- record the hour ever received, including group records that were
-- themselves superseded: that is this table. A row exists only for hours
-- that received a group record (coarsening is rare), so ingest reads it for
-- every batch with one index lookup and writes it only for group records.
CREATE TABLE IF NOT EXISTS coarsened_hours (
    account_id      text NOT NULL,
    region          text NOT NULL,
    hour_start      timestamptz NOT NULL,
    -- Highest revision of any hour-long group record received for the hour.
    group_revision  bigint NOT NULL,
    PRIMARY KEY (account_id, region, hour_start)
);
