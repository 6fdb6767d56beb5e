//! Email over SMTP with lettre: plain SMTP, STARTTLS or implicit TLS and
//! optional authentication, all from the relay URL
//! (`smtp://host:25`, `smtp://user:pass@host:587?tls=required`,
//! `smtps://user:pass@host:465`). A relay whose certificate chains to a
//! private CA is trusted through a PEM bundle (`--smtp-ca-file`), read and
//! checked at start-up, in addition to the public roots. A route that asks
//! for TLS (`?tls=required`, `smtps://`) never sends in clear: a relay that
//! does not offer STARTTLS fails the attempt. Each message has a plain-text
//! and an HTML body and an `X-Canopy-Dedup-Key` header. A permanent SMTP
//! refusal of the message (5xx) is refused for good; an authentication
//! refusal (530, 534, 535, 538: the relay's credentials or TLS policy,
//! which an operator fixes) and anything else is retried, so no alert is
//! dropped for a wrong password. One attempt (connection and exchange) is
//! bounded by the send timeout.

use std::path::Path;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::{NotifyError, text};
use crate::alerts::FieldError;

/// The dedup-key header.
pub const DEDUP_HEADER: &str = "X-Canopy-Dedup-Key";

/// An SMTP relay.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// Bound of one whole SMTP exchange (lettre's own timeout only covers
    /// the connection: a relay that stalls after it would hold the sender).
    timeout: std::time::Duration,
}

/// How a relay URL asks to use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `smtp://host` without `tls`: plain SMTP.
    None,
    /// `smtp://host?tls=opportunistic`: STARTTLS when offered.
    Opportunistic,
    /// `smtp://host?tls=required`: STARTTLS or fail.
    Required,
    /// `smtps://host`: TLS from the first byte.
    Wrapper,
}

/// The TLS mode and host of a relay URL.
pub fn tls_mode(url: &str) -> Result<(TlsMode, String), FieldError> {
    let bad = |m: String| FieldError::new("smtp_url", m);
    let u = reqwest::Url::parse(url).map_err(|e| bad(format!("invalid SMTP URL: {e}")))?;
    let host = u.host_str().ok_or_else(|| bad("expected a host in the SMTP URL".to_owned()))?.to_owned();
    let tls = u.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
    let mode = match (u.scheme(), tls.as_deref()) {
        ("smtp", None) => TlsMode::None,
        ("smtp", Some("opportunistic")) => TlsMode::Opportunistic,
        ("smtp", Some("required")) => TlsMode::Required,
        ("smtps", _) => TlsMode::Wrapper,
        (scheme, tls) => {
            return Err(bad(format!(
                "expected smtp:// (optionally ?tls=required or ?tls=opportunistic) or smtps://, found scheme {scheme:?} with tls {tls:?}"
            )));
        }
    };
    Ok((mode, host))
}

/// Reads a PEM bundle of CA certificates (at least one), naming
/// `smtp_ca_file` in the error.
pub fn load_ca_bundle(path: &Path) -> Result<Certificate, FieldError> {
    let bad = |m: String| FieldError::new("smtp_ca_file", m);
    let pem = std::fs::read(path).map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
    let count = String::from_utf8_lossy(&pem).matches("-----BEGIN CERTIFICATE-----").count();
    if count == 0 {
        return Err(bad(format!("expected PEM certificates in {}, found none", path.display())));
    }
    Certificate::from_pem(&pem).map_err(|e| bad(format!("parsing {}: {e}", path.display())))
}

impl Smtp {
    /// From a relay URL, trusting the CA certificates of `ca_file` as well
    /// as the public roots when set (only with a TLS URL).
    pub fn from_url(url: &str, ca_file: Option<&Path>, timeout: std::time::Duration) -> Result<Smtp, FieldError> {
        let (mode, host) = tls_mode(url)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| FieldError::new("smtp_url", format!("invalid SMTP URL: {e}")))?;
        if let Some(path) = ca_file {
            let ca = load_ca_bundle(path)?;
            let params = TlsParameters::builder(host)
                .add_root_certificate(ca)
                .build_rustls()
                .map_err(|e| FieldError::new("smtp_ca_file", format!("TLS settings with {}: {e}", path.display())))?;
            builder = builder.tls(match mode {
                TlsMode::Required => Tls::Required(params),
                TlsMode::Opportunistic => Tls::Opportunistic(params),
                TlsMode::Wrapper => Tls::Wrapper(params),
                TlsMode::None => {
                    return Err(FieldError::new(
                        "smtp_ca_file",
                        "set for a relay URL without TLS (use smtp://...?tls=required or smtps://)",
                    ));
                }
            });
        }
        Ok(Smtp { transport: builder.timeout(Some(timeout)).build(), timeout })
    }

    /// Sends the message of `event` to `to`.
    pub async fn send(&self, from: &str, to: &[String], event: &Value) -> Result<(), NotifyError> {
        let msg = message(from, to, event)?;
        match tokio::time::timeout(self.timeout, self.transport.send(msg)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(e.status().map(u16::from), e.is_permanent(), &e.to_string())),
            Err(_) => Err(NotifyError::Unavailable(format!(
                "SMTP delivery failed: no answer within {} s",
                self.timeout.as_secs_f64()
            ))),
        }
    }
}

/// Classifies a failed SMTP exchange: `code` the reply code when the relay
/// answered. Authentication and TLS-policy refusals are retried (fixing
/// the credentials delivers the queue); other 5xx refuse the message for
/// good; everything else (4xx, connection, TLS handshake, STARTTLS not
/// offered, timeout) is retried.
pub fn classify(code: Option<u16>, permanent: bool, text: &str) -> NotifyError {
    match code {
        Some(530 | 534 | 535 | 538) => NotifyError::Unavailable(format!("SMTP authentication failed: {text}")),
        _ if permanent => NotifyError::Rejected(format!("SMTP refused the message: {text}")),
        _ => NotifyError::Unavailable(format!("SMTP delivery failed: {text}")),
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Subject line of `event`.
pub fn subject(event: &Value) -> String {
    let verb = match text(event, "action") {
        "resolve" => "RESOLVED",
        "acknowledge" => "ACKNOWLEDGED",
        _ => "TRIGGERED",
    };
    let s = format!("[Canopy] {verb} {}: {}", text(event, "severity"), text(event, "summary"));
    s.chars().take(200).collect()
}

/// The message for `event`.
pub fn message(from: &str, to: &[String], event: &Value) -> Result<Message, NotifyError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| NotifyError::Rejected(format!("{what}: {e}"));
    let mut builder = Message::builder()
        .from(from.parse::<Mailbox>().map_err(|e| bad("sender address", &e))?)
        .subject(subject(event))
        .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(DEDUP_HEADER), text(event, "dedup_key").to_owned()));
    for addr in to {
        builder = builder.to(addr.parse::<Mailbox>().map_err(|e| bad("recipient address", &e))?);
    }
    let value = event.get("value_kg_co2e").and_then(Value::as_f64).unwrap_or(0.0);
    let budget = event.get("budget_kg_co2e").and_then(Value::as_f64).unwrap_or(0.0);
    let link = text(event, "dashboard_url");
    let plain = format!(
        "{summary}\n\nAction: {action}\nSeverity: {severity}\nKind: {kind}\nValue: {value:.1} kgCO2e of {budget:.1} kgCO2e\n\
         Alert: {key}\nDashboard: {link}\n",
        summary = text(event, "summary"),
        action = text(event, "action"),
        severity = text(event, "severity"),
        kind = text(event, "kind"),
        key = text(event, "dedup_key"),
    );
    let html = format!(
        "<!doctype html><html><body><h2>{summary}</h2><table>\
         <tr><th align=left>Action</th><td>{action}</td></tr>\
         <tr><th align=left>Severity</th><td>{severity}</td></tr>\
         <tr><th align=left>Kind</th><td>{kind}</td></tr>\
         <tr><th align=left>Value</th><td>{value:.1} kgCO2e of {budget:.1} kgCO2e</td></tr>\
         <tr><th align=left>Alert</th><td><code>{key}</code></td></tr></table>\
         <p><a href=\"{link}\">Open in the Canopy dashboard</a></p></body></html>",
        summary = escape_html(text(event, "summary")),
        action = escape_html(text(event, "action")),
        severity = escape_html(text(event, "severity")),
        kind = escape_html(text(event, "kind")),
        key = escape_html(text(event, "dedup_key")),
        link = escape_html(link),
    );
    builder.multipart(MultiPart::alternative_plain_html(plain, html)).map_err(|e| bad("building the message", &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relay_urls_and_failures_are_classified() {
        assert_eq!(tls_mode("smtp://relay:25").unwrap(), (TlsMode::None, "relay".to_owned()));
        assert_eq!(tls_mode("smtp://u:p@relay:587?tls=required").unwrap().0, TlsMode::Required);
        assert_eq!(tls_mode("smtp://relay?tls=opportunistic").unwrap().0, TlsMode::Opportunistic);
        assert_eq!(tls_mode("smtps://relay").unwrap().0, TlsMode::Wrapper);
        assert_eq!(tls_mode("smtp://relay?tls=sometimes").unwrap_err().field, "smtp_url");
        assert!(classify(Some(535), true, "bad credentials").is_retryable());
        assert!(classify(Some(530), true, "must issue STARTTLS first").is_retryable());
        assert!(!classify(Some(550), true, "no such mailbox").is_retryable());
        assert!(classify(Some(451), false, "try later").is_retryable());
        assert!(classify(None, false, "connection refused").is_retryable());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        assert_eq!(load_ca_bundle(&empty).unwrap_err().field, "smtp_ca_file");
        assert_eq!(load_ca_bundle(&dir.path().join("missing.pem")).unwrap_err().field, "smtp_ca_file");
    }

    #[test]
    fn message_has_both_bodies_and_the_dedup_header() {
        let event = json!({ "action": "trigger", "severity": "critical", "summary": "web <over> budget",
            "dedup_key": "canopy/budget/1/threshold/20261201", "value_kg_co2e": 12.0, "budget_kg_co2e": 10.0,
            "dashboard_url": "http://d/alerts#alert-1" });
        let m = message("canopy@example.org", &["oncall@example.org".to_owned()], &event).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Subject: [Canopy] TRIGGERED critical: web <over> budget"), "{raw}");
        assert!(raw.contains("X-Canopy-Dedup-Key: canopy/budget/1/threshold/20261201"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("web &lt;over&gt; budget"));
    }
}
