//! Authorisation in the query layer: a principal's scope narrows the filters
//! of every request before any SQL is built, so every endpoint and gRPC
//! method that answers through these functions answers within the scope.
//! This module owns that narrowing and nothing else; it never widens a
//! request and never answers outside the scope silently: a filter naming a
//! team, account or OU outside the scope is refused ([`Forbidden`], HTTP
//! 403, gRPC PERMISSION_DENIED).
//!
//! Rules (an empty scope list does not restrict its dimension):
//! - teams / accounts: no filter → the scope's values; a filter → each
//!   value must be in the scope.
//! - OUs: no filter → the scope's OUs; a filter value inside a scope OU's
//!   subtree is kept; a filter value above scope OUs is replaced by those
//!   OUs; anything else is refused.

use super::{Filters, QueryEngine, QueryError, SeriesRequest, Snapshot, TopResourcesRequest, TotalsRequest};
use super::{SeriesResponse, TopResourcesResponse, TotalsResponse};
use crate::auth::principal::{Principal, Scope};

/// A request outside the caller's scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {parameter}: {value:?} is outside your scope")]
pub struct Forbidden {
    /// The filter parameter.
    pub parameter: &'static str,
    /// The refused value.
    pub value: String,
}

/// True when OU path `ou` is `root` or inside its subtree.
pub fn within(ou: &str, root: &str) -> bool {
    ou == root || (ou.starts_with(root) && ou.as_bytes().get(root.len()) == Some(&b'/'))
}

fn narrow_list(requested: &mut Vec<String>, allowed: &[String], parameter: &'static str) -> Result<(), Forbidden> {
    if allowed.is_empty() {
        return Ok(());
    }
    if requested.is_empty() {
        *requested = allowed.to_vec();
        return Ok(());
    }
    match requested.iter().find(|v| !allowed.contains(v)) {
        Some(v) => Err(Forbidden { parameter, value: v.clone() }),
        None => Ok(()),
    }
}

fn narrow_ous(requested: &mut Vec<String>, allowed: &[String]) -> Result<(), Forbidden> {
    if allowed.is_empty() {
        return Ok(());
    }
    if requested.is_empty() {
        *requested = allowed.to_vec();
        return Ok(());
    }
    let mut narrowed = Vec::new();
    for ou in requested.iter() {
        if allowed.iter().any(|root| within(ou, root)) {
            narrowed.push(ou.clone());
            continue;
        }
        let below: Vec<&String> = allowed.iter().filter(|root| within(root, ou)).collect();
        if below.is_empty() {
            return Err(Forbidden { parameter: "ou", value: ou.clone() });
        }
        narrowed.extend(below.into_iter().cloned());
    }
    narrowed.sort();
    narrowed.dedup();
    *requested = narrowed;
    Ok(())
}

/// `filters` narrowed to `scope`.
pub fn restrict(filters: &Filters, scope: &Scope) -> Result<Filters, Forbidden> {
    let mut f = filters.clone();
    narrow_list(&mut f.team, &scope.teams, "team")?;
    narrow_list(&mut f.account, &scope.accounts, "account")?;
    narrow_ous(&mut f.ou, &scope.ous)?;
    Ok(f)
}

/// A totals request narrowed to `principal`'s scope.
pub fn totals_request(req: &TotalsRequest, principal: &Principal) -> Result<TotalsRequest, Forbidden> {
    Ok(TotalsRequest { filters: restrict(&req.filters, &principal.scope)?, ..req.clone() })
}

/// A series request narrowed to `principal`'s scope.
pub fn series_request(req: &SeriesRequest, principal: &Principal) -> Result<SeriesRequest, Forbidden> {
    Ok(SeriesRequest { filters: restrict(&req.filters, &principal.scope)?, ..req.clone() })
}

/// A top-resources request narrowed to `principal`'s scope.
pub fn top_request(req: &TopResourcesRequest, principal: &Principal) -> Result<TopResourcesRequest, Forbidden> {
    Ok(TopResourcesRequest { filters: restrict(&req.filters, &principal.scope)?, ..req.clone() })
}

/// Whether one (account, OU path, team) is inside `scope` (fleet rows,
/// resource history).
pub fn allows(scope: &Scope, account_id: &str, ou_path: &str, team: Option<&str>) -> bool {
    (scope.accounts.is_empty() || scope.accounts.iter().any(|a| a == account_id))
        && (scope.ous.is_empty() || scope.ous.iter().any(|root| within(ou_path, root)))
        && (scope.teams.is_empty() || team.is_some_and(|t| scope.teams.iter().any(|s| s == t)))
}

impl QueryEngine {
    /// [`QueryEngine::totals`] within `principal`'s scope.
    pub async fn totals_for(
        &self,
        principal: &Principal,
        req: &TotalsRequest,
        now_unix_s: i64,
    ) -> Result<TotalsResponse, QueryError> {
        self.totals(&totals_request(req, principal)?, now_unix_s).await
    }

    /// [`QueryEngine::series`] within `principal`'s scope.
    pub async fn series_for(
        &self,
        principal: &Principal,
        req: &SeriesRequest,
        now_unix_s: i64,
    ) -> Result<SeriesResponse, QueryError> {
        self.series(&series_request(req, principal)?, now_unix_s).await
    }

    /// [`QueryEngine::realtime`] within `principal`'s scope.
    pub async fn realtime_for(
        &self,
        principal: &Principal,
        req: &SeriesRequest,
        now_unix_s: i64,
    ) -> Result<SeriesResponse, QueryError> {
        self.realtime(&series_request(req, principal)?, now_unix_s).await
    }

    /// [`QueryEngine::top_resources`] within `principal`'s scope.
    pub async fn top_resources_for(
        &self,
        principal: &Principal,
        req: &TopResourcesRequest,
        now_unix_s: i64,
    ) -> Result<TopResourcesResponse, QueryError> {
        self.top_resources(&top_request(req, principal)?, now_unix_s).await
    }
}

impl Snapshot {
    /// [`Snapshot::totals`] within `principal`'s scope.
    pub async fn totals_for(&mut self, principal: &Principal, req: &TotalsRequest) -> Result<TotalsResponse, QueryError> {
        self.totals(&totals_request(req, principal)?).await
    }

    /// [`Snapshot::realtime_totals`] within `principal`'s scope.
    pub async fn realtime_totals_for(
        &mut self,
        principal: &Principal,
        req: &TotalsRequest,
    ) -> Result<TotalsResponse, QueryError> {
        self.realtime_totals(&totals_request(req, principal)?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_narrow_and_refuse() {
        let team = Scope { teams: v(&["web"]), ..Scope::default() };
        let narrowed = restrict(&Filters::default(), &team).unwrap();
        assert_eq!(narrowed.team, v(&["web"]));
        assert_eq!(
            restrict(&Filters { team: v(&["web", "data"]), ..Filters::default() }, &team),
            Err(Forbidden { parameter: "team", value: "data".into() })
        );
        let ou = Scope { ous: v(&["Root/Eng"]), ..Scope::default() };
        // Above the scope: replaced by the scope; inside: kept; beside: refused.
        assert_eq!(restrict(&Filters { ou: v(&["Root"]), ..Filters::default() }, &ou).unwrap().ou, v(&["Root/Eng"]));
        assert_eq!(
            restrict(&Filters { ou: v(&["Root/Eng/Web"]), ..Filters::default() }, &ou).unwrap().ou,
            v(&["Root/Eng/Web"])
        );
        assert!(restrict(&Filters { ou: v(&["Root/Engineering"]), ..Filters::default() }, &ou).is_err());
        assert!(restrict(&Filters { ou: v(&["Root/Sales"]), ..Filters::default() }, &ou).is_err());
        // Unrestricted scopes change nothing.
        let any = Filters { team: v(&["x"]), ou: v(&["Root/Sales"]), ..Filters::default() };
        assert_eq!(restrict(&any, &Scope::default()).unwrap(), any);
        assert!(allows(&ou, "1", "Root/Eng/Web", None));
        assert!(!allows(&ou, "1", "Root/Engineering", None));
        assert!(!allows(&team, "1", "", None));
        assert!(allows(&team, "1", "", Some("web")));
    }
}
