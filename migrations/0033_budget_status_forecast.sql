-- Issue 17 §1: the budget list shows each budget's forecast. The evaluator
-- already asks the forecast source for every budget's period total (actual
-- so far plus the forecast to the period's end); it now stores the answer
-- with the rest of the round's status, NULL when the scope has no forecast.
ALTER TABLE budget_status
    ADD COLUMN IF NOT EXISTS forecast_g_co2e float8,
    ADD COLUMN IF NOT EXISTS forecast_lower80_g_co2e float8,
    ADD COLUMN IF NOT EXISTS forecast_upper80_g_co2e float8;
