//! Billing truth from AWS Data Exports (issue 15, §1).
//!
//! This module owns reading the organisation's Data Exports (CUR 2.0)
//! deliveries from S3 — manifests, then their Parquet or gzip CSV data
//! files, one at a time through a temporary file and the `canopy-cur`
//! streaming reader — and storing their line items as aggregates per UTC
//! day × account × region × service × usage type × resource id × team,
//! estimated with the emissions library's `canopy` methodology, with
//! unblended and net amortised cost and the delivery they came from
//! (`billing_deliveries`, `billing_line_items`, migration 0031). A delivery
//! is stored once (its manifest's export name, billing period and execution
//! id); a new execution for a month replaces that month's rows in one
//! transaction; a delivery that fails anywhere (unreadable file, unknown
//! schema, a data file the manifest names but S3 lacks) stores nothing and
//! is retried by the next sync. **It never writes agent facts or any rollup,
//! and never decides whether billing or agent figures count in a total**
//! (that is issue 15 §2).

pub mod estimate;
pub mod manifest;
pub mod store;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use canopy_cur::ReadOptions;
use sqlx::PgPool;

use estimate::{Accumulator, BillingRow};
use manifest::Manifest;

/// The methodology stored with every delivery.
pub const METHODOLOGY: &str = "canopy";

/// The factors behind billing estimates (the defaults of `canopy estimate`).
pub fn factor_lineage() -> String {
    format!(
        "location: built-in annual grid factors (canopy-emissions {}); market: built-in defaults",
        env!("CARGO_PKG_VERSION")
    )
}

/// Errors of a sync.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// A delivery's object is bad input: unreadable, missing or of an
    /// unknown schema. Nothing of the delivery is stored.
    #[error("s3://{bucket}/{key}: {message}")]
    BadObject {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
        /// What was wrong (with the row where the reader knows it).
        message: String,
    },
    /// S3 itself failed (listing, network); retried by the next sync.
    #[error("s3://{bucket}/{key}: {message}")]
    S3 {
        /// Bucket.
        bucket: String,
        /// Key or prefix.
        key: String,
        /// The SDK's error.
        message: String,
    },
    /// A temporary file could not be written.
    #[error("temporary file for s3://{bucket}/{key}: {source}")]
    Io {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A statement failed.
    #[error("database error while storing billing data: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Where the deliveries are.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Bucket of the exports.
    pub bucket: String,
    /// Key prefix under which exports live (`<prefix>/<export-name>/...`); may be empty.
    pub prefix: String,
    /// Only this export (its name); every export under the prefix when `None`.
    pub export_name: Option<String>,
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SyncReport {
    /// Manifests found.
    pub manifests: u64,
    /// Deliveries stored by this sync.
    pub deliveries_synced: u64,
    /// Deliveries already stored (skipped).
    pub deliveries_unchanged: u64,
    /// Line items read from the stored deliveries.
    pub line_items_read: u64,
    /// Rows written.
    pub rows_stored: u64,
    /// Deliveries refused or failed, with the error (they stored nothing).
    pub failures: Vec<String>,
}

/// Counters of the billing sync, rendered in the Prometheus text format by `/metrics`.
#[derive(Debug, Default)]
pub struct BillingMetrics {
    syncs: AtomicU64,
    deliveries_synced: AtomicU64,
    deliveries_unchanged: AtomicU64,
    line_items: AtomicU64,
    rows: AtomicU64,
    errors: AtomicU64,
    bad_input: AtomicU64,
    micros: AtomicU64,
}

/// The process's billing counters.
pub static BILLING_METRICS: BillingMetrics = BillingMetrics {
    syncs: AtomicU64::new(0),
    deliveries_synced: AtomicU64::new(0),
    deliveries_unchanged: AtomicU64::new(0),
    line_items: AtomicU64::new(0),
    rows: AtomicU64::new(0),
    errors: AtomicU64::new(0),
    bad_input: AtomicU64::new(0),
    micros: AtomicU64::new(0),
};

impl BillingMetrics {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        let mut out = String::new();
        for (name, help, value) in [
            (
                "canopy_aggregator_billing_syncs_total",
                "Billing syncs run.",
                get(&self.syncs),
            ),
            (
                "canopy_aggregator_billing_deliveries_synced_total",
                "Data Exports deliveries stored.",
                get(&self.deliveries_synced),
            ),
            (
                "canopy_aggregator_billing_deliveries_unchanged_total",
                "Deliveries found already stored (skipped).",
                get(&self.deliveries_unchanged),
            ),
            (
                "canopy_aggregator_billing_line_items_read_total",
                "CUR line items read from stored deliveries.",
                get(&self.line_items),
            ),
            (
                "canopy_aggregator_billing_rows_stored_total",
                "Billing aggregate rows written.",
                get(&self.rows),
            ),
            (
                "canopy_aggregator_billing_errors_total",
                "Deliveries that failed (nothing stored; retried next sync).",
                get(&self.errors),
            ),
            (
                "canopy_aggregator_billing_bad_input_total",
                "Deliveries refused as bad input (unreadable file, unknown schema, missing file).",
                get(&self.bad_input),
            ),
            (
                "canopy_aggregator_billing_sync_seconds_total",
                "Time spent in billing syncs.",
                format!("{:.6}", self.micros.load(Ordering::Relaxed) as f64 / 1e6),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        }
        out
    }
}

/// Lists the manifest keys under the configured prefix, sorted.
async fn manifest_keys(client: &Client, config: &SyncConfig) -> Result<Vec<String>, BillingError> {
    let prefix = match (&config.export_name, config.prefix.trim_end_matches('/')) {
        (Some(name), "") => format!("{name}/metadata/"),
        (Some(name), p) => format!("{p}/{name}/metadata/"),
        (None, "") => String::new(),
        (None, p) => format!("{p}/"),
    };
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(&config.bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| BillingError::S3 {
            bucket: config.bucket.clone(),
            key: prefix.clone(),
            message: format!(
                "listing failed: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ),
        })?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| manifest::is_manifest_key(k))
                .map(str::to_owned),
        );
    }
    keys.sort();
    Ok(keys)
}

/// Downloads `key` into `file`, chunk by chunk (memory does not grow with the object).
async fn download(
    client: &Client,
    bucket: &str,
    key: &str,
    file: &Path,
) -> Result<u64, BillingError> {
    let response = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
            if missing {
                BillingError::BadObject {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    message: "named by the manifest but not found in the bucket".to_owned(),
                }
            } else {
                BillingError::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    message: format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)),
                }
            }
        })?;
    let io = |source| BillingError::Io {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        source,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).map_err(io)?);
    let mut body = response.body;
    let mut bytes = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(|e| BillingError::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message: format!("download interrupted: {e}"),
    })? {
        bytes += chunk.len() as u64;
        out.write_all(&chunk).map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(bytes)
}

async fn read_manifest(client: &Client, bucket: &str, key: &str) -> Result<Manifest, BillingError> {
    let response = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| BillingError::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message: format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)),
        })?;
    let bytes = response
        .body
        .collect()
        .await
        .map_err(|e| BillingError::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            message: format!("download interrupted: {e}"),
        })?;
    Manifest::parse(&bytes.into_bytes(), key, bucket).map_err(|e| BillingError::BadObject {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// Reads one delivery's data files into rows (nothing is stored here).
async fn read_delivery(
    client: &Client,
    bucket: &str,
    manifest: &Manifest,
    team_tag_key: &str,
    default_teams: std::collections::HashMap<String, String>,
) -> Result<(Vec<BillingRow>, u64), BillingError> {
    let dir = tempfile::tempdir().map_err(|source| BillingError::Io {
        bucket: bucket.to_owned(),
        key: String::new(),
        source,
    })?;
    let mut acc = Accumulator::new(default_teams);
    let opts = ReadOptions {
        tag_key: Some(team_tag_key.to_owned()),
        skip_bad_rows: false,
    };
    let mut line_items = 0u64;
    for (i, key) in manifest.data_keys.iter().enumerate() {
        // The reader takes the format from the name: keep the key's file name.
        let name = key.rsplit('/').next().unwrap_or("data");
        let path = dir.path().join(format!("{i}-{name}"));
        download(client, bucket, key, &path).await?;
        let opts = opts.clone();
        let read_path = path.clone();
        let (back, result) = tokio::task::spawn_blocking(move || {
            let mut acc = acc;
            let result = canopy_cur::read_file(&read_path, &opts, &mut |line| acc.add(line));
            (acc, result)
        })
        .await
        .map_err(|e| BillingError::BadObject {
            bucket: bucket.to_owned(),
            key: key.clone(),
            message: format!("reader stopped: {e}"),
        })?;
        acc = back;
        let _ = std::fs::remove_file(&path);
        let stats = result.map_err(|e| {
            // The reader names the temporary file; the operator needs the object key.
            let text = e.to_string();
            let prefix = format!("{}: ", path.display());
            BillingError::BadObject {
                bucket: bucket.to_owned(),
                key: key.clone(),
                message: text.strip_prefix(&prefix).unwrap_or(&text).to_owned(),
            }
        })?;
        line_items += stats.rows_read;
    }
    let rows = tokio::task::spawn_blocking(move || acc.finish())
        .await
        .map_err(|e| BillingError::BadObject {
            bucket: bucket.to_owned(),
            key: String::new(),
            message: format!("estimation stopped: {e}"),
        })?;
    Ok((rows, line_items))
}

/// Syncs every delivery under the configured prefix: each manifest whose
/// delivery is not stored yet is read whole, estimated and stored in one
/// transaction (replacing that export's billing period). A failing delivery
/// stores nothing, is counted and reported, and does not stop the others.
/// Only listing S3 or reaching the database fails the whole sync.
pub async fn sync(
    pool: &PgPool,
    client: &Client,
    config: &SyncConfig,
) -> Result<SyncReport, BillingError> {
    let started = Instant::now();
    BILLING_METRICS.syncs.fetch_add(1, Ordering::Relaxed);
    let result = sync_inner(pool, client, config).await;
    BILLING_METRICS
        .micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    match &result {
        Ok(report) => tracing::info!(
            bucket = %config.bucket,
            prefix = %config.prefix,
            manifests = report.manifests,
            synced = report.deliveries_synced,
            unchanged = report.deliveries_unchanged,
            rows = report.rows_stored,
            failures = report.failures.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "billing sync finished"
        ),
        Err(e) => {
            BILLING_METRICS.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(bucket = %config.bucket, error = %e, "billing sync failed");
        }
    }
    result
}

async fn sync_inner(
    pool: &PgPool,
    client: &Client,
    config: &SyncConfig,
) -> Result<SyncReport, BillingError> {
    let mut report = SyncReport::default();
    let keys = manifest_keys(client, config).await?;
    let (team_tag_key, default_teams) = store::team_rules(pool).await?;
    let lineage = factor_lineage();
    for key in keys {
        report.manifests += 1;
        let outcome = sync_one(
            pool,
            client,
            &config.bucket,
            &key,
            &team_tag_key,
            &default_teams,
            &lineage,
        )
        .await;
        match outcome {
            Ok(None) => {
                report.deliveries_unchanged += 1;
                BILLING_METRICS
                    .deliveries_unchanged
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some((line_items, rows))) => {
                report.deliveries_synced += 1;
                report.line_items_read += line_items;
                report.rows_stored += rows;
                BILLING_METRICS
                    .deliveries_synced
                    .fetch_add(1, Ordering::Relaxed);
                BILLING_METRICS
                    .line_items
                    .fetch_add(line_items, Ordering::Relaxed);
                BILLING_METRICS.rows.fetch_add(rows, Ordering::Relaxed);
            }
            Err(e @ BillingError::Sql(_)) => return Err(e),
            Err(e) => {
                BILLING_METRICS.errors.fetch_add(1, Ordering::Relaxed);
                if matches!(e, BillingError::BadObject { .. }) {
                    BILLING_METRICS.bad_input.fetch_add(1, Ordering::Relaxed);
                }
                tracing::error!(manifest = %key, error = %e, "billing delivery refused, nothing of it stored");
                report.failures.push(e.to_string());
            }
        }
    }
    Ok(report)
}

/// One manifest: `None` when already stored, else (line items read, rows stored).
async fn sync_one(
    pool: &PgPool,
    client: &Client,
    bucket: &str,
    key: &str,
    team_tag_key: &str,
    default_teams: &std::collections::HashMap<String, String>,
    lineage: &str,
) -> Result<Option<(u64, u64)>, BillingError> {
    let manifest = read_manifest(client, bucket, key).await?;
    if store::is_ingested(pool, &manifest).await? {
        return Ok(None);
    }
    let (rows, line_items) = read_delivery(
        client,
        bucket,
        &manifest,
        team_tag_key,
        default_teams.clone(),
    )
    .await?;
    let record = store::DeliveryRecord {
        manifest: &manifest,
        manifest_key: key,
        line_items_read: line_items,
        methodology: METHODOLOGY,
        factor_lineage: lineage,
    };
    if !store::replace_period(pool, &record, &rows).await? {
        return Ok(None);
    }
    tracing::info!(
        manifest = %key,
        export = %manifest.export_name,
        billing_period = %manifest.period_start(),
        execution_id = %manifest.execution_id,
        line_items,
        rows = rows.len(),
        "billing delivery stored"
    );
    Ok(Some((line_items, rows.len() as u64)))
}

/// Runs [`sync`] every `interval`, forever (spawned by `serve` when billing
/// is configured). Failures are logged and counted; the next tick retries.
pub async fn sync_forever(pool: PgPool, client: Client, config: SyncConfig, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _ = sync(&pool, &client, &config).await;
    }
}
