//! The AWS Organizations refresh against moto: OU paths, names, tags and
//! status reach the directory; the enrolment allow-list follows the
//! organisation; a failed refresh keeps the last good state.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_organizations::Client;
use aws_sdk_organizations::config::Credentials;
use aws_sdk_organizations::types::{CreateAccountState, Tag};
use canopy_aggregator::organizations::{OrganisationRefresher, RefreshMetrics, management_client};
use canopy_transport::AllowedAccounts;
use sqlx::Row;

use crate::support::TestDb;

/// moto in server mode on a free port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}): install it with `pip install 'moto[server]'`"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "canopy-tests"))
        .load()
        .await
}

/// Creates an account in moto's organisation and returns its id.
async fn create_account(org: &Client, name: &str) -> String {
    let created = org
        .create_account()
        .account_name(name)
        .email(format!("{name}@example.com"))
        .send()
        .await
        .expect("CreateAccount");
    let status = created.create_account_status().expect("a CreateAccountStatus");
    assert_eq!(status.state(), Some(&CreateAccountState::Succeeded), "moto creates accounts at once");
    status.account_id().expect("an account id").to_owned()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build().unwrap()
}

struct Org {
    root: String,
    prod_ou: String,
    web_ou: String,
    management: String,
    payments: String,
    search: String,
    sandbox: String,
}

/// Root → prod → web; payments in web, search in prod, sandbox at the root.
async fn seed(org: &Client) -> Org {
    let described = org
        .create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("CreateOrganization");
    let management = described.organization().unwrap().master_account_id().unwrap().to_owned();
    let root = org.list_roots().send().await.unwrap().roots()[0].id().unwrap().to_owned();
    let ou = |parent: String, name: &'static str| {
        let org = org.clone();
        async move {
            org.create_organizational_unit()
                .parent_id(parent)
                .name(name)
                .send()
                .await
                .expect("CreateOrganizationalUnit")
                .organizational_unit()
                .unwrap()
                .id()
                .unwrap()
                .to_owned()
        }
    };
    let prod_ou = ou(root.clone(), "prod").await;
    let web_ou = ou(prod_ou.clone(), "web").await;
    let payments = create_account(org, "payments-prod").await;
    let search = create_account(org, "search-prod").await;
    let sandbox = create_account(org, "sandbox").await;
    for (account, to) in [(&payments, &web_ou), (&search, &prod_ou)] {
        org.move_account()
            .account_id(account)
            .source_parent_id(&root)
            .destination_parent_id(to)
            .send()
            .await
            .expect("MoveAccount");
    }
    org.tag_resource()
        .resource_id(&payments)
        .tags(tag("cost-centre", "cc-1042"))
        .tags(tag("team", "payments"))
        .send()
        .await
        .expect("TagResource");
    Org { root, prod_ou, web_ou, management, payments, search, sandbox }
}

#[tokio::test]
async fn refresh_writes_ou_paths_names_tags_and_follows_the_organisation() {
    let moto = Moto::start();
    let db = TestDb::migrated().await;
    let base = sdk_config(&moto.url()).await;
    let seeder = Client::new(&base);
    let org = seed(&seeder).await;

    // Through AssumeRole, as in production (moto's STS grants any role).
    let role = format!("arn:aws:iam::{}:role/CanopyOrganizationsReader", org.management);
    let client = management_client(&base, Some(&role), Some("external-id-1")).await;
    let allowed = AllowedAccounts::new(["999999999999".to_owned()]).unwrap();
    let refresher = OrganisationRefresher {
        client,
        pool: db.pool.clone(),
        allowed: allowed.clone(),
        always_allowed: BTreeSet::from(["999999999999".to_owned()]),
        min_call_interval: Duration::from_millis(1),
        metrics: Arc::new(RefreshMetrics::default()),
    };
    let outcome = refresher.refresh_once().await.expect("refresh");
    assert_eq!(outcome.accounts, 4, "management account + 3 created");
    assert_eq!(outcome.active, 4);
    assert_eq!(outcome.marked_removed, 0);

    let rows = sqlx::query(
        "SELECT account_id, name, ou_path, tags::text AS tags, status, organisation_id FROM accounts ORDER BY account_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let by_id = |id: &str| rows.iter().find(|r| r.get::<String, _>("account_id") == id).unwrap_or_else(|| panic!("{id}"));
    let payments = by_id(&org.payments);
    assert_eq!(payments.get::<String, _>("name"), "payments-prod");
    assert_eq!(payments.get::<String, _>("ou_path"), format!("{}/{}/{}", org.root, org.prod_ou, org.web_ou));
    let tags: serde_json::Value = serde_json::from_str(&payments.get::<String, _>("tags")).unwrap();
    assert_eq!(tags, serde_json::json!({"cost-centre": "cc-1042", "team": "payments"}));
    assert_eq!(by_id(&org.search).get::<String, _>("ou_path"), format!("{}/{}", org.root, org.prod_ou));
    assert_eq!(by_id(&org.sandbox).get::<String, _>("ou_path"), org.root);
    assert_eq!(by_id(&org.sandbox).get::<String, _>("tags"), "{}");
    assert!(rows.iter().all(|r| r.get::<String, _>("status") == "ACTIVE"));
    let org_ids: BTreeSet<Option<String>> = rows.iter().map(|r| r.get("organisation_id")).collect();
    assert_eq!(org_ids.len(), 1);
    assert!(org_ids.iter().next().unwrap().as_deref().unwrap().starts_with("o-"));

    for id in [&org.management, &org.payments, &org.search, &org.sandbox] {
        assert!(allowed.contains(id), "{id} is active and must be allowed to enrol");
    }
    assert!(allowed.contains("999999999999"), "configured accounts stay allowed");
    assert_eq!(allowed.len(), 5);

    // The sandbox account leaves the organisation: kept (its history stays)
    // but marked, and no longer allowed to enrol.
    seeder.remove_account_from_organization().account_id(&org.sandbox).send().await.expect("RemoveAccount");
    let outcome = refresher.refresh_once().await.expect("second refresh");
    assert_eq!((outcome.accounts, outcome.marked_removed), (3, 1));
    let status: String = sqlx::query_scalar("SELECT status FROM accounts WHERE account_id = $1")
        .bind(&org.sandbox)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(status, "REMOVED");
    assert!(!allowed.contains(&org.sandbox));
    assert_eq!(allowed.len(), 4);
    let text = refresher.metrics.render();
    assert!(text.contains("canopy_org_refreshes_total{outcome=\"ok\"} 2"), "{text}");
    assert!(text.contains("canopy_org_accounts 3"), "{text}");
    assert!(text.contains("canopy_enrolment_allowed_accounts 4"), "{text}");
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_directory_and_the_allow_list() {
    let db = TestDb::migrated().await;
    // Nothing listens on this port.
    let base = sdk_config(&format!("http://127.0.0.1:{}", free_port())).await;
    let allowed = AllowedAccounts::new(["111111111111".to_owned()]).unwrap();
    let refresher = OrganisationRefresher {
        client: management_client(&base, None, None).await,
        pool: db.pool.clone(),
        allowed: allowed.clone(),
        always_allowed: BTreeSet::new(),
        min_call_interval: Duration::from_millis(1),
        metrics: Arc::new(RefreshMetrics::default()),
    };
    let err = refresher.refresh_once().await.unwrap_err();
    assert!(err.to_string().contains("DescribeOrganization"), "{err}");
    assert!(allowed.contains("111111111111"));
    assert_eq!(allowed.len(), 1);
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts").fetch_one(&db.pool).await.unwrap();
    assert_eq!(accounts, 0);
    assert!(refresher.metrics.render().contains("canopy_org_refreshes_total{outcome=\"failed\"} 1"));
}
