//! The aggregator inside the demo process, through the aggregator library:
//! migrations, maintenance, QUIC batch ingest, the HTTP API with the
//! dashboard, forecasts and anomaly detection, and budget alert
//! evaluation, the same parts
//! `canopy-aggregator serve` assembles.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use canopy_aggregator::alerts::evaluate::Evaluator;
use canopy_aggregator::alerts::metrics::AlertMetrics;
use canopy_aggregator::alerts::notify::Notifiers;
use canopy_aggregator::alerts::outbox::Sender;
use canopy_aggregator::alerts::{AlertsConfig, http as alerts_http};
use canopy_aggregator::delivery::{DeliveryConfig, Ingest};
use canopy_aggregator::forecasting::metrics::ForecastMetrics;
use canopy_aggregator::forecasting::{Forecasts, ForecastingConfig, Refresher};
use canopy_aggregator::maintenance::{self, RetentionPolicy};
use canopy_aggregator::query::QueryEngine;
use canopy_aggregator::{db, http};
use canopy_transport::{CertificateAuthority, Server, ServerConfig};
use tokio::sync::watch;

/// A running in-process aggregator.
pub struct RunningAggregator {
    /// QUIC ingest address.
    pub quic_addr: SocketAddr,
    /// HTTP address (API and dashboard).
    pub http_addr: SocketAddr,
    /// The database pool.
    pub pool: sqlx::PgPool,
    server: Server,
    http: tokio::task::JoinHandle<()>,
}

/// Default retention (5-minute rollups 35 days, hourly and facts 13 months).
pub fn retention() -> RetentionPolicy {
    RetentionPolicy { five_minute_days: 35, hourly_months: 13, facts_months: 13, daily_months: None }
}

/// Migrates `database_url` and starts ingest on `quic_listen` and HTTP on
/// `http_listen`; HTTP stops when `stop` turns true.
pub async fn start(
    database_url: &str,
    ca: CertificateAuthority,
    quic_listen: SocketAddr,
    http_listen: SocketAddr,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<RunningAggregator> {
    let pool = db::connect(database_url, 16).await.context("connecting to the database")?;
    let decision = db::migrate_with(&pool, db::StorageChoice::Auto).await.context("migrating the database")?;
    let policy = retention();
    maintenance::run(&pool, &policy, http::system_clock()).await.context("creating partitions")?;
    let config = ServerConfig::new(quic_listen, vec!["localhost".into(), "127.0.0.1".into()]);
    let handler = Arc::new(Ingest::new(pool.clone(), DeliveryConfig::for_retention(policy).with_storage(decision.mode), http::system_clock));
    let server = Server::start(config, Arc::new(ca), handler).context("starting the QUIC ingest server")?;
    let quic_addr = server.local_addr();
    // Budgets and alerts as `serve` runs them (evaluator and sender on their
    // own small pool); no route is configured in the demo, so alerts appear
    // on the /alerts page only.
    let alerts_pool = db::connect(database_url, 3).await.context("connecting the alerting pool")?;
    let alerts_config = AlertsConfig::default();
    let alert_metrics = Arc::new(AlertMetrics::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let notifiers = Arc::new(Notifiers::new(alerts_config.clone()).map_err(|e| anyhow::anyhow!("{e}"))?);
    tokio::spawn(
        Arc::new(Sender::new(alerts_pool.clone(), notifiers, alerts_config.clone(), alert_metrics.clone(), wake.clone()))
            .run_forever(),
    );
    // Forecasts and anomalies as `serve` computes them, read by the evaluator.
    let forecasts = Forecasts::new();
    tokio::spawn(
        Arc::new(Refresher {
            pool: alerts_pool.clone(),
            config: ForecastingConfig::default(),
            forecasts: forecasts.clone(),
            metrics: Arc::new(ForecastMetrics::default()),
        })
        .run_forever(),
    );
    tokio::spawn(
        Arc::new(Evaluator {
            pool: alerts_pool.clone(),
            config: alerts_config.clone(),
            forecast: forecasts.clone(),
            anomalies: forecasts,
            metrics: alert_metrics,
            outbox_wake: wake,
        })
        .run_forever(),
    );
    // The demo runs open, and says so (log, dashboard banner, response header).
    let auth = canopy_aggregator::auth::Auth::insecure_open_access();
    let app = http::served_router(
        QueryEngine::new(pool.clone(), policy),
        http::system_clock,
        auth,
        alerts_http::AlertsHttp { pool: alerts_pool, config: alerts_config, clock: http::system_clock },
    );
    let listener =
        tokio::net::TcpListener::bind(http_listen).await.with_context(|| format!("binding HTTP to {http_listen}"))?;
    let http_addr = listener.local_addr()?;
    let http = tokio::spawn(async move {
        let mut stop = stop;
        let shutdown = async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::warn!(error = %e, "HTTP server stopped");
        }
    });
    tracing::info!(%quic_addr, %http_addr, "aggregator running in-process");
    Ok(RunningAggregator { quic_addr, http_addr, pool, server, http })
}

impl RunningAggregator {
    /// Stops ingest (in-flight batches finish) and waits for HTTP to stop.
    pub async fn shutdown(self) {
        self.server.shutdown(Duration::from_secs(10)).await;
        let _ = self.http.await;
        self.pool.close().await;
    }
}
