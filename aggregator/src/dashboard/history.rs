//! `GET /v1/resource-history`: one resource's energy and CO2e per hour or day,
//! per hour read from its facts, per day from the per-resource daily rollup
//! (migration 0029, so days stay answerable after the facts expire), with
//! its current inventory record when known.

use axum::Json;
use axum::extract::{Extension, Query, State};
use serde_json::{Value, json};
use sqlx::Row;

use super::{DashboardError, DashboardState, bad};
use crate::auth::Principal;
use crate::query::{QueryError, Source};
use crate::query::params::{MAX_SERIES_BUCKETS, parse_instant};
use crate::time::{DAY_S, HOUR_S};

/// The resource's facts from both layouts (see `emission_facts_all`): in
/// segments, only the resource's own positions are read
/// (`array_positions`), instead of unnesting every record of the account's
/// segments in the range.
const HISTORY_SQL: &str = "
SELECT extract(epoch FROM date_bin(make_interval(secs => $4), period_start, to_timestamp(0)))::bigint AS bucket,
       sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) / 1000.0 AS location_kg,
       sum(market_g_co2e) / 1000.0 AS market_kg, count(*) AS facts
FROM (SELECT period_start, energy_kwh, location_g_co2e, market_g_co2e FROM emission_facts
      WHERE account_id = $1 AND region = $2 AND resource_id = $3
        AND period_start >= to_timestamp($5) AND period_start < to_timestamp($6)
      UNION ALL
      SELECT s.period_start, s.energy_kwh[p], s.location_g_co2e[p], s.market_g_co2e[p]
      FROM emission_fact_segments s CROSS JOIN LATERAL unnest(array_positions(s.resource_ids, $3::text)) AS p
      WHERE s.account_id = $1 AND s.region = $2
        AND s.period_start >= to_timestamp($5) AND s.period_start < to_timestamp($6)
        AND p <> ALL (s.superseded)) AS f
GROUP BY 1 ORDER BY 1";

/// The resource's days from the per-resource daily rollup (every group of
/// the resource in a day summed; groups whose facts were all superseded
/// are left out).
const DAILY_HISTORY_SQL: &str = "
SELECT extract(epoch FROM bucket_start)::bigint AS bucket,
       sum(energy_kwh) AS energy_kwh, sum(location_g_co2e) / 1000.0 AS location_kg,
       sum(market_g_co2e) / 1000.0 AS market_kg, sum(fact_count)::bigint AS facts
FROM resource_rollup_daily
WHERE account_id = $1 AND region = $2 AND resource_id = $3
  AND bucket_start >= to_timestamp($5) AND bucket_start < to_timestamp($6) AND fact_count <> 0 AND $4::float8 > 0
GROUP BY 1 HAVING sum(fact_count) > 0 ORDER BY 1";

const RESOURCE_SQL: &str = "
SELECT resource_type, service, team, tags::text AS tags, deleted,
       extract(epoch FROM first_seen)::bigint AS first_seen, extract(epoch FROM last_seen)::bigint AS last_seen
FROM resources WHERE account_id = $1 AND region = $2 AND resource_id = $3";

const SCOPE_SQL: &str = "
SELECT COALESCE((SELECT ou_path FROM accounts WHERE account_id = $1), '') AS ou_path,
       (SELECT team FROM resources WHERE account_id = $1 AND region = $2 AND resource_id = $3) AS team";

/// Validated parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    /// Account id.
    pub account: String,
    /// Region.
    pub region: String,
    /// Resource id.
    pub resource: String,
    /// Inclusive start, a multiple of the step.
    pub from_unix_s: i64,
    /// Exclusive end, a multiple of the step.
    pub to_unix_s: i64,
    /// Bucket width.
    pub step_s: i64,
}

/// Parses `account`, `region`, `resource`, `from`, `to` and `step` (1h or 1d).
pub fn parse(pairs: &[(String, String)]) -> Result<HistoryRequest, DashboardError> {
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    for (key, _) in pairs {
        if !["account", "region", "resource", "from", "to", "step"].contains(&key.as_str()) {
            return Err(bad(key, "unknown parameter; expected account, region, resource, from, to, step"));
        }
    }
    let required = |name: &str| get(name).filter(|v| !v.is_empty()).ok_or_else(|| bad(name, "required"));
    let step_s = match get("step").unwrap_or("1h") {
        "1h" => HOUR_S,
        "1d" => DAY_S,
        other => return Err(bad("step", format!("expected 1h or 1d, found {other:?}"))),
    };
    let instant = |name: &str| -> Result<i64, DashboardError> {
        let t = parse_instant(required(name)?).map_err(|m| bad(name, m))?;
        if t % step_s != 0 {
            return Err(bad(name, format!("expected a multiple of the step ({step_s} s), found {t}")));
        }
        Ok(t)
    };
    let (from_unix_s, to_unix_s) = (instant("from")?, instant("to")?);
    if to_unix_s <= from_unix_s {
        return Err(bad("to", format!("expected an instant after from ({from_unix_s}), found {to_unix_s}")));
    }
    if (to_unix_s - from_unix_s) / step_s > MAX_SERIES_BUCKETS {
        return Err(bad("step", format!("expected at most {MAX_SERIES_BUCKETS} buckets in the range")));
    }
    Ok(HistoryRequest {
        account: required("account")?.to_owned(),
        region: required("region")?.to_owned(),
        resource: required("resource")?.to_owned(),
        from_unix_s,
        to_unix_s,
        step_s,
    })
}

/// The handler.
pub async fn handler(
    State(s): State<DashboardState>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, DashboardError> {
    let req = parse(&pairs)?;
    // Both statements in one snapshot; refused where the level read (facts
    // per hour, the per-resource daily rollup per day) has expired.
    let mut snapshot = s.engine.snapshot((s.clock)()).await?;
    let daily = req.step_s == DAY_S;
    if daily {
        crate::query::plan::plan(req.from_unix_s, req.to_unix_s, &[Source::ResourceDaily], snapshot.horizons())
            .map_err(QueryError::from)?;
    } else {
        snapshot.check_facts(req.from_unix_s, req.to_unix_s).map_err(QueryError::from)?;
    }
    if !principal.scope.is_unrestricted() {
        // The resource's account OU and its inventory team decide; a
        // resource outside the scope answers as if it did not exist.
        let row = sqlx::query(SCOPE_SQL)
            .bind(&req.account)
            .bind(&req.region)
            .bind(&req.resource)
            .fetch_one(snapshot.conn())
            .await?;
        let (ou, team): (String, Option<String>) = (row.get("ou_path"), row.get("team"));
        if !crate::query::authz::allows(&principal.scope, &req.account, &ou, team.as_deref()) {
            return Err(DashboardError::NotInScope);
        }
    }
    let rows = sqlx::query(if daily { DAILY_HISTORY_SQL } else { HISTORY_SQL })
        .bind(&req.account)
        .bind(&req.region)
        .bind(&req.resource)
        .bind(req.step_s as f64)
        .bind(req.from_unix_s as f64)
        .bind(req.to_unix_s as f64)
        .fetch_all(snapshot.conn())
        .await?;
    let resource = sqlx::query(RESOURCE_SQL)
        .bind(&req.account)
        .bind(&req.region)
        .bind(&req.resource)
        .fetch_optional(snapshot.conn())
        .await?
        .map(|r| {
            let tags: String = r.get("tags");
            json!({
                "resource_type": r.get::<String, _>("resource_type"),
                "service": r.get::<String, _>("service"),
                "team": r.get::<String, _>("team"),
                "tags": serde_json::from_str::<Value>(&tags).unwrap_or(Value::Null),
                "deleted": r.get::<bool, _>("deleted"),
                "first_seen_unix_s": r.get::<i64, _>("first_seen"),
                "last_seen_unix_s": r.get::<i64, _>("last_seen"),
            })
        });
    snapshot.finish().await?;
    Ok(Json(json!({
        "account_id": req.account,
        "region": req.region,
        "resource_id": req.resource,
        "from_unix_s": req.from_unix_s,
        "to_unix_s": req.to_unix_s,
        "step_s": req.step_s,
        "resource": resource,
        "rows": rows.iter().map(|r| json!({
            "bucket_start_unix_s": r.get::<i64, _>("bucket"),
            "energy_kwh": r.get::<f64, _>("energy_kwh"),
            "location_kg_co2e": r.get::<f64, _>("location_kg"),
            "market_kg_co2e": r.get::<f64, _>("market_kg"),
            "fact_count": r.get::<i64, _>("facts"),
        })).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn rejected(items: &[(&str, &str)]) -> String {
        match parse(&pairs(items)) {
            Err(DashboardError::BadParameter(e)) => e.parameter,
            other => panic!("expected a bad parameter, got {other:?}"),
        }
    }

    #[test]
    fn parses_and_rejects() {
        let ok = parse(&pairs(&[
            ("account", "111111111111"),
            ("region", "eu-west-1"),
            ("resource", "i-1"),
            ("from", "7200"),
            ("to", "14400"),
        ]))
        .unwrap();
        assert_eq!((ok.from_unix_s, ok.to_unix_s, ok.step_s), (7_200, 14_400, 3_600));
        let base = [("account", "1"), ("region", "r"), ("resource", "x"), ("from", "0"), ("to", "86400")];
        assert_eq!(rejected(&[base[0], base[1], base[2], base[3], base[4], ("step", "5m")]), "step");
        assert_eq!(rejected(&[base[0], base[1], base[3], base[4]]), "resource");
        assert_eq!(rejected(&[base[0], base[1], base[2], ("from", "60"), base[4]]), "from");
        assert_eq!(rejected(&[base[0], base[1], base[2], ("from", "86400"), base[4]]), "to");
        assert_eq!(rejected(&[base[0], base[1], base[2], base[3], base[4], ("colour", "red")]), "colour");
    }
}
