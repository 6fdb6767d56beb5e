//! EFS file systems (DescribeFileSystems, tags included): metered size.

use canopy_emissions::model::StorageMedium;
use canopy_protocol::LifecycleState;

use super::{BoxFuture, CollectContext, CollectError, Collector};
use crate::aws::AwsContext;
use crate::inventory::{Basis, Resource, StoragePart};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &["elasticfilesystem:DescribeFileSystems"];

/// CCF's EFS replication factors: 3 for Regional, 2 for One Zone.
pub fn efs_replication(one_zone: bool) -> f64 {
    if one_zone { 2.0 } else { 3.0 }
}

/// The EFS collector.
#[derive(Debug)]
pub struct EfsCollector {
    client: aws_sdk_efs::Client,
}

impl EfsCollector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext) -> EfsCollector {
        let config = aws_sdk_efs::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        EfsCollector { client: aws_sdk_efs::Client::from_conf(config) }
    }
}

/// The inventory resource of one described file system: its metered size
/// as SSD storage, replicated 3 times (Regional) or 2 (One Zone).
pub fn file_system_resource(ctx: &CollectContext, fs: &aws_sdk_efs::types::FileSystemDescription) -> Resource {
    let id = fs.file_system_id().to_owned();
    let bytes = fs.size_in_bytes().map_or(0, |s| s.value().max(0) as u64);
    let one_zone = fs.availability_zone_name().is_some();
    let class = if one_zone { "one-zone" } else { "regional" };
    let part =
        StoragePart { class: class.into(), bytes, medium: StorageMedium::Ssd, replication: efs_replication(one_zone) };
    let arn =
        fs.file_system_arn().map_or_else(|| ctx.arn("elasticfilesystem", &format!("file-system/{id}")), str::to_owned);
    let mut r = Resource::new("efs", "efs", "file-system", arn, id, Basis::Storage(vec![part]));
    r.class = Some(class.into());
    r.size_bytes = Some(bytes);
    r.tags = fs.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    r.lifecycle = match fs.life_cycle_state().as_str() {
        "creating" => LifecycleState::Pending,
        "available" | "updating" => LifecycleState::Running,
        "deleting" => LifecycleState::Stopping,
        "deleted" => LifecycleState::Terminated,
        _ => LifecycleState::Unknown,
    };
    r
}

impl Collector for EfsCollector {
    fn name(&self) -> &'static str {
        "efs"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut found = Vec::new();
            let mut pages = self.client.describe_file_systems().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("efs", "DescribeFileSystems", e))?;
                found.extend(page.file_systems().iter().map(|fs| file_system_resource(ctx, fs)));
            }
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_efs::types::{FileSystemDescription, FileSystemSize, LifeCycleState, PerformanceMode, Tag};

    fn fs(id: &str, bytes: i64, zone: Option<&str>) -> FileSystemDescription {
        FileSystemDescription::builder()
            .owner_id("123456789012")
            .creation_token(id)
            .file_system_id(id)
            .creation_time(aws_smithy_types::DateTime::from_secs(0))
            .life_cycle_state(LifeCycleState::Available)
            .number_of_mount_targets(0)
            .size_in_bytes(FileSystemSize::builder().value(bytes).build())
            .performance_mode(PerformanceMode::GeneralPurpose)
            .set_availability_zone_name(zone.map(str::to_owned))
            .tags(Tag::builder().key("Team").value("data").build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn metered_size_with_regional_or_one_zone_replication() {
        // moto always meters 0 bytes; real file systems report their size.
        let ctx = CollectContext { account_id: "123456789012".into(), region: "eu-west-1".into(), now_unix_s: 0 };
        let regional = file_system_resource(&ctx, &fs("fs-1", 3_000_000_000, None));
        assert_eq!(regional.arn, "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1");
        assert_eq!((regional.class.as_deref(), regional.size_bytes), (Some("regional"), Some(3_000_000_000)));
        assert_eq!(
            regional.basis,
            Basis::Storage(vec![StoragePart {
                class: "regional".into(),
                bytes: 3_000_000_000,
                medium: StorageMedium::Ssd,
                replication: 3.0
            }])
        );
        assert_eq!(regional.tags.get("Team").map(String::as_str), Some("data"));
        assert_eq!(regional.lifecycle, LifecycleState::Running);
        let one_zone = file_system_resource(&ctx, &fs("fs-2", 1, Some("eu-west-1a")));
        assert!(matches!(&one_zone.basis, Basis::Storage(p) if p[0].replication == 2.0 && p[0].class == "one-zone"));
    }
}
