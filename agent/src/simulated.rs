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
//! - With [`SimulatedSource::with_planted`] (off by default; `canopy
//!   simulate --plant-anomalies`), the anomalies [`plant_anomalies`] drew
//!   change the metrics and the inventory inside their window and nowhere
//!   else: a team's GPU fleet at 100 % CPU, a Lambda function's duration and
//!   invocations × N, an account-region's resources doubled. Each comes with
//!   its ground truth ([`PlantedAnomaly`]: scope, UTC window, expected
//!   excess) so that anomaly detection can be measured. Planting never
//!   changes a metric or a resource outside a window, and a source without
//!   planted anomalies is exactly the source it always was.

use std::sync::Arc;

use canopy_emissions::model::StorageMedium;
use canopy_emissions::time::format_rfc3339;
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

/// True for GPU instance classes (`g4dn`, `g5`, `p3`).
fn is_gpu(r: &Resource) -> bool {
    r.class.as_deref().is_some_and(|c| c.starts_with("g4dn") || c.starts_with("g5") || c.starts_with("p3"))
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
    planted: Vec<PlantedAnomaly>,
}

impl SimulatedSource {
    /// `resources` synthetic resources from `seed`, always the same ones;
    /// GetMetricData-equivalent requests are counted on `meter`.
    pub fn new(seed: u64, resources: u32, meter: Arc<CostMeter>) -> SimulatedSource {
        SimulatedSource { seed, resources, churn: false, meter, planted: Vec::new() }
    }

    /// The same source with short-lived resources replaced over time.
    pub fn with_churn(mut self, churn: bool) -> SimulatedSource {
        self.churn = churn;
        self
    }

    /// The same source with `planted` anomalies applied inside their
    /// windows (those of other accounts or regions change nothing).
    pub fn with_planted(mut self, planted: Vec<PlantedAnomaly>) -> SimulatedSource {
        self.planted = planted;
        self
    }

    /// Resource slots listed at `ctx`: doubled inside a region doubling of
    /// the context's account and region.
    fn slots_at(&self, account_id: &str, region: &str, now_unix_s: i64) -> u32 {
        let doubled = self.planted.iter().any(|p| {
            p.kind == PlantedKind::RegionDoubling
                && p.account_id == account_id
                && p.region == region
                && p.contains(now_unix_s)
        });
        if doubled { self.resources.saturating_mul(2) } else { self.resources }
    }

    /// The metric value of the resource hashed `h` (from its ARN) for the
    /// period starting at `t`: what the source reports without anomalies.
    fn baseline_value(h: u64, kind: MetricKind, t: i64, period_s: i64) -> f64 {
        let profile = Profile::of(h);
        let noise = (mix(h ^ t as u64) % 10_000) as f64 / 10_000.0;
        match kind {
            MetricKind::CpuPct => profile.cpu_pct(t, noise),
            // Billed milliseconds per period, following the diurnal curve.
            MetricKind::DurationMs => {
                let busy = Profile::Diurnal.cpu_pct(t, noise) / 100.0;
                (1_000 + (h >> 16) % 20_000) as f64 * busy * period_s as f64 / 60.0
            }
            _ => (mix(h ^ t as u64) % 1_000) as f64,
        }
    }

    /// True when the resource `arn` reports datapoints (every tenth
    /// metered resource has none).
    fn has_datapoints(&self, arn: &str) -> bool {
        !hash_str(self.seed, arn).is_multiple_of(10)
    }

    /// The value with the planted anomalies active at `t` applied.
    fn planted_value(&self, q: &MetricQuery, t: i64, value: f64) -> f64 {
        let mut value = value;
        for p in self.planted.iter().filter(|p| p.contains(t) && q.arn.contains(&format!(":{}:{}:", p.region, p.account_id))) {
            match p.kind {
                PlantedKind::GpuFleetLeftRunning
                    if q.kind == MetricKind::CpuPct && self.team_gpu_arns(p, t).contains(&q.arn) =>
                {
                    value = 100.0;
                }
                PlantedKind::RunawayLambda
                    if matches!(q.kind, MetricKind::DurationMs | MetricKind::Invocations)
                        && p.slot.is_some_and(|slot| self.resource(&p.context(t), slot).arn == q.arn) =>
                {
                    value *= p.factor;
                }
                _ => {}
            }
        }
        value
    }

    /// ARNs of the GPU instances of `p`'s team listed at `t` in `p`'s
    /// account and region.
    fn team_gpu_arns(&self, p: &PlantedAnomaly, t: i64) -> Vec<String> {
        let ctx = p.context(t);
        (0..self.slots_at(&p.account_id, &p.region, t))
            .filter(|i| i % 20 <= 7)
            .map(|i| self.resource_and_team(&ctx, i))
            .filter(|(r, team)| is_gpu(r) && p.team.as_deref() == Some(*team))
            .map(|(r, _)| r.arn)
            .collect()
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
        self.resource_and_team(ctx, i).0
    }

    /// Resource of slot `i` and the team it belongs to (whatever its tags say).
    fn resource_and_team(&self, ctx: &CollectContext, i: u32) -> (Resource, &'static str) {
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
        let gpu = is_gpu(&r);
        let team = if gpu { "ml" } else { TEAMS[(h % TEAMS.len() as u64) as usize] };
        match (h >> 48) % 20 {
            0..=11 => r.tags.insert("Team".into(), team.into()),
            12..=14 => r.tags.insert("team".into(), team.into()),
            15 | 16 => r.tags.insert("team-name".into(), team.into()),
            17 => r.tags.insert("Team".into(), String::new()),
            _ => None,
        };
        r.tags.insert("env".into(), if h % 3 == 0 { "prod".into() } else { "dev".into() });
        (r, team)
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
        Box::pin(async move {
            let slots = self.slots_at(&ctx.account_id, &ctx.region, ctx.now_unix_s);
            Ok((0..slots).map(|i| self.resource(ctx, i)).collect())
        })
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
                if h.is_multiple_of(10) {
                    continue;
                }
                let mut t = start_unix_s;
                while t < end_unix_s {
                    let mut value = Self::baseline_value(h, q.kind, t, period_s);
                    if !self.planted.is_empty() {
                        value = self.planted_value(q, t, value);
                    }
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

/// What a planted anomaly simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlantedKind {
    /// A team's GPU instances in one account and region at 100 % CPU
    /// instead of their profile (a training job or fleet left running).
    GpuFleetLeftRunning,
    /// One Lambda function's duration and invocations × `factor`.
    RunawayLambda,
    /// One account-region's resources doubled: as many new resources again
    /// (their own utilisation profiles) for a day.
    RegionDoubling,
}

impl PlantedKind {
    /// Name in logs and the ground-truth listing.
    pub fn name(self) -> &'static str {
        match self {
            PlantedKind::GpuFleetLeftRunning => "gpu-fleet-left-running",
            PlantedKind::RunawayLambda => "runaway-lambda",
            PlantedKind::RegionDoubling => "region-doubling",
        }
    }
}

/// A planted anomaly and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedAnomaly {
    /// What it simulates.
    pub kind: PlantedKind,
    /// Scope: the account …
    pub account_id: String,
    /// … and region …
    pub region: String,
    /// … and, for a GPU fleet, the team (whatever the instances' tags say).
    pub team: Option<String>,
    /// The runaway function's slot in its source.
    pub slot: Option<u32>,
    /// The function's ARN at the start of the window (runaway Lambda).
    pub arn: Option<String>,
    /// Multiplier of the function's duration and invocations (runaway
    /// Lambda), 2 for a region doubling, 1 otherwise.
    pub factor: f64,
    /// Window `[start, end)`, whole UTC hours: start …
    pub start_unix_s: i64,
    /// … and end (exclusive).
    pub end_unix_s: i64,
    /// What the anomaly adds over the baseline inside its window, measured
    /// on the datapoints of hourly periods (the backfill's cadence), in
    /// `excess_unit`: `cpu_pct_hours` (GPU fleet: Σ over the fleet's
    /// instances and hours of 100 − the CPU % they would have had),
    /// `duration_ms` (runaway Lambda: (factor − 1) × the function's
    /// duration; its invocations grow by the same factor) or
    /// `resource_hours` (region doubling: the added resources × hours).
    pub expected_excess: f64,
    /// Unit of `expected_excess`.
    pub excess_unit: &'static str,
}

impl PlantedAnomaly {
    /// True when `t_unix_s` is inside the window.
    pub fn contains(&self, t_unix_s: i64) -> bool {
        self.start_unix_s <= t_unix_s && t_unix_s < self.end_unix_s
    }

    fn context(&self, now_unix_s: i64) -> CollectContext {
        CollectContext { account_id: self.account_id.clone(), region: self.region.clone(), now_unix_s }
    }
}

impl std::fmt::Display for PlantedAnomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} account {} region {}", self.kind.name(), self.account_id, self.region)?;
        if let Some(team) = &self.team {
            write!(f, " team {team}")?;
        }
        if let Some(arn) = &self.arn {
            write!(f, " function {arn}")?;
        }
        write!(
            f,
            " from {} to {}: factor {}, expected excess {:.1} {}",
            format_rfc3339(self.start_unix_s),
            format_rfc3339(self.end_unix_s),
            self.factor,
            self.expected_excess,
            self.excess_unit
        )
    }
}

/// One simulated source (an agent's account and region) anomalies can be
/// planted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlantTarget {
    /// Account id.
    pub account_id: String,
    /// Region.
    pub region: String,
    /// Seed of its [`SimulatedSource`].
    pub seed: u64,
    /// Resource slots of its [`SimulatedSource`].
    pub resources: u32,
}

impl PlantTarget {
    fn source(&self) -> SimulatedSource {
        SimulatedSource::new(self.seed, self.resources, Arc::new(CostMeter::new())).with_churn(true)
    }
}

/// Draws one anomaly of each kind over `targets` inside
/// `[from_unix_s, to_unix_s)` (whole hours; deterministic from `seed`, the
/// targets and the range), with its ground truth. A kind no target can
/// host (no GPU instance, no Lambda function reporting datapoints) or that
/// does not fit in the range is left out. The sources must be built with
/// churn, as `canopy simulate` builds them.
pub fn plant_anomalies(seed: u64, targets: &[PlantTarget], from_unix_s: i64, to_unix_s: i64) -> Vec<PlantedAnomaly> {
    let first = from_unix_s + (-from_unix_s).rem_euclid(3_600);
    let last = to_unix_s - to_unix_s.rem_euclid(3_600);
    let hours = (last - first) / 3_600;
    if targets.is_empty() || hours < 2 {
        return Vec::new();
    }
    let mut state = mix(seed ^ 0x0050_4C41_4E54_4544);
    let mut draw = |n: u64| {
        state = mix(state);
        state % n.max(1)
    };
    let mut out = Vec::new();
    // A window of `len` hours starting on a whole hour (or day) of the range.
    let window = |len: i64, step: i64, draw: &mut dyn FnMut(u64) -> u64| -> (i64, i64) {
        let len = len.min(hours);
        let first_step = first + (-first).rem_euclid(step);
        let starts = if first_step + len * 3_600 <= last { (last - len * 3_600 - first_step) / step + 1 } else { 0 };
        if starts == 0 {
            return (first, first + len * 3_600);
        }
        let start = first_step + draw(starts as u64) as i64 * step;
        (start, start + len * 3_600)
    };

    // The region doubling is drawn first so that the other two's ground
    // truth counts the resources it adds when it overlaps them.
    let (start, end) = window(24, 86_400, &mut draw);
    let t = &targets[draw(targets.len() as u64) as usize];
    let mut doubling = probe(PlantedKind::RegionDoubling, t, None, None, start, end);
    doubling.factor = 2.0;
    doubling.expected_excess = f64::from(t.resources) * ((end - start) / 3_600) as f64;
    let source_of = |t: &PlantTarget| t.source().with_planted(vec![doubling.clone()]);

    // 1. A team's GPU fleet left running: 24 to 72 hours.
    let len = 24 + draw(49) as i64;
    let (start, end) = window(len, 3_600, &mut draw);
    let hosts: Vec<&PlantTarget> = targets
        .iter()
        .filter(|t| {
            let p = probe(PlantedKind::GpuFleetLeftRunning, t, Some("ml"), None, start, end);
            !source_of(t).team_gpu_arns(&p, start).is_empty()
        })
        .collect();
    if !hosts.is_empty() {
        let t = hosts[draw(hosts.len() as u64) as usize];
        let mut p = probe(PlantedKind::GpuFleetLeftRunning, t, Some("ml"), None, start, end);
        let source = source_of(t);
        p.expected_excess = hourly(start, end)
            .map(|h| {
                source
                    .team_gpu_arns(&p, h)
                    .iter()
                    .filter(|arn| source.has_datapoints(arn))
                    .map(|arn| 100.0 - SimulatedSource::baseline_value(hash_str(t.seed, arn), MetricKind::CpuPct, h, 3_600))
                    .sum::<f64>()
            })
            .sum();
        out.push(p);
    }

    // 2. A runaway Lambda function: × 4 to 10 for 4 to 12 hours.
    let factor = (4 + draw(7)) as f64;
    let len = 4 + draw(9) as i64;
    let (start, end) = window(len, 3_600, &mut draw);
    let mut candidates = Vec::new();
    for t in targets {
        let source = source_of(t);
        let ctx = CollectContext { account_id: t.account_id.clone(), region: t.region.clone(), now_unix_s: start };
        for slot in (0..t.resources).filter(|i| (16..=18).contains(&(i % 20))) {
            if source.has_datapoints(&source.resource(&ctx, slot).arn) {
                candidates.push((t, slot));
            }
        }
    }
    if !candidates.is_empty() {
        let (t, slot) = candidates[draw(candidates.len() as u64) as usize];
        let mut p = probe(PlantedKind::RunawayLambda, t, None, Some(slot), start, end);
        p.factor = factor;
        let source = source_of(t);
        p.arn = Some(source.resource(&p.context(start), slot).arn);
        p.expected_excess = hourly(start, end)
            .map(|h| {
                let arn = source.resource(&p.context(h), slot).arn;
                if source.has_datapoints(&arn) {
                    (factor - 1.0) * SimulatedSource::baseline_value(hash_str(t.seed, &arn), MetricKind::DurationMs, h, 3_600)
                } else {
                    0.0
                }
            })
            .sum();
        out.push(p);
    }

    out.push(doubling);
    out
}

fn probe(kind: PlantedKind, t: &PlantTarget, team: Option<&str>, slot: Option<u32>, start: i64, end: i64) -> PlantedAnomaly {
    PlantedAnomaly {
        kind,
        account_id: t.account_id.clone(),
        region: t.region.clone(),
        team: team.map(str::to_owned),
        slot,
        arn: None,
        factor: 1.0,
        start_unix_s: start,
        end_unix_s: end,
        expected_excess: 0.0,
        excess_unit: match kind {
            PlantedKind::GpuFleetLeftRunning => "cpu_pct_hours",
            PlantedKind::RunawayLambda => "duration_ms",
            PlantedKind::RegionDoubling => "resource_hours",
        },
    }
}

/// Starts of the hours of `[start, end)`.
fn hourly(start: i64, end: i64) -> impl Iterator<Item = i64> {
    (start..end).step_by(3_600)
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
        let none = all.iter().filter(|r| TEAM_TAG_KEYS.iter().all(|k| !r.tags.contains_key(k))).count();
        // 60 / 15 / 10 / 5 / 10 % of 2,000, within sampling noise.
        for (n, expected) in [(with_key("Team"), 1_200), (with_key("team"), 300), (with_key("team-name"), 200), (empty, 100), (none, 200)] {
            assert!((n as i64 - expected).abs() < expected / 4 + 20, "{n} vs {expected}");
        }
    }


    /// Metrics of a few queries at fixed times: what the source produced
    /// before planted anomalies existed (regression guard: planting is off
    /// by default and must change nothing).
    fn golden_sample(source: &SimulatedSource) -> Vec<f64> {
        let c = ctx(1_767_744_000);
        let resources = block_on(source.collect(&c)).unwrap();
        let mut queries = Vec::new();
        for r in &resources {
            let kind = match r.resource_type {
                "instance" => MetricKind::CpuPct,
                "function" => MetricKind::DurationMs,
                _ => continue,
            };
            queries.push(MetricQuery {
                arn: r.arn.clone(),
                namespace: "sim",
                metric_name: "sim",
                dimension: ("Id", r.id.clone()),
                extra_dimension: None,
                stat: "Average",
                kind,
            });
        }
        let points = block_on(source.fetch(&queries, 1_767_744_000, 1_767_744_000 + 3 * 3_600, 3_600)).unwrap();
        points.iter().take(12).map(|p| p.value).collect()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn planting_is_off_by_default_and_changes_nothing() {
        // Values the source produced before planted anomalies existed.
        let s = SimulatedSource::new(7, 40, Arc::new(CostMeter::new())).with_churn(true);
        let want = [
            0.5992500000000001,
            2.52075,
            0.70375,
            67.673,
            93.524,
            85.22,
            7.9518,
            10.7589,
            6.5559,
            17.085901395927934,
            13.222639777050622,
            17.1904,
        ];
        assert_eq!(golden_sample(&s), want);
        let r = block_on(s.collect(&ctx(1_767_744_000))).unwrap();
        let ids: Vec<&str> = r.iter().take(3).map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["i-00000e1e459320dd7", "i-00000a5d9adefe000", "i-000003b0ca389c35a"]);
        // Anomalies planted elsewhere (another account) change nothing here.
        let elsewhere = PlantTarget { account_id: "999999999999".into(), region: "eu-west-1".into(), seed: 7, resources: 40 };
        let plan = plant_anomalies(7, &[elsewhere], 1_767_744_000 - 86_400, 1_767_744_000 + 3 * 86_400);
        assert_eq!(plan.len(), 3, "{plan:?}");
        let planted = s.clone().with_planted(plan);
        assert_eq!(golden_sample(&planted), want);
        assert_eq!(block_on(planted.collect(&ctx(1_767_744_000))).unwrap(), r);
    }

    /// The simulated organisation's agents as `canopy simulate` runs them.
    fn targets() -> Vec<PlantTarget> {
        let regions = vec!["eu-west-1".to_owned(), "us-east-1".to_owned()];
        let org = organisation(42, 12, 4, &regions);
        org.accounts
            .iter()
            .flat_map(|a| {
                let per_region = 40 / a.regions.len() as u32;
                a.regions.iter().map(move |r| PlantTarget {
                    account_id: a.account_id.clone(),
                    region: r.clone(),
                    seed: a.seed_in(r),
                    resources: per_region,
                })
            })
            .collect()
    }

    /// Monday 2026-01-05 00:00 UTC and 14 days later.
    const FROM: i64 = 1_767_571_200;
    const TO: i64 = FROM + 14 * 86_400;

    fn queries(resources: &[Resource], kinds: &[(&str, MetricKind)]) -> Vec<MetricQuery> {
        let mut out = Vec::new();
        for r in resources {
            for (resource_type, kind) in kinds {
                if r.resource_type == *resource_type {
                    out.push(MetricQuery {
                        arn: r.arn.clone(),
                        namespace: "sim",
                        metric_name: "sim",
                        dimension: ("Id", r.id.clone()),
                        extra_dimension: None,
                        stat: "Sum",
                        kind: *kind,
                    });
                }
            }
        }
        out
    }

    /// Per hour from 6 hours before the window to 6 hours after: (hour,
    /// planted − baseline summed over the hour's datapoints of `kind`,
    /// resources listed by the planted source − by the baseline).
    fn excess_by_hour(p: &PlantedAnomaly, t: &PlantTarget, plan: &[PlantedAnomaly], kind: (&str, MetricKind)) -> Vec<(i64, f64, i64)> {
        let base = t.source();
        let planted = t.source().with_planted(plan.to_vec());
        hourly(p.start_unix_s - 6 * 3_600, p.end_unix_s + 6 * 3_600)
            .map(|h| {
                let c = CollectContext { account_id: t.account_id.clone(), region: t.region.clone(), now_unix_s: h };
                let listed_base = block_on(base.collect(&c)).unwrap();
                let listed = block_on(planted.collect(&c)).unwrap();
                // The planted source's listing: resources a doubling adds are
                // queried from both (their metrics are the same in both).
                let q = queries(&listed, &[kind]);
                let sum = |points: Vec<MetricPoint>| points.iter().map(|x| x.value).sum::<f64>();
                let diff = sum(block_on(planted.fetch(&q, h, h + 3_600, 3_600)).unwrap())
                    - sum(block_on(base.fetch(&q, h, h + 3_600, 3_600)).unwrap());
                (h, diff, listed.len() as i64 - listed_base.len() as i64)
            })
            .collect()
    }

    #[test]
    fn planted_anomalies_exceed_the_baseline_by_their_ground_truth_inside_their_window_only() {
        let targets = targets();
        let plan = plant_anomalies(42, &targets, FROM, TO);
        assert_eq!(plan, plant_anomalies(42, &targets, FROM, TO), "deterministic");
        let kinds: Vec<PlantedKind> = plan.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [PlantedKind::GpuFleetLeftRunning, PlantedKind::RunawayLambda, PlantedKind::RegionDoubling]);
        for p in &plan {
            eprintln!("planted: {p}");
            assert!(FROM <= p.start_unix_s && p.end_unix_s <= TO && p.start_unix_s % 3_600 == 0, "{p}");
            let t = targets.iter().find(|t| t.account_id == p.account_id && t.region == p.region).unwrap();
            let hours = (p.end_unix_s - p.start_unix_s) / 3_600;
            match p.kind {
                PlantedKind::GpuFleetLeftRunning => {
                    assert!((24..=72).contains(&hours), "{p}");
                    assert_eq!(p.team.as_deref(), Some("ml"));
                    let by_hour = excess_by_hour(p, t, &plan, ("instance", MetricKind::CpuPct));
                    let fleet_hours: usize = hourly(p.start_unix_s, p.end_unix_s)
                        .map(|h| t.source().team_gpu_arns(p, h).iter().filter(|a| t.source().has_datapoints(a)).count())
                        .sum();
                    assert!(fleet_hours >= hours as usize, "at least one GPU instance all along");
                    // A diurnal or batch GPU's CPU is at most 75-95 %, an idle one's 0.5-3 %:
                    // each GPU instance-hour at 100 % adds between 5 and 99.5 points.
                    assert!(p.expected_excess > 5.0 * fleet_hours as f64 && p.expected_excess < 99.5 * fleet_hours as f64, "{p}");
                    check_window(p, &by_hour, p.expected_excess, 0.0);
                }
                PlantedKind::RunawayLambda => {
                    assert!((4..=12).contains(&hours) && (4.0..=10.0).contains(&p.factor), "{p}");
                    let by_hour = excess_by_hour(p, t, &plan, ("function", MetricKind::DurationMs));
                    assert!(p.expected_excess > 0.0, "{p}");
                    check_window(p, &by_hour, p.expected_excess, 0.0);
                    // Invocations grow by the same factor.
                    let inv = excess_by_hour(p, t, &plan, ("function", MetricKind::Invocations));
                    assert!(inv.iter().filter(|(h, ..)| p.contains(*h)).all(|(_, d, _)| *d > 0.0));
                    assert!(inv.iter().filter(|(h, ..)| !p.contains(*h)).all(|(_, d, _)| *d == 0.0));
                }
                PlantedKind::RegionDoubling => {
                    assert_eq!((hours, p.start_unix_s % 86_400), (24, 0), "{p}");
                    assert_eq!(p.expected_excess, 24.0 * f64::from(t.resources));
                    let by_hour = excess_by_hour(p, t, &plan, ("instance", MetricKind::CpuPct));
                    let added: i64 = by_hour.iter().map(|(_, _, n)| n).sum();
                    assert_eq!(added as f64, p.expected_excess);
                    for (h, diff, n) in &by_hour {
                        // Inside: twice the resources; the original ones' metrics unchanged.
                        assert_eq!((*n, *diff), (if p.contains(*h) { i64::from(t.resources) } else { 0 }, 0.0), "hour {h}");
                    }
                }
            }
        }
        let line = plan[0].to_string();
        assert!(line.starts_with("gpu-fleet-left-running account ") && line.contains("team ml from 2026-01-"), "{line}");
    }

    /// The excess inside `p`'s window sums to `truth` and is `outside` everywhere else.
    fn check_window(p: &PlantedAnomaly, by_hour: &[(i64, f64, i64)], truth: f64, outside: f64) {
        let inside: f64 = by_hour.iter().filter(|(h, ..)| p.contains(*h)).map(|(_, d, _)| d).sum();
        assert!((inside - truth).abs() <= 1e-9 * truth.abs().max(1.0), "{p}: measured {inside}");
        for (h, d, n) in by_hour.iter().filter(|(h, ..)| !p.contains(*h)) {
            assert_eq!((*d, *n), (outside, 0), "{p}: hour {h} outside the window");
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
