//! Connection pool, the embedded migrations (from the workspace's
//! `migrations/` folder) and the choice of the storage path they apply
//! (`--storage auto|timescaledb|native`).
//!
//! The choice is made once, when migration 0002 would run, and recorded in
//! `canopy_settings.storage_mode`; later runs read it back and never flip
//! it. 0002 creates the TimescaleDB schema whenever the extension is merely
//! *available*, and on a server where it is available but not preloaded
//! (the usual state right after installing the package) its
//! `CREATE EXTENSION` fails. Applied migrations are never edited, so the
//! migrator here applies the files itself (as sqlx's `Migrator::run` does:
//! lock, checksums, one transaction per file) and, when the native path is
//! chosen, runs 0002 as a statement that records 'native' instead of its
//! body; `_sqlx_migrations` keeps 0002's own checksum, so later runs (and
//! sqlx's own migrator) see the files unchanged.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;

use sqlx::migrate::{Migrate, Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

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

/// Which storage path the operator asks for (`--storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StorageChoice {
    /// TimescaleDB when the extension can really be used (installed and
    /// preloaded), native otherwise.
    #[default]
    Auto,
    /// TimescaleDB; an error when the extension cannot be used.
    #[value(name = "timescaledb")]
    TimescaleDb,
    /// Native range partitions, even where TimescaleDB could be used.
    Native,
}

/// What the server offers of TimescaleDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimescaleProbe {
    /// Default version of the extension installed on the server, if any.
    pub available_version: Option<String>,
    /// The server's `shared_preload_libraries`.
    pub shared_preload_libraries: String,
}

impl TimescaleProbe {
    /// Whether `timescaledb` is among the preloaded libraries.
    pub fn preloaded(&self) -> bool {
        self.shared_preload_libraries.split(',').any(|lib| {
            let lib = lib.trim().trim_matches('"');
            let name = lib.rsplit('/').next().unwrap_or(lib);
            name == "timescaledb" || name == "timescaledb.so"
        })
    }

    /// `Ok(why)` when the extension can be used, else `Err(why not)`.
    pub fn usable(&self) -> Result<String, String> {
        match &self.available_version {
            None => Err("the timescaledb extension is not installed on the server".to_owned()),
            Some(v) if !self.preloaded() => Err(format!(
                "the timescaledb extension {v} is installed on the server but not preloaded \
                 (shared_preload_libraries = '{}'); CREATE EXTENSION would fail with \
                 \"extension \"timescaledb\" must be preloaded\"",
                self.shared_preload_libraries
            )),
            Some(v) => Ok(format!("the timescaledb extension {v} is installed and preloaded")),
        }
    }
}

/// The storage path the migrations run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageDecision {
    /// The path.
    pub mode: StorageMode,
    /// Why this path, in words for the log.
    pub reason: String,
    /// True when this run chose it (a new database); false when it was read
    /// back from `canopy_settings`.
    pub newly_decided: bool,
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
    /// `--storage timescaledb` on a server where the extension cannot be used.
    #[error(
        "--storage timescaledb was asked for, but {0}; install TimescaleDB and add it to \
         shared_preload_libraries (then restart PostgreSQL), or run with --storage native or auto"
    )]
    TimescaleUnusable(String),
    /// The database's recorded storage path differs from the one asked for.
    #[error(
        "--storage {asked} was asked for, but this database was migrated on the {recorded} path \
         (canopy_settings.storage_mode); the path is chosen once and never changed: run with \
         --storage auto or {recorded}, or migrate a new database"
    )]
    StorageMismatch {
        /// The path asked for.
        asked: &'static str,
        /// The path recorded in `canopy_settings`.
        recorded: &'static str,
    },
}

impl StorageMode {
    /// The name `canopy_settings.storage_mode` and `--storage` use.
    pub fn name(self) -> &'static str {
        match self {
            StorageMode::Native => "native",
            StorageMode::TimescaleDb => "timescaledb",
        }
    }
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

/// Applies every pending migration with `--storage auto`; a no-op when all
/// are applied.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    migrate_with(pool, StorageChoice::Auto).await.map(|_| ())
}

/// The version of the migration that chooses the storage path.
const STORAGE_MIGRATION: i64 = 2;

/// What runs instead of 0002's body when the native path is chosen.
const NATIVE_INSTEAD_OF_0002: &str = "-- 0002_timescaledb.sql not run: canopy-aggregator chose the native storage path \
     (canopy_settings.storage_reason says why)\nUPDATE canopy_settings SET storage_mode = 'native';\n";

/// Reads what the server offers of TimescaleDB.
pub async fn probe_timescaledb<'e, E>(executor: E) -> Result<TimescaleProbe, DbError>
where
    E: sqlx::PgExecutor<'e>,
{
    let (available_version, shared_preload_libraries): (Option<String>, String) = sqlx::query_as(
        "SELECT (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'),
                current_setting('shared_preload_libraries')",
    )
    .fetch_one(executor)
    .await?;
    Ok(TimescaleProbe { available_version, shared_preload_libraries })
}

/// The path `choice` leads to on a server offering `probe`, and why.
pub fn decide_storage(choice: StorageChoice, probe: &TimescaleProbe) -> Result<StorageDecision, DbError> {
    let (mode, reason) = match (choice, probe.usable()) {
        (StorageChoice::Native, _) => (StorageMode::Native, "--storage native was asked for".to_owned()),
        (StorageChoice::TimescaleDb, Ok(why)) => (StorageMode::TimescaleDb, format!("--storage timescaledb: {why}")),
        (StorageChoice::TimescaleDb, Err(why)) => return Err(DbError::TimescaleUnusable(why)),
        (StorageChoice::Auto, Ok(why)) => (StorageMode::TimescaleDb, format!("--storage auto: {why}")),
        (StorageChoice::Auto, Err(why)) => (StorageMode::Native, format!("--storage auto: {why}")),
    };
    Ok(StorageDecision { mode, reason, newly_decided: true })
}

/// Applies every pending migration on the storage path `choice` leads to
/// (for a database migrated before, the path recorded in it) and logs
/// which path runs and why. Errors when TimescaleDB is asked for but
/// cannot be used, or when the path asked for is not the recorded one.
pub async fn migrate_with(pool: &PgPool, choice: StorageChoice) -> Result<StorageDecision, DbError> {
    let mut pooled = pool.acquire().await?;
    let conn: &mut sqlx::PgConnection = &mut pooled;
    conn.lock().await?;
    let result = apply_pending(conn, choice).await;
    conn.unlock().await?;
    let decision = result?;
    if decision.newly_decided {
        sqlx::query("UPDATE canopy_settings SET storage_reason = $1").bind(&decision.reason).execute(&mut *conn).await?;
    }
    tracing::info!(
        storage = decision.mode.name(),
        reason = %decision.reason,
        newly_decided = decision.newly_decided,
        "storage path"
    );
    Ok(decision)
}

/// The body of [`migrate_with`], under the migration lock.
async fn apply_pending(conn: &mut sqlx::PgConnection, choice: StorageChoice) -> Result<StorageDecision, DbError> {
    conn.ensure_migrations_table().await?;
    if let Some(version) = conn.dirty_version().await? {
        return Err(sqlx::migrate::MigrateError::Dirty(version).into());
    }
    let applied: HashMap<i64, Cow<'static, [u8]>> =
        conn.list_applied_migrations().await?.into_iter().map(|m| (m.version, m.checksum)).collect();
    for version in applied.keys() {
        if !MIGRATOR.version_exists(*version) {
            return Err(sqlx::migrate::MigrateError::VersionMissing(*version).into());
        }
    }
    let mut decision = None;
    if applied.contains_key(&STORAGE_MIGRATION) {
        let recorded = storage_mode(&mut *conn).await?;
        let asked = match choice {
            StorageChoice::Auto => None,
            StorageChoice::Native => Some(StorageMode::Native),
            StorageChoice::TimescaleDb => Some(StorageMode::TimescaleDb),
        };
        if let Some(asked) = asked.filter(|a| *a != recorded) {
            return Err(DbError::StorageMismatch { asked: asked.name(), recorded: recorded.name() });
        }
        let why: Option<String> = sqlx::query_scalar("SELECT to_jsonb(s) ->> 'storage_reason' FROM canopy_settings s")
            .fetch_one(&mut *conn)
            .await?;
        decision = Some(StorageDecision {
            mode: recorded,
            reason: format!(
                "recorded in canopy_settings when the database was first migrated ({})",
                why.unwrap_or_else(|| "no reason recorded".to_owned())
            ),
            newly_decided: false,
        });
    }
    for migration in MIGRATOR.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        if let Some(checksum) = applied.get(&migration.version) {
            if *checksum != migration.checksum {
                return Err(sqlx::migrate::MigrateError::VersionMismatch(migration.version).into());
            }
            continue;
        }
        if migration.version == STORAGE_MIGRATION {
            let chosen = decide_storage(choice, &probe_timescaledb(&mut *conn).await?)?;
            if chosen.mode == StorageMode::Native {
                // Same version and checksum, so the record reads as 0002 applied.
                let instead = Migration { sql: Cow::Borrowed(NATIVE_INSTEAD_OF_0002), ..migration.clone() };
                conn.apply(&instead).await?;
            } else {
                conn.apply(migration).await?;
            }
            decision = Some(chosen);
            continue;
        }
        conn.apply(migration).await?;
    }
    // Every version is applied now, 0002 included.
    Ok(decision.expect("migration 0002 is embedded"))
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
