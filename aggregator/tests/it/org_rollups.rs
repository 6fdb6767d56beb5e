//! The org rollups (migration 0006): no account dimension, OU path instead,
//! fed through the pending table and drained asynchronously. Invariant per
//! level: org rollup + pending = account-level rollup grouped by the
//! account's current OU path.

use canopy_aggregator::accounting::{MEASURE_COLUMNS, MEASURES};
use canopy_aggregator::maintenance::{self, RetentionPolicy};
use canopy_aggregator::model::Batch;
use canopy_aggregator::query::{Dimension, Filters, Page, QueryEngine, Source, TotalsRequest};
use canopy_aggregator::time::{DAY_S, FIVE_MINUTES_S, HOUR_S};

use crate::support::{ACCOUNTS, Rng, T0, TestDb, brute_group, close, fact, seed_accounts, store, stored_facts};

/// Every measure of an answer (totals and parts) equals the brute-force
/// sum of the facts, and its parts add up to its totals.
fn assert_all_measures(got: &canopy_aggregator::query::Metrics, want: &[f64; MEASURES], context: &str) {
    for (i, (g, w)) in got.as_stored().iter().zip(want).enumerate() {
        assert!(close(*g, *w), "{context}: {}: got {g} want {w}", MEASURE_COLUMNS[i]);
    }
    if got.fact_count > 0 {
        got.parts_add_up(1e-9).unwrap_or_else(|e| panic!("{context}: {e}"));
    }
}

/// (org level, account level, SQL mapping a 5-minute pending bucket to the level's bucket).
const LEVELS: [(&str, &str, &str); 4] = [
    ("org_rollup_5m", "rollup_5m", "p.bucket_start"),
    ("org_rollup_hourly", "rollup_hourly", "date_bin(interval '1 hour', p.bucket_start, timestamptz 'epoch')"),
    ("org_rollup_daily", "rollup_daily", "date_bin(interval '1 day', p.bucket_start, timestamptz 'epoch')"),
    (
        "org_rollup_monthly",
        "rollup_monthly",
        "date_trunc('month', p.bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    ),
];

/// Checks the invariant at every level; returns the number of non-empty
/// groups at the hourly level.
async fn assert_invariant(pool: &sqlx::PgPool, context: &str) -> i64 {
    let mut hourly_groups = 0;
    for (org, account, pending_bucket) in LEVELS {
        let (mismatched, groups): (i64, i64) = sqlx::query_as(&format!(
            "WITH o AS (
                SELECT bucket_start AS b, ou_path AS ou, region, service, resource_type, team, quality,
                       energy_kwh AS e, location_g_co2e AS l, high_g_co2e AS h, fact_count AS n FROM {org}
                UNION ALL
                SELECT {pending_bucket}, COALESCE(a.ou_path, ''), p.region, p.service, p.resource_type, p.team,
                       p.quality, p.energy_kwh, p.location_g_co2e, p.high_g_co2e, p.fact_count
                FROM org_rollup_pending p LEFT JOIN accounts a ON a.account_id = p.account_id
                UNION ALL
                SELECT r.bucket_start, COALESCE(a.ou_path, ''), r.region, r.service, r.resource_type, r.team,
                       r.quality, -r.energy_kwh, -r.location_g_co2e, -r.high_g_co2e, -r.fact_count
                FROM {account} r LEFT JOIN accounts a ON a.account_id = r.account_id
             )
             SELECT count(*) FILTER (WHERE abs(e) > 1e-9 OR abs(l) > 1e-6 OR abs(h) > 1e-6 OR n <> 0),
                    count(*) FILTER (WHERE n_account <> 0)
             FROM (SELECT sum(e) AS e, sum(l) AS l, sum(h) AS h, sum(n) AS n,
                          sum(n) FILTER (WHERE n < 0) AS n_account
                   FROM o GROUP BY b, ou, region, service, resource_type, team, quality) g"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(mismatched, 0, "{context}: {org} differs from {account} by OU in {mismatched} groups");
        assert!(groups > 0, "{context}: {account} is empty");
        if org == "org_rollup_hourly" {
            hourly_groups = groups;
        }
    }
    assert_team_invariant(pool, context).await;
    hourly_groups
}

/// Team rollups (migration 0011): team rollup + pending = account-level
/// rollup grouped by (bucket, team, quality), at the daily and monthly level.
async fn assert_team_invariant(pool: &sqlx::PgPool, context: &str) {
    for (team_table, account, pending_bucket) in [
        ("org_team_rollup_daily", "rollup_daily", LEVELS[2].2),
        ("org_team_rollup_monthly", "rollup_monthly", LEVELS[3].2),
    ] {
        let (mismatched, groups): (i64, i64) = sqlx::query_as(&format!(
            "WITH o AS (
                SELECT bucket_start AS b, team, quality, energy_kwh AS e, location_g_co2e AS l, fact_count AS n
                FROM {team_table}
                UNION ALL
                SELECT {pending_bucket}, p.team, p.quality, p.energy_kwh, p.location_g_co2e, p.fact_count
                FROM org_rollup_pending p
                UNION ALL
                SELECT r.bucket_start, r.team, r.quality, -r.energy_kwh, -r.location_g_co2e, -r.fact_count
                FROM {account} r
             )
             SELECT count(*) FILTER (WHERE abs(e) > 1e-9 OR abs(l) > 1e-6 OR n <> 0),
                    count(*) FILTER (WHERE n_account <> 0)
             FROM (SELECT sum(e) AS e, sum(l) AS l, sum(n) AS n, sum(n) FILTER (WHERE n < 0) AS n_account
                   FROM o GROUP BY b, team, quality) g"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(mismatched, 0, "{context}: {team_table} differs from {account} by team in {mismatched} groups");
        assert!(groups > 0, "{context}: {account} is empty");
    }
}

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(pool).await.unwrap()
}

/// Batches of facts over two days with superseding revisions, shuffled.
fn batches(seed: u64, first_sequence: u64, day_offset: i64) -> Vec<Batch> {
    let mut rng = Rng::new(seed);
    let mut facts = Vec::new();
    for _ in 0..600 {
        let resource = rng.below(60);
        let start = T0 + day_offset * DAY_S + rng.below(2 * 288) as i64 * FIVE_MINUTES_S;
        for revision in 1..=1 + rng.below(3) as u32 {
            facts.push(fact(resource, start, 300, revision));
        }
    }
    for i in (1..facts.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        facts.swap(i, j);
    }
    facts
        .chunks(100)
        .enumerate()
        .map(|(i, c)| Batch {
            agent_id: "agent-org".into(),
            sequence: first_sequence + i as u64,
            facts: c.to_vec(),
            inventory: vec![],
        })
        .collect()
}

#[tokio::test]
async fn org_rollups_follow_late_superseding_data_and_ou_moves() {
    if crate::support::skip_unless_native("org_rollups_follow_late_superseding_data_and_ou_moves", "org rollups, their pending deltas and drain are native tables (views over the continuous aggregates there)") {
        return;
    }
    let t = TestDb::migrated().await;
    seed_accounts(&t.pool).await;
    let all = batches(5, 0, 0);
    let (first, second) = all.split_at(all.len() / 2);
    for b in first {
        store(&t.pool, b).await;
    }
    // Before any drain everything is pending and the invariant holds.
    assert_eq!(count(&t.pool, "org_rollup_hourly").await, 0);
    assert!(count(&t.pool, "org_rollup_pending").await > 0);
    assert_invariant(&t.pool, "undrained").await;

    let drained = maintenance::drain_org_rollups(&t.pool).await.unwrap();
    assert!(drained > 0);
    assert_eq!(count(&t.pool, "org_rollup_pending").await, 0);
    assert!(count(&t.pool, "org_rollup_hourly").await > 0);
    assert_eq!(maintenance::drain_org_rollups(&t.pool).await.unwrap(), 0, "nothing left to drain");
    assert_invariant(&t.pool, "drained").await;

    // Superseding revisions and late data (a day 40 days back, older than
    // the 5-minute retention) arrive while an account moves OU.
    for b in second {
        store(&t.pool, b).await;
    }
    let late = batches(11, 1_000, -40);
    store(&t.pool, &late[0]).await;
    sqlx::query("UPDATE accounts SET ou_path = 'r-1/ou-c/ou-d' WHERE account_id = $1")
        .bind(ACCOUNTS[0])
        .execute(&t.pool)
        .await
        .unwrap();
    assert!(count(&t.pool, "org_rollup_pending").await > 0);
    assert_invariant(&t.pool, "moved with pending rows").await;
    maintenance::drain_org_rollups(&t.pool).await.unwrap();
    assert_invariant(&t.pool, "moved and drained").await;

    // An account leaving the directory falls back to the '' OU; a new one
    // for data stored before it was known moves out of ''.
    sqlx::query("DELETE FROM accounts WHERE account_id = $1").bind(ACCOUNTS[1]).execute(&t.pool).await.unwrap();
    assert_invariant(&t.pool, "account deleted").await;
    let unknown = fact(0, T0 + 600, 300, 1);
    let mut stranger = unknown.clone();
    stranger.account_id = "444444444444".into();
    stranger.record_key = "stranger/total".into();
    store(&t.pool, &Batch { agent_id: "agent-x".into(), sequence: 1, facts: vec![stranger], inventory: vec![] }).await;
    maintenance::drain_org_rollups(&t.pool).await.unwrap();
    sqlx::query("INSERT INTO accounts (account_id, name, ou_path) VALUES ('444444444444', 'x', 'r-1/ou-e')")
        .execute(&t.pool)
        .await
        .unwrap();
    let groups = assert_invariant(&t.pool, "account added").await;
    assert!(groups > 20, "{groups} hourly groups");
    let ou_e: i64 = sqlx::query_scalar("SELECT sum(fact_count)::bigint FROM org_rollup_daily WHERE ou_path = 'r-1/ou-e'")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(ou_e, 1);
}

#[tokio::test]
async fn org_queries_equal_brute_force_drained_or_not() {
    let t = TestDb::migrated().await;
    seed_accounts(&t.pool).await;
    let all = batches(23, 0, 0);
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let mut rng = Rng::new(3);
    let mut team_rollup_reads = 0;
    for (round, chunk) in all.chunks(all.len() / 3 + 1).enumerate() {
        for b in chunk {
            store(&t.pool, b).await;
        }
        if round == 1 {
            maintenance::drain_org_rollups(&t.pool).await.unwrap();
        }
        let facts = stored_facts(&t.pool).await;
        for i in 0..12 {
            let from = T0 - HOUR_S + rng.below(3 * DAY_S as u64) as i64;
            let to = from + 1 + rng.below(2 * DAY_S as u64) as i64;
            let group_by = [vec![], vec![Dimension::Ou], vec![Dimension::Team, Dimension::Quality], vec![Dimension::Region]]
                [i % 4]
                .clone();
            let filters = match i % 3 {
                0 => Filters::default(),
                1 => Filters { ou: vec!["r-1/ou-a".into()], ..Filters::default() },
                _ => Filters { team: vec!["web".into(), "untagged".into()], ..Filters::default() },
            };
            let req = TotalsRequest {
                from_unix_s: from,
                to_unix_s: to,
                group_by: group_by.clone(),
                filters: filters.clone(),
                page: Page { limit: 10_000, offset: 0 },
            };
            let resp = engine.totals(&req, T0 + 3 * DAY_S).await.unwrap();
            assert!(
                resp.segments.iter().all(|s| s.source.is_org() || s.source.is_team() || s.source == Source::Facts),
                "{:?}",
                resp.segments
            );
            team_rollup_reads += resp.segments.iter().filter(|s| s.source.is_team()).count();
            let keep = |f: &crate::support::Stored| {
                f.start >= from
                    && f.start < to
                    && (filters.ou.is_empty() || f.ou == "r-1/ou-a" || f.ou.starts_with("r-1/ou-a/"))
                    && (filters.team.is_empty() || filters.team.contains(&f.team))
            };
            let want = brute_group(&facts, keep, |f| {
                group_by
                    .iter()
                    .map(|d| match d {
                        Dimension::Ou => f.ou.clone(),
                        Dimension::Team => f.team.clone(),
                        Dimension::Quality => f.quality.clone(),
                        _ => f.region.clone(),
                    })
                    .collect()
            });
            let context = format!("round {round} query {i}: {req:?}");
            if group_by.is_empty() {
                let w = want.get(&Vec::new()).copied().unwrap_or(([0.0; MEASURES], 0));
                assert_eq!(resp.rows[0].metrics.fact_count, w.1, "{context}");
                assert!(close(resp.total.location_kg_co2e * 1e3, w.0[1]), "{context}");
                assert_all_measures(&resp.rows[0].metrics, &w.0, &context);
            } else {
                assert_eq!(resp.rows.len(), want.len(), "{context}");
                for row in &resp.rows {
                    let key: Vec<String> = row.dims.iter().map(|(_, v)| v.clone()).collect();
                    let w = want[&key];
                    assert_eq!(row.metrics.fact_count, w.1, "{context} {key:?}");
                    assert_all_measures(&row.metrics, &w.0, &format!("{context} {key:?}"));
                }
            }
        }
    }
    // A query by account still reads the account-level rollups.
    let by_account = TotalsRequest {
        from_unix_s: T0,
        to_unix_s: T0 + DAY_S,
        group_by: vec![Dimension::Account],
        filters: Filters::default(),
        page: Page::default(),
    };
    let resp = engine.totals(&by_account, T0 + 3 * DAY_S).await.unwrap();
    assert_eq!(resp.segments.iter().map(|s| s.source).collect::<Vec<_>>(), vec![Source::Daily]);
    assert_eq!(resp.rows.len(), 3);
    // Queries by team and quality only read the team rollups for whole days.
    assert!(team_rollup_reads >= 3, "expected team rollup reads, found {team_rollup_reads}");
}
