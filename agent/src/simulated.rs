//! A simulated source for demos and load tests: synthetic resources and
//! metrics behind the same [`Collector`] and [`MetricSource`] traits,
//! deterministic from a seed.
//!
//! Mix (by index modulo 20): 8 EC2 instances, 4 EBS volumes, 2 RDS
//! instances, 2 S3 buckets, 3 Lambda functions, 1 Fargate task. Teams
//! cycle through `payments`, `search`, `data`, `platform` and untagged.
//! CPU points are 5–95 % from a hash of (seed, resource, time); every tenth
//! metered resource has no datapoints (as a stopped or newly created
//! resource would), so default-utilisation records appear too.

use std::sync::Arc;

use canopy_emissions::model::StorageMedium;
use canopy_protocol::{CpuArchitecture, LifecycleState};

use crate::collectors::{BoxFuture, CollectContext, CollectError, Collector};
use crate::cost::CostMeter;
use crate::inventory::{Basis, Resource, StoragePart};
use crate::utilisation::{MetricKind, MetricPoint, MetricQuery, MetricSource};

const INSTANCE_TYPES: &[&str] =
    &["m5.large", "m5.xlarge", "c5.2xlarge", "r5.large", "t3.medium", "m6g.large", "c6g.xlarge", "g4dn.xlarge"];
const DB_CLASSES: &[&str] = &["db.r5.large", "db.m5.large", "db.t3.medium"];
const TEAMS: &[Option<&str>] = &[Some("payments"), Some("search"), Some("data"), Some("platform"), None];

/// SplitMix64: a small, well-distributed deterministic hash.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn hash_str(seed: u64, s: &str) -> u64 {
    s.bytes().fold(mix(seed), |h, b| mix(h ^ u64::from(b)))
}

/// Synthetic resources and metrics.
#[derive(Debug, Clone)]
pub struct SimulatedSource {
    seed: u64,
    resources: u32,
    meter: Arc<CostMeter>,
}

impl SimulatedSource {
    /// `resources` synthetic resources from `seed`; GetMetricData-equivalent
    /// requests are counted on `meter`.
    pub fn new(seed: u64, resources: u32, meter: Arc<CostMeter>) -> SimulatedSource {
        SimulatedSource { seed, resources, meter }
    }

    fn resource(&self, ctx: &CollectContext, i: u32) -> Resource {
        let h = mix(self.seed ^ u64::from(i));
        let team = TEAMS[(h % TEAMS.len() as u64) as usize];
        let mut r = match i % 20 {
            0..=7 => {
                let t = INSTANCE_TYPES[(h >> 8) as usize % INSTANCE_TYPES.len()];
                let id = format!("i-{:017x}", h & 0xFFFF_FFFF_FFFF);
                let mut r = Resource::new(
                    "simulated",
                    "ec2",
                    "instance",
                    ctx.arn("ec2", &format!("instance/{id}")),
                    id,
                    Basis::Instance { instance_type: t.into(), count: 1, storage: Vec::new() },
                );
                r.class = Some(t.into());
                r.architecture =
                    Some(if t.contains('g') && t.starts_with(['m', 'c']) && t.chars().nth(2) == Some('g') {
                        CpuArchitecture::Arm64
                    } else {
                        CpuArchitecture::X86_64
                    });
                r
            }
            8..=11 => {
                let id = format!("vol-{:017x}", h & 0xFFFF_FFFF_FFFF);
                let gib = 8 + (h >> 16) % 1_000;
                let (class, medium) =
                    if h % 7 == 0 { ("st1", StorageMedium::Hdd) } else { ("gp3", StorageMedium::Ssd) };
                let part = StoragePart { class: class.into(), bytes: gib << 30, medium, replication: 2.0 };
                let mut r = Resource::new(
                    "simulated",
                    "ec2",
                    "volume",
                    ctx.arn("ec2", &format!("volume/{id}")),
                    id,
                    Basis::Storage(vec![part]),
                );
                r.class = Some(class.into());
                r.size_bytes = Some(gib << 30);
                r
            }
            12 | 13 => {
                let class = DB_CLASSES[(h >> 8) as usize % DB_CLASSES.len()];
                let id = format!("db-{i}");
                let part = StoragePart {
                    class: "gp3".into(),
                    bytes: (20 + (h >> 20) % 500) << 30,
                    medium: StorageMedium::Ssd,
                    replication: 1.0,
                };
                let mut r = Resource::new(
                    "simulated",
                    "rds",
                    "db",
                    ctx.arn("rds", &format!("db:{id}")),
                    id,
                    Basis::Instance { instance_type: class.into(), count: 1, storage: vec![part] },
                );
                r.class = Some(class.into());
                r
            }
            14 | 15 => {
                let name = format!("sim-bucket-{}-{i}", self.seed);
                let bytes = (h >> 12) % (5 << 40);
                let part = StoragePart {
                    class: "StandardStorage".into(),
                    bytes,
                    medium: StorageMedium::Hdd,
                    replication: 6.0,
                };
                let mut r = Resource::new(
                    "simulated",
                    "s3",
                    "bucket",
                    format!("arn:aws:s3:::{name}"),
                    name,
                    Basis::Storage(vec![part]),
                );
                r.class = Some("StandardStorage".into());
                r.size_bytes = Some(bytes);
                r
            }
            16..=18 => {
                let name = format!("sim-fn-{i}");
                let memory_mb = [128u32, 256, 512, 1024, 1769][(h >> 8) as usize % 5];
                let architecture = if h % 2 == 0 { CpuArchitecture::Arm64 } else { CpuArchitecture::X86_64 };
                let arn = ctx.arn("lambda", &format!("function:{name}"));
                let mut r = Resource::new(
                    "simulated",
                    "lambda",
                    "function",
                    arn,
                    name,
                    Basis::Function { memory_mb, architecture },
                );
                r.memory_mib = Some(u64::from(memory_mb));
                r.architecture = Some(architecture);
                r
            }
            _ => {
                let id = format!("{:032x}", h);
                let arn = ctx.arn("ecs", &format!("task/sim/{id}"));
                let mut r = Resource::new(
                    "simulated",
                    "ecs",
                    "task",
                    arn,
                    id,
                    Basis::Container { vcpus: 0.5, memory_mib: 1_024, architecture: CpuArchitecture::X86_64 },
                );
                r.class = Some("FARGATE".into());
                r.vcpus = Some(0.5);
                r.memory_mib = Some(1_024);
                r
            }
        };
        r.lifecycle = LifecycleState::Running;
        if let Some(team) = team {
            r.tags.insert("Team".into(), team.into());
        }
        r.tags.insert("env".into(), if h % 3 == 0 { "prod".into() } else { "dev".into() });
        r
    }
}

impl Collector for SimulatedSource {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        &[]
    }

    fn collect<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move { Ok((0..self.resources).map(|i| self.resource(ctx, i)).collect()) })
    }
}

impl MetricSource for SimulatedSource {
    fn fetch<'a>(
        &'a self,
        queries: &'a [MetricQuery],
        start_unix_s: i64,
        end_unix_s: i64,
        period_s: i64,
    ) -> BoxFuture<'a, Result<Vec<MetricPoint>, CollectError>> {
        Box::pin(async move {
            self.meter.get_metric_data(queries.len());
            let mut points = Vec::new();
            for (index, q) in queries.iter().enumerate() {
                let h = hash_str(self.seed, &q.arn);
                if h % 10 == 0 {
                    continue;
                }
                let mut t = start_unix_s;
                while t < end_unix_s {
                    let v = mix(h ^ t as u64);
                    let value = match q.kind {
                        MetricKind::CpuPct => 5.0 + (v % 9_001) as f64 / 100.0,
                        MetricKind::DurationMs => (v % 60_000) as f64,
                        _ => (v % 1_000) as f64,
                    };
                    points.push(MetricPoint { query: index, start_unix_s: t, value });
                    t += period_s;
                }
            }
            Ok(points)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_seed_same_resources() {
        let ctx = CollectContext { account_id: "123456789012".into(), region: "eu-west-1".into(), now_unix_s: 0 };
        let a = SimulatedSource::new(7, 40, Arc::new(CostMeter::new())).collect(&ctx).await.unwrap();
        let b = SimulatedSource::new(7, 40, Arc::new(CostMeter::new())).collect(&ctx).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 40);
        // Per 20: 8 instances, 4 volumes, 2 DBs, 2 buckets, 3 functions, 1 task.
        let count = |t: &str| a.iter().filter(|r| r.resource_type == t).count();
        assert_eq!(
            (count("instance"), count("volume"), count("db"), count("bucket"), count("function"), count("task")),
            (16, 8, 4, 4, 6, 2)
        );
        let c = SimulatedSource::new(8, 40, Arc::new(CostMeter::new())).collect(&ctx).await.unwrap();
        assert_ne!(a, c);
    }
}
