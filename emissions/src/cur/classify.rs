//! CCF's usage-type and pricing-unit lists (AWS usage-type names, copied as
//! data from Cloud Carbon Footprint b7a049c, Apache-2.0, © 2021 Thoughtworks, Inc.)
//! and the string rules built on them. Shared by both methodologies.

/// Usage types CCF ignores entirely (double counted elsewhere, or no energy).
pub(crate) const UNSUPPORTED_USAGE_TYPES: &[&str] =
    &["EMR-EKS-EC2-GBHours", "APS3-EMR-EKS-EC2-vCPUHours", "ECS-EC2-GB-Hours", "ECS-EC2-vCPU-Hours", "Dollar", "HostBoxUsage"];

/// Usage types CCF defers to the cost-ratio step.
pub(crate) const UNKNOWN_USAGE_TYPES: &[&str] = &[
    "AmazonEKS-Hours:perCluster", "SoftwareUsage", "BundleUsage", "Small-Directory-Usage", "Std-MicrosoftAD-DC-Usage",
    "InactivePipelines", "Lambda-Provisioned", "ets-hd-success", "ets-sd-success", "BuildDuration", "Build-Min",
    "AW-HW-User-Usage", "TransitGateway-Hours", "VpcEndpoint-Hours", "VPN-Usage-Hours", "NatGateway-Hours",
    "NatGateway-Bytes", "LoadBalancerUsage", "IdleAddress", "UnusedStaticIP", "AdditionalAddress",
    "ResolverNetworkInterface", "DataScanned", "FastSnapshotRestore", "GMD-Metrics", "Dollar", "Airflow-SmallEnvironment",
    "MemoryStore-ByteHrs", "Output-SD-Hours", "Output-HD-Hours", "Output-FullHD-Hours", "Input-Standard-Hours",
    "Airflow-SmallWorker", "AppRunner-Provisioned-GB-hours", "ApiGatewayCacheUsage", "PortUsage", "SharedMsftAD-Usage",
    "Kafka.mcu.general", "SnapshotArchiveStorage", "PaidPrivateCA", "Firehose-VpcDelivery-Hours",
    "Airflow-MediumEnvironment", "IPAddressManager-IP-Hours", "Gateway:VTL-Storage", "Aurora:ServerlessV2Usage",
];

/// Compute pricing units (exact, case-sensitive in CCF).
pub(crate) const COMPUTE_UNITS: &[&str] = &["Hrs", "Hours", "hours", "vCPU-Hours", "DPU-Hour", "ACU-Hr"];
/// Storage pricing units.
pub(crate) const STORAGE_UNITS: &[&str] = &["GB-Mo", "GB-Month", "GB-Mp", "GB-month", "GB-Hours"];
/// Lambda-style pricing units.
pub(crate) const SECONDS_UNITS: &[&str] = &["seconds", "Second", "Lambda-GB-Second"];
/// Transfer pricing units.
pub(crate) const GB_UNITS: &[&str] = &["GB", "GigaBytes"];

/// Usage-type suffixes CCF reads as byte-hours (divided by 2^40).
pub(crate) const BYTE_HOURS_USAGE_TYPES: &[&str] = &[
    "ByteHrs", "SmObjects", "EarlyDelete-GDA", "EarlyDelete-SIA", "EarlyDelete-ZIA", "GlacierByteHrs", "ByteHrs-EFS",
    "ByteHrs-DynamoDB",
];

/// Services whose storage CCF assumes is SSD (unless the usage type says Backup).
pub(crate) const SSD_SERVICES: &[&str] = &[
    "AmazonDocDB", "AmazonDynamoDB", "AmazonEFS", "AmazonES", "AmazonSimpleDB", "AmazonSageMaker", "AWSIoTAnalytics",
    "AmazonKinesisAnalytics", "AmazonMQ", "AmazonECS", "AmazonLightsail", "AmazonNeptune", "AmazonFSx", "AmazonKinesis",
];

/// SSD usage-type suffixes.
pub(crate) const SSD_USAGE_TYPES: &[&str] = &[
    "VolumeUsage.gp2", "VolumeUsage.io2", "VolumeUsage.io1", "VolumeUsage.gp3", "VolumeUsage.piops", "GP2-Storage",
    "PIOPS-Storage", "Aurora:StorageUsage", "Kafka.Storage.GP2", "ES:Magnetic-Storage", "TimedPITRStorage-ByteHrs",
    "ECS-EC2-GB-Hours", "Lambda-GB-Second", "Lambda-Edge-GB-Second", "RDS:Multi-AZ-StorageUsage", "Fargate-GB-Hours",
    "dc2.large", "dc2.8xlarge", "ra3.xlplus", "ra3.4xlarge", "ra3.16xlarge", "Storage.SSD.50", "Storage.MultiAZ:SSD",
    "RDS:GP3-Storage",
];

/// HDD usage-type suffixes.
pub(crate) const HDD_USAGE_TYPES: &[&str] = &[
    "VolumeUsage.st1", "VolumeUsage.sc1", "VolumeUsage", "SnapshotUsage", "TimedStorage-ByteHrs", "RDS:StorageUsage",
    "GlacierByteHrs", "Aurora:BackupUsage", "RDS:ChargedBackupUsage", "TimedStorage-RRS-ByteHrs",
    "ElastiCache:BackupUsage", "BackupUsage", "Redshift:PaidSnapshots", "TimedStorage-SIA-ByteHrs", "EarlyDelete-SIA",
    "TimedStorage-GlacierStaging", "TimedStorage-SIA-SmObjects", "TimedStorage-GDA-ByteHrs", "TimedStorage-GDA-Staging",
    "TimedStorage-ZIA-ByteHrs", "TimedStorage-INT-FA-ByteHrs", "EarlyDelete-GDA", "ProcessedStorage-ByteHrs",
    "EarlyDelete-ZIA", "EarlyDelete-ByteHrs", "TimedStorage-ZIA-SmObjects", "TimedStorage-INT-IA-ByteHrs",
    "EarlyDelete-SIA-SmObjects", "EarlyDelete-ZIA-SmObjects", "QS-Enterprise-SPICE", "TimedBackupStorage-ByteHrs",
    "DurableApplicationBackups", "dc1.large", "dc1.8xlarge", "ds2.xlarge", "ds2.8xlarge", "EU-TimedStorage-GDA-Staging",
    "BytesDeleted-STANDARD", "BytesDeleted-SIA", "BytesDeleted-INT", "BytesDeleted-GDA", "OverwriteBytes-Put-GLACIER",
    "OverwriteBytes-Put-RRS", "BackupUsage.MultiAZ", "ColdStorage-ByteHrs-EFS", "WarmStorage-ByteHrs-EFS",
    "WarmStorage-ByteHrs-DynamoDB", "MagneticStore-ByteHrs", "ColdStorage-ByteHrs-DynamoDB", "WarmStorage-ByteHrs-S3",
    "AMP:MetricStorageByteHrs", "TimedStorage-INT-AIA-ByteHrs", "TimedStorage-GIR-ByteHrs",
];

/// Data-transfer usage-type suffixes (pricing unit GB only).
pub(crate) const NETWORKING_USAGE_TYPES: &[&str] = &[
    "AWS-Out-Bytes", "DataTransfer-Out-Bytes", "DataTransfer-Regional-Bytes", "TotalDataXfer-Out-Bytes", "Egress-Bytes",
    "UploadBytes", "UPLOAD", "ExportDataSize-Bytes", "DOWNLOAD", "Data-Bytes-Out", "VpcEndpoint-Bytes",
    "TransitGateway-Bytes", "Retrieval", "BilledBytes",
];

/// Whether `text` ends with any entry of `list`.
pub(crate) fn ends_with_any(list: &[&str], text: &str) -> bool {
    list.iter().any(|s| text.ends_with(s))
}

/// Whether `text` contains any entry of `list`.
pub(crate) fn contains_any(list: &'static [&'static str], text: &str) -> bool {
    type Memo = std::collections::HashMap<usize, std::collections::HashMap<Box<str>, bool>>;
    thread_local! {
        /// list identity → text → answer. Usage types repeat across days,
        /// accounts and regions, so each (list, usage type) pair is scanned once.
        static MEMO: std::cell::RefCell<Memo> = std::cell::RefCell::new(Memo::new());
    }
    let list_id = list.as_ptr() as usize;
    MEMO.with(|memo| {
        if let Some(&hit) = memo.borrow().get(&list_id).and_then(|m| m.get(text)) {
            return hit;
        }
        let answer = list.iter().any(|s| text.contains(s));
        let mut memo = memo.borrow_mut();
        let per_list = memo.entry(list_id).or_default();
        if per_list.len() > 100_000 {
            per_list.clear();
        }
        per_list.insert(text.into(), answer);
        answer
    })
}

/// Storage medium by CCF's rules (first match wins): SSD usage type; SSD
/// service unless the usage type mentions Backup; HDD usage type; else unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Medium {
    Ssd,
    Hdd,
}

pub(crate) fn storage_medium(product_code: &str, usage_type: &str) -> Option<Medium> {
    if ends_with_any(SSD_USAGE_TYPES, usage_type)
        || (ends_with_any(SSD_SERVICES, product_code) && !usage_type.contains("Backup"))
    {
        Some(Medium::Ssd)
    } else if ends_with_any(HDD_USAGE_TYPES, usage_type) {
        Some(Medium::Hdd)
    } else {
        None
    }
}

/// CCF's replication factor by product code and usage type (first rule that matches).
pub(crate) fn replication_factor(product_code: &str, usage_type: &str) -> f64 {
    let has = |s: &str| usage_type.contains(s);
    match product_code {
        "AmazonS3" if has("TimedStorage-ZIA") || has("EarlyDelete-ZIA") || has("TimedStorage-RRS") => 2.0,
        "AmazonS3" if has("TimedStorage") || has("EarlyDelete") => 6.0,
        "AmazonEC2" if has("VolumeUsage") => 2.0,
        "AmazonEC2" if has("SnapshotUsage") => 3.0,
        "AmazonEFS" if has("ZIA") => 2.0,
        "AmazonEFS" => 3.0,
        "AmazonRDS" if has("BackupUsage") => 3.0,
        "AmazonRDS" if has("Aurora") => 6.0,
        "AmazonRDS" if has("Multi-AZ") => 2.0,
        "AmazonDocDB" if has("BackupUsage") => 3.0,
        "AmazonDocDB" => 2.0,
        "AmazonDynamoDB" => 2.0,
        "AmazonECR" if has("TimedStorage") => 3.0,
        "AmazonElastiCache" if has("BackupUsage") => 3.0,
        "AmazonSimpleDB" if has("TimedStorage") => 2.0,
        _ => 1.0,
    }
}

/// Instance type CCF uses for processors, memory and embodied: the text after
/// the last `db.` / `cache.` / `Kafka.` when the usage type contains `db`,
/// `cache` or `Kafka` (first of those found), else the text after the last `:`.
pub(crate) fn parsed_instance_type(usage_type: &str) -> &str {
    for prefix in ["db", "cache", "Kafka"] {
        if usage_type.contains(prefix) {
            let marker = match prefix {
                "db" => "db.",
                "cache" => "cache.",
                _ => "Kafka.",
            };
            return usage_type.rfind(marker).map_or(usage_type, |i| &usage_type[i + marker.len()..]);
        }
    }
    after_last_colon(usage_type)
}

/// Instance type CCF uses for its vCPU and GPU tables: the text after the last
/// `:`, with one leading `db.`, `cache.`, `dax.`, `dms.`, `ml.`, `mq.`,
/// `KernelGateway-ml.` or `<anything>Kafka.` removed.
pub(crate) fn table_instance_type(usage_type: &str) -> &str {
    let tail = after_last_colon(usage_type);
    for prefix in ["db.", "cache.", "dax.", "dms.", "ml.", "mq.", "KernelGateway-ml."] {
        if let Some(rest) = tail.strip_prefix(prefix) {
            return rest;
        }
    }
    match tail.rfind("Kafka.") {
        Some(i) if i >= 1 => &tail[i + "Kafka.".len()..],
        _ => tail,
    }
}

fn after_last_colon(usage_type: &str) -> &str {
    usage_type.rsplit(':').next().unwrap_or(usage_type)
}

/// The first two dot-separated parts as one slice (`r5.large.elasticsearch` →
/// `r5.large`): the key CCF builds with `` `${family}.${size}` `` or
/// `split('.', 2).join('.')`, without allocating. `None` without a dot.
pub(crate) fn first_two_parts_key(instance_type: &str) -> Option<&str> {
    let first = instance_type.find('.')?;
    let end = instance_type[first + 1..].find('.').map_or(instance_type.len(), |second| first + 1 + second);
    Some(&instance_type[..end])
}

/// Last two dot-separated parts, CCF's embodied lookup key (`ml.m5.xlarge` → `m5.xlarge`).
pub(crate) fn last_two_parts(instance_type: &str) -> Option<(&str, &str)> {
    let mut parts = instance_type.rsplit('.');
    let size = parts.next()?;
    let family = parts.next()?;
    Some((family, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_type_parsing_matches_ccf_rules() {
        let cases = [
            ("APS1-InstanceUsage:db.r5.large", "r5.large", "r5.large"),
            ("USE2-BoxUsage:ml.m5.xlarge", "ml.m5.xlarge", "m5.xlarge"),
            ("APS1-Kafka.m5.large", "m5.large", "m5.large"),
            ("USE1-NodeUsage:cache.m5.large", "m5.large", "m5.large"),
            ("BoxUsage:t3.micro", "t3.micro", "t3.micro"),
            ("USE1-BoxUsage", "USE1-BoxUsage", "USE1-BoxUsage"),
        ];
        for (usage_type, parsed, table) in cases {
            assert_eq!(parsed_instance_type(usage_type), parsed, "{usage_type}");
            assert_eq!(table_instance_type(usage_type), table, "{usage_type}");
        }
        assert_eq!(last_two_parts("ml.m5.xlarge"), Some(("m5", "xlarge")));
        for (text, key) in [
            ("r5.large.elasticsearch", Some("r5.large")),
            ("t3.medium.search", Some("t3.medium")),
            ("m5.xlarge", Some("m5.xlarge")),
            ("ml.m5.xlarge", Some("ml.m5")),
            ("a.", Some("a.")),
            ("BoxUsage", None),
        ] {
            assert_eq!(first_two_parts_key(text), key, "{text}");
        }
    }

    #[test]
    fn replication_factors() {
        let cases = [
            ("AmazonS3", "TimedStorage-ByteHrs", 6.0),
            ("AmazonS3", "TimedStorage-ZIA-ByteHrs", 2.0),
            ("AmazonS3", "BytesDeleted-STANDARD", 1.0),
            ("AmazonEC2", "EBS:VolumeUsage.gp2", 2.0),
            ("AmazonEC2", "EBS:SnapshotUsage", 3.0),
            ("AmazonRDS", "RDS:Multi-AZ-StorageUsage", 2.0),
            ("AmazonRDS", "Aurora:StorageUsage", 6.0),
            ("AmazonRDS", "Aurora:BackupUsage", 3.0),
            ("AmazonDocDB", "InstanceUsage:db.r5.large", 2.0),
            ("AmazonLambda", "Request", 1.0),
        ];
        for (product, usage_type, rf) in cases {
            assert_eq!(replication_factor(product, usage_type), rf, "{product} {usage_type}");
        }
    }

    #[test]
    fn storage_media() {
        assert_eq!(storage_medium("AmazonEC2", "EBS:VolumeUsage.gp3"), Some(Medium::Ssd));
        assert_eq!(storage_medium("AmazonEC2", "EBS:VolumeUsage.st1"), Some(Medium::Hdd));
        assert_eq!(storage_medium("AmazonDynamoDB", "TimedStorage-ByteHrs"), Some(Medium::Ssd));
        assert_eq!(storage_medium("AmazonDynamoDB", "TimedBackupStorage-ByteHrs"), Some(Medium::Hdd));
        assert_eq!(storage_medium("AmazonS3", "TimedStorage-GlacierByteHrs"), Some(Medium::Hdd));
        assert_eq!(storage_medium("AmazonWorkDocs", "Storage"), None);
    }
}
