//! CloudWatch: GetMetricData as the agent's [`MetricSource`], and
//! ListMetrics for discovering S3 storage-type series.
//!
//! The client is `aws-sdk-cloudwatch` pinned at 1.99.0: 1.100 and later
//! speak CloudWatch's binary (CBOR) protocol, which moto 5.2 cannot route;
//! 1.99.0 uses the query protocol AWS still serves.

use std::sync::Arc;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat, ScanBy};

use super::{BoxFuture, CollectError};
use crate::aws::AwsContext;
use crate::cost::CostMeter;
use crate::utilisation::{MAX_QUERIES_PER_CALL, MetricPoint, MetricQuery, MetricSource};

/// IAM actions CloudWatch access needs (declared by the collectors using it).
pub const IAM_ACTIONS: &[&str] = &["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"];

/// GetMetricData / ListMetrics through the SDK, metered.
#[derive(Debug, Clone)]
pub struct CloudWatchSource {
    client: aws_sdk_cloudwatch::Client,
    meter: Arc<CostMeter>,
}

impl CloudWatchSource {
    /// A source using the shared AWS configuration.
    pub fn new(aws: &AwsContext, meter: Arc<CostMeter>) -> CloudWatchSource {
        let config = aws_sdk_cloudwatch::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        CloudWatchSource { client: aws_sdk_cloudwatch::Client::from_conf(config), meter }
    }

    /// Dimension sets of every series of `namespace`/`metric_name`, all pages.
    pub async fn list_metrics(
        &self,
        namespace: &str,
        metric_name: &str,
    ) -> Result<Vec<Vec<(String, String)>>, CollectError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            self.meter.list_metrics();
            let page = self
                .client
                .list_metrics()
                .namespace(namespace)
                .metric_name(metric_name)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| CollectError::api("cloudwatch", "ListMetrics", e))?;
            for m in page.metrics() {
                out.push(
                    m.dimensions()
                        .iter()
                        .map(|d| (d.name().unwrap_or_default().to_owned(), d.value().unwrap_or_default().to_owned()))
                        .collect(),
                );
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Filter for ListMetrics on one dimension (used by tests and tools).
    pub fn dimension_filter(name: &str, value: &str) -> DimensionFilter {
        DimensionFilter::builder().name(name).value(value).build()
    }
}

fn to_sdk_query(index: usize, q: &MetricQuery, period_s: i64) -> MetricDataQuery {
    let mut metric = Metric::builder()
        .namespace(q.namespace)
        .metric_name(q.metric_name)
        .dimensions(Dimension::builder().name(q.dimension.0).value(&q.dimension.1).build());
    if let Some((name, value)) = &q.extra_dimension {
        metric = metric.dimensions(Dimension::builder().name(*name).value(value).build());
    }
    MetricDataQuery::builder()
        .id(format!("q{index}"))
        .metric_stat(MetricStat::builder().metric(metric.build()).period(period_s as i32).stat(q.stat).build())
        .return_data(true)
        .build()
}

impl MetricSource for CloudWatchSource {
    fn fetch<'a>(
        &'a self,
        queries: &'a [MetricQuery],
        start_unix_s: i64,
        end_unix_s: i64,
        period_s: i64,
    ) -> BoxFuture<'a, Result<Vec<MetricPoint>, CollectError>> {
        Box::pin(async move {
            if queries.len() > MAX_QUERIES_PER_CALL {
                return Err(CollectError::BadResponse {
                    service: "cloudwatch",
                    operation: "GetMetricData",
                    expected: "at most 500 queries per request",
                    found: queries.len().to_string(),
                });
            }
            let sdk_queries: Vec<MetricDataQuery> =
                queries.iter().enumerate().map(|(i, q)| to_sdk_query(i, q, period_s)).collect();
            let mut points = Vec::new();
            let mut token: Option<String> = None;
            loop {
                self.meter.get_metric_data(queries.len());
                let page = self
                    .client
                    .get_metric_data()
                    .start_time(DateTime::from_secs(start_unix_s))
                    .end_time(DateTime::from_secs(end_unix_s))
                    .scan_by(ScanBy::TimestampAscending)
                    .set_metric_data_queries(Some(sdk_queries.clone()))
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| CollectError::api("cloudwatch", "GetMetricData", e))?;
                for result in page.metric_data_results() {
                    let Some(index) =
                        result.id().and_then(|id| id.strip_prefix('q')).and_then(|i| i.parse::<usize>().ok())
                    else {
                        continue;
                    };
                    if index >= queries.len() {
                        continue;
                    }
                    for (t, v) in result.timestamps().iter().zip(result.values()) {
                        // Align to the period so points of one fetch key consistently.
                        let start = t.secs() - t.secs().rem_euclid(period_s);
                        if start >= start_unix_s && start < end_unix_s {
                            points.push(MetricPoint { query: index, start_unix_s: start, value: *v });
                        }
                    }
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => break,
                }
            }
            Ok(points)
        })
    }
}
