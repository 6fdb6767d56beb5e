//! The mix of AWS usage the generator draws from: services, usage types as
//! AWS spells them, pricing units, rough on-demand prices (USD, us-east-1,
//! rounded; realism only, not a price list) and regions with their
//! usage-type prefixes.

/// An AWS region and the prefix AWS puts in front of its usage types.
pub(crate) struct Region {
    pub code: &'static str,
    pub prefix: &'static str,
    pub weight: u32,
}

/// Regions in the generated data. us-east-1 usage types carry no prefix for
/// most services (`BoxUsage:m5.large`), eu-west-1 uses `EU`, as AWS does.
pub(crate) const REGIONS: &[Region] = &[
    Region {
        code: "us-east-1",
        prefix: "USE1",
        weight: 30,
    },
    Region {
        code: "us-east-2",
        prefix: "USE2",
        weight: 10,
    },
    Region {
        code: "us-west-2",
        prefix: "USW2",
        weight: 12,
    },
    Region {
        code: "eu-west-1",
        prefix: "EU",
        weight: 12,
    },
    Region {
        code: "eu-central-1",
        prefix: "EUC1",
        weight: 8,
    },
    Region {
        code: "eu-north-1",
        prefix: "EUN1",
        weight: 5,
    },
    Region {
        code: "ap-southeast-2",
        prefix: "APS2",
        weight: 5,
    },
    Region {
        code: "ap-northeast-1",
        prefix: "APN1",
        weight: 5,
    },
    Region {
        code: "ap-south-1",
        prefix: "APS3",
        weight: 4,
    },
    Region {
        code: "ca-central-1",
        prefix: "CAN1",
        weight: 3,
    },
    Region {
        code: "sa-east-1",
        prefix: "SAE1",
        weight: 2,
    },
];

/// An instance size: name as in `product/instanceType`, vCPUs, USD per hour.
pub(crate) struct Instance {
    pub name: &'static str,
    pub vcpu: u32,
    pub usd_per_hour: f64,
}

const fn i(name: &'static str, vcpu: u32, usd_per_hour: f64) -> Instance {
    Instance {
        name,
        vcpu,
        usd_per_hour,
    }
}

/// EC2 sizes: Intel/AMD, Graviton, burstable, GPU, and types no coefficient
/// table knows (`c6i.metal` and `u-6tb1.metal` are real; `zz9`, `q7x` are made up).
pub(crate) const EC2: &[Instance] = &[
    i("m5.large", 2, 0.096),
    i("m5.xlarge", 4, 0.192),
    i("m5.2xlarge", 8, 0.384),
    i("m6i.large", 2, 0.096),
    i("c5.xlarge", 4, 0.17),
    i("c5.4xlarge", 16, 0.68),
    i("c6i.2xlarge", 8, 0.34),
    i("r5.large", 2, 0.126),
    i("r5.2xlarge", 8, 0.504),
    i("i3.large", 2, 0.156),
    i("m6g.large", 2, 0.077),
    i("m6g.xlarge", 4, 0.154),
    i("c7g.large", 2, 0.0725),
    i("c7g.2xlarge", 8, 0.29),
    i("t4g.micro", 2, 0.0084),
    i("t4g.medium", 2, 0.0336),
    i("a1.large", 2, 0.051),
    i("t2.micro", 1, 0.0116),
    i("t3.medium", 2, 0.0416),
    i("t3.large", 2, 0.0832),
    i("t3a.small", 2, 0.0188),
    i("t3a.xlarge", 4, 0.1504),
    i("p3.2xlarge", 8, 3.06),
    i("p3.8xlarge", 32, 12.24),
    i("g4dn.xlarge", 4, 0.526),
    i("g4dn.12xlarge", 48, 3.912),
    i("g5.xlarge", 4, 1.006),
    i("g5.12xlarge", 48, 5.672),
    i("c6i.metal", 128, 5.44),
    i("u-6tb1.metal", 448, 54.6),
    i("zz9.large", 2, 0.1),
    i("q7x.4xlarge", 16, 0.9),
];

/// SageMaker instance sizes (`ml.` prefix as AWS writes them).
pub(crate) const SAGEMAKER: &[Instance] = &[
    i("ml.t3.medium", 2, 0.05),
    i("ml.m5.xlarge", 4, 0.23),
    i("ml.g4dn.xlarge", 4, 0.736),
];
/// RDS instance sizes.
pub(crate) const RDS: &[Instance] = &[
    i("db.r5.large", 2, 0.25),
    i("db.m5.xlarge", 4, 0.342),
    i("db.t3.medium", 2, 0.068),
    i("db.r6g.large", 2, 0.225),
];
/// ElastiCache node sizes.
pub(crate) const CACHE: &[Instance] = &[
    i("cache.m5.large", 2, 0.156),
    i("cache.r6g.large", 2, 0.206),
];
/// Redshift node sizes.
pub(crate) const REDSHIFT: &[Instance] = &[i("ra3.xlplus", 4, 1.086), i("dc2.large", 2, 0.25)];

/// OpenSearch (formerly Elasticsearch) Service instance sizes, named as AWS
/// names them, with the managed-service suffix: `.elasticsearch` for the older
/// generations, `.search` for the newer ones. Burstable sizes (`t2`, `t3`) and
/// an UltraWarm size no CCF table lists are included.
pub(crate) const OPENSEARCH: &[Instance] = &[
    i("r5.large.elasticsearch", 2, 0.186),
    i("m5.xlarge.elasticsearch", 4, 0.283),
    i("i3.large.elasticsearch", 2, 0.249),
    i("c5.2xlarge.elasticsearch", 8, 0.408),
    i("t3.small.elasticsearch", 2, 0.036),
    i("t2.micro.elasticsearch", 1, 0.018),
    i("r6g.large.search", 2, 0.167),
    i("r6g.2xlarge.search", 8, 0.669),
    i("m6g.large.search", 2, 0.128),
    i("c6g.xlarge.search", 4, 0.226),
    i("t3.medium.search", 2, 0.073),
    i("ultrawarm1.medium.search", 2, 0.238),
];
/// DynamoDB Accelerator node sizes.
pub(crate) const DAX: &[Instance] = &[i("dax.r5.large", 2, 0.269), i("dax.t3.small", 2, 0.04)];
/// Database Migration Service replication instance sizes.
pub(crate) const DMS: &[Instance] = &[i("dms.c5.large", 2, 0.154), i("dms.t3.medium", 2, 0.078)];
/// MemoryDB node sizes (AWS writes them with the `db.` prefix).
pub(crate) const MEMORYDB: &[Instance] =
    &[i("db.r6g.large", 2, 0.309), i("db.t4g.small", 2, 0.047)];

/// How a usage type is prefixed with its region.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    /// `EUC1-X`, but plain `X` in us-east-1 (EC2, EBS, RDS... in us-east-1).
    Regional,
    /// Always prefixed, also `USE1-` (Lambda, Fargate, data transfer).
    Always,
    /// Inter-region transfer: `USE1-USW2-AWS-Out-Bytes`.
    InterRegion,
    /// Global service priced by edge location (`US-`, `EU-`), no region.
    Edge,
    /// No prefix and no region (AWS Support).
    Global,
}

/// How much usage one hourly line item carries.
#[derive(Clone, Copy)]
pub(crate) enum Amount {
    /// Hours of an hourly resource: mostly 1, sometimes a fraction.
    Hours,
    /// GB-Mo accrued in one hour by a volume or bucket of this size range (GB).
    GbMonth(f64, f64),
    /// Plain quantity drawn from the range, rounded to `decimals`.
    Range(f64, f64, i32),
}

/// One kind of usage line.
pub(crate) struct Template {
    pub product_code: &'static str,
    /// Usage type after the region prefix; instance templates append the size.
    pub usage: &'static str,
    pub prefix: Prefix,
    pub operation: &'static str,
    pub unit: &'static str,
    pub amount: Amount,
    /// USD per unit (ignored for instance templates, which use the size's price).
    pub usd_per_unit: f64,
    /// Instance sizes, for usage types that end in one.
    pub instances: &'static [Instance],
    pub weight: u32,
    /// Can be covered by a reservation (`DiscountedUsage`).
    pub reservable: bool,
    /// Can be covered by a Savings Plan (`SavingsPlanCoveredUsage`).
    pub savings_plan: bool,
    /// Every line is reserved usage (`DiscountedUsage`), e.g. OpenSearch's
    /// `HeavyUsage:` reservation usage types.
    pub reserved_only: bool,
    /// Share of instance resources whose lines carry `product/vcpu`.
    pub vcpu_share: f64,
}

#[allow(clippy::too_many_arguments)] // one row of the table below, read positionally
const fn t(
    product_code: &'static str,
    usage: &'static str,
    prefix: Prefix,
    operation: &'static str,
    unit: &'static str,
    amount: Amount,
    usd_per_unit: f64,
    weight: u32,
) -> Template {
    Template {
        product_code,
        usage,
        prefix,
        operation,
        unit,
        amount,
        usd_per_unit,
        instances: &[],
        weight,
        reservable: false,
        savings_plan: false,
        reserved_only: false,
        vcpu_share: 0.9,
    }
}

const fn instances(
    product_code: &'static str,
    usage: &'static str,
    operation: &'static str,
    instances: &'static [Instance],
    weight: u32,
    reservable: bool,
    savings_plan: bool,
) -> Template {
    Template {
        product_code,
        usage,
        prefix: Prefix::Regional,
        operation,
        unit: "Hrs",
        amount: Amount::Hours,
        usd_per_unit: 0.0,
        instances,
        weight,
        reservable,
        savings_plan,
        reserved_only: false,
        vcpu_share: 0.9,
    }
}

/// Instance usage of a managed service whose usage types always carry the
/// region prefix (`USE1-ESInstance:r5.large.elasticsearch`). Half of these
/// resources bill without `product/vcpu`, so both cases are common.
const fn managed_instances(
    product_code: &'static str,
    usage: &'static str,
    operation: &'static str,
    instances: &'static [Instance],
    weight: u32,
    reserved_only: bool,
) -> Template {
    Template {
        product_code,
        usage,
        prefix: Prefix::Always,
        operation,
        unit: "Hrs",
        amount: Amount::Hours,
        usd_per_unit: 0.0,
        instances,
        weight,
        reservable: reserved_only,
        savings_plan: false,
        reserved_only,
        vcpu_share: 0.5,
    }
}

use Amount::{GbMonth, Hours, Range};
use Prefix::{Always, Edge, Global, InterRegion, Regional};

/// Every usage template with its relative weight.
pub(crate) const TEMPLATES: &[Template] = &[
    instances(
        "AmazonEC2",
        "BoxUsage:",
        "RunInstances",
        EC2,
        300,
        true,
        true,
    ),
    instances(
        "AmazonEC2",
        "SpotUsage:",
        "RunInstances:SV001",
        EC2,
        30,
        false,
        false,
    ),
    instances(
        "AmazonSageMaker",
        "Train:",
        "RunInstance",
        SAGEMAKER,
        10,
        false,
        true,
    ),
    instances(
        "AmazonSageMaker",
        "Host:",
        "RunInstance",
        SAGEMAKER,
        10,
        false,
        true,
    ),
    instances(
        "AmazonRDS",
        "InstanceUsage:",
        "CreateDBInstance:0002",
        RDS,
        40,
        true,
        false,
    ),
    instances(
        "AmazonRDS",
        "Multi-AZUsage:",
        "CreateDBInstance:0014",
        RDS,
        15,
        true,
        false,
    ),
    instances(
        "AmazonElastiCache",
        "NodeUsage:",
        "CreateCacheCluster:0002",
        CACHE,
        15,
        true,
        false,
    ),
    instances(
        "AmazonRedshift",
        "Node:",
        "RunComputeNode:0001",
        REDSHIFT,
        8,
        true,
        false,
    ),
    managed_instances("AmazonES", "ESInstance:", "ESDomain", OPENSEARCH, 30, false),
    managed_instances("AmazonES", "HeavyUsage:", "ESDomain", OPENSEARCH, 10, true),
    managed_instances("AmazonDAX", "NodeUsage:", "CreateCluster", DAX, 4, false),
    managed_instances(
        "AWSDatabaseMigrationSvc",
        "InstanceUsg:",
        "CreateReplicationInstance",
        DMS,
        4,
        false,
    ),
    managed_instances(
        "AmazonMemoryDB",
        "NodeUsage:",
        "CreateCluster",
        MEMORYDB,
        4,
        false,
    ),
    t(
        "AmazonEC2",
        "EBS:VolumeUsage.gp2",
        Regional,
        "CreateVolume-Gp2",
        "GB-Mo",
        GbMonth(8.0, 2_000.0),
        0.10,
        60,
    ),
    t(
        "AmazonEC2",
        "EBS:VolumeUsage.gp3",
        Regional,
        "CreateVolume-Gp3",
        "GB-Mo",
        GbMonth(8.0, 4_000.0),
        0.08,
        60,
    ),
    t(
        "AmazonEC2",
        "EBS:VolumeUsage.st1",
        Regional,
        "CreateVolume-St1",
        "GB-Mo",
        GbMonth(125.0, 8_000.0),
        0.045,
        10,
    ),
    t(
        "AmazonEC2",
        "EBS:VolumeUsage.sc1",
        Regional,
        "CreateVolume-Sc1",
        "GB-Mo",
        GbMonth(125.0, 8_000.0),
        0.015,
        8,
    ),
    t(
        "AmazonEC2",
        "EBS:VolumeUsage.piops",
        Regional,
        "CreateVolume-P-IOPS.piops",
        "GB-Mo",
        GbMonth(100.0, 1_000.0),
        0.125,
        6,
    ),
    t(
        "AmazonEC2",
        "EBS:VolumeUsage.io2",
        Regional,
        "CreateVolume-io2",
        "GB-Mo",
        GbMonth(100.0, 1_000.0),
        0.125,
        4,
    ),
    t(
        "AmazonEC2",
        "EBS:SnapshotUsage",
        Regional,
        "CreateSnapshot",
        "GB-Mo",
        GbMonth(10.0, 5_000.0),
        0.05,
        20,
    ),
    t(
        "AmazonS3",
        "TimedStorage-ByteHrs",
        Always,
        "StandardStorage",
        "GB-Mo",
        GbMonth(1.0, 50_000.0),
        0.023,
        60,
    ),
    t(
        "AmazonS3",
        "TimedStorage-SIA-ByteHrs",
        Always,
        "StandardIAStorage",
        "GB-Mo",
        GbMonth(1.0, 20_000.0),
        0.0125,
        15,
    ),
    t(
        "AmazonS3",
        "TimedStorage-ZIA-ByteHrs",
        Always,
        "OneZoneIAStorage",
        "GB-Mo",
        GbMonth(1.0, 5_000.0),
        0.01,
        8,
    ),
    t(
        "AmazonS3",
        "TimedStorage-GlacierByteHrs",
        Always,
        "GlacierStorage",
        "GB-Mo",
        GbMonth(100.0, 100_000.0),
        0.0036,
        10,
    ),
    t(
        "AmazonS3",
        "Requests-Tier1",
        Always,
        "PutObject",
        "Requests",
        Range(1.0, 50_000.0, 0),
        0.000_005,
        25,
    ),
    t(
        "AWSDataTransfer",
        "DataTransfer-Out-Bytes",
        Always,
        "RunInstances",
        "GB",
        Range(0.0, 50.0, 6),
        0.09,
        30,
    ),
    t(
        "AmazonEC2",
        "DataTransfer-Regional-Bytes",
        Always,
        "InterZone-In",
        "GB",
        Range(0.0, 20.0, 6),
        0.01,
        25,
    ),
    t(
        "AWSDataTransfer",
        "AWS-Out-Bytes",
        InterRegion,
        "InterRegion-Out",
        "GB",
        Range(0.0, 10.0, 6),
        0.02,
        15,
    ),
    t(
        "AmazonCloudFront",
        "DataTransfer-Out-Bytes",
        Edge,
        "GET",
        "GB",
        Range(0.0, 100.0, 6),
        0.085,
        15,
    ),
    t(
        "AmazonCloudFront",
        "Requests-Tier1",
        Edge,
        "GET",
        "Requests",
        Range(1.0, 200_000.0, 0),
        0.000_000_75,
        10,
    ),
    t(
        "AWSLambda",
        "Lambda-GB-Second",
        Always,
        "Invoke",
        "Lambda-GB-Second",
        Range(0.0, 50_000.0, 3),
        0.000_016_666_7,
        40,
    ),
    t(
        "AWSLambda",
        "Lambda-GB-Second-ARM",
        Always,
        "Invoke",
        "Lambda-GB-Second",
        Range(0.0, 50_000.0, 3),
        0.000_013_333_4,
        20,
    ),
    t(
        "AWSLambda",
        "Request",
        Always,
        "Invoke",
        "Requests",
        Range(1.0, 1_000_000.0, 0),
        0.000_000_2,
        30,
    ),
    t(
        "AmazonRDS",
        "Aurora:ServerlessUsage",
        Regional,
        "CreateDBInstance:0021",
        "ACU-Hr",
        Range(0.5, 16.0, 2),
        0.12,
        10,
    ),
    t(
        "AmazonRDS",
        "RDS:GP2-Storage",
        Regional,
        "CreateDBInstance:0002",
        "GB-Mo",
        GbMonth(20.0, 2_000.0),
        0.115,
        15,
    ),
    t(
        "AmazonRDS",
        "Aurora:StorageUsage",
        Regional,
        "CreateDBInstance:0016",
        "GB-Mo",
        GbMonth(10.0, 5_000.0),
        0.10,
        10,
    ),
    t(
        "AmazonECS",
        "Fargate-vCPU-Hours:perCPU",
        Always,
        "FargateTask",
        "vCPU-Hours",
        Range(0.25, 16.0, 2),
        0.040_48,
        25,
    ),
    t(
        "AmazonECS",
        "Fargate-GB-Hours",
        Always,
        "FargateTask",
        "GB-Hours",
        Range(0.5, 64.0, 2),
        0.004_445,
        25,
    ),
    t(
        "AmazonDynamoDB",
        "TimedStorage-ByteHrs",
        Regional,
        "StandardStorage",
        "GB-Mo",
        GbMonth(1.0, 2_000.0),
        0.25,
        10,
    ),
    t(
        "AmazonDynamoDB",
        "WriteRequestUnits",
        Regional,
        "PayPerRequestThroughput",
        "WriteRequestUnits",
        Range(1.0, 100_000.0, 0),
        0.000_001_25,
        10,
    ),
    t(
        "AmazonEFS",
        "TimedStorage-ByteHrs",
        Regional,
        "",
        "GB-Mo",
        GbMonth(1.0, 5_000.0),
        0.30,
        8,
    ),
    t(
        "AmazonEC2",
        "NatGateway-Hours",
        Regional,
        "NatGateway",
        "Hrs",
        Hours,
        0.045,
        15,
    ),
    t(
        "AmazonEC2",
        "NatGateway-Bytes",
        Regional,
        "NatGateway",
        "GB",
        Range(0.0, 30.0, 6),
        0.045,
        15,
    ),
    t(
        "AWSELB",
        "LoadBalancerUsage",
        Regional,
        "LoadBalancing:Application",
        "Hrs",
        Hours,
        0.0225,
        15,
    ),
    t(
        "AmazonEKS",
        "AmazonEKS-Hours:perCluster",
        Always,
        "CreateOperation",
        "Hrs",
        Hours,
        0.10,
        8,
    ),
    t(
        "AmazonEC2",
        "HostBoxUsage:m5",
        Regional,
        "RunInstances",
        "Hrs",
        Hours,
        4.539,
        3,
    ),
    t(
        "AWSSupportBusiness",
        "Dollar",
        Global,
        "",
        "Dollar",
        Range(1.0, 100.0, 2),
        1.0,
        2,
    ),
];

/// Line item types that are not usage, with their weights.
pub(crate) const CHARGE_TYPES: &[(&str, u32)] = &[
    ("Tax", 20),
    ("Fee", 5),
    ("Credit", 8),
    ("Refund", 3),
    ("RIFee", 10),
    ("SavingsPlanRecurringFee", 6),
    ("SavingsPlanNegation", 12),
    ("BundledDiscount", 4),
];

/// Values of the `Team` tag.
pub(crate) const TEAMS: &[&str] = &["platform", "data-eng", "web", "ml research", "payments"];
/// Values of the `CostCenter` tag.
pub(crate) const COST_CENTERS: &[&str] = &["cc-1001", "cc-2040", "cc-3300"];
