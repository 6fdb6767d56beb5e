//! Issue 13: one API answer, one snapshot. With ingest committing batches
//! in another task, every totals answer's rows must add up to its reported
//! total (and its quality breakdown) exactly: they are read in one
//! REPEATABLE READ transaction. Figures are multiples of 1/2, so the sums
//! are exact in any order.
//!
//! A loop that detects disagreement: before the fix the rows and the
//! breakdown were two statements on pooled connections, and an ingest
//! commit between them showed in one and not the other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::model::{Batch, FactRow};
use canopy_aggregator::query::{Dimension, Filters, Page, QueryEngine, TotalsRequest};
use canopy_aggregator::time::HOUR_S;

use crate::support::{T0, TestDb, fact, seed_accounts, store, store_unsettled};

fn half_kwh(resource: u64, start: i64) -> FactRow {
    FactRow {
        energy_kwh: 0.5,
        location_g_co2e: 64.0,
        market_g_co2e: 32.0,
        low_g_co2e: 16.0,
        high_g_co2e: 128.0,
        accounting: None,
        ..fact(resource, start, 300, 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_and_total_come_from_one_snapshot_under_concurrent_ingest() {
    let t = TestDb::migrated().await;
    seed_accounts(&t.pool).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (pool, stop) = (t.pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sequence = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                sequence += 1;
                // Ten new records per batch, spread over teams and quality
                // flags, in 5-minute slots of the queried hour.
                let facts: Vec<FactRow> =
                    (0..10).map(|i| half_kwh(sequence * 10 + i, T0 + ((sequence + i) % 12) as i64 * 300)).collect();
                // Unsettled: on the TimescaleDB path a settle per batch would
                // slow the writer to a handful of batches; the aggregates are
                // real-time, so every answer still sees the committed facts.
                store_unsettled(&pool, &Batch { agent_id: "writer".into(), sequence, facts, inventory: vec![] }).await;
            }
            sequence
        })
    };
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let mut totals_seen = std::collections::BTreeSet::new();
    let mut disagreements = Vec::new();
    for i in 0..300 {
        // Team-only (team rollups), account-level and org grains in turn.
        let group_by = [vec![Dimension::Team], vec![Dimension::Account], vec![Dimension::Region, Dimension::Service]]
            [i % 3]
            .clone();
        let req = TotalsRequest {
            from_unix_s: T0,
            to_unix_s: T0 + HOUR_S,
            group_by,
            filters: Filters::default(),
            page: Page { limit: 1_000, offset: 0 },
        };
        let resp = engine.totals(&req, T0 + HOUR_S).await.unwrap();
        let rows_count: i64 = resp.rows.iter().map(|r| r.metrics.fact_count).sum();
        let rows_kwh: f64 = resp.rows.iter().map(|r| r.metrics.energy_kwh).sum();
        let quality_count: i64 = resp.by_quality.iter().map(|q| q.metrics.fact_count).sum();
        if rows_count != resp.total.fact_count || rows_kwh != resp.total.energy_kwh || quality_count != rows_count {
            disagreements.push((i, rows_count, rows_kwh, resp.total.fact_count, resp.total.energy_kwh));
        }
        totals_seen.insert(resp.total.fact_count);
    }
    stop.store(true, Ordering::Relaxed);
    let batches = writer.await.unwrap();
    // The ingest really ran during the answers (else the test shows nothing).
    assert!(batches > 20 && totals_seen.len() > 20, "{batches} batches, {} distinct totals", totals_seen.len());
    assert!(
        disagreements.is_empty(),
        "rows disagreed with the total in {} of 300 answers: {disagreements:?}",
        disagreements.len()
    );
}

/// Deterministic: a write committed between two statements of one snapshot
/// is seen by neither; the next snapshot sees it.
#[tokio::test]
async fn a_write_between_two_statements_of_a_snapshot_is_not_seen() {
    let t = TestDb::migrated().await;
    seed_accounts(&t.pool).await;
    let first: Vec<FactRow> = (0..4).map(|i| half_kwh(i, T0 + i as i64 * 300)).collect();
    store(&t.pool, &Batch { agent_id: "w".into(), sequence: 1, facts: first, inventory: vec![] }).await;
    let engine = QueryEngine::new(t.pool.clone(), RetentionPolicy::default());
    let req = TotalsRequest {
        from_unix_s: T0,
        to_unix_s: T0 + HOUR_S,
        group_by: vec![Dimension::Team],
        filters: Filters::default(),
        page: Page::default(),
    };
    let mut snapshot = engine.snapshot(T0 + HOUR_S).await.unwrap();
    let before = snapshot.totals(&req).await.unwrap();
    assert_eq!((before.total.fact_count, before.total.energy_kwh), (4, 2.0));
    // Another connection commits a batch in the same hour.
    let more: Vec<FactRow> = (10..16).map(|i| half_kwh(i, T0 + 600)).collect();
    store(&t.pool, &Batch { agent_id: "w".into(), sequence: 2, facts: more, inventory: vec![] }).await;
    let again = snapshot.totals(&req).await.unwrap();
    assert_eq!(again, before);
    snapshot.finish().await.unwrap();
    let after = engine.totals(&req, T0 + HOUR_S).await.unwrap();
    assert_eq!((after.total.fact_count, after.total.energy_kwh), (10, 5.0));
    assert_eq!(after.rows.iter().map(|r| r.metrics.fact_count).sum::<i64>(), 10);
}
