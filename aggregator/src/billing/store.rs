//! Writing one delivery: one transaction that replaces its billing
//! period's rows and records the delivery, so a delivery is either wholly
//! stored or not at all.

use sqlx::{PgPool, Postgres, Transaction};

use super::estimate::BillingRow;
use super::manifest::Manifest;

/// Rows per INSERT statement.
const INSERT_CHUNK: usize = 2_000;

/// What the delivery record keeps besides the manifest.
#[derive(Debug, Clone)]
pub struct DeliveryRecord<'a> {
    pub manifest: &'a Manifest,
    pub manifest_key: &'a str,
    pub line_items_read: u64,
    pub methodology: &'a str,
    pub factor_lineage: &'a str,
}

/// Whether this delivery (export, period, execution id) is already stored.
pub async fn is_ingested(pool: &PgPool, manifest: &Manifest) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM billing_deliveries
                        WHERE export_name = $1 AND billing_period = $2::date AND execution_id = $3)",
    )
    .bind(&manifest.export_name)
    .bind(manifest.period_start())
    .bind(&manifest.execution_id)
    .fetch_one(pool)
    .await
}

/// The team tag key and the accounts' default teams (the agent data's rule).
pub async fn team_rules(
    pool: &PgPool,
) -> Result<(String, std::collections::HashMap<String, String>), sqlx::Error> {
    let key: String = sqlx::query_scalar("SELECT team_tag_key FROM canopy_settings")
        .fetch_one(pool)
        .await?;
    let defaults: Vec<(String, String)> = sqlx::query_as(
        "SELECT account_id, default_team FROM account_team_rules WHERE default_team IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    Ok((key, defaults.into_iter().collect()))
}

/// Replaces the period's rows with `rows` and records the delivery, in one
/// transaction. Returns `false` (and changes nothing) when another sync
/// stored the same delivery meanwhile.
pub async fn replace_period(
    pool: &PgPool,
    record: &DeliveryRecord<'_>,
    rows: &[BillingRow],
) -> Result<bool, sqlx::Error> {
    let m = record.manifest;
    let period = m.period_start();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('canopy_billing:' || $1 || ':' || $2, 0))",
    )
    .bind(&m.export_name)
    .bind(&period)
    .execute(&mut *tx)
    .await?;
    let done: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM billing_deliveries
                        WHERE export_name = $1 AND billing_period = $2::date AND execution_id = $3)",
    )
    .bind(&m.export_name)
    .bind(&period)
    .bind(&m.execution_id)
    .fetch_one(&mut *tx)
    .await?;
    if done {
        return Ok(false);
    }
    sqlx::query(
        "DELETE FROM billing_line_items WHERE export_name = $1 AND billing_period = $2::date",
    )
    .bind(&m.export_name)
    .bind(&period)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE billing_deliveries SET current = false WHERE export_name = $1 AND billing_period = $2::date AND current")
        .bind(&m.export_name)
        .bind(&period)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO billing_deliveries (export_name, billing_period, execution_id, manifest_key, data_files,
                                         line_items_read, rows_stored, methodology, factor_lineage, current)
         VALUES ($1, $2::date, $3, $4, $5, $6, $7, $8, $9, true)",
    )
    .bind(&m.export_name)
    .bind(&period)
    .bind(&m.execution_id)
    .bind(record.manifest_key)
    .bind(&m.data_keys)
    .bind(i64::try_from(record.line_items_read).unwrap_or(i64::MAX))
    .bind(i64::try_from(rows.len()).unwrap_or(i64::MAX))
    .bind(record.methodology)
    .bind(record.factor_lineage)
    .execute(&mut *tx)
    .await?;
    for chunk in rows.chunks(INSERT_CHUNK) {
        insert_rows(&mut tx, m, &period, chunk).await?;
    }
    tx.commit().await?;
    Ok(true)
}

async fn insert_rows(
    tx: &mut Transaction<'_, Postgres>,
    m: &Manifest,
    period: &str,
    rows: &[BillingRow],
) -> Result<(), sqlx::Error> {
    let col =
        |f: &dyn Fn(&BillingRow) -> Option<f64>| rows.iter().map(f).collect::<Vec<Option<f64>>>();
    let fig =
        |f: fn(&super::estimate::Figures) -> f64| col(&|r: &BillingRow| r.figures.as_ref().map(f));
    // The parts as agent facts keep them (aggregator::accounting).
    let parts: Vec<Option<crate::accounting::FactParts>> = rows
        .iter()
        .map(|r| {
            r.figures.map(|f| {
                crate::accounting::FactParts::from_record(
                    f.it_energy_kwh.unwrap_or(f.energy_kwh),
                    f.location_g_co2e - f.embodied_g_co2e,
                    f.market_g_co2e - f.embodied_g_co2e,
                    f.embodied_g_co2e,
                    // from_record takes bounds around a point embodied value;
                    // the methodology bounds embodied too, so its own bounds
                    // come off here and the operational bounds stay exact.
                    f.low_g_co2e - f.embodied_low_g_co2e + f.embodied_g_co2e,
                    f.high_g_co2e - f.embodied_high_g_co2e + f.embodied_g_co2e,
                )
            })
        })
        .collect();
    let part = |f: fn(&crate::accounting::FactParts) -> f64| {
        parts
            .iter()
            .map(|p| p.as_ref().map(f))
            .collect::<Vec<Option<f64>>>()
    };
    // Embodied bounds come from the methodology, not from FactParts' point rule.
    sqlx::query(
        "INSERT INTO billing_line_items (export_name, billing_period, execution_id, day, account_id, region, service,
             usage_type, resource_id, team, line_items, unblended_cost, net_amortized_cost, estimated,
             energy_kwh, it_energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e,
             operational_location_g_co2e, operational_location_low_g_co2e, operational_location_high_g_co2e,
             operational_market_g_co2e, operational_market_low_g_co2e, operational_market_high_g_co2e,
             embodied_g_co2e, embodied_low_g_co2e, embodied_high_g_co2e)
         SELECT $1, $2::date, $3, (to_timestamp(d) AT TIME ZONE 'UTC')::date, a, r, s, u, res, t, n, uc, nc, est,
                e, ie, loc, mkt, lo, hi, ol, oll, olh, om, oml, omh, em, eml, emh
         FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                     $11::bigint[], $12::float8[], $13::float8[], $14::bool[], $15::float8[], $16::float8[],
                     $17::float8[], $18::float8[], $19::float8[], $20::float8[], $21::float8[], $22::float8[],
                     $23::float8[], $24::float8[], $25::float8[], $26::float8[], $27::float8[], $28::float8[],
                     $29::float8[])
              AS x(d, a, r, s, u, res, t, n, uc, nc, est, e, ie, loc, mkt, lo, hi, ol, oll, olh, om, oml, omh, em, eml, emh)",
    )
    .bind(&m.export_name)
    .bind(period)
    .bind(&m.execution_id)
    .bind(rows.iter().map(|r| r.day_unix_s).collect::<Vec<i64>>())
    .bind(rows.iter().map(|r| r.account_id.as_str()).collect::<Vec<&str>>())
    .bind(rows.iter().map(|r| r.region.as_str()).collect::<Vec<&str>>())
    .bind(rows.iter().map(|r| r.service.as_str()).collect::<Vec<&str>>())
    .bind(rows.iter().map(|r| r.usage_type.as_str()).collect::<Vec<&str>>())
    .bind(rows.iter().map(|r| r.resource_id.as_str()).collect::<Vec<&str>>())
    .bind(rows.iter().map(|r| r.team.as_str()).collect::<Vec<&str>>())
    .bind(rows.iter().map(|r| i64::try_from(r.line_items).unwrap_or(i64::MAX)).collect::<Vec<i64>>())
    .bind(rows.iter().map(|r| r.unblended_cost).collect::<Vec<f64>>())
    .bind(rows.iter().map(|r| r.net_amortized_cost).collect::<Vec<f64>>())
    .bind(rows.iter().map(|r| r.figures.is_some()).collect::<Vec<bool>>())
    .bind(fig(|f| f.energy_kwh))
    .bind(col(&|r: &BillingRow| r.figures.and_then(|f| f.it_energy_kwh)))
    .bind(fig(|f| f.location_g_co2e))
    .bind(fig(|f| f.market_g_co2e))
    .bind(fig(|f| f.low_g_co2e))
    .bind(fig(|f| f.high_g_co2e))
    .bind(part(|p| p.operational_location_g_co2e))
    .bind(part(|p| p.operational_location_low_g_co2e))
    .bind(part(|p| p.operational_location_high_g_co2e))
    .bind(part(|p| p.operational_market_g_co2e))
    .bind(part(|p| p.operational_market_low_g_co2e))
    .bind(part(|p| p.operational_market_high_g_co2e))
    .bind(fig(|f| f.embodied_g_co2e))
    .bind(fig(|f| f.embodied_low_g_co2e))
    .bind(fig(|f| f.embodied_high_g_co2e))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
