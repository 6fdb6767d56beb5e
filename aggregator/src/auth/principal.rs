//! Who is asking: a role and a scope, from a JWT's claims, an API token's
//! row or the development mode. Pure values; no I/O.

use serde_json::Value;

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads only the teams of its scope (at least one).
    TeamViewer,
    /// Reads only the OU subtrees of its scope (at least one).
    OuViewer,
    /// Reads the whole organisation.
    OrgViewer,
    /// Reads everything and may write (tokens, rules, budgets, ledger close).
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::TeamViewer, Role::OuViewer, Role::OrgViewer, Role::Admin];

    /// Spelling in claims, tokens and the database.
    pub fn name(self) -> &'static str {
        match self {
            Role::TeamViewer => "team_viewer",
            Role::OuViewer => "ou_viewer",
            Role::OrgViewer => "org_viewer",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::name`].
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == text)
    }
}

/// What a principal may see. An empty list does not restrict that
/// dimension; non-empty lists restrict together (all must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// OU paths; each covers its subtree.
    pub ous: Vec<String>,
    /// Account ids.
    pub accounts: Vec<String>,
    /// Teams.
    pub teams: Vec<String>,
}

impl Scope {
    /// True when nothing is restricted.
    pub fn is_unrestricted(&self) -> bool {
        self.ous.is_empty() && self.accounts.is_empty() && self.teams.is_empty()
    }
}

/// How the principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A bearer JWT from the OIDC issuer.
    Jwt,
    /// A dashboard session after an OIDC login.
    Session,
    /// An API token (`canopy-aggregator tokens create`).
    ApiToken,
    /// `--insecure-open-access`: nobody was asked.
    InsecureOpenAccess,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Subject (JWT `sub`, `token:<id>`, or `insecure-open-access`).
    pub subject: String,
    /// Role.
    pub role: Role,
    /// Scope.
    pub scope: Scope,
    /// How it was authenticated.
    pub method: AuthMethod,
}

impl Principal {
    /// The principal of every request in the development mode.
    pub fn insecure_open_access() -> Principal {
        Principal {
            subject: "insecure-open-access".into(),
            role: Role::Admin,
            scope: Scope::default(),
            method: AuthMethod::InsecureOpenAccess,
        }
    }

    /// True for the admin role.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A role and scope that do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A team viewer without teams, or an OU viewer without OUs.
    #[error("role {role} needs at least one {needs} in its scope")]
    Missing {
        /// The role.
        role: &'static str,
        /// What is missing.
        needs: &'static str,
    },
    /// A role spelled wrongly.
    #[error("unknown role {0:?}; expected team_viewer, ou_viewer, org_viewer or admin")]
    UnknownRole(String),
    /// A claim of the wrong type.
    #[error("claim {claim}: expected {expected}")]
    BadClaim {
        /// The claim's name.
        claim: String,
        /// What it should have held.
        expected: &'static str,
    },
    /// An OU path that is not an absolute path.
    #[error("OU path {0:?}: expected a non-empty path without a trailing '/'")]
    BadOu(String),
}

/// Checks that `role` and `scope` fit together: a team viewer names teams,
/// an OU viewer names OUs; OU paths are non-empty without a trailing `/`.
pub fn check(role: Role, scope: &Scope) -> Result<(), ScopeError> {
    match role {
        Role::TeamViewer if scope.teams.is_empty() => {
            return Err(ScopeError::Missing { role: role.name(), needs: "team" });
        }
        Role::OuViewer if scope.ous.is_empty() => {
            return Err(ScopeError::Missing { role: role.name(), needs: "OU" });
        }
        _ => {}
    }
    for ou in &scope.ous {
        if ou.is_empty() || ou.ends_with('/') {
            return Err(ScopeError::BadOu(ou.clone()));
        }
    }
    Ok(())
}

/// Names of the JWT claims holding the role and the scope (configurable:
/// every identity provider puts groups somewhere else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// Claim holding the role (a string, or a list whose highest role wins).
    pub role: String,
    /// Claim holding OU paths (a string or a list).
    pub ous: String,
    /// Claim holding account ids.
    pub accounts: String,
    /// Claim holding teams.
    pub teams: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            role: "canopy_role".into(),
            ous: "canopy_ous".into(),
            accounts: "canopy_accounts".into(),
            teams: "canopy_teams".into(),
        }
    }
}

fn strings(claims: &Value, name: &str) -> Result<Vec<String>, ScopeError> {
    let bad = || ScopeError::BadClaim { claim: name.to_owned(), expected: "a string or a list of strings" };
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(bad)).collect()
        }
        Some(_) => Err(bad()),
    }
}

/// The principal a validated JWT's claims describe. The role claim may be a
/// list (groups): the highest role named wins; unknown names in a list are
/// ignored, a list naming no role is refused.
pub fn from_claims(claims: &Value, names: &ClaimNames, method: AuthMethod) -> Result<Principal, ScopeError> {
    let subject = claims.get("sub").and_then(Value::as_str).unwrap_or("").to_owned();
    let roles = strings(claims, &names.role)?;
    let role = match roles.as_slice() {
        [] => return Err(ScopeError::BadClaim { claim: names.role.clone(), expected: "a role" }),
        [one] => Role::parse(one).ok_or_else(|| ScopeError::UnknownRole(one.clone()))?,
        many => many
            .iter()
            .filter_map(|r| Role::parse(r))
            .max()
            .ok_or_else(|| ScopeError::UnknownRole(many.join(",")))?,
    };
    let scope = Scope {
        ous: strings(claims, &names.ous)?,
        accounts: strings(claims, &names.accounts)?,
        teams: strings(claims, &names.teams)?,
    };
    // An org-wide role is not narrowed by stray scope claims only when none are given.
    check(role, &scope)?;
    Ok(Principal { subject, role, scope, method })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_map_to_roles_and_scopes() {
        let names = ClaimNames::default();
        let p = from_claims(
            &json!({"sub": "alice", "canopy_role": "team_viewer", "canopy_teams": ["web", "data"]}),
            &names,
            AuthMethod::Jwt,
        )
        .unwrap();
        assert_eq!((p.role, p.scope.teams.clone()), (Role::TeamViewer, vec!["web".to_owned(), "data".to_owned()]));
        let groups = from_claims(
            &json!({"sub": "bob", "canopy_role": ["everyone", "org_viewer", "ou_viewer"], "canopy_ous": "Root/Eng"}),
            &names,
            AuthMethod::Jwt,
        )
        .unwrap();
        assert_eq!(groups.role, Role::OrgViewer);
        assert_eq!(
            from_claims(&json!({"sub": "c", "canopy_role": "team_viewer"}), &names, AuthMethod::Jwt),
            Err(ScopeError::Missing { role: "team_viewer", needs: "team" })
        );
        assert_eq!(
            from_claims(&json!({"sub": "c", "canopy_role": "root"}), &names, AuthMethod::Jwt),
            Err(ScopeError::UnknownRole("root".into()))
        );
        assert!(from_claims(&json!({"sub": "c"}), &names, AuthMethod::Jwt).is_err());
        assert!(from_claims(&json!({"sub": "c", "canopy_role": "admin", "canopy_teams": 3}), &names, AuthMethod::Jwt)
            .is_err());
    }
}
