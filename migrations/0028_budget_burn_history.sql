-- Canopy aggregator schema: the burn history of carbon budgets (issue 17
-- section 1, "history"; `aggregator::alerts::history`).
--
-- `budget_burn_history`: one row per budget and UTC day, upserted by every
-- evaluation round of that day in the round's transaction (the same one
-- that writes `budget_status`), so a day's row holds its last evaluation:
-- the actual gCO2e of the period to date, the burn rates, the period and
-- the budget's amount at that time, plus the day's highest burn rates and
-- how many rounds evaluated it. Bounded: at most (budgets x retention days)
-- rows, e.g. 50,000 budgets x 400 days = 20 million; the evaluator deletes
-- the days older than `--budget-history-retention-days` (default 400).
-- UTC days never straddle a period (every period starts at a UTC
-- midnight), so a day's row belongs to one period.

CREATE TABLE IF NOT EXISTS budget_burn_history (
    budget_id          bigint NOT NULL REFERENCES budgets (budget_id) ON DELETE CASCADE,
    -- The UTC calendar day of the evaluations.
    day_utc            date NOT NULL,
    evaluated_at       timestamptz NOT NULL,
    period_start       timestamptz NOT NULL,
    period_end         timestamptz NOT NULL,
    actual_g_co2e      double precision NOT NULL,
    budget_g_co2e      double precision NOT NULL CHECK (budget_g_co2e > 0),
    burn_rate_1h       double precision NOT NULL,
    burn_rate_24h      double precision NOT NULL,
    max_burn_rate_1h   double precision NOT NULL,
    max_burn_rate_24h  double precision NOT NULL,
    evaluations        integer NOT NULL DEFAULT 1 CHECK (evaluations > 0),
    PRIMARY KEY (budget_id, day_utc)
) WITH (fillfactor = 80);
-- Pruning by day.
CREATE INDEX IF NOT EXISTS budget_burn_history_day ON budget_burn_history (day_utc);
