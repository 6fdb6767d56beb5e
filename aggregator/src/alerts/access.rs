//! Who may read and write the alerting API (issue 19 §2), applied by the
//! HTTP handlers and the gRPC budget service alike, with the principal the
//! access control put on the request.
//!
//! Rules:
//! - Writes (create, update and delete of budgets, alert routes and
//!   silences; acknowledging an alert) need the admin role, and each one is
//!   recorded in the audit log in the same transaction as the write
//!   ([`actor`] names the writer).
//! - Budgets: admin and org viewer read every budget; any other principal
//!   reads only budgets whose own scope lies within the principal's: every
//!   restricted dimension of the principal must be pinned by the budget
//!   (a team viewer of `web` sees budgets with `team = web`; an account
//!   scope needs the budget's account in it; an OU scope needs the budget's
//!   account or OU to sit inside one of the principal's OU subtrees). A
//!   budget the principal may not read answers 404, as if it did not exist.
//! - Alerts and silences follow their budget; alerts and silences without
//!   one (org-wide matching rules) are read by admin and org viewer only.
//! - Alert routes (PagerDuty keys, webhook secrets, e-mail addresses) are
//!   read by admin only, and secrets are never returned in full to anyone.
//!
//! Owns only these decisions; it never writes and never widens a scope.

use std::collections::HashMap;

use sqlx::{PgPool, Row};

use super::AlertError;
use super::budgets::Budget;
use crate::auth::principal::{AuthMethod, Principal, Role, Scope};
use crate::query::authz::within;

/// The name an audit entry records for `principal`: `jwt:<sub>` for OIDC
/// callers, `token:<id>` for API tokens, `insecure-open-access` in the
/// development mode.
pub fn actor(principal: &Principal) -> String {
    match principal.method {
        AuthMethod::Jwt | AuthMethod::Session => format!("jwt:{}", principal.subject),
        AuthMethod::ApiToken | AuthMethod::InsecureOpenAccess => principal.subject.clone(),
    }
}

/// Refuses a write by anyone but an admin.
pub fn require_admin(principal: &Principal, what: &str) -> Result<(), AlertError> {
    if principal.is_admin() {
        Ok(())
    } else {
        tracing::info!(subject = %principal.subject, role = principal.role.name(), what, "alerting write refused");
        Err(AlertError::Forbidden(format!("{what} needs the admin role")))
    }
}

/// Refuses reading alert routes by anyone but an admin.
pub fn require_route_reader(principal: &Principal) -> Result<(), AlertError> {
    require_admin(principal, "reading alert routes")
}

/// Which budgets one principal may read (loaded once per request).
#[derive(Debug, Clone)]
pub enum BudgetFilter {
    /// Every budget (admin, org viewer).
    All,
    /// Budgets within a scope; `ou_paths` maps account ids to OU paths.
    Within {
        /// The principal's scope.
        scope: Scope,
        /// Account id → OU path (only loaded for an OU scope).
        ou_paths: HashMap<String, String>,
    },
}

impl BudgetFilter {
    /// The filter of `principal`; reads the accounts' OU paths when the
    /// scope restricts OUs.
    pub async fn load(pool: &PgPool, principal: &Principal) -> Result<BudgetFilter, sqlx::Error> {
        if matches!(principal.role, Role::Admin | Role::OrgViewer) && principal.scope.is_unrestricted() {
            return Ok(BudgetFilter::All);
        }
        let mut ou_paths = HashMap::new();
        if !principal.scope.ous.is_empty() {
            for row in sqlx::query("SELECT account_id, ou_path FROM accounts WHERE ou_path <> ''").fetch_all(pool).await? {
                ou_paths.insert(row.try_get("account_id")?, row.try_get("ou_path")?);
            }
        }
        Ok(BudgetFilter::Within { scope: principal.scope.clone(), ou_paths })
    }

    /// True when every budget is readable.
    pub fn is_all(&self) -> bool {
        matches!(self, BudgetFilter::All)
    }

    /// Whether `budget` may be read.
    pub fn allows(&self, budget: &Budget) -> bool {
        let (scope, ou_paths) = match self {
            BudgetFilter::All => return true,
            BudgetFilter::Within { scope, ou_paths } => (scope, ou_paths),
        };
        let b = &budget.spec.scope;
        let teams_ok = scope.teams.is_empty() || b.team.as_ref().is_some_and(|t| scope.teams.contains(t));
        let accounts_ok =
            scope.accounts.is_empty() || b.account_id.as_ref().is_some_and(|a| scope.accounts.contains(a));
        let ous_ok = scope.ous.is_empty() || budget_ou_path(b, ou_paths).is_some_and(|path| {
            scope.ous.iter().any(|root| within(&path, root))
        });
        teams_ok && accounts_ok && ous_ok
    }
}

/// The OU path a budget's scope is pinned to: its account's path, else the
/// path down to its OU id (from any account below that OU).
fn budget_ou_path(b: &super::budgets::Scope, ou_paths: &HashMap<String, String>) -> Option<String> {
    if let Some(a) = &b.account_id {
        return ou_paths.get(a).cloned();
    }
    let ou = b.ou_id.as_ref()?;
    ou_paths.values().find_map(|path| {
        let segments: Vec<&str> = path.split('/').collect();
        segments.iter().position(|s| s == ou).map(|i| segments[..=i].join("/"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::budgets::parse_spec;
    use serde_json::json;

    fn budget(scope: serde_json::Value) -> Budget {
        let spec = parse_spec(&json!({
            "name": "b", "scope": scope, "period": "month", "basis": "location", "amount_kg_co2e": 10.0,
            "routes": [],
        }))
        .unwrap();
        Budget { budget_id: 1, spec }
    }

    fn within_scope(scope: Scope) -> BudgetFilter {
        let ou_paths = [("111111111111", "r-1/ou-a"), ("222222222222", "r-1/ou-a/ou-b")]
            .into_iter()
            .map(|(a, p)| (a.to_owned(), p.to_owned()))
            .collect();
        BudgetFilter::Within { scope, ou_paths }
    }

    #[test]
    fn budgets_are_read_only_within_the_scope() {
        let web = within_scope(Scope { teams: vec!["web".into()], ..Scope::default() });
        assert!(web.allows(&budget(json!({ "team": "web" }))));
        assert!(web.allows(&budget(json!({ "team": "web", "account_id": "111111111111" }))));
        assert!(!web.allows(&budget(json!({ "team": "data" }))));
        assert!(!web.allows(&budget(json!({ "account_id": "111111111111" }))), "a budget over every team");
        let ou_b = within_scope(Scope { ous: vec!["r-1/ou-a/ou-b".into()], ..Scope::default() });
        assert!(ou_b.allows(&budget(json!({ "account_id": "222222222222" }))));
        assert!(ou_b.allows(&budget(json!({ "ou_id": "ou-b" }))));
        assert!(!ou_b.allows(&budget(json!({ "ou_id": "ou-a" }))), "the parent OU covers more than the scope");
        assert!(!ou_b.allows(&budget(json!({ "account_id": "111111111111" }))));
        assert!(!ou_b.allows(&budget(json!({ "team": "web" }))));
        let account = within_scope(Scope { accounts: vec!["111111111111".into()], ..Scope::default() });
        assert!(account.allows(&budget(json!({ "account_id": "111111111111", "service": "AmazonEC2" }))));
        assert!(!account.allows(&budget(json!({ "ou_id": "ou-a" }))));
        assert!(BudgetFilter::All.allows(&budget(json!({}))));
    }

    #[test]
    fn actors_name_the_method() {
        let p = |method, subject: &str| Principal {
            subject: subject.into(),
            role: Role::Admin,
            scope: Scope::default(),
            method,
        };
        assert_eq!(actor(&p(AuthMethod::Jwt, "alice")), "jwt:alice");
        assert_eq!(actor(&p(AuthMethod::ApiToken, "token:abc")), "token:abc");
        assert!(require_admin(&p(AuthMethod::Jwt, "a"), "x").is_ok());
        let viewer = Principal { role: Role::OrgViewer, ..p(AuthMethod::Jwt, "b") };
        assert!(matches!(require_admin(&viewer, "creating a budget"), Err(AlertError::Forbidden(_))));
    }
}
