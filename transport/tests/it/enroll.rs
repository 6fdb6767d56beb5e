//! Enrolment against moto: happy path and every refusal this side can see.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use canopy_transport::sigv4::{SERVER_ID_HEADER, sign_get_caller_identity};
use canopy_transport::{
    AllowedAccounts, ChallengePin, Client, EnrollConfig, EnrollError, EnrollmentPolicy,
    EnrollmentSession, RefusalCode, Server, enroll,
};

use crate::support::*;

struct Env {
    moto: Moto,
    ca: Arc<canopy_transport::CertificateAuthority>,
    handler: Arc<AckHandler>,
    server: Server,
    allowed: AllowedAccounts,
}

async fn env(lifetime: Duration) -> Env {
    let moto = Moto::start();
    let ca = new_ca();
    let handler = Arc::new(AckHandler::default());
    let allowed = AllowedAccounts::new([ALLOWED_ACCOUNT.to_owned()]).unwrap();
    let mut policy = EnrollmentPolicy::new(
        "canopy-test",
        allowed.clone(),
        ROLE,
        moto.url.clone(),
        "us-east-1",
    );
    policy.client_cert_lifetime = lifetime;
    let mut config = server_config(loopback());
    config.enrollment = Some(policy);
    let server = start_server(config, &ca, &handler).await;
    Env {
        moto,
        ca,
        handler,
        server,
        allowed,
    }
}

fn enroll_config(env: &Env) -> EnrollConfig {
    EnrollConfig {
        server_addr: env.server.local_addr(),
        server_name: SERVER_NAME.into(),
        ca_cert_der: env.ca.cert_der().clone(),
        agent_id: "agent-1".into(),
        timeout: Duration::from_secs(20),
        pin: ChallengePin {
            server_id: "canopy-test".into(),
            sts_url: env.moto.url.clone(),
        },
    }
}

fn refusal_code(result: Result<canopy_transport::AgentCertificate, EnrollError>) -> RefusalCode {
    match result {
        Err(EnrollError::Refused(r)) => r.code,
        Err(other) => panic!("expected a refusal, found error {other}"),
        Ok(cert) => panic!(
            "expected a refusal, found a certificate for {:?}",
            cert.identity
        ),
    }
}

#[tokio::test]
async fn enrolment_issues_an_account_bound_certificate_and_batches_flow() {
    let env = env(Duration::from_secs(3600)).await;
    let creds = env.moto.assume_role(ALLOWED_ACCOUNT, ROLE).await;
    let provider = aws_credential_types::provider::SharedCredentialsProvider::new(creds);
    let cert = enroll(&enroll_config(&env), &provider)
        .await
        .expect("enrolled");
    assert_eq!(cert.identity.account_id, ALLOWED_ACCOUNT);
    assert_eq!(cert.identity.role_name, ROLE);
    assert_eq!(cert.identity.agent_id, "agent-1");
    assert!(cert.identity.caller_arn.starts_with(&format!(
        "arn:aws:sts::{ALLOWED_ACCOUNT}:assumed-role/{ROLE}/"
    )));
    assert_eq!(cert.lifetime, Duration::from_secs(3600));
    // Renewal at 2/3 of 3600 s = 2400 s after receipt.
    assert_eq!(
        cert.renew_at(),
        cert.received_at + Duration::from_secs(2400)
    );

    let client =
        Client::new(client_config(&env.ca, env.server.local_addr()), cert).expect("client");
    let reply = client
        .send(&frame(ALLOWED_ACCOUNT, 7, 10))
        .await
        .expect("sent");
    assert_eq!(ack_sequence(&reply), 7);
    assert_eq!(
        env.handler
            .records
            .load(std::sync::atomic::Ordering::SeqCst),
        10
    );
    assert_eq!(env.server.stats().enrollments_total, 1);
}

#[tokio::test]
async fn account_outside_the_organisation_is_refused() {
    let env = env(Duration::from_secs(3600)).await;
    let creds = env.moto.assume_role(OTHER_ACCOUNT, ROLE).await;
    let provider = aws_credential_types::provider::SharedCredentialsProvider::new(creds);
    assert_eq!(
        refusal_code(enroll(&enroll_config(&env), &provider).await),
        RefusalCode::AccountNotAllowed
    );
}

#[tokio::test]
async fn an_account_added_to_the_allowed_set_while_serving_can_enrol() {
    let env = env(Duration::from_secs(3600)).await;
    let creds = env.moto.assume_role(OTHER_ACCOUNT, ROLE).await;
    let provider = aws_credential_types::provider::SharedCredentialsProvider::new(creds);
    assert_eq!(
        refusal_code(enroll(&enroll_config(&env), &provider).await),
        RefusalCode::AccountNotAllowed
    );
    // What an organisation refresh does when the account joins.
    env.allowed
        .replace([ALLOWED_ACCOUNT.to_owned(), OTHER_ACCOUNT.to_owned()])
        .unwrap();
    let cert = enroll(&enroll_config(&env), &provider).await.unwrap();
    assert_eq!(cert.identity.account_id, OTHER_ACCOUNT);
    // And when it leaves, it can no longer enrol.
    env.allowed.replace([ALLOWED_ACCOUNT.to_owned()]).unwrap();
    assert_eq!(
        refusal_code(enroll(&enroll_config(&env), &provider).await),
        RefusalCode::AccountNotAllowed
    );
}

#[tokio::test]
async fn wrong_role_is_refused() {
    let env = env(Duration::from_secs(3600)).await;
    let creds = env.moto.assume_role(ALLOWED_ACCOUNT, "SomeOtherRole").await;
    let provider = aws_credential_types::provider::SharedCredentialsProvider::new(creds);
    assert_eq!(
        refusal_code(enroll(&enroll_config(&env), &provider).await),
        RefusalCode::WrongRole
    );
}

#[tokio::test]
async fn replayed_requests_are_refused() {
    let env = env(Duration::from_secs(3600)).await;
    let creds = env.moto.assume_role(ALLOWED_ACCOUNT, ROLE).await;
    let first = EnrollmentSession::open(&enroll_config(&env))
        .await
        .expect("open");
    let captured = first.sign(&creds).expect("sign");
    first
        .submit(captured.clone())
        .await
        .expect("first use enrols");

    // As captured: the challenge nonce belongs to the first enrolment.
    let second = EnrollmentSession::open(&enroll_config(&env))
        .await
        .expect("open");
    assert_eq!(
        refusal_code(second.submit(captured.clone()).await),
        RefusalCode::BadChallenge
    );

    // With the challenge header rewritten to the new nonce: the signature
    // is one already used (and would no longer match at STS either).
    let third = EnrollmentSession::open(&enroll_config(&env))
        .await
        .expect("open");
    let mut forged = captured.clone();
    forged.set_header(
        SERVER_ID_HEADER,
        &third.challenge().server_id_header.clone(),
    );
    assert_eq!(
        refusal_code(third.submit(forged).await),
        RefusalCode::Replayed
    );
}

#[tokio::test]
async fn tampered_requests_are_refused() {
    let env = env(Duration::from_secs(3600)).await;
    let creds = env.moto.assume_role(ALLOWED_ACCOUNT, ROLE).await;
    type Tamper = fn(&mut canopy_transport::wire::SignedRequest);
    let cases: [(&str, Tamper, RefusalCode); 6] = [
        (
            "body changed",
            |r| r.body = b"Action=AssumeRole&Version=2011-06-15".to_vec(),
            RefusalCode::Tampered,
        ),
        (
            "payload hash changed",
            |r| r.set_header("x-amz-content-sha256", &"0".repeat(64)),
            RefusalCode::Tampered,
        ),
        (
            "host changed",
            |r| r.set_header("host", "sts.evil.example"),
            RefusalCode::BadRequest,
        ),
        (
            "unsigned header added",
            |r| r.headers.push(("x-extra".into(), "1".into())),
            RefusalCode::BadRequest,
        ),
        (
            "challenge header removed",
            |r| r.headers.retain(|(n, _)| n != SERVER_ID_HEADER),
            RefusalCode::BadRequest,
        ),
        (
            "method changed",
            |r| r.method = "GET".into(),
            RefusalCode::BadRequest,
        ),
    ];
    for (name, tamper, expected) in cases {
        let session = EnrollmentSession::open(&enroll_config(&env))
            .await
            .expect("open");
        let mut request = session.sign(&creds).expect("sign");
        tamper(&mut request);
        assert_eq!(
            refusal_code(session.submit(request).await),
            expected,
            "{name}"
        );
    }
}

#[tokio::test]
async fn stale_or_mismatched_dates_are_refused() {
    let env = env(Duration::from_secs(3600)).await;
    let creds = env.moto.assume_role(ALLOWED_ACCOUNT, ROLE).await;
    for offset_s in [-360i64, 360] {
        let session = EnrollmentSession::open(&enroll_config(&env))
            .await
            .expect("open");
        let at = if offset_s < 0 {
            SystemTime::now() - Duration::from_secs(offset_s.unsigned_abs())
        } else {
            SystemTime::now() + Duration::from_secs(offset_s as u64)
        };
        let request = sign_get_caller_identity(&creds, session.challenge(), at).expect("sign");
        assert_eq!(
            refusal_code(session.submit(request).await),
            RefusalCode::StaleDate,
            "offset {offset_s} s"
        );
    }
    // x-amz-date replaced by one a day later than the credential scope.
    let session = EnrollmentSession::open(&enroll_config(&env))
        .await
        .expect("open");
    let mut request = session.sign(&creds).expect("sign");
    let date = request
        .header_values("x-amz-date")
        .next()
        .expect("date")
        .to_owned();
    let day: u32 = date[6..8].parse().expect("day");
    let shifted = format!(
        "{}{:02}{}",
        &date[..6],
        if day > 27 { day - 1 } else { day + 1 },
        &date[8..]
    );
    request.set_header("x-amz-date", &shifted);
    assert_eq!(
        refusal_code(session.submit(request).await),
        RefusalCode::BadRequest
    );
}

#[tokio::test]
async fn certificate_is_renewed_before_expiry_and_batches_keep_flowing() {
    // 6 s certificates: renewal at 4 s, expiry at 6 s.
    let env = env(Duration::from_secs(6)).await;
    let creds = env.moto.assume_role(ALLOWED_ACCOUNT, ROLE).await;
    let provider = aws_credential_types::provider::SharedCredentialsProvider::new(creds);
    let config = enroll_config(&env);
    let cert = enroll(&config, &provider).await.expect("enrolled");
    let first_der = cert.key.cert_der.clone();
    let client =
        Client::new(client_config(&env.ca, env.server.local_addr()), cert).expect("client");
    client.spawn_renewal(config, provider);
    let mut sequence = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(9) {
        sequence += 1;
        let reply = client
            .send(&frame(ALLOWED_ACCOUNT, sequence, 5))
            .await
            .expect("sent");
        assert_eq!(ack_sequence(&reply), sequence);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let current = client.certificate();
    assert_ne!(
        current.key.cert_der, first_der,
        "certificate was not renewed"
    );
    assert!(env.server.stats().enrollments_total >= 2);
    assert!(sequence >= 20);
    client.close().await;
}

#[tokio::test]
async fn enrolments_beyond_the_limit_are_turned_away_until_a_slot_frees() {
    let moto = Moto::start();
    let ca = new_ca();
    let handler = Arc::new(AckHandler::default());
    let mut policy = EnrollmentPolicy::new(
        "canopy-test",
        AllowedAccounts::new([ALLOWED_ACCOUNT.to_owned()]).unwrap(),
        ROLE,
        moto.url.clone(),
        "us-east-1",
    );
    policy.max_concurrent_enrollments = 1;
    let mut config = server_config(loopback());
    config.enrollment = Some(policy);
    let server = start_server(config, &ca, &handler).await;
    let env_config = EnrollConfig {
        server_addr: server.local_addr(),
        server_name: SERVER_NAME.into(),
        ca_cert_der: ca.cert_der().clone(),
        agent_id: "agent-1".into(),
        timeout: Duration::from_secs(5),
        pin: ChallengePin {
            server_id: "canopy-test".into(),
            sts_url: moto.url.clone(),
        },
    };
    let creds = moto.assume_role(ALLOWED_ACCOUNT, ROLE).await;
    let holding = EnrollmentSession::open(&env_config)
        .await
        .expect("first session");
    match EnrollmentSession::open(&env_config).await {
        Err(EnrollError::Transport(e)) => assert!(e.is_retryable(), "{e}"),
        Err(other) => panic!("expected a transport error, found {other}"),
        Ok(_) => panic!("expected the second enrolment to be turned away"),
    }
    let request = holding.sign(&creds).expect("sign");
    holding.submit(request).await.expect("first enrols");
    // The slot is free again.
    let again = EnrollmentSession::open(&env_config)
        .await
        .expect("slot freed");
    let request = again.sign(&creds).expect("sign");
    again.submit(request).await.expect("enrols");
}

/// Issue 19: the agent signs only for the server id and STS endpoint it is
/// configured with; an aggregator (or impostor) asking for anything else
/// gets nothing signed and the agent says why.
#[tokio::test]
async fn the_agent_refuses_a_challenge_for_another_server_id_or_sts_host() {
    let env = env(Duration::from_secs(3600)).await;
    let creds = env.moto.assume_role(ALLOWED_ACCOUNT, ROLE).await;
    let provider = aws_credential_types::provider::SharedCredentialsProvider::new(creds);
    let mut other_id = enroll_config(&env);
    other_id.pin.server_id = "canopy-prod".into();
    match enroll(&other_id, &provider).await {
        Err(EnrollError::ChallengeNotPinned(reason)) => assert_eq!(
            reason,
            "expected a challenge for server id \"canopy-prod\", found \"canopy-test\"; refusing to sign"
        ),
        other => panic!(
            "expected a pinning refusal, found {:?}",
            other.map(|c| c.identity)
        ),
    }
    let mut other_sts = enroll_config(&env);
    other_sts.pin.sts_url = "https://sts.amazonaws.com".into();
    match enroll(&other_sts, &provider).await {
        Err(e @ EnrollError::ChallengeNotPinned(_)) => {
            assert!(!e.is_retryable());
            let text = e.to_string();
            assert!(
                text.starts_with("enrolment challenge: expected a challenge for sts endpoint https://sts.amazonaws.com, found \"http://127.0.0.1:"),
                "{text}"
            );
        }
        other => panic!(
            "expected a pinning refusal, found {:?}",
            other.map(|c| c.identity)
        ),
    }
    // Nothing was signed, so nothing reached the enrolment decision.
    assert_eq!(env.server.stats().enrollments_total, 2);
    enroll(&enroll_config(&env), &provider)
        .await
        .expect("the pinned configuration enrols");
}
