//! One simulated agent: the agent library's cycle on the simulated source
//! for one account and region, its own durable outbox and its own QUIC
//! connection. The backfill runs hourly cycles with past timestamps as fast
//! as the aggregator acknowledges them; the live phase runs 5-minute cycles
//! on the simulated clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canopy_agent::collectors::CollectContext;
use canopy_agent::config::AgentConfig;
use canopy_agent::cost::{CostMeter, CostModel};
use canopy_agent::cycle::{Agent, AgentParts, Cadence, CycleOutput};
use canopy_agent::env::MapEnv;
use canopy_agent::deliver::outbox_cycle;
use canopy_agent::estimate::Estimator;
use canopy_agent::metrics::Metrics;
use canopy_agent::simulated::{PlantedAnomaly, SimulatedSource, TEAM_TAG_KEYS};
use canopy_emissions::grid::MarketConfig;
use canopy_outbox::{Cycle, Outbox, OutboxConfig, SenderConfig, SenderControl, SenderError, SenderStats, send_pending};
use canopy_transport::Client;
use tokio::sync::watch;

use super::clock::SimClock;

/// Frames allowed to wait in an outbox before the producer pauses (keeps the
/// backfill in step with the aggregator's acknowledgements).
pub const MAX_BACKLOG_BATCHES: usize = 8;

/// What one simulated agent runs.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Agent id (unique in the fleet).
    pub agent_id: String,
    /// Account id.
    pub account_id: String,
    /// Region.
    pub region: String,
    /// Seed of its simulated source.
    pub seed: u64,
    /// Resources (slots) in its account and region.
    pub resources: u32,
    /// Anomalies planted in its account and region (empty by default).
    pub planted: Vec<PlantedAnomaly>,
    /// Outbox folder.
    pub outbox_dir: PathBuf,
}

/// Progress shared by the fleet.
#[derive(Debug, Default)]
pub struct FleetProgress {
    /// Backfill cycles appended (all agents).
    pub backfill_cycles: AtomicU64,
    /// Live cycles appended (all agents).
    pub live_cycles: AtomicU64,
    /// Emission records appended (all agents).
    pub records: AtomicU64,
    /// Agents whose backfill is acknowledged in full.
    pub agents_backfilled: AtomicU64,
    /// Deliveries.
    pub delivery: SenderStats,
}

/// Why a simulated agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentTaskError {
    /// The agent configuration (used for its cost model) was refused.
    #[error("agent {agent_id}: configuration: {message}")]
    Config {
        /// Agent id.
        agent_id: String,
        /// The error.
        message: String,
    },
    /// The outbox failed.
    #[error("agent {agent_id}: outbox: {source}")]
    Outbox {
        /// Agent id.
        agent_id: String,
        /// The error (boxed: it is large and this path is cold).
        source: Box<canopy_outbox::OutboxError>,
    },
    /// Delivery failed for good.
    #[error("agent {agent_id}: {source}")]
    Deliver {
        /// Agent id.
        agent_id: String,
        /// The error (boxed: it is large and this path is cold).
        source: Box<SenderError>,
    },
    /// A task panicked.
    #[error("agent {agent_id}: task failed: {message}")]
    Task {
        /// Agent id.
        agent_id: String,
        /// The error.
        message: String,
    },
}

fn build_agent(spec: &AgentSpec, cadence: Cadence) -> Result<Agent, AgentTaskError> {
    let text = format!(
        "config_version = 1\nagent_id = \"{}\"\naccount_id = \"{}\"\nregion = \"{}\"\n[source]\nkind = \"simulated\"\nseed = 0\nresources = {}\n",
        spec.agent_id,
        spec.account_id,
        spec.region,
        spec.resources.max(1)
    );
    let config = AgentConfig::from_toml(&text, "simulate", &MapEnv::default())
        .map_err(|e| AgentTaskError::Config { agent_id: spec.agent_id.clone(), message: e.to_string() })?;
    let meter = Arc::new(CostMeter::new());
    let source =
        SimulatedSource::new(spec.seed, spec.resources, meter.clone()).with_churn(true).with_planted(spec.planted.clone());
    let keys = team_tag_keys();
    let agent = Agent::new(AgentParts {
        context: CollectContext { account_id: spec.account_id.clone(), region: spec.region.clone(), now_unix_s: 0 },
        cadence,
        collectors: vec![Box::new(source.clone())],
        metric_source: Box::new(source),
        changes: None,
        estimator: Estimator::new(&spec.region, MarketConfig::new(), keys),
        cost_model: CostModel::from_config(&config),
        metrics: Arc::new(Metrics::new()),
        meter,
    });
    Ok(agent)
}

fn team_tag_keys() -> Vec<String> {
    TEAM_TAG_KEYS.iter().map(|k| (*k).to_owned()).collect()
}

/// The outbox cycle of one agent cycle: what the real agent appends (its
/// inventory, per-resource hourly records and 5-minute group records).
fn cycle_for_outbox(agent: &Agent, region: &str, output: &CycleOutput) -> Cycle {
    let created_at_unix_ms = output.stats.cycle_end_unix_s * 1_000;
    outbox_cycle(output, agent.inventory(), agent.account_id(), region, &team_tag_keys(), created_at_unix_ms)
}

/// Hourly cycles: every cycle fetches the hour before it (measured records).
pub const BACKFILL_CADENCE: Cadence = Cadence { cycle_s: 3_600, utilisation_s: 3_600, full_inventory_s: 3_600 };
/// Live cycles: 5 minutes, utilisation every hour, full inventory every hour.
pub const LIVE_CADENCE: Cadence = Cadence { cycle_s: 300, utilisation_s: 3_600, full_inventory_s: 3_600 };

/// Runs one agent: backfill `[backfill_from, live_from)` hour by hour, then
/// live 5-minute cycles on `clock` until `stop` turns true.
pub async fn run_agent(
    spec: AgentSpec,
    client: Client,
    mut clock: SimClock,
    progress: Arc<FleetProgress>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), AgentTaskError> {
    let agent_id = spec.agent_id.clone();
    let outbox_err = |source| AgentTaskError::Outbox { agent_id: agent_id.clone(), source: Box::new(source) };
    let (dir, config) = (spec.outbox_dir.clone(), OutboxConfig::new(spec.agent_id.clone()));
    let outbox = Arc::new(
        tokio::task::spawn_blocking(move || Outbox::open(&dir, config))
            .await
            .map_err(|e| AgentTaskError::Task { agent_id: agent_id.clone(), message: e.to_string() })?
            .map_err(outbox_err)?,
    );
    // The outbox's shared sender loop, the one the real agent runs.
    let control = Arc::new(SenderControl::new());
    let sender = {
        let (outbox, control, progress) = (outbox.clone(), control.clone(), progress.clone());
        let client = client.clone();
        let config = SenderConfig {
            frames_per_round: 32,
            idle_poll: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            ..SenderConfig::default()
        };
        tokio::spawn(async move {
            let send = |frame: Vec<u8>| {
                let client = client.clone();
                async move { client.send(&frame).await }
            };
            send_pending(outbox, send, &config, &progress.delivery, &control).await
        })
    };
    let produced = produce(&spec, &outbox, &control, &mut clock, &progress, &mut stop).await;
    control.drain();
    let sent = sender.await;
    client.close().await;
    produced?;
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(AgentTaskError::Deliver { agent_id, source: Box::new(source) }),
        Err(e) => Err(AgentTaskError::Task { agent_id, message: e.to_string() }),
    }
}

async fn append(
    spec: &AgentSpec,
    outbox: &Arc<Outbox>,
    control: &SenderControl,
    mut cycle: Cycle,
    progress: &FleetProgress,
) -> Result<(), AgentTaskError> {
    let records = cycle.emissions.len() as u64;
    // The status a real agent reports with each cycle, for fleet health.
    // Simulated collection cannot fail, and send failures are counted for
    // the whole fleet (`FleetProgress::delivery`), not per agent.
    let backlog = outbox.stats();
    cycle.agent_status = Some(canopy_protocol::AgentStatus {
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        outbox_backlog_frames: backlog.pending_batches as u64,
        outbox_backlog_bytes: backlog.pending_bytes,
        records_shed_total: 0,
        collection_errors_total: 0,
        send_failures_total: 0,
        taken_at_unix_ms: cycle.created_at_unix_ms,
    });
    let ob = outbox.clone();
    tokio::task::spawn_blocking(move || ob.append(&cycle))
        .await
        .map_err(|e| AgentTaskError::Task { agent_id: spec.agent_id.clone(), message: e.to_string() })?
        .map_err(|source| AgentTaskError::Outbox { agent_id: spec.agent_id.clone(), source: Box::new(source) })?;
    progress.records.fetch_add(records, Ordering::Relaxed);
    control.wake();
    Ok(())
}

/// Waits until the outbox holds at most `max` batches (or `stop`).
async fn wait_for_backlog(outbox: &Outbox, max: usize, stop: &watch::Receiver<bool>) {
    while outbox.stats().pending_batches > max && !*stop.borrow() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn produce(
    spec: &AgentSpec,
    outbox: &Arc<Outbox>,
    control: &SenderControl,
    clock: &mut SimClock,
    progress: &FleetProgress,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), AgentTaskError> {
    let mut agent = build_agent(spec, BACKFILL_CADENCE)?;
    let mut t = clock.backfill_from_unix_s + 3_600;
    while t <= clock.live_from_unix_s && !*stop.borrow() {
        let output = agent.run_cycle(t).await;
        let cycle = cycle_for_outbox(&agent, &spec.region, &output);
        append(spec, outbox, control, cycle, progress).await?;
        progress.backfill_cycles.fetch_add(1, Ordering::Relaxed);
        wait_for_backlog(outbox, MAX_BACKLOG_BATCHES, stop).await;
        t += 3_600;
    }
    wait_for_backlog(outbox, 0, stop).await;
    progress.agents_backfilled.fetch_add(1, Ordering::Relaxed);
    if clock.live_cycles == Some(0) {
        return Ok(());
    }
    let mut agent = build_agent(spec, LIVE_CADENCE)?;
    let mut k: u64 = 1;
    loop {
        let cycle_end = clock.live_from_unix_s + k as i64 * LIVE_CADENCE.cycle_s;
        tokio::select! {
            _ = clock.sleep_until(cycle_end) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return Ok(());
        }
        let output = agent.run_cycle(cycle_end).await;
        let cycle = cycle_for_outbox(&agent, &spec.region, &output);
        append(spec, outbox, control, cycle, progress).await?;
        progress.live_cycles.fetch_add(1, Ordering::Relaxed);
        if clock.live_cycles.is_some_and(|n| k >= n) {
            return Ok(());
        }
        k += 1;
    }
}
