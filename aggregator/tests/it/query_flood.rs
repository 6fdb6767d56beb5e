//! Issue 19 §3: a flood of expensive queries cannot starve ingest. The
//! query APIs read through their own pool with a statement timeout, behind
//! a concurrency limit and a request timeout; batches are stored through
//! the ingest pool meanwhile. Real PostgreSQL; the library's HTTP router
//! with the gate, as `serve` wires it; batches through `store_batch`.
//!
//! Bounds are counts and generous multiples (the machine may have two busy
//! cores): ingest under the flood must stay within 10x its own baseline p99
//! plus 2 s, every batch is stored with its exact energy, and every heavy
//! query is answered (200, 503 or 504 naming the limit) within twice the
//! request timeout plus 2 s, never queued until the pool's 30 s wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use canopy_aggregator::http::router;
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::model::Batch;
use canopy_aggregator::query::QueryEngine;
use canopy_aggregator::query_limits::{self, GateCounts, QueryGate, QueryLimits};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;

use crate::support::{T0, TestDb, fact, store};

/// Facts behind the heavy query (one fact a day of 12,500 resources over
/// 24 days of one month, and their per-resource daily rollup rows, as
/// ingest would keep them): `top-resources` over all time groups all
/// 300,000 rollup rows (whole days read from the rollup, migration 0029).
const HEAVY_FACTS: i64 = 300_000;
/// The widest range the facts' retention still answers: from the start of
/// the month 12 months back (past it the planner refuses with a 400, issue
/// 13 case 2) to the year 2100.
fn heavy_from_unix_s() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    canopy_aggregator::time::month_start_shifted(now, -12)
}

fn heavy_uri() -> String {
    format!("/v1/top-resources?from={}&to=4102444800&limit=1000", heavy_from_unix_s())
}
const FLOOD_CLIENTS: usize = 32;
const BATCHES: u64 = 20;
const FACTS_PER_BATCH: u64 = 100;

/// How the APIs and ingest share the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wiring {
    /// As `serve` does now: a query pool with its limits, a separate ingest pool.
    Separated,
    /// As `serve` did before issue 19: one pool of 16 for both, no limits.
    Shared,
}

fn limits() -> QueryLimits {
    QueryLimits {
        max_connections: 2,
        statement_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        max_concurrent_requests: 2,
    }
}

async fn load_heavy_facts(pool: &PgPool) {
    sqlx::query("SELECT canopy_ensure_time_partitions(ARRAY[$1]::bigint[])").bind(T0).execute(pool).await.unwrap();
    sqlx::query(
        "INSERT INTO emission_facts (period_start, period_s, account_id, region, record_key, revision, resource_id, \
         resource_type, service, team, quality, energy_kwh, location_g_co2e, market_g_co2e, low_g_co2e, high_g_co2e, \
         methodology_version, factor_source, factor_vintage, agent_id, batch_sequence) \
         SELECT to_timestamp($1 + (g % 24) * 86400), 3600, (100000000000 + g % 7)::text, 'eu-west-1', \
                'heavy' || (g / 24) || '/total', 1, 'heavy' || (g / 24), 'ec2:instance', 'AmazonEC2', 'web', \
                'estimated', (g % 1000) / 1000.0, g % 500, g % 250, g % 400, g % 600, 'canopy-1', 'ccf', '2024', \
                'flood-agent', 0 \
         FROM generate_series(0, $2 - 1) g",
    )
    .bind(T0)
    .bind(HEAVY_FACTS)
    .execute(pool)
    .await
    .unwrap();
    // The per-resource daily rollup of those facts, as migration 0029's
    // backfill builds it (ingest keeps it in the same transaction; on the
    // TimescaleDB path it is a continuous aggregate over the facts).
    let mode = canopy_aggregator::db::storage_mode(pool).await.unwrap();
    let measures = canopy_aggregator::accounting::MEASURE_COLUMNS.join(", ");
    let sums = canopy_aggregator::accounting::MEASURE_COLUMNS.map(|c| format!("sum({c})")).join(", ");
    let rollup_sql = format!(
        "INSERT INTO resource_rollup_daily (bucket_start, account_id, region, resource_id, service, resource_type, team,
                quality, {measures}, fact_count, last_period_start)
         SELECT date_bin(interval '1 day', period_start, timestamptz 'epoch'), account_id, region, resource_id, service,
                resource_type, team, quality, {sums}, count(*), max(period_start)
         FROM emission_facts_all_parts GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
    );
    let rollup = sqlx::query(&rollup_sql);
    if mode == canopy_aggregator::db::StorageMode::Native {
        rollup.execute(pool).await.unwrap();
        sqlx::query("ANALYZE resource_rollup_daily").execute(pool).await.unwrap();
    }
    sqlx::query("ANALYZE emission_facts").execute(pool).await.unwrap();
}

fn batch(sequence: u64) -> Batch {
    let facts =
        (0..FACTS_PER_BATCH).map(|i| fact(sequence * 1_000 + i, T0 + 3_600 * (i as i64 % 24), 3_600, 1)).collect();
    Batch { agent_id: "steady-agent".into(), sequence, facts, inventory: vec![] }
}

/// Longest the flood phase may take; a batch still waiting then counts with
/// the time it waited (only the pre-issue-19 wiring gets there).
const PHASE_LIMIT: Duration = Duration::from_secs(120);

/// Stores batches `sequences` one after another; the latency of each (the
/// last one cut at `PHASE_LIMIT` after the start).
async fn store_timed(pool: &PgPool, sequences: std::ops::Range<u64>) -> Vec<Duration> {
    let phase = Instant::now();
    let mut latencies = Vec::new();
    for sequence in sequences {
        let b = batch(sequence);
        let started = Instant::now();
        let stored = tokio::time::timeout(PHASE_LIMIT.saturating_sub(phase.elapsed()), store(pool, &b)).await;
        latencies.push(started.elapsed());
        if stored.is_err() {
            break;
        }
    }
    latencies
}

fn p99(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 * 0.99).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Default)]
struct FloodReport {
    baseline_p99: Duration,
    flood_p99: Duration,
    ok: u64,
    busy: u64,
    statement_timeouts: u64,
    request_timeouts: u64,
    other: Vec<(StatusCode, String)>,
    slowest_answer: Duration,
    flood_batches_stored: u64,
    clients_stuck: u64,
    gate: GateCounts,
    stored_energy_kwh: f64,
    sent_energy_kwh: f64,
}

async fn run_flood(wiring: Wiring) -> FloodReport {
    let t = TestDb::migrated().await;
    load_heavy_facts(&t.pool).await;
    let options = (*t.pool.connect_options()).clone();
    let ingest_pool = PgPoolOptions::new().max_connections(16).connect_with(options.clone()).await.unwrap();
    let (app, gate) = match wiring {
        Wiring::Separated => {
            let query_pool = query_limits::connect_query_pool_with(options, &limits()).await.unwrap();
            // The query pool's sessions have the statement timeout; ingest's none.
            let st: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&query_pool).await.unwrap();
            assert_eq!(st, "200ms");
            let st: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&ingest_pool).await.unwrap();
            assert_eq!(st, "0");
            let gate = QueryGate::new(limits());
            let app = gate.clone().layer_http(router(QueryEngine::new(query_pool, RetentionPolicy::default()), || T0, canopy_aggregator::auth::Auth::insecure_open_access()));
            (app, Some(gate))
        }
        Wiring::Shared => (router(QueryEngine::new(ingest_pool.clone(), RetentionPolicy::default()), || T0, canopy_aggregator::auth::Auth::insecure_open_access()), None),
    };

    let mut report =
        FloodReport { baseline_p99: p99(&store_timed(&ingest_pool, 1..BATCHES + 1).await), ..Default::default() };

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..FLOOD_CLIENTS {
        let (app, stop) = (app.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let resp = app.clone().oneshot(Request::get(heavy_uri()).body(Body::empty()).unwrap()).await.unwrap();
                let status = resp.status();
                let body = to_bytes(resp.into_body(), 1 << 24).await.unwrap();
                answers.push((status, String::from_utf8_lossy(&body).into_owned(), started.elapsed()));
                // A refused client retries soon, without spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }));
    }
    // Let the flood occupy whatever it can before measuring ingest.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let flood = store_timed(&ingest_pool, BATCHES + 1..2 * BATCHES + 1).await;
    report.flood_p99 = p99(&flood);
    report.flood_batches_stored = flood.len() as u64;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let answers = match tokio::time::timeout(Duration::from_secs(30), &mut Box::pin(client)).await {
            Ok(answers) => answers.unwrap(),
            Err(_) => {
                report.clients_stuck += 1;
                continue;
            }
        };
        for (status, body, elapsed) in answers {
            report.slowest_answer = report.slowest_answer.max(elapsed);
            let limit = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["limit"].as_str().map(str::to_owned));
            match (status, limit.as_deref()) {
                (StatusCode::OK, _) => report.ok += 1,
                (StatusCode::SERVICE_UNAVAILABLE, Some("max_concurrent_requests")) => report.busy += 1,
                (StatusCode::SERVICE_UNAVAILABLE, Some("statement_timeout")) => {
                    assert!(body.contains("statement timeout of 200 ms (--query-statement-timeout-ms)"), "{body}");
                    assert!(!body.contains("canceling statement"), "raw database message: {body}");
                    report.statement_timeouts += 1
                }
                (StatusCode::GATEWAY_TIMEOUT, Some("request_timeout")) => {
                    assert!(body.contains("request timeout of 2000 ms (--query-request-timeout-ms)"), "{body}");
                    report.request_timeouts += 1
                }
                _ => report.other.push((status, body.chars().take(300).collect())),
            }
        }
    }
    if let Some(gate) = gate {
        report.gate = gate.metrics().counts();
    }
    report.sent_energy_kwh = (1..2 * BATCHES + 1).flat_map(|s| batch(s).facts).map(|f| f.energy_kwh).sum();
    report.stored_energy_kwh =
        sqlx::query_scalar("SELECT sum(energy_kwh) FROM emission_facts_all WHERE agent_id = 'steady-agent'")
            .fetch_one(&t.pool)
            .await
            .unwrap();
    report
}

fn ingest_bound(baseline_p99: Duration) -> Duration {
    baseline_p99 * 10 + Duration::from_secs(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heavy_query_flood_does_not_starve_ingest() {
    let r = run_flood(Wiring::Separated).await;
    eprintln!("{r:?}");
    // Every batch stored, with its exact energy.
    assert!((r.stored_energy_kwh - r.sent_energy_kwh).abs() < 1e-9, "{r:?}");
    assert_eq!(r.flood_batches_stored, BATCHES);
    assert_eq!(r.clients_stuck, 0);
    // Ingest kept its latency.
    assert!(
        r.flood_p99 <= ingest_bound(r.baseline_p99),
        "ingest p99 under flood {:?} > bound {:?}: {r:?}",
        r.flood_p99,
        ingest_bound(r.baseline_p99)
    );
    // The heavy queries were refused or cut, never queued: each answered
    // within twice the request timeout (plus slack), with a message naming
    // the limit; nothing else (no 500 with a database message).
    assert!(r.other.is_empty(), "unexpected answers: {:?}", r.other);
    assert!(r.busy > 0, "the concurrency limit refused some: {r:?}");
    assert!(r.statement_timeouts + r.request_timeouts > 0, "the heavy query hit a timeout: {r:?}");
    assert!(r.slowest_answer < limits().request_timeout * 2 + Duration::from_secs(2), "{r:?}");
    assert_eq!(r.gate.refused_busy, r.busy);
    assert_eq!(r.gate.statement_timeouts, r.statement_timeouts);
    assert_eq!(r.gate.timed_out, r.request_timeouts);
    assert_eq!(r.gate.admitted, r.ok + r.statement_timeouts + r.request_timeouts);
}

/// The same flood with the wiring `serve` had before issue 19 (one pool of
/// 16 shared by queries and ingest, no limits): ingest is starved. Kept to
/// show the scenario discriminates; ignored because it runs for minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn heavy_query_flood_starved_ingest_with_one_shared_pool() {
    let r = run_flood(Wiring::Shared).await;
    eprintln!("{r:?}");
    assert!(r.flood_p99 > ingest_bound(r.baseline_p99), "{r:?}");
}

/// The gRPC API behind the same gate: a heavy query is cancelled at the
/// statement timeout with `UNAVAILABLE` naming the limit (not the
/// database's message), and calls beyond the concurrency limit are refused
/// at once with `UNAVAILABLE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_heavy_queries_are_cut_and_refused_with_the_limit_named() {
    use canopy_aggregator::grpc::{CanopyQueryClient, GrpcQuery, pb};
    use tonic::transport::server::TcpIncoming;

    let t = TestDb::migrated().await;
    load_heavy_facts(&t.pool).await;
    let limits = QueryLimits { max_concurrent_requests: 1, ..limits() };
    let query_pool = query_limits::connect_query_pool_with((*t.pool.connect_options()).clone(), &limits).await.unwrap();
    let gate = QueryGate::new(limits);
    let service = GrpcQuery::new(QueryEngine::new(query_pool, RetentionPolicy::default()), || T0, canopy_aggregator::auth::Auth::insecure_open_access());
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(gate.clone().wrap_grpc(service.into_server()))
            .serve_with_incoming(incoming),
    );
    let client = CanopyQueryClient::connect(format!("http://{addr}")).await.unwrap();
    let heavy =
        pb::TopResourcesRequest { from: heavy_from_unix_s().to_string(), to: "4102444800".into(), limit: 1000, ..Default::default() };

    // Alone: cancelled by the statement timeout.
    let status = client.clone().top_resources(heavy.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        "query cancelled: it ran longer than the query statement timeout of 200 ms (--query-statement-timeout-ms)"
    );

    // Eight at once with one slot: one admitted (cut at the statement
    // timeout), the others refused at once.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (mut c, h) = (client.clone(), heavy.clone());
            tokio::spawn(async move { c.top_resources(h).await.unwrap_err() })
        })
        .collect();
    let mut busy = 0;
    for call in calls {
        let status = call.await.unwrap();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        if status.message().contains("--query-max-concurrent-requests") {
            assert_eq!(
                status.message(),
                "too many concurrent queries: 1 are running (--query-max-concurrent-requests); retry later"
            );
            busy += 1;
        } else {
            assert!(status.message().contains("statement timeout of 200 ms"), "{status:?}");
        }
    }
    assert!(busy >= 1, "at least one call refused");
    let counts = gate.metrics().counts();
    assert_eq!(counts.refused_busy, busy);
    assert_eq!(counts.admitted + counts.refused_busy, 9);
    assert_eq!(counts.statement_timeouts, counts.admitted);
    server.abort();
}
