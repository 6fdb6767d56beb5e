//! Delivery: each cycle's records go durably into the outbox, and a sender
//! task ships them to the aggregator over QUIC.
//!
//! - [`OutboxSink`] turns a [`CycleOutput`] into the outbox's [`Cycle`]
//!   (protocol records, each emission with its resource's group) and
//!   appends it; `append` returns after an fsync, so a cycle counts as done
//!   only once it is on disk.
//! - The sender task resolves the endpoint, enrols through
//!   `transport::enroll` with the agent's own AWS credentials (the SDK's
//!   default chain: the instance or task role in production), renews the
//!   client certificate at [`DeliveryConfig::renew_at_lifetime_fraction`]
//!   of its lifetime and swaps it into the client, and runs the outbox's
//!   shared sender loop ([`canopy_outbox::send_pending`]): acknowledged
//!   batches are removed, failures retried with backoff and jitter,
//!   permanently refused batches kept in the outbox and counted.
//! - [`Delivery::shutdown`] drains what is pending for
//!   [`DeliveryConfig::drain_timeout_s`], then stops; anything left stays in
//!   the outbox for the next start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::SharedCredentialsProvider;
use canopy_outbox::{
    Cycle, GroupedEmission, Outbox, OutboxConfig, OutboxError, SenderConfig, SenderControl, SenderStats, send_pending,
};
use canopy_protocol::{EmissionRecord, GroupKey, Subject};
use canopy_transport::{AgentCertificate, Client, ClientConfig, EnrollConfig, RetryPolicy, enroll};
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;

use crate::config::{AgentConfig, DeliveryConfig};
use crate::cycle::{Agent, CycleOutput};
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::sink::{Sink, SinkError};

/// Why delivery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// `[delivery]` has no aggregator endpoint.
    #[error("delivery.aggregator_endpoint: expected host:port, found none")]
    NoEndpoint,
    /// The CA file could not be read or holds no certificate.
    #[error("delivery.ca_file {path}: {message}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The outbox could not be opened.
    #[error("delivery.outbox_path {path}: {source}")]
    Outbox {
        /// The folder.
        path: PathBuf,
        /// The outbox's error.
        source: OutboxError,
    },
}

/// The group (service, resource type, team) of an emission record's
/// subject: a group record's own, else its resource's from the inventory,
/// else the service named in the ARN.
pub fn record_group(record: &EmissionRecord, inventory: &Inventory, team_tag_keys: &[String]) -> GroupKey {
    match &record.subject {
        Subject::Group(g) => g.clone(),
        Subject::Resource { arn } => match inventory.get(arn) {
            Some(r) => GroupKey {
                service: r.service.to_owned(),
                resource_type: r.resource_type.to_owned(),
                team: r.team(team_tag_keys).map(str::to_owned),
            },
            None => GroupKey {
                service: arn.split(':').nth(2).filter(|s| !s.is_empty()).unwrap_or("unknown").to_owned(),
                resource_type: "resource".to_owned(),
                team: None,
            },
        },
    }
}

/// The outbox's view of one cycle.
pub fn outbox_cycle(
    output: &CycleOutput,
    inventory: &Inventory,
    account_id: &str,
    region: &str,
    team_tag_keys: &[String],
    created_at_unix_ms: i64,
) -> Cycle {
    Cycle {
        account_id: account_id.to_owned(),
        region: region.to_owned(),
        created_at_unix_ms,
        resources: output.resources.iter().map(|(r, _)| r.clone()).collect(),
        emissions: output
            .emissions
            .iter()
            .map(|e| GroupedEmission { record: e.clone(), group: record_group(e, inventory, team_tag_keys) })
            .collect(),
        agent_status: None,
    }
}

fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Appends each cycle to the outbox and wakes the sender.
pub struct OutboxSink {
    outbox: Arc<Outbox>,
    control: Arc<SenderControl>,
    stats: Arc<SenderStats>,
    path: PathBuf,
    region: String,
    team_tag_keys: Vec<String>,
}

impl Sink for OutboxSink {
    fn accept(&mut self, output: &CycleOutput, agent: &Agent) -> Result<(), SinkError> {
        let now_ms = now_unix_ms();
        let mut cycle =
            outbox_cycle(output, agent.inventory(), agent.account_id(), &self.region, &self.team_tag_keys, now_ms);
        // Every batch of the cycle carries the agent's health (protocol v2).
        self.export_metrics(agent.metrics());
        cycle.agent_status = Some(crate::records::agent_status(agent.metrics(), now_ms));
        // Blocks for one fsync per cycle (every few minutes).
        match self.outbox.append(&cycle) {
            Ok(appended) => {
                tracing::info!(
                    batches = appended.sequences.len(),
                    bytes = appended.bytes,
                    records = appended.records,
                    coarsened = appended.coarsened.is_some(),
                    "cycle stored in the outbox"
                );
                self.control.wake();
                Ok(())
            }
            // Counted (canopy_outbox_refused_cycles_total) and logged at
            // ERROR by the outbox; the agent goes on with the next cycle.
            Err(OutboxError::Full { .. }) => Ok(()),
            Err(source) => Err(SinkError::Outbox { path: self.path.clone(), source: Box::new(source) }),
        }
    }

    fn export_metrics(&self, metrics: &Metrics) {
        let stats = self.outbox.stats();
        metrics.set("canopy_agent_delivery_backlog_batches", &[], stats.pending_batches as f64);
        metrics.set("canopy_agent_delivery_backlog_bytes", &[], stats.pending_bytes as f64);
        let s = &self.stats;
        for (name, counter) in [
            ("canopy_agent_delivery_acked_batches_total", &s.acked_batches),
            ("canopy_agent_delivery_acked_bytes_total", &s.acked_bytes),
            ("canopy_agent_delivery_duplicate_acks_total", &s.duplicate_acks),
            ("canopy_agent_delivery_send_failures_total", &s.send_failures),
            ("canopy_agent_delivery_retry_replies_total", &s.retry_replies),
            ("canopy_agent_delivery_refused_batches_total", &s.refused_batches),
        ] {
            metrics.set(name, &[], SenderStats::get(counter) as f64);
        }
        for (name, value) in self.outbox.metrics().samples() {
            metrics.set(name, &[], value as f64);
        }
    }
}

/// What the sender task needs, resolved from the config.
#[derive(Clone)]
struct Settings {
    endpoint: String,
    server_name: String,
    ca_cert_der: CertificateDer<'static>,
    pin: canopy_transport::ChallengePin,
    agent_id: String,
    max_in_flight: usize,
    enroll_timeout: Duration,
    max_backoff: Duration,
    renew_fraction: f64,
}

/// The running delivery: outbox, sender task, shutdown.
pub struct Delivery {
    outbox: Arc<Outbox>,
    control: Arc<SenderControl>,
    stats: Arc<SenderStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    config: DeliveryConfig,
    region: String,
    team_tag_keys: Vec<String>,
}

impl Delivery {
    /// Opens the outbox and starts the sender task, which enrols with
    /// `credentials` (the SDK default chain when `None`).
    pub async fn start(
        config: &AgentConfig,
        metrics: Arc<Metrics>,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Result<Delivery, DeliveryError> {
        let d = &config.delivery;
        let endpoint = d.aggregator_endpoint.clone().ok_or(DeliveryError::NoEndpoint)?;
        let ca_path = d.ca_file.clone().unwrap_or_default();
        let ca_error = |message: String| DeliveryError::Ca { path: ca_path.clone(), message };
        let pem = std::fs::read_to_string(&ca_path).map_err(|e| ca_error(e.to_string()))?;
        let ca_cert_der = canopy_transport::ca::first_certificate_der(&pem).map_err(|e| ca_error(e.to_string()))?;
        let settings = Settings {
            endpoint,
            server_name: d.effective_server_name().ok_or(DeliveryError::NoEndpoint)?,
            ca_cert_der,
            pin: canopy_transport::ChallengePin { server_id: d.server_id.clone(), sts_url: d.sts_url.clone() },
            agent_id: config.agent_id.clone(),
            max_in_flight: d.max_in_flight as usize,
            enroll_timeout: Duration::from_secs(u64::from(d.enroll_timeout_s)),
            max_backoff: Duration::from_secs(u64::from(d.max_backoff_s)),
            renew_fraction: d.renew_at_lifetime_fraction,
        };
        let mut outbox_config = OutboxConfig::new(config.agent_id.clone());
        outbox_config.max_bytes = d.max_outbox_bytes;
        let dir = d.outbox_path.clone();
        let outbox = tokio::task::spawn_blocking(move || Outbox::open(&dir, outbox_config))
            .await
            .map_err(|e| DeliveryError::Outbox {
                path: d.outbox_path.clone(),
                source: OutboxError::Store(canopy_outbox::StoreError::Io {
                    path: d.outbox_path.clone(),
                    source: std::io::Error::other(e.to_string()),
                }),
            })?
            .map_err(|source| DeliveryError::Outbox { path: d.outbox_path.clone(), source })?;
        let outbox = Arc::new(outbox);
        let pending = outbox.stats();
        tracing::info!(
            outbox = %d.outbox_path.display(),
            pending_batches = pending.pending_batches,
            pending_bytes = pending.pending_bytes,
            aggregator = %settings.endpoint,
            "delivery starting"
        );
        let credentials = match credentials {
            Some(c) => Some(c),
            None => aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(config.region.clone()))
                .load()
                .await
                .credentials_provider(),
        };
        let control = Arc::new(SenderControl::new());
        let stats = Arc::new(SenderStats::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(sender_task(
            settings,
            outbox.clone(),
            control.clone(),
            stats.clone(),
            metrics,
            credentials,
            stop_rx,
        ));
        Ok(Delivery {
            outbox,
            control,
            stats,
            stop,
            task,
            config: d.clone(),
            region: config.region.clone(),
            team_tag_keys: config.attribution.team_tag_keys.clone(),
        })
    }

    /// The sink that appends cycles to this delivery's outbox.
    pub fn sink(&self) -> OutboxSink {
        OutboxSink {
            outbox: self.outbox.clone(),
            control: self.control.clone(),
            stats: self.stats.clone(),
            path: self.config.outbox_path.clone(),
            region: self.region.clone(),
            team_tag_keys: self.team_tag_keys.clone(),
        }
    }

    /// Sends what is pending for up to the drain timeout, then stops the
    /// sender; frames not acknowledged by then stay in the outbox.
    pub async fn shutdown(self) {
        let Delivery { outbox, control, stop, mut task, config, .. } = self;
        control.drain();
        let drain = Duration::from_secs(u64::from(config.drain_timeout_s));
        if tokio::time::timeout(drain, &mut task).await.is_err() {
            tracing::warn!(drain_timeout_s = config.drain_timeout_s, "outbox not drained in time; the rest is sent at next start");
            control.stop();
            let _ = stop.send(true);
            if tokio::time::timeout(Duration::from_secs(15), &mut task).await.is_err() {
                tracing::warn!("sender did not stop within 15 s; cancelling it (the outbox keeps every batch)");
                task.abort();
            }
        }
        let left = outbox.stats();
        if let Err(e) = outbox.flush() {
            tracing::warn!(error = %e, "flushing the outbox at shutdown failed");
        }
        tracing::info!(pending_batches = left.pending_batches, pending_bytes = left.pending_bytes, "delivery stopped");
    }
}

/// Sleeps `d` unless `stop` turns true first; returns true when stopped.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
    }
}

fn jitter(d: Duration) -> Duration {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
    d.mul_f64(0.5 + 0.5 * f64::from(nanos % 1_000) / 1_000.0)
}

/// Resolves `host:port` (DNS) to the first address, retrying until stopped.
async fn resolve(endpoint: &str, max_backoff: Duration, stop: &mut watch::Receiver<bool>) -> Option<SocketAddr> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match tokio::net::lookup_host(endpoint).await.map(|mut a| a.next()) {
            Ok(Some(addr)) => return Some(addr),
            Ok(None) => tracing::warn!(endpoint, "aggregator endpoint resolved to no address; retrying"),
            Err(e) => tracing::warn!(endpoint, error = %e, "cannot resolve the aggregator endpoint; retrying"),
        }
        if sleep_or_stop(jitter(backoff), stop).await {
            return None;
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// Enrols, retrying with backoff and jitter until it succeeds or `stop`.
async fn enroll_until_done(
    config: &EnrollConfig,
    credentials: Option<&SharedCredentialsProvider>,
    metrics: &Metrics,
    max_backoff: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Option<AgentCertificate> {
    let mut backoff = Duration::from_millis(200);
    loop {
        let result = match credentials {
            Some(c) => enroll(config, c).await,
            None => Err(canopy_transport::EnrollError::Credentials(
                "no AWS credentials in the SDK default chain".to_owned(),
            )),
        };
        match result {
            Ok(cert) => {
                metrics.inc("canopy_agent_delivery_enrolments_total", &[("outcome", "ok")]);
                metrics.set(
                    "canopy_agent_delivery_certificate_expiry_timestamp_seconds",
                    &[],
                    cert.identity.not_after_unix_s as f64,
                );
                tracing::info!(
                    account_id = %cert.identity.account_id,
                    role = %cert.identity.role_name,
                    lifetime_s = cert.lifetime.as_secs(),
                    "enrolled; client certificate issued"
                );
                return Some(cert);
            }
            Err(e) => {
                metrics.inc("canopy_agent_delivery_enrolments_total", &[("outcome", "failed")]);
                if e.is_retryable() {
                    tracing::warn!(error = %e, delay_ms = backoff.as_millis() as u64, "enrolment failed; retrying");
                } else {
                    tracing::error!(error = %e, delay_ms = backoff.as_millis() as u64, "enrolment refused; retrying (operator action needed)");
                }
            }
        }
        if sleep_or_stop(jitter(backoff), stop).await {
            return None;
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

/// When to renew `cert`: `fraction` of its lifetime after receipt.
fn renew_at(cert: &AgentCertificate, fraction: f64) -> SystemTime {
    cert.received_at + cert.lifetime.mul_f64(fraction)
}

/// Re-enrols before each certificate expires and swaps it into `client`.
async fn renew_loop(
    client: Client,
    config: EnrollConfig,
    credentials: Option<SharedCredentialsProvider>,
    metrics: Arc<Metrics>,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let wait = renew_at(&client.certificate(), settings.renew_fraction)
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if sleep_or_stop(wait, &mut stop).await {
            return;
        }
        let Some(cert) =
            enroll_until_done(&config, credentials.as_ref(), &metrics, settings.max_backoff, &mut stop).await
        else {
            return;
        };
        if let Err(e) = client.set_certificate(cert) {
            tracing::error!(error = %e, "cannot use the renewed certificate; keeping the old one");
            if sleep_or_stop(settings.max_backoff, &mut stop).await {
                return;
            }
        } else {
            tracing::info!("renewed client certificate; the next batch reconnects with it");
        }
    }
}

async fn sender_task(
    settings: Settings,
    outbox: Arc<Outbox>,
    control: Arc<SenderControl>,
    stats: Arc<SenderStats>,
    metrics: Arc<Metrics>,
    credentials: Option<SharedCredentialsProvider>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(addr) = resolve(&settings.endpoint, settings.max_backoff, &mut stop).await else { return };
    let enroll_config = EnrollConfig {
        server_addr: addr,
        server_name: settings.server_name.clone(),
        ca_cert_der: settings.ca_cert_der.clone(),
        agent_id: settings.agent_id.clone(),
        timeout: settings.enroll_timeout,
        pin: settings.pin.clone(),
    };
    let Some(cert) =
        enroll_until_done(&enroll_config, credentials.as_ref(), &metrics, settings.max_backoff, &mut stop).await
    else {
        return;
    };
    let mut client_config = ClientConfig::new(addr, settings.server_name.clone(), settings.ca_cert_der.clone());
    client_config.max_in_flight = settings.max_in_flight;
    client_config.retry = RetryPolicy { min_delay: Duration::from_millis(100), max_delay: settings.max_backoff, max_retries: 3 };
    let client = match Client::new(client_config, cert) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the QUIC client; delivery stopped, the outbox keeps every batch");
            return;
        }
    };
    let (renewal_stop, renewal_stop_rx) = watch::channel(false);
    let renewal = tokio::spawn(renew_loop(
        client.clone(),
        enroll_config,
        credentials,
        metrics,
        settings.clone(),
        renewal_stop_rx,
    ));
    let sender_config = SenderConfig {
        max_backoff: settings.max_backoff,
        max_retry_after: settings.max_backoff,
        ..SenderConfig::default()
    };
    let send = |frame: Vec<u8>| {
        let client = client.clone();
        async move { client.send(&frame).await }
    };
    if let Err(e) = send_pending(outbox, send, &sender_config, &stats, &control).await {
        tracing::error!(error = %e, "sender stopped; the outbox keeps every unacknowledged batch");
    }
    // The sender returned (drained or stopped): end renewal too.
    let _ = renewal_stop.send(true);
    let _ = renewal.await;
    client.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_protocol::{GridFactorUsed, Quality};

    fn record(subject: Subject) -> EmissionRecord {
        let grid = GridFactorUsed { g_co2e_per_kwh: 300.0, source: "ccf".into(), vintage: "2024".into() };
        EmissionRecord {
            subject,
            interval_start_unix_s: 3_600,
            interval_end_unix_s: 7_200,
            energy_compute_kwh: 0.01,
            energy_memory_kwh: 0.0,
            energy_storage_kwh: 0.0,
            energy_networking_kwh: 0.0,
            energy_accelerators_kwh: 0.0,
            pue: 1.1,
            embodied_g_co2e: 1.0,
            operational_location_g_co2e: 3.3,
            operational_market_g_co2e: 3.3,
            grid_location: grid.clone(),
            grid_market: grid,
            quality: Quality::Estimated,
            low_g_co2e: 2.0,
            high_g_co2e: 8.0,
            methodology_version: "t".into(),
            revision: 1,
        }
    }

    #[test]
    fn groups_come_from_the_record_or_the_arn() {
        let inventory = Inventory::new();
        let g = GroupKey { service: "ec2".into(), resource_type: "instance".into(), team: Some("a".into()) };
        assert_eq!(record_group(&record(Subject::Group(g.clone())), &inventory, &[]), g);
        let unknown = record(Subject::Resource { arn: "arn:aws:rds:eu-west-1:123456789012:db:x".into() });
        assert_eq!(
            record_group(&unknown, &inventory, &[]),
            GroupKey { service: "rds".into(), resource_type: "resource".into(), team: None }
        );
    }

    #[test]
    fn renewal_follows_the_configured_fraction() {
        let now = SystemTime::now();
        let cert = AgentCertificate {
            key: canopy_transport::CertifiedKey { cert_der: CertificateDer::from(vec![1u8]), key_pkcs8_der: vec![] },
            identity: canopy_transport::PeerIdentity {
                agent_id: "a".into(),
                account_id: "123456789012".into(),
                role_name: "r".into(),
                caller_arn: "arn".into(),
                not_after_unix_s: 0,
            },
            received_at: now,
            lifetime: Duration::from_secs(3_000),
        };
        assert_eq!(renew_at(&cert, 2.0 / 3.0), cert.renew_at());
        assert_eq!(renew_at(&cert, 0.5), now + Duration::from_secs(1_500));
    }
}
