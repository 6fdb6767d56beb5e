//! Issue 17 §4, email over STARTTLS with authentication, through a real
//! relay: aiosmtpd started here with STARTTLS required (`require_starttls`,
//! a certificate issued in the test by a private CA the route trusts
//! through `smtp_ca_file`) and SMTP AUTH required after TLS. The relay
//! records each session's TLS version, cipher and authenticated user with
//! the message, so the test checks that the email arrived over TLS and
//! authenticated, and its headers and body. A wrong password is a delivery
//! failure that is retried (the row stays queued and is delivered once the
//! password is fixed), never dropped; a route that requires STARTTLS
//! against a relay that does not offer it fails instead of sending in clear.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use canopy_aggregator::alerts::AlertsConfig;
use canopy_aggregator::alerts::evaluate::{Evaluator, NoAnomalies, NoForecast};
use canopy_aggregator::alerts::metrics::AlertMetrics;
use canopy_aggregator::alerts::notify::Notifiers;
use canopy_aggregator::alerts::outbox::Sender;
use canopy_transport::CertificateAuthority;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::alerts::{SmtpServer, app, call, data_hour, free_port, header, store_web_emissions};
use crate::support::TestDb;

const USER: &str = "canopy";
const PASSWORD: &str = "s3cret-relay-password";

/// The relay: aiosmtpd's Controller with STARTTLS and AUTH required; every
/// accepted message is written as JSON with the session's TLS and AUTH
/// facts, every AUTH attempt appended to `auth.log`.
const RELAY_PY: &str = r#"
import base64, json, os, ssl, sys, threading, time, uuid, warnings
warnings.simplefilter("ignore", DeprecationWarning)
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, cert_der, key_der, outdir, user, password = sys.argv[1:7]
with open(cert_der, "rb") as f:
    cert_pem = ssl.DER_cert_to_PEM_cert(f.read())
with open(key_der, "rb") as f:
    key_pem = "-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(f.read()).decode() + "-----END PRIVATE KEY-----\n"
pem = os.path.join(outdir, "server.pem")
with open(pem, "w") as f:
    f.write(cert_pem + key_pem)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(pem)

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == user.encode() and auth_data.password == password.encode()
    with open(os.path.join(outdir, "auth.log"), "a") as f:
        f.write("%s %s %s tls=%s\n" % ("ok" if ok else "fail", mechanism, auth_data.login.decode(), session.ssl is not None))
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

class Store:
    async def handle_DATA(self, server, session, envelope):
        ssl_object = (session.ssl or {}).get("ssl_object")
        record = {
            "tls": session.ssl is not None,
            "tls_version": ssl_object.version() if ssl_object else None,
            "cipher": list((session.ssl or {}).get("cipher") or []),
            "authenticated": bool(session.authenticated),
            "auth_user": session.auth_data if session.authenticated else None,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content": envelope.content.decode("utf-8", "replace"),
        }
        name = "%d-%s.json" % (time.time_ns(), uuid.uuid4().hex)
        tmp = os.path.join(outdir, "msg", name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(outdir, "msg", name))
        return "250 OK"

os.makedirs(os.path.join(outdir, "msg"), exist_ok=True)
controller = Controller(Store(), hostname="127.0.0.1", port=int(port), tls_context=ctx, require_starttls=True,
                        authenticator=authenticator, auth_required=True, auth_require_tls=True)
controller.start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// The STARTTLS relay and the CA its certificate chains to.
struct TlsRelay {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
}

impl TlsRelay {
    async fn start() -> TlsRelay {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("canopy test smtp ca").unwrap();
        let server = ca
            .issue_server_certificate(&["127.0.0.1".to_owned(), "localhost".to_owned()], Duration::from_secs(3_600))
            .unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        std::fs::write(dir.path().join("server.der"), server.cert_der.as_ref()).unwrap();
        std::fs::write(dir.path().join("server-key.der"), &server.key_pkcs8_der).unwrap();
        let port = free_port();
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(RELAY_PY)
            .arg(port.to_string())
            .arg(dir.path().join("server.der"))
            .arg(dir.path().join("server-key.der"))
            .arg(dir.path())
            .args([USER, PASSWORD])
            .stdout(std::process::Stdio::null())
            // The relay's own log (TLS handshakes refused on purpose below).
            .stderr(std::fs::File::create(dir.path().join("relay.log")).unwrap())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/test.sh installs aiosmtpd from PyPI)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return TlsRelay { child, port, dir, ca_file };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the STARTTLS relay did not listen on {port} within 10 s (is aiosmtpd installed?)");
    }

    /// Every message accepted so far, oldest first.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("msg"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
    }

    /// AUTH attempts so far ("ok|fail MECHANISM user tls=True|False").
    fn auth_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("auth.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn url(&self, password: &str) -> String {
        format!("smtp://{USER}:{password}@127.0.0.1:{}?tls=required", self.port)
    }
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mail_config(smtp_url: String, ca_file: Option<&Path>) -> AlertsConfig {
    AlertsConfig {
        smtp_url: Some(smtp_url),
        smtp_ca_file: ca_file.map(Path::to_owned),
        email_from: "canopy@example.org".to_owned(),
        dashboard_url: "http://canopy.example.org".to_owned(),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        send_timeout: Duration::from_secs(5),
        ..AlertsConfig::default()
    }
}

/// Team web over a monthly 8 kg budget with one email route: the round at
/// `now` enqueues exactly one trigger. Returns the budget id.
async fn one_email_queued(pool: &PgPool, cfg: &AlertsConfig, now: i64) -> i64 {
    let app = app(pool, cfg);
    store_web_emissions(pool, 1, data_hour(now), 10.0).await;
    let (status, body) =
        call(&app, "PUT", "/v1/alert-routes/team-mail", Some(json!({ "kind": "email", "to": ["oncall@example.org"] })))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &app,
        "POST",
        "/v1/budgets",
        Some(json!({ "name": "web monthly", "scope": { "team": "web" }, "period": "month", "amount_kg_co2e": 8.0,
                     "routes": ["team-mail"] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let evaluator = Evaluator {
        pool: pool.clone(),
        config: cfg.clone(),
        forecast: Arc::new(NoForecast),
        anomalies: Arc::new(NoAnomalies),
        metrics: Arc::new(AlertMetrics::default()),
        outbox_wake: Arc::new(tokio::sync::Notify::new()),
    };
    let r = evaluator.run_round(now).await.unwrap();
    assert_eq!((r.triggered, r.enqueued), (1, 1), "{r:?}");
    body["budget_id"].as_i64().unwrap()
}

/// Starts a sender with `cfg`; abort the handle to stop it.
fn start_sender(pool: &PgPool, cfg: &AlertsConfig) -> (tokio::task::JoinHandle<()>, Arc<AlertMetrics>) {
    let metrics = Arc::new(AlertMetrics::default());
    let notifiers = Arc::new(Notifiers::new(cfg.clone()).unwrap());
    let sender = Arc::new(Sender::new(
        pool.clone(),
        notifiers,
        cfg.clone(),
        metrics.clone(),
        Arc::new(tokio::sync::Notify::new()),
    ));
    (tokio::spawn(sender.run_forever()), metrics)
}

/// (attempts, last error, delivered, failed for good) of the only outbox row.
async fn outbox_row(pool: &PgPool) -> (i32, Option<String>, bool, bool) {
    sqlx::query_as("SELECT attempts, last_error, delivered_at IS NOT NULL, failed_at IS NOT NULL FROM alert_outbox")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out (30 s) waiting for {what}");
}

#[tokio::test]
async fn starttls_relay_with_auth_receives_the_email_over_tls() {
    let relay = TlsRelay::start().await;
    let db = TestDb::migrated().await;
    let cfg = mail_config(relay.url(PASSWORD), Some(&relay.ca_file));
    cfg.validate().unwrap();
    let now = canopy_aggregator::http::system_clock();
    let budget_id = one_email_queued(&db.pool, &cfg, now).await;
    let (sender, metrics) = start_sender(&db.pool, &cfg);
    until("the email to be delivered", || async { outbox_row(&db.pool).await.2 }).await;
    sender.abort();

    let (attempts, _, delivered, failed) = outbox_row(&db.pool).await;
    assert_eq!((attempts, delivered, failed), (1, true, false));
    assert_eq!(metrics.delivered_total[1].load(std::sync::atomic::Ordering::Relaxed), 1, "one email delivered");
    let messages = relay.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    // Over TLS (after STARTTLS, the relay requires it) and authenticated.
    assert_eq!(m["tls"], true, "{m}");
    assert!(m["tls_version"].as_str().is_some_and(|v| v == "TLSv1.2" || v == "TLSv1.3"), "{m}");
    assert!(!m["cipher"].as_array().unwrap().is_empty(), "{m}");
    assert_eq!((m["authenticated"].as_bool(), m["auth_user"].as_str()), (Some(true), Some(USER)), "{m}");
    assert_eq!(relay.auth_log().iter().filter(|l| l.starts_with("ok ") && l.ends_with("tls=True")).count(), 1);
    assert_eq!(m["mail_from"], "canopy@example.org");
    assert_eq!(m["rcpt_tos"], json!(["oncall@example.org"]));
    // Headers and both bodies.
    let raw = m["content"].as_str().unwrap();
    assert_eq!(header(raw, "From").as_deref(), Some("canopy@example.org"));
    assert_eq!(header(raw, "To").as_deref(), Some("oncall@example.org"));
    let subject = header(raw, "Subject").unwrap();
    assert!(
        subject.starts_with("[Canopy] TRIGGERED critical: Carbon budget \"web monthly\" crossed 100 %"),
        "{subject}"
    );
    let month = canopy_aggregator::time::yyyymmdd(canopy_aggregator::time::month_start_shifted(now, 0));
    assert_eq!(header(raw, "X-Canopy-Dedup-Key"), Some(format!("canopy/budget/{budget_id}/threshold/{month}")));
    assert!(raw.contains("Content-Type: text/plain") && raw.contains("Content-Type: text/html"), "{raw}");
    assert!(raw.contains("10.0 kgCO2e of 8.0 kgCO2e"), "{raw}");

    // Without the private CA the relay's certificate is not trusted: no delivery.
    let untrusted = mail_config(relay.url(PASSWORD), None);
    let n = Notifiers::new(untrusted).unwrap();
    let route =
        canopy_aggregator::alerts::routes::parse_route("m", &json!({ "kind": "email", "to": ["a@example.org"] }))
            .unwrap();
    let e = n.send(&route, &json!({ "action": "trigger", "summary": "x", "dedup_key": "k" })).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(relay.messages().len(), 1, "nothing sent to an untrusted relay");
}

#[tokio::test]
async fn a_wrong_smtp_password_is_retried_and_delivered_once_fixed() {
    let relay = TlsRelay::start().await;
    let db = TestDb::migrated().await;
    let wrong = mail_config(relay.url("not-the-password"), Some(&relay.ca_file));
    let now = canopy_aggregator::http::system_clock();
    one_email_queued(&db.pool, &wrong, now).await;
    // The first aggregator: its own runtime and pool, dropped whole below as a
    // process restart would (the sender's route workers with it).
    let first = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let metrics = {
        let (url, wrong) = (db.url(), wrong.clone());
        first
            .spawn(async move {
                let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await.unwrap();
                let (sender, metrics) = start_sender(&pool, &wrong);
                tokio::spawn(async move {
                    let _ = sender.await;
                    drop(pool);
                });
                metrics
            })
            .await
            .unwrap()
    };
    until("three refused attempts", || async { outbox_row(&db.pool).await.0 >= 3 }).await;
    first.shutdown_background();
    let (attempts, error, delivered, failed) = outbox_row(&db.pool).await;
    assert!(!delivered && !failed, "still queued after {attempts} attempts, not dropped");
    let error = error.unwrap();
    assert!(error.contains("SMTP authentication failed") && error.contains("535"), "{error}");
    assert!(metrics.delivery_failures_total[1].load(std::sync::atomic::Ordering::Relaxed) >= 3);
    assert_eq!(metrics.delivery_rejected_total[1].load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(relay.messages().is_empty());
    let fails = relay.auth_log();
    assert!(fails.len() >= 3 && fails.iter().all(|l| l.starts_with("fail ") && l.ends_with("tls=True")), "{fails:?}");

    // The operator fixes the password (a restart with the new URL): the queued row goes out, once.
    let fixed = mail_config(relay.url(PASSWORD), Some(&relay.ca_file));
    let (sender, _) = start_sender(&db.pool, &fixed);
    until("the email to be delivered", || async { outbox_row(&db.pool).await.2 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sender.abort();
    let messages = relay.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!((messages[0]["tls"].as_bool(), messages[0]["authenticated"].as_bool()), (Some(true), Some(true)));
}

#[tokio::test]
async fn a_starttls_route_never_sends_in_clear_to_a_relay_without_starttls() {
    // The plain relay of alerts.rs: aiosmtpd without a TLS context, so no STARTTLS offered.
    let plain = SmtpServer::start().await;
    let db = TestDb::migrated().await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("ca.pem");
    std::fs::write(&ca_file, CertificateAuthority::generate("unused ca").unwrap().cert_pem()).unwrap();
    let cfg = mail_config(format!("smtp://127.0.0.1:{}?tls=required", plain.port), Some(&ca_file));
    cfg.validate().unwrap();
    let now = canopy_aggregator::http::system_clock();
    one_email_queued(&db.pool, &cfg, now).await;
    let (sender, _) = start_sender(&db.pool, &cfg);
    until("two failed attempts", || async { outbox_row(&db.pool).await.0 >= 2 }).await;
    sender.abort();
    let (_, error, delivered, failed) = outbox_row(&db.pool).await;
    assert!(!delivered && !failed, "kept for retry");
    assert!(error.as_deref().is_some_and(|e| e.contains("SMTP delivery failed")), "{error:?}");
    assert!(plain.messages().is_empty(), "nothing sent in clear: {:?}", plain.messages());

    // A CA bundle is checked at start-up: missing, not PEM, or for a relay URL without TLS.
    let missing =
        mail_config(format!("smtp://127.0.0.1:{}?tls=required", plain.port), Some(&ca_dir.path().join("nope.pem")));
    assert_eq!(missing.validate().unwrap_err().field, "smtp_ca_file");
    let clear = mail_config(format!("smtp://127.0.0.1:{}", plain.port), Some(&ca_file));
    assert_eq!(clear.validate().unwrap_err().field, "smtp_ca_file");
    assert_eq!(Notifiers::new(clear).err().map(|e| e.field), Some("smtp_ca_file".to_owned()));
}

#[tokio::test]
async fn a_relay_that_never_answers_fails_the_attempt_within_the_send_timeout() {
    // Accepts the connection (the kernel's backlog) but never greets: lettre's
    // own timeout covers only the connection, the notifier bounds the exchange.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cfg =
        AlertsConfig { send_timeout: Duration::from_secs(1), ..mail_config(format!("smtp://127.0.0.1:{port}"), None) };
    let n = Notifiers::new(cfg).unwrap();
    let route =
        canopy_aggregator::alerts::routes::parse_route("m", &json!({ "kind": "email", "to": ["a@example.org"] }))
            .unwrap();
    let started = std::time::Instant::now();
    let e = tokio::time::timeout(
        Duration::from_secs(10),
        n.send(&route, &json!({ "action": "trigger", "summary": "x", "dedup_key": "k" })),
    )
    .await
    .expect("the attempt ends")
    .unwrap_err();
    assert!(e.is_retryable() && e.to_string().contains("no answer within 1 s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    drop(silent);
}
