//! Fault-injecting HTTP proxy in front of moto: answers a share of calls
//! with the throttling error of the call's protocol, a share with 500, and
//! forwards the rest. Records when each call arrived, per API.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What the proxy saw.
#[derive(Default, Debug)]
pub struct Log {
    /// Arrival times per API key (service + operation).
    pub arrivals: BTreeMap<String, Vec<Instant>>,
    pub throttled: usize,
    pub server_errors: usize,
    pub forwarded: usize,
}

pub struct FaultProxy {
    pub port: u16,
    pub log: Arc<Mutex<Log>>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Service from the SigV4 credential scope, operation from the protocol.
fn api_key(req: &hyper::http::request::Parts, body: &[u8]) -> (String, String) {
    let auth = req.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let service = auth.split("Credential=").nth(1).and_then(|c| c.split('/').nth(3)).unwrap_or("unknown").to_owned();
    let text = String::from_utf8_lossy(body);
    let operation = if let Some(target) = req.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        target.to_owned()
    } else if let Some(action) = text.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        action.to_owned()
    } else {
        let query_keys: Vec<&str> =
            req.uri.query().unwrap_or_default().split('&').map(|kv| kv.split('=').next().unwrap_or_default()).collect();
        let segments: Vec<&str> = req.uri.path().split('/').filter(|s| !s.is_empty()).take(2).collect();
        let shape = if service == "s3" {
            if segments.is_empty() { "root" } else { "bucket" }.to_owned()
        } else {
            segments.join("/")
        };
        format!("{} {shape} {}", req.method, query_keys.join(","))
    };
    (service, operation)
}

fn throttle_response(service: &str, parts: &hyper::http::request::Parts, body: &[u8]) -> Response<Full<Bytes>> {
    let json = parts.headers.get("x-amz-target").is_some()
        || parts.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("amz-json"));
    let (status, content_type, text) = if json {
        (400, "application/x-amz-json-1.0", r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_owned())
    } else if service == "lambda" {
        (429, "application/json", r#"{"Type":"User","message":"Rate exceeded"}"#.to_owned())
    } else if service == "s3" {
        (
            503,
            "application/xml",
            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".to_owned(),
        )
    } else if service == "ec2" {
        (503, "text/xml", "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>1</RequestID></Response>".to_owned())
    } else {
        let _ = body;
        (400, "text/xml", "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>".to_owned())
    };
    let mut builder =
        Response::builder().status(StatusCode::from_u16(status).unwrap()).header("content-type", content_type);
    if json || service == "lambda" {
        let code = if service == "lambda" { "TooManyRequestsException" } else { "ThrottlingException" };
        builder = builder.header("x-amzn-ErrorType", code);
    }
    builder.body(Full::new(Bytes::from(text))).unwrap()
}

/// Rewrites a forwarded response body, given the call's operation.
pub type Rewrite = fn(&str, Bytes) -> Bytes;

/// moto 5.2 answers ECS RunTask/DescribeTasks with `containers[].cpu` and
/// `memory` as JSON numbers where the API (and aws-sdk-ecs) has strings:
/// quote them, changing nothing else.
pub fn quote_ecs_container_numbers(operation: &str, body: Bytes) -> Bytes {
    let tasks = ["AmazonEC2ContainerServiceV20141113.RunTask", "AmazonEC2ContainerServiceV20141113.DescribeTasks"];
    if !tasks.contains(&operation) {
        return body;
    }
    let mut text = String::from_utf8_lossy(&body).into_owned();
    for key in ["\"cpu\": ", "\"memory\": "] {
        let mut out = String::with_capacity(text.len() + 16);
        let mut rest = text.as_str();
        while let Some(at) = rest.find(key) {
            let (head, tail) = rest.split_at(at + key.len());
            out.push_str(head);
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                out.push('"');
                out.push_str(&tail[..digits]);
                out.push('"');
            }
            rest = &tail[digits..];
        }
        out.push_str(rest);
        text = out;
    }
    Bytes::from(text)
}

impl FaultProxy {
    /// Starts a proxy to `upstream_port`, throttling `throttle_pct` % and
    /// failing `error_pct` % of calls (deterministic from `seed`).
    pub async fn start(upstream_port: u16, throttle_pct: u64, error_pct: u64, seed: u64) -> FaultProxy {
        FaultProxy::start_with(upstream_port, throttle_pct, error_pct, seed, None).await
    }

    /// [`FaultProxy::start`] with an optional rewrite of forwarded responses.
    pub async fn start_with(
        upstream_port: u16,
        throttle_pct: u64,
        error_pct: u64,
        seed: u64,
        rewrite: Option<Rewrite>,
    ) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Log::default()));
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let state = (log.clone(), client, counter);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { break };
                let (log, client, counter) = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (log, client, counter) = (log.clone(), client.clone(), counter.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let (service, operation) = api_key(&parts, &body);
                            let roll =
                                splitmix(seed ^ counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 100;
                            {
                                let mut l = log.lock().unwrap();
                                l.arrivals.entry(format!("{service} {operation}")).or_default().push(Instant::now());
                            }
                            if roll < throttle_pct {
                                log.lock().unwrap().throttled += 1;
                                return Ok::<_, Infallible>(throttle_response(&service, &parts, &body));
                            }
                            if roll < throttle_pct + error_pct {
                                log.lock().unwrap().server_errors += 1;
                                return Ok(Response::builder()
                                    .status(500)
                                    .body(Full::new(Bytes::from_static(b"internal error")))
                                    .unwrap());
                            }
                            let mut forward = Request::builder().method(parts.method.clone()).uri(format!(
                                "http://127.0.0.1:{upstream_port}{}",
                                parts.uri.path_and_query().map_or("/", |p| p.as_str())
                            ));
                            for (k, v) in &parts.headers {
                                forward = forward.header(k, v);
                            }
                            let response = client.request(forward.body(Full::new(body)).unwrap()).await.unwrap();
                            let (mut rparts, rbody) = response.into_parts();
                            let mut rbody = rbody.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            if let Some(rewrite) = rewrite {
                                rbody = rewrite(&operation, rbody);
                                rparts.headers.insert("content-length", rbody.len().into());
                            }
                            log.lock().unwrap().forwarded += 1;
                            Ok(Response::from_parts(rparts, Full::new(rbody)))
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        FaultProxy { port, log }
    }

    /// Most calls of one API within any window of `window` seconds.
    pub fn max_in_window(&self, window_s: f64) -> BTreeMap<String, usize> {
        let log = self.log.lock().unwrap();
        log.arrivals
            .iter()
            .map(|(k, times)| {
                let mut best = 0;
                for (i, t) in times.iter().enumerate() {
                    let n = times[i..].iter().take_while(|u| u.duration_since(*t).as_secs_f64() < window_s).count();
                    best = best.max(n);
                }
                (k.clone(), best)
            })
            .collect()
    }
}
