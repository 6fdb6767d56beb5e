//! Connection pool and the embedded migrations (from the workspace's
//! `migrations/` folder).

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The workspace's `migrations/*.sql`, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// How time series are stored, as decided by the migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageMode {
    /// Native range partitions; rollups maintained by the aggregator.
    Native,
    /// TimescaleDB hypertable and continuous aggregates.
    TimescaleDb,
}

/// Errors from connecting, migrating or reading settings.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached or a statement failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A migration failed to apply.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `canopy_settings.storage_mode` held something unexpected.
    #[error("expected storage mode 'native' or 'timescaledb', found {0:?}")]
    UnknownStorageMode(String),
}

/// Opens a pool of at most `max_connections` connections to `database_url`.
///
/// Every session runs with `jit = off`: the aggregator's statements are
/// short (a batch, a dashboard query over at most a few million rollup
/// rows), and PostgreSQL's JIT compiled them for longer than they ran
/// (measured on the 10,000-account benchmark: 6.0 s of JIT CPU, about 0.9 s
/// of wall time, on a by-account query that runs in 1.2 s without it).
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let options = PgConnectOptions::from_str(database_url)?.options([("jit", "off")]);
    Ok(PgPoolOptions::new().max_connections(max_connections).connect_with(options).await?)
}

/// Applies every pending migration; a no-op when all are applied.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Reads the storage mode chosen by the migrations.
pub async fn storage_mode<'e, E>(executor: E) -> Result<StorageMode, DbError>
where
    E: sqlx::PgExecutor<'e>,
{
    let mode: String = sqlx::query_scalar("SELECT storage_mode FROM canopy_settings")
        .fetch_one(executor)
        .await?;
    parse_storage_mode(mode)
}

/// The storage mode named by a `canopy_settings.storage_mode` value.
pub fn parse_storage_mode(mode: String) -> Result<StorageMode, DbError> {
    match mode.as_str() {
        "native" => Ok(StorageMode::Native),
        "timescaledb" => Ok(StorageMode::TimescaleDb),
        _ => Err(DbError::UnknownStorageMode(mode)),
    }
}
