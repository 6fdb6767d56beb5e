//! Assembling an [`Agent`] from its configuration.

use std::sync::Arc;

use canopy_emissions::grid::MarketConfig;

use crate::aws::{AwsContext, aws_context};
use crate::changes::{ChangeSource, SqsChangeSource};
use crate::collectors::cloudwatch::CloudWatchSource;
use crate::collectors::{
    COLLECTOR_NAMES, CollectContext, CollectError, Collector, dynamodb, ebs, ec2, ecs, efs, eks, elasticache, lambda,
    rds, s3,
};
use crate::config::{AgentConfig, SourceKind};
use crate::cost::{CostMeter, CostModel};
use crate::cycle::{Agent, AgentParts, Cadence};
use crate::estimate::Estimator;
use crate::metrics::Metrics;
use crate::rates::RateLimiter;
use crate::simulated::SimulatedSource;

/// Account id of the simulated source.
pub const SIMULATED_ACCOUNT_ID: &str = "123456789012";

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// STS did not say which account the credentials belong to.
    #[error("cannot determine the account id: {0}")]
    Identity(#[from] CollectError),
}

fn cadence(config: &AgentConfig) -> Cadence {
    Cadence {
        cycle_s: i64::from(config.intervals.cycle_s),
        utilisation_s: i64::from(config.intervals.utilisation_s),
        full_inventory_s: i64::from(config.intervals.full_inventory_h) * 3_600,
    }
}

fn enabled(config: &AgentConfig, name: &str) -> bool {
    config.collectors.is_empty() || config.collectors.iter().any(|c| c == name)
}

/// The AWS collectors enabled in `config`, in [`COLLECTOR_NAMES`] order.
pub fn aws_collectors(config: &AgentConfig, aws: &AwsContext, meter: &Arc<CostMeter>) -> Vec<Box<dyn Collector>> {
    let mut out: Vec<Box<dyn Collector>> = Vec::new();
    for name in COLLECTOR_NAMES.iter().filter(|n| enabled(config, n)) {
        let c: Box<dyn Collector> = match *name {
            "ec2" => Box::new(ec2::Ec2Collector::new(aws)),
            "ebs" => Box::new(ebs::EbsCollector::new(aws)),
            "rds" => Box::new(rds::RdsCollector::new(aws)),
            "s3" => Box::new(s3::S3Collector::new(aws, meter.clone())),
            "lambda" => Box::new(lambda::LambdaCollector::new(aws, meter.clone())),
            "ecs" => Box::new(ecs::EcsCollector::new(aws)),
            "eks" => Box::new(eks::EksCollector::new(aws)),
            "dynamodb" => Box::new(dynamodb::DynamoDbCollector::new(aws)),
            "elasticache" => Box::new(elasticache::ElastiCacheCollector::new(aws)),
            _ => Box::new(efs::EfsCollector::new(aws)),
        };
        out.push(c);
    }
    out
}

/// The account the credentials belong to (STS GetCallerIdentity).
pub async fn caller_account(aws: &AwsContext) -> Result<String, CollectError> {
    let config = aws_sdk_sts::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
    let out = aws_sdk_sts::Client::from_conf(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| CollectError::api("sts", "GetCallerIdentity", e))?;
    out.account().map(str::to_owned).ok_or(CollectError::BadResponse {
        service: "sts",
        operation: "GetCallerIdentity",
        expected: "an account id",
        found: "none".into(),
    })
}

/// Builds the agent `config` describes, with a fresh metrics registry and
/// the SDK's default credential chain.
pub async fn build_agent(config: &AgentConfig) -> Result<Agent, StartError> {
    build_agent_with_credentials(config, None).await
}

/// [`build_agent`] with explicit credentials (tests against emulators).
pub async fn build_agent_with_credentials(
    config: &AgentConfig,
    credentials: Option<aws_sdk_sts::config::Credentials>,
) -> Result<Agent, StartError> {
    let metrics = Arc::new(Metrics::new());
    let meter = Arc::new(CostMeter::new());
    let estimator = Estimator::new(&config.region, MarketConfig::new(), config.attribution.team_tag_keys.clone());
    let cost_model = CostModel::from_config(config);
    if config.source.kind == SourceKind::Simulated {
        let source = SimulatedSource::new(config.source.seed, config.source.resources, meter.clone());
        let account_id = config.account_id.clone().unwrap_or_else(|| SIMULATED_ACCOUNT_ID.to_owned());
        return Ok(Agent::new(AgentParts {
            context: CollectContext { account_id, region: config.region.clone(), now_unix_s: 0 },
            cadence: cadence(config),
            collectors: vec![Box::new(source.clone())],
            metric_source: Box::new(source),
            changes: None,
            estimator,
            cost_model,
            metrics,
            meter,
        }));
    }
    let limiter = Arc::new(RateLimiter::new(config.budget.rates.clone()));
    let aws = aws_context(config, limiter, metrics.clone(), credentials).await;
    let account_id = match &config.account_id {
        Some(a) => a.clone(),
        None => caller_account(&aws).await?,
    };
    let changes: Option<Box<dyn ChangeSource>> = config.change_queue.queue_url.as_ref().map(|url| {
        Box::new(SqsChangeSource::new(
            &aws,
            url,
            config.change_queue.wait_time_s,
            config.change_queue.max_messages,
            meter.clone(),
        )) as Box<dyn ChangeSource>
    });
    Ok(Agent::new(AgentParts {
        context: CollectContext { account_id, region: config.region.clone(), now_unix_s: 0 },
        cadence: cadence(config),
        collectors: aws_collectors(config, &aws, &meter),
        metric_source: Box::new(CloudWatchSource::new(&aws, meter.clone())),
        changes,
        estimator,
        cost_model,
        metrics,
        meter,
    }))
}
