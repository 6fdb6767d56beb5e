//! S3 buckets in the agent's region (ListBuckets, GetBucketLocation,
//! GetBucketTagging), sized from CloudWatch's daily storage metrics:
//! `BucketSizeBytes` per storage type and `NumberOfObjects`.
//!
//! Storage metrics are daily, so they are fetched at most once per UTC day
//! (and for buckets first seen later that day); collections in between
//! reuse the cached sizes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::error::ProvideErrorMetadata;
use canopy_emissions::model::StorageMedium;
use canopy_protocol::LifecycleState;

use super::cloudwatch::CloudWatchSource;
use super::{BoxFuture, CollectContext, CollectError, Collector, tag_map};
use crate::aws::AwsContext;
use crate::cost::CostMeter;
use crate::inventory::{Basis, Resource, StoragePart};
use crate::utilisation::{MAX_QUERIES_PER_CALL, MetricKind, MetricQuery, MetricSource};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &[
    "s3:ListAllMyBuckets",
    "s3:GetBucketLocation",
    "s3:GetBucketTagging",
    "cloudwatch:ListMetrics",
    "cloudwatch:GetMetricData",
];

const DAY_S: i64 = 86_400;

/// CCF's S3 replication factor: 2 for One Zone and Reduced Redundancy
/// storage, 6 for every other class.
pub fn s3_replication(storage_type: &str) -> f64 {
    if storage_type.starts_with("OneZone") || storage_type.starts_with("ReducedRedundancy") { 2.0 } else { 6.0 }
}

#[derive(Debug, Default, Clone)]
struct Sizes {
    by_storage_type: Vec<(String, u64)>,
    objects: Option<u64>,
}

#[derive(Debug, Default)]
struct Cache {
    day: i64,
    sizes: HashMap<String, Sizes>,
    regions: HashMap<String, String>,
}

/// The S3 bucket collector.
#[derive(Debug)]
pub struct S3Collector {
    client: aws_sdk_s3::Client,
    cloudwatch: CloudWatchSource,
    cache: Mutex<Cache>,
}

impl S3Collector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext, meter: Arc<CostMeter>) -> S3Collector {
        let config = aws_sdk_s3::config::Builder::from(&aws.sdk)
            .interceptor(aws.interceptor)
            .force_path_style(aws.s3_force_path_style)
            .build();
        S3Collector {
            client: aws_sdk_s3::Client::from_conf(config),
            cloudwatch: CloudWatchSource::new(aws, meter),
            cache: Mutex::new(Cache::default()),
        }
    }

    async fn bucket_region(&self, name: &str, listed: Option<&str>) -> Result<String, CollectError> {
        if let Some(region) = listed.filter(|r| !r.is_empty()) {
            return Ok(region.to_owned());
        }
        if let Some(region) = self.cache.lock().expect("s3 cache lock").regions.get(name) {
            return Ok(region.clone());
        }
        let out = self
            .client
            .get_bucket_location()
            .bucket(name)
            .send()
            .await
            .map_err(|e| CollectError::api("s3", "GetBucketLocation", e))?;
        // An empty constraint means us-east-1; `EU` is the legacy name of eu-west-1.
        let region = match out.location_constraint().map(|c| c.as_str()) {
            None | Some("") => "us-east-1".to_owned(),
            Some("EU") => "eu-west-1".to_owned(),
            Some(r) => r.to_owned(),
        };
        self.cache.lock().expect("s3 cache lock").regions.insert(name.to_owned(), region.clone());
        Ok(region)
    }

    async fn tags(&self, name: &str) -> Result<crate::inventory::Tags, CollectError> {
        match self.client.get_bucket_tagging().bucket(name).send().await {
            Ok(out) => Ok(tag_map(out.tag_set().iter().map(|t| (Some(t.key()), Some(t.value()))))),
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("NoSuchTagSet") => Ok(Default::default()),
            Err(e) => Err(CollectError::api("s3", "GetBucketTagging", e)),
        }
    }

    async fn storage_metrics(
        &self,
        buckets: &[String],
        now_unix_s: i64,
    ) -> Result<HashMap<String, Sizes>, CollectError> {
        let series = self.cloudwatch.list_metrics("AWS/S3", "BucketSizeBytes").await?;
        let mut queries = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for dims in series {
            let get = |k: &str| dims.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let (Some(bucket), Some(storage_type)) = (get("BucketName"), get("StorageType")) else { continue };
            // ListMetrics may list one series once per dimension order.
            if buckets.contains(&bucket) && seen.insert((bucket.clone(), storage_type.clone())) {
                queries.push(MetricQuery {
                    arn: bucket.clone(),
                    namespace: "AWS/S3",
                    metric_name: "BucketSizeBytes",
                    dimension: ("BucketName", bucket),
                    extra_dimension: Some(("StorageType", storage_type)),
                    stat: "Average",
                    kind: MetricKind::BucketBytes,
                });
            }
        }
        for bucket in buckets {
            queries.push(MetricQuery {
                arn: bucket.clone(),
                namespace: "AWS/S3",
                metric_name: "NumberOfObjects",
                dimension: ("BucketName", bucket.clone()),
                extra_dimension: Some(("StorageType", "AllStorageTypes".into())),
                stat: "Average",
                kind: MetricKind::ObjectCount,
            });
        }
        // Latest daily datapoint within the last three days.
        let end = now_unix_s - now_unix_s.rem_euclid(DAY_S) + DAY_S;
        let start = end - 3 * DAY_S;
        let mut latest: HashMap<usize, (i64, f64)> = HashMap::new();
        for (chunk_index, chunk) in queries.chunks(MAX_QUERIES_PER_CALL).enumerate() {
            for p in self.cloudwatch.fetch(chunk, start, end, DAY_S).await? {
                let index = chunk_index * MAX_QUERIES_PER_CALL + p.query;
                let entry = latest.entry(index).or_insert((i64::MIN, 0.0));
                if p.start_unix_s > entry.0 {
                    *entry = (p.start_unix_s, p.value);
                }
            }
        }
        let mut sizes: HashMap<String, Sizes> = buckets.iter().map(|b| (b.clone(), Sizes::default())).collect();
        for (index, (_, value)) in latest {
            let q = &queries[index];
            let entry = sizes.entry(q.arn.clone()).or_default();
            let value = value.max(0.0).round() as u64;
            match q.kind {
                MetricKind::BucketBytes => {
                    let storage_type = q.extra_dimension.as_ref().map(|(_, v)| v.clone()).unwrap_or_default();
                    entry.by_storage_type.push((storage_type, value));
                }
                _ => entry.objects = Some(value),
            }
        }
        for s in sizes.values_mut() {
            s.by_storage_type.sort();
        }
        Ok(sizes)
    }
}

impl Collector for S3Collector {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut names = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .client
                    .list_buckets()
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| CollectError::api("s3", "ListBuckets", e))?;
                for b in page.buckets() {
                    let Some(name) = b.name() else { continue };
                    if self.bucket_region(name, b.bucket_region()).await? == ctx.region {
                        names.push(name.to_owned());
                    }
                }
                match page.continuation_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => break,
                }
            }
            let day = ctx.now_unix_s.div_euclid(DAY_S);
            let stale = {
                let cache = self.cache.lock().expect("s3 cache lock");
                cache.day != day || names.iter().any(|n| !cache.sizes.contains_key(n))
            };
            if stale && !names.is_empty() {
                let sizes = self.storage_metrics(&names, ctx.now_unix_s).await?;
                let mut cache = self.cache.lock().expect("s3 cache lock");
                cache.day = day;
                cache.sizes = sizes;
            }
            let mut found = Vec::new();
            for name in names {
                let tags = self.tags(&name).await?;
                let sizes = self.cache.lock().expect("s3 cache lock").sizes.get(&name).cloned().unwrap_or_default();
                let parts: Vec<StoragePart> = sizes
                    .by_storage_type
                    .iter()
                    .map(|(t, bytes)| StoragePart {
                        class: t.clone(),
                        bytes: *bytes,
                        medium: StorageMedium::Hdd,
                        replication: s3_replication(t),
                    })
                    .collect();
                let total: u64 = parts.iter().map(|p| p.bytes).sum();
                let mut r = Resource::new(
                    "s3",
                    "s3",
                    "bucket",
                    format!("arn:{}:s3:::{name}", ctx.partition()),
                    name.clone(),
                    Basis::Storage(parts),
                );
                r.class = sizes.by_storage_type.iter().max_by_key(|(_, b)| *b).map(|(t, _)| t.clone());
                r.size_bytes = Some(total);
                r.tags = tags;
                r.lifecycle = LifecycleState::Running;
                if let Some(objects) = sizes.objects {
                    r.attributes.insert("objects", objects.to_string());
                }
                found.push(r);
            }
            Ok(found)
        })
    }
}
