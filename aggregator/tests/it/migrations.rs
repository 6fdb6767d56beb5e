use canopy_aggregator::db::{self, MIGRATOR, StorageMode};

use crate::support::TestDb;

#[tokio::test]
async fn migrations_apply_from_empty_and_rerun() {
    let t = TestDb::empty().await;
    db::migrate(&t.pool).await.expect("first run");
    db::migrate(&t.pool).await.expect("second run is a no-op");

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&t.pool)
        .await
        .unwrap();
    assert_eq!(applied, MIGRATOR.iter().count() as i64);
    assert_eq!(applied, 11);
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
                           'org_team_rollup_daily', 'org_team_rollup_monthly')
         ORDER BY 1",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    let expect = [
        ("account_team_rules", "r"),
        ("accounts", "r"),
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
