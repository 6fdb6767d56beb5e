use canopy_aggregator::directory::{self, AccountRow};
use canopy_aggregator::model::Batch;

use crate::support::{T0, TestDb, fact, store};

#[tokio::test]
async fn team_comes_from_tag_then_account_rule_then_untagged() {
    let t = TestDb::migrated().await;
    // Account 222222222222 has a default team; 111111111111 has none.
    directory::set_account_default_team(&t.pool, "222222222222", Some("platform")).await.unwrap();
    let mut a_tagged = fact(1, T0, 300, 1);
    a_tagged.account_id = "111111111111".into();
    a_tagged.tags = Some(vec![("team".into(), "web".into())]);
    let mut a_untagged = fact(2, T0, 300, 1);
    a_untagged.account_id = "111111111111".into();
    a_untagged.tags = Some(vec![("owner".into(), "alice".into())]);
    let mut b_untagged = fact(3, T0, 300, 1);
    b_untagged.account_id = "222222222222".into();
    b_untagged.tags = Some(vec![("team".into(), "".into())]);
    let mut b_tagged = fact(4, T0, 300, 1);
    b_tagged.account_id = "222222222222".into();
    b_tagged.tags = Some(vec![("team".into(), "data".into())]);
    let batch = Batch {
        agent_id: "a".into(),
        sequence: 1,
        facts: vec![a_tagged, a_untagged, b_untagged, b_tagged],
        inventory: vec![],
    };
    store(&t.pool, &batch).await;

    // The tag key is configurable; later facts use the new key.
    directory::set_team_tag_key(&t.pool, "cost-centre").await.unwrap();
    assert_eq!(
        directory::set_team_tag_key(&t.pool, "").await.unwrap_err().to_string(),
        "team_tag_key: expected 1 to 128 bytes, found 0 bytes"
    );
    let mut c = fact(5, T0, 300, 1);
    c.account_id = "111111111111".into();
    c.tags = Some(vec![("team".into(), "web".into()), ("cost-centre".into(), "cc-42".into())]);
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 2, facts: vec![c], inventory: vec![] }).await;

    // A fact without tags takes them from the stored inventory; an explicit
    // team (group records) wins over tags.
    let inventory = canopy_aggregator::model::InventoryRow {
        account_id: "111111111111".into(),
        region: "eu-west-1".into(),
        resource_id: "r6".into(),
        resource_type: "ec2:instance".into(),
        service: "AmazonEC2".into(),
        tags: vec![("cost-centre".into(), "cc-7".into())],
        attributes: vec![],
        observed_unix_s: T0,
        deleted: false,
    };
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 3, facts: vec![], inventory: vec![inventory] }).await;
    let mut d = fact(6, T0, 300, 1);
    d.account_id = "111111111111".into();
    d.region = "eu-west-1".into();
    d.tags = None;
    let mut e = fact(7, T0, 300, 1);
    e.team = Some("search".into());
    e.tags = Some(vec![("cost-centre".into(), "cc-1".into())]);
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 4, facts: vec![d, e], inventory: vec![] }).await;

    let got: Vec<(String, String)> =
        sqlx::query_as("SELECT resource_id, team FROM emission_facts_all ORDER BY resource_id").fetch_all(&t.pool).await.unwrap();
    let got: Vec<(&str, &str)> = got.iter().map(|(r, t)| (r.as_str(), t.as_str())).collect();
    assert_eq!(got, vec![("r1", "web"), ("r2", "untagged"), ("r3", "platform"), ("r4", "data"), ("r5", "cc-42"), ("r6", "cc-7"), ("r7", "search")]);
    let teams: Vec<(String, i64)> =
        sqlx::query_as("SELECT team, fact_count FROM rollup_daily ORDER BY team").fetch_all(&t.pool).await.unwrap();
    let teams: Vec<(&str, i64)> = teams.iter().map(|(t, n)| (t.as_str(), *n)).collect();
    assert_eq!(teams, vec![("cc-42", 1), ("cc-7", 1), ("data", 1), ("platform", 1), ("search", 1), ("untagged", 1), ("web", 1)]);
}

#[tokio::test]
async fn account_refresh_updates_ou_paths_used_by_queries() {
    let t = TestDb::migrated().await;
    directory::upsert_organisation(&t.pool, "o-abc", "999999999999", "Example").await.unwrap();
    let row = |id: &str, ou: &str| AccountRow {
        account_id: id.into(),
        organisation_id: Some("o-abc".into()),
        name: format!("acct {id}"),
        ou_path: ou.into(),
        tags: vec![("env".into(), "prod".into())],
        status: "ACTIVE".into(),
    };
    let n = directory::upsert_accounts(&t.pool, &[row("111111111111", "r-1/ou-a"), row("222222222222", "r-1/ou-b")])
        .await
        .unwrap();
    assert_eq!(n, 2);
    // The account moved to another OU.
    directory::upsert_accounts(&t.pool, &[row("111111111111", "r-1/ou-b/ou-c")]).await.unwrap();
    let paths: Vec<(String, String)> =
        sqlx::query_as("SELECT account_id, ou_path FROM accounts ORDER BY 1").fetch_all(&t.pool).await.unwrap();
    assert_eq!(
        paths,
        vec![("111111111111".into(), "r-1/ou-b/ou-c".into()), ("222222222222".into(), "r-1/ou-b".into())]
    );
    let err = directory::upsert_accounts(&t.pool, &[row("12", "r-1")]).await.unwrap_err();
    assert_eq!(err.to_string(), "account_id: expected a 12-digit account id, found \"12\"");
}
