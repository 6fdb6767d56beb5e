//! EKS managed node groups (ListClusters, ListNodegroups,
//! DescribeNodegroup). Inventory only: their nodes are EC2 instances the
//! `ec2` collector estimates, so counting them here would double count.

use canopy_protocol::LifecycleState;

use super::{BoxFuture, CollectContext, CollectError, Collector};
use crate::aws::AwsContext;
use crate::inventory::{Basis, Resource};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &["eks:ListClusters", "eks:ListNodegroups", "eks:DescribeNodegroup"];

/// The EKS node-group collector.
#[derive(Debug)]
pub struct EksCollector {
    client: aws_sdk_eks::Client,
}

impl EksCollector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext) -> EksCollector {
        let config = aws_sdk_eks::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        EksCollector { client: aws_sdk_eks::Client::from_conf(config) }
    }
}

impl Collector for EksCollector {
    fn name(&self) -> &'static str {
        "eks"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, _ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut clusters = Vec::new();
            let mut pages = self.client.list_clusters().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("eks", "ListClusters", e))?;
                clusters.extend(page.clusters().iter().cloned());
            }
            let mut found = Vec::new();
            for cluster in &clusters {
                let mut names = Vec::new();
                let mut pages = self.client.list_nodegroups().cluster_name(cluster).into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| CollectError::api("eks", "ListNodegroups", e))?;
                    names.extend(page.nodegroups().iter().cloned());
                }
                for name in names {
                    let out = self
                        .client
                        .describe_nodegroup()
                        .cluster_name(cluster)
                        .nodegroup_name(&name)
                        .send()
                        .await
                        .map_err(|e| CollectError::api("eks", "DescribeNodegroup", e))?;
                    let Some(ng) = out.nodegroup() else { continue };
                    let Some(arn) = ng.nodegroup_arn() else { continue };
                    let mut r =
                        Resource::new("eks", "eks", "nodegroup", arn.to_owned(), name.clone(), Basis::CountedElsewhere);
                    r.class = ng.instance_types().first().cloned();
                    r.tags =
                        ng.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
                    r.lifecycle = match ng.status().map(|s| s.as_str()) {
                        Some("ACTIVE") | Some("UPDATING") | Some("DEGRADED") => LifecycleState::Running,
                        Some("CREATING") => LifecycleState::Pending,
                        Some("DELETING") => LifecycleState::Stopping,
                        _ => LifecycleState::Unknown,
                    };
                    if let Some(size) = ng.scaling_config().and_then(|s| s.desired_size()) {
                        r.attributes.insert("desired_size", size.to_string());
                    }
                    r.attributes.insert("cluster", cluster.clone());
                    found.push(r);
                }
            }
            Ok(found)
        })
    }
}
