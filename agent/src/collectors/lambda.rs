//! Lambda functions (ListFunctions, ListTags): memory and architecture.
//! Duration comes from the utilisation fetch; Invocations (informational)
//! once per UTC day from CloudWatch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_lambda::types::Architecture;
use canopy_protocol::{CpuArchitecture, LifecycleState};

use super::cloudwatch::CloudWatchSource;
use super::{BoxFuture, CollectContext, CollectError, Collector};
use crate::aws::AwsContext;
use crate::cost::CostMeter;
use crate::inventory::{Basis, Resource};
use crate::utilisation::{MAX_QUERIES_PER_CALL, MetricKind, MetricQuery, MetricSource};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &["lambda:ListFunctions", "lambda:ListTags", "cloudwatch:GetMetricData"];

const DAY_S: i64 = 86_400;

/// The Lambda function collector.
#[derive(Debug)]
pub struct LambdaCollector {
    client: aws_sdk_lambda::Client,
    cloudwatch: CloudWatchSource,
    invocations: Mutex<(i64, HashMap<String, u64>)>,
}

impl LambdaCollector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext, meter: Arc<CostMeter>) -> LambdaCollector {
        let config = aws_sdk_lambda::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        LambdaCollector {
            client: aws_sdk_lambda::Client::from_conf(config),
            cloudwatch: CloudWatchSource::new(aws, meter),
            invocations: Mutex::new((i64::MIN, HashMap::new())),
        }
    }

    async fn daily_invocations(&self, names: &[String], now_unix_s: i64) -> Result<HashMap<String, u64>, CollectError> {
        let queries: Vec<MetricQuery> = names
            .iter()
            .map(|n| MetricQuery {
                arn: n.clone(),
                namespace: "AWS/Lambda",
                metric_name: "Invocations",
                dimension: ("FunctionName", n.clone()),
                extra_dimension: None,
                stat: "Sum",
                kind: MetricKind::Invocations,
            })
            .collect();
        let end = now_unix_s - now_unix_s.rem_euclid(DAY_S);
        let mut out = HashMap::new();
        for (chunk_index, chunk) in queries.chunks(MAX_QUERIES_PER_CALL).enumerate() {
            for p in self.cloudwatch.fetch(chunk, end - DAY_S, end, DAY_S).await? {
                let q = &queries[chunk_index * MAX_QUERIES_PER_CALL + p.query];
                *out.entry(q.arn.clone()).or_insert(0) += p.value.max(0.0).round() as u64;
            }
        }
        Ok(out)
    }
}

impl Collector for LambdaCollector {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut found = Vec::new();
            let mut pages = self.client.list_functions().max_items(50).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("lambda", "ListFunctions", e))?;
                for f in page.functions() {
                    let (Some(name), Some(arn)) = (f.function_name(), f.function_arn()) else { continue };
                    let architecture = match f.architectures().first() {
                        Some(Architecture::Arm64) => CpuArchitecture::Arm64,
                        _ => CpuArchitecture::X86_64,
                    };
                    let memory_mb = f.memory_size().unwrap_or(128).max(0) as u32;
                    let mut r = Resource::new(
                        "lambda",
                        "lambda",
                        "function",
                        arn.to_owned(),
                        name.to_owned(),
                        Basis::Function { memory_mb, architecture },
                    );
                    r.memory_mib = Some(u64::from(memory_mb));
                    r.architecture = Some(architecture);
                    r.lifecycle = LifecycleState::Running;
                    if let Some(runtime) = f.runtime() {
                        r.attributes.insert("runtime", runtime.as_str().to_owned());
                    }
                    found.push(r);
                }
            }
            for r in &mut found {
                let out = self
                    .client
                    .list_tags()
                    .resource(r.arn.clone())
                    .send()
                    .await
                    .map_err(|e| CollectError::api("lambda", "ListTags", e))?;
                r.tags =
                    out.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
            }
            let day = ctx.now_unix_s.div_euclid(DAY_S);
            let names: Vec<String> = found.iter().map(|r| r.id.clone()).collect();
            let stale = {
                let cache = self.invocations.lock().expect("invocation cache lock");
                cache.0 != day || names.iter().any(|n| !cache.1.contains_key(n))
            };
            if stale && !names.is_empty() {
                let mut counts = self.daily_invocations(&names, ctx.now_unix_s).await?;
                for n in &names {
                    counts.entry(n.clone()).or_insert(0);
                }
                *self.invocations.lock().expect("invocation cache lock") = (day, counts);
            }
            let cache = self.invocations.lock().expect("invocation cache lock");
            for r in &mut found {
                if let Some(n) = cache.1.get(&r.id) {
                    r.attributes.insert("invocations_previous_day", n.to_string());
                }
            }
            Ok(found)
        })
    }
}
