//! `billing sync` against moto's S3: generated CUR 2.0 months (Parquet and
//! gzip CSV, with Data Exports manifests) are stored once, with the sums the
//! emissions library's `canopy` estimate (what `canopy estimate` runs) gives
//! for the same files; a re-delivery replaces its month; bad deliveries are
//! refused naming the object key, storing nothing.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::Credentials;
use aws_sdk_s3::primitives::ByteStream;
use canopy_aggregator::billing::{self, SyncConfig, SyncReport};
use canopy_cur::generate::{CsvStyle, GeneratorConfig, write_csv_gz, write_cur2_parquet};
use canopy_emissions::cur::{CurEstimator, EstimateOptions};
use canopy_emissions::time::unix_seconds;

use crate::support::TestDb;

const BUCKET: &str = "org-bills";
const EXPORT: &str = "org-cur";

/// moto in server mode on a free port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): install it with `pip install 'moto[server]'`"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn s3(moto: &Moto) -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{}", moto.port))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "canopy-tests",
        ))
        .load()
        .await;
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    )
}

async fn put(client: &Client, key: &str, bytes: Vec<u8>) {
    client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
}

fn data_key(period: &str, file: &str) -> String {
    format!("exports/{EXPORT}/data/BILLING_PERIOD={period}/{file}")
}

async fn put_manifest(client: &Client, period: &str, execution_id: &str, data_keys: &[String]) {
    let files: Vec<String> = data_keys
        .iter()
        .map(|k| format!("s3://{BUCKET}/{k}"))
        .collect();
    let manifest = serde_json::json!({
        "version": "1.0",
        "exportArn": "arn:aws:bcm-data-exports:us-east-1:111122223333:export/org-cur-1",
        "exportName": EXPORT,
        "executionId": execution_id,
        "billingPeriod": period,
        "dataFiles": files,
        "queryStatement": "SELECT * FROM COST_AND_USAGE_REPORT",
    });
    let key = format!("exports/{EXPORT}/metadata/BILLING_PERIOD={period}/{EXPORT}-Manifest.json");
    put(client, &key, serde_json::to_vec(&manifest).unwrap()).await;
}

fn parquet(config: &GeneratorConfig) -> Vec<u8> {
    let mut out = Vec::new();
    write_cur2_parquet(config, &mut out).unwrap();
    out
}

fn csv_gz(config: &GeneratorConfig) -> Vec<u8> {
    let mut out = Vec::new();
    write_csv_gz(config, CsvStyle::Cur2, &mut out).unwrap();
    out
}

fn month(seed: u64, rows: u64, year: i32, month: u8, days: u32) -> GeneratorConfig {
    GeneratorConfig {
        seed,
        rows,
        accounts: 3,
        start_unix_s: unix_seconds(year, month, 1, 0, 0, 0),
        days,
        resources: 0,
    }
}

/// What `canopy estimate` (default options: canopy methodology, per day)
/// gives for these files, through the same library calls, plus the usage
/// lines' count and unblended cost.
#[derive(Debug, Default, Clone, Copy)]
struct Expected {
    energy_kwh: f64,
    location_g_co2e: f64,
    market_g_co2e: f64,
    estimated_cost: f64,
    usage_lines: i64,
    usage_cost: f64,
}

fn expected(files: &[(&str, &[u8])]) -> Expected {
    let dir = tempfile::tempdir().unwrap();
    let mut estimator = CurEstimator::new(EstimateOptions::default());
    let mut e = Expected::default();
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        canopy_cur::read_file(&path, &Default::default(), &mut |line| {
            estimator.add(line);
            if ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"]
                .contains(&line.line_item_type)
            {
                e.usage_lines += 1;
                e.usage_cost += line.unblended_cost;
            }
        })
        .unwrap();
    }
    for row in estimator.finish().rows {
        e.energy_kwh += row.energy_kwh.unwrap();
        e.location_g_co2e += row.co2e_location_kg.unwrap() * 1000.0;
        e.market_g_co2e += row.co2e_market_kg.unwrap() * 1000.0;
        e.estimated_cost += row.cost;
    }
    e
}

/// Sums of one stored month.
async fn stored(pool: &sqlx::PgPool, period: &str) -> Expected {
    let (energy, location, market, estimated_cost, lines, cost): (f64, f64, f64, f64, i64, f64) = sqlx::query_as(
        "SELECT COALESCE(sum(energy_kwh), 0), COALESCE(sum(location_g_co2e), 0), COALESCE(sum(market_g_co2e), 0),
                COALESCE(sum(unblended_cost) FILTER (WHERE estimated), 0), COALESCE(sum(line_items), 0)::bigint,
                COALESCE(sum(unblended_cost), 0)
         FROM billing_line_items WHERE billing_period = $1::date",
    )
    .bind(period)
    .fetch_one(pool)
    .await
    .unwrap();
    Expected {
        energy_kwh: energy,
        location_g_co2e: location,
        market_g_co2e: market,
        estimated_cost,
        usage_lines: lines,
        usage_cost: cost,
    }
}

fn assert_matches(got: Expected, want: Expected) {
    let close = |a: f64, b: f64, what: &str| {
        assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            "{what}: stored {a}, canopy estimate {b}"
        );
    };
    assert!(
        want.energy_kwh > 0.0 && want.location_g_co2e > 0.0,
        "the fixture must have estimated usage"
    );
    close(got.energy_kwh, want.energy_kwh, "kWh");
    close(got.location_g_co2e, want.location_g_co2e, "location gCO2e");
    close(got.market_g_co2e, want.market_g_co2e, "market gCO2e");
    close(
        got.estimated_cost,
        want.estimated_cost,
        "estimated rows' cost",
    );
    close(
        got.usage_cost,
        want.usage_cost,
        "usage lines' unblended cost",
    );
    assert_eq!(got.usage_lines, want.usage_lines, "usage line items");
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn sync(db: &TestDb, client: &Client) -> SyncReport {
    let config = SyncConfig {
        bucket: BUCKET.to_owned(),
        prefix: "exports".to_owned(),
        export_name: None,
    };
    billing::sync(&db.pool, client, &config)
        .await
        .expect("listing and the database work")
}

#[tokio::test]
async fn deliveries_are_stored_once_replaced_by_redelivery_and_bad_ones_refused() {
    let moto = Moto::start();
    let client = s3(&moto).await;
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let db = TestDb::migrated().await;

    // October 2023: one Parquet and one gzip CSV file.
    let oct_a = parquet(&month(11, 1_500, 2023, 10, 3));
    let oct_b = csv_gz(&month(12, 700, 2023, 10, 2));
    let oct_keys = vec![
        data_key("2023-10", "org-cur-00001.snappy.parquet"),
        data_key("2023-10", "org-cur-00002.csv.gz"),
    ];
    put(&client, &oct_keys[0], oct_a.clone()).await;
    put(&client, &oct_keys[1], oct_b.clone()).await;
    put_manifest(&client, "2023-10", "exec-oct-1", &oct_keys).await;
    // November 2023: Parquet.
    let nov = parquet(&month(21, 900, 2023, 11, 2));
    let nov_keys = vec![data_key("2023-11", "org-cur-00001.snappy.parquet")];
    put(&client, &nov_keys[0], nov.clone()).await;
    put_manifest(&client, "2023-11", "exec-nov-1", &nov_keys).await;

    let report = sync(&db, &client).await;
    assert_eq!(report.failures, Vec::<String>::new());
    assert_eq!(
        (
            report.manifests,
            report.deliveries_synced,
            report.deliveries_unchanged
        ),
        (2, 2, 0)
    );
    let oct_expected = expected(&[("a.parquet", &oct_a), ("b.csv.gz", &oct_b)]);
    let nov_expected = expected(&[("n.parquet", &nov)]);
    assert_eq!(report.line_items_read, 1_500 + 700 + 900);
    assert_matches(stored(&db.pool, "2023-10-01").await, oct_expected);
    assert_matches(stored(&db.pool, "2023-11-01").await, nov_expected);

    // Rows are per resource and team; the parts add up as agent facts' do.
    let rows = count(&db.pool, "SELECT count(*) FROM billing_line_items").await;
    assert_eq!(rows as u64, report.rows_stored);
    assert!(
        count(
            &db.pool,
            "SELECT count(DISTINCT resource_id) FROM billing_line_items WHERE resource_id <> ''"
        )
        .await
            > 50
    );
    assert!(
        count(
            &db.pool,
            "SELECT count(DISTINCT team) FROM billing_line_items"
        )
        .await
            > 2
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM billing_line_items WHERE estimated AND
                (abs(location_g_co2e - operational_location_g_co2e - embodied_g_co2e) > 1e-6 * greatest(location_g_co2e, 1)
                 OR abs(market_g_co2e - operational_market_g_co2e - embodied_g_co2e) > 1e-6 * greatest(market_g_co2e, 1)
                 OR operational_location_low_g_co2e > operational_location_g_co2e
                 OR operational_location_high_g_co2e < operational_location_g_co2e)"
        )
        .await,
        0
    );
    assert!(
        count(
            &db.pool,
            "SELECT count(*) FROM billing_line_items WHERE embodied_g_co2e > 0"
        )
        .await
            > 0,
        "instance hours carry embodied CO2e"
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM billing_line_items WHERE estimated AND energy_kwh IS NULL"
        )
        .await,
        0
    );
    // Lineage: every row names its delivery, every delivery its methodology and factors.
    let lineage: (String, String, i64) = sqlx::query_as(
        "SELECT methodology, factor_lineage, line_items_read FROM billing_deliveries WHERE execution_id = 'exec-oct-1'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(lineage.0, "canopy");
    assert!(
        lineage.1.contains("built-in annual grid factors"),
        "{}",
        lineage.1
    );
    assert_eq!(lineage.2, 2_200);

    // A second sync is a no-op.
    let again = sync(&db, &client).await;
    assert_eq!(
        (
            again.deliveries_synced,
            again.deliveries_unchanged,
            again.rows_stored
        ),
        (0, 2, 0)
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM billing_line_items").await,
        rows
    );

    // A re-delivery of October (a new execution, other files) replaces the month.
    let oct_v2 = parquet(&month(13, 800, 2023, 10, 4));
    let oct_v2_keys = vec![data_key("2023-10", "org-cur-v2-00001.snappy.parquet")];
    put(&client, &oct_v2_keys[0], oct_v2.clone()).await;
    put_manifest(&client, "2023-10", "exec-oct-2", &oct_v2_keys).await;
    let report = sync(&db, &client).await;
    assert_eq!(
        (
            report.deliveries_synced,
            report.deliveries_unchanged,
            report.failures.len()
        ),
        (1, 1, 0)
    );
    assert_matches(
        stored(&db.pool, "2023-10-01").await,
        expected(&[("v2.parquet", &oct_v2)]),
    );
    assert_matches(stored(&db.pool, "2023-11-01").await, nov_expected);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM billing_line_items WHERE execution_id = 'exec-oct-1'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM billing_deliveries WHERE billing_period = '2023-10-01'"
        )
        .await,
        2
    );
    assert_eq!(
        sqlx::query_scalar::<_, String>("SELECT execution_id FROM billing_deliveries WHERE billing_period = '2023-10-01' AND current")
            .fetch_one(&db.pool)
            .await
            .unwrap(),
        "exec-oct-2"
    );

    // Bad re-deliveries of November: each refused naming the object key,
    // nothing stored, November and October as before.
    let rows_before = count(&db.pool, "SELECT count(*) FROM billing_line_items").await;
    let deliveries_before = count(&db.pool, "SELECT count(*) FROM billing_deliveries").await;
    let bad_before = billing::BILLING_METRICS.render();
    let truncated = {
        let mut t = parquet(&month(22, 900, 2023, 11, 2));
        t.truncate(t.len() / 2);
        t
    };
    let unknown_schema = b"billing_id,amount\n1,2\n".to_vec();
    let bad_row = {
        // A valid CUR 2.0 gzip CSV whose third line has a bad usage amount.
        let mut plain = Vec::new();
        canopy_cur::generate::write_csv(&month(23, 5, 2023, 11, 1), CsvStyle::Cur2, &mut plain)
            .unwrap();
        let text = String::from_utf8(plain).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let header: Vec<&str> = lines[0].split(',').collect();
        let amount = header
            .iter()
            .position(|c| *c == "line_item_usage_amount")
            .unwrap();
        let mut cells: Vec<String> = lines[2].split(',').map(str::to_owned).collect();
        cells[amount] = "lots".to_owned();
        lines[2] = cells.join(",");
        gzip(lines.join("\n").as_bytes())
    };
    let good_key = data_key("2023-11", "org-cur-00002.snappy.parquet");
    put(&client, &good_key, parquet(&month(24, 300, 2023, 11, 2))).await;
    let cases: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        (
            "missing.snappy.parquet",
            None,
            "named by the manifest but not found",
        ),
        (
            "truncated.snappy.parquet",
            Some(truncated),
            "expected a readable parquet file",
        ),
        (
            "unknown-schema.csv.gz",
            Some(gzip(&unknown_schema)),
            "missing required column",
        ),
        (
            "bad-row.csv.gz",
            Some(bad_row),
            "line 3: line_item_usage_amount: expected a number",
        ),
    ];
    for (i, (file, bytes, reason)) in cases.into_iter().enumerate() {
        let key = data_key("2023-11", file);
        if let Some(bytes) = bytes {
            put(&client, &key, bytes).await;
        }
        // The good file first: its rows are read before the bad one fails.
        put_manifest(
            &client,
            "2023-11",
            &format!("exec-nov-bad-{i}"),
            &[good_key.clone(), key.clone()],
        )
        .await;
        let report = sync(&db, &client).await;
        assert_eq!(
            (report.deliveries_synced, report.deliveries_unchanged),
            (0, 1),
            "{file}"
        );
        assert_eq!(report.failures.len(), 1, "{file}");
        let failure = &report.failures[0];
        assert!(
            failure.starts_with(&format!("s3://{BUCKET}/{key}: ")),
            "{file}: {failure}"
        );
        assert!(failure.contains(reason), "{file}: {failure}");
        assert_eq!(
            count(&db.pool, "SELECT count(*) FROM billing_line_items").await,
            rows_before,
            "{file}"
        );
        assert_eq!(
            count(&db.pool, "SELECT count(*) FROM billing_deliveries").await,
            deliveries_before,
            "{file}"
        );
        assert_matches(stored(&db.pool, "2023-11-01").await, nov_expected);
    }
    let bad_after = billing::BILLING_METRICS.render();
    let bad_count = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("canopy_aggregator_billing_bad_input_total "))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        bad_count(&bad_after) >= bad_count(&bad_before) + 4,
        "{bad_after}"
    );

    // The next good delivery of November completes it.
    put_manifest(
        &client,
        "2023-11",
        "exec-nov-2",
        std::slice::from_ref(&good_key),
    )
    .await;
    let report = sync(&db, &client).await;
    assert_eq!((report.deliveries_synced, report.failures.len()), (1, 0));
    assert_matches(
        stored(&db.pool, "2023-11-01").await,
        expected(&[("g.parquet", &parquet(&month(24, 300, 2023, 11, 2)))]),
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Runs `canopy-aggregator billing sync` against moto and the test database.
fn sync_command(db: &TestDb, moto: &Moto) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_canopy-aggregator"));
    command
        .args([
            "billing",
            "sync",
            "--billing-bucket",
            BUCKET,
            "--billing-prefix",
            "exports",
        ])
        .arg("--billing-s3-endpoint-url")
        .arg(format!("http://127.0.0.1:{}", moto.port))
        .env("CANOPY_DATABASE_URL", db.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn a_sync_killed_mid_delivery_leaves_the_previous_state_and_the_next_completes_it() {
    let moto = Moto::start();
    let client = s3(&moto).await;
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let db = TestDb::migrated().await;

    let upload = |seed: u64, version: &'static str| {
        let client = client.clone();
        async move {
            let mut keys = Vec::new();
            let mut files = Vec::new();
            for part in 0..4u64 {
                let bytes = parquet(&month(seed + part, 20_000, 2023, 10, 30));
                let key = data_key(
                    "2023-10",
                    &format!("org-cur-{version}-{part:05}.snappy.parquet"),
                );
                put(&client, &key, bytes.clone()).await;
                keys.push(key);
                files.push(bytes);
            }
            (keys, files)
        }
    };
    let (keys_1, files_1) = upload(100, "v1").await;
    put_manifest(&client, "2023-10", "exec-1", &keys_1).await;
    let started = Instant::now();
    let out = sync_command(&db, &moto).output().unwrap();
    let full_run = started.elapsed();
    assert!(
        out.status.success(),
        "first sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deliveries stored: 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let named = |files: &[Vec<u8>]| -> Vec<(String, Vec<u8>)> {
        files
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("{i}.parquet"), b.clone()))
            .collect()
    };
    let want = |files: &[(String, Vec<u8>)]| {
        expected(
            &files
                .iter()
                .map(|(n, b)| (n.as_str(), b.as_slice()))
                .collect::<Vec<_>>(),
        )
    };
    let expected_1 = want(&named(&files_1));
    assert_matches(stored(&db.pool, "2023-10-01").await, expected_1);

    // A re-delivery; the sync reading it is killed (SIGKILL) a third of the
    // way through a full run's time.
    let (keys_2, files_2) = upload(200, "v2").await;
    put_manifest(&client, "2023-10", "exec-2", &keys_2).await;
    let mut child = sync_command(&db, &moto).spawn().unwrap();
    std::thread::sleep(full_run / 3);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sync must still be running when killed (full run took {full_run:?})"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    // PostgreSQL rolls the killed session's transaction back once it notices the closed connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&db.pool, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name <> ''").await > 0
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM billing_deliveries WHERE execution_id = 'exec-2'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM billing_line_items WHERE execution_id = 'exec-2'"
        )
        .await,
        0
    );
    assert_matches(stored(&db.pool, "2023-10-01").await, expected_1);

    // The next sync completes the delivery.
    let out = sync_command(&db, &moto).output().unwrap();
    assert!(
        out.status.success(),
        "sync after the kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_matches(stored(&db.pool, "2023-10-01").await, want(&named(&files_2)));
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM billing_line_items WHERE execution_id = 'exec-1'"
        )
        .await,
        0
    );

    // A refused delivery: the command names the key and exits non-zero.
    let missing = data_key("2023-10", "org-cur-v3-00000.snappy.parquet");
    put_manifest(&client, "2023-10", "exec-3", std::slice::from_ref(&missing)).await;
    let out = sync_command(&db, &moto).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "refused: s3://{BUCKET}/{missing}: named by the manifest but not found"
        )),
        "{stderr}"
    );
    assert_matches(stored(&db.pool, "2023-10-01").await, want(&named(&files_2)));
}
