-- Billing truth, part 1 (issue 15, section 1): AWS Data Exports (CUR 2.0)
-- deliveries read from S3 by `canopy-aggregator billing sync`
-- (aggregator::billing), estimated with the emissions library's `canopy`
-- methodology and stored per UTC day x account x region x service x usage
-- type x resource id x team.
--
-- billing_deliveries: one row per ingested delivery, identified by its
-- manifest (export name, billing period, execution id). A delivery is
-- recorded in the same transaction that replaces its billing period's rows,
-- so a delivery read half-way leaves neither rows nor a record and the next
-- sync reads it again. `current` marks the delivery whose rows
-- billing_line_items holds for that export and period (a re-delivery of a
-- month replaces them; older deliveries stay as history).
--
-- billing_line_items: the aggregates. Energy and CO2e are NULL where the
-- methodology gives no estimate (the cost is still stored: the spend is
-- known, its footprint is not). The CO2e parts follow migration 0022's
-- split (location = operational location + embodied, market = operational
-- market + embodied, low/high bound the location total). Billing rows never
-- enter emission_facts or any rollup: which source is primary for a service
-- is decided elsewhere (issue 15, section 2).
CREATE TABLE IF NOT EXISTS billing_deliveries (
    export_name      text NOT NULL CHECK (export_name <> ''),
    billing_period   date NOT NULL CHECK (extract(day FROM billing_period) = 1),
    execution_id     text NOT NULL CHECK (execution_id <> ''),
    manifest_key     text NOT NULL,
    data_files       text[] NOT NULL,
    ingested_at      timestamptz NOT NULL DEFAULT now(),
    line_items_read  bigint NOT NULL CHECK (line_items_read >= 0),
    rows_stored      bigint NOT NULL CHECK (rows_stored >= 0),
    methodology      text NOT NULL,
    factor_lineage   text NOT NULL,
    current          boolean NOT NULL,
    PRIMARY KEY (export_name, billing_period, execution_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS billing_deliveries_current
    ON billing_deliveries (export_name, billing_period) WHERE current;

CREATE TABLE IF NOT EXISTS billing_line_items (
    export_name                      text NOT NULL,
    billing_period                   date NOT NULL,
    day                              date NOT NULL,
    account_id                       text NOT NULL,
    region                           text NOT NULL,
    service                          text NOT NULL,
    usage_type                       text NOT NULL,
    -- '' when the line item names no resource
    resource_id                      text NOT NULL,
    team                             text NOT NULL,
    execution_id                     text NOT NULL,
    line_items                       bigint NOT NULL CHECK (line_items > 0),
    unblended_cost                   double precision NOT NULL,
    net_amortized_cost               double precision NOT NULL,
    -- false: the methodology gave no estimate (energy and CO2e NULL)
    estimated                        boolean NOT NULL,
    energy_kwh                       double precision,
    it_energy_kwh                    double precision,
    location_g_co2e                  double precision,
    market_g_co2e                    double precision,
    low_g_co2e                       double precision,
    high_g_co2e                      double precision,
    operational_location_g_co2e      double precision,
    operational_location_low_g_co2e  double precision,
    operational_location_high_g_co2e double precision,
    operational_market_g_co2e        double precision,
    operational_market_low_g_co2e    double precision,
    operational_market_high_g_co2e   double precision,
    embodied_g_co2e                  double precision,
    embodied_low_g_co2e              double precision,
    embodied_high_g_co2e             double precision,
    PRIMARY KEY (export_name, billing_period, day, account_id, region, service, usage_type, resource_id, team),
    FOREIGN KEY (export_name, billing_period, execution_id)
        REFERENCES billing_deliveries (export_name, billing_period, execution_id)
);
CREATE INDEX IF NOT EXISTS billing_line_items_account_day ON billing_line_items (account_id, day);
CREATE INDEX IF NOT EXISTS billing_line_items_resource ON billing_line_items (resource_id) WHERE resource_id <> '';
