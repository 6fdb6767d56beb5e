//! Data path: account check, concurrency, backpressure, reconnects.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use canopy_protocol::{ErrorCode, Reply};
use canopy_transport::Client;

use crate::support::*;

#[tokio::test]
async fn batch_naming_another_account_is_refused_and_connection_stays_usable() {
    let ca = new_ca();
    let handler = Arc::new(AckHandler::default());
    let server = start_server(server_config(loopback()), &ca, &handler).await;
    let cert = direct_cert(&ca, ALLOWED_ACCOUNT, Duration::from_secs(600));
    let client = Client::new(client_config(&ca, server.local_addr()), cert).expect("client");

    let reply = client
        .send(&frame(OTHER_ACCOUNT, 1, 3))
        .await
        .expect("reply");
    match reply {
        Reply::Error(e) => {
            assert_eq!(e.code, ErrorCode::Unauthorized);
            assert_eq!(e.sequence, Some(1));
            assert!(
                e.message.contains(ALLOWED_ACCOUNT) && e.message.contains(OTHER_ACCOUNT),
                "{}",
                e.message
            );
        }
        Reply::Ack(_) => panic!("expected unauthorized, found an ack"),
    }
    assert_eq!(
        handler.handled.load(Ordering::SeqCst),
        0,
        "handler saw a foreign batch"
    );
    assert_eq!(handler.rejected.load(Ordering::SeqCst), 1);

    let reply = client
        .send(&frame(ALLOWED_ACCOUNT, 2, 3))
        .await
        .expect("reply");
    assert_eq!(ack_sequence(&reply), 2);
    let stats = server.stats();
    assert_eq!(
        stats.connections_opened_total, 1,
        "the refusal must not cost the connection"
    );
    assert_eq!(stats.batches_unauthorized_total, 1);
    assert_eq!(stats.batches_out_total, 2);
}

#[tokio::test]
async fn batch_claiming_another_agent_id_is_refused() {
    let ca = new_ca();
    let handler = Arc::new(AckHandler::default());
    let server = start_server(server_config(loopback()), &ca, &handler).await;
    let cert = direct_cert(&ca, ALLOWED_ACCOUNT, Duration::from_secs(600));
    let client = Client::new(client_config(&ca, server.local_addr()), cert).expect("client");
    let mut other = batch(ALLOWED_ACCOUNT, 1, 2);
    other.agent_id = "agent-2".into();
    let frame =
        canopy_protocol::encode_batch(&other, canopy_protocol::Compression::None).expect("encode");
    match client.send(&frame).await.expect("reply") {
        Reply::Error(e) => {
            assert_eq!(e.code, ErrorCode::Unauthorized);
            assert!(e.message.contains("agent-2"), "{}", e.message);
        }
        Reply::Ack(_) => panic!("expected unauthorized, found an ack"),
    }
    assert_eq!(handler.handled.load(Ordering::SeqCst), 0);
    assert_eq!(handler.rejected.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn garbage_frame_gets_a_malformed_reply() {
    let ca = new_ca();
    let handler = Arc::new(AckHandler::default());
    let server = start_server(server_config(loopback()), &ca, &handler).await;
    let cert = direct_cert(&ca, ALLOWED_ACCOUNT, Duration::from_secs(600));
    let client = Client::new(client_config(&ca, server.local_addr()), cert).expect("client");
    let mut bad = frame(ALLOWED_ACCOUNT, 1, 3);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    match client.send(&bad).await.expect("reply") {
        Reply::Error(e) => assert_eq!(e.code, ErrorCode::MalformedFrame, "{}", e.message),
        Reply::Ack(_) => panic!("expected malformed_frame, found an ack"),
    }
    assert_eq!(
        ack_sequence(
            &client
                .send(&frame(ALLOWED_ACCOUNT, 2, 3))
                .await
                .expect("reply")
        ),
        2
    );
}

#[tokio::test]
async fn connection_without_client_certificate_is_refused() {
    let ca = new_ca();
    let handler = Arc::new(AckHandler::default());
    let server = start_server(server_config(loopback()), &ca, &handler).await;
    let endpoint = quinn::Endpoint::client(loopback()).expect("endpoint");
    let quic = canopy_transport::tls::client_config(
        ca.cert_der(),
        None,
        canopy_transport::tls::ALPN_BATCH,
        &Default::default(),
    )
    .expect("config");
    let conn = endpoint
        .connect_with(quic, server.local_addr(), SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("closed");
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code,
                canopy_transport::server::CLOSE_UNAUTHENTICATED.into()
            )
        }
        other => panic!("expected an application close, found {other}"),
    }
    assert_eq!(server.stats().connections_refused_total, 1);
}

#[tokio::test]
async fn many_batches_in_flight_on_one_connection() {
    let ca = new_ca();
    let handler = Arc::new(AckHandler {
        delay: Duration::from_millis(20),
        ..Default::default()
    });
    let server = start_server(server_config(loopback()), &ca, &handler).await;
    let cert = direct_cert(&ca, ALLOWED_ACCOUNT, Duration::from_secs(600));
    let mut config = client_config(&ca, server.local_addr());
    config.max_in_flight = 32;
    let client = Client::new(config, cert).expect("client");
    let sends = (1..=300u64).map(|seq| {
        let client = client.clone();
        async move {
            ack_sequence(
                &client
                    .send(&frame(ALLOWED_ACCOUNT, seq, 50))
                    .await
                    .expect("reply"),
            )
        }
    });
    let mut acked = futures_join_all(sends).await;
    acked.sort_unstable();
    assert_eq!(acked, (1..=300).collect::<Vec<_>>());
    assert_eq!(handler.records.load(Ordering::SeqCst), 300 * 50);
    // With a 20 ms handler, batches overlapped: well over one at a time.
    assert!(handler.max_concurrent.load(Ordering::SeqCst) > 4);
    assert!(handler.max_concurrent.load(Ordering::SeqCst) <= 32);
    assert_eq!(server.stats().connections_opened_total, 1);
}

#[tokio::test]
async fn slow_handler_bounds_work_in_flight() {
    let ca = new_ca();
    let handler = Arc::new(AckHandler {
        delay: Duration::from_millis(200),
        ..Default::default()
    });
    let mut config = server_config(loopback());
    config.max_in_flight_batches = 4;
    let server = start_server(config, &ca, &handler).await;
    let cert = direct_cert(&ca, ALLOWED_ACCOUNT, Duration::from_secs(600));
    let mut config = client_config(&ca, server.local_addr());
    config.max_in_flight = 64;
    let client = Client::new(config, cert).expect("client");
    let started = Instant::now();
    let sends = (1..=40u64).map(|seq| {
        let client = client.clone();
        async move {
            ack_sequence(
                &client
                    .send(&frame(ALLOWED_ACCOUNT, seq, 20))
                    .await
                    .expect("reply"),
            )
        }
    });
    let all = tokio::spawn(futures_join_all(sends.collect::<Vec<_>>().into_iter()));
    // While the handler is the bottleneck, the server holds at most the 4
    // permitted batches plus the one stream its accept loop waits with:
    // frames beyond that stay unsent in the agent (QUIC stream credit and
    // flow control), so server memory does not grow with the backlog.
    let mut max_accepted_unfinished = 0;
    while !all.is_finished() {
        let accepted = server.stats().batches_in_total;
        let handled = handler.handled.load(Ordering::SeqCst);
        max_accepted_unfinished = max_accepted_unfinished.max(accepted.saturating_sub(handled));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked = all.await.expect("task");
    let elapsed = started.elapsed();
    assert_eq!(acked.len(), 40);
    assert!(
        (4..=5).contains(&max_accepted_unfinished),
        "server held {max_accepted_unfinished} unfinished batches, expected 4 or 5"
    );
    // 40 batches, 4 at a time, 200 ms each: at least 10 × 200 ms = 2 s.
    assert!(
        elapsed >= Duration::from_millis(2000),
        "finished in {elapsed:?}"
    );
    assert_eq!(handler.max_concurrent.load(Ordering::SeqCst), 4);
    assert!(server.stats().max_in_flight_seen <= 4);
}

#[tokio::test]
async fn client_reconnects_after_server_restart() {
    let ca = new_ca();
    let handler = Arc::new(AckHandler::default());
    let server = start_server(server_config(loopback()), &ca, &handler).await;
    let addr = server.local_addr();
    let cert = direct_cert(&ca, ALLOWED_ACCOUNT, Duration::from_secs(600));
    let client = Client::new(client_config(&ca, addr), cert).expect("client");
    assert_eq!(
        ack_sequence(
            &client
                .send(&frame(ALLOWED_ACCOUNT, 1, 5))
                .await
                .expect("reply")
        ),
        1
    );

    server.shutdown(Duration::from_secs(1)).await;
    // Sent while the server is down: retried with backoff until it is back.
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.send(&frame(ALLOWED_ACCOUNT, 2, 5)).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let handler2 = Arc::new(AckHandler::default());
    let server2 = start_server(server_config(addr), &ca, &handler2).await;
    let reply = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("resent in time")
        .expect("task")
        .expect("reply");
    assert_eq!(ack_sequence(&reply), 2);
    assert_eq!(handler2.handled.load(Ordering::SeqCst), 1);
    assert_eq!(server2.stats().connections_opened_total, 1);
}

async fn futures_join_all<F: std::future::Future<Output = u64> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<u64> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn expired_certificate_closes_the_connection_and_cannot_reconnect() {
    let ca = new_ca();
    let handler = Arc::new(AckHandler::default());
    let server = start_server(server_config(loopback()), &ca, &handler).await;
    let cert = direct_cert(&ca, ALLOWED_ACCOUNT, Duration::from_secs(5));
    let client = Client::new(client_config(&ca, server.local_addr()), cert).expect("client");
    assert_eq!(
        ack_sequence(
            &client
                .send_once(&frame(ALLOWED_ACCOUNT, 1, 1))
                .await
                .expect("reply")
        ),
        1
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let result = client.send_once(&frame(ALLOWED_ACCOUNT, 2, 1)).await;
    assert!(
        result.is_err(),
        "expected a refused handshake, found {result:?}"
    );
    let stats = server.stats();
    assert_eq!(stats.connections_opened_total, 1);
    assert_eq!(
        stats.connections_closed_total, 1,
        "server did not close the expired connection"
    );
    assert_eq!(stats.batches_in_total, 1);
    assert_eq!(handler.handled.load(Ordering::SeqCst), 1);
}
