//! The ingest handler in process: a real QUIC server with
//! `canopy_aggregator::delivery::Ingest`, a real transport client sending
//! real frames, and a throwaway PostgreSQL database.

use std::sync::Arc;

use canopy_aggregator::delivery::{DeliveryConfig, Ingest};
use canopy_protocol::{self as wire, Compression, ErrorCode, Reply, encode_batch};
use canopy_transport::{Client, ClientConfig, Server, ServerConfig};

use crate::support::{TestDb, direct_cert, new_ca, now_unix_s};

const ACCOUNT: &str = "123456789012";
const AGENT: &str = "agent-1";

fn record(i: usize, start: i64, revision: u32, compute_kwh: f64) -> wire::EmissionRecord {
    let memory_kwh = 0.5;
    let pue = 1.2;
    // location grid 300 g/kWh: operational = (compute + memory) x PUE x 300.
    let operational = (compute_kwh + memory_kwh) * pue * 300.0;
    wire::EmissionRecord {
        subject: wire::Subject::Resource { arn: format!("arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-{i}") },
        interval_start_unix_s: start,
        interval_end_unix_s: start + 3_600,
        energy_compute_kwh: compute_kwh,
        energy_memory_kwh: memory_kwh,
        energy_storage_kwh: 0.0,
        energy_networking_kwh: 0.0,
        energy_accelerators_kwh: 0.0,
        pue,
        embodied_g_co2e: 10.0,
        operational_location_g_co2e: operational,
        operational_market_g_co2e: 0.0,
        grid_location: wire::GridFactorUsed { g_co2e_per_kwh: 300.0, source: "ccf".into(), vintage: "2024".into() },
        grid_market: wire::GridFactorUsed { g_co2e_per_kwh: 0.0, source: "ccf".into(), vintage: "2024".into() },
        quality: wire::Quality::Estimated,
        low_g_co2e: 0.0,
        // Within the aggregator's plausibility bounds (issue 19).
        high_g_co2e: (operational + 10.0) * 2.0,
        methodology_version: "canopy-test".into(),
        revision,
    }
}

fn frame(account: &str, sequence: u64, emissions: Vec<wire::EmissionRecord>) -> Vec<u8> {
    let batch = wire::Batch {
        agent_id: AGENT.into(),
        account_id: account.into(),
        region: "eu-west-1".into(),
        sequence,
        idempotency_key: wire::IdempotencyKey([sequence as u8; 16]),
        created_at_unix_ms: now_unix_s() * 1_000,
        resources: vec![],
        emissions,
        agent_status: None,
    };
    encode_batch(&batch, Compression::Lz4).expect("encode")
}

struct Fixture {
    db: TestDb,
    server: Server,
    client: Client,
}

async fn fixture() -> Fixture {
    let db = TestDb::migrated().await;
    let ca = new_ca();
    let handler = Arc::new(Ingest::new(db.pool.clone(), DeliveryConfig::new(13), canopy_aggregator::http::system_clock));
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), vec!["localhost".into(), "127.0.0.1".into()]);
    let server = Server::start(config, ca.clone(), handler).expect("server");
    let client_config = ClientConfig::new(server.local_addr(), "localhost".into(), ca.cert_der().clone());
    let client = Client::new(client_config, direct_cert(&ca, AGENT, ACCOUNT)).expect("client");
    Fixture { db, server, client }
}

async fn facts(pool: &sqlx::PgPool) -> Vec<(String, i64, f64)> {
    sqlx::query_as("SELECT record_key, revision, energy_kwh FROM emission_facts_all ORDER BY record_key")
        .fetch_all(pool)
        .await
        .expect("facts")
}

fn hour_ago() -> i64 {
    let now = now_unix_s();
    now - now % 3_600 - 3_600
}

#[tokio::test]
async fn stored_once_resend_is_a_no_op_and_a_revision_replaces() {
    let f = fixture().await;
    let start = hour_ago();
    let first = frame(ACCOUNT, 7, vec![record(1, start, 0, 1.0), record(2, start, 0, 2.0)]);
    match f.client.send(&first).await.expect("send") {
        Reply::Ack(ack) => {
            assert_eq!((ack.sequence, ack.duplicate, ack.idempotency_key.0), (7, false, [7; 16]));
        }
        Reply::Error(e) => panic!("expected an ack, found {}: {}", e.code, e.message),
    }
    // Facility energy = (compute + memory) x PUE: (1.0 + 0.5) x 1.2 = 1.8, (2.0 + 0.5) x 1.2 = 3.0.
    let after_first = facts(&f.db.pool).await;
    assert_eq!(after_first.len(), 2);
    assert!((after_first[0].2 - 1.8).abs() < 1e-12 && (after_first[1].2 - 3.0).abs() < 1e-12, "{after_first:?}");

    match f.client.send(&first).await.expect("resend") {
        Reply::Ack(ack) => assert!(ack.duplicate && ack.sequence == 7, "{ack:?}"),
        Reply::Error(e) => panic!("expected a duplicate ack, found {}: {}", e.code, e.message),
    }
    assert_eq!(facts(&f.db.pool).await, after_first);
    let batches: i64 = sqlx::query_scalar("SELECT count(*) FROM ingested_batches").fetch_one(&f.db.pool).await.unwrap();
    assert_eq!(batches, 1);

    // Revision 1 of record 1 with 4.0 kWh compute: (4.0 + 0.5) x 1.2 = 5.4 kWh replaces 1.8.
    let revised = frame(ACCOUNT, 8, vec![record(1, start, 1, 4.0)]);
    assert!(matches!(f.client.send(&revised).await.expect("send"), Reply::Ack(a) if !a.duplicate));
    let after = facts(&f.db.pool).await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].1, 1);
    assert!((after[0].2 - 5.4).abs() < 1e-12 && (after[1].2 - 3.0).abs() < 1e-12, "{after:?}");
    f.client.close().await;
    f.server.shutdown(std::time::Duration::from_secs(1)).await;
}

/// (agent id, account id, sequence, error code, error, frame).
type QuarantineRow = (String, String, Option<i64>, String, String, Vec<u8>);

#[tokio::test]
async fn bad_batches_are_refused_and_quarantined() {
    let f = fixture().await;
    // Two years old: outside the 13-month retention window.
    let old = hour_ago() - 2 * 365 * 86_400;
    let bad = frame(ACCOUNT, 1, vec![record(1, old, 0, 1.0)]);
    match f.client.send(&bad).await.expect("send") {
        Reply::Error(e) => {
            assert_eq!(e.code, ErrorCode::InvalidBatch);
            assert!(e.message.contains("emissions[0].interval_start_unix_s"), "{}", e.message);
        }
        Reply::Ack(a) => panic!("expected a refusal, found {a:?}"),
    }
    // Another account than the certificate's: refused by the transport, quarantined by the handler.
    let foreign = frame("999999999999", 2, vec![record(1, hour_ago(), 0, 1.0)]);
    match f.client.send(&foreign).await.expect("send") {
        Reply::Error(e) => assert_eq!(e.code, ErrorCode::Unauthorized, "{}", e.message),
        Reply::Ack(a) => panic!("expected a refusal, found {a:?}"),
    }
    // The connection still works after both refusals.
    let good = frame(ACCOUNT, 3, vec![record(1, hour_ago(), 0, 1.0)]);
    assert!(matches!(f.client.send(&good).await.expect("send"), Reply::Ack(_)));

    let rows: Vec<QuarantineRow> = sqlx::query_as(
        // Quarantine keeps a hash and the first 4 KiB (these frames are smaller).
        "SELECT agent_id, account_id, sequence, error_code, error, frame_sample FROM quarantined_batches ORDER BY id",
    )
    .fetch_all(&f.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2), (AGENT, ACCOUNT, Some(1)));
    assert_eq!(rows[0].3, "invalid_batch");
    assert!(rows[0].4.contains("the oldest month retention keeps"), "{}", rows[0].4);
    assert_eq!(rows[0].5, bad);
    assert_eq!(rows[1].3, "unauthorized");
    assert_eq!(rows[1].5, foreign);
    assert_eq!(facts(&f.db.pool).await.len(), 1);
    f.client.close().await;
    f.server.shutdown(std::time::Duration::from_secs(1)).await;
}
