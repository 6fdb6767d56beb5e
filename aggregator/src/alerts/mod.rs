//! Carbon budgets, the alerts they raise and the delivery of those alerts
//! (issue 17 §1 and §4).
//!
//! This module owns the budgets (scope, period, basis, amount, thresholds,
//! routes), the named notification routes, silences, the alert state with
//! its stable identity (`alert_key`), the alert history and the PostgreSQL
//! outbox of notifications. The evaluator ([`evaluate`]) reads the rollups,
//! decides which alerts fire, escalate or resolve, and writes the alert
//! state, its history and the outbox rows in one transaction; it never
//! sends anything. The sender ([`outbox`]) delivers outbox rows to the
//! notifiers ([`notify`]) until each receiver accepts; notifiers render and
//! send, and never decide whether an alert exists. **Invariant: a
//! notification exists only as an outbox row committed with the decision
//! that caused it, and it leaves the queue only when the receiver accepted
//! it (or refused it for good, which is counted and kept).** Forecast
//! overshoot and anomaly alerts plug in through [`evaluate::ForecastSource`]
//! and [`evaluate::AnomalySource`]; this module computes no forecast and
//! detects no anomaly itself.
//!
//! - [`budgets`]: budget model, parsing and validation, periods, storage.
//! - [`basis`]: the one place where a budget basis becomes rollup columns.
//! - [`routes`]: notification routes (rate limit, quiet hours).
//! - [`silences`]: silences with expiry.
//! - [`usage`]: one round's read of the rollups, indexed for many budgets.
//! - [`evaluate`]: the decision (pure) and the evaluation round and loop.
//! - [`outbox`]: the sender (backoff with `backon`, rate limits, quiet hours).
//! - [`notify`]: PagerDuty Events API v2, email (SMTP, lettre), webhook.
//! - [`access`]: who may read and write what (admin writes, scoped reads),
//!   applied by both APIs; every admin write is audited in its transaction.
//! - [`http`]: the HTTP handlers (served behind the access control).
//! - [`grpc`]: budget CRUD over gRPC (same validation, roles and audit as HTTP).
//! - [`metrics`]: Prometheus counters of the evaluator and the sender.
//! - [`bench`]: the evaluation benchmark (`canopy-aggregator bench-alerts`).

pub mod access;
pub mod basis;
pub mod bench;
pub mod budgets;
pub mod evaluate;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod routes;
pub mod silences;
pub mod usage;

/// A value of a request that failed validation: the field and what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field (dotted path for nested ones, e.g. `scope.team`).
    pub field: String,
    /// What was expected and what was found.
    pub message: String,
}

impl FieldError {
    /// An error naming `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Errors of the alerting store and its requests.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The request is invalid; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The named object does not exist (or is outside the caller's scope).
    #[error("{0} not found")]
    NotFound(String),
    /// The caller's role may not do this (see [`access`]).
    #[error("{0}")]
    Forbidden(String),
    /// No authenticated principal on the request.
    #[error("authentication required")]
    Unauthenticated,
    /// A statement failed.
    #[error("database error in alerting: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Alerting configuration of `serve`, validated at start-up.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Seconds between evaluation rounds (at most 240, so an alert fires
    /// within 5 minutes of its data being acknowledged).
    pub evaluate_interval: std::time::Duration,
    /// Public base URL of the dashboard, for links in notifications.
    pub dashboard_url: String,
    /// PagerDuty Events API v2 endpoint.
    pub pagerduty_events_url: String,
    /// SMTP relay URL for lettre (`smtp://host:25` plain,
    /// `smtp://user:pass@host:587?tls=required` STARTTLS, `smtps://` TLS);
    /// email routes fail (and are retried) while unset.
    pub smtp_url: Option<String>,
    /// Sender address of alert emails.
    pub email_from: String,
    /// Shortest and longest wait between delivery attempts.
    pub retry_min: std::time::Duration,
    /// Longest wait between delivery attempts.
    pub retry_max: std::time::Duration,
    /// Timeout of one delivery attempt.
    pub send_timeout: std::time::Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            evaluate_interval: std::time::Duration::from_secs(60),
            dashboard_url: "http://127.0.0.1:8080".to_owned(),
            pagerduty_events_url: "https://events.pagerduty.com/v2/enqueue".to_owned(),
            smtp_url: None,
            email_from: "canopy@localhost".to_owned(),
            retry_min: std::time::Duration::from_secs(1),
            retry_max: std::time::Duration::from_secs(300),
            send_timeout: std::time::Duration::from_secs(20),
        }
    }
}

impl AlertsConfig {
    /// Checks the values, naming the first wrong one.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.evaluate_interval.is_zero() || self.evaluate_interval > std::time::Duration::from_secs(240) {
            return Err(FieldError::new(
                "alert_evaluate_interval_s",
                format!("expected 1 to 240 seconds, found {}", self.evaluate_interval.as_secs()),
            ));
        }
        for (field, url) in
            [("alert_dashboard_url", &self.dashboard_url), ("pagerduty_events_url", &self.pagerduty_events_url)]
        {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(FieldError::new(field, format!("expected an http(s) URL, found {url:?}")));
            }
        }
        if let Some(u) = &self.smtp_url
            && !(u.starts_with("smtp://") || u.starts_with("smtps://"))
        {
            return Err(FieldError::new("smtp_url", "expected an smtp:// or smtps:// URL"));
        }
        if !self.email_from.contains('@') {
            return Err(FieldError::new("alert_email_from", format!("expected an address, found {:?}", self.email_from)));
        }
        if self.retry_min.is_zero() || self.retry_max < self.retry_min {
            return Err(FieldError::new("alert_retry_max_s", "expected 0 < retry min <= retry max"));
        }
        Ok(())
    }
}
