//! Notifiers: render an outbox event for one channel and hand it to the
//! receiver. They never decide whether an alert exists or is due; they
//! report whether the receiver accepted ([`NotifyError`] says whether a
//! failure is worth retrying).
//!
//! - [`pagerduty`]: PagerDuty Events API v2.
//! - [`email`]: SMTP with lettre, plain-text and HTML bodies.
//! - [`webhook`]: Slack-compatible JSON with an HMAC-SHA256 signature.

pub mod email;
pub mod pagerduty;
pub mod webhook;

use serde_json::Value;

use super::AlertsConfig;
use super::routes::{Route, Target};

/// Why a delivery did not go through.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotifyError {
    /// Worth retrying: the receiver is down, throttling or timed out.
    #[error("receiver unavailable: {0}")]
    Unavailable(String),
    /// Not worth retrying: the receiver refused the event as invalid, or
    /// the route cannot deliver it.
    #[error("refused: {0}")]
    Rejected(String),
}

impl NotifyError {
    /// True when a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifyError::Unavailable(_))
    }
}

/// Classifies an HTTP status: 2xx accepted; 408, 429 and 5xx retried;
/// other 4xx refused.
pub fn classify_status(status: u16, body: &str) -> Result<(), NotifyError> {
    let text = || format!("HTTP {status}: {}", body.chars().take(300).collect::<String>());
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(NotifyError::Unavailable(text())),
        _ => Err(NotifyError::Rejected(text())),
    }
}

/// The channels, built once from the configuration.
pub struct Notifiers {
    http: reqwest::Client,
    config: AlertsConfig,
    smtp: Option<email::Smtp>,
}

impl Notifiers {
    /// Builds the HTTP client and the SMTP transport.
    pub fn new(config: AlertsConfig) -> Result<Notifiers, super::FieldError> {
        let http = reqwest::Client::builder()
            .timeout(config.send_timeout)
            .build()
            .map_err(|e| super::FieldError::new("alerts", format!("building the HTTP client: {e}")))?;
        let smtp = match &config.smtp_url {
            Some(url) => Some(email::Smtp::from_url(url, config.send_timeout)?),
            None => None,
        };
        Ok(Notifiers { http, config, smtp })
    }

    /// Delivers `event` (an outbox row's facts) on `route`.
    pub async fn send(&self, route: &Route, event: &Value) -> Result<(), NotifyError> {
        match &route.target {
            Target::PagerDuty { routing_key } => {
                let key = event.get("pagerduty_routing_key").and_then(Value::as_str).unwrap_or(routing_key);
                let body = pagerduty::body(key, event);
                pagerduty::send(&self.http, &self.config.pagerduty_events_url, &body).await
            }
            Target::Email { to } => match &self.smtp {
                Some(smtp) => smtp.send(&self.config.email_from, to, event).await,
                None => Err(NotifyError::Unavailable("no SMTP relay configured (--smtp-url)".to_owned())),
            },
            Target::Webhook { url, secret } => webhook::send(&self.http, url, secret, event).await,
        }
    }
}

/// A text field of an event, or "".
pub(crate) fn text<'a>(event: &'a Value, key: &str) -> &'a str {
    event.get(key).and_then(Value::as_str).unwrap_or("")
}
