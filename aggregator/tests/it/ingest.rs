use canopy_aggregator::ingest::{StoreOutcome, StoreSummary, store_batch};
use canopy_aggregator::model::{Batch, FactRow, InventoryRow};
use canopy_aggregator::db::StorageMode;
use sqlx::Row;

use crate::support::{T0, TestDb, fact, store};

async fn rollup_sums(pool: &sqlx::PgPool, table: &str) -> (f64, f64, i64) {
    let row = sqlx::query(&format!(
        "SELECT COALESCE(sum(energy_kwh), 0)::float8, COALESCE(sum(location_g_co2e), 0)::float8,
                COALESCE(sum(fact_count), 0)::bigint FROM {table}"
    ))
    .fetch_one(pool)
    .await
    .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn same_agent_and_sequence_is_stored_once() {
    let t = TestDb::migrated().await;
    let batch = Batch { agent_id: "agent-a".into(), sequence: 7, facts: vec![fact(1, T0, 300, 1)], inventory: vec![] };
    let first = store(&t.pool, &batch).await;
    assert_eq!(
        first,
        StoreOutcome::Stored(StoreSummary {
            facts_received: 1,
            facts_written: 1,
            facts_replaced: 0,
            facts_stale: 0,
            facts_displaced: 0,
            inventory_received: 0,
            // facts month, fact segments month, hourly month and 5-minute
            // day, and the org rollups' hourly month and 5-minute day, did
            // not exist yet (native path; TimescaleDB makes its own chunks).
            partitions_created: if crate::support::storage() == StorageMode::Native { 6 } else { 0 },
        })
    );
    assert_eq!(store(&t.pool, &batch).await, StoreOutcome::Duplicate);
    let f = fact(1, T0, 300, 1);
    for table in ["rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly"] {
        let (e, l, n) = rollup_sums(&t.pool, table).await;
        assert_eq!((e, l, n), (f.energy_kwh, f.location_g_co2e, 1), "{table}");
    }
}

#[tokio::test]
async fn higher_revisions_replace_and_rollups_follow_the_difference() {
    if crate::support::skip_unless_native("higher_revisions_replace_and_rollups_follow_the_difference", "it checks the emptied (zero-count) rollup rows native ingest leaves; continuous aggregates drop emptied groups (the sums are checked on both paths by storage::both_paths_answer_the_same_for_a_simulated_organisation)") {
        return;
    }
    let t = TestDb::migrated().await;
    let r1 = fact(4, T0 + 600, 300, 1);
    let mut r2 = fact(4, T0 + 600, 300, 2);
    // Revision 2 also moves the resource to another team.
    r2.tags = Some(vec![("team".into(), "finance".into())]);
    r2.energy_kwh = 3.0;
    r2.location_g_co2e = 800.0;
    let mut r1b = r1.clone();
    r1b.energy_kwh = 99.0;

    let b = |seq: u64, f: &canopy_aggregator::model::FactRow| Batch {
        agent_id: "agent-a".into(),
        sequence: seq,
        facts: vec![f.clone()],
        inventory: vec![],
    };
    store(&t.pool, &b(1, &r1)).await;
    let StoreOutcome::Stored(s2) = store(&t.pool, &b(2, &r2)).await else { panic!("duplicate") };
    assert_eq!((s2.facts_written, s2.facts_replaced, s2.facts_stale), (1, 1, 0));
    // A late copy of revision 1 with other figures is ignored.
    let StoreOutcome::Stored(s3) = store(&t.pool, &b(3, &r1b)).await else { panic!("duplicate") };
    assert_eq!((s3.facts_written, s3.facts_replaced, s3.facts_stale), (0, 0, 1));

    for table in ["rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly"] {
        let (e, l, n) = rollup_sums(&t.pool, table).await;
        assert!((e - 3.0).abs() < 1e-12 && (l - 800.0).abs() < 1e-9 && n == 1, "{table}: {e} {l} {n}");
        // The old team's group is emptied, the new one holds the figures.
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(&format!(
            "SELECT team, fact_count, energy_kwh FROM {table} ORDER BY team"
        ))
        .fetch_all(&t.pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 2, "{table}");
        assert_eq!((rows[0].0.as_str(), rows[0].1), ("finance", 1));
        assert_eq!((rows[1].0.as_str(), rows[1].1), ("untagged", 0));
        assert!(rows[1].2.abs() < 1e-12);
    }
    let (rev, agent_seq): (i64, i64) =
        sqlx::query_as("SELECT revision, batch_sequence FROM emission_facts_all").fetch_one(&t.pool).await.unwrap();
    assert_eq!((rev, agent_seq), (2, 2));
}

#[tokio::test]
async fn in_batch_duplicates_keep_the_highest_revision() {
    let t = TestDb::migrated().await;
    let batch = Batch {
        agent_id: "agent-a".into(),
        sequence: 1,
        facts: vec![fact(2, T0, 300, 2), fact(2, T0, 300, 5), fact(2, T0, 300, 3)],
        inventory: vec![],
    };
    let StoreOutcome::Stored(s) = store(&t.pool, &batch).await else { panic!("duplicate") };
    assert_eq!((s.facts_received, s.facts_written, s.facts_stale), (3, 1, 2));
    let (e, _, n) = rollup_sums(&t.pool, "rollup_hourly").await;
    assert_eq!((e, n), (fact(2, T0, 300, 5).energy_kwh, 1));
}

#[tokio::test]
async fn invalid_fact_rejects_the_whole_batch() {
    let t = TestDb::migrated().await;
    let mut bad = fact(3, T0 + 3_500, 300, 1);
    bad.period_s = 300;
    let batch = Batch { agent_id: "agent-a".into(), sequence: 1, facts: vec![fact(1, T0, 300, 1), bad], inventory: vec![] };
    let mut tx = t.pool.begin().await.unwrap();
    let err = store_batch(&mut tx, &batch).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "fact 1 of batch (agent-a, 1): expected an interval within one UTC hour, found 300 s starting 3500 s into the hour"
    );
}

#[tokio::test]
async fn inventory_keeps_current_state_and_history_of_changes() {
    let t = TestDb::migrated().await;
    let row = |observed: i64, team: &str| InventoryRow {
        account_id: "111111111111".into(),
        region: "eu-west-1".into(),
        resource_id: "i-1".into(),
        resource_type: "ec2:instance".into(),
        service: "AmazonEC2".into(),
        tags: vec![("team".into(), team.into())],
        attributes: vec![],
        observed_unix_s: observed,
        deleted: false,
    };
    let b = |seq: u64, r: InventoryRow| Batch { agent_id: "a".into(), sequence: seq, facts: vec![], inventory: vec![r] };
    store(&t.pool, &b(1, row(T0, "web"))).await;
    store(&t.pool, &b(2, row(T0 + 60, "web"))).await; // unchanged: no history row
    store(&t.pool, &b(3, row(T0 + 120, "data"))).await; // changed tags
    store(&t.pool, &b(4, row(T0 + 30, "ml"))).await; // older observation: ignored
    let (team, last_seen): (String, i64) =
        sqlx::query_as("SELECT team, extract(epoch FROM last_seen)::bigint FROM resources").fetch_one(&t.pool).await.unwrap();
    assert_eq!((team.as_str(), last_seen), ("data", T0 + 120));
    let history: Vec<(String,)> =
        sqlx::query_as("SELECT team FROM resource_history ORDER BY valid_from").fetch_all(&t.pool).await.unwrap();
    assert_eq!(history, vec![("web".to_owned(),), ("data".to_owned(),)]);
}

/// The delivery path: a decoded wire batch converted at the edge and stored;
/// a re-estimate with a higher revision replaces it in every rollup.
#[tokio::test]
async fn protocol_batches_store_and_supersede() {
    use canopy_protocol as wire;
    let t = TestDb::migrated().await;
    let record = |revision: u32, operational: f64| wire::EmissionRecord {
        subject: wire::Subject::Group(wire::GroupKey {
            service: "lambda".into(),
            resource_type: "function".into(),
            team: Some("web".into()),
        }),
        interval_start_unix_s: T0 + 3_600,
        interval_end_unix_s: T0 + 7_200,
        energy_compute_kwh: 0.5,
        energy_memory_kwh: 0.1,
        energy_storage_kwh: 0.0,
        energy_networking_kwh: 0.0,
        energy_accelerators_kwh: 0.0,
        pue: 1.2,
        embodied_g_co2e: 10.0,
        operational_location_g_co2e: operational,
        operational_market_g_co2e: 50.0,
        grid_location: wire::GridFactorUsed { g_co2e_per_kwh: 300.0, source: "ccf".into(), vintage: "2024".into() },
        grid_market: wire::GridFactorUsed { g_co2e_per_kwh: 70.0, source: "residual-mix".into(), vintage: "2024".into() },
        quality: wire::Quality::Measured,
        low_g_co2e: 150.0,
        high_g_co2e: 300.0,
        methodology_version: "canopy-1".into(),
        revision,
    };
    let batch = |sequence: u64, r: wire::EmissionRecord| wire::Batch {
        agent_id: "agent-9".into(),
        account_id: "444444444444".into(),
        region: "eu-west-1".into(),
        sequence,
        idempotency_key: wire::IdempotencyKey([0; 16]),
        created_at_unix_ms: 0,
        resources: vec![],
        emissions: vec![r],
        agent_status: None,
    };
    let b1 = canopy_aggregator::from_protocol::batch_from_protocol(&batch(1, record(1, 216.0)));
    let b2 = canopy_aggregator::from_protocol::batch_from_protocol(&batch(2, record(2, 180.0)));
    store(&t.pool, &b1).await;
    store(&t.pool, &b2).await;
    for table in ["rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly"] {
        let (e, l, n) = rollup_sums(&t.pool, table).await;
        // energy (0.5 + 0.1) kWh x 1.2 = 0.72 kWh; location 10 + 180 = 190 g (revision 2).
        assert!((e - 0.72).abs() < 1e-12 && (l - 190.0).abs() < 1e-9 && n == 1, "{table}: {e} {l} {n}");
    }
    let (team, key): (String, String) =
        sqlx::query_as("SELECT team, record_key FROM emission_facts_all").fetch_one(&t.pool).await.unwrap();
    assert_eq!((team.as_str(), key.as_str()), ("web", "group:lambda/function/web@3600s"));
}

/// Concurrent writers of the same keys (same account and region) with
/// different revisions: the rollups still equal the stored facts.
#[tokio::test]
async fn concurrent_superseding_batches_keep_rollups_exact() {
    let t = TestDb::migrated().await;
    // Create the partitions first, as maintenance does in service.
    store(&t.pool, &Batch { agent_id: "warm".into(), sequence: 0, facts: vec![fact(0, T0, 300, 1)], inventory: vec![] }).await;
    let mut tasks = Vec::new();
    for writer in 0..4u32 {
        let pool = t.pool.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..5u32 {
                // Resources 3, 6, 9, ... share account 111111111111 / eu-west-1 or us-east-1.
                let facts = (0..40u64)
                    .map(|r| fact(3 * r, T0 + 300 * (r as i64 % 12), 300, 1 + (writer * 7 + round * 3 + r as u32) % 6))
                    .collect();
                let batch = Batch { agent_id: format!("w{writer}"), sequence: u64::from(round), facts, inventory: vec![] };
                let mut tx = pool.begin().await.unwrap();
                store_batch(&mut tx, &batch).await.unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // TimescaleDB: the aggregates' refresh (the writers called store_batch).
    crate::support::settle_if_timescaledb(&t.pool).await;
    let (fe, fl, fnum): (f64, f64, i64) = sqlx::query_as(
        "SELECT sum(energy_kwh), sum(location_g_co2e), count(*) FROM emission_facts_all",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    // 40 keys (resource 0 at T0 is the warm-up key too).
    assert_eq!(fnum, 40);
    for table in ["rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly"] {
        let (e, l, n) = rollup_sums(&t.pool, table).await;
        assert!((e - fe).abs() < 1e-9 && (l - fl).abs() < 1e-6 && n == fnum, "{table}: {e} vs {fe}, {l} vs {fl}, {n}");
    }
    // Every key holds the highest revision any writer sent: 6 where reachable.
    let max_rev: i64 = sqlx::query_scalar("SELECT min(revision) FROM emission_facts_all")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(max_rev, 6);
}

/// One batch mixing every case of the facts statement: keys not stored yet
/// (inserted), stored with a lower revision (updated, in another team and
/// with other figures), stored with an equal or higher revision (stale), and
/// a key twice in the batch; the facts span several 5-minute buckets. Every
/// rollup group and the org pending deltas equal the stored facts.
#[tokio::test]
async fn mixed_batch_inserts_replaces_and_skips_and_every_group_follows() {
    if crate::support::skip_unless_native("mixed_batch_inserts_replaces_and_skips_and_every_group_follows", "it checks the native rollup tables and org_rollup_pending deltas ingest writes") {
        return;
    }
    let t = TestDb::migrated().await;
    // Resources 3, 6, 9, ... are in account 111111111111 (one advisory-lock scope per region).
    let first: Vec<_> = (1..=6u64).map(|r| fact(3 * r, T0 + 300 * r as i64, 300, 2)).collect();
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 1, facts: first, inventory: vec![] }).await;

    let mut replacing = fact(3, T0 + 300, 300, 3);
    replacing.tags = Some(vec![("team".into(), "finance".into())]);
    replacing.energy_kwh = 7.5;
    let facts = vec![
        replacing,                        // replaces revision 2
        fact(6, T0 + 600, 300, 2),        // equal revision: stale
        fact(9, T0 + 900, 300, 1),        // lower revision: stale
        fact(30, T0 + 1_200, 300, 1),     // new
        fact(33, T0 + 3_600, 300, 1),     // new, next hour
        fact(33, T0 + 3_600, 300, 4),     // same key, higher revision: this one is kept
    ];
    let StoreOutcome::Stored(s) = store(&t.pool, &Batch { agent_id: "a".into(), sequence: 2, facts, inventory: vec![] }).await
    else {
        panic!("duplicate")
    };
    assert_eq!((s.facts_received, s.facts_written, s.facts_replaced, s.facts_stale), (6, 3, 1, 3));

    let revisions: Vec<(String, i64)> =
        sqlx::query_as("SELECT resource_id, revision FROM emission_facts_all ORDER BY resource_id")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    let expected: Vec<(String, i64)> = [(12, 2), (15, 2), (18, 2), (3, 3), (30, 1), (33, 4), (6, 2), (9, 2)]
        .iter()
        .map(|(r, rev)| (format!("r{r}"), *rev))
        .collect();
    assert_eq!(revisions, expected);

    let facts = crate::support::stored_facts(&t.pool).await;
    for (table, bucket_s) in [("rollup_5m", 300), ("rollup_hourly", 3_600), ("rollup_daily", 86_400), ("org_rollup_pending", 300)] {
        let want = crate::support::brute_group(
            &facts,
            |_| true,
            |f| {
                vec![
                    (f.start - f.start.rem_euclid(bucket_s)).to_string(),
                    f.account.clone(),
                    f.region.clone(),
                    f.service.clone(),
                    f.resource_type.clone(),
                    f.team.clone(),
                    f.quality.clone(),
                ]
            },
        );
        let rows = sqlx::query(&format!(
            "SELECT extract(epoch FROM bucket_start)::bigint, account_id, region, service, resource_type, team, quality,
                    sum(energy_kwh)::float8, sum(location_g_co2e)::float8, sum(fact_count)::bigint, {}
             FROM {table} GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(fact_count) <> 0",
            canopy_aggregator::accounting::MEASURE_COLUMNS.map(|c| format!("sum({c})::float8")).join(", ")
        ))
        .fetch_all(&t.pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), want.len(), "{table}: groups");
        for row in rows {
            let key: Vec<String> = std::iter::once(row.get::<i64, _>(0).to_string())
                .chain((1..7).map(|i| row.get::<String, _>(i)))
                .collect();
            let (sums, count) = want.get(&key).unwrap_or_else(|| panic!("{table}: unexpected group {key:?}"));
            let (e, l, n): (f64, f64, i64) = (row.get(7), row.get(8), row.get(9));
            assert!(
                crate::support::close(e, sums[0]) && crate::support::close(l, sums[1]) && n == *count,
                "{table} {key:?}: {e} {l} {n} vs {sums:?} {count}"
            );
            // Every part too, per bucket and group.
            for (i, want) in sums.iter().enumerate() {
                let got: f64 = row.get(10 + i);
                assert!(crate::support::close(got, *want), "{table} {key:?}: measure {i}: {got} vs {want}");
            }
        }
    }
}

/// The segments of (account, region, start) in insertion order: (record
/// keys, revisions, superseded positions).
async fn segments_of(pool: &sqlx::PgPool, f: &FactRow) -> Vec<(Vec<String>, Vec<i64>, Vec<i32>)> {
    sqlx::query_as(
        "SELECT record_keys, revisions, superseded FROM emission_fact_segments
         WHERE account_id = $1 AND region = $2 AND period_start = to_timestamp($3::bigint) ORDER BY segment_id",
    )
    .bind(&f.account_id)
    .bind(&f.region)
    .bind(f.period_start_unix_s)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn with_key(mut f: FactRow, key: &str, revision: u32, energy_kwh: f64) -> FactRow {
    f.record_key = key.into();
    f.revision = revision;
    f.energy_kwh = energy_kwh;
    f
}

#[tokio::test]
async fn a_batch_is_one_segment_per_group_and_later_revisions_mark_earlier_positions() {
    if crate::support::skip_unless_native("a_batch_is_one_segment_per_group_and_later_revisions_mark_earlier_positions", "fact segments are the native layout") {
        return;
    }
    let t = TestDb::migrated().await;
    let base = fact(3, T0, 3_600, 1);
    let first = vec![with_key(base.clone(), "a", 1, 1.0), with_key(base.clone(), "b", 1, 2.0)];
    store(&t.pool, &Batch { agent_id: "agent-a".into(), sequence: 1, facts: first, inventory: vec![] }).await;
    // a replaced, b stale (equal revision), c new.
    let second =
        vec![with_key(base.clone(), "a", 2, 10.0), with_key(base.clone(), "b", 1, 50.0), with_key(base.clone(), "c", 1, 4.0)];
    let StoreOutcome::Stored(s) =
        store(&t.pool, &Batch { agent_id: "agent-a".into(), sequence: 2, facts: second, inventory: vec![] }).await
    else {
        panic!("duplicate")
    };
    assert_eq!((s.facts_written, s.facts_replaced, s.facts_stale), (2, 1, 1));
    let segments = segments_of(&t.pool, &base).await;
    assert_eq!(
        segments,
        vec![
            (vec!["a".to_owned(), "b".to_owned()], vec![1, 1], vec![1]),
            (vec!["a".to_owned(), "c".to_owned()], vec![2, 1], vec![]),
        ]
    );
    let facts: Vec<(String, i64, f64)> =
        sqlx::query_as("SELECT record_key, revision, energy_kwh FROM emission_facts_all ORDER BY record_key")
            .fetch_all(&t.pool)
            .await
            .unwrap();
    assert_eq!(facts, vec![("a".into(), 2, 10.0), ("b".into(), 1, 2.0), ("c".into(), 1, 4.0)]);
    // A third revision of a finds it in the second segment, not the first.
    let third = vec![with_key(base.clone(), "a", 3, 0.5)];
    store(&t.pool, &Batch { agent_id: "agent-a".into(), sequence: 3, facts: third, inventory: vec![] }).await;
    let marks: Vec<Vec<i32>> = segments_of(&t.pool, &base).await.into_iter().map(|s| s.2).collect();
    assert_eq!(marks, vec![vec![1], vec![1], vec![]]);
    for table in ["rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly"] {
        let (e, _, n) = rollup_sums(&t.pool, table).await;
        assert!((e - 6.5).abs() < 1e-12 && n == 3, "{table}: {e} kWh, {n} facts");
    }
}

#[tokio::test]
async fn a_hash_match_with_another_stored_key_is_not_a_match() {
    if crate::support::skip_unless_native("a_hash_match_with_another_stored_key_is_not_a_match", "fact segments are the native layout") {
        return;
    }
    let t = TestDb::migrated().await;
    let base = fact(3, T0, 3_600, 1);
    // Partitions for the hand-made segment.
    store(&t.pool, &Batch { agent_id: "agent-a".into(), sequence: 1, facts: vec![with_key(base.clone(), "x", 1, 1.0)], inventory: vec![] })
        .await;
    // A segment whose hash of "a" belongs to the key "zz" (what a collision looks like).
    sqlx::query(
        "INSERT INTO emission_fact_segments (period_start, account_id, region, agent_id, batch_sequence, record_count,
                key_hashes, period_s, record_keys, revisions, resource_ids, resource_types, services, teams, qualities,
                energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, methodology_versions,
                factor_sources, factor_vintages)
         VALUES (to_timestamp($1::bigint), $2, $3, 'other', 1, 1, ARRAY[$4::bigint], '{3600}', '{zz}', '{9}', '{r3}',
                 '{ec2:instance}', '{AmazonEC2}', '{web}', '{measured}', '{7}', '{7}', '{7}', '{7}', '{7}',
                 '{canopy-1}', '{ccf}', '{2024}')",
    )
    .bind(base.period_start_unix_s)
    .bind(&base.account_id)
    .bind(&base.region)
    .bind(canopy_aggregator::fact_segments::key_hash("a"))
    .execute(&t.pool)
    .await
    .unwrap();
    let StoreOutcome::Stored(s) = store(
        &t.pool,
        &Batch { agent_id: "agent-a".into(), sequence: 2, facts: vec![with_key(base.clone(), "a", 1, 2.0)], inventory: vec![] },
    )
    .await
    else {
        panic!("duplicate")
    };
    assert_eq!((s.facts_written, s.facts_replaced, s.facts_stale), (1, 0, 0));
    let marks: Vec<Vec<i32>> = segments_of(&t.pool, &base).await.into_iter().map(|s| s.2).collect();
    assert_eq!(marks, vec![Vec::<i32>::new(); 3]);
}

#[tokio::test]
async fn rows_of_the_row_layout_are_replaced_and_their_values_subtracted() {
    if crate::support::skip_unless_native("rows_of_the_row_layout_are_replaced_and_their_values_subtracted", "the row layout of emission_fact_segments is native") {
        return;
    }
    let t = TestDb::migrated().await;
    let base = fact(3, T0, 3_600, 1);
    store(&t.pool, &Batch { agent_id: "agent-a".into(), sequence: 1, facts: vec![with_key(base.clone(), "x", 1, 1.0)], inventory: vec![] })
        .await;
    // Rows written before migration 0012 (no rollups added here: only the difference is checked).
    for (key, revision, energy_kwh) in [("old", 1_i64, 5.0_f64), ("kept", 4, 6.0)] {
        sqlx::query(
            "INSERT INTO emission_facts (period_start, period_s, account_id, region, record_key, revision, resource_id,
                    resource_type, service, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e,
                    high_g_co2e, methodology_version, factor_source, factor_vintage, agent_id, batch_sequence)
             VALUES (to_timestamp($1::bigint), 3600, $2, $3, $4, $5, 'r3', 'ec2:instance', 'AmazonEC2', 'web',
                     'measured', $6, 0, 0, 0, 0, 'canopy-1', 'ccf', '2024', 'old-agent', 1)",
        )
        .bind(base.period_start_unix_s)
        .bind(&base.account_id)
        .bind(&base.region)
        .bind(key)
        .bind(revision)
        .bind(energy_kwh)
        .execute(&t.pool)
        .await
        .unwrap();
    }
    let (before, _, n_before) = rollup_sums(&t.pool, "rollup_hourly").await;
    let batch = vec![with_key(base.clone(), "old", 2, 0.25), with_key(base.clone(), "kept", 3, 100.0)];
    let StoreOutcome::Stored(s) =
        store(&t.pool, &Batch { agent_id: "agent-a".into(), sequence: 2, facts: batch, inventory: vec![] }).await
    else {
        panic!("duplicate")
    };
    assert_eq!((s.facts_written, s.facts_replaced, s.facts_stale), (1, 1, 1));
    let (after, _, n_after) = rollup_sums(&t.pool, "rollup_hourly").await;
    assert!((after - before - (0.25 - 5.0)).abs() < 1e-12, "{before} -> {after}");
    assert_eq!(n_after, n_before);
    let facts: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT record_key, revision, energy_kwh FROM emission_facts_all WHERE record_key <> 'x' ORDER BY record_key",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(facts, vec![("kept".into(), 4, 6.0), ("old".into(), 2, 0.25)]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM emission_facts").fetch_one(&t.pool).await.unwrap();
    assert_eq!(rows, 1);
}
