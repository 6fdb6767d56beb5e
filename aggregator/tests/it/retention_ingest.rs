//! Retention against ingest through the real handler (`delivery::Ingest`),
//! issue 13: a partition dropped while a batch writes into it (case 4, two
//! real sessions) and records accepted past the horizon retention keeps
//! (case 5).

use std::time::Duration;

use canopy_aggregator::delivery::{DeliveryConfig, Ingest};
use canopy_aggregator::maintenance::{self, RetentionPolicy, partition_name};
use canopy_aggregator::time::{DAY_S, HOUR_S, days_from_civil};
use canopy_protocol::{self as wire, Compression, DecodeLimits, ErrorCode, Message, Reply};
use canopy_transport::{BatchHandler, InboundBatch, PeerIdentity};
use sqlx::PgConnection;

use crate::support::TestDb;

const ACCOUNT: &str = "123456789012";

fn peer() -> PeerIdentity {
    PeerIdentity {
        agent_id: "agent-1".into(),
        account_id: ACCOUNT.into(),
        role_name: "CanopyAgent".into(),
        caller_arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/CanopyAgent/i-1"),
        not_after_unix_s: i64::MAX,
    }
}

fn record(resource: &str, start_unix_s: i64, compute_kwh: f64, revision: u32) -> wire::EmissionRecord {
    let factor = |g| wire::GridFactorUsed { g_co2e_per_kwh: g, source: "ccf".into(), vintage: "2024".into() };
    wire::EmissionRecord {
        subject: wire::Subject::Resource { arn: format!("arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/{resource}") },
        interval_start_unix_s: start_unix_s,
        interval_end_unix_s: start_unix_s + HOUR_S,
        energy_compute_kwh: compute_kwh,
        energy_memory_kwh: 0.0,
        energy_storage_kwh: 0.0,
        energy_networking_kwh: 0.0,
        energy_accelerators_kwh: 0.0,
        pue: 1.0,
        embodied_g_co2e: 0.0,
        operational_location_g_co2e: compute_kwh * 300.0,
        operational_market_g_co2e: compute_kwh * 150.0,
        grid_location: factor(300.0),
        grid_market: factor(150.0),
        quality: wire::Quality::Measured,
        low_g_co2e: compute_kwh * 240.0,
        high_g_co2e: compute_kwh * 375.0,
        methodology_version: "canopy-1".into(),
        revision,
    }
}

fn batch(sequence: u64, emissions: Vec<wire::EmissionRecord>, resources: Vec<wire::ResourceRecord>) -> wire::Batch {
    wire::Batch {
        agent_id: "agent-1".into(),
        account_id: ACCOUNT.into(),
        region: "eu-west-1".into(),
        sequence,
        idempotency_key: wire::IdempotencyKey([sequence as u8; 16]),
        created_at_unix_ms: 0,
        resources,
        emissions,
        agent_status: None,
    }
}

fn instance(resource: &str, seen_unix_s: i64) -> wire::ResourceRecord {
    wire::ResourceRecord {
        arn: format!("arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/{resource}"),
        service: "ec2".into(),
        resource_type: "instance".into(),
        class: Some("m5.large".into()),
        size: None,
        vcpus: Some(2.0),
        memory_mib: Some(8_192),
        cpu_architecture: None,
        accelerators: vec![],
        tags: Default::default(),
        attributes: Default::default(),
        lifecycle: wire::LifecycleState::Running,
        first_seen_unix_s: seen_unix_s,
        last_seen_unix_s: seen_unix_s,
    }
}

/// Encodes, decodes as the transport does and hands the batch to `ingest`.
async fn send(ingest: &Ingest, b: &wire::Batch) -> Reply {
    let version = wire::CURRENT_VERSION;
    let frame = wire::encode_batch_at_version(b, version, Compression::Lz4).unwrap();
    let decoded = wire::decode_message(&frame, &DecodeLimits::default()).unwrap();
    let Message::Batch(batch) = decoded.message else { panic!("expected a batch") };
    ingest.handle(&peer(), InboundBatch { frame, version, batch }).await
}

async fn scalar_f64(pool: &sqlx::PgPool, sql: &str) -> f64 {
    sqlx::query_scalar::<_, Option<f64>>(sql).fetch_one(pool).await.unwrap().unwrap_or(0.0)
}

async fn quarantined(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM quarantined_batches").fetch_one(pool).await.unwrap()
}

/// Polls `sql` (a count) until it is positive or `done` says to stop.
async fn wait_until(pool: &sqlx::PgPool, sql: &str, done: impl Fn() -> bool) {
    for _ in 0..600 {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.unwrap();
        if n > 0 || done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {sql}");
}

/// Ungranted locks in this test's database (other tests share the server).
const HERE: &str = "SELECT count(*) FROM pg_locks WHERE NOT granted \
     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/// 2026-11-20T12:00Z: the 5-minute horizon is 2026-10-16.
const RACE_NOW: i64 = 20_777 * DAY_S + 12 * HOUR_S;

fn race_clock() -> i64 {
    RACE_NOW
}

/// Issue 13, case 4: retention drops the 5-minute partitions of late data
/// (36 days old, within the facts' 13 months) while a batch writing into
/// them is in flight. Session 1 is the batch (held after its first
/// statement by a lock on `resources`), session 2 is `maintenance::run`.
/// Before the fix the drop went through, the batch failed with 23514 "no
/// partition of relation found for row" and was quarantined for good; now
/// retention waits for the batch, the batch is acknowledged and stored
/// exactly once, and nothing is quarantined.
#[tokio::test]
async fn retention_waits_for_a_batch_writing_into_a_partition_it_drops() {
    if crate::support::skip_unless_native("retention_waits_for_a_batch_writing_into_a_partition_it_drops", "it drops native partitions under ingest; TimescaleDB drops chunks through its own policies") {
        return;
    }
    let t = TestDb::migrated().await;
    let policy = RetentionPolicy::default();
    maintenance::run(&t.pool, &policy, RACE_NOW).await.unwrap();
    let late = RACE_NOW - RACE_NOW % DAY_S - 36 * DAY_S + 10 * HOUR_S; // 2026-10-15T10:00Z
    let created: i32 = sqlx::query_scalar("SELECT canopy_ensure_time_partitions(ARRAY[$1::bigint])")
        .bind(late)
        .fetch_one(&t.pool)
        .await
        .unwrap();
    // October's months (facts, segments, hourly and org hourly rollups; the
    // run created November on) and the record's 5-minute day (account and
    // org rollups), which the run had not created (older than 35 days).
    assert_eq!(created, 6);

    let mut blocker: PgConnection = t.pool.acquire().await.unwrap().detach();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE resources IN SHARE MODE").execute(&mut blocker).await.unwrap();

    let ingest = std::sync::Arc::new(Ingest::new(t.pool.clone(), DeliveryConfig::new(13), race_clock));
    let b = batch(1, vec![record("i-1", late, 2.5, 1)], vec![instance("i-1", RACE_NOW - 60)]);
    let sender = {
        let (ingest, b) = (ingest.clone(), b.clone());
        tokio::spawn(async move { send(&ingest, &b).await })
    };
    // Session 1 waits on `resources`, its partitions checked.
    wait_until(&t.pool, &format!("{HERE} AND relation = 'resources'::regclass"), || false).await;

    let retention = {
        let pool = t.pool.clone();
        tokio::spawn(async move { maintenance::run(&pool, &policy, RACE_NOW).await })
    };
    // Session 2 either finished its drops (the race) or waits for session 1.
    wait_until(&t.pool, &format!("{HERE} AND locktype = 'advisory'"), || retention.is_finished()).await;
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();

    let reply = sender.await.unwrap();
    let report = retention.await.unwrap().unwrap();
    assert!(matches!(&reply, Reply::Ack(ack) if !ack.duplicate), "the batch must be acknowledged, found {reply:?}");
    assert_eq!(quarantined(&t.pool).await, 0);
    let mut dropped = report.partitions_dropped.clone();
    dropped.sort();
    assert_eq!(dropped, vec![partition_name("org_rollup_5m", late), partition_name("rollup_5m", late)]);

    // Stored exactly once, at every level retention keeps; a resend is a duplicate.
    let resent = send(&ingest, &b).await;
    assert!(matches!(&resent, Reply::Ack(ack) if ack.duplicate), "{resent:?}");
    maintenance::drain_org_rollups(&t.pool).await.unwrap();
    for (table, expected) in [
        ("emission_facts_all", 2.5),
        ("rollup_hourly", 2.5),
        ("rollup_daily", 2.5),
        ("rollup_monthly", 2.5),
        ("org_rollup_hourly", 2.5),
        ("org_rollup_daily", 2.5),
        ("org_team_rollup_monthly", 2.5),
        // Dropped after the batch committed (the org 5-minute day comes back
        // with the drain of the batch's pending delta, as for any late data;
        // the next run drops it again and queries never read it).
        ("rollup_5m", 0.0),
    ] {
        assert_eq!(scalar_f64(&t.pool, &format!("SELECT sum(energy_kwh) FROM {table}")).await, expected, "{table}");
    }
    let facts: i64 = sqlx::query_scalar("SELECT count(*) FROM emission_facts_all").fetch_one(&t.pool).await.unwrap();
    assert_eq!(facts, 1);
}

/// 2026-12-07T01:00Z: retention keeps facts from 2025-11-01 on; the old
/// window (13 x 31 days) reached back to 2025-10-30T01:00Z.
const LATE_NOW: i64 = 20_794 * DAY_S + HOUR_S;

fn late_clock() -> i64 {
    LATE_NOW
}

/// Issue 13, case 5: on 2026-12-07, records of 30-31 Oct 2025 were accepted,
/// deleted by the next maintenance run while their share stayed in the
/// daily and monthly rollups, and a higher revision then found no stored
/// copy and was counted again (2.5 kWh where 1.5 is right). Now ingest
/// refuses them (the agent counts the refused batch) and supersedes exactly
/// what retention keeps.
#[tokio::test]
async fn records_past_the_retention_horizon_are_refused_not_double_counted() {
    if crate::support::skip_unless_native("records_past_the_retention_horizon_are_refused_not_double_counted", "it drops native partitions under ingest; TimescaleDB drops chunks through its own policies") {
        return;
    }
    let t = TestDb::migrated().await;
    let day = |y, m, d| days_from_civil(y, m, d) * DAY_S;
    assert_eq!(LATE_NOW, day(2026, 12, 7) + HOUR_S);
    let policy = RetentionPolicy::default();
    let ingest = Ingest::new(t.pool.clone(), DeliveryConfig::new(13), late_clock);
    let (oct30, oct31, nov1) = (day(2025, 10, 30) + 12 * HOUR_S, day(2025, 10, 31) + 12 * HOUR_S, day(2025, 11, 1));

    let old_first =
        send(&ingest, &batch(1, vec![record("i-1", oct30, 1.0, 1), record("i-1", oct31, 1.0, 1)], vec![])).await;
    let kept_first = send(&ingest, &batch(2, vec![record("i-2", nov1, 1.0, 1)], vec![])).await;
    maintenance::run(&t.pool, &policy, LATE_NOW).await.unwrap();
    let old_again =
        send(&ingest, &batch(3, vec![record("i-1", oct30, 1.5, 2), record("i-1", oct31, 1.5, 2)], vec![])).await;
    let kept_again = send(&ingest, &batch(4, vec![record("i-2", nov1, 1.5, 2)], vec![])).await;
    maintenance::drain_org_rollups(&t.pool).await.unwrap();

    // October 2025 holds nothing at any level; 1 Nov 2025 holds revision 2 only.
    let oct = format!("bucket_start >= to_timestamp({}) AND bucket_start < to_timestamp({})", day(2025, 10, 1), nov1);
    let nov = format!("bucket_start >= to_timestamp({nov1}) AND bucket_start < to_timestamp({})", day(2025, 12, 1));
    for table in ["rollup_daily", "rollup_monthly", "org_rollup_daily", "org_rollup_monthly", "org_team_rollup_daily"] {
        assert_eq!(
            scalar_f64(&t.pool, &format!("SELECT sum(energy_kwh) FROM {table} WHERE {oct}")).await,
            0.0,
            "{table}"
        );
        assert_eq!(
            scalar_f64(&t.pool, &format!("SELECT sum(energy_kwh) FROM {table} WHERE {nov}")).await,
            1.5,
            "{table}"
        );
    }
    assert_eq!(scalar_f64(&t.pool, "SELECT sum(energy_kwh) FROM emission_facts_all").await, 1.5);
    for reply in [&old_first, &old_again] {
        let Reply::Error(e) = reply else { panic!("expected a refusal, found {reply:?}") };
        assert_eq!(e.code, ErrorCode::InvalidBatch);
        assert!(
            e.message.starts_with(&format!(
                "emissions[0].interval_start_unix_s: expected at or after {} (2025-11-01T00:00:00Z, the start of the oldest month retention keeps), found {oct30} (2025-10-30T12:00:00Z)",
                day(2025, 11, 1)
            )),
            "{}",
            e.message
        );
    }
    assert!(matches!(kept_first, Reply::Ack(_)) && matches!(kept_again, Reply::Ack(_)));
    assert_eq!(quarantined(&t.pool).await, 2);
    let metrics = ingest.metrics().render(None);
    assert!(metrics.contains("canopy_aggregator_batches_past_retention_total 2\n"), "{metrics}");
    assert!(metrics.contains("canopy_aggregator_batches_rejected_total 2\n"), "{metrics}");
}

/// Issue 13, case 4, the classification: a partition dropped under a batch
/// by hand (plain SQL, without the retention lock) fails the batch with
/// 23514 "no partition of relation found for row". That is the server's
/// doing, so the batch is answered `Unavailable` with a retry delay, not
/// quarantined; the agent's resend is stored once. Before the fix SQLSTATE
/// class 23 counted as bad input: `InvalidBatch`, quarantined for good.
#[tokio::test]
async fn a_partition_dropped_by_hand_under_a_batch_is_retried_not_quarantined() {
    if crate::support::skip_unless_native("a_partition_dropped_by_hand_under_a_batch_is_retried_not_quarantined", "it drops native partitions under ingest; TimescaleDB drops chunks through its own policies") {
        return;
    }
    let t = TestDb::migrated().await;
    maintenance::run(&t.pool, &RetentionPolicy::default(), RACE_NOW).await.unwrap();
    let late = RACE_NOW - RACE_NOW % DAY_S - 36 * DAY_S + 10 * HOUR_S; // 2026-10-15T10:00Z
    sqlx::query("SELECT canopy_ensure_time_partitions(ARRAY[$1::bigint])").bind(late).execute(&t.pool).await.unwrap();

    let mut blocker: PgConnection = t.pool.acquire().await.unwrap().detach();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE resources IN SHARE MODE").execute(&mut blocker).await.unwrap();
    let ingest = std::sync::Arc::new(Ingest::new(t.pool.clone(), DeliveryConfig::new(13), race_clock));
    let b = batch(1, vec![record("i-1", late, 2.5, 1)], vec![instance("i-1", RACE_NOW - 60)]);
    let sender = {
        let (ingest, b) = (ingest.clone(), b.clone());
        tokio::spawn(async move { send(&ingest, &b).await })
    };
    wait_until(&t.pool, &format!("{HERE} AND relation = 'resources'::regclass"), || false).await;
    sqlx::query(&format!("DROP TABLE {}", partition_name("rollup_5m", late))).execute(&t.pool).await.unwrap();
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();

    let reply = sender.await.unwrap();
    let Reply::Error(e) = &reply else { panic!("expected a retry reply, found {reply:?}") };
    assert_eq!((e.code, e.retry_after_s), (ErrorCode::Unavailable, Some(2)), "{}", e.message);
    assert!(e.message.contains("no partition of relation"), "{}", e.message);
    assert_eq!(quarantined(&t.pool).await, 0);

    // The resend finds the day missing, creates it and stores the batch once.
    let resent = send(&ingest, &b).await;
    assert!(matches!(&resent, Reply::Ack(ack) if !ack.duplicate), "{resent:?}");
    for table in ["emission_facts_all", "rollup_5m", "rollup_hourly", "rollup_daily"] {
        assert_eq!(scalar_f64(&t.pool, &format!("SELECT sum(energy_kwh) FROM {table}")).await, 2.5, "{table}");
    }
}
