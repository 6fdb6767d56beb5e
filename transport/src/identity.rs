//! Who an agent is: the AWS account and IAM role proven at enrolment, as
//! written into (and read back from) its client certificate.
//!
//! The certificate carries two URI subject alternative names:
//! `canopy://account/<12 digits>/role/<role name>` and
//! `canopy://caller/<caller ARN>`; the common name is the agent id.

use crate::error::IdentityError;

const ACCOUNT_URI_PREFIX: &str = "canopy://account/";
const CALLER_URI_PREFIX: &str = "canopy://caller/";

/// The verified identity of a connected agent, read from its client
/// certificate after the TLS layer checked the certificate chains to the
/// aggregator's CA and is within its validity period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Agent id chosen by the agent at enrolment (certificate common name).
    pub agent_id: String,
    /// AWS account id proven through STS, 12 ASCII digits.
    pub account_id: String,
    /// IAM role name proven through STS (the name only, no path).
    pub role_name: String,
    /// ARN STS returned for the caller, e.g.
    /// `arn:aws:sts::123456789012:assumed-role/CanopyAgent/i-0abc`.
    pub caller_arn: String,
    /// Certificate expiry, Unix seconds.
    pub not_after_unix_s: i64,
}

impl PeerIdentity {
    /// The account URI SAN for this identity.
    pub fn account_uri(&self) -> String {
        format!(
            "{ACCOUNT_URI_PREFIX}{}/role/{}",
            self.account_id, self.role_name
        )
    }

    /// The caller URI SAN for this identity.
    pub fn caller_uri(&self) -> String {
        format!("{CALLER_URI_PREFIX}{}", self.caller_arn)
    }
}

/// Checks that `account_id` is 12 ASCII digits.
pub fn check_account_id(account_id: &str) -> Result<(), IdentityError> {
    if account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(IdentityError::BadAccountId {
            found: account_id.to_owned(),
        })
    }
}

/// The parts of a caller ARN that enrolment checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerArn {
    /// Account id in the ARN's account field.
    pub account_id: String,
    /// Role name (no path) the caller acts as.
    pub role_name: String,
}

/// Parses a role caller ARN as STS `GetCallerIdentity` returns it.
///
/// Accepted shapes: `arn:<partition>:sts::<account>:assumed-role/<role>/<session>`
/// (what a role session, e.g. an instance profile or an ECS task role, sees)
/// and `arn:<partition>:iam::<account>:role/<path>/<role>`. IAM users,
/// federated users and the root user are refused: agents must run as a role.
pub fn parse_caller_arn(arn: &str) -> Result<CallerArn, IdentityError> {
    let bad = |reason: &str| IdentityError::BadCallerArn {
        arn: arn.to_owned(),
        reason: reason.to_owned(),
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[1].is_empty() {
        return Err(bad(
            "expected arn:<partition>:<service>::<account>:<resource>",
        ));
    }
    let (service, region, account_id, resource) = (parts[2], parts[3], parts[4], parts[5]);
    if !region.is_empty() {
        return Err(bad("expected an empty region field"));
    }
    check_account_id(account_id)?;
    let role_name = match service {
        "sts" => {
            let rest = resource
                .strip_prefix("assumed-role/")
                .ok_or_else(|| bad("expected an sts assumed-role/<role>/<session> caller"))?;
            let (role, session) = rest
                .split_once('/')
                .ok_or_else(|| bad("expected assumed-role/<role>/<session>"))?;
            if session.is_empty() {
                return Err(bad("expected a non-empty role session name"));
            }
            role
        }
        "iam" => {
            let rest = resource
                .strip_prefix("role/")
                .ok_or_else(|| bad("expected an iam role/<name> caller"))?;
            rest.rsplit('/').next().unwrap_or(rest)
        }
        _ => return Err(bad("expected service sts or iam")),
    };
    if role_name.is_empty() {
        return Err(bad("expected a non-empty role name"));
    }
    Ok(CallerArn {
        account_id: account_id.to_owned(),
        role_name: role_name.to_owned(),
    })
}

/// Reads the identity from the URI SANs and common name of a DER client
/// certificate. Does not check the signature or validity period: the TLS
/// layer has done that before this is called.
pub fn identity_from_certificate(cert_der: &[u8]) -> Result<PeerIdentity, IdentityError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| IdentityError::Certificate(format!("cannot parse certificate: {e}")))?;
    let agent_id = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| IdentityError::Certificate("expected a common name, found none".into()))?
        .to_owned();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| {
            IdentityError::Certificate(format!("cannot read subject alternative names: {e}"))
        })?
        .ok_or_else(|| {
            IdentityError::Certificate("expected subject alternative names, found none".into())
        })?;
    let mut account = None;
    let mut caller = None;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name {
            if let Some(rest) = uri.strip_prefix(ACCOUNT_URI_PREFIX) {
                account = Some(rest.to_owned());
            } else if let Some(rest) = uri.strip_prefix(CALLER_URI_PREFIX) {
                caller = Some(rest.to_owned());
            }
        }
    }
    let account = account.ok_or_else(|| {
        IdentityError::Certificate(format!("expected a {ACCOUNT_URI_PREFIX} uri, found none"))
    })?;
    let (account_id, role_name) = account.split_once("/role/").ok_or_else(|| {
        IdentityError::Certificate(format!(
            "expected {ACCOUNT_URI_PREFIX}<account>/role/<name>, found {account}"
        ))
    })?;
    check_account_id(account_id)?;
    let caller_arn = caller.ok_or_else(|| {
        IdentityError::Certificate(format!("expected a {CALLER_URI_PREFIX} uri, found none"))
    })?;
    Ok(PeerIdentity {
        agent_id,
        account_id: account_id.to_owned(),
        role_name: role_name.to_owned(),
        caller_arn,
        not_after_unix_s: cert.validity().not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(arn: &str, expected: Option<(&str, &str)>) {
        let got = parse_caller_arn(arn)
            .ok()
            .map(|c| (c.account_id, c.role_name));
        let expected = expected.map(|(a, r)| (a.to_owned(), r.to_owned()));
        assert_eq!(got, expected, "{arn}");
    }

    #[test]
    fn caller_arns() {
        check(
            "arn:aws:sts::123456789012:assumed-role/CanopyAgent/i-0abc",
            Some(("123456789012", "CanopyAgent")),
        );
        check(
            "arn:aws-us-gov:sts::123456789012:assumed-role/CanopyAgent/s",
            Some(("123456789012", "CanopyAgent")),
        );
        check(
            "arn:aws:iam::123456789012:role/ops/team/CanopyAgent",
            Some(("123456789012", "CanopyAgent")),
        );
        check("arn:aws:iam::123456789012:user/alice", None);
        check("arn:aws:iam::123456789012:root", None);
        check("arn:aws:sts::123456789012:assumed-role/CanopyAgent/", None);
        check("arn:aws:sts::12345678901:assumed-role/CanopyAgent/x", None);
        check(
            "arn:aws:sts:eu-west-1:123456789012:assumed-role/CanopyAgent/x",
            None,
        );
        check("arn:aws:sts::123456789012:federated-user/bob", None);
        check("not an arn", None);
    }

    #[test]
    fn account_ids() {
        assert!(check_account_id("000000000000").is_ok());
        assert!(check_account_id("12345678901a").is_err());
        assert!(check_account_id("1234567890123").is_err());
    }
}
