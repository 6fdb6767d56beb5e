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
                for fs in page.file_systems() {
                    let id = fs.file_system_id().to_owned();
                    let bytes = fs.size_in_bytes().map_or(0, |s| s.value().max(0) as u64);
                    let one_zone = fs.availability_zone_name().is_some();
                    let class = if one_zone { "one-zone" } else { "regional" };
                    let part = StoragePart {
                        class: class.into(),
                        bytes,
                        medium: StorageMedium::Ssd,
                        replication: efs_replication(one_zone),
                    };
                    let arn = fs
                        .file_system_arn()
                        .map_or_else(|| ctx.arn("elasticfilesystem", &format!("file-system/{id}")), str::to_owned);
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
                    found.push(r);
                }
            }
            Ok(found)
        })
    }
}
