//! Email over SMTP with lettre: plain SMTP, STARTTLS or implicit TLS and
//! optional authentication, all from the relay URL
//! (`smtp://host:25`, `smtp://user:pass@host:587?tls=required`,
//! `smtps://user:pass@host:465`). Each message has a plain-text and an HTML
//! body and an `X-Canopy-Dedup-Key` header. A permanent SMTP refusal (5xx)
//! is refused for good; anything else is retried.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::{NotifyError, text};
use crate::alerts::FieldError;

/// The dedup-key header.
pub const DEDUP_HEADER: &str = "X-Canopy-Dedup-Key";

/// An SMTP relay.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Smtp {
    /// From a relay URL.
    pub fn from_url(url: &str, timeout: std::time::Duration) -> Result<Smtp, FieldError> {
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| FieldError::new("smtp_url", format!("invalid SMTP URL: {e}")))?;
        Ok(Smtp { transport: builder.timeout(Some(timeout)).build() })
    }

    /// Sends the message of `event` to `to`.
    pub async fn send(&self, from: &str, to: &[String], event: &Value) -> Result<(), NotifyError> {
        let msg = message(from, to, event)?;
        match self.transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(NotifyError::Rejected(format!("SMTP refused the message: {e}"))),
            Err(e) => Err(NotifyError::Unavailable(format!("SMTP delivery failed: {e}"))),
        }
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
