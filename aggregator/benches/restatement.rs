//! Restatement benchmark (issue 14 §3): restating one month of a
//! `--accounts`-account dataset — time and peak memory.
//!
//! Creates a throwaway database on the server of `--admin-url` (native
//! storage unless `--storage timescaledb`), stores `--accounts` accounts ×
//! `--resources` resources × every hour of one UTC month (2023-01) in
//! eu-west-1 through `ingest::store_batch` (annual factors, as facts stored
//! before any import are), then imports an hourly intensity for the month's
//! hours of eu-west-1's zone (`factors::import_hourly`, version 1), which
//! restates every fact of the month, and runs the restatement
//! (`restatement::run_pending`) in this process. Prints the restatement's
//! wall time, facts and chunks per second, and this process's peak RSS
//! during the restatement (VmHWM reset before it through
//! `/proc/self/clear_refs`); PostgreSQL's own memory is not included. Checks
//! that every fact was restated and that the monthly rollups still equal
//! the facts.
//!
//!     cargo bench -p canopy-aggregator --bench restatement -- --accounts 1000 --resources 2
#![forbid(unsafe_code)]

use std::time::Instant;

use anyhow::{Context, bail};
use canopy_aggregator::accounting::FactParts;
use canopy_aggregator::db::{self, StorageChoice};
use canopy_aggregator::model::{Accounting, Batch, FactRow, Quality};
use canopy_aggregator::{factors, ingest, restatement};
use clap::Parser;
use sqlx::{Connection, PgConnection, PgPool};

/// 2023-01-01 00:00 UTC.
const MONTH_START_UNIX_S: i64 = 1_672_531_200;
const MONTH_HOURS: i64 = 31 * 24;

#[derive(Parser, Debug)]
#[command(name = "restatement", about = "Restating one month of an N-account dataset: time and peak memory")]
struct Args {
    /// Accounts (one batch per account and day).
    #[arg(long, default_value_t = 1_000)]
    accounts: u64,
    /// Resources per account, each with a record every hour of the month.
    #[arg(long, default_value_t = 2)]
    resources: u64,
    /// Concurrent writers while loading.
    #[arg(long, default_value_t = 4)]
    writers: u64,
    /// Storage path of the bench database.
    #[arg(long, value_enum, default_value_t = StorageChoice::Native)]
    storage: StorageChoice,
    /// Superuser URL; a database `canopy_restatement_bench_<pid>` is created there and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn fact(account: u64, resource: u64, start_unix_s: i64) -> FactRow {
    let energy_kwh = 0.05 + ((account * 7 + resource * 13 + start_unix_s.unsigned_abs() / 3_600) % 100) as f64 / 1_000.0;
    let annual = canopy_emissions::grid::location_factor("eu-west-1");
    let operational = energy_kwh * annual.g_co2e_per_kwh;
    let embodied = energy_kwh * 30.0;
    FactRow {
        record_key: format!("i-{resource}/total"),
        revision: 1,
        period_start_unix_s: start_unix_s,
        period_s: 3_600,
        account_id: format!("{:012}", 300_000_000_000u64 + account),
        region: "eu-west-1".into(),
        resource_id: format!("i-{resource}"),
        resource_type: "ec2:instance".into(),
        service: "AmazonEC2".into(),
        team: Some(["web", "data", "ml"][(resource % 3) as usize].into()),
        tags: None,
        quality: Quality::Measured,
        energy_kwh,
        location_g_co2e: operational + embodied,
        market_g_co2e: operational + embodied,
        low_g_co2e: (operational + embodied) * 0.9,
        high_g_co2e: (operational + embodied) * 1.1,
        methodology_version: "canopy-1".into(),
        factor_source: format!("annual: {}", annual.provenance.source),
        factor_vintage: annual.provenance.vintage.into(),
        accounting: Some(Accounting {
            parts: FactParts::from_record(energy_kwh / 1.2, operational, operational, embodied, (operational + embodied) * 0.9, (operational + embodied) * 1.1),
            market_factor_source: "location-fallback".into(),
            market_factor_vintage: annual.provenance.vintage.into(),
        }),
        realtime: false,
    }
}

/// Peak resident set of this process, KiB (VmHWM).
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("VmHWM in /proc/self/status")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM value")?.parse()?)
}

async fn load(pool: &PgPool, args: &Args) -> anyhow::Result<u64> {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..args.writers {
        let (pool, accounts, resources, writers) = (pool.clone(), args.accounts, args.resources, args.writers);
        tasks.spawn(async move {
            let mut stored = 0u64;
            for account in (w..accounts).step_by(writers as usize) {
                for day in 0..31 {
                    let mut facts = Vec::new();
                    for resource in 0..resources {
                        for h in 0..24 {
                            facts.push(fact(account, resource, MONTH_START_UNIX_S + day * 86_400 + h * 3_600));
                        }
                    }
                    stored += facts.len() as u64;
                    let batch = Batch { agent_id: format!("bench-{account}"), sequence: day as u64 + 1, facts, inventory: vec![] };
                    let mut tx = pool.begin().await?;
                    ingest::store_batch(&mut tx, &batch).await?;
                    tx.commit().await?;
                }
            }
            anyhow::Ok(stored)
        });
    }
    let mut stored = 0;
    while let Some(joined) = tasks.join_next().await {
        stored += joined??;
    }
    Ok(stored)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name = format!("canopy_restatement_bench_{}", std::process::id());
    let base = args.admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).context("admin url without a database")?;
    let database_url = format!("{base}/{name}");
    let mut admin = PgConnection::connect(&args.admin_url).await.context("connecting to the admin database")?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await?;
    let result = run(&args, &database_url).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut admin).await?;
    result
}

async fn run(args: &Args, database_url: &str) -> anyhow::Result<()> {
    let pool = db::connect(database_url, (args.writers as u32).max(2) + 1).await?;
    let decision = db::migrate_with(&pool, args.storage).await?;
    let t = Instant::now();
    let stored = load(&pool, args).await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    println!(
        "loaded {stored} facts ({} accounts x {} resources x {MONTH_HOURS} hours, {} path) in {:.1} s",
        args.accounts,
        args.resources,
        decision.mode.name(),
        t.elapsed().as_secs_f64()
    );

    let zone = canopy_emissions::grid::zone_for_region("eu-west-1").context("eu-west-1 has a zone")?;
    let header = "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,Data Estimated,Data Estimation Method";
    let mut csv = format!("{header}\n");
    for h in 0..MONTH_HOURS {
        let (y, m, d) = canopy_aggregator::time::civil_from_days((MONTH_START_UNIX_S + h * 3_600) / 86_400);
        let g = 250.0 + 100.0 * (h as f64 / 7.0).sin();
        csv.push_str(&format!("{y:04}-{m:02}-{d:02} {:02}:00:00,Ireland,Ireland,{zone},{g:.2},{:.2},40,30,bench,false,\n", h % 24, g + 50.0));
    }
    let file = std::env::temp_dir().join(format!("canopy-restatement-bench-{}.csv", std::process::id()));
    std::fs::write(&file, csv)?;
    let imported = factors::import_hourly(&pool, &[file.to_string_lossy().into_owned()]).await?;
    std::fs::remove_file(&file).ok();

    // Peak memory of the restatement alone.
    std::fs::write("/proc/self/clear_refs", "5").context("resetting VmHWM")?;
    let rss_before_kib = peak_rss_kib()?;
    let t = Instant::now();
    let reports = restatement::run_pending(&pool, None).await?;
    let elapsed_s = t.elapsed().as_secs_f64();
    let peak_kib = peak_rss_kib()?;
    let (chunks, facts): (u64, u64) = reports.iter().fold((0, 0), |a, r| (a.0 + r.chunks, a.1 + r.facts_changed));
    if facts != stored {
        bail!("restated {facts} facts, expected all {stored}");
    }
    canopy_aggregator::timescale::refresh_pending(&pool).await?;
    let (facts_g, rollup_g): (f64, f64) = sqlx::query_as(
        "SELECT (SELECT sum(location_g_co2e) FROM emission_facts_all), (SELECT sum(location_g_co2e) FROM rollup_monthly)",
    )
    .fetch_one(&pool)
    .await?;
    if (facts_g - rollup_g).abs() > 1e-6 * facts_g {
        bail!("monthly rollups {rollup_g} g differ from the facts {facts_g} g");
    }
    println!(
        "restatement bench ({} build): hourly v{} restated {facts} facts in {chunks} (account, region, day) chunks in {elapsed_s:.1} s \
         ({:.0} facts/s, {:.1} ms/chunk); peak RSS of this process during it {:.1} MiB (before {:.1} MiB); rollups equal the facts",
        if cfg!(debug_assertions) { "DEBUG" } else { "release" },
        imported.version,
        facts as f64 / elapsed_s,
        elapsed_s * 1e3 / chunks.max(1) as f64,
        peak_kib as f64 / 1024.0,
        rss_before_kib as f64 / 1024.0,
    );
    Ok(())
}
