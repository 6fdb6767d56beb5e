-- Canopy aggregator schema: carbon budgets, alerts and their delivery
-- (issue 17 sections 1 and 4; `aggregator::alerts`).
--
-- 1. `alert_routes`: named notification routes (PagerDuty, email, webhook)
--    with their rate limit and quiet hours.
-- 2. `budgets`: scope, period, basis, amount and thresholds of a carbon
--    budget, and the routes it notifies. At most one budget per scope,
--    basis and period family (month, quarter, annual): a second one would
--    overlap it.
-- 3. `budget_status`: each budget's burn at its last evaluation.
-- 4. `alerts`: one row per alert identity (`alert_key`), its state and the
--    highest level already notified; `alert_events` its history.
-- 5. `alert_outbox`: notifications decided by the evaluator, written in the
--    transaction that decides them, removed from the queue (`delivered_at`)
--    only when the receiver accepted them.
-- 6. `alert_silences`: silences with an expiry.
-- All times are timestamptz (UTC instants).

CREATE TABLE IF NOT EXISTS alert_routes (
    name                  text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    kind                  text NOT NULL CHECK (kind IN ('pagerduty', 'email', 'webhook')),
    -- pagerduty: {"routing_key"}; email: {"to": [..]}; webhook: {"url", "secret"}.
    config                jsonb NOT NULL,
    max_per_hour          integer CHECK (max_per_hour IS NULL OR max_per_hour > 0),
    quiet_start_hour_utc  smallint CHECK (quiet_start_hour_utc BETWEEN 0 AND 23),
    quiet_end_hour_utc    smallint CHECK (quiet_end_hour_utc BETWEEN 0 AND 23),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK ((quiet_start_hour_utc IS NULL) = (quiet_end_hour_utc IS NULL))
);

CREATE TABLE IF NOT EXISTS budgets (
    budget_id              bigserial PRIMARY KEY,
    name                   text NOT NULL CHECK (name <> ''),
    -- Scope: every NULL is "any"; all NULL is the whole organisation.
    scope_ou_id            text,
    scope_account_id       text CHECK (scope_account_id ~ '^[0-9]{12}$'),
    scope_team             text,
    scope_service          text,
    period                 text NOT NULL CHECK (period IN ('month', 'quarter', 'year', 'fiscal_year')),
    fiscal_start_month     smallint NOT NULL DEFAULT 1 CHECK (fiscal_start_month BETWEEN 1 AND 12),
    period_family          text GENERATED ALWAYS AS (
                               CASE WHEN period IN ('year', 'fiscal_year') THEN 'annual' ELSE period END
                           ) STORED,
    basis                  text NOT NULL CHECK (basis IN ('location', 'market', 'location_operational', 'market_operational')),
    amount_kg_co2e         double precision NOT NULL CHECK (amount_kg_co2e > 0 AND amount_kg_co2e < 1e15),
    thresholds_pct         double precision[] NOT NULL,
    forecast_overshoot     boolean NOT NULL DEFAULT true,
    -- Multi-window burn rate: alert when the last hour AND the last 24 hours
    -- both spend faster than these multiples of the even rate. NULL: off.
    burn_rate_1h_factor    double precision CHECK (burn_rate_1h_factor > 0),
    burn_rate_24h_factor   double precision CHECK (burn_rate_24h_factor > 0),
    routes                 text[] NOT NULL DEFAULT '{}',
    pagerduty_routing_key  text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS budgets_no_overlap ON budgets (
    coalesce(scope_ou_id, ''), coalesce(scope_account_id, ''), coalesce(scope_team, ''),
    coalesce(scope_service, ''), basis, period_family);

CREATE TABLE IF NOT EXISTS budget_status (
    budget_id        bigint PRIMARY KEY REFERENCES budgets (budget_id) ON DELETE CASCADE,
    evaluated_at     timestamptz NOT NULL,
    period_start     timestamptz NOT NULL,
    period_end       timestamptz NOT NULL,
    actual_g_co2e    double precision NOT NULL,
    burn_rate_1h     double precision NOT NULL,
    burn_rate_24h    double precision NOT NULL
);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id          bigserial PRIMARY KEY,
    -- Stable identity: budget/<id>/<kind>/<period start date>.
    alert_key         text NOT NULL UNIQUE,
    budget_id         bigint REFERENCES budgets (budget_id) ON DELETE SET NULL,
    kind              text NOT NULL CHECK (kind IN ('threshold', 'forecast_overshoot', 'burn_rate', 'anomaly')),
    status            text NOT NULL CHECK (status IN ('firing', 'resolved')),
    -- 0 = clear; for thresholds, 1 + the index of the highest crossed one.
    level             smallint NOT NULL CHECK (level >= 0),
    notified_level    smallint NOT NULL DEFAULT 0 CHECK (notified_level >= 0),
    severity          text NOT NULL CHECK (severity IN ('critical', 'error', 'warning', 'info')),
    summary           text NOT NULL,
    value_g_co2e      double precision NOT NULL,
    budget_g_co2e     double precision NOT NULL,
    period_start      timestamptz NOT NULL,
    fired_at          timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    resolved_at       timestamptz,
    acknowledged_at   timestamptz,
    acknowledged_by   text
);
CREATE INDEX IF NOT EXISTS alerts_firing ON alerts (alert_id) WHERE status = 'firing';

CREATE TABLE IF NOT EXISTS alert_events (
    event_id   bigserial PRIMARY KEY,
    alert_id   bigint NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    at         timestamptz NOT NULL DEFAULT now(),
    event      text NOT NULL CHECK (event IN ('fired', 'escalated', 'notified', 'acknowledged', 'resolved',
                                               'silenced', 'delivery_failed')),
    route      text,
    detail     text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_events_alert ON alert_events (alert_id, event_id);

CREATE TABLE IF NOT EXISTS alert_outbox (
    outbox_id     bigserial PRIMARY KEY,
    alert_id      bigint NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    route         text NOT NULL,
    action        text NOT NULL CHECK (action IN ('trigger', 'acknowledge', 'resolve')),
    -- What the notifier renders: facts of the alert at decision time.
    event         jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    delivered_at  timestamptz,
    -- Refused for good (the receiver rejected the event as invalid, or the
    -- route no longer exists); never retried.
    failed_at     timestamptz
);
CREATE INDEX IF NOT EXISTS alert_outbox_pending ON alert_outbox (route, outbox_id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE IF NOT EXISTS alert_silences (
    silence_id   bigserial PRIMARY KEY,
    -- Matchers: every non-NULL one must equal the alert's (at least one set).
    budget_id    bigint REFERENCES budgets (budget_id) ON DELETE CASCADE,
    team         text,
    account_id   text,
    kind         text CHECK (kind IN ('threshold', 'forecast_overshoot', 'burn_rate', 'anomaly')),
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    comment      text NOT NULL DEFAULT '',
    created_by   text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    CHECK (budget_id IS NOT NULL OR team IS NOT NULL OR account_id IS NOT NULL OR kind IS NOT NULL)
);
