//! RDS DB instances (DescribeDBInstances) and Aurora clusters
//! (DescribeDBClusters): class, engine, storage type and size, Multi-AZ.

use canopy_emissions::model::StorageMedium;
use canopy_protocol::LifecycleState;

use super::{BoxFuture, CollectContext, CollectError, Collector, tag_map};
use crate::aws::AwsContext;
use crate::inventory::{Basis, Resource, StoragePart};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &["rds:DescribeDBInstances", "rds:DescribeDBClusters"];

/// CCF's replication factor for Multi-AZ RDS storage.
pub const MULTI_AZ_REPLICATION: f64 = 2.0;
/// CCF's replication factor for Aurora storage (six copies over three AZs).
pub const AURORA_REPLICATION: f64 = 6.0;
const GIB: u64 = 1 << 30;

/// The RDS collector.
#[derive(Debug)]
pub struct RdsCollector {
    client: aws_sdk_rds::Client,
}

impl RdsCollector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext) -> RdsCollector {
        let config = aws_sdk_rds::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        RdsCollector { client: aws_sdk_rds::Client::from_conf(config) }
    }
}

/// Lifecycle from an RDS status (`available`, `stopped`, …).
pub fn rds_lifecycle(status: &str) -> LifecycleState {
    match status {
        "creating" | "starting" => LifecycleState::Pending,
        "stopped" => LifecycleState::Stopped,
        "stopping" | "deleting" => LifecycleState::Stopping,
        "deleted" => LifecycleState::Terminated,
        "" => LifecycleState::Unknown,
        _ => LifecycleState::Running,
    }
}

/// SSD or HDD for an RDS storage type (`standard` is magnetic).
pub fn rds_medium(storage_type: &str) -> StorageMedium {
    if storage_type == "standard" { StorageMedium::Hdd } else { StorageMedium::Ssd }
}

impl Collector for RdsCollector {
    fn name(&self) -> &'static str {
        "rds"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut found = Vec::new();
            let mut pages = self.client.describe_db_instances().max_records(100).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("rds", "DescribeDBInstances", e))?;
                for db in page.db_instances() {
                    let Some(id) = db.db_instance_identifier() else { continue };
                    let class = db.db_instance_class().unwrap_or_default().to_owned();
                    let engine = db.engine().unwrap_or_default().to_owned();
                    let multi_az = db.multi_az().unwrap_or(false);
                    let aurora = engine.starts_with("aurora");
                    let storage_type = db.storage_type().unwrap_or("gp2").to_owned();
                    let bytes = db.allocated_storage().unwrap_or(0).max(0) as u64 * GIB;
                    // Aurora storage belongs to the cluster record.
                    let storage = if aurora || bytes == 0 {
                        Vec::new()
                    } else {
                        let replication = if multi_az { MULTI_AZ_REPLICATION } else { 1.0 };
                        vec![StoragePart {
                            class: storage_type.clone(),
                            bytes,
                            medium: rds_medium(&storage_type),
                            replication,
                        }]
                    };
                    let count = if multi_az && !aurora { 2 } else { 1 };
                    let arn = db.db_instance_arn().map_or_else(|| ctx.arn("rds", &format!("db:{id}")), str::to_owned);
                    let mut r = Resource::new(
                        "rds",
                        "rds",
                        "db",
                        arn,
                        id.to_owned(),
                        Basis::Instance { instance_type: class.clone(), count, storage },
                    );
                    r.class = Some(class);
                    if !aurora {
                        r.size_bytes = Some(bytes);
                    }
                    r.tags = tag_map(db.tag_list().iter().map(|t| (t.key(), t.value())));
                    r.lifecycle = rds_lifecycle(db.db_instance_status().unwrap_or_default());
                    r.attributes.insert("engine", engine);
                    r.attributes.insert("storage_type", storage_type);
                    r.attributes.insert("multi_az", multi_az.to_string());
                    found.push(r);
                }
            }
            let mut pages = self.client.describe_db_clusters().max_records(100).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("rds", "DescribeDBClusters", e))?;
                for c in page.db_clusters() {
                    let Some(id) = c.db_cluster_identifier() else { continue };
                    let engine = c.engine().unwrap_or_default().to_owned();
                    if !engine.starts_with("aurora") {
                        continue;
                    }
                    let bytes = c.allocated_storage().unwrap_or(0).max(0) as u64 * GIB;
                    let class = c.storage_type().unwrap_or("aurora").to_owned();
                    let part = StoragePart {
                        class: class.clone(),
                        bytes,
                        medium: StorageMedium::Ssd,
                        replication: AURORA_REPLICATION,
                    };
                    let arn =
                        c.db_cluster_arn().map_or_else(|| ctx.arn("rds", &format!("cluster:{id}")), str::to_owned);
                    let mut r = Resource::new("rds", "rds", "cluster", arn, id.to_owned(), Basis::Storage(vec![part]));
                    r.class = Some(class);
                    r.size_bytes = Some(bytes);
                    r.tags = tag_map(c.tag_list().iter().map(|t| (t.key(), t.value())));
                    r.lifecycle = rds_lifecycle(c.status().unwrap_or_default());
                    r.attributes.insert("engine", engine);
                    r.attributes.insert("multi_az", c.multi_az().unwrap_or(false).to_string());
                    found.push(r);
                }
            }
            Ok(found)
        })
    }
}
