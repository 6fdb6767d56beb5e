-- Reportable carbon accounting, part 2 (issue 14, section 2): factor sets
-- the aggregator owns, versioned. Written only by `canopy-aggregator
-- factors import-hourly|import-market` (aggregator::factors), one version
-- per import, in one transaction with everything it validated; never
-- changed afterwards (a new import is a new version; older versions are
-- kept for restatements). Ingest reads the newest version of each value.
--
-- factor_set_versions: one row per import: the set, its version (1, 2, ...
-- per set), when, from which files, how many values.
-- hourly_intensity: Electricity Maps hourly direct intensity per zone and
-- UTC hour (Scope 2 location-based).
-- market_factors: per AWS region and UTC calendar year, a supplier-specific
-- factor or a renewable-matching share with a residual mix (NULL residual:
-- the region's location factor), with the file's source and vintage.
-- The built-in annual location factors are not stored: they are compiled
-- into the emissions crate and versioned with it (their source and vintage
-- go with every fact, as before).
CREATE TABLE IF NOT EXISTS factor_set_versions (
    factor_set     text NOT NULL CHECK (factor_set IN ('location-hourly', 'market')),
    version        integer NOT NULL CHECK (version > 0),
    imported_at    timestamptz NOT NULL DEFAULT now(),
    files          text[] NOT NULL,
    values_count   bigint NOT NULL CHECK (values_count > 0),
    PRIMARY KEY (factor_set, version)
);

CREATE TABLE IF NOT EXISTS hourly_intensity (
    zone            text NOT NULL,
    hour_start      timestamptz NOT NULL,
    version         integer NOT NULL,
    g_co2e_per_kwh  double precision NOT NULL CHECK (g_co2e_per_kwh >= 0 AND g_co2e_per_kwh <= 2000),
    estimated       boolean NOT NULL,
    PRIMARY KEY (zone, hour_start, version)
);

CREATE TABLE IF NOT EXISTS market_factors (
    region                       text NOT NULL,
    year                         integer NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    version                      integer NOT NULL,
    supplier_g_co2e_per_kwh      double precision CHECK (supplier_g_co2e_per_kwh BETWEEN 0 AND 2000),
    renewable_share              double precision NOT NULL CHECK (renewable_share BETWEEN 0 AND 1),
    residual_mix_g_co2e_per_kwh  double precision CHECK (residual_mix_g_co2e_per_kwh BETWEEN 0 AND 2000),
    source                       text NOT NULL CHECK (source <> ''),
    vintage                      text NOT NULL CHECK (vintage <> ''),
    PRIMARY KEY (region, year, version)
);
