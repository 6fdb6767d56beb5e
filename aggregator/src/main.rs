//! `canopy-aggregator`: thin binary over the library. Subcommands:
//! `migrate`, `serve` (applies migrations, runs maintenance periodically and
//! serves the HTTP and gRPC APIs) and `maintain` (partitions ahead and retention once).
#![forbid(unsafe_code)]

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use canopy_aggregator::maintenance::{self, RetentionPolicy};
use canopy_aggregator::query::QueryEngine;
use canopy_aggregator::grpc::GrpcQuery;
use canopy_aggregator::{db, http};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "canopy-aggregator", version, about = "Canopy aggregator: storage and query API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://canopy@db/canopy.
    #[arg(long, env = "CANOPY_DATABASE_URL")]
    database_url: String,
}

#[derive(Args)]
struct RetentionArgs {
    /// Days of 5-minute rollups kept.
    #[arg(long, default_value_t = 35)]
    retain_five_minute_days: u32,
    /// Months of hourly rollups kept.
    #[arg(long, default_value_t = 13)]
    retain_hourly_months: u32,
    /// Months of per-resource facts kept.
    #[arg(long, default_value_t = 13)]
    retain_facts_months: u32,
    /// Months of daily rollups kept (default: forever).
    #[arg(long)]
    retain_daily_months: Option<u32>,
}

impl RetentionArgs {
    fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            five_minute_days: self.retain_five_minute_days,
            hourly_months: self.retain_hourly_months,
            facts_months: self.retain_facts_months,
            daily_months: self.retain_daily_months,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending schema migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Create partitions ahead and apply retention once.
    Maintain {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        retention: RetentionArgs,
    },
    /// Migrate, then serve the HTTP query API.
    Serve {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        retention: RetentionArgs,
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http_listen: SocketAddr,
        /// Address of the gRPC API.
        #[arg(long, default_value = "127.0.0.1:8081")]
        grpc_listen: SocketAddr,
        /// Connections in the pool.
        #[arg(long, default_value_t = 16)]
        max_connections: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    match Cli::parse().command {
        Command::Migrate { db } => {
            let pool = db::connect(&db.database_url, 2).await.context("connecting to the database")?;
            db::migrate(&pool).await?;
            let mode = db::storage_mode(&pool).await?;
            println!("migrations applied; storage mode {mode:?}");
        }
        Command::Maintain { db, retention } => {
            let pool = db::connect(&db.database_url, 2).await.context("connecting to the database")?;
            let report = maintenance::run(&pool, &retention.policy(), http::system_clock()).await?;
            println!(
                "partitions created: {}; dropped: {:?}; daily rows deleted: {}",
                report.partitions_created, report.partitions_dropped, report.daily_rows_deleted
            );
        }
        Command::Serve { db, retention, http_listen, grpc_listen, max_connections } => {
            let pool =
                db::connect(&db.database_url, max_connections).await.context("connecting to the database")?;
            db::migrate(&pool).await?;
            let policy = retention.policy();
            maintenance::run(&pool, &policy, http::system_clock()).await?;
            let maintenance_pool = pool.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(3_600));
                loop {
                    tick.tick().await;
                    if let Err(e) = maintenance::run(&maintenance_pool, &policy, http::system_clock()).await {
                        tracing::warn!(error = %e, "maintenance failed; retrying next hour");
                    }
                }
            });
            let engine = QueryEngine::new(pool, policy);
            let app = http::router(engine.clone(), http::system_clock);
            let listener = tokio::net::TcpListener::bind(http_listen)
                .await
                .with_context(|| format!("binding the HTTP API to {http_listen}"))?;
            let grpc = tonic::transport::Server::builder()
                .add_service(GrpcQuery::new(engine, http::system_clock).into_server())
                .serve_with_shutdown(grpc_listen, async {
                    let _ = tokio::signal::ctrl_c().await;
                });
            tracing::info!(%http_listen, %grpc_listen, "serving the query APIs");
            let http = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            let (http_result, grpc_result) = tokio::join!(http.into_future(), grpc);
            http_result.context("HTTP API")?;
            grpc_result.context("gRPC API")?;
        }
    }
    Ok(())
}
