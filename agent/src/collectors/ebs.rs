//! EBS volumes (DescribeVolumes): type, size, IOPS, attachment.

use aws_sdk_ec2::types::{VolumeState, VolumeType};
use canopy_emissions::model::StorageMedium;
use canopy_protocol::LifecycleState;

use super::{BoxFuture, CollectContext, CollectError, Collector, tag_map};
use crate::aws::AwsContext;
use crate::inventory::{Basis, Resource, StoragePart};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &["ec2:DescribeVolumes"];

/// CCF's replication factor for EBS volumes (`EBS:VolumeUsage`).
pub const EBS_REPLICATION: f64 = 2.0;
const GIB: u64 = 1 << 30;

/// The EBS volume collector.
#[derive(Debug)]
pub struct EbsCollector {
    client: aws_sdk_ec2::Client,
}

impl EbsCollector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext) -> EbsCollector {
        let config = aws_sdk_ec2::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        EbsCollector { client: aws_sdk_ec2::Client::from_conf(config) }
    }
}

/// SSD or HDD for an EBS volume type (`st1`, `sc1` and `standard` are magnetic).
pub fn volume_medium(volume_type: &str) -> StorageMedium {
    match volume_type {
        "st1" | "sc1" | "standard" => StorageMedium::Hdd,
        _ => StorageMedium::Ssd,
    }
}

impl Collector for EbsCollector {
    fn name(&self) -> &'static str {
        "ebs"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut found = Vec::new();
            let mut pages = self.client.describe_volumes().max_results(500).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("ec2", "DescribeVolumes", e))?;
                for v in page.volumes() {
                    let Some(id) = v.volume_id() else { continue };
                    let volume_type = v.volume_type().map_or("gp2", VolumeType::as_str).to_owned();
                    let bytes = v.size().unwrap_or(0).max(0) as u64 * GIB;
                    let part = StoragePart {
                        class: volume_type.clone(),
                        bytes,
                        medium: volume_medium(&volume_type),
                        replication: EBS_REPLICATION,
                    };
                    let mut r = Resource::new(
                        "ebs",
                        "ec2",
                        "volume",
                        ctx.arn("ec2", &format!("volume/{id}")),
                        id.to_owned(),
                        Basis::Storage(vec![part]),
                    );
                    r.class = Some(volume_type);
                    r.size_bytes = Some(bytes);
                    r.tags = tag_map(v.tags().iter().map(|t| (t.key(), t.value())));
                    if let Some(iops) = v.iops() {
                        r.attributes.insert("iops", iops.to_string());
                    }
                    if let Some(instance) = v.attachments().first().and_then(|a| a.instance_id()) {
                        r.attributes.insert("attached_to", instance.to_owned());
                    }
                    r.lifecycle = match v.state() {
                        Some(VolumeState::Creating) => LifecycleState::Pending,
                        Some(VolumeState::Available) | Some(VolumeState::InUse) => LifecycleState::Running,
                        Some(VolumeState::Deleting) => LifecycleState::Stopping,
                        Some(VolumeState::Deleted) => LifecycleState::Terminated,
                        _ => LifecycleState::Unknown,
                    };
                    found.push(r);
                }
            }
            Ok(found)
        })
    }
}
