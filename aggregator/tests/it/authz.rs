//! Issue 19 §2: who may see what. A local OIDC issuer (discovery + JWKS
//! served over HTTP from a test EC P-256 key, rotated during a test) and
//! JWTs minted with it; API tokens in the database; every HTTP route (from
//! `route_table`, so a new route without a case fails here) and every gRPC
//! method (from the proto file) called as each role and scope, with the
//! answers compared with brute-force sums of the stored facts in scope.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use canopy_aggregator::auth::config::{LoginConfig, OidcConfig};
use canopy_aggregator::auth::oidc::OidcVerifier;
use canopy_aggregator::auth::principal::{ClaimNames, Role, Scope};
use canopy_aggregator::auth::{Auth, OPEN_ACCESS_HEADER, audit, tokens};
use canopy_aggregator::grpc::{CanopyQueryClient, GrpcQuery, pb};
use canopy_aggregator::alerts::grpc::{CanopyBudgetsClient, GrpcBudgets, pb as bpb};
use canopy_aggregator::alerts::http::AlertsHttp;
use canopy_aggregator::http::{router, served_route_table};
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::model::{Batch, InventoryRow};
use canopy_aggregator::query::QueryEngine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::Row;
use tonic::transport::server::TcpIncoming;
use tower::ServiceExt;

use crate::support::{Stored, T0, TestDb, as_group_record, close, fact, seed_accounts, store, stored_facts};

const AUDIENCE: &str = "canopy-api";
const CLIENT_ID: &str = "canopy-dashboard";

fn fixed_now() -> i64 {
    T0 + 7_200
}

fn wall_clock_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

// ---------------------------------------------------------------- issuer

/// A test signing key: EC P-256 (ES256), generated per run.
struct TestKey {
    kid: String,
    pkcs8_der: Vec<u8>,
    jwk: Value,
}

fn new_key(kid: &str) -> TestKey {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw().to_vec();
    assert_eq!((raw.len(), raw[0]), (65, 4), "an uncompressed P-256 point");
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    });
    TestKey { kid: kid.to_owned(), pkcs8_der: pair.serialize_der(), jwk }
}

fn mint(key: &TestKey, claims: &Value) -> String {
    let header = Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::ES256) };
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&key.pkcs8_der)).unwrap()
}

/// The local issuer: discovery, JWKS (replaceable: rotation) and a token
/// endpoint that checks PKCE and answers a prepared ID token.
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    /// The PKCE challenge the token endpoint expects and the ID token it answers.
    login: Arc<Mutex<Option<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn form_value<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

async fn start_issuer(keys: &[&TestKey]) -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks = Arc::new(Mutex::new(json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })));
    let login: Arc<Mutex<Option<(String, String)>>> = Arc::default();
    let discovery = json!({
        "issuer": url, "jwks_uri": format!("{url}/jwks"),
        "authorization_endpoint": format!("{url}/authorize"), "token_endpoint": format!("{url}/token"),
    });
    let (jwks2, login2) = (jwks.clone(), login.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let d = discovery.clone();
                async move { axum::Json(d) }
            }),
        )
        .route(
            "/jwks",
            get(move || {
                let j = jwks2.lock().unwrap().clone();
                async move { axum::Json(j) }
            }),
        )
        .route(
            "/token",
            post(move |body: String| {
                let expected = login2.lock().unwrap().clone();
                async move {
                    let Some((challenge, id_token)) = expected else {
                        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "no login"})));
                    };
                    let verifier = form_value(&body, "code_verifier").unwrap_or("");
                    let computed = URL_SAFE_NO_PAD
                        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
                    if computed != challenge || form_value(&body, "grant_type") != Some("authorization_code") {
                        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"})));
                    }
                    (StatusCode::OK, axum::Json(json!({ "id_token": id_token, "token_type": "Bearer" })))
                }
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).into_future().await;
    });
    Issuer { url, jwks, login, task }
}

fn oidc_config(issuer: &Issuer, login: bool) -> OidcConfig {
    OidcConfig {
        issuer: issuer.url.clone(),
        audience: AUDIENCE.into(),
        claims: ClaimNames::default(),
        login: login.then(|| LoginConfig {
            client_id: CLIENT_ID.into(),
            client_secret: None,
            redirect_url: "http://127.0.0.1:1/auth/callback".into(),
            session_ttl: std::time::Duration::from_secs(3_600),
        }),
        jwks_refresh_cooldown: std::time::Duration::ZERO,
        jwks_max_age: std::time::Duration::from_secs(3_600),
        leeway: std::time::Duration::ZERO,
    }
}

fn claims(issuer: &str, sub: &str, role: &str, extra: Value) -> Value {
    let now = wall_clock_s();
    let mut c = json!({ "iss": issuer, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600, "canopy_role": role });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            c[k] = v;
        }
    }
    c
}

// ------------------------------------------------------------------ data

/// Resources chosen so each team lives in known accounts:
/// web: r1, r13 (222…); data: r2 (333…), r6 (111…); ml: r3 (111…), r7 (222…);
/// untagged: r4 (222…), r8 (333…).
const RESOURCES: [u64; 8] = [1, 2, 3, 4, 6, 7, 8, 13];

fn inventory(resource: u64) -> InventoryRow {
    let f = fact(resource, T0, 3_600, 1);
    InventoryRow {
        account_id: f.account_id,
        region: f.region,
        resource_id: f.resource_id,
        resource_type: f.resource_type,
        service: f.service,
        tags: f.tags.unwrap_or_default(),
        attributes: vec![],
        observed_unix_s: T0 + 3_600,
        deleted: false,
    }
}

struct Org {
    db: TestDb,
    facts: Vec<Stored>,
    /// Real-time group records: (account, team or None, location kg).
    realtime: Vec<(String, Option<String>, f64)>,
}

async fn org() -> Org {
    let db = TestDb::migrated().await;
    seed_accounts(&db.pool).await;
    let mut facts = Vec::new();
    let mut realtime = Vec::new();
    for r in RESOURCES {
        facts.push(fact(r, T0, 3_600, 1));
        facts.push(fact(r, T0 + 3_600, 3_600, 1));
        let g = as_group_record(&fact(r, T0 + 3_900, 300, 1));
        realtime.push((g.account_id.clone(), g.team.clone(), g.location_g_co2e / 1e3));
        facts.push(g);
    }
    let inventory = RESOURCES.iter().map(|r| inventory(*r)).collect();
    store(&db.pool, &Batch { agent_id: "agent-1".into(), sequence: 1, facts, inventory }).await;
    let facts = stored_facts(&db.pool).await;
    assert_eq!(facts.len(), 16, "two hourly facts per resource");
    Org { db, facts, realtime }
}

/// One way of calling, and what it may see.
struct Case {
    name: &'static str,
    /// `Authorization` header value.
    bearer: String,
    role: Role,
    keep_fact: fn(&Stored) -> bool,
    keep_realtime: fn(&str, Option<&str>) -> bool,
    /// Accounts its fleet lists.
    fleet_accounts: &'static [&'static str],
    /// A filter outside its scope (parameter, value), if it has a scope.
    outside: Option<(&'static str, &'static str)>,
    /// Teams its answers may name (None: any).
    teams: Option<&'static [&'static str]>,
}

const ALL_ACCOUNTS: &[&str] = &["111111111111", "222222222222", "333333333333"];

async fn cases(issuer: &Issuer, key: &TestKey, pool: &sqlx::PgPool) -> Vec<Case> {
    let jwt = |sub: &str, role: &str, extra: Value| format!("Bearer {}", mint(key, &claims(&issuer.url, sub, role, extra)));
    let (_, data_token) = tokens::create(
        pool,
        "test",
        &tokens::NewToken {
            name: "data exporter".into(),
            role: Role::TeamViewer,
            scope: Scope { teams: vec!["data".into()], ..Scope::default() },
            expires_in_days: 1,
        },
    )
    .await
    .unwrap();
    vec![
        Case {
            name: "admin (JWT)",
            bearer: jwt("alice", "admin", json!({})),
            role: Role::Admin,
            keep_fact: |_| true,
            keep_realtime: |_, _| true,
            fleet_accounts: ALL_ACCOUNTS,
            outside: None,
            teams: None,
        },
        Case {
            name: "org viewer (JWT, role from a group list)",
            bearer: jwt("bob", "", json!({ "canopy_role": ["staff", "org_viewer"] })),
            role: Role::OrgViewer,
            keep_fact: |_| true,
            keep_realtime: |_, _| true,
            fleet_accounts: ALL_ACCOUNTS,
            outside: None,
            teams: None,
        },
        Case {
            name: "OU viewer r-1/ou-a/ou-b (JWT)",
            bearer: jwt("carol", "ou_viewer", json!({ "canopy_ous": ["r-1/ou-a/ou-b"] })),
            role: Role::OuViewer,
            keep_fact: |f| f.account == "222222222222",
            keep_realtime: |a, _| a == "222222222222",
            fleet_accounts: &["222222222222"],
            outside: Some(("ou", "r-1/ou-c")),
            teams: None,
        },
        Case {
            name: "team viewer web (JWT)",
            bearer: jwt("dave", "team_viewer", json!({ "canopy_teams": "web" })),
            role: Role::TeamViewer,
            keep_fact: |f| f.team == "web",
            keep_realtime: |_, t| t == Some("web"),
            fleet_accounts: &["222222222222"],
            outside: Some(("team", "data")),
            teams: Some(&["web"]),
        },
        Case {
            name: "team viewer data (API token)",
            bearer: format!("Bearer {data_token}"),
            role: Role::TeamViewer,
            keep_fact: |f| f.team == "data",
            keep_realtime: |_, t| t == Some("data"),
            fleet_accounts: &["111111111111", "333333333333"],
            outside: Some(("team", "web")),
            teams: Some(&["data"]),
        },
    ]
}

async fn call(app: &axum::Router, uri: &str, bearer: Option<&str>) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut req = Request::get(uri);
    if let Some(b) = bearer {
        req = req.header(header::AUTHORIZATION, b);
    }
    let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = to_bytes(resp.into_body(), 1 << 22).await.unwrap();
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (status, value, headers)
}

fn location_sum(facts: &[Stored], keep: fn(&Stored) -> bool) -> f64 {
    facts.iter().filter(|f| keep(f)).map(|f| f.sums[1] / 1e3).sum()
}

fn rows_location(body: &Value) -> f64 {
    body["rows"].as_array().unwrap().iter().map(|r| r["metrics"]["location_kg_co2e"].as_f64().unwrap()).sum()
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(close(actual, expected), "{what}: expected {expected}, found {actual}");
}

fn assert_teams(body: &Value, field: impl Fn(&Value) -> Option<String>, case: &Case, what: &str) {
    if let Some(allowed) = case.teams {
        for row in body["rows"].as_array().unwrap() {
            let team = field(row).unwrap_or_default();
            assert!(allowed.contains(&team.as_str()), "{}: {what} names team {team:?}", case.name);
        }
    }
}

// ----------------------------------------------------------------- tests

#[tokio::test]
async fn jwts_are_validated_against_the_issuer_jwks() {
    let t = TestDb::migrated().await;
    let (k1, k2, stranger) = (new_key("k1"), new_key("k2"), new_key("k1"));
    let issuer = start_issuer(&[&k1]).await;
    let verifier = OidcVerifier::discover(oidc_config(&issuer, false)).await.unwrap();
    let auth = Auth::enforced(Some(verifier), t.pool.clone());
    let app = router(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), fixed_now, auth.clone());
    let uri = format!("/v1/totals?from={T0}&to={}", T0 + 3_600);
    let ok = |c: &Value| format!("Bearer {}", mint(&k1, c));
    let valid = claims(&issuer.url, "alice", "org_viewer", json!({}));

    let (status, body, headers) = call(&app, &uri, Some(&ok(&valid))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers.get(OPEN_ACCESS_HEADER).is_none());

    let now = wall_clock_s();
    let mut refused: Vec<(&str, String)> = vec![
        ("no credentials", String::new()),
        ("expired", ok(&json!({ "exp": now - 120, "iss": issuer.url, "aud": AUDIENCE, "sub": "a", "canopy_role": "admin" }))),
        ("wrong audience", ok(&claims(&issuer.url, "a", "admin", json!({ "aud": "someone-else" })))),
        ("wrong issuer", ok(&claims("http://127.0.0.1:9/other", "a", "admin", json!({})))),
        ("no expiry", ok(&json!({ "iss": issuer.url, "aud": AUDIENCE, "sub": "a", "canopy_role": "admin" }))),
        // Signed by another key that claims k1's id: the signature fails.
        ("bad signature", format!("Bearer {}", mint(&stranger, &valid))),
        // k2 is not (yet) in the JWKS: unknown after a refresh.
        ("unknown kid", format!("Bearer {}", mint(&k2, &valid))),
        ("no role claim", ok(&json!({ "iss": issuer.url, "aud": AUDIENCE, "sub": "a", "exp": now + 600 }))),
        ("not bearer", "Basic YTpi".to_owned()),
    ];
    // A symmetric (HS256) token keyed with the public JWK's x: never accepted.
    let hs = jsonwebtoken::encode(
        &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
        &valid,
        &EncodingKey::from_secret(k1.jwk["x"].as_str().unwrap().as_bytes()),
    )
    .unwrap();
    refused.push(("HS256", format!("Bearer {hs}")));
    // A tampered payload (role raised) with the original signature.
    let original = mint(&k1, &claims(&issuer.url, "a", "team_viewer", json!({ "canopy_teams": ["web"] })));
    let parts: Vec<&str> = original.split('.').collect();
    let raised = URL_SAFE_NO_PAD.encode(claims(&issuer.url, "a", "admin", json!({})).to_string());
    refused.push(("tampered payload", format!("Bearer {}.{raised}.{}", parts[0], parts[2])));
    for (what, bearer) in &refused {
        let (status, body, headers) = call(&app, &uri, (!bearer.is_empty()).then_some(bearer.as_str())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer", "{what}");
        assert!(!body.to_string().contains("k1") && !body.to_string().contains("InvalidSignature"), "{what}: {body}");
    }
    let refreshes_before = auth.oidc().unwrap().jwks_refreshes();
    assert!(refreshes_before >= 1, "the unknown kid fetched the JWKS again");

    // Rotation: the issuer publishes k2 and drops k1; a k2 token is
    // accepted on its first use (one more JWKS fetch) ...
    *issuer.jwks.lock().unwrap() = json!({ "keys": [k2.jwk.clone()] });
    let (status, body, _) = call(&app, &uri, Some(&format!("Bearer {}", mint(&k2, &valid)))).await;
    assert_eq!(status, StatusCode::OK, "rotated key: {body}");
    assert_eq!(auth.oidc().unwrap().jwks_refreshes(), refreshes_before + 1);
    // ... and k1, no longer published, is refused.
    let (status, _, _) = call(&app, &uri, Some(&ok(&valid))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a key removed from the JWKS");

    // Start-up: a wrong issuer URL or a discovery naming another issuer is an error naming the URL.
    let mut wrong = oidc_config(&issuer, false);
    wrong.issuer = "http://127.0.0.1:1".into();
    let e = OidcVerifier::discover(wrong).await.err().expect("an unreachable issuer").to_string();
    assert!(e.contains("http://127.0.0.1:1"), "{e}");
    let mut mismatch = oidc_config(&issuer, false);
    mismatch.issuer = format!("{}/tenant", issuer.url);
    assert!(OidcVerifier::discover(mismatch).await.is_err());
}

#[tokio::test]
async fn every_route_answers_only_within_the_callers_scope() {
    let o = org().await;
    let pool = o.db.pool.clone();
    let key = new_key("main");
    let issuer = start_issuer(&[&key]).await;
    let auth = Auth::enforced(Some(OidcVerifier::discover(oidc_config(&issuer, false)).await.unwrap()), pool.clone());
    let engine = QueryEngine::new(pool.clone(), RetentionPolicy::default());
    // The route table exactly as `serve` builds it (query API, dashboard, alerting API).
    let table = served_route_table(engine.clone(), fixed_now, auth.clone(), alerts_state(&pool));
    let all_routes: Vec<(&str, &str)> = table.routes().to_vec();
    let app = canopy_aggregator::auth::http_layer::protect(table.into_router(), auth.clone());
    // The alerting routes are walked by `every_alerting_route_answers_only_within_the_callers_scope`.
    let routes: Vec<(&str, &str)> = all_routes.iter().filter(|r| !ALERTING_ROUTES.contains(r)).copied().collect();
    let cases = cases(&issuer, &key, &pool).await;
    let (from, to) = (T0, T0 + 7_200);
    // r13 is web's (account 222…), r2 is data's (account 333…).
    let history = |r: u64| {
        let f = fact(r, T0, 3_600, 1);
        format!("/v1/resource-history?account={}&region={}&resource=r{r}&from={from}&to={to}", f.account_id, f.region)
    };
    // One request per route: a route added without a case here fails the test.
    let uri_of: BTreeMap<&str, String> = [
        ("/healthz", "/healthz".to_owned()),
        ("/openapi.yaml", "/openapi.yaml".to_owned()),
        ("/", "/".to_owned()),
        ("/assets/{name}", "/assets/app.js".to_owned()),
        ("/auth/login", "/auth/login".to_owned()),
        ("/auth/callback", "/auth/callback?code=x&state=y".to_owned()),
        ("/auth/logout", "/auth/logout".to_owned()),
        ("/v1/totals", format!("/v1/totals?from={from}&to={to}&group_by=account,team")),
        ("/v1/series", format!("/v1/series?from={from}&to={to}&step=1h&group_by=team")),
        ("/v1/realtime", "/v1/realtime?group_by=account,team".to_owned()),
        ("/v1/top-resources", format!("/v1/top-resources?from={from}&to={to}&limit=1000")),
        ("/v1/overview", format!("/v1/overview?now={}", fixed_now())),
        ("/v1/fleet", format!("/v1/fleet?now={}&window_hours=168", fixed_now())),
        ("/v1/resource-history", history(13)),
        ("/v1/admin/audit", "/v1/admin/audit".to_owned()),
        ("/v1/restatements", "/v1/restatements".to_owned()),
    ]
    .into_iter()
    .collect();
    let served: BTreeSet<(&str, &str)> = all_routes.iter().copied().collect();
    let covered: BTreeSet<(&str, &str)> =
        uri_of.keys().map(|p| ("get", *p)).chain(ALERTING_ROUTES.iter().copied()).collect();
    assert_eq!(served, covered, "every route has an authorisation case");
    let public = ["/healthz", "/openapi.yaml", "/assets/{name}", "/auth/login", "/auth/callback", "/auth/logout"];

    // Unauthenticated: 401 everywhere but the public routes.
    for (_, path) in &routes {
        let (status, body, _) = call(&app, &uri_of[path], None).await;
        if public.contains(path) {
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{path} is public");
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} without credentials: {body}");
        }
    }

    let org_location = location_sum(&o.facts, |_| true);
    for case in &cases {
        let who = case.name;
        let bearer = Some(case.bearer.as_str());
        let expected = location_sum(&o.facts, case.keep_fact);
        if case.role == Role::TeamViewer || case.role == Role::OuViewer {
            assert!(expected > 0.0 && expected < org_location * 0.9, "{who}: the scope is a real part of the org");
        }
        for (_, path) in &routes {
            let uri = &uri_of[path];
            let (status, body, _) = call(&app, uri, bearer).await;
            match *path {
                "/v1/admin/audit" => {
                    let want = if case.role == Role::Admin { StatusCode::OK } else { StatusCode::FORBIDDEN };
                    assert_eq!(status, want, "{who} {path}: {body}");
                    continue;
                }
                "/auth/login" | "/auth/callback" => {
                    assert_eq!(status, StatusCode::NOT_FOUND, "{who} {path}: login is not configured");
                    continue;
                }
                // Org-wide records (every touched account's months).
                "/v1/restatements" => {
                    let want = if matches!(case.role, Role::Admin | Role::OrgViewer) { StatusCode::OK } else { StatusCode::FORBIDDEN };
                    assert_eq!(status, want, "{who} {path}: {body}");
                    continue;
                }
                "/v1/resource-history" => {
                    // r13 is web's: every case but the data viewer and the OU viewer of ou-b (r13 is in 222… = ou-b) sees it.
                    let f = fact(13, T0, 3_600, 1);
                    let visible = (case.keep_fact)(&Stored {
                        team: "web".into(),
                        account: f.account_id.clone(),
                        ..o.facts[0].clone()
                    });
                    if visible {
                        assert_eq!(status, StatusCode::OK, "{who} {path}: {body}");
                        let energy: f64 = body["rows"].as_array().unwrap().iter().map(|r| r["energy_kwh"].as_f64().unwrap()).sum();
                        let want: f64 = o.facts.iter().filter(|f| f.resource_id == "r13").map(|f| f.sums[0]).sum();
                        assert_close(energy, want, &format!("{who} history of r13"));
                    } else {
                        assert_eq!(status, StatusCode::NOT_FOUND, "{who} {path}: {body}");
                    }
                    continue;
                }
                _ => {}
            }
            assert_eq!(status, StatusCode::OK, "{who} {path}: {body}");
            match *path {
                "/v1/totals" => {
                    assert_close(body["total"]["location_kg_co2e"].as_f64().unwrap(), expected, &format!("{who} total"));
                    assert_close(rows_location(&body), expected, &format!("{who} rows"));
                    assert_teams(&body, |r| r["dims"]["team"].as_str().map(str::to_owned), case, "a totals row");
                }
                "/v1/series" => {
                    assert_close(rows_location(&body), expected, &format!("{who} series"));
                    assert_teams(&body, |r| r["dims"]["team"].as_str().map(str::to_owned), case, "a series row");
                }
                "/v1/realtime" => {
                    let want: f64 = o
                        .realtime
                        .iter()
                        .filter(|(a, t, _)| (case.keep_realtime)(a, t.as_deref()))
                        .map(|(_, _, kg)| kg)
                        .sum();
                    assert!(want > 0.0);
                    assert_close(rows_location(&body), want, &format!("{who} realtime"));
                    assert_teams(&body, |r| r["dims"]["team"].as_str().map(str::to_owned), case, "a realtime row");
                }
                "/v1/top-resources" => {
                    assert_close(rows_location(&body), expected, &format!("{who} top resources"));
                    assert_teams(&body, |r| r["team"].as_str().map(str::to_owned), case, "a top resource");
                    let ids: BTreeSet<String> =
                        body["rows"].as_array().unwrap().iter().map(|r| r["resource_id"].as_str().unwrap().to_owned()).collect();
                    let want: BTreeSet<String> =
                        o.facts.iter().filter(|f| (case.keep_fact)(f)).map(|f| f.resource_id.clone()).collect();
                    assert_eq!(ids, want, "{who} top resources");
                }
                "/v1/overview" => {
                    let month = body["this_month"]["totals"]["total"]["location_kg_co2e"].as_f64().unwrap();
                    assert_close(month, expected, &format!("{who} overview this month"));
                }
                "/v1/fleet" => {
                    let accounts: BTreeSet<&str> =
                        body["cells"].as_array().unwrap().iter().map(|c| c["account_id"].as_str().unwrap()).collect();
                    let want: BTreeSet<&str> = case.fleet_accounts.iter().copied().collect();
                    assert_eq!(accounts, want, "{who} fleet");
                }
                "/" => assert!(body.as_str().unwrap().contains("<html") && !body.as_str().unwrap().contains("insecure-banner")),
                _ => {}
            }
        }
        // A filter outside the scope: 403 naming the parameter, on every query endpoint.
        if let Some((parameter, value)) = case.outside {
            for base in [
                format!("/v1/totals?from={from}&to={to}"),
                format!("/v1/series?from={from}&to={to}&step=1h"),
                "/v1/realtime?group_by=team".to_owned(),
                format!("/v1/top-resources?from={from}&to={to}"),
                format!("/v1/overview?now={}", fixed_now()),
            ] {
                let uri = format!("{base}&{parameter}={value}");
                let (status, body, _) = call(&app, &uri, bearer).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{who} {uri}: {body}");
                assert_eq!(body["parameter"], parameter, "{who} {uri}");
            }
            let (status, _, _) = call(&app, &history(2), bearer).await;
            if case.teams.is_some() && case.teams.unwrap().contains(&"data") {
                assert_eq!(status, StatusCode::OK, "{who}: r2 is data's");
            } else {
                assert_eq!(status, StatusCode::NOT_FOUND, "{who}: r2 is outside the scope");
            }
        }
    }
    // A narrower filter inside the scope is kept: the OU viewer of
    // r-1/ou-a/ou-b asking for r-1/ou-a (its parent) gets ou-b only.
    let ou_case = &cases[2];
    let (status, body, _) = call(&app, &format!("/v1/totals?from={from}&to={to}&ou=r-1/ou-a"), Some(&ou_case.bearer)).await;
    assert_eq!(status, StatusCode::OK);
    assert_close(body["total"]["location_kg_co2e"].as_f64().unwrap(), location_sum(&o.facts, ou_case.keep_fact), "parent OU");

    // /metrics behind the same middleware: org-wide roles only.
    let metrics = canopy_aggregator::auth::http_layer::protect(
        axum::Router::new().route("/metrics", get(|| async { "canopy_up 1\n" })),
        auth.clone(),
    );
    assert_eq!(call(&metrics, "/metrics", None).await.0, StatusCode::UNAUTHORIZED);
    for case in &cases {
        let want = if matches!(case.role, Role::Admin | Role::OrgViewer) { StatusCode::OK } else { StatusCode::FORBIDDEN };
        assert_eq!(call(&metrics, "/metrics", Some(&case.bearer)).await.0, want, "{} /metrics", case.name);
    }
}

#[tokio::test]
async fn every_grpc_method_answers_only_within_the_callers_scope() {
    // The methods the proto declares: a new one without a case fails here.
    let proto = include_str!("../../proto/canopy_query.proto");
    let methods: BTreeSet<&str> = proto
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .map(|l| l.split('(').next().unwrap().trim())
        .collect();
    assert_eq!(methods, ["Realtime", "Restatements", "Series", "Totals", "TopResources"].into_iter().collect());

    let o = org().await;
    let pool = o.db.pool.clone();
    let key = new_key("main");
    let issuer = start_issuer(&[&key]).await;
    let auth = Auth::enforced(Some(OidcVerifier::discover(oidc_config(&issuer, false)).await.unwrap()), pool.clone());
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let service = GrpcQuery::new(QueryEngine::new(pool.clone(), RetentionPolicy::default()), fixed_now, auth);
    let server = tokio::spawn(tonic::transport::Server::builder().add_service(service.into_server()).serve_with_incoming(incoming));
    let mut client = CanopyQueryClient::connect(format!("http://{addr}")).await.unwrap();
    let (from, to) = (T0.to_string(), (T0 + 7_200).to_string());
    let with = |bearer: Option<&str>, filters: Option<pb::Filters>| {
        let mut totals = tonic::Request::new(pb::TotalsRequest {
            from: from.clone(),
            to: to.clone(),
            group_by: vec!["team".into()],
            filters: filters.clone(),
            ..Default::default()
        });
        let mut series = tonic::Request::new(pb::SeriesRequest {
            from: from.clone(),
            to: to.clone(),
            step: "1h".into(),
            group_by: vec!["team".into()],
            filters: filters.clone(),
            ..Default::default()
        });
        let mut realtime = tonic::Request::new(pb::RealtimeRequest {
            group_by: vec!["team".into()],
            filters: filters.clone(),
            ..Default::default()
        });
        let mut top = tonic::Request::new(pb::TopResourcesRequest {
            from: from.clone(),
            to: to.clone(),
            filters,
            limit: 1_000,
            ..Default::default()
        });
        if let Some(b) = bearer {
            let v: tonic::metadata::MetadataValue<_> = b.parse().unwrap();
            totals.metadata_mut().insert("authorization", v.clone());
            series.metadata_mut().insert("authorization", v.clone());
            realtime.metadata_mut().insert("authorization", v.clone());
            top.metadata_mut().insert("authorization", v);
        }
        (totals, series, realtime, top)
    };

    // Unauthenticated: UNAUTHENTICATED from every method.
    let (a, b, c, d) = with(None, None);
    let codes = [
        client.totals(a).await.unwrap_err().code(),
        client.series(b).await.unwrap_err().code(),
        client.realtime(c).await.unwrap_err().code(),
        client.top_resources(d).await.unwrap_err().code(),
    ];
    assert_eq!(codes, [tonic::Code::Unauthenticated; 4]);
    let code = client.restatements(pb::RestatementsRequest::default()).await.unwrap_err().code();
    assert_eq!(code, tonic::Code::Unauthenticated, "Restatements without credentials");
    let (a, b, c, d) = with(Some("Bearer canopy_0123456789abcdef_nottherightsecret"), None);
    assert_eq!(client.totals(a).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    assert_eq!(client.series(b).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    assert_eq!(client.realtime(c).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    assert_eq!(client.top_resources(d).await.unwrap_err().code(), tonic::Code::Unauthenticated);

    for case in cases(&issuer, &key, &pool).await {
        let who = case.name;
        let expected = location_sum(&o.facts, case.keep_fact);
        // Restatements are org-wide records: org viewers and admins only.
        let mut restatements = tonic::Request::new(pb::RestatementsRequest::default());
        restatements.metadata_mut().insert("authorization", case.bearer.parse().unwrap());
        match client.restatements(restatements).await {
            Ok(_) => assert!(matches!(case.role, Role::Admin | Role::OrgViewer), "{who} gRPC restatements answered"),
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::PermissionDenied, "{who} gRPC restatements");
                assert!(!matches!(case.role, Role::Admin | Role::OrgViewer), "{who} gRPC restatements refused");
            }
        }
        let (a, b, c, d) = with(Some(&case.bearer), None);
        let totals = client.totals(a).await.unwrap().into_inner();
        assert_close(totals.total.unwrap().location_kg_co2e, expected, &format!("{who} gRPC totals"));
        let series = client.series(b).await.unwrap().into_inner();
        let sum: f64 = series.rows.iter().map(|r| r.metrics.unwrap().location_kg_co2e).sum();
        assert_close(sum, expected, &format!("{who} gRPC series"));
        let realtime = client.realtime(c).await.unwrap().into_inner();
        let sum: f64 = realtime.rows.iter().map(|r| r.metrics.unwrap().location_kg_co2e).sum();
        let want: f64 =
            o.realtime.iter().filter(|(a, t, _)| (case.keep_realtime)(a, t.as_deref())).map(|(_, _, kg)| kg).sum();
        assert_close(sum, want, &format!("{who} gRPC realtime"));
        let top = client.top_resources(d).await.unwrap().into_inner();
        let sum: f64 = top.rows.iter().map(|r| r.metrics.unwrap().location_kg_co2e).sum();
        assert_close(sum, expected, &format!("{who} gRPC top resources"));
        if let Some(teams) = case.teams {
            for row in &top.rows {
                assert!(teams.contains(&row.team.as_str()), "{who}: gRPC top resource of team {}", row.team);
            }
            for row in totals.rows.iter().chain(std::iter::empty()) {
                assert!(teams.contains(&row.dims[0].value.as_str()), "{who}: gRPC totals row {:?}", row.dims);
            }
        }
        if let Some((parameter, value)) = case.outside {
            let mut filters = pb::Filters::default();
            match parameter {
                "team" => filters.team = vec![value.into()],
                "ou" => filters.ou = vec![value.into()],
                other => panic!("no case for {other}"),
            }
            let (a, b, c, d) = with(Some(&case.bearer), Some(filters));
            let codes = [
                client.totals(a).await.unwrap_err().code(),
                client.series(b).await.unwrap_err().code(),
                client.realtime(c).await.unwrap_err().code(),
                client.top_resources(d).await.unwrap_err().code(),
            ];
            assert_eq!(codes, [tonic::Code::PermissionDenied; 4], "{who}");
        }
    }
    server.abort();
}

#[tokio::test]
async fn api_tokens_are_hashed_scoped_expiring_and_revocable() {
    let o = org().await;
    let pool = o.db.pool.clone();
    let auth = Auth::enforced(None, pool.clone());
    let app = router(QueryEngine::new(pool.clone(), RetentionPolicy::default()), fixed_now, auth);
    let new = tokens::NewToken {
        name: "web exporter".into(),
        role: Role::TeamViewer,
        scope: Scope { teams: vec!["web".into()], ..Scope::default() },
        expires_in_days: 30,
    };
    let (id, token) = tokens::create(&pool, "cli:tester", &new).await.unwrap();
    let secret = token.strip_prefix(&format!("canopy_{id}_")).expect("canopy_<id>_<secret>").to_owned();
    assert!(secret.len() >= 43, "{token}");

    // At rest: only the SHA-256 of the secret; the secret appears nowhere.
    let row = sqlx::query("SELECT * FROM api_tokens WHERE token_id = $1").bind(&id).fetch_one(&pool).await.unwrap();
    let stored: Vec<u8> = row.get("secret_sha256");
    assert_eq!(stored, ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref());
    let whole_row: String = sqlx::query_scalar("SELECT row_to_json(t)::text FROM api_tokens t WHERE token_id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!whole_row.contains(&secret) && !whole_row.contains(&token), "{whole_row}");

    let uri = format!("/v1/totals?from={T0}&to={}", T0 + 7_200);
    let (status, body, _) = call(&app, &uri, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_close(body["total"]["location_kg_co2e"].as_f64().unwrap(), location_sum(&o.facts, |f| f.team == "web"), "token scope");
    // A wrong secret for a real id, and a JWT without an issuer configured.
    let wrong = format!("Bearer canopy_{id}_{}", "A".repeat(43));
    assert_eq!(call(&app, &uri, Some(&wrong)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, &uri, Some("Bearer eyJhbGciOiJFUzI1NiJ9.e30.x")).await.0, StatusCode::UNAUTHORIZED);

    // Expired: refused.
    let (old_id, old) = tokens::create(&pool, "cli:tester", &tokens::NewToken { name: "old".into(), ..new.clone() }).await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE token_id = $1")
        .bind(&old_id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(call(&app, &uri, Some(&format!("Bearer {old}"))).await.0, StatusCode::UNAUTHORIZED);
    // Revoked: refused from then on; revocation audited with before/after.
    tokens::revoke(&pool, "cli:tester", &id).await.unwrap();
    assert_eq!(call(&app, &uri, Some(&format!("Bearer {token}"))).await.0, StatusCode::UNAUTHORIZED);
    let listed = tokens::list(&pool).await.unwrap();
    let mine = listed.iter().find(|t| t.token_id == id).unwrap();
    assert!(mine.revoked_at_unix_s.is_some());
    // Bad input is refused with the field named.
    let e = tokens::create(&pool, "x", &tokens::NewToken { scope: Scope::default(), ..new.clone() }).await.unwrap_err();
    assert_eq!(e.to_string(), "role team_viewer needs at least one team in its scope");
    let e = tokens::create(&pool, "x", &tokens::NewToken { expires_in_days: 0, ..new.clone() }).await.unwrap_err();
    assert!(e.to_string().starts_with("expires_in_days"), "{e}");

    let entries = audit::recent(&pool, 10).await.unwrap();
    let actions: Vec<(&str, &str)> = entries.iter().map(|e| (e.action.as_str(), e.target.as_str())).collect();
    let target = format!("token:{id}");
    assert_eq!(actions[0], ("token.revoke", target.as_str()));
    assert!(actions.contains(&("token.create", target.as_str())));
    let revoke = &entries[0];
    assert_eq!(revoke.actor, "cli:tester");
    assert_eq!(revoke.before.as_ref().unwrap()["revoked_at_unix_s"], Value::Null);
    assert!(revoke.after.as_ref().unwrap()["revoked_at_unix_s"].as_i64().unwrap() > 0);
    assert_eq!(revoke.after.as_ref().unwrap()["teams"], json!(["web"]));
    assert!((revoke.at_unix_s - wall_clock_s()).abs() < 300);
}

#[tokio::test]
async fn the_audit_log_is_append_only() {
    let t = TestDb::migrated().await;
    let mut conn = t.pool.acquire().await.unwrap();
    audit::record(&mut conn, "cli:tester", "settings.update", "team_tag_key", Some(&json!("team")), Some(&json!("owner")))
        .await
        .unwrap();
    drop(conn);
    for statement in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let e = sqlx::query(statement).execute(&t.pool).await.unwrap_err().to_string();
        assert!(e.contains("audit_log is append-only"), "{statement}: {e}");
    }
    let entries = audit::recent(&t.pool, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].actor.as_str(), entries[0].after.clone()), ("cli:tester", Some(json!("owner"))));
}

#[tokio::test]
async fn database_errors_never_reach_the_caller() {
    let t = TestDb::migrated().await;
    let app = router(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), fixed_now, Auth::insecure_open_access());
    // Every answer reads canopy_settings in its snapshot: without it each one fails in the database.
    sqlx::query("DROP TABLE canopy_settings CASCADE").execute(&t.pool).await.unwrap();
    for uri in [
        format!("/v1/totals?from={T0}&to={}", T0 + 3_600),
        format!("/v1/overview?now={}", fixed_now()),
        format!("/v1/resource-history?account=1&region=r&resource=x&from={T0}&to={}", T0 + 3_600),
    ] {
        let (status, body, _) = call(&app, &uri, None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {body}");
        let text = body.to_string();
        assert!(!text.contains("canopy_settings") && !text.contains("relation") && !text.contains("database"), "{uri}: {text}");
        let id = body["request_id"].as_str().unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(body["error"], format!("internal error; request id {id}"));
    }
    // Fleet reads other tables: break one of them.
    sqlx::query("DROP TABLE agent_status CASCADE").execute(&t.pool).await.unwrap();
    let (status, body, _) = call(&app, "/v1/fleet", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.to_string().contains("agent_status"), "{body}");

    // gRPC: INTERNAL with a request id only.
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let service = GrpcQuery::new(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), fixed_now, Auth::insecure_open_access());
    let server = tokio::spawn(tonic::transport::Server::builder().add_service(service.into_server()).serve_with_incoming(incoming));
    let mut client = CanopyQueryClient::connect(format!("http://{addr}")).await.unwrap();
    let e = client
        .totals(pb::TotalsRequest { from: T0.to_string(), to: (T0 + 3_600).to_string(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal);
    assert!(e.message().starts_with("internal error; request id ") && !e.message().contains("canopy_settings"), "{}", e.message());
    server.abort();
}

#[tokio::test]
async fn open_access_is_loud_and_login_sets_a_scoped_session() {
    // The development mode: a header on every response and a banner on the page.
    let t = TestDb::migrated().await;
    let open = router(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), fixed_now, Auth::insecure_open_access());
    for uri in ["/", "/healthz", "/v1/admin/audit"] {
        let (status, body, headers) = call(&open, uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(headers.get(OPEN_ACCESS_HEADER).unwrap(), "true", "{uri}");
        if uri == "/" {
            assert!(body.as_str().unwrap().contains("INSECURE OPEN ACCESS"));
        }
    }

    // Dashboard login: authorization code with PKCE, then a session cookie.
    let key = new_key("login");
    let issuer = start_issuer(&[&key]).await;
    let auth = Auth::enforced(Some(OidcVerifier::discover(oidc_config(&issuer, true)).await.unwrap()), t.pool.clone());
    let app = router(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), fixed_now, auth);
    let resp = app.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/auth/login");
    let resp = app.clone().oneshot(Request::get("/auth/login").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let location = reqwest::Url::parse(resp.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(&format!("{}/authorize?", issuer.url)), "{location}");
    let param = |name: &str| location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap();
    assert_eq!((param("response_type"), param("client_id"), param("code_challenge_method")), ("code".into(), CLIENT_ID.into(), "S256".into()));
    // The ID token's audience is the dashboard client.
    let mut id_claims = claims(&issuer.url, "erin", "team_viewer", json!({ "canopy_teams": ["ml"] }));
    id_claims["aud"] = json!(CLIENT_ID);
    *issuer.login.lock().unwrap() = Some((param("code_challenge"), mint(&key, &id_claims)));
    // A forged state is refused; the real one logs in.
    let (status, _, _) = call(&app, "/auth/callback?code=abc&state=forged", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = app
        .clone()
        .oneshot(Request::get(format!("/auth/callback?code=abc&state={}", param("state"))).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Lax"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    // The state is single-use.
    let (status, _, _) = call(&app, &format!("/auth/callback?code=abc&state={}", param("state")), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let with_cookie = |uri: String| Request::get(uri).header(header::COOKIE, session.clone()).body(Body::empty()).unwrap();
    let resp = app.clone().oneshot(with_cookie("/".into())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // The session carries the ID token's scope.
    let resp = app.clone().oneshot(with_cookie(format!("/v1/totals?from={T0}&to={}&team=web", T0 + 3_600))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = app.clone().oneshot(with_cookie(format!("/v1/totals?from={T0}&to={}&team=ml", T0 + 3_600))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.clone().oneshot(with_cookie("/v1/admin/audit".into())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Logout ends it.
    let resp = app.clone().oneshot(with_cookie("/auth/logout".into())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.clone().oneshot(with_cookie(format!("/v1/totals?from={T0}&to={}", T0 + 3_600))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn serve_refuses_to_start_without_authentication() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_canopy-aggregator"))
        .args(["serve", "--database-url", "postgres://nobody@127.0.0.1:1/none"])
        .env_remove("CANOPY_INSECURE_OPEN_ACCESS")
        .env_remove("CANOPY_API_TOKENS_ONLY")
        .env_remove("CANOPY_OIDC_ISSUER")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no authentication configured") && stderr.contains("--insecure-open-access"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_canopy-aggregator"))
        .args(["serve", "--database-url", "postgres://nobody@127.0.0.1:1/none", "--oidc-issuer", "https://id.example"])
        .env_remove("CANOPY_OIDC_AUDIENCE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--oidc-audience"), "{stderr}");
}

// ------------------------------------------------------- alerting API

/// The alerting routes (method, path), each with a case in
/// `every_alerting_route_answers_only_within_the_callers_scope`; the HTTP
/// walk above fails when `serve` answers a route listed nowhere.
const ALERTING_ROUTES: [(&str, &str); 14] = [
    ("get", "/v1/budgets"),
    ("post", "/v1/budgets"),
    ("get", "/v1/budgets/{budget_id}"),
    ("put", "/v1/budgets/{budget_id}"),
    ("delete", "/v1/budgets/{budget_id}"),
    ("get", "/v1/alert-routes"),
    ("put", "/v1/alert-routes/{name}"),
    ("delete", "/v1/alert-routes/{name}"),
    ("get", "/v1/silences"),
    ("post", "/v1/silences"),
    ("delete", "/v1/silences/{silence_id}"),
    ("get", "/v1/alerts"),
    ("post", "/v1/alerts/{alert_id}/acknowledge"),
    ("get", "/alerts"),
];

/// Secrets of the fixtures: none may appear in any reply or audit entry.
const ROUTE_KEY: &str = "Roncallroncallroncallroncallronc";
const BUDGET_KEY: &str = "Pbudgetpbudgetpbudgetpbudgetpbud";
const HOOK_SECRET: &str = "whsec-hook-0123456789abcdef";
const HOOK2_SECRET: &str = "whsec-hook2-0123456789abcdef";

fn alerts_state(pool: &sqlx::PgPool) -> AlertsHttp {
    AlertsHttp { pool: pool.clone(), config: canopy_aggregator::alerts::AlertsConfig::default(), clock: fixed_now }
}

async fn send(app: &axum::Router, method: &str, uri: &str, bearer: Option<&str>, body: Option<Value>) -> (StatusCode, Value, String) {
    let mut req = Request::builder().method(method.to_uppercase().as_str()).uri(uri);
    if let Some(b) = bearer {
        req = req.header(header::AUTHORIZATION, b);
    }
    let req = match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = to_bytes(resp.into_body(), 1 << 22).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

fn assert_no_secret(text: &str, what: &str) {
    for secret in [ROUTE_KEY, BUDGET_KEY, HOOK_SECRET, HOOK2_SECRET] {
        assert!(!text.contains(secret), "{what} carries a secret: {text}");
    }
}

/// The alerting fixture: budgets of team web (W), team data (D) and account
/// 222… in r-1/ou-a/ou-b (O); one firing alert and one silence each for W
/// and D; three routes. Created as `admin` through the API.
struct AlertFixture {
    web: i64,
    data: i64,
    ou_b: i64,
    web_alert: i64,
    data_alert: i64,
    web_silence: i64,
    data_silence: i64,
}

async fn alert_fixture(app: &axum::Router, pool: &sqlx::PgPool, admin: &str) -> AlertFixture {
    for (name, body) in [
        ("oncall", json!({ "kind": "pagerduty", "routing_key": ROUTE_KEY })),
        ("hook", json!({ "kind": "webhook", "url": "https://hooks.example.invalid/canopy", "secret": HOOK_SECRET })),
        ("mail", json!({ "kind": "email", "to": ["finops@example.invalid"] })),
    ] {
        let (status, body, _) = send(app, "put", &format!("/v1/alert-routes/{name}"), Some(admin), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "route {name}: {body}");
    }
    async fn budget(app: &axum::Router, admin: &str, name: &str, scope: Value, key: Option<&str>) -> i64 {
        let body = json!({
            "name": name, "scope": scope, "period": "month", "basis": "location", "amount_kg_co2e": 20.0,
            "routes": ["oncall", "hook"], "pagerduty_routing_key": key,
        });
        let (status, body, text) = send(app, "post", "/v1/budgets", Some(admin), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "budget {name}: {body}");
        assert_no_secret(&text, "a created budget");
        body["budget_id"].as_i64().unwrap()
    }
    let web = budget(app, admin, "web", json!({ "team": "web" }), Some(BUDGET_KEY)).await;
    let data = budget(app, admin, "data", json!({ "team": "data" }), None).await;
    let ou_b = budget(app, admin, "ou-b account", json!({ "account_id": "222222222222" }), None).await;
    let alert = |budget_id: i64| async move {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO alerts (alert_key, budget_id, kind, status, level, severity, summary, value_g_co2e, budget_g_co2e,
                 period_start, fired_at, updated_at)
             VALUES ($1, $2, 'threshold', 'firing', 1, 'warning', 'over half', 11000, 20000, now(), now(), now())
             RETURNING alert_id",
        )
        .bind(format!("budget/{budget_id}/threshold/test"))
        .bind(budget_id)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let web_alert = alert(web).await;
    let data_alert = alert(data).await;
    let silence = |budget_id: i64| async move {
        let body = json!({ "budget_id": budget_id, "duration_s": 3_600, "comment": "maintenance" });
        let (status, body, _) = send(app, "post", "/v1/silences", Some(admin), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["silence_id"].as_i64().unwrap()
    };
    let web_silence = silence(web).await;
    let data_silence = silence(data).await;
    AlertFixture { web, data, ou_b, web_alert, data_alert, web_silence, data_silence }
}

/// What the alerting tables hold (a refused write must change none of it).
async fn alerting_state(pool: &sqlx::PgPool) -> Value {
    let text = |sql: &'static str| async move { sqlx::query_scalar::<_, Option<String>>(sql).fetch_one(pool).await.unwrap() };
    json!([
        text("SELECT string_agg(b::text, ';' ORDER BY budget_id) FROM budgets b").await,
        text("SELECT string_agg(r::text, ';' ORDER BY name) FROM alert_routes r").await,
        text("SELECT string_agg(s::text, ';' ORDER BY silence_id) FROM alert_silences s").await,
        text("SELECT string_agg(a::text, ';' ORDER BY alert_id) FROM alerts a").await,
        text("SELECT count(*)::text FROM audit_log").await,
    ])
}

fn ids(body: &Value, list: &str, field: &str) -> BTreeSet<i64> {
    body[list].as_array().unwrap().iter().filter_map(|x| x[field].as_i64()).collect()
}

#[tokio::test]
async fn every_alerting_route_answers_only_within_the_callers_scope() {
    let o = org().await;
    let pool = o.db.pool.clone();
    let key = new_key("main");
    let issuer = start_issuer(&[&key]).await;
    let auth = Auth::enforced(Some(OidcVerifier::discover(oidc_config(&issuer, false)).await.unwrap()), pool.clone());
    let table = canopy_aggregator::alerts::http::route_table(alerts_state(&pool));
    let routes: Vec<(&str, &str)> = table.routes().to_vec();
    assert_eq!(routes.iter().copied().collect::<BTreeSet<_>>(), ALERTING_ROUTES.into_iter().collect(), "alerting routes");
    let app = canopy_aggregator::auth::http_layer::protect(table.into_router(), auth.clone());
    let cases = cases(&issuer, &key, &pool).await;
    let admin = cases.iter().find(|c| c.role == Role::Admin).unwrap().bearer.clone();
    let f = alert_fixture(&app, &pool, &admin).await;

    // Unauthenticated: 401 from every alerting route, the page included; nothing changes.
    let before = alerting_state(&pool).await;
    for (method, path) in &routes {
        let uri = path
            .replace("{budget_id}", &f.web.to_string())
            .replace("{name}", "oncall")
            .replace("{silence_id}", &f.web_silence.to_string())
            .replace("{alert_id}", &f.web_alert.to_string());
        let (status, body, _) = send(&app, method, &uri, None, Some(json!({}))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} without credentials: {body}");
    }
    assert_eq!(alerting_state(&pool).await, before, "unauthenticated calls changed nothing");

    // Viewers first (their writes are refused, so the reads stay comparable), the admin last.
    let audit_before = audit::recent(&pool, 1_000).await.unwrap().len();
    let mut created_budget = None;
    let mut created_silence = None;
    for case in cases.iter().rev() {
        let who = case.name;
        let bearer = Some(case.bearer.as_str());
        let admin = case.role == Role::Admin;
        // Budgets within the scope: W is team web's, D team data's, O account 222… (r-1/ou-a/ou-b).
        let visible: BTreeSet<i64> = match case.role {
            Role::Admin | Role::OrgViewer => [f.web, f.data, f.ou_b].into(),
            Role::OuViewer => [f.ou_b].into(),
            Role::TeamViewer if case.teams == Some(&["web"]) => [f.web].into(),
            Role::TeamViewer => [f.data].into(),
        };
        let refused_write = |status: StatusCode, body: &Value, what: &str| {
            assert_eq!(status, StatusCode::FORBIDDEN, "{who} {what}: {body}");
            assert!(body["error"].as_str().unwrap().contains("admin"), "{who} {what}: {body}");
        };
        for (method, path) in &routes {
            let state = alerting_state(&pool).await;
            let what = format!("{method} {path}");
            match (*method, *path) {
                ("get", "/v1/budgets") => {
                    let (status, body, text) = send(&app, method, "/v1/budgets", bearer, None).await;
                    assert_eq!(status, StatusCode::OK, "{who} {what}: {body}");
                    assert_eq!(ids(&body, "budgets", "budget_id"), visible, "{who} {what}");
                    assert_no_secret(&text, &format!("{who} {what}"));
                    if visible.contains(&f.web) {
                        let w = body["budgets"].as_array().unwrap().iter().find(|b| b["budget_id"] == f.web).unwrap();
                        assert_eq!(w["pagerduty_routing_key_suffix"], "…pbud", "{who}: only the key's suffix");
                    }
                }
                ("get", "/v1/budgets/{budget_id}") => {
                    for id in [f.web, f.data, f.ou_b] {
                        let (status, body, text) = send(&app, method, &format!("/v1/budgets/{id}"), bearer, None).await;
                        if visible.contains(&id) {
                            assert_eq!((status, body["budget_id"].as_i64()), (StatusCode::OK, Some(id)), "{who} budget {id}");
                            assert_no_secret(&text, &format!("{who} {what}"));
                        } else {
                            assert_eq!(status, StatusCode::NOT_FOUND, "{who} budget {id} is outside the scope: {body}");
                        }
                    }
                }
                ("post", "/v1/budgets") => {
                    let body = json!({
                        "name": "data quarterly", "scope": { "team": "data" }, "period": "quarter", "basis": "location",
                        "amount_kg_co2e": 50.0, "routes": ["oncall"], "pagerduty_routing_key": BUDGET_KEY,
                    });
                    let (status, body, text) = send(&app, method, "/v1/budgets", bearer, Some(body)).await;
                    if admin {
                        assert_eq!(status, StatusCode::CREATED, "{who} {what}: {body}");
                        assert_no_secret(&text, "a created budget");
                        created_budget = body["budget_id"].as_i64();
                    } else {
                        refused_write(status, &body, &what);
                    }
                }
                ("put", "/v1/budgets/{budget_id}") => {
                    // No routing key in the body: the stored one is kept.
                    let body = json!({
                        "name": "web", "scope": { "team": "web" }, "period": "month", "basis": "location",
                        "amount_kg_co2e": 25.0, "routes": ["oncall", "hook"],
                    });
                    let (status, body, _) = send(&app, method, &format!("/v1/budgets/{}", f.web), bearer, Some(body)).await;
                    if admin {
                        assert_eq!((status, body["amount_kg_co2e"].as_f64()), (StatusCode::OK, Some(25.0)), "{who} {what}: {body}");
                        let stored: Option<String> =
                            sqlx::query_scalar("SELECT pagerduty_routing_key FROM budgets WHERE budget_id = $1")
                                .bind(f.web)
                                .fetch_one(&pool)
                                .await
                                .unwrap();
                        assert_eq!(stored.as_deref(), Some(BUDGET_KEY), "an update without the key keeps it");
                    } else {
                        refused_write(status, &body, &what);
                    }
                }
                ("delete", "/v1/budgets/{budget_id}") => {
                    let id = if admin { created_budget.expect("the admin created a budget") } else { f.web };
                    let (status, body, _) = send(&app, method, &format!("/v1/budgets/{id}"), bearer, None).await;
                    if admin {
                        assert_eq!(status, StatusCode::NO_CONTENT, "{who} {what}: {body}");
                    } else {
                        refused_write(status, &body, &what);
                    }
                }
                ("get", "/v1/alert-routes") => {
                    let (status, body, text) = send(&app, method, "/v1/alert-routes", bearer, None).await;
                    if admin {
                        assert_eq!(status, StatusCode::OK, "{who} {what}: {body}");
                        let names: Vec<&str> = body["routes"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
                        assert_eq!(names, ["hook", "mail", "oncall"]);
                        assert_no_secret(&text, "the routes an admin reads");
                    } else {
                        assert_eq!(status, StatusCode::FORBIDDEN, "{who} {what}: routes carry keys and addresses: {body}");
                        assert!(!text.contains("finops@example.invalid"), "{who}: {text}");
                    }
                }
                ("put", "/v1/alert-routes/{name}") => {
                    let body = json!({ "kind": "webhook", "url": "https://hooks.example.invalid/two", "secret": HOOK2_SECRET });
                    let (status, body, text) = send(&app, method, "/v1/alert-routes/hook2", bearer, Some(body)).await;
                    if admin {
                        assert_eq!(status, StatusCode::OK, "{who} {what}: {body}");
                        assert_no_secret(&text, "a stored route");
                    } else {
                        refused_write(status, &body, &what);
                    }
                }
                ("delete", "/v1/alert-routes/{name}") => {
                    let name = if admin { "hook2" } else { "mail" };
                    let (status, body, _) = send(&app, method, &format!("/v1/alert-routes/{name}"), bearer, None).await;
                    if admin {
                        assert_eq!(status, StatusCode::NO_CONTENT, "{who} {what}: {body}");
                    } else {
                        refused_write(status, &body, &what);
                    }
                }
                ("get", "/v1/silences") => {
                    let (status, body, _) = send(&app, method, "/v1/silences", bearer, None).await;
                    assert_eq!(status, StatusCode::OK, "{who} {what}: {body}");
                    let want: BTreeSet<i64> = [(f.web, f.web_silence), (f.data, f.data_silence)]
                        .into_iter()
                        .filter(|(b, _)| visible.contains(b))
                        .map(|(_, s)| s)
                        .collect();
                    assert_eq!(ids(&body, "silences", "silence_id"), want, "{who} {what}");
                }
                ("post", "/v1/silences") => {
                    let body = json!({ "budget_id": f.data, "duration_s": 600 });
                    let (status, body, _) = send(&app, method, "/v1/silences", bearer, Some(body)).await;
                    if admin {
                        assert_eq!(status, StatusCode::CREATED, "{who} {what}: {body}");
                        assert_eq!(body["created_by"], "jwt:alice", "the silence names its author");
                        created_silence = body["silence_id"].as_i64();
                    } else {
                        refused_write(status, &body, &what);
                    }
                }
                ("delete", "/v1/silences/{silence_id}") => {
                    let id = if admin { created_silence.expect("the admin created a silence") } else { f.web_silence };
                    let (status, body, _) = send(&app, method, &format!("/v1/silences/{id}"), bearer, None).await;
                    if admin {
                        assert_eq!(status, StatusCode::NO_CONTENT, "{who} {what}: {body}");
                    } else {
                        refused_write(status, &body, &what);
                    }
                }
                ("get", "/v1/alerts") => {
                    let (status, body, _) = send(&app, method, "/v1/alerts", bearer, None).await;
                    assert_eq!(status, StatusCode::OK, "{who} {what}: {body}");
                    let want: BTreeSet<i64> = [(f.web, f.web_alert), (f.data, f.data_alert)]
                        .into_iter()
                        .filter(|(b, _)| visible.contains(b))
                        .map(|(_, a)| a)
                        .collect();
                    assert_eq!(ids(&body, "alerts", "alert_id"), want, "{who} {what}");
                }
                ("post", "/v1/alerts/{alert_id}/acknowledge") => {
                    let uri = format!("/v1/alerts/{}/acknowledge", f.web_alert);
                    let (status, body, _) = send(&app, method, &uri, bearer, None).await;
                    if admin {
                        assert_eq!(status, StatusCode::OK, "{who} {what}: {body}");
                        assert_eq!(body["acknowledged_by"], "jwt:alice");
                    } else {
                        refused_write(status, &body, &what);
                    }
                }
                ("get", "/alerts") => {
                    let (status, _, text) = send(&app, method, "/alerts", bearer, None).await;
                    assert_eq!(status, StatusCode::OK, "{who} {what}");
                    assert!(text.contains("<html"), "{who} {what}");
                }
                other => panic!("no authorisation case for alerting route {other:?}"),
            }
            if !admin {
                assert_eq!(alerting_state(&pool).await, state, "{who} {what} changed nothing");
            }
        }
    }

    // Every admin write is audited: who, what, before and after, no secret.
    let entries = audit::recent(&pool, 1_000).await.unwrap();
    let new: Vec<_> = entries[..entries.len() - audit_before].iter().rev().collect();
    let actions: Vec<&str> = new.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "budget.create",
            "budget.update",
            "budget.delete",
            "alert_route.create",
            "alert_route.delete",
            "silence.create",
            "silence.expire",
            "alert.acknowledge",
        ],
        "the admin's writes, in order"
    );
    assert!(new.iter().all(|e| e.actor == "jwt:alice"), "{new:?}");
    let update = new[1];
    assert_eq!(update.target, format!("budget:{}", f.web));
    assert_eq!(update.before.as_ref().unwrap()["amount_kg_co2e"], 20.0);
    assert_eq!(update.after.as_ref().unwrap()["amount_kg_co2e"], 25.0);
    assert_eq!(update.after.as_ref().unwrap()["pagerduty_routing_key_suffix"], "…pbud");
    let created = new[0];
    assert!(created.before.is_none() && created.after.as_ref().unwrap()["name"] == "data quarterly");
    let deleted = new[2];
    assert!(deleted.after.is_none() && deleted.before.as_ref().unwrap()["name"] == "data quarterly");
    assert_eq!(new[3].after.as_ref().unwrap()["target"]["secret"], "(set)");
    let expired = new[6];
    assert!(
        expired.before.as_ref().unwrap()["ends_unix_s"].as_i64() > expired.after.as_ref().unwrap()["ends_unix_s"].as_i64(),
        "{expired:?}"
    );
    assert_eq!(new[7].target, format!("alert:{}", f.web_alert));
    for e in &new {
        assert_no_secret(&format!("{:?} {:?}", e.before, e.after), &format!("audit entry {}", e.action));
    }
    // The fixture's own writes (as admin) were audited too: 3 routes, 3 budgets, 2 silences
    // (and the data viewer's API token `cases` created).
    let fixture_actions: BTreeMap<&str, usize> = entries[entries.len() - audit_before..].iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.action.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        fixture_actions,
        [("alert_route.create", 3), ("budget.create", 3), ("silence.create", 2), ("token.create", 1)].into_iter().collect(),
    );
}

#[tokio::test]
async fn every_budgets_grpc_method_answers_only_within_the_callers_scope() {
    // The methods the budgets proto declares: a new one without a case fails here.
    let proto = include_str!("../../proto/canopy_budgets.proto");
    let methods: BTreeSet<&str> = proto
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .map(|l| l.split('(').next().unwrap().trim())
        .collect();
    assert_eq!(methods, ["CreateBudget", "DeleteBudget", "GetBudget", "ListBudgets", "UpdateBudget"].into_iter().collect());

    let o = org().await;
    let pool = o.db.pool.clone();
    let key = new_key("main");
    let issuer = start_issuer(&[&key]).await;
    let auth = Auth::enforced(Some(OidcVerifier::discover(oidc_config(&issuer, false)).await.unwrap()), pool.clone());
    let http = canopy_aggregator::auth::http_layer::protect(
        canopy_aggregator::alerts::http::route_table(alerts_state(&pool)).into_router(),
        auth.clone(),
    );
    let cases = cases(&issuer, &key, &pool).await;
    let admin = cases.iter().find(|c| c.role == Role::Admin).unwrap().bearer.clone();
    let f = alert_fixture(&http, &pool, &admin).await;
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GrpcBudgets::new(pool.clone(), auth).into_server())
            .serve_with_incoming(incoming),
    );
    let mut client = CanopyBudgetsClient::connect(format!("http://{addr}")).await.unwrap();
    fn req<T>(message: T, bearer: Option<&str>) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(b) = bearer {
            r.metadata_mut().insert("authorization", b.parse().unwrap());
        }
        r
    }
    let spec = |amount: f64| bpb::BudgetSpec {
        name: "data quarterly".into(),
        scope: Some(bpb::Scope { team: "data".into(), ..Default::default() }),
        period: "quarter".into(),
        basis: "location".into(),
        amount_kg_co2e: amount,
        routes: vec!["oncall".into()],
        pagerduty_routing_key: BUDGET_KEY.into(),
        ..Default::default()
    };

    // Unauthenticated: UNAUTHENTICATED from every method, nothing changed.
    let before = alerting_state(&pool).await;
    for bearer in [None, Some("Bearer canopy_0123456789abcdef_nottherightsecret")] {
        let codes = [
            client.list_budgets(req(bpb::ListBudgetsRequest {}, bearer)).await.unwrap_err().code(),
            client.get_budget(req(bpb::GetBudgetRequest { budget_id: f.web }, bearer)).await.unwrap_err().code(),
            client.create_budget(req(bpb::CreateBudgetRequest { spec: Some(spec(5.0)) }, bearer)).await.unwrap_err().code(),
            client
                .update_budget(req(bpb::UpdateBudgetRequest { budget_id: f.web, spec: Some(spec(5.0)) }, bearer))
                .await
                .unwrap_err()
                .code(),
            client.delete_budget(req(bpb::DeleteBudgetRequest { budget_id: f.web }, bearer)).await.unwrap_err().code(),
        ];
        assert_eq!(codes, [tonic::Code::Unauthenticated; 5], "{bearer:?}");
    }
    assert_eq!(alerting_state(&pool).await, before);

    let audit_before = audit::recent(&pool, 1_000).await.unwrap().len();
    for case in cases.iter().rev() {
        let who = case.name;
        let bearer = Some(case.bearer.as_str());
        let visible: BTreeSet<i64> = match case.role {
            Role::Admin | Role::OrgViewer => [f.web, f.data, f.ou_b].into(),
            Role::OuViewer => [f.ou_b].into(),
            Role::TeamViewer if case.teams == Some(&["web"]) => [f.web].into(),
            Role::TeamViewer => [f.data].into(),
        };
        let listed = client.list_budgets(req(bpb::ListBudgetsRequest {}, bearer)).await.unwrap().into_inner().budgets;
        assert_eq!(listed.iter().map(|b| b.budget_id).collect::<BTreeSet<_>>(), visible, "{who} ListBudgets");
        assert!(listed.iter().all(|b| b.spec.as_ref().unwrap().pagerduty_routing_key.is_empty()), "{who}: no key returned");
        for id in [f.web, f.data, f.ou_b] {
            let got = client.get_budget(req(bpb::GetBudgetRequest { budget_id: id }, bearer)).await;
            match got {
                Ok(b) if visible.contains(&id) => assert_eq!(b.into_inner().budget_id, id),
                Err(e) if !visible.contains(&id) => assert_eq!(e.code(), tonic::Code::NotFound, "{who} GetBudget {id}"),
                other => panic!("{who} GetBudget {id}: {other:?}"),
            }
        }
        let state = alerting_state(&pool).await;
        let created = client.create_budget(req(bpb::CreateBudgetRequest { spec: Some(spec(50.0)) }, bearer)).await;
        if case.role == Role::Admin {
            let created = created.unwrap().into_inner();
            assert!(created.spec.as_ref().unwrap().pagerduty_routing_key.is_empty());
            let updated = client
                .update_budget(req(bpb::UpdateBudgetRequest { budget_id: created.budget_id, spec: Some(spec(60.0)) }, bearer))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(updated.spec.unwrap().amount_kg_co2e, 60.0);
            client.delete_budget(req(bpb::DeleteBudgetRequest { budget_id: created.budget_id }, bearer)).await.unwrap();
        } else {
            assert_eq!(created.unwrap_err().code(), tonic::Code::PermissionDenied, "{who} CreateBudget");
            let e = client
                .update_budget(req(bpb::UpdateBudgetRequest { budget_id: f.web, spec: Some(spec(60.0)) }, bearer))
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied, "{who} UpdateBudget");
            let e = client.delete_budget(req(bpb::DeleteBudgetRequest { budget_id: f.web }, bearer)).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied, "{who} DeleteBudget");
            assert_eq!(alerting_state(&pool).await, state, "{who}: refused writes changed nothing");
        }
    }
    let entries = audit::recent(&pool, 1_000).await.unwrap();
    let new: Vec<_> = entries[..entries.len() - audit_before].iter().rev().collect();
    assert_eq!(new.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["budget.create", "budget.update", "budget.delete"]);
    assert!(new.iter().all(|e| e.actor == "jwt:alice"));
    assert_eq!(new[1].before.as_ref().unwrap()["amount_kg_co2e"], 50.0);
    assert_eq!(new[1].after.as_ref().unwrap()["amount_kg_co2e"], 60.0);
    for e in &new {
        assert_no_secret(&format!("{:?} {:?}", e.before, e.after), &format!("audit entry {}", e.action));
    }
    server.abort();
}
