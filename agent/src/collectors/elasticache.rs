//! ElastiCache clusters (DescribeCacheClusters, ListTagsForResource): node
//! type and node count, estimated as that many instances.

use canopy_protocol::LifecycleState;

use super::{BoxFuture, CollectContext, CollectError, Collector, tag_map};
use crate::aws::AwsContext;
use crate::inventory::{Basis, Resource};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &["elasticache:DescribeCacheClusters", "elasticache:ListTagsForResource"];

/// The ElastiCache cluster collector.
#[derive(Debug)]
pub struct ElastiCacheCollector {
    client: aws_sdk_elasticache::Client,
}

impl ElastiCacheCollector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext) -> ElastiCacheCollector {
        let config = aws_sdk_elasticache::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        ElastiCacheCollector { client: aws_sdk_elasticache::Client::from_conf(config) }
    }
}

impl Collector for ElastiCacheCollector {
    fn name(&self) -> &'static str {
        "elasticache"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut found = Vec::new();
            let mut pages = self.client.describe_cache_clusters().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("elasticache", "DescribeCacheClusters", e))?;
                for c in page.cache_clusters() {
                    let Some(id) = c.cache_cluster_id() else { continue };
                    let node_type = c.cache_node_type().unwrap_or_default().to_owned();
                    let count = c.num_cache_nodes().unwrap_or(1).max(1) as u32;
                    let arn = c.arn().map_or_else(|| ctx.arn("elasticache", &format!("cluster:{id}")), str::to_owned);
                    let mut r = Resource::new(
                        "elasticache",
                        "elasticache",
                        "cluster",
                        arn,
                        id.to_owned(),
                        Basis::Instance { instance_type: node_type.clone(), count, storage: Vec::new() },
                    );
                    r.class = Some(node_type);
                    r.lifecycle = match c.cache_cluster_status().unwrap_or_default() {
                        "creating" => LifecycleState::Pending,
                        "deleting" => LifecycleState::Stopping,
                        "deleted" => LifecycleState::Terminated,
                        "" => LifecycleState::Unknown,
                        _ => LifecycleState::Running,
                    };
                    if let Some(engine) = c.engine() {
                        r.attributes.insert("engine", engine.to_owned());
                    }
                    r.attributes.insert("nodes", count.to_string());
                    found.push(r);
                }
            }
            for r in &mut found {
                let out = self
                    .client
                    .list_tags_for_resource()
                    .resource_name(&r.arn)
                    .send()
                    .await
                    .map_err(|e| CollectError::api("elasticache", "ListTagsForResource", e))?;
                r.tags = tag_map(out.tag_list().iter().map(|t| (t.key(), t.value())));
            }
            Ok(found)
        })
    }
}
