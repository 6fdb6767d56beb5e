//! Factor lineage per answer (issue 14, §1): which methodology and factor
//! sets (location and market, source and vintage) produced the stored
//! figures, per account and UTC month (`factor_lineage_monthly`, migration
//! 0022), and whether those figures keep their parts apart.
//!
//! Ingest records the distinct combinations of each batch in the batch's
//! transaction ([`record`]); an API answer reads the combinations of the
//! months its range touches and of the accounts it filters by ([`read`]).
//! Month granularity makes the list a superset for ranges that start or end
//! inside a month; it never misses a factor set behind a figure. This module
//! must never change a figure: it only describes where figures came from.

use std::collections::BTreeSet;

use sqlx::{PgConnection, Postgres, Row, Transaction};

use crate::model::FactRow;

/// `parts` of figures the agent sent with their parts.
pub const PARTS_SPLIT: &str = "split";
/// `parts` of figures stored before migration 0022 (embodied folded into
/// the operational figures, moved forward by the unsplit rule).
pub const PARTS_UNSPLIT: &str = "unsplit-before-0022";

/// One factor set combination behind an answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FactorSet {
    /// Methodology version of the agent's estimator.
    pub methodology_version: String,
    /// Source of the location-based grid factor.
    pub location_factor_source: String,
    /// Its vintage.
    pub location_factor_vintage: String,
    /// Source of the market-based factor (`not-recorded` before 0022).
    pub market_factor_source: String,
    /// Its vintage.
    pub market_factor_vintage: String,
    /// [`PARTS_SPLIT`] or [`PARTS_UNSPLIT`].
    pub parts: String,
    /// First UTC month (start, Unix seconds) of the answer's range with it.
    pub first_month_unix_s: i64,
    /// Last such month.
    pub last_month_unix_s: i64,
}

/// Records the factor set combinations of `facts` (one batch) for their
/// account and UTC month.
pub async fn record(tx: &mut Transaction<'_, Postgres>, facts: &[FactRow]) -> Result<(), sqlx::Error> {
    let mut seen: BTreeSet<(i64, &str, &str, &str, &str, &str, &str)> = BTreeSet::new();
    for f in facts {
        let (market_source, market_vintage) = f.market_lineage();
        seen.insert((
            crate::time::month_start_shifted(f.period_start_unix_s, 0),
            &f.account_id,
            &f.methodology_version,
            &f.factor_source,
            &f.factor_vintage,
            market_source,
            market_vintage,
        ));
    }
    if seen.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO factor_lineage_monthly (month_start, account_id, methodology_version, location_factor_source,
                location_factor_vintage, market_factor_source, market_factor_vintage, parts)
         SELECT to_timestamp(m), a, mv, ls, lv, ms, mkv, $8
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
             AS t(m, a, mv, ls, lv, ms, mkv)
         ORDER BY 1, 2, 3, 4, 5, 6, 7
         ON CONFLICT DO NOTHING",
    )
    .bind(seen.iter().map(|s| s.0).collect::<Vec<i64>>())
    .bind(seen.iter().map(|s| s.1).collect::<Vec<&str>>())
    .bind(seen.iter().map(|s| s.2).collect::<Vec<&str>>())
    .bind(seen.iter().map(|s| s.3).collect::<Vec<&str>>())
    .bind(seen.iter().map(|s| s.4).collect::<Vec<&str>>())
    .bind(seen.iter().map(|s| s.5).collect::<Vec<&str>>())
    .bind(seen.iter().map(|s| s.6).collect::<Vec<&str>>())
    .bind(PARTS_SPLIT)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The factor sets behind figures of `[from, to)` of `accounts` (all when
/// empty), in the caller's snapshot.
pub async fn read(
    conn: &mut PgConnection,
    from_unix_s: i64,
    to_unix_s: i64,
    accounts: &[String],
) -> Result<Vec<FactorSet>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT methodology_version, location_factor_source, location_factor_vintage, market_factor_source,
                market_factor_vintage, parts,
                extract(epoch FROM min(month_start))::bigint AS first_month,
                extract(epoch FROM max(month_start))::bigint AS last_month
         FROM factor_lineage_monthly
         WHERE month_start >= date_trunc('month', to_timestamp($1::bigint) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           AND month_start < to_timestamp($2::bigint)
           AND (cardinality($3::text[]) = 0 OR account_id = ANY ($3))
         GROUP BY 1, 2, 3, 4, 5, 6
         ORDER BY 1, 2, 3, 4, 5, 6",
    )
    .bind(from_unix_s)
    .bind(to_unix_s)
    .bind(accounts)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(FactorSet {
                methodology_version: r.try_get(0)?,
                location_factor_source: r.try_get(1)?,
                location_factor_vintage: r.try_get(2)?,
                market_factor_source: r.try_get(3)?,
                market_factor_vintage: r.try_get(4)?,
                parts: r.try_get(5)?,
                first_month_unix_s: r.try_get(6)?,
                last_month_unix_s: r.try_get(7)?,
            })
        })
        .collect()
}
