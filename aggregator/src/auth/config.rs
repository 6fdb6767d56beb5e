//! The access-control part of the aggregator's typed configuration,
//! validated at start-up: every mistake names the flag to fix.

use std::time::Duration;

use super::principal::ClaimNames;

/// OIDC: bearer JWTs for the APIs, authorization-code login for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// Issuer URL (`iss`); discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Audience API tokens must name (`aud`).
    pub audience: String,
    /// Claim names holding the role and the scope.
    pub claims: ClaimNames,
    /// Dashboard login (authorization code + PKCE); none: bearer tokens only.
    pub login: Option<LoginConfig>,
    /// Least time between two JWKS fetches triggered by an unknown key id.
    pub jwks_refresh_cooldown: Duration,
    /// Keys older than this are fetched again before use (rotated-out keys stop working).
    pub jwks_max_age: Duration,
    /// Clock skew tolerated on `exp` / `nbf`.
    pub leeway: Duration,
}

/// The dashboard's OIDC client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    /// Client id registered at the issuer (the ID token's audience).
    pub client_id: String,
    /// Client secret, for confidential clients.
    pub client_secret: Option<String>,
    /// This dashboard's callback URL, `…/auth/callback`, as registered.
    pub redirect_url: String,
    /// Lifetime of a dashboard session.
    pub session_ttl: Duration,
}

/// Who may use the HTTP API, gRPC API, dashboard and `/metrics`.
// Built once at start-up: boxing the OIDC settings buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthConfig {
    /// Enforced: OIDC (when configured) and API tokens (always).
    Enforced {
        /// The OIDC issuer, or none (API tokens only).
        oidc: Option<OidcConfig>,
    },
    /// `--insecure-open-access`: everyone is an admin. Development only.
    InsecureOpenAccess,
}

/// A configuration mistake, naming the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    /// The flag (and its environment variable).
    pub flag: &'static str,
    /// What was expected and what was found.
    pub message: String,
}

fn err(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { flag, message: message.into() }
}

/// Raw settings as given on the command line or in the environment.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `--insecure-open-access`.
    pub insecure_open_access: bool,
    /// `--api-tokens-only`.
    pub api_tokens_only: bool,
    /// `--oidc-issuer`.
    pub oidc_issuer: Option<String>,
    /// `--oidc-audience`.
    pub oidc_audience: Option<String>,
    /// `--oidc-client-id`.
    pub oidc_client_id: Option<String>,
    /// `--oidc-client-secret`.
    pub oidc_client_secret: Option<String>,
    /// `--oidc-redirect-url`.
    pub oidc_redirect_url: Option<String>,
    /// Claim names.
    pub claims: ClaimNames,
    /// `--oidc-jwks-refresh-cooldown-s`.
    pub jwks_refresh_cooldown_s: u64,
    /// `--session-hours`.
    pub session_hours: u64,
}

/// Checks a URL: https, or http to a loopback host (local test issuers).
pub fn check_url(flag: &'static str, url: &str) -> Result<(), ConfigError> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let host = r.split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(err(flag, format!("expected an https:// URL (http:// only to a loopback host), found {url:?}")));
        }
        r
    } else {
        return Err(err(flag, format!("expected an https:// URL, found {url:?}")));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(err(flag, format!("expected a host in the URL, found {url:?}")));
    }
    Ok(())
}

impl AuthSettings {
    /// The validated configuration.
    pub fn validate(&self) -> Result<AuthConfig, ConfigError> {
        let oidc_given = self.oidc_issuer.is_some()
            || self.oidc_audience.is_some()
            || self.oidc_client_id.is_some()
            || self.oidc_redirect_url.is_some();
        if self.insecure_open_access {
            if oidc_given || self.api_tokens_only {
                return Err(err(
                    "--insecure-open-access",
                    "cannot be combined with --oidc-* or --api-tokens-only; choose open access or authentication",
                ));
            }
            return Ok(AuthConfig::InsecureOpenAccess);
        }
        if !oidc_given && !self.api_tokens_only {
            return Err(err(
                "--oidc-issuer",
                "no authentication configured: give --oidc-issuer and --oidc-audience (OIDC, with API tokens), \
                 or --api-tokens-only, or, for development only, --insecure-open-access",
            ));
        }
        if !oidc_given {
            return Ok(AuthConfig::Enforced { oidc: None });
        }
        let issuer = self.oidc_issuer.clone().ok_or_else(|| err("--oidc-issuer (CANOPY_OIDC_ISSUER)", "required with the other --oidc-* flags"))?;
        check_url("--oidc-issuer (CANOPY_OIDC_ISSUER)", &issuer)?;
        let audience = self
            .oidc_audience
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| err("--oidc-audience (CANOPY_OIDC_AUDIENCE)", "required with --oidc-issuer: the audience API tokens must name"))?;
        let login = match (&self.oidc_client_id, &self.oidc_redirect_url) {
            (None, None) => None,
            (Some(client_id), Some(redirect_url)) => {
                check_url("--oidc-redirect-url (CANOPY_OIDC_REDIRECT_URL)", redirect_url)?;
                if !redirect_url.ends_with("/auth/callback") {
                    return Err(err(
                        "--oidc-redirect-url (CANOPY_OIDC_REDIRECT_URL)",
                        format!("expected the dashboard's …/auth/callback URL, found {redirect_url:?}"),
                    ));
                }
                Some(LoginConfig {
                    client_id: client_id.clone(),
                    client_secret: self.oidc_client_secret.clone(),
                    redirect_url: redirect_url.clone(),
                    session_ttl: Duration::from_secs(self.session_hours.clamp(1, 24 * 7) * 3_600),
                })
            }
            (Some(_), None) => {
                return Err(err("--oidc-redirect-url (CANOPY_OIDC_REDIRECT_URL)", "required with --oidc-client-id"));
            }
            (None, Some(_)) => {
                return Err(err("--oidc-client-id (CANOPY_OIDC_CLIENT_ID)", "required with --oidc-redirect-url"));
            }
        };
        for (flag, name) in [
            ("--oidc-role-claim", &self.claims.role),
            ("--oidc-ous-claim", &self.claims.ous),
            ("--oidc-accounts-claim", &self.claims.accounts),
            ("--oidc-teams-claim", &self.claims.teams),
        ] {
            if name.is_empty() {
                return Err(err(flag, "expected a claim name, found an empty string"));
            }
        }
        Ok(AuthConfig::Enforced {
            oidc: Some(OidcConfig {
                issuer: issuer.trim_end_matches('/').to_owned(),
                audience,
                claims: self.claims.clone(),
                login,
                jwks_refresh_cooldown: Duration::from_secs(self.jwks_refresh_cooldown_s),
                jwks_max_age: Duration::from_secs(3_600),
                leeway: Duration::from_secs(30),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AuthSettings {
        AuthSettings { session_hours: 8, jwks_refresh_cooldown_s: 10, ..AuthSettings::default() }
    }

    #[test]
    fn start_up_errors_name_the_flag() {
        assert_eq!(settings().validate().unwrap_err().flag, "--oidc-issuer");
        let open = AuthSettings { insecure_open_access: true, ..settings() };
        assert_eq!(open.validate().unwrap(), AuthConfig::InsecureOpenAccess);
        let both = AuthSettings { oidc_issuer: Some("https://id.example".into()), ..open };
        assert_eq!(both.validate().unwrap_err().flag, "--insecure-open-access");
        let no_aud = AuthSettings { oidc_issuer: Some("https://id.example".into()), ..settings() };
        assert_eq!(no_aud.validate().unwrap_err().flag, "--oidc-audience (CANOPY_OIDC_AUDIENCE)");
        let plain_http = AuthSettings {
            oidc_issuer: Some("http://id.example".into()),
            oidc_audience: Some("canopy".into()),
            ..settings()
        };
        assert_eq!(plain_http.validate().unwrap_err().flag, "--oidc-issuer (CANOPY_OIDC_ISSUER)");
        let not_url = AuthSettings { oidc_issuer: Some("id.example".into()), ..plain_http.clone() };
        assert!(not_url.validate().unwrap_err().message.contains("https://"));
        let half_login = AuthSettings {
            oidc_issuer: Some("https://id.example/".into()),
            oidc_client_id: Some("dash".into()),
            ..plain_http.clone()
        };
        assert_eq!(half_login.validate().unwrap_err().flag, "--oidc-redirect-url (CANOPY_OIDC_REDIRECT_URL)");
        let ok = AuthSettings {
            oidc_issuer: Some("https://id.example/".into()),
            oidc_redirect_url: Some("https://canopy.example/auth/callback".into()),
            ..half_login
        };
        match ok.validate().unwrap() {
            AuthConfig::Enforced { oidc: Some(o) } => {
                assert_eq!(o.issuer, "https://id.example");
                assert_eq!(o.login.unwrap().client_id, "dash");
            }
            other => panic!("unexpected {other:?}"),
        }
        let local = AuthSettings { oidc_issuer: Some("http://127.0.0.1:9/x".into()), ..plain_http };
        assert!(local.validate().is_ok());
        let tokens = AuthSettings { api_tokens_only: true, ..settings() };
        assert_eq!(tokens.validate().unwrap(), AuthConfig::Enforced { oidc: None });
    }
}
