//! Collectors: one module per AWS service behind the [`Collector`] trait,
//! each declaring the IAM actions it needs next to its code
//! (`IAM_ACTIONS`), so the deployment derives the agent role's policy from
//! [`declared_iam_actions`].

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use crate::inventory::{Resource, Tags};

pub mod cloudwatch;
pub mod dynamodb;
pub mod ebs;
pub mod ec2;
pub mod ecs;
pub mod efs;
pub mod eks;
pub mod elasticache;
pub mod lambda;
pub mod rds;
pub mod s3;

/// A boxed, sendable future (object-safe async trait methods).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a collector or metric fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// An AWS call failed after the SDK's retries.
    #[error("{service} {operation} failed after retries: {message}")]
    Api {
        /// Service code.
        service: &'static str,
        /// API operation.
        operation: &'static str,
        /// SDK error text (with the AWS error code when there is one).
        message: String,
    },
    /// A response lacked something the collector needs.
    #[error("{service} {operation}: expected {expected}, found {found}")]
    BadResponse {
        /// Service code.
        service: &'static str,
        /// API operation.
        operation: &'static str,
        /// What was expected.
        expected: &'static str,
        /// What came back.
        found: String,
    },
}

impl CollectError {
    /// Wraps an SDK error with the service and operation it came from.
    pub fn api(service: &'static str, operation: &'static str, err: impl std::error::Error) -> CollectError {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        CollectError::Api { service, operation, message }
    }
}

/// Where a collection runs.
#[derive(Debug, Clone)]
pub struct CollectContext {
    /// 12-digit account id.
    pub account_id: String,
    /// Region code.
    pub region: String,
    /// Collection time, Unix seconds.
    pub now_unix_s: i64,
}

impl CollectContext {
    /// ARN partition of the region (`aws`, `aws-cn`, `aws-us-gov`).
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }

    /// `arn:{partition}:{service}:{region}:{account}:{resource}`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}:{}:{}:{resource}", self.partition(), self.region, self.account_id)
    }
}

/// Lists one kind of resource in the agent's account and region.
pub trait Collector: Send + Sync {
    /// Collector name (`ec2`, `ebs`, …; also the config's `collectors` entry).
    fn name(&self) -> &'static str;

    /// IAM actions the collector calls.
    fn iam_actions(&self) -> &'static [&'static str];

    /// Every resource of this collector, all pages, with all tags.
    fn collect<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>>;
}

/// Names of all AWS collectors.
pub const COLLECTOR_NAMES: &[&str] =
    &["ec2", "ebs", "rds", "s3", "lambda", "ecs", "eks", "dynamodb", "elasticache", "efs"];

/// IAM actions the agent itself needs beyond its collectors: its identity,
/// the change queue, and utilisation fetches.
pub const AGENT_IAM_ACTIONS: &[&str] = &[
    "sts:GetCallerIdentity",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "cloudwatch:GetMetricData",
];

/// Every IAM action the agent can call: all collectors plus its own needs.
pub fn declared_iam_actions() -> BTreeSet<&'static str> {
    let per_collector: &[&[&str]] = &[
        ec2::IAM_ACTIONS,
        ebs::IAM_ACTIONS,
        rds::IAM_ACTIONS,
        s3::IAM_ACTIONS,
        lambda::IAM_ACTIONS,
        ecs::IAM_ACTIONS,
        eks::IAM_ACTIONS,
        dynamodb::IAM_ACTIONS,
        elasticache::IAM_ACTIONS,
        efs::IAM_ACTIONS,
        AGENT_IAM_ACTIONS,
    ];
    per_collector.iter().flat_map(|a| a.iter().copied()).collect()
}

/// Collectors whose resources an EventBridge event `source` (e.g.
/// `aws.ec2`) can change.
pub fn collectors_for_event_source(source: &str) -> &'static [&'static str] {
    match source {
        "aws.ec2" => &["ec2", "ebs"],
        "aws.rds" => &["rds"],
        "aws.s3" => &["s3"],
        "aws.lambda" => &["lambda"],
        "aws.ecs" => &["ecs"],
        "aws.eks" => &["eks"],
        "aws.dynamodb" => &["dynamodb"],
        "aws.elasticache" => &["elasticache"],
        "aws.elasticfilesystem" => &["efs"],
        _ => &[],
    }
}

/// Tags from any SDK tag list as `(key, value)` pairs, skipping keyless tags.
pub fn tag_map<'a>(pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>) -> Tags {
    pairs.into_iter().filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned()))).collect()
}

/// Seconds since the epoch of an SDK timestamp.
pub fn unix_s(t: &aws_smithy_types::DateTime) -> i64 {
    t.secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_actions_cover_agent_needs_and_collectors() {
        let actions = declared_iam_actions();
        for a in ["sts:GetCallerIdentity", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"] {
            assert!(actions.contains(a), "{a}");
        }
        assert!(actions.contains("ec2:DescribeInstanceTypes"));
        assert!(actions.contains("cloudwatch:GetMetricData"));
        assert!(actions.iter().all(|a| {
            a.split_once(':')
                .is_some_and(|(s, n)| !s.is_empty() && n.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        }));
    }

    #[test]
    fn arns_follow_the_partition() {
        let ctx = CollectContext { account_id: "123456789012".into(), region: "cn-north-1".into(), now_unix_s: 0 };
        assert_eq!(ctx.arn("ec2", "instance/i-1"), "arn:aws-cn:ec2:cn-north-1:123456789012:instance/i-1");
    }
}
