use std::collections::BTreeMap;

use canopy_aggregator::accounting::{MEASURE_COLUMNS, MEASURES};
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::model::{Batch, FactRow};
use canopy_aggregator::query::params::parse_realtime;
use canopy_aggregator::query::{
    Dimension, Filters, Metrics, Page, QueryEngine, QueryError, Segment, SeriesRequest, Source, Step, TopResourcesRequest,
    TotalsRequest,
};
use canopy_aggregator::time::{DAY_S, FIVE_MINUTES_S, HOUR_S};
use sqlx::Row;

use crate::support::{
    ACCOUNTS, REGIONS, Rng, Stored, T0, TEAMS, TestDb, brute_group, close, fact, seed_accounts, store, stored_facts,
};

/// Loads ~2 400 facts over three days in shuffled batches (late data) with
/// superseding revisions, and returns the database. The org rollups are
/// drained once half-way, so org queries read both drained rows and
/// pending deltas.
async fn loaded() -> TestDb {
    let t = TestDb::migrated().await;
    seed_accounts(&t.pool).await;
    let mut rng = Rng::new(42);
    let mut facts: Vec<FactRow> = Vec::new();
    for _ in 0..2_000 {
        let resource = rng.below(120);
        let day = rng.below(3) as i64;
        let (start, period) = if rng.below(3) == 0 {
            (T0 + day * DAY_S + rng.below(24) as i64 * HOUR_S, 3_600)
        } else {
            (T0 + day * DAY_S + rng.below(288) as i64 * FIVE_MINUTES_S, 300)
        };
        let top = 1 + rng.below(3) as u32;
        for revision in 1..=top {
            facts.push(fact(resource, start, period, revision));
        }
    }
    // Shuffle (Fisher-Yates) so lower revisions often arrive after higher ones.
    for i in (1..facts.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        facts.swap(i, j);
    }
    let chunks: Vec<&[FactRow]> = facts.chunks(150).collect();
    for (seq, chunk) in chunks.iter().enumerate() {
        if seq == chunks.len() / 2 {
            canopy_aggregator::maintenance::drain_org_rollups(&t.pool).await.unwrap();
        }
        let batch = Batch { agent_id: "agent-a".into(), sequence: seq as u64, facts: chunk.to_vec(), inventory: vec![] };
        store(&t.pool, &batch).await;
    }
    t
}

/// Brute-force sums and count of one group.
type Sums = ([f64; MEASURES], i64);

fn dim_value(f: &Stored, d: Dimension) -> String {
    match d {
        Dimension::Account => f.account.clone(),
        Dimension::Ou => f.ou.clone(),
        Dimension::Region => f.region.clone(),
        Dimension::Service => f.service.clone(),
        Dimension::ResourceType => f.resource_type.clone(),
        Dimension::Team => f.team.clone(),
        Dimension::Quality => f.quality.clone(),
    }
}

fn matches(f: &Stored, filters: &Filters, from: i64, to: i64) -> bool {
    if f.start < from || f.start >= to {
        return false;
    }
    Dimension::ALL.into_iter().all(|d| {
        let values = filters.values(d);
        values.is_empty()
            || values.iter().any(|v| {
                let have = dim_value(f, d);
                have == *v || (d == Dimension::Ou && have.starts_with(&format!("{v}/")))
            })
    })
}

fn random_filters(rng: &mut Rng) -> Filters {
    let mut filters = Filters::default();
    let choices: [(Dimension, &[&str]); 7] = [
        (Dimension::Account, &ACCOUNTS),
        (Dimension::Ou, &["r-1/ou-a", "r-1/ou-c", "r-1/ou-a/ou-b", "r-1"]),
        (Dimension::Region, &REGIONS),
        (Dimension::Service, &["AmazonEC2", "AmazonS3"]),
        (Dimension::ResourceType, &["ec2:instance", "s3:bucket"]),
        (Dimension::Team, &["web", "data", "ml", "untagged"]),
        (Dimension::Quality, &["measured", "estimated", "default"]),
    ];
    for _ in 0..rng.below(3) {
        let (dim, values) = rng.pick(&choices);
        for _ in 0..1 + rng.below(2) {
            filters.values_mut(*dim).push((*rng.pick(values)).to_owned());
        }
    }
    filters
}

fn random_group_by(rng: &mut Rng) -> Vec<Dimension> {
    let mut dims = Vec::new();
    for _ in 0..rng.below(3) {
        let d = *rng.pick(&Dimension::ALL);
        if !dims.contains(&d) {
            dims.push(d);
        }
    }
    dims
}

/// Every measure (totals and parts) equals the brute-force sum, and the
/// answer's parts add up to its totals.
fn assert_metrics(got: &Metrics, want: &([f64; MEASURES], i64), context: &str) {
    let g = got.as_stored();
    for (i, (got, want)) in g.iter().zip(want.0.iter()).enumerate() {
        assert!(close(*got, *want), "{context}: {}: got {got} want {want}", MEASURE_COLUMNS[i]);
    }
    assert_eq!(got.fact_count, want.1, "{context}: fact count");
    if got.fact_count > 0 {
        got.parts_add_up(1e-9).unwrap_or_else(|e| panic!("{context}: {e}"));
    }
}

#[tokio::test]
async fn rollups_sum_to_the_raw_facts() {
    let t = loaded().await;
    let facts = stored_facts(&t.pool).await;
    assert!(facts.len() > 1_500, "{} facts", facts.len());
    let all = brute_group(&facts, |_| true, |_| vec![]);
    let want = &all[&Vec::<String>::new()];
    // Every measure, parts included, at every level: account, org (with
    // the pending deltas) and team rollups.
    canopy_aggregator::maintenance::drain_org_rollups(&t.pool).await.unwrap();
    let sums = MEASURE_COLUMNS.map(|c| format!("sum({c})::float8")).join(", ");
    for table in [
        "rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly", "org_rollup_5m", "org_rollup_hourly",
        "org_rollup_daily", "org_rollup_monthly", "org_team_rollup_daily", "org_team_rollup_monthly",
    ] {
        let row = sqlx::query(&format!("SELECT {sums}, sum(fact_count)::bigint FROM {table}"))
            .fetch_one(&t.pool)
            .await
            .unwrap();
        let stored: [f64; MEASURES] = std::array::from_fn(|i| row.get(i));
        let got = Metrics::from_stored(&stored, row.get(MEASURES));
        assert_metrics(&got, want, table);
    }
    // The facts carry real parts: embodied is not zero and not folded in.
    assert!(want.0[12] > 0.0 && want.0[6] < want.0[1], "{:?}", want.0);
    // Every stored fact holds the highest revision generated for its key.
    let max_rev: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM emission_facts_all f WHERE f.revision <> (SELECT max(g.revision) FROM emission_facts_all g
         WHERE g.record_key = f.record_key AND g.period_start = f.period_start)",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(max_rev, 0);
    // The per-resource daily rollup (migration 0029), per resource, day and group.
    crate::support::resource_rollup_mismatches(&t.pool).await.unwrap();
}

#[tokio::test]
async fn totals_equal_brute_force_for_random_ranges_and_filters() {
    let t = loaded().await;
    let facts = stored_facts(&t.pool).await;
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let mut rng = Rng::new(7);
    // "Near": every 5-minute rollup retained. "Far": none, so sub-hour parts
    // come from raw facts.
    let near = T0 + 4 * DAY_S;
    let far = T0 + 60 * DAY_S;
    let mut sources_seen = std::collections::HashSet::new();
    for i in 0..60 {
        let a = T0 - HOUR_S + rng.below(4 * DAY_S as u64) as i64;
        let b = T0 - HOUR_S + rng.below(4 * DAY_S as u64) as i64;
        let (mut from, mut to) = (a.min(b), a.max(b) + 1);
        if i % 3 == 0 {
            from -= from % HOUR_S;
            to -= to % FIVE_MINUTES_S;
            to = to.max(from + FIVE_MINUTES_S);
        }
        if i % 10 == 0 {
            from = T0;
            to = T0 + 2 * DAY_S;
        }
        if i % 10 == 5 {
            // The whole of November 2026 (T0 is Nov 2) plus a ragged head.
            from = T0 - DAY_S - 7_000;
            to = T0 + 29 * DAY_S;
        }
        let req = TotalsRequest {
            from_unix_s: from,
            to_unix_s: to,
            group_by: random_group_by(&mut rng),
            filters: random_filters(&mut rng),
            page: Page { limit: 10_000, offset: 0 },
        };
        let now = if i % 2 == 0 { near } else { far };
        let resp = engine.totals(&req, now).await.unwrap();
        sources_seen.extend(resp.segments.iter().map(|s| s.source));
        let want = brute_group(&facts, |f| matches(f, &req.filters, from, to), |f| {
            req.group_by.iter().map(|d| dim_value(f, *d)).collect()
        });
        let context = format!("query {i}: {req:?}");
        if req.group_by.is_empty() {
            assert_eq!(resp.rows.len(), 1, "{context}");
            let w = want.get(&Vec::new()).copied().unwrap_or(([0.0; MEASURES], 0));
            assert_metrics(&resp.rows[0].metrics, &w, &context);
        } else {
            let got: BTreeMap<Vec<String>, Metrics> =
                resp.rows.iter().map(|r| (r.dims.iter().map(|(_, v)| v.clone()).collect(), r.metrics)).collect();
            assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{context}");
            for (k, w) in &want {
                assert_metrics(&got[k], w, &format!("{context} {k:?}"));
            }
            // Largest location-based CO2e first.
            assert!(resp.rows.windows(2).all(|w| w[0].metrics.location_kg_co2e >= w[1].metrics.location_kg_co2e));
        }
        // Total and quality shares over the same range and filters.
        let all = brute_group(&facts, |f| matches(f, &req.filters, from, to), |_| vec![]);
        let w = all.get(&Vec::new()).copied().unwrap_or(([0.0; MEASURES], 0));
        assert_metrics(&resp.total, &w, &format!("{context} total"));
        let share_sum: f64 = resp.by_quality.iter().map(|q| q.share_of_location_co2e).sum();
        if w.1 > 0 {
            assert!((share_sum - 1.0).abs() < 1e-9, "{context}: shares sum to {share_sum}");
        }
    }
    for s in [
        Source::Monthly,
        Source::Daily,
        Source::Hourly,
        Source::FiveMinute,
        Source::Facts,
        Source::OrgMonthly,
        Source::OrgDaily,
        Source::OrgHourly,
        Source::OrgFiveMinute,
    ] {
        assert!(sources_seen.contains(&s), "source {s:?} never used");
    }
}

#[tokio::test]
async fn series_top_resources_and_pages_equal_brute_force() {
    let t = loaded().await;
    let facts = stored_facts(&t.pool).await;
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let mut rng = Rng::new(99);
    for i in 0..24 {
        let step = [Step::FiveMinutes, Step::Hour, Step::Day][i % 3];
        let s = step.seconds();
        let from = T0 - DAY_S + (rng.below(2 * DAY_S as u64) as i64 / s) * s;
        let to = (from + s * (1 + rng.below((2 * DAY_S / s) as u64) as i64)).min(from + 10_000 * s);
        let req = SeriesRequest {
            from_unix_s: from,
            to_unix_s: to,
            step,
            group_by: random_group_by(&mut rng),
            filters: random_filters(&mut rng),
            page: Page { limit: 10_000, offset: 0 },
        };
        let now = if i % 2 == 0 { T0 + 4 * DAY_S } else { T0 + 90 * DAY_S };
        let resp = engine.series(&req, now).await.unwrap();
        let want = brute_group(&facts, |f| matches(f, &req.filters, from, to), |f| {
            let mut k = vec![format!("{:012}", f.start - f.start.rem_euclid(s))];
            k.extend(req.group_by.iter().map(|d| dim_value(f, *d)));
            k
        });
        let got: BTreeMap<Vec<String>, Metrics> = resp
            .rows
            .iter()
            .map(|r| {
                let mut k = vec![format!("{:012}", r.bucket_start_unix_s)];
                k.extend(r.dims.iter().map(|(_, v)| v.clone()));
                (k, r.metrics)
            })
            .collect();
        let context = format!("series {i}: {req:?}");
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{context}");
        for (k, w) in &want {
            assert_metrics(&got[k], w, &format!("{context} {k:?}"));
        }
        assert!(resp.rows.windows(2).all(|w| w[0].bucket_start_unix_s <= w[1].bucket_start_unix_s));
    }

    // Top resources over two days, all accounts, then filtered by team:
    // the first page ranked exactly as the brute force ranks.
    for filters in [Filters::default(), Filters { team: vec!["web".into()], ..Filters::default() }] {
        let req = TopResourcesRequest { from_unix_s: T0, to_unix_s: T0 + 2 * DAY_S, filters: filters.clone(), page: Page { limit: 5, offset: 0 } };
        let resp = engine.top_resources(&req, T0 + 2 * DAY_S).await.unwrap();
        let want = brute_group(&facts, |f| matches(f, &filters, T0, T0 + 2 * DAY_S), |f| {
            vec![f.account.clone(), f.region.clone(), f.resource_id.clone()]
        });
        let mut ranked: Vec<(&Vec<String>, &Sums)> = want.iter().collect();
        ranked.sort_by(|a, b| b.1.0[1].total_cmp(&a.1.0[1]).then(a.0.cmp(b.0)));
        assert_eq!(resp.rows.len(), 5);
        assert!(resp.next_offset == Some(5));
        // Whole days: the per-resource daily rollup only (migration 0029).
        assert_eq!(resp.segments, vec![Segment::add(Source::ResourceDaily, T0, T0 + 2 * DAY_S)]);
        for (row, (key, w)) in resp.rows.iter().zip(ranked.iter()) {
            assert_eq!(&vec![row.account_id.clone(), row.region.clone(), row.resource_id.clone()], *key);
            assert_metrics(&row.metrics, w, "top resources");
        }
    }
    top_resources_equal_brute_force(&engine, &facts, &mut rng).await;
    // Pagination walks every group exactly once.
    let base = TotalsRequest {
        from_unix_s: T0,
        to_unix_s: T0 + 3 * DAY_S,
        group_by: vec![Dimension::Account, Dimension::Region, Dimension::Team, Dimension::Quality],
        filters: Filters::default(),
        page: Page { limit: 10_000, offset: 0 },
    };
    let full = engine.totals(&base, T0).await.unwrap();
    assert_eq!(full.next_offset, None);
    let mut walked = Vec::new();
    let mut offset = 0;
    loop {
        let page = engine.totals(&TotalsRequest { page: Page { limit: 7, offset }, ..base.clone() }, T0).await.unwrap();
        walked.extend(page.rows);
        match page.next_offset {
            Some(next) => offset = next,
            None => break,
        }
    }
    assert_eq!(walked, full.rows);
    // 3 accounts x 2 regions x 4 teams x 3 qualities at most.
    assert!(full.rows.len() > 30 && full.rows.len() <= 72, "{}", full.rows.len());
}

/// Top resources over random ranges (whole UTC days, ragged edges at any
/// second, hours) and filters, near and far from the data (far: 5-minute
/// rollups expired, and at 500 days the facts too): every resource, its
/// sums (parts included), fact count and labels (its latest fact's
/// service, resource type and team) equal the brute force over the live
/// facts, in location-based order; whole days are read from the
/// per-resource daily rollup, edges from the facts, and past the facts'
/// retention whole days are still answered and ragged edges refused.
async fn top_resources_equal_brute_force(engine: &QueryEngine, facts: &[Stored], rng: &mut Rng) {
    let mut sources_seen = std::collections::HashSet::new();
    for i in 0..36 {
        let (from, to) = match i % 3 {
            0 => {
                let a = T0 - DAY_S + rng.below(4) as i64 * DAY_S;
                (a, a + (1 + rng.below(3) as i64) * DAY_S)
            }
            1 => {
                let a = T0 - HOUR_S + rng.below(4 * DAY_S as u64) as i64;
                let b = T0 - HOUR_S + rng.below(4 * DAY_S as u64) as i64;
                (a.min(b), a.max(b) + 1)
            }
            _ => {
                let a = T0 + rng.below(72) as i64 * HOUR_S;
                (a, a + (1 + rng.below(60) as i64) * HOUR_S)
            }
        };
        let filters = if i % 4 == 0 { Filters::default() } else { random_filters(rng) };
        let req = TopResourcesRequest { from_unix_s: from, to_unix_s: to, filters, page: Page { limit: 10_000, offset: 0 } };
        let now = if i % 2 == 0 { T0 + 4 * DAY_S } else { T0 + 90 * DAY_S };
        let resp = engine.top_resources(&req, now).await.unwrap();
        sources_seen.extend(resp.segments.iter().map(|s| (s.source, s.subtract)));
        let context = format!("top resources {i}: {req:?} {:?}", resp.segments);
        let want = brute_group(facts, |f| matches(f, &req.filters, from, to), |f| {
            vec![f.account.clone(), f.region.clone(), f.resource_id.clone()]
        });
        let got: BTreeMap<Vec<String>, &canopy_aggregator::query::ResourceRow> = resp
            .rows
            .iter()
            .map(|r| (vec![r.account_id.clone(), r.region.clone(), r.resource_id.clone()], r))
            .collect();
        assert_eq!(got.len(), resp.rows.len(), "{context}: a resource listed twice");
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{context}");
        for (k, w) in &want {
            let row = got[k];
            assert_metrics(&row.metrics, w, &format!("{context} {k:?}"));
            let latest = facts
                .iter()
                .filter(|f| matches(f, &req.filters, from, to) && [&f.account, &f.region, &f.resource_id] == [&k[0], &k[1], &k[2]])
                .max_by_key(|f| f.start)
                .unwrap();
            assert_eq!(
                (&row.service, &row.resource_type, &row.team),
                (&latest.service, &latest.resource_type, &latest.team),
                "{context} {k:?}"
            );
        }
        assert!(resp.rows.windows(2).all(|w| w[0].metrics.location_kg_co2e >= w[1].metrics.location_kg_co2e), "{context}");
    }
    for seen in [(Source::ResourceDaily, false), (Source::Facts, false), (Source::Facts, true)] {
        assert!(sources_seen.contains(&seen), "{seen:?} never used: {sources_seen:?}");
    }
    // Past the facts' 13 months: whole days from the per-resource daily
    // rollup alone, ragged edges refused naming the edge.
    let far = T0 + 500 * DAY_S;
    let whole = TopResourcesRequest { from_unix_s: T0, to_unix_s: T0 + 2 * DAY_S, filters: Filters::default(), page: Page { limit: 10_000, offset: 0 } };
    let resp = engine.top_resources(&whole, far).await.unwrap();
    assert_eq!(resp.segments, vec![Segment::add(Source::ResourceDaily, T0, T0 + 2 * DAY_S)]);
    let count: i64 = resp.rows.iter().map(|r| r.metrics.fact_count).sum();
    assert_eq!(count, facts.iter().filter(|f| f.start >= T0 && f.start < T0 + 2 * DAY_S).count() as i64);
    let ragged = TopResourcesRequest { from_unix_s: T0 + HOUR_S, ..whole };
    match engine.top_resources(&ragged, far).await {
        Err(QueryError::OutsideRetention(e)) => assert_eq!((e.parameter, e.round_down_unix_s, e.round_up_unix_s), ("from", T0, T0 + DAY_S)),
        other => panic!("expected a refusal, found {:?}", other.map(|r| r.segments)),
    }
}

#[tokio::test]
async fn realtime_is_the_last_hour_at_five_minutes() {
    let t = TestDb::migrated().await;
    // Facts at 10:00, 10:25 and 10:55 of day T0, and one at 09:00 (outside).
    let mut facts = Vec::new();
    for (i, minute) in [0, 25, 55].into_iter().enumerate() {
        facts.push(fact(i as u64, T0 + 10 * HOUR_S + minute * 60, 300, 1));
    }
    facts.push(fact(9, T0 + 9 * HOUR_S, 300, 1));
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 1, facts: facts.clone(), inventory: vec![] }).await;
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let now = T0 + 10 * HOUR_S + 57 * 60; // 10:57
    let req = parse_realtime(&[], now).unwrap();
    let resp = engine.series(&req, now).await.unwrap();
    let got: Vec<(i64, f64)> = resp.rows.iter().map(|r| (r.bucket_start_unix_s, r.metrics.energy_kwh)).collect();
    assert_eq!(
        got,
        vec![
            (T0 + 10 * HOUR_S, facts[0].energy_kwh),
            (T0 + 10 * HOUR_S + 25 * 60, facts[1].energy_kwh),
            (T0 + 10 * HOUR_S + 55 * 60, facts[2].energy_kwh),
        ]
    );
    assert_eq!(resp.segments.iter().map(|s| s.source).collect::<Vec<_>>(), vec![Source::OrgFiveMinute]);
    let _ = TEAMS;
}
