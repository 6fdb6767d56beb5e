//! Per-API request-rate budgets and the token bucket that enforces them.
//!
//! Every attempt (first tries and retries alike) takes a token from the
//! bucket of its API before it is sent, so the agent never exceeds its
//! budget even while AWS is throttling it. Defaults are at most 10 % of the
//! rates AWS documents (table in `agent/README.md`); where AWS publishes no
//! figure the default is a conservative 1 request per second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use tokio::time::{Duration, Instant};

use crate::config::ConfigError;

/// `[budget.rates]`: requests per second per API of each service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Each EC2 Describe* API (AWS: 20/s refill for non-mutating actions).
    pub ec2_per_s: f64,
    /// Each RDS Describe* API (no per-API figure published).
    pub rds_per_s: f64,
    /// Each S3 bucket-level API (ListBuckets, GetBucketTagging, …).
    pub s3_per_s: f64,
    /// Each Lambda control-plane API (AWS: 15/s).
    pub lambda_per_s: f64,
    /// CloudWatch GetMetricData (AWS: 50/s).
    pub cloudwatch_get_metric_data_per_s: f64,
    /// CloudWatch ListMetrics (AWS: 25/s).
    pub cloudwatch_list_metrics_per_s: f64,
    /// Each SQS API (ReceiveMessage, DeleteMessage).
    pub sqs_per_s: f64,
    /// STS GetCallerIdentity.
    pub sts_per_s: f64,
    /// Each ECS List*/Describe* API (AWS: 20/s sustained for cluster reads).
    pub ecs_per_s: f64,
    /// Each EKS List*/Describe* API.
    pub eks_per_s: f64,
    /// Each DynamoDB control-plane API (AWS: 10/s for ListTables/DescribeTable-class calls).
    pub dynamodb_per_s: f64,
    /// Each ElastiCache Describe* API.
    pub elasticache_per_s: f64,
    /// Each EFS Describe* API.
    pub efs_per_s: f64,
}

/// One row of the documented-rate table: config key, AWS's documented
/// sustained rate (requests/s) if published, and where it is documented.
#[derive(Debug, Clone, Copy)]
pub struct DocumentedRate {
    /// Key under `[budget.rates]`.
    pub key: &'static str,
    /// AWS's documented sustained rate, requests per second.
    pub documented_per_s: Option<f64>,
    /// Source of the figure.
    pub source: &'static str,
}

/// AWS's documented rates behind the defaults.
pub const DOCUMENTED_RATES: &[DocumentedRate] = &[
    DocumentedRate {
        key: "ec2_per_s",
        documented_per_s: Some(20.0),
        source: "EC2 API reference, request throttling: non-mutating actions refill 20 tokens/s (bucket 100)",
    },
    DocumentedRate {
        key: "rds_per_s",
        documented_per_s: None,
        source: "no per-API rate published; conservative default",
    },
    DocumentedRate {
        key: "s3_per_s",
        documented_per_s: None,
        source: "no rate published for bucket-configuration APIs; conservative default",
    },
    DocumentedRate {
        key: "lambda_per_s",
        documented_per_s: Some(15.0),
        source: "Lambda quotas: control-plane API requests 15/s",
    },
    DocumentedRate {
        key: "cloudwatch_get_metric_data_per_s",
        documented_per_s: Some(50.0),
        source: "CloudWatch service quotas: GetMetricData 50 TPS",
    },
    DocumentedRate {
        key: "cloudwatch_list_metrics_per_s",
        documented_per_s: Some(25.0),
        source: "CloudWatch service quotas: ListMetrics 25 TPS",
    },
    DocumentedRate {
        key: "sqs_per_s",
        documented_per_s: None,
        source: "SQS standard queues: nearly unlimited API rate; conservative default",
    },
    DocumentedRate { key: "sts_per_s", documented_per_s: None, source: "called once per start; conservative default" },
    DocumentedRate {
        key: "ecs_per_s",
        documented_per_s: Some(20.0),
        source: "ECS API request throttling: cluster read actions 20/s sustained",
    },
    DocumentedRate {
        key: "eks_per_s",
        documented_per_s: None,
        source: "no per-API rate published; conservative default",
    },
    DocumentedRate {
        key: "dynamodb_per_s",
        documented_per_s: Some(10.0),
        source: "DynamoDB quotas: control-plane API requests 10/s (ListTables, DescribeTable class)",
    },
    DocumentedRate {
        key: "elasticache_per_s",
        documented_per_s: None,
        source: "no per-API rate published; conservative default",
    },
    DocumentedRate {
        key: "efs_per_s",
        documented_per_s: None,
        source: "no per-API rate published; conservative default",
    },
];

/// Fraction of a documented rate the defaults use.
pub const DEFAULT_SHARE_OF_DOCUMENTED: f64 = 0.10;
/// Default for APIs without a documented rate, requests per second.
pub const UNDOCUMENTED_DEFAULT_PER_S: f64 = 1.0;

fn default_rate(key: &str) -> f64 {
    DOCUMENTED_RATES
        .iter()
        .find(|r| r.key == key)
        .and_then(|r| r.documented_per_s)
        .map_or(UNDOCUMENTED_DEFAULT_PER_S, |d| d * DEFAULT_SHARE_OF_DOCUMENTED)
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            ec2_per_s: default_rate("ec2_per_s"),
            rds_per_s: default_rate("rds_per_s"),
            s3_per_s: default_rate("s3_per_s"),
            lambda_per_s: default_rate("lambda_per_s"),
            cloudwatch_get_metric_data_per_s: default_rate("cloudwatch_get_metric_data_per_s"),
            cloudwatch_list_metrics_per_s: default_rate("cloudwatch_list_metrics_per_s"),
            sqs_per_s: default_rate("sqs_per_s"),
            sts_per_s: default_rate("sts_per_s"),
            ecs_per_s: default_rate("ecs_per_s"),
            eks_per_s: default_rate("eks_per_s"),
            dynamodb_per_s: default_rate("dynamodb_per_s"),
            elasticache_per_s: default_rate("elasticache_per_s"),
            efs_per_s: default_rate("efs_per_s"),
        }
    }
}

impl RateConfig {
    fn entries(&self) -> [(&'static str, f64); 13] {
        [
            ("ec2_per_s", self.ec2_per_s),
            ("rds_per_s", self.rds_per_s),
            ("s3_per_s", self.s3_per_s),
            ("lambda_per_s", self.lambda_per_s),
            ("cloudwatch_get_metric_data_per_s", self.cloudwatch_get_metric_data_per_s),
            ("cloudwatch_list_metrics_per_s", self.cloudwatch_list_metrics_per_s),
            ("sqs_per_s", self.sqs_per_s),
            ("sts_per_s", self.sts_per_s),
            ("ecs_per_s", self.ecs_per_s),
            ("eks_per_s", self.eks_per_s),
            ("dynamodb_per_s", self.dynamodb_per_s),
            ("elasticache_per_s", self.elasticache_per_s),
            ("efs_per_s", self.efs_per_s),
        ]
    }

    /// Rejects non-positive rates and rates above AWS's documented rate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in self.entries() {
            let documented = DOCUMENTED_RATES.iter().find(|r| r.key == key).and_then(|r| r.documented_per_s);
            let ceiling = documented.unwrap_or(10.0);
            if !(value.is_finite() && value > 0.0 && value <= ceiling) {
                return Err(ConfigError::Invalid {
                    key: rate_key(key),
                    expected: format!("a rate above 0 and at most {ceiling} requests per second"),
                    found: value.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Requests per second for an SDK service name (as the SDK reports it,
    /// e.g. `ec2`, `cloudwatch`) and operation name (`GetMetricData`).
    pub fn per_s(&self, service: &str, operation: &str) -> f64 {
        match (service.to_ascii_lowercase().as_str(), operation) {
            ("ec2", _) => self.ec2_per_s,
            ("rds", _) => self.rds_per_s,
            ("s3", _) => self.s3_per_s,
            ("lambda", _) => self.lambda_per_s,
            ("cloudwatch", "ListMetrics") => self.cloudwatch_list_metrics_per_s,
            ("cloudwatch", _) => self.cloudwatch_get_metric_data_per_s,
            ("sqs", _) => self.sqs_per_s,
            ("sts", _) => self.sts_per_s,
            ("ecs", _) => self.ecs_per_s,
            ("eks", _) => self.eks_per_s,
            ("dynamodb", _) => self.dynamodb_per_s,
            ("elasticache", _) => self.elasticache_per_s,
            ("efs", _) => self.efs_per_s,
            _ => UNDOCUMENTED_DEFAULT_PER_S,
        }
    }
}

fn rate_key(key: &str) -> &'static str {
    match key {
        "ec2_per_s" => "budget.rates.ec2_per_s",
        "rds_per_s" => "budget.rates.rds_per_s",
        "s3_per_s" => "budget.rates.s3_per_s",
        "lambda_per_s" => "budget.rates.lambda_per_s",
        "cloudwatch_get_metric_data_per_s" => "budget.rates.cloudwatch_get_metric_data_per_s",
        "cloudwatch_list_metrics_per_s" => "budget.rates.cloudwatch_list_metrics_per_s",
        "sqs_per_s" => "budget.rates.sqs_per_s",
        "sts_per_s" => "budget.rates.sts_per_s",
        "ecs_per_s" => "budget.rates.ecs_per_s",
        "eks_per_s" => "budget.rates.eks_per_s",
        "dynamodb_per_s" => "budget.rates.dynamodb_per_s",
        "elasticache_per_s" => "budget.rates.elasticache_per_s",
        _ => "budget.rates.efs_per_s",
    }
}

/// A token bucket holding at most one token: consecutive acquisitions are
/// spaced at least `1 / rate` seconds apart, so no window of any length sees
/// more than `rate × length + 1` requests.
///
/// Waiting is a reservation: each caller books the next free slot and sleeps
/// until it (tokio time, so tests can pause the clock).
#[derive(Debug)]
pub struct TokenBucket {
    interval: Duration,
    next_free: Mutex<Option<Instant>>,
}

impl TokenBucket {
    /// A bucket admitting `per_s` requests per second.
    pub fn new(per_s: f64) -> TokenBucket {
        TokenBucket { interval: Duration::from_secs_f64(1.0 / per_s.max(1e-6)), next_free: Mutex::new(None) }
    }

    /// Waits for this caller's slot.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next_free.lock().expect("token bucket lock");
            let now = Instant::now();
            let slot = match *next {
                Some(t) if t > now => t,
                _ => now,
            };
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// Token buckets keyed by `(service, operation)`, created on first use at
/// the configured rate of that API.
#[derive(Debug)]
pub struct RateLimiter {
    rates: RateConfig,
    buckets: Mutex<HashMap<(String, String), Arc<TokenBucket>>>,
}

impl RateLimiter {
    /// A limiter applying `rates`.
    pub fn new(rates: RateConfig) -> RateLimiter {
        RateLimiter { rates, buckets: Mutex::new(HashMap::new()) }
    }

    /// The bucket of one API.
    pub fn bucket(&self, service: &str, operation: &str) -> Arc<TokenBucket> {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        buckets
            .entry((service.to_owned(), operation.to_owned()))
            .or_insert_with(|| Arc::new(TokenBucket::new(self.rates.per_s(service, operation))))
            .clone()
    }

    /// The configured rate of one API, requests per second.
    pub fn per_s(&self, service: &str, operation: &str) -> f64 {
        self.rates.per_s(service, operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ten_percent_of_documented_rates() {
        let r = RateConfig::default();
        assert_eq!(r.ec2_per_s, 2.0); // 10 % of 20/s
        assert_eq!(r.cloudwatch_get_metric_data_per_s, 5.0); // 10 % of 50 TPS
        assert_eq!(r.cloudwatch_list_metrics_per_s, 2.5); // 10 % of 25 TPS
        assert_eq!(r.lambda_per_s, 1.5); // 10 % of 15/s
        assert_eq!(r.rds_per_s, 1.0);
        assert!(r.validate().is_ok());
    }

    #[test]
    fn rate_above_documented_is_rejected() {
        let r = RateConfig { ec2_per_s: 25.0, ..RateConfig::default() };
        let err = r.validate().unwrap_err().to_string();
        assert_eq!(
            err,
            "config key budget.rates.ec2_per_s: expected a rate above 0 and at most 20 requests per second, found 25"
        );
    }

    #[tokio::test]
    async fn bucket_spaces_acquisitions() {
        let bucket = TokenBucket::new(100.0);
        let start = Instant::now();
        for _ in 0..9 {
            bucket.acquire().await;
        }
        // 9 acquisitions at 100/s: the first is immediate, the ninth waits 8 × 10 ms.
        let waited = Instant::now() - start;
        assert!(waited >= Duration::from_millis(80), "{waited:?}");
        assert!(waited < Duration::from_millis(500), "{waited:?}");
    }
}
