//! `canopy simulate`: a simulated AWS organisation (accounts in OUs and
//! regions, from `canopy_agent::simulated`) whose agents run in this process,
//! one tokio task each on a shared runtime. Each agent runs the agent
//! library's cycle on the simulated source, appends to its own durable
//! outbox and delivers over its own QUIC connection to a real aggregator.
//! For demos and tests only: agents get certificates straight from the CA
//! key ([`certs`]).
//!
//! - [`clock`]: backfill range and the live phase's simulated clock.
//! - [`agent_task`]: one agent (backfill, then live cycles).
//! - [`certs`]: TEST-ONLY client certificates.

pub mod agent_task;
pub mod certs;
pub mod clock;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use canopy_agent::simulated::{PlantTarget, PlantedAnomaly, SimulatedOrganisation, organisation, plant_anomalies};
use canopy_aggregator::directory::{self, AccountRow};
use canopy_outbox::SenderStats;
use canopy_transport::ca::first_certificate_der;
use canopy_transport::{CertificateAuthority, Client, ClientConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use agent_task::{AgentSpec, FleetProgress, run_agent};
use clock::{SimClock, wall_unix_s};

/// Everything a simulation needs.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Member accounts.
    pub accounts: u32,
    /// Resources per account (split over its regions).
    pub resources_per_account: u32,
    /// Seed of the organisation.
    pub seed: u64,
    /// OUs the accounts are spread over (1 to 5).
    pub ous: usize,
    /// Regions (every account runs in the first).
    pub regions: Vec<String>,
    /// Live-phase speed, simulated seconds per real second.
    pub speedup: f64,
    /// Days of past data sent first.
    pub backfill_days: u32,
    /// Live cycles per agent before stopping (`None`: until Ctrl-C).
    pub live_cycles: Option<u64>,
    /// Aggregator QUIC address.
    pub aggregator: SocketAddr,
    /// Name in the aggregator's certificate.
    pub server_name: String,
    /// CA certificate PEM.
    pub ca_cert_pem: String,
    /// CA private key PEM (TEST ONLY: agents' certificates are issued from it).
    pub ca_key_pem: String,
    /// Folder of the agents' outboxes.
    pub state_dir: PathBuf,
    /// Draw a progress bar on stderr.
    pub progress_bar: bool,
    /// Notified once every agent's backfill is acknowledged.
    pub backfilled: Option<Arc<tokio::sync::Notify>>,
    /// Plant anomalies (a team's GPU fleet left running, a runaway Lambda, a
    /// region doubling) in the backfilled history; off by default (`canopy
    /// demo` never plants). The ground truth is logged when the simulation
    /// starts and returned in [`SimulateReport::planted`].
    pub plant_anomalies: bool,
}

/// What a simulation did.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulateReport {
    /// Agents run.
    pub agents: usize,
    /// Backfill cycles appended.
    pub backfill_cycles: u64,
    /// Live cycles appended.
    pub live_cycles: u64,
    /// Emission records appended.
    pub records: u64,
    /// Batches acknowledged by the aggregator.
    pub batches_acked: u64,
    /// Seconds until every agent's backfill was acknowledged.
    pub backfill_s: f64,
    /// The planted anomalies' ground truth (empty unless planting was asked for).
    pub planted: Vec<PlantedAnomaly>,
}

/// Directory rows (management account first) of `org`.
pub fn directory_rows(org: &SimulatedOrganisation) -> Vec<AccountRow> {
    std::iter::once(&org.management)
        .chain(&org.accounts)
        .map(|a| AccountRow {
            account_id: a.account_id.clone(),
            organisation_id: Some(org.organisation_id.clone()),
            name: a.name.clone(),
            ou_path: a.ou_path.clone(),
            tags: vec![("simulated".into(), "true".into())],
            status: "ACTIVE".into(),
        })
        .collect()
}

/// Writes the organisation's accounts and OUs into the aggregator's
/// directory (as its AWS Organizations refresh would) and sets the team tag
/// key to `Team`, the most common of the simulated keys.
pub async fn write_directory(pool: &sqlx::PgPool, org: &SimulatedOrganisation) -> anyhow::Result<u64> {
    directory::upsert_organisation(pool, &org.organisation_id, &org.management.account_id, "Simulated organisation")
        .await
        .context("writing the organisation")?;
    let n = directory::upsert_accounts(pool, &directory_rows(org)).await.context("writing the accounts")?;
    directory::set_team_tag_key(pool, "Team").await.context("setting the team tag key")?;
    Ok(n)
}

/// The agents of `org`: one per account and region.
pub fn agent_specs(org: &SimulatedOrganisation, resources_per_account: u32, state_dir: &std::path::Path) -> Vec<AgentSpec> {
    let mut specs = Vec::new();
    for a in &org.accounts {
        let per_region = (resources_per_account / a.regions.len().max(1) as u32).max(1);
        for region in &a.regions {
            let agent_id = format!("sim-{}-{region}", a.account_id);
            specs.push(AgentSpec {
                outbox_dir: state_dir.join(&agent_id),
                agent_id,
                account_id: a.account_id.clone(),
                region: region.clone(),
                seed: a.seed_in(region),
                resources: per_region,
                planted: Vec::new(),
            });
        }
    }
    specs
}

/// The anomalies planted in the backfill `[from_unix_s, to_unix_s)` of the
/// agents `specs` (deterministic from `seed`, the organisation and the
/// range), each also handed to the spec of its account and region.
pub fn plant_in_specs(seed: u64, specs: &mut [AgentSpec], from_unix_s: i64, to_unix_s: i64) -> Vec<PlantedAnomaly> {
    let targets: Vec<PlantTarget> = specs
        .iter()
        .map(|s| PlantTarget { account_id: s.account_id.clone(), region: s.region.clone(), seed: s.seed, resources: s.resources })
        .collect();
    let planted = plant_anomalies(seed, &targets, from_unix_s, to_unix_s);
    for spec in specs.iter_mut() {
        spec.planted =
            planted.iter().filter(|p| p.account_id == spec.account_id && p.region == spec.region).cloned().collect();
    }
    planted
}

/// Runs the organisation's agents until `stop` turns true (or, with
/// `live_cycles`, until each ran that many live cycles).
pub async fn run(opts: &SimulateOptions, stop: watch::Receiver<bool>) -> anyhow::Result<SimulateReport> {
    let org = organisation(opts.seed, opts.accounts, opts.ous, &opts.regions);
    let ca = CertificateAuthority::from_pem(&opts.ca_cert_pem, &opts.ca_key_pem).context("reading the CA")?;
    let ca_der = first_certificate_der(&opts.ca_cert_pem).context("reading the CA certificate")?;
    std::fs::create_dir_all(&opts.state_dir).with_context(|| format!("creating {}", opts.state_dir.display()))?;
    let mut specs = agent_specs(&org, opts.resources_per_account, &opts.state_dir);
    let clock = SimClock::new(wall_unix_s(), opts.backfill_days, opts.speedup, opts.live_cycles);
    let planted = if opts.plant_anomalies {
        let planted = plant_in_specs(opts.seed, &mut specs, clock.backfill_from_unix_s, clock.live_from_unix_s);
        if planted.is_empty() {
            tracing::warn!(backfill_hours = clock.backfill_hours(), "no anomaly planted: the backfill is too short");
        }
        for p in &planted {
            tracing::info!(
                kind = p.kind.name(),
                account_id = %p.account_id,
                region = %p.region,
                team = p.team.as_deref().unwrap_or(""),
                function = p.arn.as_deref().unwrap_or(""),
                start = %canopy_emissions::time::format_rfc3339(p.start_unix_s),
                end = %canopy_emissions::time::format_rfc3339(p.end_unix_s),
                factor = p.factor,
                expected_excess = p.expected_excess,
                unit = p.excess_unit,
                "planted anomaly (ground truth)"
            );
        }
        planted
    } else {
        Vec::new()
    };
    let progress = Arc::new(FleetProgress::default());
    let started = Instant::now();
    tracing::info!(
        agents = specs.len(),
        accounts = org.accounts.len(),
        backfill_hours = clock.backfill_hours(),
        speedup = opts.speedup,
        "starting the simulated fleet"
    );
    let mut tasks = tokio::task::JoinSet::new();
    for spec in specs.iter().cloned() {
        let cert = certs::dev_certificate(&ca, &spec.agent_id, &spec.account_id)
            .with_context(|| format!("issuing a certificate to {}", spec.agent_id))?;
        let mut config = ClientConfig::new(opts.aggregator, opts.server_name.clone(), ca_der.clone());
        config.connect_timeout = Duration::from_secs(5);
        config.reply_timeout = Duration::from_secs(60);
        let client = Client::new(config, cert).context("creating a QUIC client")?;
        tasks.spawn(run_agent(spec, client, clock.clone(), progress.clone(), stop.clone()));
    }
    let agents = specs.len() as u64;
    let total = agents * clock.backfill_hours();
    let bar = if opts.progress_bar && total > 0 {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("backfill {bar:40} {pos}/{len} agent-hours {per_sec} eta {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let mut backfill_s = None;
    let mut first_error = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => { tracing::error!(error = %e, "simulated agent stopped"); first_error.get_or_insert(anyhow::anyhow!(e)); }
                Some(Err(e)) => { first_error.get_or_insert(anyhow::anyhow!("simulated agent task: {e}")); }
            },
            _ = ticker.tick() => {}
        }
        let done = progress.agents_backfilled.load(Ordering::Relaxed);
        if let Some(bar) = &bar {
            bar.set_position(progress.backfill_cycles.load(Ordering::Relaxed).min(total));
            bar.set_message(format!("{} batches acked", SenderStats::get(&progress.delivery.acked_batches)));
        }
        if backfill_s.is_none() && done == agents {
            let s = started.elapsed().as_secs_f64();
            backfill_s = Some(s);
            if let Some(bar) = &bar {
                bar.finish();
            }
            if let Some(n) = &opts.backfilled {
                n.notify_one();
            }
            tracing::info!(
                agents,
                backfill_s = s,
                records = progress.records.load(Ordering::Relaxed),
                "backfill acknowledged; running live"
            );
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let refused = SenderStats::get(&progress.delivery.refused_batches);
    if refused > 0 {
        anyhow::bail!("the aggregator refused {refused} batches (kept in the agents' outboxes; see its quarantine)");
    }
    Ok(SimulateReport {
        agents: specs.len(),
        backfill_cycles: progress.backfill_cycles.load(Ordering::Relaxed),
        live_cycles: progress.live_cycles.load(Ordering::Relaxed),
        records: progress.records.load(Ordering::Relaxed),
        batches_acked: SenderStats::get(&progress.delivery.acked_batches),
        backfill_s: backfill_s.unwrap_or_else(|| started.elapsed().as_secs_f64()),
        planted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_anomalies_go_to_the_agent_of_their_account_and_region() {
        let regions = vec!["eu-west-1".to_owned(), "us-east-1".to_owned()];
        let org = organisation(42, 12, 4, &regions);
        let mut specs = agent_specs(&org, 40, std::path::Path::new("unused"));
        assert!(specs.iter().all(|s| s.planted.is_empty()), "nothing planted by default");
        // Monday 2026-01-05 00:00 UTC, 14 days of backfill.
        let from = 1_767_571_200;
        let planted = plant_in_specs(42, &mut specs, from, from + 14 * 86_400);
        let kinds: Vec<&str> = planted.iter().map(|p| p.kind.name()).collect();
        assert_eq!(kinds, ["gpu-fleet-left-running", "runaway-lambda", "region-doubling"]);
        let handed: Vec<&PlantedAnomaly> = specs.iter().flat_map(|s| &s.planted).collect();
        assert_eq!(handed.len(), 3);
        for s in &specs {
            assert!(s.planted.iter().all(|p| p.account_id == s.account_id && p.region == s.region), "{}", s.agent_id);
        }
        let again = plant_in_specs(42, &mut agent_specs(&org, 40, std::path::Path::new("unused")), from, from + 14 * 86_400);
        assert_eq!(planted, again, "deterministic from the seed");
    }
}
