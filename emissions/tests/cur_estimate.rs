//! Known-value tests of `canopy_emissions::cur` in both methodologies.
//!
//! Expected values are written as the arithmetic of CCF's published
//! coefficients (PUE 1.135, SSD 1.2 / HDD 0.65 Wh per TB-h, 0.001 kWh/GB,
//! 0.000392 kWh/GB-h, 0.74/3.5 W average, us-east-1 0.000379069 t/kWh …), so
//! each case can be checked by hand. Numbers quoted from the reference vectors
//! (cur-01, cur-08, cur-19) appear literally.

use canopy_emissions::cur::{
    CurEstimate, CurEstimator, CurLine, EstimateOptions, EstimateRow, Methodology, NotEstimatedReason, Period,
};
use canopy_emissions::model::{self, Quality};
use canopy_emissions::{grid, time};

const US_EAST_1_T_PER_KWH: f64 = 0.000379069;
const PUE: f64 = 1.135;

/// 2023-10-05 (October has 31 days).
fn oct() -> i64 {
    time::unix_seconds(2023, 10, 5, 3, 0, 0)
}

#[derive(Clone, Copy)]
struct L {
    ts: i64,
    product: &'static str,
    usage_type: &'static str,
    unit: &'static str,
    amount: f64,
    cost: f64,
    vcpu: Option<f64>,
    line_item_type: &'static str,
    region: &'static str,
}

fn l(product: &'static str, usage_type: &'static str, unit: &'static str, amount: f64, cost: f64) -> L {
    L { ts: oct(), product, usage_type, unit, amount, cost, vcpu: None, line_item_type: "Usage", region: "us-east-1" }
}

impl L {
    fn vcpu(self, v: f64) -> L {
        L { vcpu: Some(v), ..self }
    }
    fn at(self, ts: i64) -> L {
        L { ts, ..self }
    }
    fn kind(self, line_item_type: &'static str) -> L {
        L { line_item_type, ..self }
    }
    fn line(&self) -> CurLine<'static> {
        CurLine {
            usage_start_unix_s: self.ts,
            account_id: "111111111111",
            region: self.region,
            product_code: self.product,
            usage_type: self.usage_type,
            pricing_unit: self.unit,
            line_item_type: self.line_item_type,
            instance_type: "",
            product_vcpu: self.vcpu,
            usage_amount: self.amount,
            // Blended and unblended differ so tests see which one a methodology uses.
            blended_cost: self.cost,
            unblended_cost: self.cost * 0.5,
            tag: None,
            resource_id: "",
            net_amortized_cost: None,
        }
    }
}

fn options(methodology: Methodology) -> EstimateOptions {
    EstimateOptions { methodology, period: Period::Day, by_usage_type: true, ..EstimateOptions::default() }
}

fn run(methodology: Methodology, lines: &[L]) -> CurEstimate {
    let mut e = CurEstimator::new(options(methodology));
    for line in lines {
        e.add(&line.line());
    }
    e.finish()
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-9 * expected.abs().max(1e-300)
}

/// Expected (kWh, location kg CO2e) of the row for `usage_type`.
struct Expect {
    usage_type: &'static str,
    kwh: Option<f64>,
    co2e_kg: Option<f64>,
}

fn row<'a>(estimate: &'a CurEstimate, usage_type: &str) -> &'a EstimateRow {
    estimate
        .rows
        .iter()
        .find(|r| r.usage_type.as_deref() == Some(usage_type))
        .unwrap_or_else(|| panic!("no output row for {usage_type}: {:#?}", estimate.rows))
}

/// The data-driven helper: runs `lines` and checks every expectation.
fn check(methodology: Methodology, lines: &[L], expected: &[Expect]) -> CurEstimate {
    let estimate = run(methodology, lines);
    for e in expected {
        let r = row(&estimate, e.usage_type);
        let ok = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => close(a, b),
            (None, None) => true,
            _ => false,
        };
        assert!(ok(r.energy_kwh, e.kwh), "{}: kwh {:?} expected {:?}", e.usage_type, r.energy_kwh, e.kwh);
        assert!(ok(r.co2e_location_kg, e.co2e_kg), "{}: co2e {:?} expected {:?}", e.usage_type, r.co2e_location_kg, e.co2e_kg);
    }
    estimate
}

fn ccf_expect(usage_type: &'static str, kwh: f64) -> Expect {
    Expect { usage_type, kwh: Some(kwh), co2e_kg: Some(kwh * US_EAST_1_T_PER_KWH * 1000.0) }
}

// ---------------------------------------------------------------- ccf: storage

#[test]
fn ccf_ebs_volumes_and_snapshots() {
    let lines = [
        l("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", 3.0, 0.3),
        l("AmazonEC2", "EBS:VolumeUsage.gp3", "GB-Mo", 10.0, 0.8),
        l("AmazonEC2", "EBS:VolumeUsage.st1", "GB-Mo", 100.0, 4.5),
        l("AmazonEC2", "EBS:VolumeUsage.sc1", "GB-Mo", 100.0, 1.5),
        l("AmazonEC2", "EBS:SnapshotUsage", "GB-Mo", 50.0, 2.5),
    ];
    check(
        Methodology::Ccf,
        &lines,
        &[
            // cur-01: 3 GB-Mo in October = 3/1000 × 24 × 31 = 2.232 TB-h × 1.2 × 1.135 × RF 2 / 1000.
            ccf_expect("EBS:VolumeUsage.gp2", 0.006079968),
            ccf_expect("EBS:VolumeUsage.gp3", 10.0 / 1000.0 * 24.0 * 31.0 * 1.2 * PUE * 2.0 / 1000.0),
            ccf_expect("EBS:VolumeUsage.st1", 100.0 / 1000.0 * 24.0 * 31.0 * 0.65 * PUE * 2.0 / 1000.0),
            ccf_expect("EBS:VolumeUsage.sc1", 100.0 / 1000.0 * 24.0 * 31.0 * 0.65 * PUE * 2.0 / 1000.0),
            // Snapshots: HDD, replication 3.
            ccf_expect("EBS:SnapshotUsage", 50.0 / 1000.0 * 24.0 * 31.0 * 0.65 * PUE * 3.0 / 1000.0),
        ],
    );
}

#[test]
fn gb_months_use_the_length_of_the_month_including_leap_february() {
    let feb_2024 = time::unix_seconds(2024, 2, 10, 0, 0, 0);
    let feb_2023 = time::unix_seconds(2023, 2, 10, 0, 0, 0);
    let leap = run(Methodology::Ccf, &[l("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", 1000.0, 1.0).at(feb_2024)]);
    let common = run(Methodology::Ccf, &[l("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", 1000.0, 1.0).at(feb_2023)]);
    // 1000 GB-Mo = 1 TB × 24 h × 29 d = 696 TB-h (2024) and 672 TB-h (2023); × 1.2 × 1.135 × 2 / 1000.
    assert!(close(leap.rows[0].energy_kwh.unwrap(), 696.0 * 1.2 * PUE * 2.0 / 1000.0));
    assert!(close(common.rows[0].energy_kwh.unwrap(), 672.0 * 1.2 * PUE * 2.0 / 1000.0));
}

/// Defect 1: ByteHrs usage types are divided by 2^40 although CUR reports GB-Mo.
#[test]
fn ccf_s3_standard_and_glacier_byte_hours_quirk() {
    let lines = [
        l("AmazonS3", "USE1-TimedStorage-ByteHrs", "GB-Mo", 1000.0, 23.0),
        l("AmazonS3", "USE1-TimedStorage-GlacierByteHrs", "GB-Mo", 1000.0, 4.0),
        l("AmazonS3", "USE1-TimedStorage-ZIA-ByteHrs", "GB-Mo", 1000.0, 10.0),
    ];
    check(
        Methodology::Ccf,
        &lines,
        &[
            // HDD, replication 6 (defect 7: comment says 3).
            ccf_expect("USE1-TimedStorage-ByteHrs", 1000.0 / 1_099_511_627_776.0 * 0.65 * PUE * 6.0 / 1000.0),
            ccf_expect("USE1-TimedStorage-GlacierByteHrs", 1000.0 / 1_099_511_627_776.0 * 0.65 * PUE * 6.0 / 1000.0),
            // One Zone-IA: replication 2.
            ccf_expect("USE1-TimedStorage-ZIA-ByteHrs", 1000.0 / 1_099_511_627_776.0 * 0.65 * PUE * 2.0 / 1000.0),
        ],
    );
}

#[test]
fn canopy_s3_byte_hours_are_gb_months() {
    let e = run(Methodology::Canopy, &[l("AmazonS3", "USE1-TimedStorage-ByteHrs", "GB-Mo", 1000.0, 23.0)]);
    let (pue, _) = model::pue(2023);
    let grid_g = grid::location_factor("us-east-1").g_co2e_per_kwh;
    // 1000 GB-Mo in October = 744 TB-h × 0.65 Wh × RF 6 / 1000 × PUE 2023 (1.15).
    let kwh = 744.0 * 0.65 * 6.0 / 1000.0 * pue;
    assert_eq!(pue, 1.15);
    assert!(close(e.rows[0].energy_kwh.unwrap(), kwh));
    assert!(close(e.rows[0].co2e_location_kg.unwrap(), kwh * grid_g / 1000.0));
    assert!(e.rows[0].co2e_low_kg.unwrap() < e.rows[0].co2e_location_kg.unwrap());
    assert!(e.rows[0].co2e_high_kg.unwrap() > e.rows[0].co2e_location_kg.unwrap());
    // canopy reports unblended cost (the helper sets unblended = blended / 2).
    assert!(close(e.rows[0].cost, 11.5));
    assert_eq!(e.rows[0].quality, Quality::Estimated);
}

// ---------------------------------------------------------------- ccf: compute

#[test]
fn ccf_ec2_known_types_with_memory_and_embodied() {
    let emb_m5 = 1.6103792 * 6.0 / (35040.0 * 96.0); // TE × h / (35040 × vCPU_ref), defect 2
    let emb_t3 = 1.6103792 * 10.0 / (35040.0 * 8.0);
    let m5_compute = 2.455 * 24.0 * PUE / 1000.0; // Skylake 0.65/4.26 → 2.455 W × 4 vCPU × 6 h
    let m5_memory = 0.0336671; // cur-08, 75.67 GB-h (0.0336670964 unrounded)
    let t3_compute = 2.305 * 0.4 * 10.0 * PUE / 1000.0; // t3.micro = 0.4 vCPU; Cascade Lake 0.64/3.97 → 2.305 W
    let lines = [
        l("AmazonEC2", "USE1-BoxUsage:m5.xlarge", "Hrs", 6.0, 1.152).vcpu(4.0),
        l("AmazonEC2", "USE1-BoxUsage:t3.micro", "Hrs", 10.0, 0.104).vcpu(2.0),
    ];
    let e = run(Methodology::Ccf, &lines);
    let m5 = row(&e, "USE1-BoxUsage:m5.xlarge");
    // Defect 3: kWh includes the embodied kWh-equivalent (embodied t / grid factor).
    let m5_kwh = m5_compute + 0.0336670964 + emb_m5 / US_EAST_1_T_PER_KWH;
    assert!(close(m5.energy_kwh.unwrap(), m5_kwh), "{:?}", m5.energy_kwh);
    assert!((m5_memory - 0.0336670964f64).abs() < 1e-7);
    assert!(close(m5.co2e_location_kg.unwrap(), ((m5_compute + 0.0336670964) * US_EAST_1_T_PER_KWH + emb_m5) * 1000.0));
    assert_eq!(m5.quality, Quality::Default);
    let t3 = row(&e, "USE1-BoxUsage:t3.micro");
    assert!(close(t3.energy_kwh.unwrap(), t3_compute + emb_t3 / US_EAST_1_T_PER_KWH));
    assert!(close(t3.cost, 0.104), "ccf uses blended cost");
}

#[test]
fn ccf_gpu_instance() {
    let e = run(Methodology::Ccf, &[l("AmazonEC2", "USE1-BoxUsage:p3dn.24xlarge", "Hrs", 1.0, 31.2).vcpu(96.0)]);
    // cur-19: 96 × 2.455 + 8 × 170.5 = 1599.68 W → 1.8156368 kWh before memory and embodied.
    let memory = 686.68 * 0.000392 * PUE; // extra GB per hour for p3dn.24xlarge
    let embodied_t = tables_te("p3dn.24xlarge") / (35040.0 * 96.0);
    let expected = 1.8156368 + memory + embodied_t / US_EAST_1_T_PER_KWH;
    let got = e.rows[0].energy_kwh.unwrap();
    assert!(close(got, expected), "{got} vs {expected}");
}

/// Defect 15: unknown vCPUs → 0 kWh and NaN CO2e (None), counted.
#[test]
fn ccf_unknown_instance_type_without_product_vcpu() {
    let e = run(
        Methodology::Ccf,
        &[
            l("AmazonEC2", "USE1-BoxUsage:c6i.metal", "Hrs", 2.0, 10.88),
            l("AmazonEC2", "USE1-BoxUsage:c6i.metal", "Hrs", 1.0, 5.44).vcpu(128.0),
        ],
    );
    assert_eq!(e.rows.len(), 1);
    // Second group: Ice Lake → AWS average 2.12 W × 128 vCPU-h; memory NaN and no embodied → compute only.
    assert!(close(e.rows[0].energy_kwh.unwrap(), 2.12 * 128.0 * PUE / 1000.0));
    assert_eq!(e.rows[0].co2e_location_kg, None);
    let reason = e.summary.not_estimated[&NotEstimatedReason::VcpusUnknown];
    assert_eq!((reason.rows, reason.cost), (1, 10.88));
    // canopy: the model knows c6i.metal; nothing is NaN.
    let c = run(Methodology::Canopy, &[l("AmazonEC2", "USE1-BoxUsage:c6i.metal", "Hrs", 2.0, 10.88)]);
    assert!(c.rows[0].co2e_location_kg.unwrap() > 0.0);
}

/// Issue 13 case 7: usage types naming an instance type with a managed-service
/// suffix (OpenSearch `<type>.search` / `<type>.elasticsearch`, on-demand
/// `ESInstance:` and reserved `HeavyUsage:`). CCF reads vCPUs from the first two
/// dot parts (`t3.medium`), so the burstable baseline is found too, and its memory
/// step looks the processor up by the whole suffixed name, which misses, so the
/// memory per chip is the unknown-processor average 80.69 GB. The expected
/// figures are CCF 0.15.0's own output for these rows (`ccf_reference.js`), to
/// the last bit.
#[test]
fn issue_13_case_7_ccf_managed_service_suffix_types() {
    let es = |usage_type| l("AmazonES", usage_type, "Hrs", 2.0, 0.5);
    let e = run(
        Methodology::Ccf,
        &[
            // t3.medium: 2 vCPU × 20 / 50 × 2 h = 1.6 vCPU-h × 2.12 W × 1.135; t3's
            // largest size has 32 GB < 80.69 → no memory; no embodied (`medium.search`).
            es("USE1-ESInstance:t3.medium.search"),
            // product_vcpu is ignored for burstables.
            es("USE1-ESInstance:t2.micro.elasticsearch").vcpu(1.0),
            // 4 vCPU-h × 2.12 W × 1.135 + (768 − 80.69) / (768 / 16) × 2 GB-h × 0.000392 × 1.135.
            es("USE1-ESInstance:r5.large.elasticsearch"),
            es("USE1-HeavyUsage:r6g.large.search").vcpu(2.0).kind("DiscountedUsage"),
            es("USE1-ESInstance:m5.xlarge.elasticsearch").vcpu(4.0),
            // Not in any CCF table: 0 kWh and NaN CO2e in CCF too.
            es("USE1-ESInstance:ultrawarm1.medium.search"),
        ],
    );
    let cases: [(&str, f64, Option<f64>); 6] = [
        ("USE1-ESInstance:t3.medium.search", 0.0038499200000000006, Some(0.0014593853244800003)),
        ("USE1-ESInstance:t2.micro.elasticsearch", 0.0009624800000000001, Some(0.00036484633112000007)),
        ("USE1-ESInstance:r5.large.elasticsearch", 0.022366381883333335, Some(0.008478402014133284)),
        ("USE1-HeavyUsage:r6g.large.search", 0.021618452825000002, Some(0.008194885293919926)),
        ("USE1-ESInstance:m5.xlarge.elasticsearch", 0.03049532376666667, Some(0.011559831884906568)),
        ("USE1-ESInstance:ultrawarm1.medium.search", 0.0, None),
    ];
    for (usage_type, kwh, co2e_kg) in cases {
        let r = row(&e, usage_type);
        assert_eq!((r.energy_kwh, r.co2e_location_kg), (Some(kwh), co2e_kg), "{usage_type}");
    }
    // By hand for the two that were wrong before: null CO2e, and memory with r5's own processors.
    assert!(close(0.0038499200000000006, 1.6 * 2.12 * PUE / 1000.0));
    assert!(close(0.022366381883333335, 4.0 * 2.12 * PUE / 1000.0 + (768.0 - 80.69) / 48.0 * 2.0 * 0.000392 * PUE));
}

/// Defect 4: Redshift seconds → vCPUs divided by 3600 a second time.
#[test]
fn ccf_redshift_seconds_quirk() {
    let e = run(Methodology::Ccf, &[l("AmazonRedshift", "USE1-Node:dc2.large", "seconds", 3600.0, 0.25)]);
    // 1 h × (2 vCPU / 3600) × 2.12 W (unknown processor) × 1.135 / 1000, plus dc2.large memory 10.0395 GB-h.
    let compute = 2.0 / 3600.0 * 2.12 * PUE / 1000.0;
    let memory = 10.03954918032787 * 0.000392 * PUE;
    let embodied_t = tables_te("dc2.large") / (35040.0 * 32.0);
    assert!(close(e.rows[0].energy_kwh.unwrap(), compute + memory + embodied_t / US_EAST_1_T_PER_KWH));
}

fn tables_te(instance_type: &str) -> f64 {
    canopy_emissions::coefficients::ccf::tables().embodied[instance_type].total_used_by_code_t_co2e.unwrap()
}

#[test]
fn ccf_lambda_x86_and_arm() {
    check(
        Methodology::Ccf,
        &[
            l("AWSLambda", "USE1-Lambda-GB-Second", "Lambda-GB-Second", 3600.0, 0.06),
            l("AWSLambda", "USE1-Lambda-GB-Second-ARM", "Lambda-GB-Second", 3600.0, 0.048),
        ],
        &[
            // 3600 GB-s counted as 1 vCPU-hour; x86 average 2.12 W, Graviton2 1.08 W.
            ccf_expect("USE1-Lambda-GB-Second", 2.12 * PUE / 1000.0),
            ccf_expect("USE1-Lambda-GB-Second-ARM", 1.08 * PUE / 1000.0),
        ],
    );
}

#[test]
fn canopy_lambda_uses_vcpu_share_and_memory() {
    let e = run(Methodology::Canopy, &[l("AWSLambda", "USE1-Lambda-GB-Second", "Lambda-GB-Second", 3600.0, 0.06)]);
    // 1 GB-h: 1024/1769 vCPU-h × 2.12 W + 1 GB-h × 0.392 W, × PUE 1.15.
    let kwh = (1024.0 / 1769.0 * 2.12 / 1000.0 + 0.000392) * 1.15;
    assert!(close(e.rows[0].energy_kwh.unwrap(), kwh), "{:?} vs {kwh}", e.rows[0].energy_kwh);
}

#[test]
fn ccf_rds_instances_and_storage() {
    check(
        Methodology::Ccf,
        &[
            l("AmazonRDS", "USE1-InstanceUsage:db.r5.large", "Hrs", 1.0, 0.25).vcpu(2.0),
            l("AmazonRDS", "USE1-Multi-AZUsage:db.r5.large", "Hrs", 1.0, 0.5).vcpu(2.0),
            l("AmazonRDS", "USE1-Aurora:ServerlessUsage", "ACU-Hr", 8.0, 0.96),
            l("AmazonRDS", "USE1-RDS:GP2-Storage", "GB-Mo", 100.0, 11.5),
        ],
        &[
            // r5.large: Skylake + Cascade Lake mean 0.645/4.115 → 2.38 W; memory 16 GB extra? see below.
            ccf_expect("USE1-InstanceUsage:db.r5.large", r5_large_kwh(1.0)),
            // Defect 8: Multi-AZ doubles compute, memory too.
            ccf_expect("USE1-Multi-AZUsage:db.r5.large", r5_large_kwh(2.0)),
            // Aurora Serverless: 8 ACU-h / 4 = 2 vCPU-h × 2.12 W × 1.135 × RF 6.
            ccf_expect("USE1-Aurora:ServerlessUsage", 2.0 * 2.12 * PUE * 6.0 / 1000.0),
            // 100 GB-Mo in October = 74.4 TB-h × 1.2 × 1.135 × RF 1.
            ccf_expect("USE1-RDS:GP2-Storage", 74.4 * 1.2 * PUE / 1000.0),
        ],
    );
}

/// r5.large per CCF: compute 2 vCPU × W × PUE × RF, memory extra GB × 0.000392 × PUE × RF,
/// embodied kWh-equivalent (no RF), all for one hour.
fn r5_large_kwh(rf: f64) -> f64 {
    let i = canopy_emissions::coefficients::ccf::instance("r5.large").unwrap();
    let w = i.min_watts_per_vcpu + 0.5 * (i.max_watts_per_vcpu - i.min_watts_per_vcpu);
    let emb = tables_te("r5.large") / (35040.0 * 96.0);
    w * 2.0 * PUE * rf / 1000.0 + i.extra_memory_gb_per_instance_hour.unwrap() * 0.000392 * PUE * rf
        + emb / US_EAST_1_T_PER_KWH
}

#[test]
fn ccf_data_transfer() {
    let e = check(
        Methodology::Ccf,
        &[
            l("AmazonEC2", "USE1-DataTransfer-Out-Bytes", "GB", 100.0, 9.0),
            l("AmazonEC2", "USE1-DataTransfer-Regional-Bytes", "GB", 50.0, 0.5),
            l("AmazonCloudFront", "US-DataTransfer-Out-Bytes", "GB", 10.0, 0.85),
            l("AmazonEC2", "USE1-APN1-AWS-In-Bytes", "GB", 10.0, 0.2),
        ],
        &[
            // Defect 11: internet egress counted; 0.001 kWh/GB × 1.135, no replication.
            ccf_expect("USE1-DataTransfer-Out-Bytes", 100.0 * 0.001 * PUE),
            ccf_expect("USE1-DataTransfer-Regional-Bytes", 50.0 * 0.001 * PUE),
        ],
    );
    let cf = e.summary.not_estimated[&NotEstimatedReason::CloudFrontExcluded];
    assert_eq!((cf.rows, cf.cost), (1, 0.85));
    let gb = e.summary.not_estimated[&NotEstimatedReason::GbNotNetworking];
    assert_eq!((gb.rows, gb.cost), (1, 0.2));
    // canopy: internet egress excluded, inter-AZ kept.
    let c = run(
        Methodology::Canopy,
        &[
            l("AmazonEC2", "USE1-DataTransfer-Out-Bytes", "GB", 100.0, 9.0),
            l("AmazonEC2", "USE1-DataTransfer-Regional-Bytes", "GB", 50.0, 0.5),
        ],
    );
    assert!(close(row(&c, "USE1-DataTransfer-Regional-Bytes").energy_kwh.unwrap(), 50.0 * 0.001 * 1.15));
    assert_eq!(c.summary.not_estimated[&NotEstimatedReason::InternetEgressExcluded].rows, 1);
}

// ---------------------------------------------------------------- unknown usage

#[test]
fn ccf_unknown_usage_by_cost_ratio() {
    let gp2 = l("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", 3.0, 0.3); // 0.006079968 kWh for 0.3 $
    let lines = [
        gp2,
        // Same product and unit: ratio 0.006079968 / 0.3 per $.
        l("AmazonEC2", "EBS:VolumeIOUsage.gp2-unknown", "GB-Mo", 1.0, 0.6),
        // Unknown list entry, other product, same unit → unit-only ratio.
        l("AmazonVPC", "USE1-SnapshotArchiveStorage", "GB-Mo", 1.0, 0.15),
        // Unit never seen → 0 kWh, counted.
        l("AmazonEC2", "USE1-EBS:VolumeP-IOPS.piops", "IOPS-Mo", 1.0, 2.0),
    ];
    let e = run(Methodology::Ccf, &lines);
    // The gp2-unknown row is not on the unknown list, GB-Mo is known: it is storage with
    // unknown medium → dropped and counted.
    assert_eq!(e.summary.not_estimated[&NotEstimatedReason::StorageMediumUnknown].rows, 1);
    assert!(close(row(&e, "USE1-SnapshotArchiveStorage").energy_kwh.unwrap(), 0.006079968 / 0.3 * 0.15));
    assert_eq!(row(&e, "USE1-SnapshotArchiveStorage").quality, Quality::Estimated);
    assert_eq!(row(&e, "USE1-EBS:VolumeP-IOPS.piops").energy_kwh, Some(0.0));
    let none = e.summary.not_estimated[&NotEstimatedReason::NoCostRatio];
    assert_eq!((none.rows, none.cost), (1, 2.0));

    // Defect 16: CCF documents "same product and unit first", but its code never passes the
    // product to the lookup, so the all-services ratio of the pricing unit always serves.
    let e = run(
        Methodology::Ccf,
        &[
            gp2,
            l("AmazonS3", "USE1-TimedStorage-SIA-ByteHrs", "GB-Mo", 1000.0, 12.5),
            l("AmazonEC2", "USE1-SnapshotArchiveStorage", "GB-Mo", 1.0, 0.6),
        ],
    );
    // S3 SIA 1000 GB-Mo read as byte-hours (defect 1): 1000 / 2^40 TB-h × 0.65 Wh × 1.135 × RF 6 / 1000.
    let s3_kwh = 1000.0 / 1_099_511_627_776.0 * 0.65 * 1.135 * 6.0 / 1000.0;
    let expected = (0.006079968 + s3_kwh) / (0.3 + 12.5) * 0.6;
    assert!(close(row(&e, "USE1-SnapshotArchiveStorage").energy_kwh.unwrap(), expected));
    assert!(!close(expected, 0.006079968 / 0.3 * 0.6), "the test must tell the two rules apart");
}

/// Defect 10: exact pricing-unit strings: `Hours` ratio does not serve `Hrs`.
#[test]
fn ccf_cost_ratio_matches_exact_unit_strings() {
    let e = run(
        Methodology::Ccf,
        &[
            l("AmazonEC2", "USE1-BoxUsage:m5.xlarge", "Hours", 1.0, 0.192).vcpu(4.0),
            l("AmazonEC2", "USE1-NatGateway-Hours", "Hrs", 1.0, 0.045),
        ],
    );
    assert_eq!(row(&e, "USE1-NatGateway-Hours").energy_kwh, Some(0.0));
    // canopy: case-insensitive units and usage-based similarity (same product, unit "hrs" ≠ "hours").
    let c = run(
        Methodology::Canopy,
        &[
            l("AmazonEC2", "USE1-BoxUsage:m5.xlarge", "hours", 1.0, 0.192).vcpu(4.0),
            l("AmazonEC2", "USE1-NatGateway-Hours", "Hours", 2.0, 0.09),
        ],
    );
    let known = row(&c, "USE1-BoxUsage:m5.xlarge").energy_kwh.unwrap();
    // Usage-based: 2 h × known kWh per hour.
    assert!(close(row(&c, "USE1-NatGateway-Hours").energy_kwh.unwrap(), 2.0 * known));
}

#[test]
fn canopy_unknown_by_cost_is_flagged_default() {
    let c = run(
        Methodology::Canopy,
        &[l("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", 3.0, 0.3), l("AmazonVPC", "USE1-VpcEndpoint-Hours", "GB-Mo", 1.0, 0.6)],
    );
    let gp2 = row(&c, "EBS:VolumeUsage.gp2").energy_kwh.unwrap();
    // Unit-only cost ratio over unblended cost (0.15 / 0.3).
    let r = row(&c, "USE1-VpcEndpoint-Hours");
    assert!(close(r.energy_kwh.unwrap(), gp2 / 0.15 * 0.3));
    assert_eq!(r.quality, Quality::Default);
    assert_eq!(r.co2e_low_kg, Some(0.0));
}

// ---------------------------------------------------------------- bookkeeping

#[test]
fn line_item_types_filtered_and_reasons_counted_with_cost() {
    let lines = [
        l("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", 3.0, 0.3),
        l("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", 3.0, 0.3).kind("DiscountedUsage"),
        l("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", 3.0, 0.3).kind("SavingsPlanCoveredUsage"),
        l("AmazonEC2", "Tax", "", 0.0, 1.2).kind("Tax"),
        l("AmazonEC2", "Tax", "", 0.0, 1.2).kind("Tax"),
        l("AmazonEC2", "Fee", "", 0.0, 3.0).kind("RIFee"),
        l("AmazonEC2", "USE1-HostBoxUsage:m5.large", "Hrs", 1.0, 4.0),
        l("AmazonWorkDocs", "USE1-Storage", "GB-Mo", 1.0, 0.7),
    ];
    for m in [Methodology::Ccf, Methodology::Canopy] {
        let e = run(m, &lines);
        assert_eq!(e.summary.rows_read, 8);
        assert_eq!(e.summary.rows_skipped_by_line_item_type.get("Tax"), Some(&2));
        assert_eq!(e.summary.rows_skipped_by_line_item_type.get("RIFee"), Some(&1));
        let unsupported = e.summary.not_estimated[&NotEstimatedReason::UnsupportedUsageType];
        assert_eq!(unsupported.rows, 1);
        assert_eq!(unsupported.cost, if m == Methodology::Ccf { 4.0 } else { 2.0 });
        // Three Usage-like line items form one group: 9 GB-Mo.
        let gp2 = row(&e, "EBS:VolumeUsage.gp2");
        if m == Methodology::Ccf {
            assert!(close(gp2.energy_kwh.unwrap(), 3.0 * 0.006079968));
            assert!(close(gp2.cost, 0.9));
            assert_eq!(e.summary.not_estimated[&NotEstimatedReason::StorageMediumUnknown].rows, 1);
        }
    }
}

#[test]
fn ccf_unknown_rows_dropped_when_no_known_row() {
    let e = run(Methodology::Ccf, &[l("AmazonVPC", "USE1-NatGateway-Hours", "Hrs", 1.0, 0.045)]);
    assert!(e.rows.is_empty());
    assert_eq!(e.summary.not_estimated[&NotEstimatedReason::NoKnownRows].rows, 1);
}

/// Defect 14: `xl` → `xlarge` fix applies after the vCPU lookup.
#[test]
fn ccf_xl_fix_timing() {
    // vCPU table misses "r5.12xl" → NaN (defect 15 path) although processors would resolve.
    let e = run(Methodology::Ccf, &[l("AmazonRDS", "USE1-InstanceUsage:db.r5.12xl", "Hrs", 1.0, 3.0)]);
    assert_eq!(e.rows[0].co2e_location_kg, None);
    // With product_vcpu the fixed type resolves processors, memory and embodied.
    let e = run(Methodology::Ccf, &[l("AmazonRDS", "USE1-InstanceUsage:db.r5.12xl", "Hrs", 1.0, 3.0).vcpu(48.0)]);
    let i = canopy_emissions::coefficients::ccf::instance("r5.12xlarge").unwrap();
    let w = i.min_watts_per_vcpu + 0.5 * (i.max_watts_per_vcpu - i.min_watts_per_vcpu);
    let kwh = w * 48.0 * PUE / 1000.0
        + i.extra_memory_gb_per_instance_hour.unwrap() * 0.000392 * PUE
        + tables_te("r5.12xlarge") / (35040.0 * 96.0) / US_EAST_1_T_PER_KWH;
    assert!(close(e.rows[0].energy_kwh.unwrap(), kwh));
}

/// Defect 13: u-* types read the memory column as embodied tonnes.
#[test]
fn ccf_u_type_embodied_quirk() {
    let e = run(Methodology::Ccf, &[l("AmazonEC2", "USE1-BoxUsage:u-6tb1.metal", "Hrs", 1.0, 55.0).vcpu(448.0)]);
    let embodied_t = 6144.0 / (35040.0 * 448.0);
    let compute = 2.12 * 448.0 * PUE / 1000.0;
    assert!(close(e.rows[0].co2e_location_kg.unwrap(), (compute * US_EAST_1_T_PER_KWH + embodied_t) * 1000.0));
}

/// Defect 6: t1.micro memory 613 → 532.31 GB extra per hour.
#[test]
fn ccf_t1_micro_memory_quirk() {
    let e = run(Methodology::Ccf, &[l("AmazonEC2", "USE1-BoxUsage:t1.micro", "Hrs", 1.0, 0.02).vcpu(1.0)]);
    let embodied_t = tables_te("t1.micro") / 35040.0;
    let kwh = 2.12 * PUE / 1000.0 + 532.31 * 0.000392 * PUE + embodied_t / US_EAST_1_T_PER_KWH;
    assert!(close(e.rows[0].energy_kwh.unwrap(), kwh));
}

/// Defect 5: Fargate memory becomes SSD storage in ccf; memory energy in canopy.
#[test]
fn fargate_memory() {
    let lines = [l("AmazonECS", "USE1-Fargate-GB-Hours", "hours", 1000.0, 4.4)];
    let e = run(Methodology::Ccf, &lines);
    // GB-Hours → 1 TB-h × 1.2 Wh (SSD) × 1.135 / 1000.
    assert!(close(e.rows[0].energy_kwh.unwrap(), 1.2 * PUE / 1000.0));
    let c = run(Methodology::Canopy, &lines);
    assert!(close(c.rows[0].energy_kwh.unwrap(), 1000.0 * 0.000392 * 1.15));
}

#[test]
fn canopy_ec2_uses_model_power_and_embodied_as_co2e_only() {
    let e = run(Methodology::Canopy, &[l("AmazonEC2", "USE1-BoxUsage:m5.xlarge", "Hrs", 6.0, 1.152).vcpu(4.0)]);
    let power = model::instance_power("m5.xlarge").unwrap();
    let kwh = power.power_w(model::DEFAULT_CPU_UTILISATION_PCT).total_w() * 6.0 * 1.15 / 1000.0;
    let (embodied_g, _) = model::embodied_g_co2e_per_instance_hour("m5.xlarge").unwrap();
    let grid_g = grid::location_factor("us-east-1").g_co2e_per_kwh;
    let r = &e.rows[0];
    assert!(close(r.energy_kwh.unwrap(), kwh));
    assert!(close(r.co2e_location_kg.unwrap(), kwh * grid_g / 1000.0 + embodied_g * 6.0 / 1000.0));
    assert!(close(r.co2e_market_kg.unwrap(), r.co2e_location_kg.unwrap()), "no market config → market = location");
    assert!(r.co2e_low_kg.unwrap() < r.co2e_location_kg.unwrap() && r.co2e_location_kg.unwrap() < r.co2e_high_kg.unwrap());
    // RDS Multi-AZ: no replication on compute in canopy (defect 8 fixed) — two instances are billed as two rows' hours.
    let m = run(Methodology::Canopy, &[l("AmazonRDS", "USE1-Multi-AZUsage:db.m5.xlarge", "Hrs", 6.0, 2.0).vcpu(4.0)]);
    assert!(close(m.rows[0].energy_kwh.unwrap(), kwh));
}

#[test]
fn ccf_output_sorted_and_grouped_by_period_and_tag() {
    let mut e = CurEstimator::new(EstimateOptions { methodology: Methodology::Ccf, ..EstimateOptions::default() });
    let base = l("AmazonEC2", "EBS:VolumeUsage.gp2", "GB-Mo", 3.0, 0.3);
    let day2 = base.at(oct() + 86_400);
    for (x, tag) in [(day2, Some("b")), (base, Some("a")), (base, None), (base, Some(""))] {
        let mut line = x.line();
        line.tag = tag;
        e.add(&line);
    }
    let rows = e.finish().rows;
    let keys: Vec<_> = rows.iter().map(|r| (r.period_start_unix_s, r.tag.clone(), r.usage_type.clone())).collect();
    let d1 = time::day_start(oct());
    assert_eq!(keys, vec![(d1, None, None), (d1, Some("a".into()), None), (d1 + 86_400, Some("b".into()), None)]);
    // Untagged and empty-tag lines share a group: 6 GB-Mo.
    assert!(close(rows[0].energy_kwh.unwrap(), 2.0 * 0.006079968));
}
