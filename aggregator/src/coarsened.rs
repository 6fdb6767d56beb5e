//! Hour scopes: hour-long group records (an agent's outbox that coarsened
//! per-resource records when full) against the per-resource records of the
//! same hour, so each kWh is counted once (migration 0013).
//!
//! A record key alone cannot relate `group:ec2/instance/web@3600s` to the
//! `resource:<arn>@3600s` records it stands for, and an agent sends an hour
//! twice (provisional, then measured) in cycles that are coarsened or not
//! independently. The rule works per scope (account, region, UTC hour):
//!
//! - a group record supersedes the scope's per-resource records of a lower
//!   or equal revision and its group records of a lower revision;
//! - a per-resource record supersedes the scope's group records of a lower
//!   revision;
//! - within one key the higher revision wins, as everywhere.
//!
//! A record counts when nothing that arrived for its scope supersedes it, so
//! a scope counts either its group records (those of the highest group
//! revision) or its per-resource records, never both, and the outcome does
//! not depend on the order in which batches arrive. Superseding is final,
//! so it is done like a revision: segment positions are marked superseded
//! (rows deleted) and the rollups corrected by the difference. Beyond the
//! live facts only the highest group revision a scope ever received is
//! needed (`coarsened_hours`): a per-resource record of that revision or
//! lower is superseded on arrival even when the group record that beat it
//! was itself superseded later.
//!
//! Cost: one indexed lookup of `coarsened_hours` per batch; the scopes of
//! group records (coarsening is rare) and of per-resource records that
//! overtake them take two more statements.

use std::collections::BTreeMap;

use sqlx::{Postgres, Row, Transaction};

use crate::db::StorageMode;
use crate::ingest::{StoreError, rollup_ctes};
use crate::model::FactRow;
use crate::time::{HOUR_S, floor_to};

/// True for an hour-long group record: the record key of a group subject
/// (`group:<service>/<type>/<team>@3600s`) over a whole hour. Shorter group
/// records are the real-time path and never reach the facts.
pub fn is_hour_group(f: &FactRow) -> bool {
    f.period_s == 3_600 && f.record_key.starts_with("group:")
}

/// SQL of [`is_hour_group`] for columns `period_s` and `record_key` of `alias`.
fn hour_group_sql(alias: &str) -> String {
    format!("({alias}.period_s = 3600 AND starts_with({alias}.record_key, 'group:'))")
}

/// (hour start, account, region).
type Scope<'a> = (i64, &'a str, &'a str);

fn scope_of(f: &FactRow) -> Scope<'_> {
    (
        floor_to(f.period_start_unix_s, HOUR_S),
        f.account_id.as_str(),
        f.region.as_str(),
    )
}

/// The highest revisions a batch brings to one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Arriving {
    group: Option<i64>,
    resource: Option<i64>,
}

/// What a scope holds after a batch, from [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decision {
    /// Group records of this revision count; `None`: no group record counts.
    groups_live_at: Option<i64>,
    /// Per-resource records of this revision or lower are superseded.
    resource_upto: i64,
    /// The scope's highest group revision ever received.
    group_revision: i64,
    /// Stored records may have to be superseded (the batch brings a group
    /// record, or a per-resource record above every group revision).
    supersede_stored: bool,
}

/// Applies the rule to one scope: `stored_group` is the highest group
/// revision the scope received before (`coarsened_hours`), `live_resource`
/// the highest revision of its live per-resource records (only needed, and
/// only read, when the batch brings a group record). `None` when the scope
/// never received a group record: nothing changes.
fn decide(stored_group: Option<i64>, live_resource: Option<i64>, arriving: Arriving) -> Option<Decision> {
    let group_revision = stored_group.max(arriving.group)?;
    let resource = live_resource.max(arriving.resource);
    let groups_live = resource.is_none_or(|r| r <= group_revision);
    Some(Decision {
        groups_live_at: groups_live.then_some(group_revision),
        resource_upto: group_revision,
        group_revision,
        supersede_stored: arriving.group.is_some() || arriving.resource.is_some_and(|r| r > group_revision),
    })
}

/// True when fact `f` of a scope decided as `d` still counts.
fn survives(f: &FactRow, d: &Decision) -> bool {
    let revision = i64::from(f.revision);
    if is_hour_group(f) {
        d.groups_live_at == Some(revision)
    } else {
        revision > d.resource_upto
    }
}

/// Applies the hour-scope rule to a batch's facts (one per key, as
/// `ingest::highest_revision_per_key` returns them): supersedes the stored
/// records the batch's records beat (correcting the rollups in native mode)
/// and returns the facts that still count, in their order, with the number
/// of stored facts superseded. The caller holds the batch's (account,
/// region) advisory locks and writes the returned facts with the usual
/// per-key revision check.
pub(crate) async fn resolve<'a>(
    tx: &mut Transaction<'_, Postgres>,
    facts: Vec<&'a FactRow>,
    mode: StorageMode,
) -> Result<(Vec<&'a FactRow>, u64), StoreError> {
    let mut arriving: BTreeMap<Scope<'a>, Arriving> = BTreeMap::new();
    for f in &facts {
        let a = arriving.entry(scope_of(f)).or_default();
        let slot = if is_hour_group(f) {
            &mut a.group
        } else {
            &mut a.resource
        };
        *slot = (*slot).max(Some(i64::from(f.revision)));
    }
    let scopes: Vec<Scope<'a>> = arriving.keys().copied().collect();
    let stored_groups = read_group_revisions(tx, &scopes).await?;
    if stored_groups.iter().all(Option::is_none) && arriving.values().all(|a| a.group.is_none()) {
        // No group record, stored or arriving, in any scope: the common path.
        return Ok((facts, 0));
    }
    let with_groups: Vec<usize> = (0..scopes.len())
        .filter(|&i| arriving[&scopes[i]].group.is_some())
        .collect();
    let live_resources = read_live_resource_revisions(tx, &scopes, &with_groups).await?;

    let mut decisions: BTreeMap<Scope<'a>, Decision> = BTreeMap::new();
    for (i, scope) in scopes.iter().enumerate() {
        if let Some(d) = decide(stored_groups[i], live_resources[i], arriving[scope]) {
            decisions.insert(*scope, d);
        }
    }
    let to_supersede: Vec<(&Scope<'a>, &Decision)> = decisions.iter().filter(|(_, d)| d.supersede_stored).collect();
    let displaced = supersede_stored(tx, &to_supersede, mode).await?;
    let received = facts.len();
    let kept: Vec<&'a FactRow> = facts
        .into_iter()
        .filter(|f| decisions.get(&scope_of(f)).is_none_or(|d| survives(f, d)))
        .collect();
    if !to_supersede.is_empty() || kept.len() < received {
        let (hour_unix_s, account_id, region) = *to_supersede.first().map_or(&scopes[0], |(s, _)| *s);
        tracing::info!(
            hours = to_supersede.len(),
            first_hour_unix_s = hour_unix_s,
            account_id,
            region,
            stored_superseded = displaced,
            arriving_superseded = received - kept.len(),
            "hour-long group records and per-resource records of the same hours reconciled; each hour counts once"
        );
    }
    Ok((kept, displaced))
}

/// The stored highest group revision of each scope (`None`: never received
/// a group record).
async fn read_group_revisions(
    tx: &mut Transaction<'_, Postgres>,
    scopes: &[Scope<'_>],
) -> Result<Vec<Option<i64>>, StoreError> {
    let rows = sqlx::query(
        "SELECT k.i::int AS i, c.group_revision
         FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS k(hour_unix_s, account_id, region, i)
         JOIN coarsened_hours c
           ON c.account_id = k.account_id AND c.region = k.region AND c.hour_start = to_timestamp(k.hour_unix_s)",
    )
    .bind(scopes.iter().map(|s| s.0).collect::<Vec<i64>>())
    .bind(scopes.iter().map(|s| s.1).collect::<Vec<&str>>())
    .bind(scopes.iter().map(|s| s.2).collect::<Vec<&str>>())
    .fetch_all(&mut **tx)
    .await?;
    let mut out = vec![None; scopes.len()];
    for row in rows {
        let i: i32 = row.try_get("i")?;
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i.wrapping_sub(1))) {
            *slot = Some(row.try_get("group_revision")?);
        }
    }
    Ok(out)
}

/// The highest revision of the live per-resource records (segment positions
/// not superseded, and rows) of the scopes at positions `which`; `None`
/// elsewhere and where there are none.
async fn read_live_resource_revisions(
    tx: &mut Transaction<'_, Postgres>,
    scopes: &[Scope<'_>],
    which: &[usize],
) -> Result<Vec<Option<i64>>, StoreError> {
    let mut out = vec![None; scopes.len()];
    if which.is_empty() {
        return Ok(out);
    }
    let rows = sqlx::query(&format!(
        "SELECT k.i, GREATEST(
                    (SELECT max(u.revision)
                     FROM emission_fact_segments s
                     CROSS JOIN LATERAL unnest(s.period_s, s.record_keys, s.revisions) WITH ORDINALITY
                         AS u(period_s, record_key, revision, ord)
                     WHERE s.account_id = k.account_id AND s.region = k.region
                       AND s.period_start >= to_timestamp(k.hour_unix_s)
                       AND s.period_start < to_timestamp(k.hour_unix_s + 3600)
                       AND u.ord::int <> ALL (s.superseded) AND NOT {}),
                    (SELECT max(f.revision) FROM emission_facts f
                     WHERE f.account_id = k.account_id AND f.region = k.region
                       AND f.period_start >= to_timestamp(k.hour_unix_s)
                       AND f.period_start < to_timestamp(k.hour_unix_s + 3600)
                       AND NOT {})) AS revision
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[]) AS k(hour_unix_s, account_id, region, i)",
        hour_group_sql("u"),
        hour_group_sql("f"),
    ))
    .bind(which.iter().map(|&i| scopes[i].0).collect::<Vec<i64>>())
    .bind(which.iter().map(|&i| scopes[i].1).collect::<Vec<&str>>())
    .bind(which.iter().map(|&i| scopes[i].2).collect::<Vec<&str>>())
    .bind(
        which
            .iter()
            .map(|&i| i32::try_from(i).unwrap_or(i32::MAX))
            .collect::<Vec<i32>>(),
    )
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let i: i32 = row.try_get("i")?;
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            *slot = row.try_get("revision")?;
        }
    }
    Ok(out)
}

/// The statement superseding stored records: `$1`-`$6` per scope (hour
/// start, account, region, group records below this revision go, per-
/// resource records up to this revision go, the highest group revision).
/// Superseded segment positions are marked, superseded rows deleted, the
/// highest group revision kept in `coarsened_hours`; in native mode the
/// rollups and `org_rollup_pending` lose what was superseded (TimescaleDB's
/// continuous aggregates follow the rows). Returns the count superseded.
fn supersede_sql(mode: StorageMode) -> String {
    let gone = |alias: &str| {
        format!(
            "CASE WHEN {} THEN {alias}.revision < k.group_below ELSE {alias}.revision <= k.resource_upto END",
            hour_group_sql(alias)
        )
    };
    let rollups = match mode {
        StorageMode::Native => format!(
            "delta5 AS (
                SELECT date_bin(interval '5 minutes', period_start, timestamptz 'epoch') AS bucket_start,
                       account_id, region, service, resource_type, team, quality,
                       {}, -count(*) AS fact_count, resource_id
                FROM gone GROUP BY 1, 2, 3, 4, 5, 6, 7, resource_id
             ),
             {},",
            crate::accounting::MEASURE_COLUMNS.map(|c| format!("-sum({c}) AS {c}")).join(", "),
            rollup_ctes()
        ),
        StorageMode::TimescaleDb => String::new(),
    };
    let u_measures = crate::accounting::coalesced("u.");
    let f_measures = crate::accounting::coalesced("f.");
    let measures = crate::accounting::columns("");
    let arrays = crate::accounting::columns("s.");
    format!(
        "WITH k AS (
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
                AS k(hour_unix_s, account_id, region, group_below, resource_upto, group_revision)
         ),
         pos AS (
            SELECT s.period_start, s.account_id, s.region, s.segment_id, u.ord::int AS ord, u.resource_id, u.service,
                   u.resource_type, u.team, u.quality, {u_measures}
            FROM k
            JOIN emission_fact_segments s
              ON s.account_id = k.account_id AND s.region = k.region
             AND s.period_start >= to_timestamp(k.hour_unix_s) AND s.period_start < to_timestamp(k.hour_unix_s + 3600)
            CROSS JOIN LATERAL unnest(s.period_s, s.record_keys, s.revisions, s.resource_ids, s.services,
                                      s.resource_types, s.teams, s.qualities, {arrays}) WITH ORDINALITY
                AS u(period_s, record_key, revision, resource_id, service, resource_type, team, quality, {measures},
                     ord)
            WHERE u.ord::int <> ALL (s.superseded) AND {}
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
            DELETE FROM emission_facts AS f USING k
            WHERE f.account_id = k.account_id AND f.region = k.region
              AND f.period_start >= to_timestamp(k.hour_unix_s) AND f.period_start < to_timestamp(k.hour_unix_s + 3600)
              AND {}
            RETURNING f.period_start, f.account_id, f.region, f.resource_id, f.service, f.resource_type, f.team,
                      f.quality, {f_measures}
         ),
         gone AS (
            SELECT period_start, account_id, region, resource_id, service, resource_type, team, quality, {measures}
            FROM pos
            UNION ALL
            SELECT * FROM del
         ),
         {rollups}
         hours AS (
            INSERT INTO coarsened_hours AS c (account_id, region, hour_start, group_revision)
            SELECT account_id, region, to_timestamp(hour_unix_s), group_revision FROM k
            ON CONFLICT (account_id, region, hour_start) DO UPDATE
                SET group_revision = GREATEST(c.group_revision, excluded.group_revision)
            RETURNING 1
         )
         SELECT (SELECT count(*) FROM gone) AS superseded",
        gone("u"),
        gone("f"),
    )
}

static SUPERSEDE_NATIVE_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| supersede_sql(StorageMode::Native));
static SUPERSEDE_TIMESCALE_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| supersede_sql(StorageMode::TimescaleDb));

async fn supersede_stored(
    tx: &mut Transaction<'_, Postgres>,
    scopes: &[(&Scope<'_>, &Decision)],
    mode: StorageMode,
) -> Result<u64, StoreError> {
    if scopes.is_empty() {
        return Ok(0);
    }
    let sql = match mode {
        StorageMode::Native => SUPERSEDE_NATIVE_SQL.as_str(),
        StorageMode::TimescaleDb => SUPERSEDE_TIMESCALE_SQL.as_str(),
    };
    let superseded: i64 = sqlx::query_scalar(sql)
        .bind(scopes.iter().map(|(s, _)| s.0).collect::<Vec<i64>>())
        .bind(scopes.iter().map(|(s, _)| s.1).collect::<Vec<&str>>())
        .bind(scopes.iter().map(|(s, _)| s.2).collect::<Vec<&str>>())
        .bind(
            scopes
                .iter()
                .map(|(_, d)| d.groups_live_at.unwrap_or(i64::MAX))
                .collect::<Vec<i64>>(),
        )
        .bind(scopes.iter().map(|(_, d)| d.resource_upto).collect::<Vec<i64>>())
        .bind(scopes.iter().map(|(_, d)| d.group_revision).collect::<Vec<i64>>())
        .fetch_one(&mut **tx)
        .await?;
    Ok(u64::try_from(superseded).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arriving(group: Option<i64>, resource: Option<i64>) -> Arriving {
        Arriving { group, resource }
    }

    #[test]
    fn scopes_without_group_records_are_untouched() {
        assert_eq!(decide(None, None, arriving(None, Some(2))), None);
    }

    #[test]
    fn a_group_replaces_per_resource_records_of_its_revision_or_lower() {
        // Provisional per resource (1), then a coarsened measured group (2).
        let d = decide(None, Some(1), arriving(Some(2), None)).unwrap();
        assert_eq!(
            d,
            Decision {
                groups_live_at: Some(2),
                resource_upto: 2,
                group_revision: 2,
                supersede_stored: true
            }
        );
        // Same revision: the group wins.
        assert_eq!(
            decide(None, Some(2), arriving(Some(2), None)).unwrap().groups_live_at,
            Some(2)
        );
    }

    #[test]
    fn a_later_per_resource_revision_replaces_the_group() {
        // Coarsened provisional group (1), then measured per resource (2).
        let d = decide(Some(1), None, arriving(None, Some(2))).unwrap();
        assert_eq!(
            d,
            Decision {
                groups_live_at: None,
                resource_upto: 1,
                group_revision: 1,
                supersede_stored: true
            }
        );
        // A per-resource record not above the group's revision changes nothing stored and does not count.
        let d = decide(Some(2), None, arriving(None, Some(2))).unwrap();
        assert!(!d.supersede_stored);
        let mut f = FactRow::sample(0, 3_600);
        f.revision = 2;
        assert!(!survives(&f, &d));
        f.revision = 3;
        assert!(survives(&f, &d));
    }

    #[test]
    fn a_group_below_a_live_per_resource_revision_never_counts() {
        let d = decide(None, Some(3), arriving(Some(2), None)).unwrap();
        assert_eq!(d.groups_live_at, None);
        // ... but it still supersedes per-resource records up to its revision.
        assert_eq!(d.resource_upto, 2);
        let mut g = FactRow {
            record_key: "group:ec2/instance/web@3600s".into(),
            ..FactRow::sample(0, 3_600)
        };
        g.revision = 2;
        assert!(is_hour_group(&g) && !survives(&g, &d));
    }

    #[test]
    fn only_hour_long_group_keys_are_hour_groups() {
        let mut f = FactRow {
            record_key: "group:ec2/instance/-@300s".into(),
            ..FactRow::sample(0, 300)
        };
        assert!(!is_hour_group(&f));
        f.period_s = 3_600;
        f.record_key = "group:ec2/instance/-@3600s".into();
        assert!(is_hour_group(&f));
        f.record_key = "resource:arn:aws:ec2:eu-west-1:1:instance/i-1@3600s".into();
        assert!(!is_hour_group(&f));
    }
}
