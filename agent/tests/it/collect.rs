//! One full cycle against moto: inventory and emission values, exactly.

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use canopy_agent::build::build_agent_with_credentials;
use canopy_agent::config::AgentConfig;
use canopy_agent::cycle::CycleOutput;
use canopy_agent::env::MapEnv;
use canopy_emissions::model::{
    CpuArchitecture as ModelArch, DEFAULT_CPU_UTILISATION_PCT, LAMBDA_GB_PER_VCPU, instance_power, pue, vcpu_power_w,
};
use canopy_protocol::{EmissionRecord, LifecycleState, Quality, Subject};

use crate::moto::{Moto, credentials, zip_one_file};

pub const REGION: &str = "eu-west-1";

pub fn config(endpoint: &str, extra: &str) -> AgentConfig {
    let text =
        format!("config_version = 1\nagent_id = \"it\"\nregion = \"{REGION}\"\nendpoint_url = \"{endpoint}\"\n{extra}");
    AgentConfig::from_toml(&text, "it", &MapEnv::default()).unwrap()
}

pub fn now_unix_s() -> i64 {
    canopy_agent::run::now_unix_s()
}

/// `[hour_end - 7200, hour_end)`: the window the first cycle at `now` measures at a 2-hour cadence.
pub fn window(now: i64) -> (i64, i64) {
    let cycle_end = now - now % 300;
    let hour_end = cycle_end - cycle_end % 3_600;
    (hour_end - 7_200, hour_end)
}

pub async fn run_instances(ec2: &aws_sdk_ec2::Client, ami: &str, instance_type: &str, tags: &[(&str, &str)]) -> String {
    use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
    let mut req =
        ec2.run_instances().image_id(ami).instance_type(InstanceType::from(instance_type)).min_count(1).max_count(1);
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        req = req.tag_specifications(spec.build());
    }
    let out = req.send().await.unwrap();
    out.instances()[0].instance_id().unwrap().to_owned()
}

pub async fn any_ami(ec2: &aws_sdk_ec2::Client) -> String {
    let images = ec2.describe_images().owners("amazon").send().await.unwrap();
    images.images()[0].image_id().unwrap().to_owned()
}

async fn put_points(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    metric: &str,
    dim: (&str, &str),
    points: &[(i64, f64)],
) {
    for chunk in points.chunks(20) {
        let data = chunk
            .iter()
            .map(|(t, v)| {
                MetricDatum::builder()
                    .metric_name(metric)
                    .dimensions(Dimension::builder().name(dim.0).value(dim.1).build())
                    .timestamp(DateTime::from_secs(*t))
                    .value(*v)
                    .build()
            })
            .collect();
        cw.put_metric_data().namespace(namespace).set_metric_data(Some(data)).send().await.unwrap();
    }
}

fn find<'a>(out: &'a CycleOutput, arn: &str, start: i64, end: i64) -> &'a EmissionRecord {
    out.emissions
        .iter()
        .find(|e| {
            e.subject == Subject::Resource { arn: arn.to_owned() }
                && e.interval_start_unix_s == start
                && e.interval_end_unix_s == end
        })
        .unwrap_or_else(|| panic!("no record for {arn} over {start}..{end}"))
}

fn close(found: f64, expected: f64, what: &str) {
    assert!((found - expected).abs() <= 1e-12 + expected.abs() * 1e-9, "{what}: found {found}, expected {expected}");
}

/// `(pue, eu-west-1 location factor)` for the year of `t`.
fn pue_and_grid(t: i64) -> (f64, f64) {
    let year = canopy_emissions::time::civil_date(t).year;
    (pue(year).0, canopy_emissions::grid::location_factor(REGION).g_co2e_per_kwh)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cycle_against_moto_reports_inventory_and_exact_emissions() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let cw = aws_sdk_cloudwatch::Client::new(&sdk);
    let now = now_unix_s();
    let (w0, w1) = window(now);

    let ami = any_ami(&ec2).await;
    let web = run_instances(&ec2, &ami, "m5.large", &[("Team", "payments"), ("Name", "web")]).await;
    let idle = run_instances(&ec2, &ami, "m5.large", &[("Team", "payments")]).await;
    let search = run_instances(&ec2, &ami, "c5.xlarge", &[("team", "search")]).await;
    let _untagged = run_instances(&ec2, &ami, "t3.micro", &[]).await;
    let vol = ec2
        .create_volume()
        .availability_zone("eu-west-1a")
        .size(100)
        .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                .tags(aws_sdk_ec2::types::Tag::builder().key("Team").value("data").build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_owned();

    let rds = aws_sdk_rds::Client::new(&sdk);
    rds.create_db_instance()
        .db_instance_identifier("orders")
        .db_instance_class("db.m5.large")
        .engine("postgres")
        .allocated_storage(50)
        .storage_type("gp2")
        .master_username("canopy")
        .master_user_password("canopy-secret-1")
        .tags(aws_sdk_rds::types::Tag::builder().key("Team").value("payments").build())
        .send()
        .await
        .unwrap();

    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    s3.create_bucket()
        .bucket("canopy-logs")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_bucket_tagging()
        .bucket("canopy-logs")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(aws_sdk_s3::types::Tag::builder().key("Team").value("data").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let us_sdk = crate::moto::sdk_for(&moto.url(), "us-east-1").await;
    let s3_us =
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&us_sdk).force_path_style(true).build());
    s3_us.create_bucket().bucket("elsewhere-bucket").send().await.unwrap();
    // Daily storage metrics: 5 GB Standard, 1,234 objects, yesterday.
    let yesterday = now - 20 * 3_600;
    let put_s3 = |metric: &'static str, storage: &'static str, value: f64| {
        let cw = cw.clone();
        async move {
            cw.put_metric_data()
                .namespace("AWS/S3")
                .metric_data(
                    MetricDatum::builder()
                        .metric_name(metric)
                        .dimensions(Dimension::builder().name("BucketName").value("canopy-logs").build())
                        .dimensions(Dimension::builder().name("StorageType").value(storage).build())
                        .timestamp(DateTime::from_secs(yesterday))
                        .value(value)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    };
    put_s3("BucketSizeBytes", "StandardStorage", 5e9).await;
    put_s3("NumberOfObjects", "AllStorageTypes", 1_234.0).await;

    moto.create_role("canopy-lambda").await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let function_arn = lambda
        .create_function()
        .function_name("resize")
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/canopy-lambda")
        .handler("index.handler")
        .memory_size(512)
        .architectures(aws_sdk_lambda::types::Architecture::Arm64)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(zip_one_file("index.py", b"def handler(e, c):\n    return 1\n").into())
                .build(),
        )
        .tags("Team", "search")
        .send()
        .await
        .unwrap()
        .function_arn()
        .unwrap()
        .to_owned();

    // CPU: `web` at 20 % for the first hour of the window and 40 % for half
    // of the second; `idle` has no datapoints. Lambda: 1,000 ms per 5 minutes.
    let first_hour: Vec<(i64, f64)> = (0..12).map(|i| (w0 + i * 300, 20.0)).collect();
    let second_hour: Vec<(i64, f64)> = (0..6).map(|i| (w0 + 3_600 + i * 300, 40.0)).collect();
    put_points(&cw, "AWS/EC2", "CPUUtilization", ("InstanceId", &web), &[first_hour.clone(), second_hour].concat())
        .await;
    put_points(&cw, "AWS/EC2", "CPUUtilization", ("InstanceId", &search), &[(w0, 60.0), (w0 + 300, 80.0)]).await;
    put_points(
        &cw,
        "AWS/Lambda",
        "Duration",
        ("FunctionName", "resize"),
        &(0..12).map(|i| (w0 + i * 300, 1_000.0)).collect::<Vec<_>>(),
    )
    .await;

    // Two hours, so one fetch covers an hour of 20 % and one of 40 %.
    let config = config(&moto.url(), "[intervals]\nutilisation_s = 7200\n");
    let mut agent = build_agent_with_credentials(&config, Some(credentials())).await.unwrap();
    assert_eq!(agent.account_id(), "123456789012");
    let out = agent.run_cycle(now).await;
    assert_eq!(out.stats.collector_failures, 0, "{:?}", out.stats);
    assert!(out.stats.full_inventory);
    assert_eq!(out.stats.utilisation_window, Some((w0, w1)));

    // Inventory.
    let arn = |kind: &str, id: &str| format!("arn:aws:ec2:{REGION}:123456789012:{kind}/{id}");
    let resource =
        |a: &str| out.resources.iter().map(|(r, _)| r).find(|r| r.arn == a).unwrap_or_else(|| panic!("missing {a}"));
    let instances: Vec<_> = out.resources.iter().filter(|(r, _)| r.resource_type == "instance").collect();
    assert_eq!(instances.len(), 4);
    let w = resource(&arn("instance", &web));
    assert_eq!((w.class.as_deref(), w.vcpus, w.memory_mib), (Some("m5.large"), Some(2.0), Some(8_192)));
    assert_eq!(w.tags.get("Name").map(String::as_str), Some("web"));
    assert_eq!(w.lifecycle, LifecycleState::Running);
    let s = resource(&arn("instance", &search));
    assert_eq!((s.class.as_deref(), s.vcpus, s.memory_mib), (Some("c5.xlarge"), Some(4.0), Some(8_192)));
    let v = resource(&arn("volume", &vol));
    assert_eq!((v.class.as_deref(), v.size.and_then(|s| s.bytes())), (Some("gp3"), Some(100 << 30)));
    let db = out.resources.iter().map(|(r, _)| r).find(|r| r.service == "rds").unwrap();
    assert_eq!((db.class.as_deref(), db.size.and_then(|s| s.bytes())), (Some("db.m5.large"), Some(50 << 30)));
    assert_eq!(db.tags.get("Team").map(String::as_str), Some("payments"));
    let buckets: Vec<_> = out.resources.iter().filter(|(r, _)| r.service == "s3").collect();
    assert_eq!(buckets.len(), 1, "only the bucket in {REGION}");
    assert_eq!(buckets[0].0.size.and_then(|s| s.bytes()), Some(5_000_000_000));
    assert_eq!(buckets[0].1.get("objects").map(String::as_str), Some("1234"));
    let f = resource(&function_arn);
    assert_eq!((f.memory_mib, f.cpu_architecture), (Some(512), Some(canopy_protocol::CpuArchitecture::Arm64)));
    assert_eq!(f.tags.get("Team").map(String::as_str), Some("search"));

    // Emissions, computed independently from the same coefficients.
    let (pue, grid) = pue_and_grid(w0);
    let m5 = instance_power("m5.large").unwrap();
    let check_instance = |a: &str, start: i64, cpu: f64, quality: Quality| {
        let rec = find(&out, a, start, start + 3_600);
        let p = m5.power_w(cpu);
        close(rec.energy_compute_kwh, (p.cpu_w + p.other_w) / 1_000.0, "compute kWh");
        close(rec.energy_memory_kwh, p.memory_w / 1_000.0, "memory kWh");
        close(
            rec.operational_location_g_co2e,
            (p.cpu_w + p.other_w + p.memory_w + p.gpu_w) / 1_000.0 * pue * grid,
            "location gCO2e",
        );
        assert_eq!(rec.quality, quality, "{a}");
        assert_eq!(rec.revision, 2);
    };
    let measured_quality = match m5.quality() {
        canopy_emissions::model::Quality::Measured => Quality::Measured,
        canopy_emissions::model::Quality::Estimated => Quality::Estimated,
        canopy_emissions::model::Quality::Default => Quality::Default,
    };
    check_instance(&arn("instance", &web), w0, 20.0, measured_quality);
    check_instance(&arn("instance", &web), w0 + 3_600, 40.0, measured_quality);
    // No datapoints → the documented default utilisation, flagged default.
    check_instance(&arn("instance", &idle), w0, DEFAULT_CPU_UTILISATION_PCT, Quality::Default);

    // 100 GiB gp3 = 107.3741824 GB → 0.1073741824 TB-h × 1.2 Wh × 2 copies / 1000.
    let vol_rec = find(&out, &arn("volume", &vol), w0, w0 + 3_600);
    close(vol_rec.energy_storage_kwh, 0.107_374_182_4 * 1.2 * 2.0 / 1_000.0, "EBS kWh");
    close(vol_rec.operational_location_g_co2e, 0.107_374_182_4 * 1.2 * 2.0 / 1_000.0 * pue * grid, "EBS gCO2e");
    // S3: 5 GB = 0.005 TB-h × 0.65 Wh (HDD) × 6 copies / 1000 = 0.0000195 kWh.
    let bucket_rec = find(&out, "arn:aws:s3:::canopy-logs", w0, w0 + 3_600);
    close(bucket_rec.energy_storage_kwh, 0.000_019_5, "S3 kWh");
    // Lambda, first hour: 12 × 1,000 ms × 0.5 GB = 6 GB-s = 1/600 GB-h;
    // vCPU-h = GB-h / 1.769; Graviton watts at the serverless default CPU.
    let gb_hours = 6.0 / 3_600.0;
    let lambda_rec = find(&out, &function_arn, w0, w0 + 3_600);
    close(
        lambda_rec.energy_compute_kwh,
        vcpu_power_w(ModelArch::Arm, DEFAULT_CPU_UTILISATION_PCT).0 * gb_hours / LAMBDA_GB_PER_VCPU / 1_000.0,
        "Lambda compute kWh",
    );
    close(lambda_rec.energy_memory_kwh, gb_hours * 0.000_392, "Lambda memory kWh");
    // Second hour: no datapoints = no invocations = zero energy.
    close(find(&out, &function_arn, w0 + 3_600, w1).energy_total_kwh(), 0.0, "idle Lambda hour");

    // Group records: 5-minute, measured inside the window.
    let group = |service: &str, resource_type: &str, team: Option<&str>, start: i64| {
        out.emissions
            .iter()
            .find(|e| {
                e.interval_start_unix_s == start
                    && matches!(&e.subject, Subject::Group(g) if g.service == service && g.resource_type == resource_type && g.team.as_deref() == team)
            })
            .unwrap_or_else(|| panic!("no group {service}/{resource_type}/{team:?} at {start}"))
    };
    let g = group("ec2", "volume", Some("data"), w0);
    assert_eq!((g.interval_end_unix_s - g.interval_start_unix_s, g.revision), (300, 2));
    close(g.energy_storage_kwh, 0.107_374_182_4 * 1.2 * 2.0 / 1_000.0 / 12.0, "group EBS kWh per 5 min");
    // Team comes from `Team` or `team`; the untagged t3.micro is in the untagged group.
    let search_group = group("ec2", "instance", Some("search"), w0);
    let c5 = instance_power("c5.xlarge").unwrap().power_w(60.0);
    close(search_group.energy_compute_kwh, (c5.cpu_w + c5.other_w) / 1_000.0 / 12.0, "c5.xlarge at 60 % for 5 minutes");
    group("ec2", "instance", None, w0);
    let payments = group("ec2", "instance", Some("payments"), w0);
    // web at 20 % (measured) + idle at the default → the group is flagged default.
    assert_eq!(payments.quality, Quality::Default);
    // The 5-minute bucket that ended last is provisional (revision 1), unless
    // it lies in the measured window (a cycle in the first 5 minutes of an
    // hour).
    let provisional: Vec<_> = out.emissions.iter().filter(|e| e.revision == 1).collect();
    let last_bucket = now - now % 300 - 300;
    assert_eq!(provisional.is_empty(), last_bucket < w1, "provisional records {}", provisional.len());
    assert!(provisional.iter().all(|e| e.interval_start_unix_s == last_bucket));
    assert!(provisional.iter().all(|e| e.interval_start_unix_s >= w1 && matches!(e.subject, Subject::Group(_))));

    // Every record passes the protocol's validation.
    let batch = canopy_protocol::Batch {
        agent_id: "it".into(),
        account_id: "123456789012".into(),
        region: REGION.into(),
        sequence: 1,
        idempotency_key: canopy_protocol::IdempotencyKey([1; 16]),
        created_at_unix_ms: now * 1_000,
        resources: out.resources.iter().map(|(r, _)| r.clone()).collect(),
        emissions: out.emissions.clone(),
        agent_status: None,
    };
    batch.validate(&canopy_protocol::DecodeLimits::default()).unwrap();

    // API cost: GetMetricData = ceil(metrics / 500) per fetch; a few metrics here.
    assert!(out.stats.cost.get_metric_data_calls >= 1);
}
