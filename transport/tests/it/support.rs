//! Shared test harness: CA, moto, handlers, batches.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use canopy_protocol::{
    Ack, Batch, Compression, EmissionRecord, GridFactorUsed, IdempotencyKey, Quality, Reply,
    Subject, encode_batch,
};
use canopy_transport::ca::generate_agent_key_and_csr;
use canopy_transport::{
    AgentCertificate, BatchHandler, CertificateAuthority, CertifiedKey, ClientConfig, InboundBatch,
    PeerIdentity, Server, ServerConfig,
};

pub const ALLOWED_ACCOUNT: &str = "111111111111";
pub const OTHER_ACCOUNT: &str = "222222222222";
pub const ROLE: &str = "CanopyAgent";
pub const SERVER_NAME: &str = "localhost";

/// A moto_server child process on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}); install it with: pip install 'moto[server]'"
                )
            });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not listen on {addr} within 30 s; install it with: pip install 'moto[server]'"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Temporary credentials for `role_name` in `account`, from moto's
    /// AssumeRole (signed here with dummy long-term keys).
    pub async fn assume_role(&self, account: &str, role_name: &str) -> Credentials {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use aws_sigv4::sign::v4;
        let base = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMIEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let body = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A{account}%3Arole%2F{role_name}&RoleSessionName=agent-session"
        );
        let identity = base.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("sts")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let content_type = "application/x-www-form-urlencoded";
        let signable = SignableRequest::new(
            "POST",
            &self.url,
            [("content-type", content_type)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut req = reqwest::Client::new()
            .post(&self.url)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let text = req
            .send()
            .await
            .expect("moto reachable")
            .text()
            .await
            .expect("body");
        let field = |name: &str| {
            let open = format!("<{name}>");
            let close = format!("</{name}>");
            let start = text
                .find(&open)
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                + open.len();
            let end = text[start..].find(&close).expect("close tag") + start;
            text[start..end].to_owned()
        };
        Credentials::new(
            field("AccessKeyId"),
            field("SecretAccessKey"),
            Some(field("SessionToken")),
            None,
            "moto-assume-role",
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

pub fn new_ca() -> Arc<CertificateAuthority> {
    Arc::new(CertificateAuthority::generate("canopy test ca").expect("ca"))
}

/// A client certificate issued straight from the CA (no STS), for data-path tests.
pub fn direct_cert(
    ca: &CertificateAuthority,
    account: &str,
    lifetime: Duration,
) -> AgentCertificate {
    let (key_der, csr_der) = generate_agent_key_and_csr("agent-1").expect("csr");
    let identity = PeerIdentity {
        agent_id: "agent-1".into(),
        account_id: account.into(),
        role_name: ROLE.into(),
        caller_arn: format!("arn:aws:sts::{account}:assumed-role/{ROLE}/agent-1"),
        not_after_unix_s: 0,
    };
    let now = SystemTime::now();
    let cert_der = ca
        .issue_client_certificate(&csr_der, &identity, now, lifetime)
        .expect("issue");
    let identity =
        canopy_transport::identity::identity_from_certificate(&cert_der).expect("identity");
    AgentCertificate {
        key: CertifiedKey {
            cert_der,
            key_pkcs8_der: key_der,
        },
        identity,
        received_at: now,
        lifetime,
    }
}

pub fn client_config(ca: &CertificateAuthority, server: SocketAddr) -> ClientConfig {
    let mut config = ClientConfig::new(server, SERVER_NAME.into(), ca.cert_der().clone());
    config.retry.min_delay = Duration::from_millis(50);
    config.retry.max_delay = Duration::from_millis(500);
    config.retry.max_retries = 40;
    config.connect_timeout = Duration::from_secs(2);
    config
}

pub fn server_config(listen: SocketAddr) -> ServerConfig {
    ServerConfig::new(listen, vec![SERVER_NAME.into(), "127.0.0.1".into()])
}

/// A handler that acks after an optional delay and records concurrency.
#[derive(Default)]
pub struct AckHandler {
    pub delay: Duration,
    pub handled: AtomicU64,
    pub records: AtomicU64,
    pub concurrent: AtomicU64,
    pub max_concurrent: AtomicU64,
    pub rejected: AtomicU64,
}

impl BatchHandler for AckHandler {
    async fn handle(&self, peer: &PeerIdentity, inbound: InboundBatch) -> Reply {
        assert_eq!(peer.account_id, inbound.batch.account_id);
        let now = self.concurrent.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.concurrent.fetch_sub(1, Ordering::SeqCst);
        self.handled.fetch_add(1, Ordering::SeqCst);
        self.records
            .fetch_add(inbound.batch.record_count() as u64, Ordering::SeqCst);
        Reply::Ack(Ack {
            sequence: inbound.batch.sequence,
            idempotency_key: inbound.batch.idempotency_key,
            duplicate: false,
        })
    }

    async fn rejected(
        &self,
        _peer: &PeerIdentity,
        _frame: &[u8],
        _error: &canopy_protocol::ReplyError,
    ) {
        self.rejected.fetch_add(1, Ordering::SeqCst);
    }
}

fn grid(g: f64) -> GridFactorUsed {
    GridFactorUsed {
        g_co2e_per_kwh: g,
        source: "ccf".into(),
        vintage: "2023".into(),
    }
}

/// A batch of `records` emission records for `account`.
pub fn batch(account: &str, sequence: u64, records: usize) -> Batch {
    let emissions = (0..records)
        .map(|i| EmissionRecord {
            subject: Subject::Resource {
                arn: format!("arn:aws:ec2:eu-west-1:{account}:instance/i-{i:017x}"),
            },
            interval_start_unix_s: 1_700_000_000,
            interval_end_unix_s: 1_700_003_600,
            energy_compute_kwh: 0.0093,
            energy_memory_kwh: 0.003,
            energy_storage_kwh: 0.0,
            energy_networking_kwh: 0.0,
            energy_accelerators_kwh: 0.0,
            pue: 1.135,
            embodied_g_co2e: 1.2,
            operational_location_g_co2e: 4.662807,
            operational_market_g_co2e: 0.0,
            grid_location: grid(334.0),
            grid_market: grid(0.0),
            quality: Quality::Estimated,
            low_g_co2e: 4.0,
            high_g_co2e: 9.5,
            methodology_version: "canopy-1".into(),
            revision: 0,
        })
        .collect();
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&sequence.to_le_bytes());
    Batch {
        agent_id: "agent-1".into(),
        account_id: account.into(),
        region: "eu-west-1".into(),
        sequence,
        idempotency_key: IdempotencyKey(key),
        created_at_unix_ms: 1_700_003_600_000,
        resources: Vec::new(),
        emissions,
        agent_status: None,
    }
}

pub fn frame(account: &str, sequence: u64, records: usize) -> Vec<u8> {
    encode_batch(&batch(account, sequence, records), Compression::Lz4).expect("encode")
}

pub fn ack_sequence(reply: &Reply) -> u64 {
    match reply {
        Reply::Ack(ack) => ack.sequence,
        Reply::Error(e) => panic!("expected an ack, found error {}: {}", e.code, e.message),
    }
}

pub async fn start_server(
    config: ServerConfig,
    ca: &Arc<CertificateAuthority>,
    handler: &Arc<AckHandler>,
) -> Server {
    Server::start(config, ca.clone(), handler.clone()).expect("server starts")
}
