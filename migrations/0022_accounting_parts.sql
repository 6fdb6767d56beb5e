-- Reportable carbon accounting, part 1 (issue 14, sections 1 and 4): every
-- fact and every rollup keeps its parts apart.
--
-- New measure columns next to the five of before, in every relation that
-- holds figures (facts, segments, real-time group records, the 5-minute,
-- hourly, daily and monthly rollups, the org and team rollups, the org
-- pending deltas and the ones the drain set aside):
--   it_energy_kwh                       IT energy (energy_kwh is facility
--                                       energy, IT x PUE, as before)
--   operational_location_g_co2e (+ _low_g_co2e, _high_g_co2e)
--   operational_market_g_co2e   (+ _low_g_co2e, _high_g_co2e)
--   embodied_g_co2e             (+ _low_g_co2e, _high_g_co2e)
-- The totals keep their meaning: location_g_co2e = operational location +
-- embodied, market_g_co2e = operational market + embodied, low/high bound
-- the location total (aggregator::accounting).
--
-- Moving stored data forward: before this migration the aggregator folded
-- embodied CO2e into both totals and kept no part, and the stored facts
-- carry nothing it could be recovered from (the wire record is not kept).
-- So every figure stored before this file is moved forward by the
-- "unsplit" rule (aggregator::accounting::FactParts::unsplit): all of it
-- operational, embodied 0, IT energy = facility energy, operational
-- location bounds = the stored bounds, market bounds = the market value.
-- The rule is linear, so a rollup moved forward equals the sum of its facts
-- moved forward and every rollup invariant keeps holding. Such figures are
-- flagged, not hidden:
--   * facts: the part columns of rows stay NULL and the part arrays of
--     segments stay empty; `emission_facts_all_parts` shows the rule's values and
--     `parts_unsplit = true` for them;
--   * answers: `factor_lineage_monthly` (below) lists, per account and UTC
--     month, the factor sets behind the stored figures, with
--     parts = 'unsplit-before-0022' for the months that hold such figures;
--     every API answer lists the rows of its range.
--
-- TimescaleDB path: a continuous aggregate cannot gain a column, so the
-- four are rebuilt with the parts (the org and team views over them too).
-- On a database with facts the old aggregates are kept, renamed
-- rollup_*_pre0022, without policies (their daily and monthly buckets older
-- than the facts' 13-month retention exist nowhere else), and every UTC day
-- holding facts is queued in timescale_refresh_pending, so the aggregator's
-- late-data refresh (aggregator::timescale) rebuilds the new aggregates from
-- the facts, lowest level first. Daily and monthly figures older than the
-- facts' retention are answered from what the new aggregates hold (nothing
-- before the oldest stored fact) until an operator copies them over from
-- rollup_daily_pre0022 / rollup_monthly_pre0022.

-- 1. Facts: nullable parts (NULL = stored before this file).
ALTER TABLE emission_facts
    ADD COLUMN IF NOT EXISTS it_energy_kwh double precision,
    ADD COLUMN IF NOT EXISTS operational_location_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_location_low_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_location_high_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_market_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_market_low_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_market_high_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS embodied_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS embodied_low_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS embodied_high_g_co2e double precision;
ALTER TABLE realtime_group_facts
    ADD COLUMN IF NOT EXISTS it_energy_kwh double precision,
    ADD COLUMN IF NOT EXISTS operational_location_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_location_low_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_location_high_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_market_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_market_low_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS operational_market_high_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS embodied_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS embodied_low_g_co2e double precision,
    ADD COLUMN IF NOT EXISTS embodied_high_g_co2e double precision;

-- Segments: one array per part, empty for segments written before this file.
ALTER TABLE emission_fact_segments
    ADD COLUMN IF NOT EXISTS it_energy_kwh double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS operational_location_g_co2e double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS operational_location_low_g_co2e double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS operational_location_high_g_co2e double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS operational_market_g_co2e double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS operational_market_low_g_co2e double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS operational_market_high_g_co2e double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS embodied_g_co2e double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS embodied_low_g_co2e double precision[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS embodied_high_g_co2e double precision[] NOT NULL DEFAULT '{}';
ALTER TABLE emission_fact_segments
    ALTER COLUMN it_energy_kwh SET COMPRESSION lz4,
    ALTER COLUMN operational_location_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN operational_location_low_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN operational_location_high_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN operational_market_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN operational_market_low_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN operational_market_high_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN embodied_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN embodied_low_g_co2e SET COMPRESSION lz4,
    ALTER COLUMN embodied_high_g_co2e SET COMPRESSION lz4;

-- Readers see every fact with its parts (the unsplit rule where none were
-- stored) and whether they were stored (parts_unsplit) through
-- emission_facts_all_parts: emission_facts_all's columns, then the parts.
-- (emission_facts_all itself stays as 0012 defines it, so that replaying
-- 0012 by hand still works: a view cannot lose columns.)
CREATE OR REPLACE VIEW emission_facts_all_parts AS
SELECT period_start, period_s, account_id, region, record_key, revision, resource_id, resource_type, service,
       team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e,
       methodology_version, factor_source, factor_vintage, agent_id, batch_sequence,
       COALESCE(it_energy_kwh, energy_kwh) AS it_energy_kwh, COALESCE(operational_location_g_co2e, location_g_co2e) AS operational_location_g_co2e, COALESCE(operational_location_low_g_co2e, low_g_co2e) AS operational_location_low_g_co2e, COALESCE(operational_location_high_g_co2e, high_g_co2e) AS operational_location_high_g_co2e, COALESCE(operational_market_g_co2e, market_g_co2e) AS operational_market_g_co2e, COALESCE(operational_market_low_g_co2e, market_g_co2e) AS operational_market_low_g_co2e, COALESCE(operational_market_high_g_co2e, market_g_co2e) AS operational_market_high_g_co2e, COALESCE(embodied_g_co2e, 0) AS embodied_g_co2e, COALESCE(embodied_low_g_co2e, 0) AS embodied_low_g_co2e, COALESCE(embodied_high_g_co2e, 0) AS embodied_high_g_co2e,
       operational_location_g_co2e IS NULL AS parts_unsplit
FROM emission_facts
UNION ALL
SELECT s.period_start, u.period_s, s.account_id, s.region, u.record_key, u.revision, u.resource_id,
       u.resource_type, u.service, u.team, u.quality, u.energy_kwh, u.location_g_co2e, u.market_g_co2e,
       u.low_g_co2e, u.high_g_co2e, u.methodology_version, u.factor_source, u.factor_vintage,
       s.agent_id, s.batch_sequence,
       COALESCE(u.it_energy_kwh, u.energy_kwh) AS it_energy_kwh, COALESCE(u.operational_location_g_co2e, u.location_g_co2e) AS operational_location_g_co2e, COALESCE(u.operational_location_low_g_co2e, u.low_g_co2e) AS operational_location_low_g_co2e, COALESCE(u.operational_location_high_g_co2e, u.high_g_co2e) AS operational_location_high_g_co2e, COALESCE(u.operational_market_g_co2e, u.market_g_co2e) AS operational_market_g_co2e, COALESCE(u.operational_market_low_g_co2e, u.market_g_co2e) AS operational_market_low_g_co2e, COALESCE(u.operational_market_high_g_co2e, u.market_g_co2e) AS operational_market_high_g_co2e, COALESCE(u.embodied_g_co2e, 0) AS embodied_g_co2e, COALESCE(u.embodied_low_g_co2e, 0) AS embodied_low_g_co2e, COALESCE(u.embodied_high_g_co2e, 0) AS embodied_high_g_co2e,
       u.operational_location_g_co2e IS NULL AS parts_unsplit
FROM emission_fact_segments s
CROSS JOIN LATERAL unnest(s.period_s, s.record_keys, s.revisions, s.resource_ids, s.resource_types, s.services,
                          s.teams, s.qualities, s.energy_kwh, s.location_g_co2e, s.market_g_co2e, s.low_g_co2e, s.high_g_co2e, s.it_energy_kwh, s.operational_location_g_co2e, s.operational_location_low_g_co2e, s.operational_location_high_g_co2e, s.operational_market_g_co2e, s.operational_market_low_g_co2e, s.operational_market_high_g_co2e, s.embodied_g_co2e, s.embodied_low_g_co2e, s.embodied_high_g_co2e,
                          s.methodology_versions, s.factor_sources, s.factor_vintages)
    WITH ORDINALITY AS u(period_s, record_key, revision, resource_id, resource_type, service, team, quality,
                         energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e,
                         methodology_version, factor_source, factor_vintage, ord)
WHERE u.ord::integer <> ALL (s.superseded);

-- 2. Native rollups (and the pending tables of both paths): parts moved
-- forward by the unsplit rule.
DO $native$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('rollup_5m')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'rollup_5m' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE rollup_5m
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE rollup_5m SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('rollup_hourly')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'rollup_hourly' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE rollup_hourly
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE rollup_hourly SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('rollup_daily')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'rollup_daily' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE rollup_daily
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE rollup_daily SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('rollup_monthly')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'rollup_monthly' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE rollup_monthly
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE rollup_monthly SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('org_rollup_5m')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'org_rollup_5m' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE org_rollup_5m
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE org_rollup_5m SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('org_rollup_hourly')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'org_rollup_hourly' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE org_rollup_hourly
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE org_rollup_hourly SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('org_rollup_daily')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'org_rollup_daily' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE org_rollup_daily
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE org_rollup_daily SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('org_rollup_monthly')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'org_rollup_monthly' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE org_rollup_monthly
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE org_rollup_monthly SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('org_team_rollup_daily')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'org_team_rollup_daily' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE org_team_rollup_daily
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE org_team_rollup_daily SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('org_team_rollup_monthly')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'org_team_rollup_monthly' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE org_team_rollup_monthly
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE org_team_rollup_monthly SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('org_rollup_pending')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'org_rollup_pending' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE org_rollup_pending
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE org_rollup_pending SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('org_rollup_pending_rejected')) IN ('r', 'p')
       AND NOT EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'org_rollup_pending_rejected' AND column_name = 'it_energy_kwh') THEN
        ALTER TABLE org_rollup_pending_rejected
            ADD COLUMN it_energy_kwh double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_location_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN operational_market_high_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_low_g_co2e double precision NOT NULL DEFAULT 0,
            ADD COLUMN embodied_high_g_co2e double precision NOT NULL DEFAULT 0;
        UPDATE org_rollup_pending_rejected SET it_energy_kwh = energy_kwh, operational_location_g_co2e = location_g_co2e, operational_location_low_g_co2e = low_g_co2e, operational_location_high_g_co2e = high_g_co2e, operational_market_g_co2e = market_g_co2e, operational_market_low_g_co2e = market_g_co2e, operational_market_high_g_co2e = market_g_co2e;
    END IF;
END
$native$;

-- 3. TimescaleDB path: the continuous aggregates and the views over them,
-- rebuilt with the parts.
DO $timescale$
DECLARE
    has_facts boolean;
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'timescaledb' THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'rollup_5m' AND column_name = 'it_energy_kwh') THEN
        RETURN;
    END IF;
    has_facts := EXISTS (SELECT 1 FROM emission_facts);
    DROP VIEW IF EXISTS org_team_rollup_daily, org_team_rollup_monthly;
    DROP VIEW IF EXISTS org_rollup_5m, org_rollup_hourly, org_rollup_daily, org_rollup_monthly;
    -- A refresh job of the old aggregates running meanwhile (their policies
    -- start at once) can make the drop fail with "tuple concurrently
    -- deleted" (XX000) while both delete the same invalidation-log rows:
    -- retried, policies removed first so no new job starts.
    FOR attempt IN 1..100 LOOP
        BEGIN
            PERFORM remove_continuous_aggregate_policy(v, if_exists => true)
            FROM unnest(ARRAY['rollup_5m', 'rollup_hourly', 'rollup_daily', 'rollup_monthly']) AS v;
            PERFORM remove_retention_policy(v, if_exists => true)
            FROM unnest(ARRAY['rollup_5m', 'rollup_hourly', 'rollup_daily', 'rollup_monthly']) AS v;
            IF has_facts THEN
                ALTER MATERIALIZED VIEW rollup_monthly RENAME TO rollup_monthly_pre0022;
                ALTER MATERIALIZED VIEW rollup_daily RENAME TO rollup_daily_pre0022;
                ALTER MATERIALIZED VIEW rollup_hourly RENAME TO rollup_hourly_pre0022;
                ALTER MATERIALIZED VIEW rollup_5m RENAME TO rollup_5m_pre0022;
            ELSE
                DROP MATERIALIZED VIEW rollup_monthly;
                DROP MATERIALIZED VIEW rollup_daily;
                DROP MATERIALIZED VIEW rollup_hourly;
                DROP MATERIALIZED VIEW rollup_5m;
            END IF;
            EXIT;
        EXCEPTION WHEN internal_error THEN
            IF attempt = 100 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
    EXECUTE $v$
        CREATE MATERIALIZED VIEW rollup_5m
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '5 minutes', period_start) AS bucket_start,
               account_id, region, service, resource_type, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(COALESCE(it_energy_kwh, energy_kwh)) AS it_energy_kwh, sum(COALESCE(operational_location_g_co2e, location_g_co2e)) AS operational_location_g_co2e, sum(COALESCE(operational_location_low_g_co2e, low_g_co2e)) AS operational_location_low_g_co2e, sum(COALESCE(operational_location_high_g_co2e, high_g_co2e)) AS operational_location_high_g_co2e, sum(COALESCE(operational_market_g_co2e, market_g_co2e)) AS operational_market_g_co2e, sum(COALESCE(operational_market_low_g_co2e, market_g_co2e)) AS operational_market_low_g_co2e, sum(COALESCE(operational_market_high_g_co2e, market_g_co2e)) AS operational_market_high_g_co2e, sum(COALESCE(embodied_g_co2e, 0)) AS embodied_g_co2e, sum(COALESCE(embodied_low_g_co2e, 0)) AS embodied_low_g_co2e, sum(COALESCE(embodied_high_g_co2e, 0)) AS embodied_high_g_co2e, count(*) AS fact_count
        FROM emission_facts
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        WITH NO DATA $v$;
    EXECUTE $v$
        CREATE MATERIALIZED VIEW rollup_hourly
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 hour', bucket_start) AS bucket_start,
               account_id, region, service, resource_type, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(it_energy_kwh) AS it_energy_kwh, sum(operational_location_g_co2e) AS operational_location_g_co2e, sum(operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(operational_market_g_co2e) AS operational_market_g_co2e, sum(operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(embodied_g_co2e) AS embodied_g_co2e, sum(embodied_low_g_co2e) AS embodied_low_g_co2e, sum(embodied_high_g_co2e) AS embodied_high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM rollup_5m
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        WITH NO DATA $v$;
    EXECUTE $v$
        CREATE MATERIALIZED VIEW rollup_daily
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 day', bucket_start) AS bucket_start,
               account_id, region, service, resource_type, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(it_energy_kwh) AS it_energy_kwh, sum(operational_location_g_co2e) AS operational_location_g_co2e, sum(operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(operational_market_g_co2e) AS operational_market_g_co2e, sum(operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(embodied_g_co2e) AS embodied_g_co2e, sum(embodied_low_g_co2e) AS embodied_low_g_co2e, sum(embodied_high_g_co2e) AS embodied_high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM rollup_hourly
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        WITH NO DATA $v$;
    EXECUTE $v$
        CREATE MATERIALIZED VIEW rollup_monthly
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(interval '1 month', bucket_start) AS bucket_start,
               account_id, region, service, resource_type, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(it_energy_kwh) AS it_energy_kwh, sum(operational_location_g_co2e) AS operational_location_g_co2e, sum(operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(operational_market_g_co2e) AS operational_market_g_co2e, sum(operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(embodied_g_co2e) AS embodied_g_co2e, sum(embodied_low_g_co2e) AS embodied_low_g_co2e, sum(embodied_high_g_co2e) AS embodied_high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM rollup_daily
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        WITH NO DATA $v$;
    -- The policies of 0002, 0004 and 0016.
    PERFORM add_continuous_aggregate_policy('rollup_5m', start_offset => interval '35 days',
        end_offset => interval '5 minutes', schedule_interval => interval '1 minute');
    PERFORM add_continuous_aggregate_policy('rollup_hourly', start_offset => interval '34 days',
        end_offset => interval '1 hour', schedule_interval => interval '5 minutes');
    PERFORM add_continuous_aggregate_policy('rollup_daily', start_offset => interval '12 months',
        end_offset => interval '1 day', schedule_interval => interval '1 hour');
    PERFORM add_continuous_aggregate_policy('rollup_monthly', start_offset => NULL,
        end_offset => interval '1 day', schedule_interval => interval '1 hour');
    PERFORM add_retention_policy('rollup_5m', interval '35 days');
    PERFORM add_retention_policy('rollup_hourly', interval '13 months');
    EXECUTE $v$ CREATE VIEW org_rollup_5m AS
        SELECT r.bucket_start, COALESCE(a.ou_path, '') AS ou_path, r.region, r.service, r.resource_type, r.team,
               r.quality, sum(r.energy_kwh) AS energy_kwh, sum(r.location_g_co2e) AS location_g_co2e, sum(r.market_g_co2e) AS market_g_co2e, sum(r.low_g_co2e) AS low_g_co2e, sum(r.high_g_co2e) AS high_g_co2e, sum(r.it_energy_kwh) AS it_energy_kwh, sum(r.operational_location_g_co2e) AS operational_location_g_co2e, sum(r.operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(r.operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(r.operational_market_g_co2e) AS operational_market_g_co2e, sum(r.operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(r.operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(r.embodied_g_co2e) AS embodied_g_co2e, sum(r.embodied_low_g_co2e) AS embodied_low_g_co2e, sum(r.embodied_high_g_co2e) AS embodied_high_g_co2e, sum(r.fact_count)::bigint AS fact_count
        FROM rollup_5m r LEFT JOIN accounts a ON a.account_id = r.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7 $v$;
    EXECUTE $v$ CREATE VIEW org_rollup_hourly AS
        SELECT r.bucket_start, COALESCE(a.ou_path, '') AS ou_path, r.region, r.service, r.resource_type, r.team,
               r.quality, sum(r.energy_kwh) AS energy_kwh, sum(r.location_g_co2e) AS location_g_co2e, sum(r.market_g_co2e) AS market_g_co2e, sum(r.low_g_co2e) AS low_g_co2e, sum(r.high_g_co2e) AS high_g_co2e, sum(r.it_energy_kwh) AS it_energy_kwh, sum(r.operational_location_g_co2e) AS operational_location_g_co2e, sum(r.operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(r.operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(r.operational_market_g_co2e) AS operational_market_g_co2e, sum(r.operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(r.operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(r.embodied_g_co2e) AS embodied_g_co2e, sum(r.embodied_low_g_co2e) AS embodied_low_g_co2e, sum(r.embodied_high_g_co2e) AS embodied_high_g_co2e, sum(r.fact_count)::bigint AS fact_count
        FROM rollup_hourly r LEFT JOIN accounts a ON a.account_id = r.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7 $v$;
    EXECUTE $v$ CREATE VIEW org_rollup_daily AS
        SELECT r.bucket_start, COALESCE(a.ou_path, '') AS ou_path, r.region, r.service, r.resource_type, r.team,
               r.quality, sum(r.energy_kwh) AS energy_kwh, sum(r.location_g_co2e) AS location_g_co2e, sum(r.market_g_co2e) AS market_g_co2e, sum(r.low_g_co2e) AS low_g_co2e, sum(r.high_g_co2e) AS high_g_co2e, sum(r.it_energy_kwh) AS it_energy_kwh, sum(r.operational_location_g_co2e) AS operational_location_g_co2e, sum(r.operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(r.operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(r.operational_market_g_co2e) AS operational_market_g_co2e, sum(r.operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(r.operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(r.embodied_g_co2e) AS embodied_g_co2e, sum(r.embodied_low_g_co2e) AS embodied_low_g_co2e, sum(r.embodied_high_g_co2e) AS embodied_high_g_co2e, sum(r.fact_count)::bigint AS fact_count
        FROM rollup_daily r LEFT JOIN accounts a ON a.account_id = r.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7 $v$;
    EXECUTE $v$ CREATE VIEW org_rollup_monthly AS
        SELECT r.bucket_start, COALESCE(a.ou_path, '') AS ou_path, r.region, r.service, r.resource_type, r.team,
               r.quality, sum(r.energy_kwh) AS energy_kwh, sum(r.location_g_co2e) AS location_g_co2e, sum(r.market_g_co2e) AS market_g_co2e, sum(r.low_g_co2e) AS low_g_co2e, sum(r.high_g_co2e) AS high_g_co2e, sum(r.it_energy_kwh) AS it_energy_kwh, sum(r.operational_location_g_co2e) AS operational_location_g_co2e, sum(r.operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(r.operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(r.operational_market_g_co2e) AS operational_market_g_co2e, sum(r.operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(r.operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(r.embodied_g_co2e) AS embodied_g_co2e, sum(r.embodied_low_g_co2e) AS embodied_low_g_co2e, sum(r.embodied_high_g_co2e) AS embodied_high_g_co2e, sum(r.fact_count)::bigint AS fact_count
        FROM rollup_monthly r LEFT JOIN accounts a ON a.account_id = r.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7 $v$;
    EXECUTE $v$ CREATE VIEW org_team_rollup_daily AS
        SELECT bucket_start, team, quality, sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(it_energy_kwh) AS it_energy_kwh, sum(operational_location_g_co2e) AS operational_location_g_co2e, sum(operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(operational_market_g_co2e) AS operational_market_g_co2e, sum(operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(embodied_g_co2e) AS embodied_g_co2e, sum(embodied_low_g_co2e) AS embodied_low_g_co2e, sum(embodied_high_g_co2e) AS embodied_high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM org_rollup_daily GROUP BY 1, 2, 3 $v$;
    EXECUTE $v$ CREATE VIEW org_team_rollup_monthly AS
        SELECT bucket_start, team, quality, sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(it_energy_kwh) AS it_energy_kwh, sum(operational_location_g_co2e) AS operational_location_g_co2e, sum(operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(operational_market_g_co2e) AS operational_market_g_co2e, sum(operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(embodied_g_co2e) AS embodied_g_co2e, sum(embodied_low_g_co2e) AS embodied_low_g_co2e, sum(embodied_high_g_co2e) AS embodied_high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM org_rollup_monthly GROUP BY 1, 2, 3 $v$;
    -- Rebuild from the facts through the late-data refresh.
    INSERT INTO timescale_refresh_pending (day_start)
    SELECT DISTINCT date_bin(interval '1 day', period_start, timestamptz 'epoch') FROM emission_facts
    ORDER BY 1;
END
$timescale$;

-- 4. The functions that move figures between rollups, with every measure.

-- Same contract as in 0011.
CREATE OR REPLACE FUNCTION canopy_drain_org_rollups()
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    moved  bigint;
    days   timestamptz[];
BEGIN
    IF (SELECT storage_mode FROM canopy_settings) <> 'native' THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('canopy_org_rollups', 0));
    SELECT array_agg(DISTINCT date_bin(interval '1 day', bucket_start, timestamptz 'epoch')) INTO days
    FROM org_rollup_pending;
    IF days IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM canopy_ensure_org_partitions(days);
    WITH d AS (
        DELETE FROM org_rollup_pending RETURNING *
    ),
    g AS (
        SELECT d.bucket_start, COALESCE(a.ou_path, '') AS ou_path, d.region, d.service, d.resource_type, d.team,
               d.quality, sum(d.energy_kwh) AS energy_kwh, sum(d.location_g_co2e) AS location_g_co2e, sum(d.market_g_co2e) AS market_g_co2e, sum(d.low_g_co2e) AS low_g_co2e, sum(d.high_g_co2e) AS high_g_co2e, sum(d.it_energy_kwh) AS it_energy_kwh, sum(d.operational_location_g_co2e) AS operational_location_g_co2e, sum(d.operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(d.operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(d.operational_market_g_co2e) AS operational_market_g_co2e, sum(d.operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(d.operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(d.embodied_g_co2e) AS embodied_g_co2e, sum(d.embodied_low_g_co2e) AS embodied_low_g_co2e, sum(d.embodied_high_g_co2e) AS embodied_high_g_co2e, sum(d.fact_count)::bigint AS fact_count, count(*) AS n
        FROM d LEFT JOIN accounts a ON a.account_id = d.account_id
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    ),
    r5 AS (
        INSERT INTO org_rollup_5m AS t (bucket_start, ou_path, region, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count)
        SELECT bucket_start, ou_path, region, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count FROM g
        ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
                energy_kwh = t.energy_kwh + excluded.energy_kwh,
                location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
                market_g_co2e = t.market_g_co2e + excluded.market_g_co2e,
                low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
                high_g_co2e = t.high_g_co2e + excluded.high_g_co2e,
                it_energy_kwh = t.it_energy_kwh + excluded.it_energy_kwh,
                operational_location_g_co2e = t.operational_location_g_co2e + excluded.operational_location_g_co2e,
                operational_location_low_g_co2e = t.operational_location_low_g_co2e + excluded.operational_location_low_g_co2e,
                operational_location_high_g_co2e = t.operational_location_high_g_co2e + excluded.operational_location_high_g_co2e,
                operational_market_g_co2e = t.operational_market_g_co2e + excluded.operational_market_g_co2e,
                operational_market_low_g_co2e = t.operational_market_low_g_co2e + excluded.operational_market_low_g_co2e,
                operational_market_high_g_co2e = t.operational_market_high_g_co2e + excluded.operational_market_high_g_co2e,
                embodied_g_co2e = t.embodied_g_co2e + excluded.embodied_g_co2e,
                embodied_low_g_co2e = t.embodied_low_g_co2e + excluded.embodied_low_g_co2e,
                embodied_high_g_co2e = t.embodied_high_g_co2e + excluded.embodied_high_g_co2e,
                fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    ),
    rh AS (
        INSERT INTO org_rollup_hourly AS t (bucket_start, ou_path, region, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count)
        SELECT date_bin(interval '1 hour', bucket_start, timestamptz 'epoch'), ou_path, region, service, resource_type, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e), sum(low_g_co2e), sum(high_g_co2e), sum(it_energy_kwh), sum(operational_location_g_co2e), sum(operational_location_low_g_co2e), sum(operational_location_high_g_co2e), sum(operational_market_g_co2e), sum(operational_market_low_g_co2e), sum(operational_market_high_g_co2e), sum(embodied_g_co2e), sum(embodied_low_g_co2e), sum(embodied_high_g_co2e), sum(fact_count)
        FROM g GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
                energy_kwh = t.energy_kwh + excluded.energy_kwh,
                location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
                market_g_co2e = t.market_g_co2e + excluded.market_g_co2e,
                low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
                high_g_co2e = t.high_g_co2e + excluded.high_g_co2e,
                it_energy_kwh = t.it_energy_kwh + excluded.it_energy_kwh,
                operational_location_g_co2e = t.operational_location_g_co2e + excluded.operational_location_g_co2e,
                operational_location_low_g_co2e = t.operational_location_low_g_co2e + excluded.operational_location_low_g_co2e,
                operational_location_high_g_co2e = t.operational_location_high_g_co2e + excluded.operational_location_high_g_co2e,
                operational_market_g_co2e = t.operational_market_g_co2e + excluded.operational_market_g_co2e,
                operational_market_low_g_co2e = t.operational_market_low_g_co2e + excluded.operational_market_low_g_co2e,
                operational_market_high_g_co2e = t.operational_market_high_g_co2e + excluded.operational_market_high_g_co2e,
                embodied_g_co2e = t.embodied_g_co2e + excluded.embodied_g_co2e,
                embodied_low_g_co2e = t.embodied_low_g_co2e + excluded.embodied_low_g_co2e,
                embodied_high_g_co2e = t.embodied_high_g_co2e + excluded.embodied_high_g_co2e,
                fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    ),
    rd AS (
        INSERT INTO org_rollup_daily AS t (bucket_start, ou_path, region, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count)
        SELECT date_bin(interval '1 day', bucket_start, timestamptz 'epoch'), ou_path, region, service, resource_type, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e), sum(low_g_co2e), sum(high_g_co2e), sum(it_energy_kwh), sum(operational_location_g_co2e), sum(operational_location_low_g_co2e), sum(operational_location_high_g_co2e), sum(operational_market_g_co2e), sum(operational_market_low_g_co2e), sum(operational_market_high_g_co2e), sum(embodied_g_co2e), sum(embodied_low_g_co2e), sum(embodied_high_g_co2e), sum(fact_count)
        FROM g GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
                energy_kwh = t.energy_kwh + excluded.energy_kwh,
                location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
                market_g_co2e = t.market_g_co2e + excluded.market_g_co2e,
                low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
                high_g_co2e = t.high_g_co2e + excluded.high_g_co2e,
                it_energy_kwh = t.it_energy_kwh + excluded.it_energy_kwh,
                operational_location_g_co2e = t.operational_location_g_co2e + excluded.operational_location_g_co2e,
                operational_location_low_g_co2e = t.operational_location_low_g_co2e + excluded.operational_location_low_g_co2e,
                operational_location_high_g_co2e = t.operational_location_high_g_co2e + excluded.operational_location_high_g_co2e,
                operational_market_g_co2e = t.operational_market_g_co2e + excluded.operational_market_g_co2e,
                operational_market_low_g_co2e = t.operational_market_low_g_co2e + excluded.operational_market_low_g_co2e,
                operational_market_high_g_co2e = t.operational_market_high_g_co2e + excluded.operational_market_high_g_co2e,
                embodied_g_co2e = t.embodied_g_co2e + excluded.embodied_g_co2e,
                embodied_low_g_co2e = t.embodied_low_g_co2e + excluded.embodied_low_g_co2e,
                embodied_high_g_co2e = t.embodied_high_g_co2e + excluded.embodied_high_g_co2e,
                fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    ),
    rm AS (
        INSERT INTO org_rollup_monthly AS t (bucket_start, ou_path, region, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count)
        SELECT date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', ou_path, region, service, resource_type, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e), sum(low_g_co2e), sum(high_g_co2e), sum(it_energy_kwh), sum(operational_location_g_co2e), sum(operational_location_low_g_co2e), sum(operational_location_high_g_co2e), sum(operational_market_g_co2e), sum(operational_market_low_g_co2e), sum(operational_market_high_g_co2e), sum(embodied_g_co2e), sum(embodied_low_g_co2e), sum(embodied_high_g_co2e), sum(fact_count)
        FROM g GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
                energy_kwh = t.energy_kwh + excluded.energy_kwh,
                location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
                market_g_co2e = t.market_g_co2e + excluded.market_g_co2e,
                low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
                high_g_co2e = t.high_g_co2e + excluded.high_g_co2e,
                it_energy_kwh = t.it_energy_kwh + excluded.it_energy_kwh,
                operational_location_g_co2e = t.operational_location_g_co2e + excluded.operational_location_g_co2e,
                operational_location_low_g_co2e = t.operational_location_low_g_co2e + excluded.operational_location_low_g_co2e,
                operational_location_high_g_co2e = t.operational_location_high_g_co2e + excluded.operational_location_high_g_co2e,
                operational_market_g_co2e = t.operational_market_g_co2e + excluded.operational_market_g_co2e,
                operational_market_low_g_co2e = t.operational_market_low_g_co2e + excluded.operational_market_low_g_co2e,
                operational_market_high_g_co2e = t.operational_market_high_g_co2e + excluded.operational_market_high_g_co2e,
                embodied_g_co2e = t.embodied_g_co2e + excluded.embodied_g_co2e,
                embodied_low_g_co2e = t.embodied_low_g_co2e + excluded.embodied_low_g_co2e,
                embodied_high_g_co2e = t.embodied_high_g_co2e + excluded.embodied_high_g_co2e,
                fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    ),
    tg AS (
        SELECT date_bin(interval '1 day', bucket_start, timestamptz 'epoch') AS day, team, quality,
               sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(it_energy_kwh) AS it_energy_kwh, sum(operational_location_g_co2e) AS operational_location_g_co2e, sum(operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(operational_market_g_co2e) AS operational_market_g_co2e, sum(operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(embodied_g_co2e) AS embodied_g_co2e, sum(embodied_low_g_co2e) AS embodied_low_g_co2e, sum(embodied_high_g_co2e) AS embodied_high_g_co2e, sum(fact_count)::bigint AS fact_count
        FROM g GROUP BY 1, 2, 3
    ),
    td AS (
        INSERT INTO org_team_rollup_daily AS t (bucket_start, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count)
        SELECT day, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count
        FROM tg ORDER BY 1, 2, 3
        ON CONFLICT (bucket_start, team, quality) DO UPDATE SET
                energy_kwh = t.energy_kwh + excluded.energy_kwh,
                location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
                market_g_co2e = t.market_g_co2e + excluded.market_g_co2e,
                low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
                high_g_co2e = t.high_g_co2e + excluded.high_g_co2e,
                it_energy_kwh = t.it_energy_kwh + excluded.it_energy_kwh,
                operational_location_g_co2e = t.operational_location_g_co2e + excluded.operational_location_g_co2e,
                operational_location_low_g_co2e = t.operational_location_low_g_co2e + excluded.operational_location_low_g_co2e,
                operational_location_high_g_co2e = t.operational_location_high_g_co2e + excluded.operational_location_high_g_co2e,
                operational_market_g_co2e = t.operational_market_g_co2e + excluded.operational_market_g_co2e,
                operational_market_low_g_co2e = t.operational_market_low_g_co2e + excluded.operational_market_low_g_co2e,
                operational_market_high_g_co2e = t.operational_market_high_g_co2e + excluded.operational_market_high_g_co2e,
                embodied_g_co2e = t.embodied_g_co2e + excluded.embodied_g_co2e,
                embodied_low_g_co2e = t.embodied_low_g_co2e + excluded.embodied_low_g_co2e,
                embodied_high_g_co2e = t.embodied_high_g_co2e + excluded.embodied_high_g_co2e,
                fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    ),
    tm AS (
        INSERT INTO org_team_rollup_monthly AS t (bucket_start, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count)
        SELECT date_trunc('month', day AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e), sum(low_g_co2e), sum(high_g_co2e), sum(it_energy_kwh), sum(operational_location_g_co2e), sum(operational_location_low_g_co2e), sum(operational_location_high_g_co2e), sum(operational_market_g_co2e), sum(operational_market_low_g_co2e), sum(operational_market_high_g_co2e), sum(embodied_g_co2e), sum(embodied_low_g_co2e), sum(embodied_high_g_co2e),
               sum(fact_count)
        FROM tg GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (bucket_start, team, quality) DO UPDATE SET
                energy_kwh = t.energy_kwh + excluded.energy_kwh,
                location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
                market_g_co2e = t.market_g_co2e + excluded.market_g_co2e,
                low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
                high_g_co2e = t.high_g_co2e + excluded.high_g_co2e,
                it_energy_kwh = t.it_energy_kwh + excluded.it_energy_kwh,
                operational_location_g_co2e = t.operational_location_g_co2e + excluded.operational_location_g_co2e,
                operational_location_low_g_co2e = t.operational_location_low_g_co2e + excluded.operational_location_low_g_co2e,
                operational_location_high_g_co2e = t.operational_location_high_g_co2e + excluded.operational_location_high_g_co2e,
                operational_market_g_co2e = t.operational_market_g_co2e + excluded.operational_market_g_co2e,
                operational_market_low_g_co2e = t.operational_market_low_g_co2e + excluded.operational_market_low_g_co2e,
                operational_market_high_g_co2e = t.operational_market_high_g_co2e + excluded.operational_market_high_g_co2e,
                embodied_g_co2e = t.embodied_g_co2e + excluded.embodied_g_co2e,
                embodied_low_g_co2e = t.embodied_low_g_co2e + excluded.embodied_low_g_co2e,
                embodied_high_g_co2e = t.embodied_high_g_co2e + excluded.embodied_high_g_co2e,
                fact_count = t.fact_count + excluded.fact_count
        RETURNING 1
    )
    -- Data-modifying CTEs run to completion whether or not they are read.
    SELECT COALESCE(sum(n), 0) INTO moved FROM g;
    RETURN moved;
END
$fn$;

-- Same contract as in 0006.
CREATE OR REPLACE FUNCTION canopy_move_org_rollups(account text, from_ou text, to_ou text)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    level   record;
    days    timestamptz[];
BEGIN
    SELECT array_agg(DISTINCT d) INTO days FROM (
        SELECT date_bin(interval '1 day', bucket_start, timestamptz 'epoch') AS d FROM rollup_5m WHERE account_id = account
        UNION SELECT date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM rollup_hourly
              WHERE account_id = account
    ) x;
    IF days IS NOT NULL THEN
        PERFORM canopy_ensure_org_partitions(days);
    END IF;
    FOR level IN
        SELECT * FROM (VALUES
            ('org_rollup_5m', 'rollup_5m', $b$bucket_start$b$),
            ('org_rollup_hourly', 'rollup_hourly', $b$date_bin(interval '1 hour', bucket_start, timestamptz 'epoch')$b$),
            ('org_rollup_daily', 'rollup_daily', $b$date_bin(interval '1 day', bucket_start, timestamptz 'epoch')$b$),
            ('org_rollup_monthly', 'rollup_monthly', $b$date_trunc('month', bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'$b$)
        ) v(org_table, account_table, pending_bucket)
    LOOP
        EXECUTE format($q$
            WITH held AS (
                SELECT bucket_start, region, service, resource_type, team, quality,
                       sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) AS location_g_co2e, sum(market_g_co2e) AS market_g_co2e, sum(low_g_co2e) AS low_g_co2e, sum(high_g_co2e) AS high_g_co2e, sum(it_energy_kwh) AS it_energy_kwh, sum(operational_location_g_co2e) AS operational_location_g_co2e, sum(operational_location_low_g_co2e) AS operational_location_low_g_co2e, sum(operational_location_high_g_co2e) AS operational_location_high_g_co2e, sum(operational_market_g_co2e) AS operational_market_g_co2e, sum(operational_market_low_g_co2e) AS operational_market_low_g_co2e, sum(operational_market_high_g_co2e) AS operational_market_high_g_co2e, sum(embodied_g_co2e) AS embodied_g_co2e, sum(embodied_low_g_co2e) AS embodied_low_g_co2e, sum(embodied_high_g_co2e) AS embodied_high_g_co2e, sum(fact_count)::bigint AS fact_count
                FROM (
                    SELECT bucket_start, region, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count
                    FROM %2$I WHERE account_id = $1
                    UNION ALL
                    SELECT %3$s, region, service, resource_type, team, quality, -energy_kwh, -location_g_co2e, -market_g_co2e, -low_g_co2e, -high_g_co2e, -it_energy_kwh, -operational_location_g_co2e, -operational_location_low_g_co2e, -operational_location_high_g_co2e, -operational_market_g_co2e, -operational_market_low_g_co2e, -operational_market_high_g_co2e, -embodied_g_co2e, -embodied_low_g_co2e, -embodied_high_g_co2e, -fact_count
                    FROM org_rollup_pending WHERE account_id = $1
                ) x
                GROUP BY 1, 2, 3, 4, 5, 6
            )
            INSERT INTO %1$I AS t (bucket_start, ou_path, region, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count)
            SELECT bucket_start, ou, region, service, resource_type, team, quality,
                   s * energy_kwh, s * location_g_co2e, s * market_g_co2e, s * low_g_co2e, s * high_g_co2e, s * it_energy_kwh, s * operational_location_g_co2e, s * operational_location_low_g_co2e, s * operational_location_high_g_co2e, s * operational_market_g_co2e, s * operational_market_low_g_co2e, s * operational_market_high_g_co2e, s * embodied_g_co2e, s * embodied_low_g_co2e, s * embodied_high_g_co2e, s::bigint * fact_count
            FROM held, (VALUES ($2, -1), ($3, 1)) m(ou, s)
            ORDER BY 1, 2, 3, 4, 5, 6, 7
            ON CONFLICT (bucket_start, ou_path, region, service, resource_type, team, quality) DO UPDATE SET
                energy_kwh = t.energy_kwh + excluded.energy_kwh,
                location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
                market_g_co2e = t.market_g_co2e + excluded.market_g_co2e,
                low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
                high_g_co2e = t.high_g_co2e + excluded.high_g_co2e,
                it_energy_kwh = t.it_energy_kwh + excluded.it_energy_kwh,
                operational_location_g_co2e = t.operational_location_g_co2e + excluded.operational_location_g_co2e,
                operational_location_low_g_co2e = t.operational_location_low_g_co2e + excluded.operational_location_low_g_co2e,
                operational_location_high_g_co2e = t.operational_location_high_g_co2e + excluded.operational_location_high_g_co2e,
                operational_market_g_co2e = t.operational_market_g_co2e + excluded.operational_market_g_co2e,
                operational_market_low_g_co2e = t.operational_market_low_g_co2e + excluded.operational_market_low_g_co2e,
                operational_market_high_g_co2e = t.operational_market_high_g_co2e + excluded.operational_market_high_g_co2e,
                embodied_g_co2e = t.embodied_g_co2e + excluded.embodied_g_co2e,
                embodied_low_g_co2e = t.embodied_low_g_co2e + excluded.embodied_low_g_co2e,
                embodied_high_g_co2e = t.embodied_high_g_co2e + excluded.embodied_high_g_co2e,
                fact_count = t.fact_count + excluded.fact_count
            $q$, level.org_table, level.account_table, level.pending_bucket)
        USING account, from_ou, to_ou;
    END LOOP;
END
$fn$;

-- Same contract as in 0013.
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
        SELECT s.period_start, s.account_id, s.region, s.segment_id, u.ord::int AS ord, u.service,
               u.resource_type, u.team, u.quality,
               u.energy_kwh AS energy_kwh, u.location_g_co2e AS location_g_co2e, u.market_g_co2e AS market_g_co2e, u.low_g_co2e AS low_g_co2e, u.high_g_co2e AS high_g_co2e, COALESCE(u.it_energy_kwh, u.energy_kwh) AS it_energy_kwh, COALESCE(u.operational_location_g_co2e, u.location_g_co2e) AS operational_location_g_co2e, COALESCE(u.operational_location_low_g_co2e, u.low_g_co2e) AS operational_location_low_g_co2e, COALESCE(u.operational_location_high_g_co2e, u.high_g_co2e) AS operational_location_high_g_co2e, COALESCE(u.operational_market_g_co2e, u.market_g_co2e) AS operational_market_g_co2e, COALESCE(u.operational_market_low_g_co2e, u.market_g_co2e) AS operational_market_low_g_co2e, COALESCE(u.operational_market_high_g_co2e, u.market_g_co2e) AS operational_market_high_g_co2e, COALESCE(u.embodied_g_co2e, 0) AS embodied_g_co2e, COALESCE(u.embodied_low_g_co2e, 0) AS embodied_low_g_co2e, COALESCE(u.embodied_high_g_co2e, 0) AS embodied_high_g_co2e
        FROM canopy_reconcile_scopes k
        JOIN emission_fact_segments s
          ON s.account_id = k.account_id AND s.region = k.region
         AND s.period_start >= k.hour_start AND s.period_start < k.hour_start + interval '1 hour'
        CROSS JOIN LATERAL unnest(s.period_s, s.record_keys, s.revisions, s.services, s.resource_types, s.teams,
                                  s.qualities, s.energy_kwh, s.location_g_co2e, s.market_g_co2e, s.low_g_co2e, s.high_g_co2e, s.it_energy_kwh, s.operational_location_g_co2e, s.operational_location_low_g_co2e, s.operational_location_high_g_co2e, s.operational_market_g_co2e, s.operational_market_low_g_co2e, s.operational_market_high_g_co2e, s.embodied_g_co2e, s.embodied_low_g_co2e, s.embodied_high_g_co2e) WITH ORDINALITY
            AS u(period_s, record_key, revision, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, ord)
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
        RETURNING f.period_start, f.account_id, f.region, f.service, f.resource_type, f.team, f.quality,
                  f.energy_kwh AS energy_kwh, f.location_g_co2e AS location_g_co2e, f.market_g_co2e AS market_g_co2e, f.low_g_co2e AS low_g_co2e, f.high_g_co2e AS high_g_co2e, COALESCE(f.it_energy_kwh, f.energy_kwh) AS it_energy_kwh, COALESCE(f.operational_location_g_co2e, f.location_g_co2e) AS operational_location_g_co2e, COALESCE(f.operational_location_low_g_co2e, f.low_g_co2e) AS operational_location_low_g_co2e, COALESCE(f.operational_location_high_g_co2e, f.high_g_co2e) AS operational_location_high_g_co2e, COALESCE(f.operational_market_g_co2e, f.market_g_co2e) AS operational_market_g_co2e, COALESCE(f.operational_market_low_g_co2e, f.market_g_co2e) AS operational_market_low_g_co2e, COALESCE(f.operational_market_high_g_co2e, f.market_g_co2e) AS operational_market_high_g_co2e, COALESCE(f.embodied_g_co2e, 0) AS embodied_g_co2e, COALESCE(f.embodied_low_g_co2e, 0) AS embodied_low_g_co2e, COALESCE(f.embodied_high_g_co2e, 0) AS embodied_high_g_co2e
    )
    SELECT period_start, account_id, region, service, resource_type, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e FROM pos
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


-- Same contract as in 0013.
CREATE OR REPLACE FUNCTION canopy_reconcile_add_delta(rollup text, bucket text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format(
        'INSERT INTO %I AS t (bucket_start, account_id, region, service, resource_type, team, quality,
                              energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e, embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e, fact_count)
         SELECT %s, account_id, region, service, resource_type, team, quality, sum(energy_kwh), sum(location_g_co2e), sum(market_g_co2e), sum(low_g_co2e), sum(high_g_co2e), sum(it_energy_kwh), sum(operational_location_g_co2e), sum(operational_location_low_g_co2e), sum(operational_location_high_g_co2e), sum(operational_market_g_co2e), sum(operational_market_low_g_co2e), sum(operational_market_high_g_co2e), sum(embodied_g_co2e), sum(embodied_low_g_co2e), sum(embodied_high_g_co2e), sum(fact_count)
         FROM canopy_reconcile_delta GROUP BY 1, 2, 3, 4, 5, 6, 7
         ON CONFLICT (bucket_start, account_id, region, service, resource_type, team, quality) DO UPDATE SET
             energy_kwh = t.energy_kwh + excluded.energy_kwh,
                location_g_co2e = t.location_g_co2e + excluded.location_g_co2e,
                market_g_co2e = t.market_g_co2e + excluded.market_g_co2e,
                low_g_co2e = t.low_g_co2e + excluded.low_g_co2e,
                high_g_co2e = t.high_g_co2e + excluded.high_g_co2e,
                it_energy_kwh = t.it_energy_kwh + excluded.it_energy_kwh,
                operational_location_g_co2e = t.operational_location_g_co2e + excluded.operational_location_g_co2e,
                operational_location_low_g_co2e = t.operational_location_low_g_co2e + excluded.operational_location_low_g_co2e,
                operational_location_high_g_co2e = t.operational_location_high_g_co2e + excluded.operational_location_high_g_co2e,
                operational_market_g_co2e = t.operational_market_g_co2e + excluded.operational_market_g_co2e,
                operational_market_low_g_co2e = t.operational_market_low_g_co2e + excluded.operational_market_low_g_co2e,
                operational_market_high_g_co2e = t.operational_market_high_g_co2e + excluded.operational_market_high_g_co2e,
                embodied_g_co2e = t.embodied_g_co2e + excluded.embodied_g_co2e,
                embodied_low_g_co2e = t.embodied_low_g_co2e + excluded.embodied_low_g_co2e,
                embodied_high_g_co2e = t.embodied_high_g_co2e + excluded.embodied_high_g_co2e,
             fact_count = t.fact_count + excluded.fact_count',
        rollup, bucket);
END
$fn$;

-- 5. Lineage per answer: the factor sets behind the stored figures, per
-- account and UTC month (a handful of rows per account and month). Ingest
-- adds the combinations of each batch's facts in the batch's transaction
-- (aggregator::lineage); every API answer lists the rows of its range and
-- account filter. Months stored before this file get the location factor's
-- lineage from the facts, market 'not-recorded' and parts
-- 'unsplit-before-0022' (see the top of this file).
CREATE TABLE IF NOT EXISTS factor_lineage_monthly (
    month_start              timestamptz NOT NULL,
    account_id               text NOT NULL,
    methodology_version      text NOT NULL,
    location_factor_source   text NOT NULL,
    location_factor_vintage  text NOT NULL,
    market_factor_source     text NOT NULL,
    market_factor_vintage    text NOT NULL,
    -- 'split' (parts as the agent sent them) or 'unsplit-before-0022'.
    parts                    text NOT NULL CHECK (parts IN ('split', 'unsplit-before-0022')),
    PRIMARY KEY (month_start, account_id, methodology_version, location_factor_source, location_factor_vintage,
                 market_factor_source, market_factor_vintage, parts)
);
INSERT INTO factor_lineage_monthly
SELECT DISTINCT date_trunc('month', period_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', account_id,
       methodology_version, factor_source, factor_vintage, 'not-recorded', 'not-recorded', 'unsplit-before-0022'
FROM emission_facts_all_parts WHERE parts_unsplit
ON CONFLICT DO NOTHING;
