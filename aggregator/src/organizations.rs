//! The organisation refresh: reads accounts, organisational units and
//! account tags from AWS Organizations through the management account's
//! read-only role (`deploy-stackset/management-account.yaml`), writes them
//! to the directory in one transaction, and keeps the enrolment allow-list
//! equal to the organisation's active accounts (plus any configured ones).
//!
//! Organizations throttles its API at a few calls per second per account,
//! so calls are paced (`min_call_interval`): at the default 200 ms a
//! 10,000-account organisation takes about 35 minutes per refresh (one
//! `ListTagsForResource` per account dominates), which is why the default
//! refresh interval is 6 hours and a failed refresh keeps the last
//! directory and allow-list.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_organizations::Client;
use canopy_transport::AllowedAccounts;
use sqlx::PgPool;

use crate::directory::{self, AccountRow, DirectoryError};

/// The AWS Organizations actions [`read_organisation`] calls; the
/// management-account role (`deploy-stackset/management-account.yaml`) must
/// allow each (tests/iac checks it through `canopy-aggregator iam-actions`).
pub const IAM_ACTIONS: &[&str] = &[
    "organizations:DescribeOrganization",
    "organizations:ListAccountsForParent",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListRoots",
    "organizations:ListTagsForResource",
];

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// An Organizations call failed (after the SDK's own retries).
    #[error("AWS Organizations {operation} failed: {message}")]
    Aws {
        /// The API operation.
        operation: &'static str,
        /// The SDK's error, with its service message.
        message: String,
    },
    /// The answer lacked something the refresh needs.
    #[error("AWS Organizations {operation}: expected {expected}, found none")]
    Missing {
        /// The API operation.
        operation: &'static str,
        /// What was missing.
        expected: &'static str,
    },
    /// Writing the directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The transaction could not begin or commit.
    #[error("database error while writing the organisation: {0}")]
    Sql(#[from] sqlx::Error),
    /// An id from Organizations is not a 12-digit account id.
    #[error("allow-list: {0}")]
    AllowList(#[from] canopy_transport::IdentityError),
}

fn aws_error<E, R>(operation: &'static str, error: aws_sdk_organizations::error::SdkError<E, R>) -> RefreshError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    RefreshError::Aws { operation, message: aws_sdk_organizations::error::DisplayErrorContext(&error).to_string() }
}

/// One reading of the organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationSnapshot {
    /// `o-...`.
    pub organisation_id: String,
    /// The management account.
    pub management_account_id: String,
    /// Every account in the organisation, with its OU path and tags.
    pub accounts: Vec<AccountRow>,
}

impl OrganisationSnapshot {
    /// Accounts that may enrol: those whose state is `ACTIVE`.
    pub fn active_account_ids(&self) -> impl Iterator<Item = &str> {
        self.accounts.iter().filter(|a| a.status == "ACTIVE").map(|a| a.account_id.as_str())
    }
}

/// Spaces out Organizations calls.
struct Pacer {
    ticks: tokio::time::Interval,
}

impl Pacer {
    fn new(min_call_interval: Duration) -> Self {
        let mut ticks = tokio::time::interval(min_call_interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pacer { ticks }
    }

    async fn wait(&mut self) {
        self.ticks.tick().await;
    }
}

/// Reads the whole organisation: walks the OU tree from each root, lists
/// the accounts of every parent (so each account gets its OU path) and
/// their tags.
pub async fn read_organisation(client: &Client, min_call_interval: Duration) -> Result<OrganisationSnapshot, RefreshError> {
    let mut pace = Pacer::new(min_call_interval);
    pace.wait().await;
    let described = client.describe_organization().send().await.map_err(|e| aws_error("DescribeOrganization", e))?;
    let org = described
        .organization()
        .ok_or(RefreshError::Missing { operation: "DescribeOrganization", expected: "an organization" })?;
    let organisation_id = org
        .id()
        .ok_or(RefreshError::Missing { operation: "DescribeOrganization", expected: "an organization id" })?
        .to_owned();
    let management_account_id = org
        .master_account_id()
        .ok_or(RefreshError::Missing { operation: "DescribeOrganization", expected: "a management account id" })?
        .to_owned();

    pace.wait().await;
    let pages = client.list_roots().into_paginator().send().try_collect().await;
    let roots: Vec<_> =
        pages.map_err(|e| aws_error("ListRoots", e))?.into_iter().flat_map(|p| p.roots.unwrap_or_default()).collect();

    // (parent id, OU path down to and including the parent)
    let mut parents: Vec<(String, String)> = Vec::new();
    for root in &roots {
        let id = root.id().ok_or(RefreshError::Missing { operation: "ListRoots", expected: "a root id" })?;
        parents.push((id.to_owned(), id.to_owned()));
    }
    let mut accounts = Vec::new();
    while let Some((parent, path)) = parents.pop() {
        pace.wait().await;
        let pages =
            client.list_organizational_units_for_parent().parent_id(&parent).into_paginator().send().try_collect().await;
        let units = pages
            .map_err(|e| aws_error("ListOrganizationalUnitsForParent", e))?
            .into_iter()
            .flat_map(|p| p.organizational_units.unwrap_or_default());
        for unit in units {
            let id = unit.id().ok_or(RefreshError::Missing {
                operation: "ListOrganizationalUnitsForParent",
                expected: "an OU id",
            })?;
            parents.push((id.to_owned(), format!("{path}/{id}")));
        }
        pace.wait().await;
        let pages = client.list_accounts_for_parent().parent_id(&parent).into_paginator().send().try_collect().await;
        let listed = pages
            .map_err(|e| aws_error("ListAccountsForParent", e))?
            .into_iter()
            .flat_map(|p| p.accounts.unwrap_or_default());
        for account in listed {
            let account_id = account
                .id()
                .ok_or(RefreshError::Missing { operation: "ListAccountsForParent", expected: "an account id" })?
                .to_owned();
            pace.wait().await;
            let pages =
                client.list_tags_for_resource().resource_id(&account_id).into_paginator().send().try_collect().await;
            let tags: Vec<_> = pages
                .map_err(|e| aws_error("ListTagsForResource", e))?
                .into_iter()
                .flat_map(|p| p.tags.unwrap_or_default())
                .collect();
            accounts.push(AccountRow {
                account_id,
                organisation_id: Some(organisation_id.clone()),
                name: account.name().unwrap_or_default().to_owned(),
                ou_path: path.clone(),
                tags: tags.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect(),
                status: account_status(&account),
            });
        }
    }
    accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    Ok(OrganisationSnapshot { organisation_id, management_account_id, accounts })
}

/// `ACTIVE`, `SUSPENDED`, `PENDING_CLOSURE`, …: the newer `State` field when
/// present, else the older `Status`.
fn account_status(account: &aws_sdk_organizations::types::Account) -> String {
    if let Some(state) = account.state() {
        return state.as_str().to_owned();
    }
    #[allow(deprecated)]
    let status = account.status().map(|s| s.as_str().to_owned());
    status.unwrap_or_else(|| "UNKNOWN".to_owned())
}

/// What a refresh wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshOutcome {
    /// Accounts in the organisation.
    pub accounts: usize,
    /// Of those, active (allowed to enrol).
    pub active: usize,
    /// Accounts of this organisation in the directory that are no longer
    /// in it, now marked `REMOVED` (their history stays).
    pub marked_removed: u64,
}

/// Writes a snapshot to the directory in one transaction: the organisation,
/// every account (name, OU path, tags, status), and `REMOVED` for accounts
/// that left.
pub async fn store_snapshot(pool: &PgPool, snapshot: &OrganisationSnapshot) -> Result<RefreshOutcome, RefreshError> {
    let mut tx = pool.begin().await?;
    directory::upsert_organisation(&mut *tx, &snapshot.organisation_id, &snapshot.management_account_id, "").await?;
    directory::upsert_accounts(&mut *tx, &snapshot.accounts).await?;
    let present: Vec<String> = snapshot.accounts.iter().map(|a| a.account_id.clone()).collect();
    let removed = sqlx::query(
        "UPDATE accounts SET status = 'REMOVED', updated_at = now()
         WHERE organisation_id = $1 AND status <> 'REMOVED' AND NOT (account_id = ANY($2))",
    )
    .bind(&snapshot.organisation_id)
    .bind(&present)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(RefreshOutcome { accounts: snapshot.accounts.len(), active: snapshot.active_account_ids().count(), marked_removed: removed })
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RefreshMetrics {
    refreshes_ok: AtomicU64,
    refreshes_failed: AtomicU64,
    accounts: AtomicU64,
    allowed_accounts: AtomicU64,
    last_success_unix_s: AtomicI64,
}

impl RefreshMetrics {
    /// Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# HELP canopy_org_refreshes_total Organisation refreshes by outcome.\n\
             # TYPE canopy_org_refreshes_total counter\n\
             canopy_org_refreshes_total{{outcome=\"ok\"}} {}\n\
             canopy_org_refreshes_total{{outcome=\"failed\"}} {}\n\
             # HELP canopy_org_accounts Accounts in the organisation at the last refresh.\n\
             # TYPE canopy_org_accounts gauge\n\
             canopy_org_accounts {}\n\
             # HELP canopy_enrolment_allowed_accounts Accounts allowed to enrol.\n\
             # TYPE canopy_enrolment_allowed_accounts gauge\n\
             canopy_enrolment_allowed_accounts {}\n\
             # HELP canopy_org_last_refresh_unix_seconds Time of the last successful refresh.\n\
             # TYPE canopy_org_last_refresh_unix_seconds gauge\n\
             canopy_org_last_refresh_unix_seconds {}\n",
            g(&self.refreshes_ok),
            g(&self.refreshes_failed),
            g(&self.accounts),
            g(&self.allowed_accounts),
            self.last_success_unix_s.load(Ordering::Relaxed),
        )
    }
}

/// Keeps the directory and the enrolment allow-list current.
pub struct OrganisationRefresher {
    /// Organizations client (management role credentials).
    pub client: Client,
    /// Database the directory lives in.
    pub pool: PgPool,
    /// The enrolment server's allow-list.
    pub allowed: AllowedAccounts,
    /// Accounts allowed whatever the organisation says (`--allowed-account`).
    pub always_allowed: BTreeSet<String>,
    /// Pause between Organizations calls.
    pub min_call_interval: Duration,
    /// Counters.
    pub metrics: Arc<RefreshMetrics>,
}

impl OrganisationRefresher {
    /// One refresh: read, store, then replace the allow-list. On error
    /// nothing is replaced (the last good directory and allow-list stay).
    pub async fn refresh_once(&self) -> Result<RefreshOutcome, RefreshError> {
        let result = self.refresh_inner().await;
        match &result {
            Ok(outcome) => {
                self.metrics.refreshes_ok.fetch_add(1, Ordering::Relaxed);
                self.metrics.accounts.store(outcome.accounts as u64, Ordering::Relaxed);
                let now_unix_s = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                self.metrics.last_success_unix_s.store(now_unix_s, Ordering::Relaxed);
            }
            Err(_) => {
                self.metrics.refreshes_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.metrics.allowed_accounts.store(self.allowed.len() as u64, Ordering::Relaxed);
        result
    }

    async fn refresh_inner(&self) -> Result<RefreshOutcome, RefreshError> {
        let snapshot = read_organisation(&self.client, self.min_call_interval).await?;
        let outcome = store_snapshot(&self.pool, &snapshot).await?;
        let allowed: BTreeSet<String> =
            snapshot.active_account_ids().map(str::to_owned).chain(self.always_allowed.iter().cloned()).collect();
        self.allowed.replace(allowed)?;
        Ok(outcome)
    }

    /// Refreshes now and then every `interval`, logging each outcome.
    pub async fn run(self, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.refresh_once().await {
                Ok(o) => tracing::info!(
                    accounts = o.accounts,
                    active = o.active,
                    marked_removed = o.marked_removed,
                    allowed = self.allowed.len(),
                    "organisation refreshed"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    allowed = self.allowed.len(),
                    "organisation refresh failed; keeping the last directory and allow-list"
                ),
            }
        }
    }
}

/// The SDK configuration the aggregator's AWS calls start from: the
/// default credential chain (the aggregator's task role), `us-east-1`
/// (Organizations is global), and an optional endpoint override for
/// Organizations and STS (tests point it at moto; the SDK's own
/// `AWS_ENDPOINT_URL*` variables work as well).
pub async fn base_config(endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new("us-east-1"));
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An Organizations client acting as the management account's read-only
/// role: `AssumeRole` into `role_arn` (with `external_id` when given) from
/// `base`'s credentials; without a role, `base`'s credentials themselves
/// (an aggregator running in the management account).
pub async fn management_client(base: &aws_config::SdkConfig, role_arn: Option<&str>, external_id: Option<&str>) -> Client {
    let Some(role_arn) = role_arn else {
        return Client::new(base);
    };
    let mut assume =
        aws_config::sts::AssumeRoleProvider::builder(role_arn).session_name("canopy-aggregator").configure(base);
    if let Some(id) = external_id {
        assume = assume.external_id(id);
    }
    let provider = assume.build().await;
    let config = aws_sdk_organizations::config::Builder::from(base).credentials_provider(provider).build();
    Client::from_conf(config)
}
