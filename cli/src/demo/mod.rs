//! `canopy demo`: the whole system on one machine. Without `DATABASE_URL`
//! (or `CANOPY_DATABASE_URL`) it starts a private PostgreSQL ([`postgres`]);
//! then it generates a development CA, migrates, runs the aggregator
//! in-process ([`aggregator`]), writes the simulated organisation into the
//! directory, runs the simulated fleet with a backfill and prints the
//! dashboard URL. Ctrl-C stops everything (and the private PostgreSQL).

pub mod aggregator;
pub mod postgres;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use canopy_agent::simulated::organisation;
use canopy_transport::CertificateAuthority;
use tokio::sync::{Notify, watch};

use crate::simulate::{self, SimulateOptions};

/// What `canopy demo` runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Existing database (else a private PostgreSQL is started).
    pub database_url: Option<String>,
    /// HTTP address of the dashboard and API.
    pub http_listen: SocketAddr,
    /// UDP address of QUIC ingest.
    pub quic_listen: SocketAddr,
    /// The simulation (its aggregator address and CA are filled in here).
    pub simulate: SimulateOptions,
    /// Written (with the dashboard URL) once the backfill is acknowledged.
    pub ready_file: Option<PathBuf>,
}

async fn stop_on_signal(stop: watch::Sender<bool>) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("stopping the demo");
    let _ = stop.send(true);
}

/// Runs the demo until Ctrl-C / SIGTERM (or the simulation's live cycles end).
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let private = match &opts.database_url {
        Some(_) => None,
        None => {
            eprintln!("DATABASE_URL is not set: starting a private PostgreSQL in a temporary folder");
            Some(tokio::task::spawn_blocking(postgres::PrivatePostgres::start).await??)
        }
    };
    let url = match (&opts.database_url, &private) {
        (Some(u), _) => u.clone(),
        (None, Some(pg)) => pg.url(),
        (None, None) => unreachable!("a private cluster was started"),
    };
    let result = run_with_database(&opts, &url).await;
    drop(private);
    result
}

async fn run_with_database(opts: &DemoOptions, url: &str) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop_tx.clone()));
    let ca = CertificateAuthority::generate("canopy demo ca (development only)").context("generating a dev CA")?;
    let (cert_pem, key_pem) = (ca.cert_pem().to_owned(), ca.key_pem());
    let agg = aggregator::start(url, ca, opts.quic_listen, opts.http_listen, stop_rx.clone()).await?;
    let s = &opts.simulate;
    let org = organisation(s.seed, s.accounts, s.ous, &s.regions);
    let accounts = simulate::write_directory(&agg.pool, &org).await?;
    let dashboard = format!("http://{}/", agg.http_addr);
    eprintln!("dashboard: {dashboard} (filling up while the backfill runs)");
    eprintln!("WARNING: the demo runs with INSECURE OPEN ACCESS (no login; anyone who reaches {dashboard} is an admin)");
    eprintln!("directory: {accounts} accounts of {} written", org.organisation_id);
    let backfilled = Arc::new(Notify::new());
    let mut sim = s.clone();
    sim.aggregator = agg.quic_addr;
    sim.ca_cert_pem = cert_pem;
    sim.ca_key_pem = key_pem;
    sim.backfilled = Some(backfilled.clone());
    let fleet = tokio::spawn({
        let stop = stop_rx.clone();
        async move { simulate::run(&sim, stop).await }
    });
    let ready_file = opts.ready_file.clone();
    let announce = tokio::spawn(async move {
        backfilled.notified().await;
        println!("Canopy demo ready: {dashboard}");
        if let Some(path) = ready_file
            && let Err(e) = std::fs::write(&path, format!("{dashboard}\n"))
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the ready file");
        }
    });
    let report = fleet.await.context("simulated fleet task")?;
    announce.abort();
    let _ = stop_tx.send(true);
    agg.shutdown().await;
    let report = report?;
    eprintln!(
        "simulated {} agents: {} backfill and {} live cycles, {} records, {} batches acknowledged; backfill took {:.1} s",
        report.agents, report.backfill_cycles, report.live_cycles, report.records, report.batches_acked, report.backfill_s
    );
    Ok(())
}
