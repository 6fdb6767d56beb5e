//! Issue 14, section 2: factor sets the aggregator owns. Hourly intensity
//! and market factors imported from files (refused whole, naming file, line
//! and column), applied to the energy of the live path's facts.

use canopy_aggregator::factors::{self, ANNUAL_PREFIX, HOURLY_SOURCE, ImportError};
use canopy_aggregator::ingest::store_batch;
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::model::{Batch, FactRow};
use canopy_aggregator::query::{Filters, Page, QueryEngine, TotalsRequest};
use canopy_emissions::grid::location_factor;
use sqlx::PgPool;

use crate::support::{TestDb, fact};

/// 2023-01-01 00:00 UTC, the first hour of the fixtures.
const HOUR_2023: i64 = 1_672_531_200;

fn data(name: &str) -> String {
    format!("{}/tests/data/grid-hourly/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn write_temp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("canopy-factors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// What the live path does with an agent's batch: price it with the
/// aggregator's factors, store it, in one transaction.
async fn deliver(pool: &PgPool, batch: &mut Batch) {
    let mut tx = pool.begin().await.unwrap();
    factors::apply(&mut tx, &mut batch.facts).await.unwrap();
    store_batch(&mut tx, batch).await.unwrap();
    tx.commit().await.unwrap();
}

fn in_region(resource: u64, region: &str, start: i64) -> FactRow {
    FactRow { region: region.into(), ..fact(resource, start, 3_600, 1) }
}

async fn counts(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM factor_set_versions), (SELECT count(*) FROM hourly_intensity),
                (SELECT count(*) FROM market_factors)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn hourly_facts_use_the_hours_intensity_and_others_the_annual_factor() {
    let t = TestDb::migrated().await;
    let imported = factors::import_hourly(&t.pool, &[data("US-CAL-CISO_2023_hourly.csv"), data("ES_2023_hourly.csv")])
        .await
        .unwrap();
    assert_eq!((imported.factor_set, imported.version, imported.values), ("location-hourly", 1, 17_520));
    // us-west-1 -> US-CAL-CISO (218.3 g/kWh direct at 2023-01-01 00:00, 220.63
    // at 01:00); eu-west-1 has no hourly data here.
    let mut batch = Batch {
        agent_id: "a".into(),
        sequence: 1,
        facts: vec![
            in_region(1, "us-west-1", HOUR_2023),
            in_region(2, "us-west-1", HOUR_2023 + 3_600),
            in_region(3, "eu-west-1", HOUR_2023),
        ],
        inventory: vec![],
    };
    let sent: Vec<FactRow> = batch.facts.clone();
    deliver(&t.pool, &mut batch).await;
    let stored: Vec<(String, f64, f64, f64, String, String)> = sqlx::query_as(
        "SELECT resource_id, energy_kwh, operational_location_g_co2e, embodied_g_co2e, factor_source, factor_vintage
         FROM emission_facts_all_parts ORDER BY resource_id",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 3);
    for ((resource, energy, op_location, embodied, source, vintage), sent) in stored.iter().zip(&sent) {
        assert_eq!(*energy, sent.energy_kwh, "{resource}: energy is the agent's");
        assert_eq!(*embodied, sent.parts().embodied_g_co2e, "{resource}: embodied is the agent's");
        let (g_per_kwh, want_source) = match resource.as_str() {
            "r1" => (218.3, HOURLY_SOURCE.to_owned()),
            "r2" => (220.63, HOURLY_SOURCE.to_owned()),
            _ => {
                let annual = location_factor("eu-west-1");
                (annual.g_co2e_per_kwh, format!("{ANNUAL_PREFIX}{}", annual.provenance.source))
            }
        };
        assert!((op_location - energy * g_per_kwh).abs() < 1e-9, "{resource}: {op_location} vs {energy} x {g_per_kwh}");
        assert_eq!(*source, want_source, "{resource}");
        if resource != "r3" {
            assert_eq!(vintage, "location-hourly v1");
        }
    }
    // The API lists both bases among the answer's factor sets.
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let req = TotalsRequest {
        from_unix_s: HOUR_2023,
        to_unix_s: HOUR_2023 + 7_200,
        group_by: vec![],
        filters: Filters::default(),
        page: Page::default(),
    };
    let resp = engine.totals(&req, HOUR_2023 + 86_400).await.unwrap();
    let sources: Vec<&str> = resp.factor_sets.iter().map(|f| f.location_factor_source.as_str()).collect();
    assert!(sources.contains(&HOURLY_SOURCE) && sources.iter().any(|s| s.starts_with(ANNUAL_PREFIX)), "{sources:?}");
    resp.total.parts_add_up(1e-12).unwrap();
    // The share of energy priced hourly: r1 and r2 of r1, r2, r3.
    let mut snapshot = engine.snapshot(HOUR_2023 + 86_400).await.unwrap();
    let (hourly_kwh, all_kwh) =
        snapshot.hourly_priced_energy(HOUR_2023, HOUR_2023 + 7_200, &Filters::default()).await.unwrap();
    snapshot.finish().await.unwrap();
    let e: Vec<f64> = sent.iter().map(|f| f.energy_kwh).collect();
    assert!((hourly_kwh - (e[0] + e[1])).abs() < 1e-12 && (all_kwh - (e[0] + e[1] + e[2])).abs() < 1e-12);
}

#[tokio::test]
async fn full_renewable_matching_zeroes_market_operational_and_leaves_location_and_embodied() {
    let t = TestDb::migrated().await;
    let file = write_temp(
        "market-ok.csv",
        "region,year,supplier_g_co2e_per_kwh,renewable_share,residual_mix_g_co2e_per_kwh,source,vintage\n\
         eu-west-1,2023,,1,380,AIB European Residual Mix,2022\n",
    );
    let imported = factors::import_market(&t.pool, &file).await.unwrap();
    assert_eq!((imported.factor_set, imported.version, imported.values), ("market", 1, 1));
    let mut batch = Batch {
        agent_id: "a".into(),
        sequence: 1,
        facts: vec![in_region(3, "eu-west-1", HOUR_2023), in_region(4, "us-east-1", HOUR_2023)],
        inventory: vec![],
    };
    let sent = batch.facts.clone();
    deliver(&t.pool, &mut batch).await;
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    for (region, f) in [("eu-west-1", &sent[0]), ("us-east-1", &sent[1])] {
        let req = TotalsRequest {
            from_unix_s: HOUR_2023,
            to_unix_s: HOUR_2023 + 3_600,
            group_by: vec![],
            filters: Filters { region: vec![region.into()], ..Filters::default() },
            page: Page::default(),
        };
        let total = engine.totals(&req, HOUR_2023 + 86_400).await.unwrap().total;
        let location = f.energy_kwh * location_factor(region).g_co2e_per_kwh / 1e3;
        assert!((total.operational_location_kg_co2e - location).abs() < 1e-12, "{region}");
        assert!((total.embodied_kg_co2e - f.parts().embodied_g_co2e / 1e3).abs() < 1e-12, "{region}");
        if region == "eu-west-1" {
            assert_eq!(total.operational_market_kg_co2e, 0.0);
            assert!((total.market_kg_co2e - total.embodied_kg_co2e).abs() < 1e-12);
        } else {
            // No market data for us-east-1: market = location, and flagged.
            assert_eq!(total.operational_market_kg_co2e, total.operational_location_kg_co2e);
        }
        total.parts_add_up(1e-12).unwrap();
    }
    let markets: Vec<(String, String)> = sqlx::query_as(
        "SELECT account_id, market_factor_source FROM factor_lineage_monthly ORDER BY market_factor_source",
    )
    .fetch_all(&t.pool)
    .await
    .unwrap();
    let sources: Vec<&str> = markets.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(sources, vec!["location-fallback", "market v1: AIB European Residual Mix"]);
}

#[tokio::test]
async fn bad_factor_files_are_refused_whole_naming_file_line_and_column() {
    let t = TestDb::migrated().await;
    let market = write_temp(
        "market-bad.csv",
        "region,year,supplier_g_co2e_per_kwh,renewable_share,residual_mix_g_co2e_per_kwh,source,vintage\n\
         eu-west-1,2023,,0.5,380,AIB,2022\n\
         eu-west-2,2023,,0.5,-4,AIB,2022\n",
    );
    let err = factors::import_market(&t.pool, &market).await.unwrap_err();
    assert!(matches!(err, ImportError::Invalid(_)), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{market}: line 3, column 5: expected a factor 0..2000 gCO2e/kWh or nothing, found \"-4\"; nothing imported")
    );
    // A good hourly file and a bad one: neither is imported.
    let good = data("ES_2023_hourly.csv");
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines: Vec<&str> = text.split("\r\n").collect();
    let changed = lines[5].replace(",ES,", ",XX-NOWHERE,");
    lines[5] = &changed;
    let bad = write_temp("hourly-bad.csv", &lines.join("\r\n"));
    let err = factors::import_hourly(&t.pool, &[good.clone(), bad.clone()]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{bad}: line 6, column 4: expected the zone of an AWS region, found unknown zone \"XX-NOWHERE\"; nothing imported")
    );
    // A wrong header.
    let header = write_temp("hourly-header.csv", "when,zone\n2023-01-01 00:00:00,ES\n");
    let err = factors::import_hourly(&t.pool, std::slice::from_ref(&header)).await.unwrap_err();
    assert!(err.to_string().starts_with(&format!("{header}: line 1, column ")), "{err}");
    assert_eq!(counts(&t.pool).await, (0, 0, 0), "nothing imported");
    // The good file alone is version 1, again version 2.
    assert_eq!(factors::import_hourly(&t.pool, std::slice::from_ref(&good)).await.unwrap().version, 1);
    assert_eq!(factors::import_hourly(&t.pool, &[good]).await.unwrap().version, 2);
    assert_eq!(counts(&t.pool).await, (2, 17_520, 0));
}

/// An import waits for every transaction that priced facts with the old
/// version (ingest holds the factor-set lock shared from its first
/// statement) before it commits, so no batch priced with the old version
/// commits after the new one is visible and escapes the restatement.
#[tokio::test]
async fn an_import_waits_for_batches_priced_with_the_old_version() {
    let t = TestDb::migrated().await;
    let file = write_temp(
        "market-lock.csv",
        "region,year,supplier_g_co2e_per_kwh,renewable_share,residual_mix_g_co2e_per_kwh,source,vintage\n\
         eu-west-1,2023,,1,380,AIB European Residual Mix,2022\n",
    );
    // A batch in flight, as ingest holds it between pricing and commit.
    let mut in_flight = t.pool.begin().await.unwrap();
    sqlx::query(&format!("SELECT pg_advisory_xact_lock_shared({})", factors::FACTORS_LOCK_SQL))
        .execute(&mut *in_flight)
        .await
        .unwrap();
    let pool = t.pool.clone();
    let import = tokio::spawn(async move { factors::import_market(&pool, &file).await.map(|i| i.version) });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!import.is_finished(), "the import committed while a batch priced with the old version was in flight");
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM market_factors").fetch_one(&t.pool).await.unwrap();
    assert_eq!(versions, 0, "nothing of the new version is visible yet");
    in_flight.commit().await.unwrap();
    assert_eq!(import.await.unwrap().unwrap(), 1);
    let versions: i64 = sqlx::query_scalar("SELECT count(*) FROM market_factors").fetch_one(&t.pool).await.unwrap();
    assert_eq!(versions, 1);
}
