-- Canopy aggregator schema: stored daily forecasts (issue 17 section 2;
-- `aggregator::forecasting`), for Grafana and anyone reading SQL.
--
-- `forecast_points`: one row per (scope, basis, UTC day) of the latest
-- forecast of that scope: the point forecast and its 80 % and 95 %
-- intervals in gCO2e per day, the model that produced it and when. The
-- refresher replaces a scope's rows in one transaction (DELETE + INSERT),
-- so a reader sees either the previous forecast or the new one, never a
-- mix; rows of scopes no longer forecast are deleted at the end of each
-- refresh.
--
-- `scope_key` is the scope as text, fields in a fixed order and joined by
-- ';' (`org`, `ou=ou-abcd`, `account=123456789012`, `team=web`,
-- `service=AmazonEC2`, `account=123456789012;team=web`, ...); `basis` is a
-- budget basis name (`location`, `market`, `location_operational`,
-- `market_operational`). All times are timestamptz (UTC instants).

CREATE TABLE IF NOT EXISTS forecast_points (
    scope_key        text NOT NULL CHECK (scope_key <> ''),
    basis            text NOT NULL
        CHECK (basis IN ('location', 'market', 'location_operational', 'market_operational')),
    day              timestamptz NOT NULL
        CHECK (extract(epoch FROM day)::bigint % 86400 = 0),
    point_g_co2e     double precision NOT NULL,
    lower80_g_co2e   double precision NOT NULL,
    upper80_g_co2e   double precision NOT NULL,
    lower95_g_co2e   double precision NOT NULL,
    upper95_g_co2e   double precision NOT NULL,
    model            text NOT NULL,
    computed_at      timestamptz NOT NULL,
    PRIMARY KEY (scope_key, basis, day),
    CHECK (lower95_g_co2e <= lower80_g_co2e AND lower80_g_co2e <= point_g_co2e
           AND point_g_co2e <= upper80_g_co2e AND upper80_g_co2e <= upper95_g_co2e)
);

-- The end-of-refresh sweep of scopes no longer forecast.
CREATE INDEX IF NOT EXISTS forecast_points_computed_at ON forecast_points (computed_at);
