use canopy_aggregator::db::{self, MIGRATOR, StorageMode};

use crate::support::TestDb;

#[tokio::test]
async fn migrations_apply_from_empty_and_rerun() {
    if crate::support::skip_unless_native("migrations_apply_from_empty_and_rerun", "it checks the native relations; the TimescaleDB migration is checked by storage::the_storage_path_is_chosen_once_and_never_flips") {
        return;
    }
    let t = TestDb::empty().await;
    db::migrate(&t.pool).await.expect("first run");
    db::migrate(&t.pool).await.expect("second run is a no-op");

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(applied, MIGRATOR.iter().count() as i64);
    // Every file in `migrations/` is embedded (a new file without a rebuild
    // would be missing here).
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
        .count();
    assert_eq!(applied, files as i64);
    assert_eq!(db::storage_mode(&t.pool).await.unwrap(), StorageMode::Native);

    // Replaying every file by hand changes nothing and does not fail.
    for m in MIGRATOR.iter() {
        sqlx::raw_sql(&m.sql).execute(&t.pool).await.unwrap_or_else(|e| panic!("replay {}: {e}", m.description));
    }
    let settings: i64 = sqlx::query_scalar("SELECT count(*) FROM canopy_settings").fetch_one(&t.pool).await.unwrap();
    assert_eq!(settings, 1);

    // The expected relations exist, facts and two rollups partitioned.
    let kinds: Vec<(String, String)> = sqlx::query_as(
        "SELECT relname::text, relkind::text FROM pg_class
         WHERE relname IN ('emission_facts', 'emission_fact_segments', 'emission_facts_all', 'rollup_5m', 'rollup_hourly', 'rollup_daily', 'rollup_monthly', 'accounts',
                           'organisations', 'resources', 'resource_history', 'ingested_batches',
                           'account_team_rules', 'org_rollup_5m', 'org_rollup_hourly', 'org_rollup_daily',
                           'org_rollup_monthly', 'org_rollup_pending', 'realtime_group_facts',
                           'org_team_rollup_daily', 'org_team_rollup_monthly', 'coarsened_hours')
         ORDER BY 1",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    let expect = [
        ("account_team_rules", "r"),
        ("accounts", "r"),
        ("coarsened_hours", "r"),
        ("emission_fact_segments", "p"),
        ("emission_facts", "p"),
        ("emission_facts_all", "v"),
        ("ingested_batches", "r"),
        ("org_rollup_5m", "p"),
        ("org_rollup_daily", "r"),
        ("org_rollup_hourly", "p"),
        ("org_rollup_monthly", "r"),
        ("org_rollup_pending", "r"),
        ("org_team_rollup_daily", "r"),
        ("org_team_rollup_monthly", "r"),
        ("organisations", "r"),
        ("realtime_group_facts", "p"),
        ("resource_history", "r"),
        ("resources", "r"),
        ("rollup_5m", "p"),
        ("rollup_daily", "r"),
        ("rollup_hourly", "p"),
        ("rollup_monthly", "r"),
    ];
    let got: Vec<(&str, &str)> = kinds.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(got, expect);
}

/// Issue 14, section 4: figures stored before migration 0022 (embodied
/// folded into both totals, no parts) are moved forward by the unsplit rule
/// (all operational, embodied 0, IT energy = facility energy) at every
/// level, flagged per fact (`parts_unsplit`) and per answer (factor sets
/// with parts `unsplit-before-0022`), and their parts add up to the totals.
#[tokio::test]
async fn figures_stored_before_0022_are_moved_forward_and_flagged() {
    if crate::support::skip_unless_native("figures_stored_before_0022_are_moved_forward_and_flagged", "it writes the native relations of before 0022 by hand") {
        return;
    }
    let t = TestDb::empty().await;
    // The schema of before 0022 (0002 is the TimescaleDB path: skipped here
    // as the native migrator does).
    for m in MIGRATOR.iter().filter(|m| m.version < 22 && m.version != 2) {
        sqlx::raw_sql(&m.sql).execute(&t.pool).await.unwrap_or_else(|e| panic!("{}: {e}", m.description));
    }
    let hour = crate::support::T0;
    sqlx::query("SELECT canopy_ensure_time_partitions(ARRAY[$1::bigint])").bind(hour).execute(&t.pool).await.unwrap();
    // One fact as a row, one in a segment, and the rollups they made.
    sqlx::query(
        "INSERT INTO emission_facts (period_start, period_s, account_id, region, record_key, revision, resource_id,
                resource_type, service, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e,
                high_g_co2e, methodology_version, factor_source, factor_vintage, agent_id, batch_sequence)
         VALUES (to_timestamp($1), 3600, '111111111111', 'eu-west-1', 'a@3600s', 1, 'a', 'ec2:instance', 'AmazonEC2',
                 'web', 'measured', 2.0, 600.0, 500.0, 400.0, 900.0, 'canopy-1', 'ccf', '2024', 'agent', 1)",
    )
    .bind(hour as f64)
    .execute(&t.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO emission_fact_segments (period_start, account_id, region, agent_id, batch_sequence, record_count,
                key_hashes, period_s, record_keys, revisions, resource_ids, resource_types, services, teams, qualities,
                energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, methodology_versions,
                factor_sources, factor_vintages)
         VALUES (to_timestamp($1), '111111111111', 'eu-west-1', 'agent', 2, 1, '{7}', '{3600}', '{b@3600s}', '{1}',
                 '{b}', '{ec2:instance}', '{AmazonEC2}', '{web}', '{measured}', '{1.0}', '{300.0}', '{250.0}',
                 '{200.0}', '{450.0}', '{canopy-1}', '{ccf}', '{2024}')",
    )
    .bind(hour as f64)
    .execute(&t.pool)
    .await
    .unwrap();
    for (table, bucket) in [
        ("rollup_5m", "to_timestamp($1)"),
        ("rollup_hourly", "to_timestamp($1)"),
        ("rollup_daily", "date_bin(interval '1 day', to_timestamp($1), timestamptz 'epoch')"),
        ("rollup_monthly", "date_trunc('month', to_timestamp($1) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {table} (bucket_start, account_id, region, service, resource_type, team, quality, energy_kwh,
                    location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, fact_count)
             VALUES ({bucket}, '111111111111', 'eu-west-1', 'AmazonEC2', 'ec2:instance', 'web', 'measured', 3.0,
                     900.0, 750.0, 600.0, 1350.0, 2)"
        ))
        .bind(hour as f64)
        .execute(&t.pool)
        .await
        .unwrap();
    }

    db::migrate(&t.pool).await.expect("0022 over stored figures");

    // Facts: the unsplit rule, flagged.
    type Parts = (String, f64, f64, f64, f64, f64, f64, f64, bool);
    let facts: Vec<Parts> = sqlx::query_as(
        "SELECT record_key, it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e,
                operational_location_high_g_co2e, operational_market_g_co2e, operational_market_low_g_co2e,
                embodied_g_co2e, parts_unsplit
         FROM emission_facts_all_parts ORDER BY 1",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(
        facts,
        vec![
            ("a@3600s".to_owned(), 2.0, 600.0, 400.0, 900.0, 500.0, 500.0, 0.0, true),
            ("b@3600s".to_owned(), 1.0, 300.0, 200.0, 450.0, 250.0, 250.0, 0.0, true),
        ]
    );
    // Rollups: the same rule, so they still equal their facts.
    for table in ["rollup_5m", "rollup_hourly", "rollup_daily", "rollup_monthly"] {
        let parts: (f64, f64, f64, f64, f64, f64, f64) = sqlx::query_as(&format!(
            "SELECT it_energy_kwh, operational_location_g_co2e, operational_location_low_g_co2e,
                    operational_location_high_g_co2e, operational_market_g_co2e, operational_market_high_g_co2e,
                    embodied_g_co2e + embodied_low_g_co2e + embodied_high_g_co2e FROM {table}"
        ))
        .fetch_one(&t.pool)
        .await
        .unwrap();
        assert_eq!(parts, (3.0, 900.0, 600.0, 1350.0, 750.0, 750.0, 0.0), "{table}");
    }
    // Answers say which months hold such figures.
    let engine = canopy_aggregator::query::QueryEngine::new(t.pool.clone(), canopy_aggregator::maintenance::RetentionPolicy::default());
    let req = canopy_aggregator::query::TotalsRequest {
        from_unix_s: hour,
        to_unix_s: hour + 3_600,
        group_by: vec![],
        filters: Default::default(),
        page: Default::default(),
    };
    let resp = engine.totals(&req, hour + 86_400).await.unwrap();
    assert_eq!(resp.total.fact_count, 2);
    assert!((resp.total.operational_location_kg_co2e - 0.9).abs() < 1e-12);
    assert_eq!(resp.total.embodied_kg_co2e, 0.0);
    resp.total.parts_add_up(1e-12).unwrap();
    let sets: Vec<(&str, &str, &str)> = resp
        .factor_sets
        .iter()
        .map(|f| (f.location_factor_source.as_str(), f.market_factor_source.as_str(), f.parts.as_str()))
        .collect();
    assert_eq!(sets, vec![("ccf", "not-recorded", "unsplit-before-0022")]);
}
