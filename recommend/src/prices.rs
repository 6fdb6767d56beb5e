//! Fallback list prices, used only when the input carries no billed cost
//! (no CUR for the resource). **This module never guesses**: a price it does
//! not list is `None`, and the recommendation says the cost saving is
//! unknown.
//!
//! Source and vintage: AWS public On-Demand list prices, **US East (N.
//! Virginia) `us-east-1` only**, USD, as listed on the AWS pricing pages
//! (aws.amazon.com/ec2/pricing/on-demand, aws.amazon.com/ebs/pricing,
//! aws.amazon.com/s3/pricing, aws.amazon.com/lambda/pricing), 2024–2026
//! (unchanged over that period for these items; `m7g.large` at $0.0816/h
//! cross-checked against a June 2026 listing). EC2 prices are Linux,
//! shared tenancy. Other regions and RDS classes are not listed: their
//! prices vary by region and engine and are reported as unknown.
//! Months are 730 hours (AWS's own convention).

/// Hours in a billing month (AWS's convention, 8,760 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Where the fallback prices come from, quoted with every price-table figure.
pub const PRICE_TABLE_SOURCE: &str =
    "AWS On-Demand list prices, us-east-1, USD (aws.amazon.com pricing pages, 2024-2026)";

/// The only region the table covers.
pub const PRICE_TABLE_REGION: &str = "us-east-1";

const EC2_USD_PER_HOUR: &[(&str, f64)] = &[
    ("m5.large", 0.096),
    ("m5.xlarge", 0.192),
    ("m5.2xlarge", 0.384),
    ("m5.4xlarge", 0.768),
    ("m5.8xlarge", 1.536),
    ("m6i.large", 0.096),
    ("m6i.xlarge", 0.192),
    ("m6i.2xlarge", 0.384),
    ("m6i.4xlarge", 0.768),
    ("m7g.medium", 0.0408),
    ("m7g.large", 0.0816),
    ("m7g.xlarge", 0.1632),
    ("m7g.2xlarge", 0.3264),
    ("m7g.4xlarge", 0.6528),
    ("m7g.8xlarge", 1.3056),
    ("c5.large", 0.085),
    ("c5.xlarge", 0.17),
    ("c5.2xlarge", 0.34),
    ("c5.4xlarge", 0.68),
    ("c7g.medium", 0.0363),
    ("c7g.large", 0.0725),
    ("c7g.xlarge", 0.145),
    ("c7g.2xlarge", 0.29),
    ("c7g.4xlarge", 0.58),
    ("r5.large", 0.126),
    ("r5.xlarge", 0.252),
    ("r5.2xlarge", 0.504),
    ("r5.4xlarge", 1.008),
    ("r7g.medium", 0.0536),
    ("r7g.large", 0.1071),
    ("r7g.xlarge", 0.2142),
    ("r7g.2xlarge", 0.4284),
    ("r7g.4xlarge", 0.8568),
    ("t3.micro", 0.0104),
    ("t3.small", 0.0208),
    ("t3.medium", 0.0416),
    ("t3.large", 0.0832),
    ("t3.xlarge", 0.1664),
    ("t4g.micro", 0.0084),
    ("t4g.small", 0.0168),
    ("t4g.medium", 0.0336),
    ("t4g.large", 0.0672),
    ("t4g.xlarge", 0.1344),
];

/// EBS volume storage, USD per GB-month (provisioned IOPS and throughput above
/// the gp3 baseline are extra and not listed).
const EBS_USD_PER_GB_MONTH: &[(&str, f64)] = &[
    ("gp2", 0.10),
    ("gp3", 0.08),
    ("io1", 0.125),
    ("io2", 0.125),
    ("st1", 0.045),
    ("sc1", 0.015),
    ("standard", 0.05),
];

/// gp3 IOPS provisioned above the free 3,000, USD per IOPS-month.
const GP3_EXTRA_IOPS_USD_PER_MONTH: f64 = 0.005;

/// EBS snapshots (standard tier), USD per GB-month.
const EBS_SNAPSHOT_USD_PER_GB_MONTH: f64 = 0.05;

/// S3 storage, first 50 TB tier, USD per GB-month.
const S3_USD_PER_GB_MONTH: &[(&str, f64)] = &[
    ("STANDARD", 0.023),
    ("STANDARD_IA", 0.0125),
    ("ONEZONE_IA", 0.01),
    ("GLACIER_IR", 0.004),
    ("GLACIER", 0.0036),
    ("DEEP_ARCHIVE", 0.00099),
];

/// S3 Intelligent-Tiering monitoring and automation, USD per 1,000 objects-month.
pub const S3_INTELLIGENT_TIERING_MONITORING_USD_PER_1000_OBJECTS: f64 = 0.0025;

/// Lambda provisioned concurrency (x86), USD per GB-second provisioned.
const LAMBDA_PROVISIONED_USD_PER_GB_S: f64 = 0.000_004_166_7;

fn in_region<T>(region: &str, v: impl FnOnce() -> Option<T>) -> Option<T> {
    if region == PRICE_TABLE_REGION {
        v()
    } else {
        None
    }
}

fn lookup(table: &[(&str, f64)], key: &str) -> Option<f64> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// EC2 instance (Linux) per month; `None` outside the table.
pub fn ec2_usd_per_month(region: &str, instance_type: &str) -> Option<f64> {
    in_region(region, || {
        lookup(EC2_USD_PER_HOUR, instance_type).map(|h| h * HOURS_PER_MONTH)
    })
}

/// EBS volume storage per GB-month.
pub fn ebs_usd_per_gb_month(region: &str, volume_type: &str) -> Option<f64> {
    in_region(region, || lookup(EBS_USD_PER_GB_MONTH, volume_type))
}

/// gp3 IOPS provisioned above the free 3,000, per IOPS-month.
pub fn gp3_extra_iops_usd_per_month(region: &str) -> Option<f64> {
    in_region(region, || Some(GP3_EXTRA_IOPS_USD_PER_MONTH))
}

/// EBS snapshot storage per GB-month.
pub fn snapshot_usd_per_gb_month(region: &str) -> Option<f64> {
    in_region(region, || Some(EBS_SNAPSHOT_USD_PER_GB_MONTH))
}

/// S3 storage per GB-month for a storage class (S3 API names, also the
/// CloudWatch storage types `StandardStorage`, `StandardIAStorage`).
pub fn s3_usd_per_gb_month(region: &str, class: &str) -> Option<f64> {
    let class = match class {
        "StandardStorage" => "STANDARD",
        "StandardIAStorage" => "STANDARD_IA",
        "OneZoneIAStorage" => "ONEZONE_IA",
        "GlacierInstantRetrievalStorage" => "GLACIER_IR",
        "GlacierStorage" => "GLACIER",
        "DeepArchiveStorage" => "DEEP_ARCHIVE",
        other => other,
    };
    in_region(region, || lookup(S3_USD_PER_GB_MONTH, class))
}

/// Lambda provisioned concurrency per month for `gb` provisioned (concurrency × memory GB).
pub fn lambda_provisioned_usd_per_month(region: &str, gb: f64) -> Option<f64> {
    in_region(region, || {
        Some(gb * LAMBDA_PROVISIONED_USD_PER_GB_S * HOURS_PER_MONTH * 3600.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_prices_and_unknowns() {
        assert!((ec2_usd_per_month("us-east-1", "m5.large").unwrap() - 70.08).abs() < 1e-9);
        assert!((ec2_usd_per_month("us-east-1", "m7g.large").unwrap() - 59.568).abs() < 1e-9);
        assert_eq!(ec2_usd_per_month("eu-west-1", "m5.large"), None);
        assert_eq!(ec2_usd_per_month("us-east-1", "db.r5.large"), None);
        assert_eq!(ebs_usd_per_gb_month("us-east-1", "gp2"), Some(0.10));
        assert_eq!(
            s3_usd_per_gb_month("us-east-1", "StandardStorage"),
            Some(0.023)
        );
        // 1 GB provisioned for a month: 0.0000041667 × 2,628,000 s = $10.95
        assert!(
            (lambda_provisioned_usd_per_month("us-east-1", 1.0).unwrap() - 10.950).abs() < 0.01
        );
    }
}
