use canopy_aggregator::model::Batch;

use crate::support::{T0, TestDb, fact, store};

#[tokio::test]
async fn team_comes_from_tag_then_account_rule_then_untagged() {
    let t = TestDb::migrated().await;
    // Account 222222222222 has a default team; 111111111111 has none.
    sqlx::query("INSERT INTO account_team_rules (account_id, default_team) VALUES ('222222222222', 'platform')")
        .execute(&t.pool)
        .await
        .unwrap();
    let mut a_tagged = fact(1, T0, 300, 1);
    a_tagged.account_id = "111111111111".into();
    a_tagged.tags = vec![("team".into(), "web".into())];
    let mut a_untagged = fact(2, T0, 300, 1);
    a_untagged.account_id = "111111111111".into();
    a_untagged.tags = vec![("owner".into(), "alice".into())];
    let mut b_untagged = fact(3, T0, 300, 1);
    b_untagged.account_id = "222222222222".into();
    b_untagged.tags = vec![("team".into(), "".into())];
    let mut b_tagged = fact(4, T0, 300, 1);
    b_tagged.account_id = "222222222222".into();
    b_tagged.tags = vec![("team".into(), "data".into())];
    let batch = Batch {
        agent_id: "a".into(),
        sequence: 1,
        facts: vec![a_tagged, a_untagged, b_untagged, b_tagged],
        inventory: vec![],
    };
    store(&t.pool, &batch).await;

    // The tag key is configurable; later facts use the new key.
    sqlx::query("UPDATE canopy_settings SET team_tag_key = 'cost-centre'").execute(&t.pool).await.unwrap();
    let mut c = fact(5, T0, 300, 1);
    c.account_id = "111111111111".into();
    c.tags = vec![("team".into(), "web".into()), ("cost-centre".into(), "cc-42".into())];
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 2, facts: vec![c], inventory: vec![] }).await;

    let got: Vec<(String, String)> =
        sqlx::query_as("SELECT resource_id, team FROM emission_facts ORDER BY resource_id").fetch_all(&t.pool).await.unwrap();
    let got: Vec<(&str, &str)> = got.iter().map(|(r, t)| (r.as_str(), t.as_str())).collect();
    assert_eq!(got, vec![("r1", "web"), ("r2", "untagged"), ("r3", "platform"), ("r4", "data"), ("r5", "cc-42")]);
    let teams: Vec<(String, i64)> =
        sqlx::query_as("SELECT team, fact_count FROM rollup_daily ORDER BY team").fetch_all(&t.pool).await.unwrap();
    let teams: Vec<(&str, i64)> = teams.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    assert_eq!(teams, vec![("cc-42", 1), ("data", 1), ("platform", 1), ("untagged", 1), ("web", 1)]);
}
