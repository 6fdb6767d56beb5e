//! Protocol v2 end to end through the ingest handler: a v2 batch's resource
//! attributes and agent status land in PostgreSQL and in `/v1/fleet`; a v1
//! batch (an older agent) still stores; an older status never replaces a
//! newer one.

use std::collections::BTreeMap;

use axum::body::{Body, to_bytes};
use axum::http::Request;
use canopy_aggregator::delivery::{DeliveryConfig, Ingest};
use canopy_aggregator::http::router;
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::query::QueryEngine;
use canopy_protocol::{self as wire, Compression, DecodeLimits, Message, Reply};
use canopy_transport::{BatchHandler, InboundBatch, PeerIdentity};
use serde_json::Value;
use sqlx::Row;
use tower::ServiceExt;

use crate::support::TestDb;

const ACCOUNT: &str = "123456789012";
const NOW: i64 = 1_795_900_000;

fn clock() -> i64 {
    NOW
}

fn peer(agent: &str) -> PeerIdentity {
    PeerIdentity {
        agent_id: agent.into(),
        account_id: ACCOUNT.into(),
        role_name: "CanopyAgent".into(),
        caller_arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/CanopyAgent/i-1"),
        not_after_unix_s: NOW + 86_400,
    }
}

fn volume(attributes: BTreeMap<String, String>) -> wire::ResourceRecord {
    wire::ResourceRecord {
        arn: format!("arn:aws:ec2:eu-west-1:{ACCOUNT}:volume/vol-1"),
        service: "ec2".into(),
        resource_type: "volume".into(),
        class: Some("gp3".into()),
        size: Some(wire::Size { value: 100, unit: wire::SizeUnit::Gib }),
        vcpus: None,
        memory_mib: None,
        cpu_architecture: None,
        accelerators: vec![],
        tags: BTreeMap::from([("team".to_owned(), "web".to_owned())]),
        attributes,
        lifecycle: wire::LifecycleState::Running,
        first_seen_unix_s: NOW - 7_200,
        last_seen_unix_s: NOW - 60,
    }
}

fn status(taken_at_unix_ms: i64, backlog: u64, errors: u64, send_failures: u64) -> wire::AgentStatus {
    wire::AgentStatus {
        agent_version: "0.2.0".into(),
        outbox_backlog_frames: backlog,
        outbox_backlog_bytes: backlog * 4_096,
        records_shed_total: 7,
        collection_errors_total: errors,
        send_failures_total: send_failures,
        taken_at_unix_ms,
    }
}

fn batch(agent: &str, sequence: u64, resources: Vec<wire::ResourceRecord>, s: Option<wire::AgentStatus>) -> wire::Batch {
    wire::Batch {
        agent_id: agent.into(),
        account_id: ACCOUNT.into(),
        region: "eu-west-1".into(),
        sequence,
        idempotency_key: wire::IdempotencyKey([sequence as u8; 16]),
        created_at_unix_ms: NOW * 1_000,
        resources,
        emissions: vec![],
        agent_status: s,
    }
}

/// Encodes at `version`, decodes as the transport does, and hands the batch
/// to the ingest handler; returns whether it was acknowledged.
async fn send(ingest: &Ingest, b: &wire::Batch, version: u16) -> bool {
    let frame = wire::encode_batch_at_version(b, version, Compression::Lz4).unwrap();
    let decoded = wire::decode_message(&frame, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.version, version);
    let Message::Batch(batch) = decoded.message else { panic!("expected a batch") };
    let reply = ingest.handle(&peer(&b.agent_id), InboundBatch { frame, version, batch }).await;
    matches!(reply, Reply::Ack(_))
}

async fn fleet(pool: &sqlx::PgPool) -> Value {
    let app = router(QueryEngine::new(pool.clone(), RetentionPolicy::default()), clock, canopy_aggregator::auth::Auth::insecure_open_access());
    let resp = app.oneshot(Request::get(format!("/v1/fleet?now={NOW}")).body(Body::empty()).unwrap()).await.unwrap();
    let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn v2_attributes_and_status_are_stored_and_shown_and_v1_still_stores() {
    let t = TestDb::migrated().await;
    let ingest = Ingest::new(t.pool.clone(), DeliveryConfig::new(13), clock);
    let attributes = BTreeMap::from([
        ("iops".to_owned(), "3000".to_owned()),
        ("attached_to".to_owned(), "i-0abc".to_owned()),
    ]);
    let taken_ms = (NOW - 30) * 1_000;
    assert!(send(&ingest, &batch("agent-v2", 1, vec![volume(attributes)], Some(status(taken_ms, 3, 2, 5))), 2).await);

    let (iops, attached, count): (String, String, i64) = sqlx::query_as(
        "SELECT attributes ->> 'iops', attributes ->> 'attached_to', (SELECT count(*) FROM jsonb_object_keys(attributes))
         FROM resources",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!((iops.as_str(), attached.as_str(), count), ("3000", "i-0abc", 2));
    let row = sqlx::query(
        "SELECT agent_version, outbox_backlog_frames, outbox_backlog_bytes, records_shed_total,
                collection_errors_total, send_failures_total, (extract(epoch FROM taken_at) * 1000)::bigint AS taken_ms,
                batch_sequence, account_id, region
         FROM agent_status WHERE agent_id = 'agent-v2'",
    )
    .fetch_one(&t.pool)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("agent_version"), "0.2.0");
    assert_eq!(
        (
            row.get::<i64, _>("outbox_backlog_frames"),
            row.get::<i64, _>("outbox_backlog_bytes"),
            row.get::<i64, _>("records_shed_total"),
            row.get::<i64, _>("collection_errors_total"),
            row.get::<i64, _>("send_failures_total"),
            row.get::<i64, _>("taken_ms"),
            row.get::<i64, _>("batch_sequence"),
        ),
        (3, 12_288, 7, 2, 5, taken_ms, 1)
    );
    assert_eq!((row.get::<String, _>("account_id"), row.get::<String, _>("region")), (ACCOUNT.into(), "eu-west-1".into()));

    // A resend of an older snapshot (a later sequence, but taken earlier)
    // does not replace it; a newer one does.
    assert!(send(&ingest, &batch("agent-v2", 2, vec![], Some(status(taken_ms - 60_000, 9, 9, 9))), 2).await);
    let backlog: i64 = sqlx::query_scalar("SELECT outbox_backlog_frames FROM agent_status").fetch_one(&t.pool).await.unwrap();
    assert_eq!(backlog, 3);
    assert!(send(&ingest, &batch("agent-v2", 3, vec![], Some(status(taken_ms + 10_000, 1, 4, 6))), 2).await);
    let backlog: i64 = sqlx::query_scalar("SELECT outbox_backlog_frames FROM agent_status").fetch_one(&t.pool).await.unwrap();
    assert_eq!(backlog, 1);

    // An older agent: a v1 frame stores its inventory with no attributes and no status.
    let mut old = volume(BTreeMap::new());
    old.arn = format!("arn:aws:ec2:eu-west-1:{ACCOUNT}:volume/vol-2");
    assert!(send(&ingest, &batch("agent-v1", 1, vec![old], None), 1).await);
    let attrs: String =
        sqlx::query_scalar("SELECT attributes::text FROM resources WHERE resource_id LIKE '%vol-2'").fetch_one(&t.pool).await.unwrap();
    assert_eq!(attrs, "{}");
    let statuses: i64 = sqlx::query_scalar("SELECT count(*) FROM agent_status").fetch_one(&t.pool).await.unwrap();
    assert_eq!(statuses, 1);

    // The fleet view answers the newest status, and null for the v1 agent.
    let fleet = fleet(&t.pool).await;
    let cells = fleet["cells"].as_array().unwrap();
    let cell = |agent: &str| cells.iter().find(|c| c["agent_id"] == agent).unwrap_or_else(|| panic!("{agent}: {fleet}"));
    let v2 = cell("agent-v2");
    assert_eq!(v2["agent_version"], "0.2.0");
    assert_eq!((v2["outbox_backlog"].as_i64(), v2["outbox_backlog_bytes"].as_i64()), (Some(1), Some(4_096)));
    assert_eq!((v2["collection_errors"].as_i64(), v2["send_failures"].as_i64()), (Some(4), Some(6)));
    assert_eq!(v2["error_count"].as_i64(), Some(10));
    assert_eq!(v2["records_shed"].as_i64(), Some(7));
    assert_eq!(v2["status_taken_at_unix_ms"].as_i64(), Some(taken_ms + 10_000));
    let v1 = cell("agent-v1");
    assert_eq!((v1["agent_version"].clone(), v1["error_count"].clone()), (Value::Null, Value::Null));
}
