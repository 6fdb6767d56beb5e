//! Issue 19, section 1: a hostile enrolled agent against the real
//! aggregator (the `Ingest` handler on the transport `Server`, PostgreSQL,
//! real QUIC). Each attack is refused or bounded, and a well-behaved agent
//! of another account delivering beside it loses nothing (stored counts are
//! asserted). Certificates are issued straight from the CA (as the
//! simulated agents do); the idle-enrolment attack needs no STS because
//! idle connections never reach it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use canopy_aggregator::delivery::{DeliveryConfig, Ingest};
use canopy_aggregator::http::system_clock;
use canopy_aggregator::maintenance::drain_org_rollups;
use canopy_protocol::{
    self as wire, Compression, CURRENT_VERSION, ErrorCode, HEADER_LEN, IdempotencyKey, MAGIC, Reply, encode_batch,
};
use canopy_transport::ca::generate_agent_key_and_csr;
use canopy_transport::tls::{ALPN_BATCH, ALPN_ENROLL, QuicTuning, client_config};
use canopy_transport::{
    AgentCertificate, AllowedAccounts, CertificateAuthority, CertifiedKey, ChallengePin, Client, ClientConfig,
    EnrollConfig, EnrollmentPolicy, EnrollmentSession, PeerIdentity, Server, ServerConfig,
};
use sqlx::PgPool;

use crate::support::TestDb;

const ATTACKER: &str = "111111111111";
const VICTIM: &str = "222222222222";
const REGION: &str = "eu-west-1";
const SERVER_ID: &str = "canopy-hostile-it";
/// Never contacted: no attack here gets as far as STS.
const STS_URL: &str = "http://127.0.0.1:9";

struct Env {
    db: TestDb,
    ca: Arc<CertificateAuthority>,
    server: Server,
    allowed: AllowedAccounts,
    ingest: Arc<Ingest>,
}

async fn env(tune: impl FnOnce(&mut ServerConfig, &mut DeliveryConfig)) -> Env {
    let db = TestDb::migrated().await;
    let ca = Arc::new(CertificateAuthority::generate("canopy hostile ca").unwrap());
    let allowed = AllowedAccounts::new([ATTACKER.to_owned(), VICTIM.to_owned()]).unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), vec!["localhost".into()]);
    let mut policy = EnrollmentPolicy::new(SERVER_ID, allowed.clone(), "canopy-agent-{region}", STS_URL, "us-east-1");
    policy.hello_timeout = Duration::from_millis(800);
    config.enrollment = Some(policy);
    config.frame_stall_timeout = Duration::from_millis(1_500);
    let mut delivery = DeliveryConfig::new(13);
    tune(&mut config, &mut delivery);
    let ingest = Arc::new(Ingest::new(db.pool.clone(), delivery, system_clock));
    let server = Server::start(config, ca.clone(), ingest.clone()).unwrap();
    Env { db, ca, server, allowed, ingest }
}

fn certificate(ca: &CertificateAuthority, agent_id: &str, account_id: &str) -> AgentCertificate {
    let (key_der, csr_der) = generate_agent_key_and_csr(agent_id).unwrap();
    let now = SystemTime::now();
    let lifetime = Duration::from_secs(3_600);
    let identity = PeerIdentity {
        agent_id: agent_id.into(),
        account_id: account_id.into(),
        role_name: format!("canopy-agent-{REGION}"),
        caller_arn: format!("arn:aws:sts::{account_id}:assumed-role/canopy-agent-{REGION}/i-1"),
        not_after_unix_s: 0,
    };
    let cert_der = ca.issue_client_certificate(&csr_der, &identity, now, lifetime).unwrap();
    let identity = canopy_transport::identity::identity_from_certificate(&cert_der).unwrap();
    AgentCertificate { key: CertifiedKey { cert_der, key_pkcs8_der: key_der }, identity, received_at: now, lifetime }
}

fn client(env: &Env, agent_id: &str, account_id: &str) -> Client {
    let mut config = ClientConfig::new(env.server.local_addr(), "localhost".into(), env.ca.cert_der().clone());
    config.retry.max_retries = 0;
    Client::new(config, certificate(&env.ca, agent_id, account_id)).unwrap()
}

/// StackSet agent ids are predictable: `canopy-agent-<account>-<region>`.
fn stackset_agent_id(account: &str) -> String {
    format!("canopy-agent-{account}-{REGION}")
}

/// The last whole hour.
fn last_hour() -> i64 {
    let now = system_clock();
    now - now % 3_600 - 3_600
}

fn record(account: &str, i: usize, subject: Option<wire::GroupKey>, kwh: f64) -> wire::EmissionRecord {
    let start = last_hour();
    let g = |v: f64| wire::GridFactorUsed { g_co2e_per_kwh: v, source: "ccf".into(), vintage: "2024".into() };
    wire::EmissionRecord {
        subject: match subject {
            Some(group) => wire::Subject::Group(group),
            None => wire::Subject::Resource { arn: format!("arn:aws:ec2:{REGION}:{account}:instance/i-{i:017x}") },
        },
        interval_start_unix_s: start,
        interval_end_unix_s: start + 3_600,
        energy_compute_kwh: kwh,
        energy_memory_kwh: 0.0,
        energy_storage_kwh: 0.0,
        energy_networking_kwh: 0.0,
        energy_accelerators_kwh: 0.0,
        pue: 1.0,
        embodied_g_co2e: 0.0,
        operational_location_g_co2e: kwh * 300.0,
        operational_market_g_co2e: kwh * 300.0,
        grid_location: g(300.0),
        grid_market: g(300.0),
        quality: wire::Quality::Estimated,
        low_g_co2e: kwh * 200.0,
        high_g_co2e: kwh * 400.0,
        methodology_version: "m".into(),
        revision: 0,
    }
}

fn batch(agent_id: &str, account: &str, sequence: u64, key_seed: u8, emissions: Vec<wire::EmissionRecord>) -> wire::Batch {
    let mut key = [key_seed; 16];
    key[..8].copy_from_slice(&sequence.to_le_bytes());
    wire::Batch {
        agent_id: agent_id.into(),
        account_id: account.into(),
        region: REGION.into(),
        sequence,
        idempotency_key: IdempotencyKey(key),
        created_at_unix_ms: system_clock() * 1_000,
        resources: vec![],
        emissions,
        agent_status: None,
    }
}

/// `records` plausible per-resource records of 0.5 kWh each, numbered from `first`.
fn good_records(account: &str, first: usize, records: usize) -> Vec<wire::EmissionRecord> {
    (first..first + records).map(|i| record(account, i, None, 0.5)).collect()
}

fn encode(b: &wire::Batch) -> Vec<u8> {
    encode_batch(b, Compression::None).unwrap()
}

fn expect_ack(reply: &Reply) -> bool {
    match reply {
        Reply::Ack(ack) => ack.duplicate,
        Reply::Error(e) => panic!("expected an ack, found {}: {}", e.code, e.message),
    }
}

fn expect_refusal(reply: &Reply, code: ErrorCode, text: &str) -> String {
    match reply {
        Reply::Error(e) => {
            assert_eq!(e.code, code, "{}", e.message);
            assert!(e.message.contains(text), "{:?} lacks {text:?}", e.message);
            e.message.clone()
        }
        Reply::Ack(ack) => panic!("expected a refusal containing {text:?}, found an ack of {}", ack.sequence),
    }
}

/// (facts, summed kWh) stored for `account`.
async fn stored(pool: &PgPool, account: &str) -> (i64, f64) {
    sqlx::query_as("SELECT count(*), COALESCE(sum(energy_kwh), 0) FROM emission_facts_all WHERE account_id = $1")
        .bind(account)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The well-behaved victim agent: sends `batches` batches of 10 records
/// from `first_sequence`; each must be acknowledged as new.
async fn victim_delivers(victim: &Client, first_sequence: u64, batches: u64) {
    let id = stackset_agent_id(VICTIM);
    for s in first_sequence..first_sequence + batches {
        let b = batch(&id, VICTIM, s, 0xB0, good_records(VICTIM, s as usize * 10, 10));
        let reply = victim.send(&encode(&b)).await.unwrap();
        assert!(!expect_ack(&reply), "victim batch {s} was acknowledged as a duplicate: dropped from its outbox");
    }
}

/// Takeover: account A enrols as B's predictable StackSet agent id and
/// sends B's next sequence numbers first; B's batches must still be stored
/// (not acked as duplicates), a re-sent sequence with another idempotency
/// key is refused, and a far-future status cannot freeze B's status row.
#[tokio::test]
async fn an_agent_id_takeover_cannot_swallow_another_accounts_batches() {
    let env = env(|_, _| {}).await;
    let victim_id = stackset_agent_id(VICTIM);
    let attacker = client(&env, &victim_id, ATTACKER);
    for s in 1..=3 {
        let b = batch(&victim_id, ATTACKER, s, 0xA0, good_records(ATTACKER, s as usize, 1));
        expect_ack(&attacker.send(&encode(&b)).await.unwrap());
    }
    let victim = client(&env, &victim_id, VICTIM);
    victim_delivers(&victim, 1, 3).await;
    assert_eq!(stored(&env.db.pool, VICTIM).await, (30, 15.0));
    assert_eq!(stored(&env.db.pool, ATTACKER).await, (3, 1.5));

    // The same sequence re-sent with the same key is a duplicate; with
    // another key it is an error, never a duplicate.
    let again = batch(&victim_id, VICTIM, 2, 0xB0, good_records(VICTIM, 20, 10));
    assert!(expect_ack(&victim.send(&encode(&again)).await.unwrap()));
    let forged = batch(&victim_id, VICTIM, 2, 0xCC, good_records(VICTIM, 900, 10));
    let message =
        expect_refusal(&victim.send(&encode(&forged)).await.unwrap(), ErrorCode::InvalidBatch, "idempotency_key");
    assert!(message.contains("sequence 2 of agent \"canopy-agent-222222222222-eu-west-1\" was stored with"), "{message}");
    assert_eq!(stored(&env.db.pool, VICTIM).await, (30, 15.0));

    // A status taken far in the future is refused: it would freeze the row.
    let mut future = batch(&victim_id, ATTACKER, 4, 0xA0, vec![]);
    future.agent_status = Some(wire::AgentStatus {
        agent_version: "evil".into(),
        outbox_backlog_frames: 0,
        outbox_backlog_bytes: 0,
        records_shed_total: 0,
        collection_errors_total: 0,
        send_failures_total: 0,
        taken_at_unix_ms: 4_102_444_800_000,
    });
    expect_refusal(&attacker.send(&encode(&future)).await.unwrap(), ErrorCode::InvalidBatch, "agent_status.taken_at_unix_ms");
    let mut honest = batch(&victim_id, VICTIM, 4, 0xB0, vec![]);
    honest.agent_status = Some(wire::AgentStatus { agent_version: "1.0.0".into(), taken_at_unix_ms: system_clock() * 1_000, ..future.agent_status.clone().unwrap() });
    expect_ack(&victim.send(&encode(&honest)).await.unwrap());
    let status: Vec<(String, String)> = sqlx::query_as("SELECT account_id, agent_version FROM agent_status WHERE agent_id = $1")
        .bind(&victim_id)
        .fetch_all(&env.db.pool)
        .await
        .unwrap();
    assert_eq!(status, vec![(VICTIM.to_owned(), "1.0.0".to_owned())]);
    // The batch log and the fleet table tell the two accounts apart.
    let fleet: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT account_id, last_sequence, batches FROM agent_fleet WHERE agent_id = $1 ORDER BY 1")
            .bind(&victim_id)
            .fetch_all(&env.db.pool)
            .await
            .unwrap();
    assert_eq!(fleet, vec![(ATTACKER.to_owned(), 3, 3), (VICTIM.to_owned(), 4, 4)]);
}

/// Opens a raw batch connection for `cert` (no library framing).
async fn raw_batch_connection(env: &Env, cert: &AgentCertificate) -> Option<(quinn::Endpoint, quinn::Connection)> {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let config = client_config(env.ca.cert_der(), Some(&cert.key), ALPN_BATCH, &QuicTuning::default()).unwrap();
    let conn = endpoint.connect_with(config, env.server.local_addr(), "localhost").ok()?.await.ok()?;
    Some((endpoint, conn))
}

/// A header declaring an 8 MiB frame, and no body.
fn oversized_header() -> Vec<u8> {
    let body = (8 * 1024 * 1024 - HEADER_LEN) as u32;
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&CURRENT_VERSION.to_le_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&body.to_le_bytes());
    h.extend_from_slice(&body.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h
}

/// Oversized-header flood: 8 connections × 32 streams each send a header
/// declaring 8 MiB and then nothing. Before issue 19 every header
/// allocated 8 MiB and the 256 streams held all 256 shared slots for 30 s,
/// so every other agent waited. Now the account's streams and bytes are
/// capped, buffers grow only as bytes arrive, stalled frames give their
/// slots back, and the victim keeps delivering at its normal pace.
#[tokio::test]
async fn an_oversized_header_flood_is_bounded_and_others_keep_delivering() {
    let env = env(|_, _| {}).await;
    let mut held = Vec::new();
    let mut refused_connections = 0;
    for c in 0..8 {
        // Two certificates (agent ids) of the attacking account: at most 4
        // connections per certificate.
        let cert = certificate(&env.ca, &format!("flood-{}", c % 2), ATTACKER);
        let Some((endpoint, conn)) = raw_batch_connection(&env, &cert).await else {
            refused_connections += 1;
            continue;
        };
        for _ in 0..32 {
            let conn = conn.clone();
            held.push(tokio::spawn(async move {
                let Ok((mut send, _recv)) = conn.open_bi().await else { return };
                let _ = send.write_all(&oversized_header()).await;
                tokio::time::sleep(Duration::from_secs(20)).await;
            }));
        }
        held.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            drop((endpoint, conn));
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victim = client(&env, &stackset_agent_id(VICTIM), VICTIM);
    let started = Instant::now();
    victim_delivers(&victim, 1, 5).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "victim's 5 batches took {elapsed:?} during the flood");
    assert_eq!(stored(&env.db.pool, VICTIM).await, (50, 25.0));
    let stats = env.server.stats();
    // Declared bytes held at once never exceed the account's budget plus
    // the victim's frames.
    assert!(stats.max_in_flight_bytes_seen <= 32 * 1024 * 1024 + 1024 * 1024, "{stats:?}");
    assert_eq!(refused_connections, 0, "connections are refused after the handshake, by close");
    // Stalled frames are refused once nothing arrives for 1.5 s.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(env.server.stats().frames_stalled_total >= 1, "{:?}", env.server.stats());
    for task in held {
        task.abort();
    }
    // Nothing from the attacker was stored, and no 8 MiB frame was quarantined.
    assert_eq!(stored(&env.db.pool, ATTACKER).await, (0, 0.0));
    let quarantined_bytes: Option<i64> =
        sqlx::query_scalar("SELECT sum(octet_length(COALESCE(frame, ''::bytea)) + octet_length(COALESCE(frame_sample, ''::bytea)))::bigint FROM quarantined_batches")
            .fetch_one(&env.db.pool)
            .await
            .unwrap();
    assert!(quarantined_bytes.unwrap_or(0) <= 64 * 1024, "{quarantined_bytes:?}");
}

/// Absurd values: two records near 1e308 (each finite; their sum is not)
/// are refused with a quarantine reason naming the field, the quarantine
/// keeps a hash and a bounded sample, and the org drain keeps working.
#[tokio::test]
async fn absurd_values_are_refused_and_the_drain_keeps_working() {
    let env = env(|_, _| {}).await;
    let attacker = client(&env, &stackset_agent_id(ATTACKER), ATTACKER);
    let mut absurd = good_records(ATTACKER, 0, 2);
    for r in &mut absurd {
        r.energy_compute_kwh = 1e308;
    }
    let b = batch(&stackset_agent_id(ATTACKER), ATTACKER, 1, 0xA0, absurd);
    let frame = encode(&b);
    let message = expect_refusal(&attacker.send(&frame).await.unwrap(), ErrorCode::InvalidBatch, "physical plausibility");
    assert_eq!(
        message,
        "emissions[0].energy_compute_kwh: expected at most 5e1 (physical plausibility bound), found 1e308"
    );
    let victim = client(&env, &stackset_agent_id(VICTIM), VICTIM);
    victim_delivers(&victim, 1, 2).await;
    // The org rollups: pending deltas drained on the native path; on the
    // TimescaleDB path they are continuous aggregates over the facts.
    let native = crate::support::storage() == canopy_aggregator::db::StorageMode::Native;
    assert_eq!(drain_org_rollups(&env.db.pool).await.unwrap(), if native { 2 } else { 0 }, "one pending delta per victim batch");
    if !native {
        crate::support::settle(&env.db.pool).await;
    }
    assert_eq!(stored(&env.db.pool, ATTACKER).await, (0, 0.0));
    let org_kwh: f64 = sqlx::query_scalar("SELECT sum(energy_kwh) FROM org_rollup_hourly").fetch_one(&env.db.pool).await.unwrap();
    assert!((org_kwh - 10.0).abs() < 1e-9, "{org_kwh}");
    // Quarantine: reason, SHA-256, length and at most a 4 KiB sample.
    let (error, sha, len, sample, whole): (String, Vec<u8>, i32, Vec<u8>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT error, frame_sha256, frame_len, frame_sample, frame FROM quarantined_batches WHERE account_id = $1",
    )
    .bind(ATTACKER)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(error, message);
    assert_eq!(sha, ring_sha256(&frame));
    assert_eq!(len as usize, frame.len());
    assert_eq!(sample, frame[..frame.len().min(4096)]);
    assert_eq!(whole, None);
    let text = env.ingest.metrics().render(None);
    assert!(text.contains("canopy_aggregator_batches_refused_total{reason=\"implausible\"} 1\n"), "{text}");
}

fn ring_sha256(bytes: &[u8]) -> Vec<u8> {
    // The aggregator hashes with ring; compute the same independently of it.
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// A pending org-rollup row that would overflow the drain's sums (written
/// straight into the table, as a batch accepted before the bounds existed
/// could have) is set aside with a log and a metric; the rest drains.
#[tokio::test]
async fn the_org_drain_cannot_wedge_on_one_bad_pending_row() {
    if crate::support::skip_unless_native("the_org_drain_cannot_wedge_on_one_bad_pending_row", "the org drain is the native path's; on TimescaleDB the org rollups are continuous aggregates") {
        return;
    }
    let env = env(|_, _| {}).await;
    let victim = client(&env, &stackset_agent_id(VICTIM), VICTIM);
    victim_delivers(&victim, 1, 1).await;
    let hour = last_hour();
    for _ in 0..2 {
        sqlx::query(
            "INSERT INTO org_rollup_pending VALUES (to_timestamp($1), $2, 'eu-west-1', 'ec2', 'instance', 'evil',
                                                   'estimated', 1e308, 1e308, 1e308, 1e308, 1e308, 1)",
        )
        .bind(hour as f64)
        .bind(ATTACKER)
        .execute(&env.db.pool)
        .await
        .unwrap();
    }
    // Before issue 19 this failed with "value out of range: overflow", every run.
    let moved = drain_org_rollups(&env.db.pool).await.unwrap();
    assert_eq!(moved, 1, "the victim's one pending delta");
    let org_kwh: f64 = sqlx::query_scalar("SELECT sum(energy_kwh) FROM org_rollup_hourly").fetch_one(&env.db.pool).await.unwrap();
    assert!((org_kwh - 5.0).abs() < 1e-9, "{org_kwh}");
    let (rejected, pending): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM org_rollup_pending_rejected), (SELECT count(*) FROM org_rollup_pending)",
    )
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!((rejected, pending), (2, 0));
    assert_eq!(drain_org_rollups(&env.db.pool).await.unwrap(), 0);
}

/// Cardinality flood: free-form resource types beyond the account's quota
/// are refused with the field and the limit named; the victim's own
/// values are counted apart.
#[tokio::test]
async fn a_cardinality_flood_is_refused_with_the_field_and_limit() {
    let env = env(|_, delivery| delivery.quota.resource_type = 20).await;
    let attacker = client(&env, &stackset_agent_id(ATTACKER), ATTACKER);
    let group = |i: usize| wire::GroupKey { service: "ec2".into(), resource_type: format!("junk-{i:04}"), team: None };
    let first: Vec<_> = (0..15).map(|i| record(ATTACKER, i, Some(group(i)), 1.0)).collect();
    expect_ack(&attacker.send(&encode(&batch(&stackset_agent_id(ATTACKER), ATTACKER, 1, 0xA0, first))).await.unwrap());
    let flood: Vec<_> = (15..2_015).map(|i| record(ATTACKER, i, Some(group(i)), 1.0)).collect();
    let b = batch(&stackset_agent_id(ATTACKER), ATTACKER, 2, 0xA0, flood);
    let message = expect_refusal(&attacker.send(&encode(&b)).await.unwrap(), ErrorCode::InvalidBatch, "cardinality quota");
    assert!(
        message.starts_with(&format!(
            "resource_type: expected at most 20 distinct resource_type values per account and month (cardinality quota), \
             found 2015 for account {ATTACKER} in "
        )),
        "{message}"
    );
    let victim = client(&env, &stackset_agent_id(VICTIM), VICTIM);
    victim_delivers(&victim, 1, 3).await;
    assert_eq!(stored(&env.db.pool, VICTIM).await, (30, 15.0));
    assert_eq!(stored(&env.db.pool, ATTACKER).await, (15, 15.0));
    let types: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM account_dimension_values WHERE account_id = $1 AND field = 'resource_type'",
    )
    .bind(ATTACKER)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(types, 15, "the refused batch's values were rolled back");
}

/// Revocation: an account removed from the allow-list is refused at its
/// next batch on an open connection, and its new connections are closed,
/// long before its certificate expires.
#[tokio::test]
async fn a_revoked_account_is_refused_at_its_next_batch() {
    let env = env(|_, _| {}).await;
    let attacker = client(&env, &stackset_agent_id(ATTACKER), ATTACKER);
    let id = stackset_agent_id(ATTACKER);
    expect_ack(&attacker.send(&encode(&batch(&id, ATTACKER, 1, 0xA0, good_records(ATTACKER, 0, 4)))).await.unwrap());
    env.allowed.replace([VICTIM.to_owned()]).unwrap();
    let reply = attacker.send(&encode(&batch(&id, ATTACKER, 2, 0xA0, good_records(ATTACKER, 4, 4)))).await.unwrap();
    expect_refusal(&reply, ErrorCode::Unauthorized, "found account 111111111111 (revoked)");
    // A fresh connection is closed at once.
    let fresh = client(&env, &format!("{id}-2"), ATTACKER);
    assert!(fresh.send(&encode(&batch(&id, ATTACKER, 3, 0xA0, good_records(ATTACKER, 8, 4)))).await.is_err());
    let victim = client(&env, &stackset_agent_id(VICTIM), VICTIM);
    victim_delivers(&victim, 1, 2).await;
    assert_eq!(stored(&env.db.pool, ATTACKER).await, (4, 2.0));
    assert_eq!(stored(&env.db.pool, VICTIM).await, (20, 10.0));
    assert!(env.server.stats().revoked_total >= 2, "{:?}", env.server.stats());
}

/// Idle enrolment connections: 70 connections from one address that never
/// say hello. Before issue 19 the first 64 held every enrolment slot for
/// 30 s. Now one address holds at most 4 slots, each for the hello
/// timeout (4 s here, so the count below is stable on a loaded machine),
/// and an agent elsewhere gets its challenge at once.
#[tokio::test]
async fn idle_enrolment_connections_cannot_block_enrolment() {
    let hello_timeout = Duration::from_secs(4);
    let env = env(|config, _| config.enrollment.as_mut().unwrap().hello_timeout = hello_timeout).await;
    let begun = Instant::now();
    let server: SocketAddr = env.server.local_addr();
    let endpoint = quinn::Endpoint::client("127.0.0.2:0".parse().unwrap()).unwrap();
    let config = client_config(env.ca.cert_der(), None, ALPN_ENROLL, &QuicTuning::default()).unwrap();
    let mut idle = Vec::new();
    for _ in 0..70 {
        if let Ok(Ok(conn)) = tokio::time::timeout(
            Duration::from_secs(10),
            endpoint.connect_with(config.clone(), server, "localhost").unwrap(),
        )
        .await
        {
            idle.push(conn);
        }
    }
    assert_eq!(idle.len(), 70, "handshakes complete; slots are what is limited");
    let busy = || idle.iter().filter(|c| c.close_reason().is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(2);
    while busy() < 66 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(begun.elapsed() < hello_timeout, "too slow to tell the holders apart: {:?}", begun.elapsed());
    assert_eq!(busy(), 66, "one address holds at most 4 enrolment slots");
    let started = Instant::now();
    let session = EnrollmentSession::open(&EnrollConfig {
        server_addr: server,
        server_name: "localhost".into(),
        ca_cert_der: env.ca.cert_der().clone(),
        agent_id: stackset_agent_id(VICTIM),
        timeout: Duration::from_secs(5),
        pin: ChallengePin { server_id: SERVER_ID.into(), sts_url: STS_URL.into() },
    })
    .await
    .expect("an agent from another address gets its challenge");
    assert!(session.challenge().server_id_header.starts_with(&format!("{SERVER_ID}/")));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // The 4 idle holders are closed once the hello timeout passes.
    let deadline = begun + hello_timeout + Duration::from_secs(5);
    while busy() < 70 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(begun.elapsed() >= hello_timeout);
    assert_eq!(busy(), 70, "idle enrolment connections outlived the hello timeout");
    assert!(env.server.stats().retries_sent_total >= 70, "{:?}", env.server.stats());
    // Batches still flow beside it.
    let victim = client(&env, &stackset_agent_id(VICTIM), VICTIM);
    victim_delivers(&victim, 1, 1).await;
    assert_eq!(stored(&env.db.pool, VICTIM).await, (10, 5.0));
}

/// Connections per certificate: a seventh connection of one certificate
/// closes its oldest (a crashed agent's stale connections make way for the
/// live one), so one certificate never holds more than 4; past the
/// account's cap new connections are refused.
#[tokio::test]
async fn connections_are_capped_per_certificate_and_per_account() {
    let env = env(|config, _| config.peer_limits.connections_per_account = 6).await;
    let cert = certificate(&env.ca, "many", ATTACKER);
    let mut conns = Vec::new();
    for _ in 0..7 {
        conns.push(raw_batch_connection(&env, &cert).await.expect("handshake"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let closed: Vec<bool> = conns.iter().map(|(_, c)| c.close_reason().is_some()).collect();
    assert_eq!(closed, [true, true, true, false, false, false, false]);
    // 4 live connections of "many"; the account's cap is 6: the third
    // connection of another certificate is refused.
    let other = certificate(&env.ca, "other", ATTACKER);
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(raw_batch_connection(&env, &other).await.expect("handshake"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let closed: Vec<bool> = others.iter().map(|(_, c)| c.close_reason().is_some()).collect();
    assert_eq!(closed, [false, false, true]);
    assert_eq!(env.server.stats().connections_over_limit_total, 4);
    // The victim's account is not affected.
    let victim = client(&env, &stackset_agent_id(VICTIM), VICTIM);
    victim_delivers(&victim, 1, 1).await;
    assert_eq!(stored(&env.db.pool, VICTIM).await, (10, 5.0));
}

/// Retention of the logs a hostile agent could grow: quarantined frames
/// older than 30 days and batch-log rows older than 35 days are deleted by
/// maintenance; the fleet's per-agent counts (`agent_fleet`) stay.
#[tokio::test]
async fn maintenance_prunes_the_quarantine_and_the_batch_log() {
    let env = env(|_, _| {}).await;
    let victim = client(&env, &stackset_agent_id(VICTIM), VICTIM);
    victim_delivers(&victim, 1, 3).await;
    let attacker = client(&env, &stackset_agent_id(ATTACKER), ATTACKER);
    for s in 1..=2 {
        let mut absurd = good_records(ATTACKER, 0, 1);
        absurd[0].pue = 40.0;
        let b = batch(&stackset_agent_id(ATTACKER), ATTACKER, s, 0xA0, absurd);
        expect_refusal(&attacker.send(&encode(&b)).await.unwrap(), ErrorCode::InvalidBatch, "emissions[0].pue");
    }
    let now = system_clock();
    // Age one quarantined frame past 30 days, and two batches past 35 days.
    let day = 86_400.0;
    sqlx::query("UPDATE quarantined_batches SET received_at = to_timestamp($1) WHERE sequence = 1")
        .bind(now as f64 - 31.0 * day)
        .execute(&env.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE ingested_batches SET received_at = to_timestamp($1) WHERE sequence <= 2")
        .bind(now as f64 - 36.0 * day)
        .execute(&env.db.pool)
        .await
        .unwrap();
    let report = canopy_aggregator::maintenance::run(&env.db.pool, &Default::default(), now).await.unwrap();
    assert_eq!((report.quarantine_rows_deleted, report.batch_log_rows_deleted), (1, 2));
    let left: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM quarantined_batches), (SELECT count(*) FROM ingested_batches),
                (SELECT batches FROM agent_fleet WHERE account_id = $1)",
    )
    .bind(VICTIM)
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(left, (1, 1, 3));
    assert_eq!(stored(&env.db.pool, VICTIM).await, (30, 15.0));
}
