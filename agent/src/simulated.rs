//! A simulated source for demos and load tests: synthetic resources and
//! metrics behind the same [`Collector`] and [`MetricSource`] traits,
//! deterministic from a seed, and the simulated AWS organisation
//! ([`organisation`]) whose accounts and OUs `canopy simulate` runs agents for.
//!
//! Mix (by slot index modulo 20): 8 EC2 instances (general purpose, compute,
//! memory, burstable, Graviton and GPU families), 4 EBS volumes, 2 RDS
//! instances, 2 S3 buckets, 3 Lambda functions, 1 Fargate task.
//!
//! - Utilisation follows a profile per resource: idle (CPU 0.5–3 %),
//!   over-provisioned (3–12 %), diurnal service (business-hours peak, quieter
//!   weekends) or nightly batch (busy 00:00–06:00 UTC); Lambda durations
//!   follow the diurnal curve. Every tenth metered resource has no datapoints
//!   (as a stopped or newly created resource would), so default-utilisation
//!   records appear too.
//! - Tags are messy on purpose: the team sits under `Team` (60 %), `team`
//!   (15 %), `team-name` (10 %), an empty `Team` (5 %) or nowhere (10 %).
//! - With [`SimulatedSource::with_churn`], three slots in ten hold
//!   short-lived resources: each is replaced by a new one (new id) every 1 to
//!   7 days, so resources are created and terminated over time while the
//!   slot count stays the same.

use std::sync::Arc;

use canopy_emissions::model::StorageMedium;
use canopy_protocol::{CpuArchitecture, LifecycleState};

use crate::collectors::{BoxFuture, CollectContext, CollectError, Collector};
use crate::cost::CostMeter;
use crate::inventory::{Basis, Resource, StoragePart};
use crate::utilisation::{MetricKind, MetricPoint, MetricQuery, MetricSource};

/// EC2 instance types: general purpose, compute, memory, burstable,
/// Graviton (`g` after the generation) and GPU (`g4dn`, `g5`, `p3`).
const INSTANCE_TYPES: &[&str] = &[
    "m5.large",
    "m5.xlarge",
    "c5.2xlarge",
    "r5.large",
    "t3.medium",
    "m6g.large",
    "c6g.xlarge",
    "r6g.large",
    "t4g.medium",
    "m5.2xlarge",
    "c5.xlarge",
    "g4dn.xlarge",
    "g5.xlarge",
    "p3.2xlarge",
];
const DB_CLASSES: &[&str] = &["db.r5.large", "db.m5.large", "db.t3.medium", "db.r6g.large"];
/// Teams of the simulated organisation.
pub const TEAMS: &[&str] = &["payments", "search", "data", "platform", "ml", "web"];
/// Tag keys the team is found under (the agent's default attribution keys).
pub const TEAM_TAG_KEYS: &[&str] = &["Team", "team", "team-name"];

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

/// True for Graviton instance families (`m6g`, `c7g`, `t4g`, `db.r6g` …).
pub fn is_graviton(class: &str) -> bool {
    let family = class.trim_start_matches("db.").split('.').next().unwrap_or("");
    family.len() >= 3 && family.ends_with('g') && family[1..family.len() - 1].chars().all(|c| c.is_ascii_digit())
}

/// How a resource's utilisation behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Running but doing nothing (CPU 0.5–3 %).
    Idle,
    /// Far larger than its load (CPU 3–12 %).
    OverProvisioned,
    /// A service with a business-hours peak and quieter weekends.
    Diurnal,
    /// Busy at night (00:00–06:00 UTC), quiet by day.
    NightlyBatch,
}

impl Profile {
    fn of(h: u64) -> Profile {
        match (h >> 40) % 20 {
            0..=2 => Profile::Idle,
            3..=6 => Profile::OverProvisioned,
            7..=16 => Profile::Diurnal,
            _ => Profile::NightlyBatch,
        }
    }

    /// CPU utilisation, percent, at `t_unix_s` (noise from `noise`, 0..1).
    pub fn cpu_pct(self, t_unix_s: i64, noise: f64) -> f64 {
        let hour = t_unix_s.rem_euclid(86_400) as f64 / 3_600.0;
        // 1970-01-01 was a Thursday: day 0 → Thursday; 2, 3 → Saturday, Sunday.
        let weekend = matches!((t_unix_s.div_euclid(86_400)).rem_euclid(7), 2 | 3);
        let v = match self {
            Profile::Idle => 0.5 + 2.5 * noise,
            Profile::OverProvisioned => 3.0 + 9.0 * noise,
            Profile::Diurnal => {
                // Peak at 14:00 UTC, trough at 02:00.
                let day = 0.5 - 0.5 * ((hour - 2.0) / 24.0 * std::f64::consts::TAU).cos();
                let scale = if weekend { 0.35 } else { 1.0 };
                12.0 + 55.0 * day * scale + 8.0 * noise
            }
            Profile::NightlyBatch => {
                if hour < 6.0 {
                    65.0 + 30.0 * noise
                } else {
                    4.0 + 8.0 * noise
                }
            }
        };
        v.clamp(0.0, 100.0)
    }
}

/// Synthetic resources and metrics.
#[derive(Debug, Clone)]
pub struct SimulatedSource {
    seed: u64,
    resources: u32,
    churn: bool,
    meter: Arc<CostMeter>,
}

impl SimulatedSource {
    /// `resources` synthetic resources from `seed`, always the same ones;
    /// GetMetricData-equivalent requests are counted on `meter`.
    pub fn new(seed: u64, resources: u32, meter: Arc<CostMeter>) -> SimulatedSource {
        SimulatedSource { seed, resources, churn: false, meter }
    }

    /// The same source with short-lived resources replaced over time.
    pub fn with_churn(mut self, churn: bool) -> SimulatedSource {
        self.churn = churn;
        self
    }

    /// The generation of slot `i` at `now_unix_s` (0 for long-lived slots)
    /// and when it was created.
    fn generation(&self, h: u64, now_unix_s: i64) -> (u64, i64) {
        if !self.churn || (h >> 20) % 10 >= 3 {
            return (0, 0);
        }
        let lifetime_s = (1 + (h >> 24) % 7) as i64 * 86_400;
        let phase_s = ((h >> 32) % lifetime_s as u64) as i64;
        let g = (now_unix_s + phase_s).div_euclid(lifetime_s);
        (g as u64 + 1, g * lifetime_s - phase_s)
    }

    fn resource(&self, ctx: &CollectContext, i: u32) -> Resource {
        let slot = mix(self.seed ^ u64::from(i));
        let (generation, created_unix_s) = self.generation(slot, ctx.now_unix_s);
        let h = if generation == 0 { slot } else { mix(slot ^ generation.wrapping_mul(0x9E37)) };
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
                r.architecture = Some(if is_graviton(t) { CpuArchitecture::Arm64 } else { CpuArchitecture::X86_64 });
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
                let id = if generation == 0 { format!("db-{i}") } else { format!("db-{i}-g{generation}") };
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
                r.architecture =
                    Some(if is_graviton(class) { CpuArchitecture::Arm64 } else { CpuArchitecture::X86_64 });
                r
            }
            14 | 15 => {
                let name = format!("sim-bucket-{}-{i}-{generation}", self.seed);
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
                let name = if generation == 0 { format!("sim-fn-{i}") } else { format!("sim-fn-{i}-g{generation}") };
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
                let (vcpus, memory_mib) = [(0.25, 512), (0.5, 1_024), (1.0, 2_048), (4.0, 8_192)][(h >> 8) as usize % 4];
                let mut r = Resource::new(
                    "simulated",
                    "ecs",
                    "task",
                    arn,
                    id,
                    Basis::Container { vcpus, memory_mib, architecture: CpuArchitecture::X86_64 },
                );
                r.class = Some("FARGATE".into());
                r.vcpus = Some(vcpus);
                r.memory_mib = Some(memory_mib);
                r
            }
        };
        r.lifecycle = LifecycleState::Running;
        if generation > 0 {
            r.first_seen_unix_s = created_unix_s;
        }
        let gpu = r.class.as_deref().is_some_and(|c| c.starts_with("g4dn") || c.starts_with("g5") || c.starts_with("p3"));
        let team = if gpu { "ml" } else { TEAMS[(h % TEAMS.len() as u64) as usize] };
        match (h >> 48) % 20 {
            0..=11 => r.tags.insert("Team".into(), team.into()),
            12..=14 => r.tags.insert("team".into(), team.into()),
            15 | 16 => r.tags.insert("team-name".into(), team.into()),
            17 => r.tags.insert("Team".into(), String::new()),
            _ => None,
        };
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
                let profile = Profile::of(h);
                let mut t = start_unix_s;
                while t < end_unix_s {
                    let noise = (mix(h ^ t as u64) % 10_000) as f64 / 10_000.0;
                    let value = match q.kind {
                        MetricKind::CpuPct => profile.cpu_pct(t, noise),
                        // Billed milliseconds per period, following the diurnal curve.
                        MetricKind::DurationMs => {
                            let busy = Profile::Diurnal.cpu_pct(t, noise) / 100.0;
                            (1_000 + (h >> 16) % 20_000) as f64 * busy * period_s as f64 / 60.0
                        }
                        _ => (mix(h ^ t as u64) % 1_000) as f64,
                    };
                    points.push(MetricPoint { query: index, start_unix_s: t, value });
                    t += period_s;
                }
            }
            Ok(points)
        })
    }
}

/// One account of the simulated organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedAccount {
    /// 12-digit account id.
    pub account_id: String,
    /// Account name.
    pub name: String,
    /// OU path from the root, `/`-separated ids (`r-sim/ou-sim-prod`).
    pub ou_path: String,
    /// Regions the account runs resources (and an agent) in.
    pub regions: Vec<String>,
    /// Seed of the account's resources in `region` (see [`SimulatedAccount::seed`]).
    pub seed: u64,
}

impl SimulatedAccount {
    /// Seed of this account's simulated source in `region`.
    pub fn seed_in(&self, region: &str) -> u64 {
        hash_str(self.seed, region)
    }
}

/// A simulated AWS organisation: a management account without an agent and
/// member accounts spread over OUs and regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedOrganisation {
    /// Organisation id (`o-…`).
    pub organisation_id: String,
    /// The management account (in the directory, never running an agent).
    pub management: SimulatedAccount,
    /// Member accounts, each running one agent per region.
    pub accounts: Vec<SimulatedAccount>,
}

/// OUs of the simulated organisation: (id, name).
pub const OUS: &[(&str, &str)] = &[
    ("ou-sim-prod", "Production"),
    ("ou-sim-stage", "Staging"),
    ("ou-sim-data", "Data"),
    ("ou-sim-sandbox", "Sandbox"),
    ("ou-sim-shared", "Shared services"),
];

/// The organisation of `accounts` member accounts over the first `ous` OUs
/// (1 to 5) and `regions` (every account runs in the first region, every
/// third also in the second), deterministic from `seed`.
pub fn organisation(seed: u64, accounts: u32, ous: usize, regions: &[String]) -> SimulatedOrganisation {
    let ous = ous.clamp(1, OUS.len());
    let prefix = 100 + mix(seed) % 800;
    let id = |n: u64| format!("{prefix:03}{n:09}");
    let first = regions.first().cloned().unwrap_or_else(|| "eu-west-1".into());
    let members = (0..accounts)
        .map(|i| {
            let (ou_id, ou_name) = OUS[i as usize % ous];
            let team = TEAMS[i as usize % TEAMS.len()];
            let mut account_regions = vec![first.clone()];
            if i % 3 == 2
                && let Some(second) = regions.get(1 + (i as usize / 3) % (regions.len().max(2) - 1))
            {
                account_regions.push(second.clone());
            }
            SimulatedAccount {
                account_id: id(u64::from(i) + 1),
                name: format!("{team}-{}-{:02}", ou_name.split(' ').next().unwrap_or(ou_name).to_lowercase(), i + 1),
                ou_path: format!("r-sim/{ou_id}"),
                regions: account_regions,
                seed: mix(seed ^ (u64::from(i) + 1)),
            }
        })
        .collect();
    SimulatedOrganisation {
        organisation_id: format!("o-sim{seed}"),
        management: SimulatedAccount {
            account_id: id(0),
            name: "management".into(),
            ou_path: "r-sim".into(),
            regions: Vec::new(),
            seed: mix(seed),
        },
        accounts: members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(now_unix_s: i64) -> CollectContext {
        CollectContext { account_id: "123456789012".into(), region: "eu-west-1".into(), now_unix_s }
    }

    #[tokio::test]
    async fn same_seed_same_resources() {
        let a = SimulatedSource::new(7, 40, Arc::new(CostMeter::new())).collect(&ctx(0)).await.unwrap();
        let b = SimulatedSource::new(7, 40, Arc::new(CostMeter::new())).collect(&ctx(0)).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 40);
        // Per 20: 8 instances, 4 volumes, 2 DBs, 2 buckets, 3 functions, 1 task.
        let count = |t: &str| a.iter().filter(|r| r.resource_type == t).count();
        assert_eq!(
            (count("instance"), count("volume"), count("db"), count("bucket"), count("function"), count("task")),
            (16, 8, 4, 4, 6, 2)
        );
        let c = SimulatedSource::new(8, 40, Arc::new(CostMeter::new())).collect(&ctx(0)).await.unwrap();
        assert_ne!(a, c);
    }

    #[tokio::test]
    async fn mix_has_graviton_gpu_and_messy_tags() {
        let all = SimulatedSource::new(1, 2_000, Arc::new(CostMeter::new())).collect(&ctx(0)).await.unwrap();
        let classes: Vec<&str> = all.iter().filter_map(|r| r.class.as_deref()).collect();
        assert!(classes.iter().any(|c| c.starts_with("m6g") || c.starts_with("c6g") || c.starts_with("r6g")));
        assert!(classes.iter().any(|c| c.starts_with("g4dn") || c.starts_with("g5") || c.starts_with("p3")));
        let arm = all.iter().filter(|r| r.architecture == Some(CpuArchitecture::Arm64) && r.service == "ec2").count();
        assert!(arm > 0);
        let with_key = |k: &str| all.iter().filter(|r| r.tags.get(k).is_some_and(|v| !v.is_empty())).count();
        let empty = all.iter().filter(|r| r.tags.get("Team").is_some_and(String::is_empty)).count();
        let none = all.iter().filter(|r| TEAM_TAG_KEYS.iter().all(|k| !r.tags.contains_key(*k))).count();
        // 60 / 15 / 10 / 5 / 10 % of 2,000, within sampling noise.
        for (n, expected) in [(with_key("Team"), 1_200), (with_key("team"), 300), (with_key("team-name"), 200), (empty, 100), (none, 200)] {
            assert!((n as i64 - expected).abs() < expected / 4 + 20, "{n} vs {expected}");
        }
    }

    #[test]
    fn graviton_families() {
        for (class, arm) in [("m6g.large", true), ("t4g.medium", true), ("db.r6g.large", true), ("g4dn.xlarge", false), ("m5.large", false), ("g5.xlarge", false)] {
            assert_eq!(is_graviton(class), arm, "{class}");
        }
    }

    #[test]
    fn utilisation_is_diurnal_weekly_and_idle_stays_low() {
        // 2026-01-07 was a Wednesday; 2026-01-10 a Saturday.
        let wednesday = 1_767_744_000;
        let saturday = wednesday + 3 * 86_400;
        let at = |day: i64, hour: i64| Profile::Diurnal.cpu_pct(day + hour * 3_600, 0.5);
        assert!(at(wednesday, 14) > 55.0 && at(wednesday, 2) < 20.0, "{} {}", at(wednesday, 14), at(wednesday, 2));
        assert!(at(saturday, 14) < at(wednesday, 14) - 25.0);
        assert!(Profile::NightlyBatch.cpu_pct(wednesday + 3 * 3_600, 0.0) >= 65.0);
        assert!(Profile::NightlyBatch.cpu_pct(wednesday + 12 * 3_600, 1.0) <= 12.0);
        assert!((0..24).all(|hr| Profile::Idle.cpu_pct(wednesday + hr * 3_600, 1.0) <= 3.0));
    }

    #[tokio::test]
    async fn churn_replaces_short_lived_resources_and_keeps_the_count() {
        let source = SimulatedSource::new(5, 200, Arc::new(CostMeter::new())).with_churn(true);
        let day0 = source.collect(&ctx(1_767_225_600)).await.unwrap();
        let day8 = source.collect(&ctx(1_767_225_600 + 8 * 86_400)).await.unwrap();
        assert_eq!((day0.len(), day8.len()), (200, 200));
        let gone = day0.iter().filter(|r| !day8.iter().any(|s| s.arn == r.arn)).count();
        // Three slots in ten churn within at most 7 days.
        assert!((40..=80).contains(&gone), "{gone} replaced");
        let fixed = SimulatedSource::new(5, 200, Arc::new(CostMeter::new()));
        assert_eq!(fixed.collect(&ctx(0)).await.unwrap(), fixed.collect(&ctx(8 * 86_400)).await.unwrap());
    }

    #[test]
    fn organisation_spreads_accounts_over_ous_and_regions() {
        let regions = vec!["eu-west-1".to_owned(), "us-east-1".to_owned(), "eu-central-1".to_owned()];
        let org = organisation(42, 12, 3, &regions);
        assert_eq!(org, organisation(42, 12, 3, &regions));
        assert_eq!(org.accounts.len(), 12);
        let ids: std::collections::BTreeSet<&str> = org.accounts.iter().map(|a| a.account_id.as_str()).collect();
        assert_eq!(ids.len(), 12);
        assert!(ids.iter().all(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())));
        assert!(!ids.contains(org.management.account_id.as_str()));
        let ous: std::collections::BTreeSet<&str> = org.accounts.iter().map(|a| a.ou_path.as_str()).collect();
        assert_eq!(ous.len(), 3);
        let agents: usize = org.accounts.iter().map(|a| a.regions.len()).sum();
        assert_eq!(agents, 16, "12 accounts, every third in a second region");
        assert!(org.accounts.iter().flat_map(|a| &a.regions).any(|r| r == "us-east-1"));
        assert!(org.accounts.iter().flat_map(|a| &a.regions).any(|r| r == "eu-central-1"));
    }
}
