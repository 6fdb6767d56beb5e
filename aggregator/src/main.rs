//! `canopy-aggregator`: thin binary over the library. Subcommands:
//! `migrate`, `serve` (applies migrations, runs maintenance periodically,
//! evaluates budgets and delivers alerts, resumes restatements, and serves
//! the HTTP and gRPC APIs), `maintain` (partitions ahead and retention
//! once), `factors import-hourly|import-market` (versioned factor sets),
//! `tokens create|list|revoke` (API tokens, audited), `billing sync`
//! (Data Exports deliveries from S3, `canopy_aggregator::billing`) and the benchmarks
//! `bench-storage` and `bench-alerts`.
#![forbid(unsafe_code)]

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use canopy_aggregator::factors;
use canopy_aggregator::maintenance::{self, RetentionPolicy};
use canopy_aggregator::query::QueryEngine;
use canopy_aggregator::bench::{self, BenchConfig};
use canopy_aggregator::grpc::GrpcQuery;
use canopy_aggregator::delivery::{DeliveryConfig, Ingest};
use canopy_aggregator::organizations::{self, OrganisationRefresher, RefreshMetrics};
use canopy_aggregator::query_limits::{self, GateMetrics, QueryGate, QueryLimits};
use canopy_aggregator::auth::config::AuthSettings;
use canopy_aggregator::auth::principal::{ClaimNames, Role, Scope};
use canopy_aggregator::auth::{self, Auth, tokens};
use canopy_aggregator::alerts::{self, AlertsConfig};
use canopy_aggregator::forecasting::metrics::ForecastMetrics;
use canopy_aggregator::forecasting::{Forecasts, ForecastingConfig, Refresher};
use canopy_aggregator::{billing, db, dev_ca, http};
use canopy_transport::{AllowedAccounts, CertificateAuthority, EnrollmentPolicy, Server, ServerConfig};
use clap::{Args, Parser, Subcommand};

/// mimalloc instead of glibc malloc: ingest allocates and frees every
/// record's strings, and glibc's allocator (with its per-thread arena
/// consolidation) took over a third of the aggregator's CPU in the ingest
/// bench (`aggregator/benches/ingest.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
struct StorageArgs {
    /// Storage path for a new database: `timescaledb` when the extension is
    /// installed and preloaded (`auto`), or as asked. Chosen once, when the
    /// database is first migrated, and never changed afterwards.
    #[arg(long, env = "CANOPY_STORAGE", value_enum, default_value_t = db::StorageChoice::Auto)]
    storage: db::StorageChoice,
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
    /// Months of daily and monthly rollups kept, account-level, org and team (default: forever).
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

// Parsed once per process; boxing the large `serve` arguments buys nothing.
#[derive(Subcommand)]
enum FactorsCommand {
    /// Electricity Maps hourly CSV files (data-portal format, both header
    /// variants) as the next version of the hourly location-based set.
    ImportHourly {
        #[command(flatten)]
        db: DbArgs,
        /// The files.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// A market factor CSV (docs/factors.md) as the next version of the
    /// market-based set.
    ImportMarket {
        #[command(flatten)]
        db: DbArgs,
        /// The file.
        file: String,
    },
}

/// Where the organisation's Data Exports (CUR 2.0) deliveries are.
#[derive(Args, Clone)]
struct BillingArgs {
    /// S3 bucket of the Data Exports deliveries (billing sync off in `serve` when absent).
    #[arg(long, env = "CANOPY_BILLING_BUCKET")]
    billing_bucket: Option<String>,
    /// Key prefix of the exports (`<prefix>/<export-name>/metadata/...`).
    #[arg(long, env = "CANOPY_BILLING_PREFIX", default_value = "")]
    billing_prefix: String,
    /// Only this export (default: every export under the prefix).
    #[arg(long, env = "CANOPY_BILLING_EXPORT")]
    billing_export: Option<String>,
    /// S3 endpoint URL (a local S3 for tests); path-style addressing when set.
    #[arg(long, env = "CANOPY_BILLING_S3_ENDPOINT_URL")]
    billing_s3_endpoint_url: Option<String>,
    /// Minutes between syncs in `serve`.
    #[arg(long, env = "CANOPY_BILLING_SYNC_INTERVAL_MINUTES", default_value_t = 60)]
    billing_sync_interval_minutes: u64,
}

impl BillingArgs {
    /// The sync's configuration and S3 client, or `None` without a bucket.
    async fn client(&self) -> anyhow::Result<Option<(billing::SyncConfig, aws_sdk_s3::Client)>> {
        let Some(bucket) = self.billing_bucket.clone() else { return Ok(None) };
        anyhow::ensure!(!bucket.is_empty(), "--billing-bucket: expected a bucket name, found \"\"");
        anyhow::ensure!(self.billing_sync_interval_minutes > 0, "--billing-sync-interval-minutes: expected at least 1, found 0");
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let mut s3 = aws_sdk_s3::config::Builder::from(&shared);
        if let Some(url) = &self.billing_s3_endpoint_url {
            s3 = s3.endpoint_url(url).force_path_style(true);
        }
        let config = billing::SyncConfig {
            bucket,
            prefix: self.billing_prefix.clone(),
            export_name: self.billing_export.clone(),
        };
        Ok(Some((config, aws_sdk_s3::Client::from_conf(s3.build()))))
    }
}

#[derive(Subcommand)]
enum BillingCommand {
    /// Read the Data Exports deliveries not stored yet, estimate and store
    /// them (each delivery whole or not at all); exits non-zero when one
    /// was refused.
    Sync {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        billing: BillingArgs,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Billing data from AWS Data Exports (CUR 2.0) in S3.
    Billing {
        #[command(subcommand)]
        command: BillingCommand,
    },
    /// Print, as a JSON list, the AWS API actions the aggregator calls with
    /// the management-account role (the IAM test compares them with the
    /// template).
    IamActions,
    /// Apply pending schema migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Import a factor set (a new version; every file validated whole
    /// first, nothing stored when one is refused).
    Factors {
        #[command(subcommand)]
        command: FactorsCommand,
    },
    /// Create partitions ahead and apply retention once.
    Maintain {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        retention: RetentionArgs,
    },
    /// Load a synthetic organisation into an empty database and print query
    /// latency percentiles, load time and size on disk.
    BenchStorage {
        #[command(flatten)]
        db: DbArgs,
        /// Accounts in the organisation.
        #[arg(long, default_value_t = 10_000)]
        accounts: u32,
        /// Distinct (region, service, type, team, quality) series per account.
        #[arg(long, default_value_t = 3)]
        series_per_account: u32,
        /// Days of daily and monthly rollups (13 months), account-level and org.
        #[arg(long, default_value_t = 395)]
        history_days: u32,
        /// Days of hourly rollups, the newest ones (at most --history-days);
        /// fewer than the history limits the depth, and the bench checks
        /// that no query reads beyond it.
        #[arg(long, default_value_t = 395)]
        hourly_days: u32,
        /// Days of 5-minute rollups (the full dataset: 35).
        #[arg(long, default_value_t = 35)]
        five_minute_days: u32,
        /// Days of 5-minute group records in realtime_group_facts (the full
        /// dataset: 35).
        #[arg(long, default_value_t = 35)]
        realtime_days: u32,
        /// Days of per-resource hourly facts for the sampled accounts.
        #[arg(long, default_value_t = 35)]
        facts_days: u32,
        /// Accounts with per-resource hourly facts.
        #[arg(long, default_value_t = 20)]
        sample_accounts: u32,
        /// Resources per sampled account (and per account of the
        /// per-resource daily rollup).
        #[arg(long, default_value_t = 200)]
        resources_per_sample_account: u32,
        /// Accounts with per-resource daily rollup rows (migration 0029),
        /// the first ones (including the sampled accounts): this ×
        /// --resources-per-sample-account resources.
        #[arg(long, default_value_t = 20)]
        resource_rollup_accounts: u32,
        /// Days of per-resource daily rollup rows.
        #[arg(long, default_value_t = 35)]
        resource_rollup_days: u32,
        /// Timed runs per query type.
        #[arg(long, default_value_t = 50)]
        runs: u32,
        /// Batches of 1,000 facts in the store_batch measurement (0: none).
        #[arg(long, default_value_t = 20)]
        ingest_batches: u32,
        /// Time the queries again on a dataset an earlier run of the same
        /// flags loaded, whose "now" (Unix seconds) that run printed; loads
        /// nothing and measures no ingest.
        #[arg(long)]
        reuse_loaded_at: Option<i64>,
        /// How the per-resource facts are stored: `segments` (one
        /// emission_fact_segments row per hour, account and region, as
        /// native-mode ingest writes them) or `rows` (one emission_facts row
        /// per record, the layout before migration 0012).
        #[arg(long, value_enum, default_value_t = bench::FactsLayout::Segments)]
        facts_layout: bench::FactsLayout,
    },
    /// API tokens for machines: create (printed once), list, revoke. Each
    /// change is recorded in the audit log.
    Tokens {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Load synthetic rollups and budgets into an empty database, then time
    /// alert evaluation rounds and print peak memory (native path).
    BenchAlerts {
        #[command(flatten)]
        db: DbArgs,
        /// Accounts (three team/service series each, 13 months).
        #[arg(long, default_value_t = 10_000)]
        accounts: u32,
        /// Budgets (per account, account + service, account + team, per team).
        #[arg(long, default_value_t = 50_000)]
        budgets: u32,
        /// Evaluation rounds timed.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// Migrate, then serve the HTTP query API.
    Serve {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        retention: RetentionArgs,
        /// Address of the HTTP API.
        #[arg(long, env = "CANOPY_HTTP_LISTEN", default_value = "127.0.0.1:8080")]
        http_listen: SocketAddr,
        /// Address of the gRPC API.
        #[arg(long, env = "CANOPY_GRPC_LISTEN", default_value = "127.0.0.1:8081")]
        grpc_listen: SocketAddr,
        /// Connections in the ingest and maintenance pool (the query APIs
        /// have their own, `--query-max-connections`).
        #[arg(long, env = "CANOPY_MAX_CONNECTIONS", default_value_t = 16)]
        max_connections: u32,
        #[command(flatten)]
        query: QueryArgs,
        #[command(flatten)]
        ingest: IngestArgs,
        #[command(flatten)]
        organisation: OrganisationArgs,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        alerts: AlertArgs,
        #[command(flatten)]
        forecasting: ForecastArgs,
        #[command(flatten)]
        billing: BillingArgs,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it (only its hash is stored).
    Create {
        /// What uses the token (shown by `list`).
        #[arg(long)]
        name: String,
        /// team_viewer, ou_viewer, org_viewer or admin.
        #[arg(long)]
        role: String,
        /// OU paths of the scope (comma-separated; subtrees).
        #[arg(long, value_delimiter = ',')]
        ou: Vec<String>,
        /// Account ids of the scope (comma-separated).
        #[arg(long, value_delimiter = ',')]
        account: Vec<String>,
        /// Teams of the scope (comma-separated).
        #[arg(long, value_delimiter = ',')]
        team: Vec<String>,
        /// Days until it expires (1 to 366).
        #[arg(long, default_value_t = 90)]
        expires_in_days: u32,
        /// Who is acting, for the audit log (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token id (the part after `canopy_`, before the second `_`).
        token_id: String,
        /// Who is acting, for the audit log (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
    },
}

/// Who may use the HTTP API, gRPC API, dashboard and `/metrics` (see
/// `aggregator/README.md`, Access control). One of OIDC, API tokens only, or
/// the development mode must be chosen: `serve` refuses to start otherwise.
#[derive(Args)]
struct AuthArgs {
    /// Development only: no authentication, every caller is an admin; loud
    /// (a startup warning, a dashboard banner, a header on every response).
    #[arg(long, env = "CANOPY_INSECURE_OPEN_ACCESS")]
    insecure_open_access: bool,
    /// Machines only: API tokens (`canopy-aggregator tokens create`), no OIDC.
    #[arg(long, env = "CANOPY_API_TOKENS_ONLY")]
    api_tokens_only: bool,
    /// OIDC issuer URL (https; discovery at <issuer>/.well-known/openid-configuration).
    #[arg(long, env = "CANOPY_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// Audience bearer JWTs must name.
    #[arg(long, env = "CANOPY_OIDC_AUDIENCE")]
    oidc_audience: Option<String>,
    /// Dashboard login: the OIDC client id.
    #[arg(long, env = "CANOPY_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// Dashboard login: the client secret (confidential clients).
    #[arg(long, env = "CANOPY_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// Dashboard login: this dashboard's `…/auth/callback` URL.
    #[arg(long, env = "CANOPY_OIDC_REDIRECT_URL")]
    oidc_redirect_url: Option<String>,
    /// Claim holding the role (a string or a list; highest role wins).
    #[arg(long, env = "CANOPY_OIDC_ROLE_CLAIM", default_value = "canopy_role")]
    oidc_role_claim: String,
    /// Claim holding the OU paths of the scope.
    #[arg(long, env = "CANOPY_OIDC_OUS_CLAIM", default_value = "canopy_ous")]
    oidc_ous_claim: String,
    /// Claim holding the account ids of the scope.
    #[arg(long, env = "CANOPY_OIDC_ACCOUNTS_CLAIM", default_value = "canopy_accounts")]
    oidc_accounts_claim: String,
    /// Claim holding the teams of the scope.
    #[arg(long, env = "CANOPY_OIDC_TEAMS_CLAIM", default_value = "canopy_teams")]
    oidc_teams_claim: String,
    /// Least seconds between two JWKS fetches caused by an unknown key id.
    #[arg(long, env = "CANOPY_OIDC_JWKS_REFRESH_COOLDOWN_S", default_value_t = 10)]
    oidc_jwks_refresh_cooldown_s: u64,
    /// Hours a dashboard session lasts (1 to 168).
    #[arg(long, env = "CANOPY_SESSION_HOURS", default_value_t = 8)]
    session_hours: u64,
}

impl AuthArgs {
    fn settings(&self) -> AuthSettings {
        AuthSettings {
            insecure_open_access: self.insecure_open_access,
            api_tokens_only: self.api_tokens_only,
            oidc_issuer: self.oidc_issuer.clone(),
            oidc_audience: self.oidc_audience.clone(),
            oidc_client_id: self.oidc_client_id.clone(),
            oidc_client_secret: self.oidc_client_secret.clone(),
            oidc_redirect_url: self.oidc_redirect_url.clone(),
            claims: ClaimNames {
                role: self.oidc_role_claim.clone(),
                ous: self.oidc_ous_claim.clone(),
                accounts: self.oidc_accounts_claim.clone(),
                teams: self.oidc_teams_claim.clone(),
            },
            jwks_refresh_cooldown_s: self.oidc_jwks_refresh_cooldown_s,
            session_hours: self.session_hours,
        }
    }
}

fn cli_actor(actor: Option<String>) -> String {
    actor.unwrap_or_else(|| format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into())))
}

async fn tokens_command(db: &DbArgs, action: TokenAction) -> anyhow::Result<()> {
    let pool = db::connect(&db.database_url, 2).await.context("connecting to the database")?;
    db::migrate(&pool).await?;
    match action {
        TokenAction::Create { name, role, ou, account, team, expires_in_days, actor } => {
            let role = Role::parse(&role)
                .with_context(|| format!("--role: expected team_viewer, ou_viewer, org_viewer or admin, found {role:?}"))?;
            let new = tokens::NewToken {
                name,
                role,
                scope: Scope { ous: ou, accounts: account, teams: team },
                expires_in_days,
            };
            let (id, token) = tokens::create(&pool, &cli_actor(actor), &new).await?;
            eprintln!("token {id} created; it is shown once, store it now:");
            println!("{token}");
        }
        TokenAction::List => {
            println!("id\tname\trole\tous\taccounts\tteams\tcreated_by\texpires_at_unix_s\trevoked_at_unix_s");
            for t in tokens::list(&pool).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    t.token_id,
                    t.name,
                    t.role,
                    t.scope.ous.join(","),
                    t.scope.accounts.join(","),
                    t.scope.teams.join(","),
                    t.created_by,
                    t.expires_at_unix_s,
                    t.revoked_at_unix_s.map_or(String::new(), |r| r.to_string()),
                );
            }
        }
        TokenAction::Revoke { token_id, actor } => {
            tokens::revoke(&pool, &cli_actor(actor), &token_id).await?;
            println!("token {token_id} revoked");
        }
    }
    Ok(())
}


/// Budget alert evaluation and delivery (see `aggregator::alerts`).
#[derive(Args)]
struct AlertArgs {
    /// Seconds between alert evaluation rounds (1-240: an alert fires within
    /// 5 minutes of its data being acknowledged).
    #[arg(long, env = "CANOPY_ALERT_EVALUATE_INTERVAL_S", default_value_t = 60)]
    alert_evaluate_interval_s: u64,
    /// Public base URL of the dashboard, for links in notifications.
    #[arg(long, env = "CANOPY_ALERT_DASHBOARD_URL", default_value = "http://127.0.0.1:8080")]
    alert_dashboard_url: String,
    /// PagerDuty Events API v2 endpoint.
    #[arg(long, env = "CANOPY_PAGERDUTY_EVENTS_URL", default_value = "https://events.pagerduty.com/v2/enqueue")]
    pagerduty_events_url: String,
    /// SMTP relay for alert email: smtp://host:25 (plain),
    /// smtp://user:pass@host:587?tls=required (STARTTLS), smtps://host:465.
    #[arg(long, env = "CANOPY_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// PEM bundle of CA certificates the SMTP relay's certificate may chain
    /// to (a relay with a private CA), trusted besides the public roots.
    #[arg(long, env = "CANOPY_SMTP_CA_FILE")]
    smtp_ca_file: Option<PathBuf>,
    /// Days of budget burn history kept (1-3660).
    #[arg(long, env = "CANOPY_BUDGET_HISTORY_RETENTION_DAYS", default_value_t = canopy_aggregator::alerts::history::DEFAULT_RETENTION_DAYS)]
    budget_history_retention_days: u32,
    /// Sender address of alert email.
    #[arg(long, env = "CANOPY_ALERT_EMAIL_FROM", default_value = "canopy@localhost")]
    alert_email_from: String,
    /// Shortest wait between delivery attempts, milliseconds.
    #[arg(long, env = "CANOPY_ALERT_RETRY_MIN_MS", default_value_t = 1_000)]
    alert_retry_min_ms: u64,
    /// Longest wait between delivery attempts, seconds.
    #[arg(long, env = "CANOPY_ALERT_RETRY_MAX_S", default_value_t = 300)]
    alert_retry_max_s: u64,
}

impl AlertArgs {
    fn config(&self) -> anyhow::Result<AlertsConfig> {
        let config = AlertsConfig {
            evaluate_interval: Duration::from_secs(self.alert_evaluate_interval_s),
            dashboard_url: self.alert_dashboard_url.clone(),
            pagerduty_events_url: self.pagerduty_events_url.clone(),
            smtp_url: self.smtp_url.clone(),
            smtp_ca_file: self.smtp_ca_file.clone(),
            budget_history_retention_days: self.budget_history_retention_days,
            email_from: self.alert_email_from.clone(),
            retry_min: Duration::from_millis(self.alert_retry_min_ms),
            retry_max: Duration::from_secs(self.alert_retry_max_s),
            ..AlertsConfig::default()
        };
        config.validate().map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.message))?;
        Ok(config)
    }
}

/// Forecasts and anomaly detection (see `aggregator::forecasting`).
#[derive(Args)]
struct ForecastArgs {
    /// Seconds between refreshes of the forecasts and anomalies (10-86400).
    #[arg(long, env = "CANOPY_FORECAST_REFRESH_INTERVAL_S", default_value_t = 300)]
    forecast_refresh_interval_s: u64,
    /// Smallest hourly anomaly, gCO2e above expected in one hour (so tiny
    /// teams don't page anyone).
    #[arg(long, env = "CANOPY_ANOMALY_MIN_HOURLY_G_CO2E", default_value_t = 100.0)]
    anomaly_min_hourly_g_co2e: f64,
    /// Smallest daily anomaly, gCO2e above expected in one UTC day.
    #[arg(long, env = "CANOPY_ANOMALY_MIN_DAILY_G_CO2E", default_value_t = 1_000.0)]
    anomaly_min_daily_g_co2e: f64,
    /// Seconds an anomaly episode stays open after its last outlying point.
    #[arg(long, env = "CANOPY_ANOMALY_HOLD_S", default_value_t = 21_600)]
    anomaly_hold_s: u64,
}

impl ForecastArgs {
    fn config(&self) -> anyhow::Result<ForecastingConfig> {
        let config = ForecastingConfig {
            refresh_interval: Duration::from_secs(self.forecast_refresh_interval_s),
            anomaly_min_hourly_g_co2e: self.anomaly_min_hourly_g_co2e,
            anomaly_min_daily_g_co2e: self.anomaly_min_daily_g_co2e,
            anomaly_hold: Duration::from_secs(self.anomaly_hold_s),
        };
        config.validate().map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.message))?;
        Ok(config)
    }
}

/// Limits of the HTTP and gRPC query APIs, so that expensive queries cannot
/// starve ingest (see `query_limits` and aggregator/README.md).
#[derive(Args)]
struct QueryArgs {
    /// Connections in the query APIs' own pool (separate from ingest's).
    #[arg(long, env = "CANOPY_QUERY_MAX_CONNECTIONS", default_value_t = QueryLimits::default().max_connections)]
    query_max_connections: u32,
    /// `statement_timeout` of the query pool's sessions, in milliseconds.
    #[arg(long, env = "CANOPY_QUERY_STATEMENT_TIMEOUT_MS", default_value_t = QueryLimits::default().statement_timeout.as_millis() as u64)]
    query_statement_timeout_ms: u64,
    /// Longest time one query API request may take, in milliseconds (504 after).
    #[arg(long, env = "CANOPY_QUERY_REQUEST_TIMEOUT_MS", default_value_t = QueryLimits::default().request_timeout.as_millis() as u64)]
    query_request_timeout_ms: u64,
    /// Query API requests served at once (HTTP `/v1/*` and gRPC together);
    /// more are refused at once with 503.
    #[arg(long, env = "CANOPY_QUERY_MAX_CONCURRENT_REQUESTS", default_value_t = QueryLimits::default().max_concurrent_requests)]
    query_max_concurrent_requests: u32,
}

impl QueryArgs {
    fn limits(&self) -> anyhow::Result<QueryLimits> {
        let limits = QueryLimits {
            max_connections: self.query_max_connections,
            statement_timeout: Duration::from_millis(self.query_statement_timeout_ms),
            request_timeout: Duration::from_millis(self.query_request_timeout_ms),
            max_concurrent_requests: self.query_max_concurrent_requests,
        };
        limits.validate()?;
        Ok(limits)
    }
}

/// Batch ingest over QUIC; enabled when a CA is given (files, environment or `--dev-ca-dir`).
#[derive(Args)]
struct IngestArgs {
    /// UDP address of the QUIC batch and enrolment endpoint.
    #[arg(long, env = "CANOPY_QUIC_LISTEN", default_value = "127.0.0.1:4433")]
    quic_listen: SocketAddr,
    /// CA certificate PEM file (else the PEM text in CANOPY_CA_CERT_PEM).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// CA private key PEM file (else the PEM text in CANOPY_CA_KEY_PEM).
    #[arg(long)]
    ca_key: Option<PathBuf>,
    /// Development only: use `ca-cert.pem` / `ca-key.pem` in this folder,
    /// generating them first when missing.
    #[arg(long)]
    dev_ca_dir: Option<PathBuf>,
    /// Names in the server certificate (DNS names or IP addresses).
    #[arg(long, env = "CANOPY_SERVER_NAMES", value_delimiter = ',', default_value = "localhost,127.0.0.1")]
    server_name: Vec<String>,
    /// Accounts allowed to enrol (comma-separated), in addition to the
    /// organisation's active accounts when the organisation refresh is on;
    /// with neither, enrolment is off.
    #[arg(long, env = "CANOPY_ALLOWED_ACCOUNTS", value_delimiter = ',')]
    allowed_account: Vec<String>,
    /// IAM role name an enrolling agent must use; `{region}` matches one AWS
    /// region code (the default matches the StackSet's `canopy-agent-<region>`
    /// roles and not its host roles `canopy-agent-host-<region>`); a trailing
    /// `*` matches any suffix.
    #[arg(long, env = "CANOPY_EXPECTED_ROLE_NAME", default_value = "canopy-agent-{region}")]
    expected_role_name: String,
    /// STS endpoint enrolment requests are forwarded to.
    #[arg(long, env = "CANOPY_STS_URL", default_value = "https://sts.amazonaws.com")]
    sts_url: String,
    /// Region of the STS endpoint's signing scope.
    #[arg(long, env = "CANOPY_STS_REGION", default_value = "us-east-1")]
    sts_region: String,
    /// This deployment's id, bound into enrolment challenges.
    #[arg(long, env = "CANOPY_SERVER_ID", default_value = "canopy-aggregator")]
    server_id: String,
    /// Batches read or stored at once across all agent connections.
    #[arg(long, env = "CANOPY_MAX_IN_FLIGHT_BATCHES", default_value_t = 256)]
    max_in_flight_batches: usize,
    /// Declared frame bytes in flight at once across all agents, MiB.
    #[arg(long, env = "CANOPY_MAX_IN_FLIGHT_MIB", default_value_t = 256)]
    max_in_flight_mib: usize,
    /// Distinct team values one account may use per UTC month.
    #[arg(long, env = "CANOPY_MAX_TEAMS_PER_ACCOUNT", default_value_t = 1_000)]
    max_teams_per_account: u32,
    /// Distinct service values one account may use per UTC month.
    #[arg(long, env = "CANOPY_MAX_SERVICES_PER_ACCOUNT", default_value_t = 200)]
    max_services_per_account: u32,
    /// Distinct resource type values one account may use per UTC month.
    #[arg(long, env = "CANOPY_MAX_RESOURCE_TYPES_PER_ACCOUNT", default_value_t = 1_000)]
    max_resource_types_per_account: u32,
    /// Address of the Prometheus `/metrics` endpoint (off when absent).
    #[arg(long, env = "CANOPY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
}

/// The AWS Organizations refresh of accounts, OUs and tags (and of the
/// enrolment allow-list); on when a management role is given.
#[derive(Args)]
struct OrganisationArgs {
    /// Role in the management account to read AWS Organizations through
    /// (deploy-stackset/management-account.yaml); unset: no refresh.
    #[arg(long, env = "CANOPY_MANAGEMENT_ROLE_ARN")]
    management_role_arn: Option<String>,
    /// External id required by that role's trust policy.
    #[arg(long, env = "CANOPY_MANAGEMENT_EXTERNAL_ID", hide_env_values = true)]
    management_external_id: Option<String>,
    /// Hours between organisation refreshes.
    #[arg(long, env = "CANOPY_ORG_REFRESH_HOURS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=168))]
    org_refresh_hours: u32,
    /// Milliseconds between AWS Organizations calls (its API throttles at a
    /// few calls per second).
    #[arg(long, env = "CANOPY_ORG_CALL_INTERVAL_MS", default_value_t = 200)]
    org_call_interval_ms: u64,
    /// Endpoint override for Organizations and STS (tests: moto).
    #[arg(long, env = "CANOPY_AWS_ENDPOINT_URL")]
    aws_endpoint_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    match Cli::parse().command {
        Command::IamActions => {
            println!("{}", serde_json::to_string(organizations::IAM_ACTIONS)?);
        }
        Command::Migrate { db, storage } => {
            let pool = db::connect(&db.database_url, 2).await.context("connecting to the database")?;
            let decision = db::migrate_with(&pool, storage.storage).await?;
            println!("migrations applied; storage path {} ({})", decision.mode.name(), decision.reason);
        }
        Command::Factors { command } => {
            let (pool, imported) = match command {
                FactorsCommand::ImportHourly { db, files } => {
                    let pool = db::connect(&db.database_url, 2).await.context("connecting to the database")?;
                    let imported = factors::import_hourly(&pool, &files).await?;
                    (pool, imported)
                }
                FactorsCommand::ImportMarket { db, file } => {
                    let pool = db::connect(&db.database_url, 2).await.context("connecting to the database")?;
                    let imported = factors::import_market(&pool, &file).await?;
                    (pool, imported)
                }
            };
            println!("imported {} values as {} version {}", imported.values, imported.factor_set, imported.version);
            // Restate the stored periods the new version prices differently
            // (a crash here leaves the restatement running; `serve` resumes it).
            for r in canopy_aggregator::restatement::run_pending(&pool, None).await? {
                println!("restatement {}: {} chunks, {} facts restated", r.id, r.chunks, r.facts_changed);
            }
        }
        Command::Billing { command: BillingCommand::Sync { db, billing } } => {
            let (config, client) = billing.client().await?.context("--billing-bucket (CANOPY_BILLING_BUCKET) is required")?;
            let pool = db::connect(&db.database_url, 2).await.context("connecting to the database")?;
            db::migrate(&pool).await?;
            let report = billing::sync(&pool, &client, &config).await?;
            println!(
                "manifests: {}; deliveries stored: {}; unchanged: {}; line items read: {}; rows stored: {}",
                report.manifests, report.deliveries_synced, report.deliveries_unchanged, report.line_items_read, report.rows_stored
            );
            for failure in &report.failures {
                eprintln!("refused: {failure}");
            }
            anyhow::ensure!(report.failures.is_empty(), "{} deliveries refused (nothing of them stored)", report.failures.len());
        }
        Command::Maintain { db, retention } => {
            let pool = db::connect(&db.database_url, 2).await.context("connecting to the database")?;
            let report = maintenance::run(&pool, &retention.policy(), http::system_clock()).await?;
            println!(
                "partitions created: {}; dropped: {:?}; daily rows deleted: {}",
                report.partitions_created, report.partitions_dropped, report.daily_rows_deleted
            );
        }
        Command::BenchStorage {
            db,
            accounts,
            series_per_account,
            history_days,
            hourly_days,
            five_minute_days,
            realtime_days,
            facts_days,
            sample_accounts,
            resources_per_sample_account,
            resource_rollup_accounts,
            resource_rollup_days,
            runs,
            ingest_batches,
            reuse_loaded_at,
            facts_layout,
        } => {
            let pool = db::connect(&db.database_url, 4).await.context("connecting to the database")?;
            let cfg = BenchConfig {
                accounts,
                series_per_account,
                history_days,
                hourly_days,
                five_minute_days,
                realtime_days,
                facts_days,
                sample_accounts,
                resources_per_sample_account,
                resource_rollup_accounts,
                resource_rollup_days,
                runs,
                ingest_batches: if reuse_loaded_at.is_some() { 0 } else { ingest_batches },
                now_unix_s: reuse_loaded_at.unwrap_or_else(http::system_clock),
                facts_layout,
            };
            let report = match reuse_loaded_at {
                Some(_) => bench::remeasure(&pool, &cfg).await?,
                None => bench::run(&pool, &cfg).await?,
            };
            print!("{}", report.render());
        }
        Command::Tokens { db, action } => tokens_command(&db, action).await?,
        Command::BenchAlerts { db, accounts, budgets, rounds } => {
            let pool = db::connect(&db.database_url, 4).await.context("connecting to the database")?;
            db::migrate_with(&pool, db::StorageChoice::Native).await?;
            let cfg = alerts::bench::AlertBenchConfig { accounts, budgets, rounds, now_unix_s: http::system_clock() };
            print!("{}", alerts::bench::run(&pool, &cfg).await?.render());
        }
        Command::Serve {
            db,
            storage,
            retention,
            http_listen,
            grpc_listen,
            max_connections,
            query,
            ingest,
            organisation,
            auth,
            alerts: alert_args,
            forecasting,
            billing: billing_args,
        } => {
            let limits = query.limits()?;
            // Validated before anything starts: no authentication configured is an error.
            let auth_config = auth.settings().validate()?;
            let alerts_config = alert_args.config()?;
            let forecasting_config = forecasting.config()?;
            let pool =
                db::connect(&db.database_url, max_connections).await.context("connecting to the database")?;
            let decision = db::migrate_with(&pool, storage.storage).await?;
            if decision.mode == db::StorageMode::TimescaleDb {
                tokio::spawn(canopy_aggregator::timescale::refresh_pending_forever(pool.clone()));
            }
            tokio::spawn(canopy_aggregator::restatement::run_forever(pool.clone()));
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
            tokio::spawn(maintenance::drain_org_rollups_forever(pool.clone()));
            // Billing sync: off unless a bucket is configured.
            if let Some((config, client)) = billing_args.client().await? {
                let interval = Duration::from_secs(billing_args.billing_sync_interval_minutes * 60);
                tracing::info!(bucket = %config.bucket, prefix = %config.prefix, minutes = billing_args.billing_sync_interval_minutes, "billing sync enabled");
                tokio::spawn(billing::sync_forever(pool.clone(), client, config, interval));
            }
            let auth = Auth::from_config(&auth_config, pool.clone()).await?;
            let gate = QueryGate::new(limits);
            let (alert_state, alert_metrics, forecast_metrics) =
                start_alerts(&db.database_url, alerts_config, forecasting_config).await?;
            let quic = start_ingest(
                &ingest,
                &organisation,
                pool.clone(),
                policy,
                decision.mode,
                gate.metrics(),
                alert_metrics,
                forecast_metrics,
                auth.clone(),
            )
                    .await?;
            let query_pool = query_limits::connect_query_pool(&db.database_url, &limits)
                .await
                .context("connecting the query pool to the database")?;
            let engine = QueryEngine::new(query_pool, policy);
            let budgets_grpc = alerts::grpc::GrpcBudgets::new(alert_state.pool.clone(), auth.clone())
                .with_history_retention_days(alert_state.config.budget_history_retention_days);
            // Every route, the alerting ones included, behind the access control.
            let app =
                gate.clone().layer_http(http::served_router(engine.clone(), http::system_clock, auth.clone(), alert_state));
            let listener = tokio::net::TcpListener::bind(http_listen)
                .await
                .with_context(|| format!("binding the HTTP API to {http_listen}"))?;
            let grpc = tonic::transport::Server::builder()
                .add_service(gate.clone().wrap_grpc(GrpcQuery::new(engine, http::system_clock, auth).into_server()))
                .add_service(gate.wrap_grpc(budgets_grpc.into_server()))
                .serve_with_shutdown(grpc_listen, shutdown_signal());
            tracing::info!(%http_listen, %grpc_listen, "serving the query APIs");
            let http = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
            let (http_result, grpc_result) = tokio::join!(http.into_future(), grpc);
            if let Some(server) = quic.and_then(|s| s.try_lock().ok().and_then(|mut g| g.take())) {
                server.shutdown(Duration::from_secs(10)).await;
            }
            http_result.context("HTTP API")?;
            grpc_result.context("gRPC API")?;
        }
    }
    Ok(())
}

/// Starts the forecast refresher, the alert evaluator (with the
/// refresher's forecasts and anomalies) and the outbox sender on their own
/// small pool (so none competes with ingest or the query APIs for
/// connections).
async fn start_alerts(
    database_url: &str,
    config: AlertsConfig,
    forecasting: ForecastingConfig,
) -> anyhow::Result<(alerts::http::AlertsHttp, Arc<alerts::metrics::AlertMetrics>, Arc<ForecastMetrics>)> {
    let pool = db::connect(database_url, 4).await.context("connecting the alerting pool to the database")?;
    let metrics = Arc::new(alerts::metrics::AlertMetrics::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let notifiers = Arc::new(
        alerts::notify::Notifiers::new(config.clone()).map_err(|e| anyhow::anyhow!("--{}: {}", e.field, e.message))?,
    );
    let forecasts = Forecasts::new();
    let forecast_metrics = Arc::new(ForecastMetrics::default());
    let refresher = Arc::new(Refresher {
        pool: pool.clone(),
        config: forecasting.clone(),
        forecasts: forecasts.clone(),
        metrics: forecast_metrics.clone(),
    });
    let evaluator = Arc::new(alerts::evaluate::Evaluator {
        pool: pool.clone(),
        config: config.clone(),
        forecast: forecasts.clone(),
        anomalies: forecasts,
        metrics: metrics.clone(),
        outbox_wake: wake.clone(),
    });
    let sender = Arc::new(alerts::outbox::Sender::new(pool.clone(), notifiers, config.clone(), metrics.clone(), wake));
    tracing::info!(
        interval_s = config.evaluate_interval.as_secs(),
        forecast_refresh_interval_s = forecasting.refresh_interval.as_secs(),
        "forecasts, alert evaluation and delivery on"
    );
    tokio::spawn(refresher.run_forever());
    tokio::spawn(evaluator.run_forever());
    tokio::spawn(sender.run_forever());
    Ok((alerts::http::AlertsHttp { pool, config, clock: http::system_clock }, metrics, forecast_metrics))
}

/// The QUIC server, shared with the metrics endpoint until shutdown takes it.
type SharedServer = Arc<tokio::sync::Mutex<Option<Server>>>;

/// The CA from files, the environment or the development folder; `None` when none is configured.
fn load_ca(args: &IngestArgs) -> anyhow::Result<Option<CertificateAuthority>> {
    if let Some(dir) = &args.dev_ca_dir {
        return Ok(Some(dev_ca::load_or_create(dir)?));
    }
    let read = |path: &Option<PathBuf>, var: &str| -> anyhow::Result<Option<String>> {
        match path {
            Some(p) => Ok(Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)),
            None => Ok(std::env::var(var).ok()),
        }
    };
    match (read(&args.ca_cert, "CANOPY_CA_CERT_PEM")?, read(&args.ca_key, "CANOPY_CA_KEY_PEM")?) {
        (Some(cert), Some(key)) => Ok(Some(CertificateAuthority::from_pem(&cert, &key)?)),
        (None, None) => Ok(None),
        _ => anyhow::bail!("expected both a CA certificate and a CA key (--ca-cert/--ca-key or CANOPY_CA_CERT_PEM/CANOPY_CA_KEY_PEM), found one"),
    }
}

/// Starts the QUIC ingest server (and the metrics endpoint) when a CA is configured.
// The parts `serve` built before ingest starts; grouping them would only move the list.
#[allow(clippy::too_many_arguments)]
async fn start_ingest(
    args: &IngestArgs,
    org_args: &OrganisationArgs,
    pool: sqlx::PgPool,
    retention: RetentionPolicy,
    storage: db::StorageMode,
    query_metrics: Arc<GateMetrics>,
    alert_metrics: Arc<alerts::metrics::AlertMetrics>,
    forecast_metrics: Arc<ForecastMetrics>,
    auth: Auth,
) -> anyhow::Result<Option<SharedServer>> {
    let Some(ca) = load_ca(args)? else {
        tracing::info!("no CA configured; QUIC batch ingest is off");
        return Ok(None);
    };
    let mut config = ServerConfig::new(args.quic_listen, args.server_name.clone());
    config.max_in_flight_batches = args.max_in_flight_batches;
    config.max_in_flight_bytes = args.max_in_flight_mib.saturating_mul(1024 * 1024);
    let allowed = AllowedAccounts::new(args.allowed_account.iter().cloned())
        .context("--allowed-account / CANOPY_ALLOWED_ACCOUNTS")?;
    let refresh_metrics = Arc::new(RefreshMetrics::default());
    if let Some(role_arn) = &org_args.management_role_arn {
        let base = organizations::base_config(org_args.aws_endpoint_url.as_deref()).await;
        let refresher = OrganisationRefresher {
            client: organizations::management_client(&base, Some(role_arn), org_args.management_external_id.as_deref())
                .await,
            pool: pool.clone(),
            allowed: allowed.clone(),
            always_allowed: args.allowed_account.iter().cloned().collect(),
            min_call_interval: Duration::from_millis(org_args.org_call_interval_ms),
            metrics: refresh_metrics.clone(),
        };
        tracing::info!(role_arn, hours = org_args.org_refresh_hours, "organisation refresh on");
        tokio::spawn(refresher.run(Duration::from_secs(u64::from(org_args.org_refresh_hours) * 3_600)));
    }
    if !args.allowed_account.is_empty() || org_args.management_role_arn.is_some() {
        config.enrollment = Some(EnrollmentPolicy::new(
            args.server_id.clone(),
            allowed,
            args.expected_role_name.clone(),
            args.sts_url.clone(),
            args.sts_region.clone(),
        ));
    } else {
        tracing::info!("no allowed accounts and no organisation refresh; enrolment is off");
    }
    let mut delivery = DeliveryConfig::for_retention(retention).with_storage(storage);
    delivery.quota = canopy_aggregator::delivery::DimensionQuota {
        team: args.max_teams_per_account,
        service: args.max_services_per_account,
        resource_type: args.max_resource_types_per_account,
    };
    let handler = Arc::new(Ingest::new(pool, delivery, http::system_clock));
    let metrics = handler.metrics();
    let server = Server::start(config, Arc::new(ca), handler).context("starting the QUIC ingest server")?;
    tracing::info!(quic_listen = %server.local_addr(), "serving QUIC batch ingest");
    let server: SharedServer = Arc::new(tokio::sync::Mutex::new(Some(server)));
    if let Some(addr) = args.metrics_listen {
        let shared = server.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let (metrics, shared, refresh_metrics, query_metrics, alert_metrics, forecast_metrics) = (
                    metrics.clone(),
                    shared.clone(),
                    refresh_metrics.clone(),
                    query_metrics.clone(),
                    alert_metrics.clone(),
                    forecast_metrics.clone(),
                );
                async move {
                    let stats = shared.lock().await.as_ref().map(Server::stats);
                    metrics.render(stats.as_ref()) + &refresh_metrics.render() + &maintenance::ORG_DRAIN_METRICS.render() + &billing::BILLING_METRICS.render()
                        + &canopy_aggregator::timescale::REFRESH_METRICS.render()
                        + &canopy_aggregator::restatement::METRICS.render()
                        + &query_metrics.render()
                        + &alert_metrics.render(http::system_clock())
                        + &forecast_metrics.render()
                }
            }),
        );
        // Behind the same access control as the APIs (org_viewer or admin).
        let app = auth::http_layer::protect(app, auth);
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the metrics endpoint to {addr}"))?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await {
                tracing::warn!(error = %e, "metrics endpoint stopped");
            }
        });
    }
    Ok(Some(server))
}

/// Resolves on Ctrl-C or SIGTERM (container stop), for an orderly shutdown.
async fn shutdown_signal() {
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
    tracing::info!("shutting down");
}
