//! Synthetic organisations with planted waste and its ground truth, for the
//! benchmark and the property tests: idle instances, over-provisioned
//! instances with their right size, x86 instances with a Graviton
//! equivalent, gp2 volumes, stopped instances holding volumes, unattached
//! volumes, idle RDS, idle provisioned concurrency, old snapshots, cold S3
//! buckets, non-production fleets running at night, batch jobs in dirty
//! hours (with a synthetic hourly intensity), workloads in a high-carbon
//! region with an allowed cleaner one, an EU-only account whose workloads
//! must stay in the EU, and a US-only account with no cleaner US region
//! (a negative control) — among healthy resources that must not be flagged.
//!
//! The engine sees what the aggregator would: hourly CPU samples with noise,
//! summarised by [`Utilisation::from_hourly`]. The truth is computed from
//! the planted (noise-free) parameters with the emissions model, so the
//! benchmark measures the error the summaries and the rules introduce.
//! **Deterministic from the seed; no I/O.**

use std::collections::BTreeMap;

use canopy_emissions::grid::{
    CarbonIntensitySource, GridFactor, MarketConfig, MarketRegion, location_factor, zone_for_region,
};
use canopy_emissions::model::{CpuArchitecture, Provenance, StorageMedium};
use canopy_emissions::time::unix_seconds;

use crate::catalog::REGIONS;
use crate::input::{
    Account, Architecture, Inventory, LatencyClass, Lifecycle, NonProductionRule, PlacementPolicy,
    Residency, ResourceSnapshot, StorageAccess, StoragePart, Utilisation,
};
use crate::prices::{
    HOURS_PER_MONTH, ebs_usd_per_gb_month, ec2_usd_per_month, s3_usd_per_gb_month,
};
use crate::recommendation::{
    Footprint, Kind, Target, function_month, instance_month, storage_month,
};
use crate::rules::region::allowed;
use crate::rules::scheduling::is_off_hour;

/// The region whose zone has synthetic hourly intensity (batch jobs run there).
pub const HOURLY_REGION: &str = "eu-west-1";

/// Deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform index below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }
    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Synthetic hourly intensity for [`HOURLY_REGION`]'s zone: dirtiest around
/// 02:00 UTC, cleanest in the early afternoon (solar), asymmetric (a second
/// harmonic, so no two starts of a block tie), with a day-to-day swing.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticIntensity {
    zone: &'static str,
}

impl SyntheticIntensity {
    /// The source for [`HOURLY_REGION`].
    pub fn new() -> SyntheticIntensity {
        SyntheticIntensity {
            zone: zone_for_region(HOURLY_REGION).expect("the hourly region has a zone"),
        }
    }

    /// gCO2e/kWh at an hour start.
    pub fn g_per_kwh(hour_start_unix_s: i64) -> f64 {
        let hour = (hour_start_unix_s.rem_euclid(86_400) / 3600) as f64;
        let day = hour_start_unix_s.div_euclid(86_400) as f64;
        (300.0
            + 200.0 * (std::f64::consts::TAU * (hour - 2.0) / 24.0).cos()
            + 40.0 * (std::f64::consts::TAU * (hour - 5.0) / 12.0).cos())
            * (1.0 + 0.1 * (day * 0.7).sin())
    }
}

impl Default for SyntheticIntensity {
    fn default() -> Self {
        SyntheticIntensity::new()
    }
}

const SYNTHETIC: Provenance = Provenance {
    source: "canopy-recommend synthetic hourly intensity",
    vintage: "synthetic",
};

impl CarbonIntensitySource for SyntheticIntensity {
    fn intensity(&self, zone: &str, hour_start_unix_s: i64) -> Option<GridFactor> {
        (zone == self.zone).then(|| GridFactor {
            g_co2e_per_kwh: Self::g_per_kwh(hour_start_unix_s - hour_start_unix_s.rem_euclid(3600)),
            provenance: SYNTHETIC,
        })
    }
}

/// One planted piece of waste: the action that must be recommended and its true saving.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// The resource.
    pub arn: String,
    /// The kind the engine must report as the resource's best action.
    pub kind: Kind,
    /// The target it must name.
    pub target: Target,
    /// True location-based saving, kgCO2e per month.
    pub location_kg_co2e: f64,
    /// True cost saving, USD per month, where a price is known.
    pub usd_per_month: Option<f64>,
}

/// A generated organisation.
pub struct Planted {
    /// When the snapshot is taken.
    pub as_of_unix_s: i64,
    /// Resources.
    pub resources: Vec<ResourceSnapshot>,
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Placement policies.
    pub policies: Vec<PlacementPolicy>,
    /// Non-production rule.
    pub non_production: NonProductionRule,
    /// Market set (a renewable share in two regions).
    pub market: MarketConfig,
    /// Hourly intensity.
    pub hourly: SyntheticIntensity,
    /// Ground truth.
    pub truth: Vec<Truth>,
}

impl Planted {
    /// The inventory the engine reads.
    pub fn inventory(&self) -> Inventory<'_> {
        Inventory {
            as_of_unix_s: self.as_of_unix_s,
            resources: self.resources.clone(),
            accounts: self.accounts.clone(),
            policies: self.policies.clone(),
            non_production: Some(self.non_production.clone()),
            market: &self.market,
            hourly: Some(&self.hourly),
        }
    }
}

/// Size of the generated organisation.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// Seed.
    pub seed: u64,
    /// Ordinary accounts (each with every kind of planted waste and healthy resources).
    pub accounts: usize,
}

struct Gen {
    rng: Rng,
    as_of: i64,
    p: Planted,
    next_id: u64,
}

/// A noisy hourly series over `days` before `as_of` from a noise-free
/// `level(hour_of_week)` (`None` = not running).
fn series(
    rng: &mut Rng,
    as_of: i64,
    days: i64,
    level: &dyn Fn(usize) -> Option<f64>,
) -> Utilisation {
    let start = as_of - days * 86_400;
    let cpu: Vec<Option<f64>> = (0..days * 24)
        .map(|i| {
            let how = crate::input::hour_of_week(start + i * 3600);
            level(how).map(|l| {
                // ±15 % noise and, one hour in fifty, a spike to three times the level
                let spike = if rng.unit() < 0.02 { 3.0 } else { 1.0 };
                (l * spike * (1.0 + rng.range(-0.15, 0.15))).clamp(0.0, 100.0)
            })
        })
        .collect();
    Utilisation::from_hourly(start, &cpu).expect("generated series is valid")
}

impl Gen {
    fn arn(&mut self, account: &str, region: &str, service: &str, what: &str) -> (String, String) {
        self.next_id += 1;
        let id = format!("{what}-{:08x}", self.next_id);
        let arn = match service {
            "s3" => format!("arn:aws:s3:::bucket-{:08x}", self.next_id),
            "rds" => format!("arn:aws:rds:{region}:{account}:db:{id}"),
            "lambda" => format!("arn:aws:lambda:{region}:{account}:function:{id}"),
            _ => format!("arn:aws:ec2:{region}:{account}:{what}/{id}"),
        };
        (arn, id)
    }

    fn instance(
        &mut self,
        account: &str,
        region: &str,
        class: &str,
        arch: Architecture,
        u: Option<Utilisation>,
        team: &str,
    ) -> ResourceSnapshot {
        let (arn, _) = self.arn(account, region, "ec2", "instance");
        let mut r = ResourceSnapshot::new(&arn, account, region, "ec2", "instance");
        r.class = Some(class.into());
        r.architecture = Some(arch);
        r.utilisation = u;
        r.team = Some(team.into());
        r.tags.insert("team".into(), team.into());
        r.tags.insert("env".into(), "prod".into());
        r
    }

    fn volume(
        &mut self,
        account: &str,
        region: &str,
        class: &str,
        gb: f64,
        attached_to: Option<&str>,
    ) -> ResourceSnapshot {
        let (arn, _) = self.arn(account, region, "ec2", "volume");
        let mut v = ResourceSnapshot::new(&arn, account, region, "ec2", "volume");
        v.class = Some(class.into());
        v.storage.push(StoragePart {
            class: class.into(),
            gb,
            medium: StorageMedium::Ssd,
            replication: 2.0,
        });
        if let Some(i) = attached_to {
            v.attributes.insert("attached_to".into(), i.into());
        }
        v
    }

    /// An S3 bucket of `gb` GB in Standard with its access pattern.
    fn bucket(
        &mut self,
        account: &str,
        region: &str,
        gb: f64,
        get_requests_per_month: f64,
        days_since_last_access: f64,
    ) -> ResourceSnapshot {
        let (arn, _) = self.arn(account, region, "s3", "bucket");
        let mut b = ResourceSnapshot::new(&arn, account, region, "s3", "bucket");
        b.storage.push(StoragePart {
            class: "StandardStorage".into(),
            gb,
            medium: StorageMedium::Hdd,
            replication: 6.0,
        });
        b.access = Some(StorageAccess {
            get_requests_per_month: Some(get_requests_per_month),
            days_since_last_access: Some(days_since_last_access),
        });
        b
    }

    fn days(&mut self) -> i64 {
        14 + self.rng.below(17) as i64
    }

    fn month(&self, region: &str, class: &str, hours: f64, cpu: f64) -> Footprint {
        let inv = self.p.inventory();
        instance_month(&inv, region, class, None, hours, Some(cpu))
            .expect("planted types are in the model")
    }

    fn storage_kg(&self, region: &str, gb: f64, medium: StorageMedium, replication: f64) -> f64 {
        let inv = self.p.inventory();
        storage_month(&inv, region, gb, medium, replication, HOURS_PER_MONTH)
            .expect("valid storage")
            .location_g
            / 1000.0
    }

    fn truth(
        &mut self,
        arn: &str,
        kind: Kind,
        target: Target,
        location_kg_co2e: f64,
        usd_per_month: Option<f64>,
    ) {
        self.p.truth.push(Truth {
            arn: arn.into(),
            kind,
            target,
            location_kg_co2e,
            usd_per_month,
        });
    }

    fn push(&mut self, r: ResourceSnapshot) -> String {
        let arn = r.arn.clone();
        self.p.resources.push(r);
        arn
    }

    /// One ordinary account with every kind of planted waste among healthy resources.
    fn ordinary(&mut self, account: &str, region: &str, team: &str) {
        let as_of = self.as_of;
        // healthy: well-used Graviton instances with gp3 volumes, a hot bucket
        for _ in 0..4 {
            let mean = self.rng.range(40.0, 50.0);
            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &|_| Some(mean));
            let i = self.instance(
                account,
                region,
                "m7g.xlarge",
                Architecture::Arm64,
                Some(u),
                team,
            );
            let id = crate::rules::instance_id(&i.arn).to_owned();
            self.push(i);
            let v = self.volume(account, region, "gp3", 100.0, Some(&id));
            self.push(v);
        }
        let hot = self.bucket(account, region, 800.0, 5e6, 0.0);
        self.push(hot);

        // idle instances (x86: Graviton would fire too, idle must win)
        for class in ["m5.large", "m5.xlarge"] {
            let base = self.rng.range(0.2, 0.8);
            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &|_| Some(base));
            let i = self.instance(account, region, class, Architecture::X86_64, Some(u), team);
            let kg = self.month(region, class, HOURS_PER_MONTH, base).location_g / 1000.0;
            let usd = ec2_usd_per_month(region, class);
            let arn = self.push(i);
            self.truth(&arn, Kind::Idle, Target::Stop, kg, usd);
        }

        // over-provisioned Graviton instances with their right size
        for (class, right, vcpus, right_vcpus, p95_lo, p95_hi) in [
            ("m7g.2xlarge", "m7g.large", 8.0, 2.0, 11.0, 14.0),
            ("c7g.4xlarge", "c7g.2xlarge", 16.0, 8.0, 20.0, 28.0),
        ] {
            // spiky: base most hours, peaks (a sixth of hours) at the p95 level
            let peak = self.rng.range(p95_lo, p95_hi) / 1.15;
            let base = peak / 2.0;
            let level = move |how: usize| Some(if how.is_multiple_of(6) { peak } else { base });
            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &level);
            let true_mean = (peak + 5.0 * base) / 6.0;
            let i = self.instance(account, region, class, Architecture::Arm64, Some(u), team);
            let kg = (self
                .month(region, class, HOURS_PER_MONTH, true_mean)
                .location_g
                - self
                    .month(
                        region,
                        right,
                        HOURS_PER_MONTH,
                        true_mean * vcpus / right_vcpus,
                    )
                    .location_g)
                / 1000.0;
            let usd = ec2_usd_per_month(region, class)
                .zip(ec2_usd_per_month(region, right))
                .map(|(a, b)| a - b);
            let arn = self.push(i);
            self.truth(
                &arn,
                Kind::Rightsizing,
                Target::InstanceType(right.into()),
                kg,
                usd,
            );
        }

        // steady x86 instances with a Graviton equivalent
        for (class, arm) in [
            ("m5.xlarge", "m7g.xlarge"),
            ("c5.xlarge", "c7g.xlarge"),
            ("r5.large", "r7g.large"),
        ] {
            let mean = self.rng.range(45.0, 52.0);
            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &|_| Some(mean));
            let i = self.instance(account, region, class, Architecture::X86_64, Some(u), team);
            let kg = (self.month(region, class, HOURS_PER_MONTH, mean).location_g
                - self.month(region, arm, HOURS_PER_MONTH, mean).location_g)
                / 1000.0;
            let usd = ec2_usd_per_month(region, class)
                .zip(ec2_usd_per_month(region, arm))
                .map(|(a, b)| a - b);
            let arn = self.push(i);
            self.truth(
                &arn,
                Kind::Graviton,
                Target::InstanceType(arm.into()),
                kg,
                usd,
            );
        }

        // gp2 volumes on a healthy instance
        let host = self
            .p
            .resources
            .iter()
            .find(|r| r.account_id == account && r.class.as_deref() == Some("m7g.xlarge"))
            .map(|r| crate::rules::instance_id(&r.arn).to_owned());
        for gb in [200.0, 600.0] {
            let v = self.volume(account, region, "gp2", gb, host.as_deref());
            let usd = ebs_usd_per_gb_month(region, "gp2")
                .zip(ebs_usd_per_gb_month(region, "gp3"))
                .map(|(a, b)| (a - b) * gb);
            let arn = self.push(v);
            self.truth(
                &arn,
                Kind::StorageClass,
                Target::VolumeType("gp3".into()),
                0.0,
                usd,
            );
        }

        // a stopped instance holding two volumes
        let mut stopped = self.instance(
            account,
            region,
            "m7g.large",
            Architecture::Arm64,
            None,
            team,
        );
        stopped.lifecycle = Lifecycle::Stopped;
        stopped.state_since_unix_s = Some(as_of - 30 * 86_400);
        let id = crate::rules::instance_id(&stopped.arn).to_owned();
        let stopped_arn = self.push(stopped);
        let mut kg = 0.0;
        let mut usd = Some(0.0);
        for gb in [50.0, 300.0] {
            let v = self.volume(account, region, "gp3", gb, Some(&id));
            kg += self.storage_kg(region, gb, StorageMedium::Ssd, 2.0);
            usd = usd
                .zip(ebs_usd_per_gb_month(region, "gp3"))
                .map(|(u, p)| u + p * gb);
            self.push(v);
        }
        self.truth(&stopped_arn, Kind::Idle, Target::Delete, kg, usd);

        // an unattached volume
        let mut loose = self.volume(account, region, "gp3", 250.0, None);
        loose.state_since_unix_s = Some(as_of - 60 * 86_400);
        let kg = self.storage_kg(region, 250.0, StorageMedium::Ssd, 2.0);
        let usd = ebs_usd_per_gb_month(region, "gp3").map(|p| p * 250.0);
        let arn = self.push(loose);
        self.truth(&arn, Kind::Idle, Target::Delete, kg, usd);

        // an idle RDS instance (Graviton class, smallest size: only idle applies)
        let (arn, _) = self.arn(account, region, "rds", "db");
        let mut db = ResourceSnapshot::new(&arn, account, region, "rds", "db");
        db.class = Some("db.r7g.large".into());
        db.architecture = Some(Architecture::Arm64);
        let days = self.days();
        let mut u = series(&mut self.rng, as_of, days, &|_| Some(1.5));
        u.connections_max = Some(0.0);
        db.utilisation = Some(u);
        db.storage.push(StoragePart {
            class: "gp3".into(),
            gb: 100.0,
            medium: StorageMedium::Ssd,
            replication: 1.0,
        });
        let kg = (self
            .month(region, "db.r7g.large", HOURS_PER_MONTH, 1.5)
            .location_g
            / 1000.0)
            + self.storage_kg(region, 100.0, StorageMedium::Ssd, 1.0);
        let arn = self.push(db);
        self.truth(&arn, Kind::Idle, Target::Delete, kg, None);

        // provisioned concurrency nobody calls, and one that is called
        for (invocations, planted) in [(0.0, true), (50_000.0, false)] {
            let (arn, _) = self.arn(account, region, "lambda", "function");
            let mut f = ResourceSnapshot::new(&arn, account, region, "lambda", "function");
            f.memory_mib = Some(1024);
            f.architecture = Some(Architecture::X86_64);
            f.attributes
                .insert("provisioned_concurrency".into(), "4".into());
            let days = self.days();
            let mut u = series(&mut self.rng, as_of, days, &|_| Some(0.0));
            u.invocations_total = Some(invocations);
            f.utilisation = Some(u);
            let arn = self.push(f);
            if planted {
                let inv = self.p.inventory();
                let kg = function_month(&inv, region, 4.0, CpuArchitecture::X86, 0.0)
                    .expect("function")
                    .location_g
                    / 1000.0;
                let usd = crate::prices::lambda_provisioned_usd_per_month(region, 4.0);
                self.truth(
                    &arn,
                    Kind::Idle,
                    Target::RemoveProvisionedConcurrency,
                    kg,
                    usd,
                );
            }
        }

        // snapshots: one old, one recent
        for age_days in [500, 20] {
            let (arn, _) = self.arn(account, region, "ec2", "snapshot");
            let mut s = ResourceSnapshot::new(&arn, account, region, "ec2", "snapshot");
            s.storage.push(StoragePart {
                class: "snapshot".into(),
                gb: 120.0,
                medium: StorageMedium::Hdd,
                replication: 6.0,
            });
            s.attributes.insert(
                "created_unix_s".into(),
                (as_of - age_days * 86_400).to_string(),
            );
            let arn = self.push(s);
            if age_days > 365 {
                let kg = self.storage_kg(region, 120.0, StorageMedium::Hdd, 6.0);
                let usd = crate::prices::snapshot_usd_per_gb_month(region).map(|p| p * 120.0);
                self.truth(&arn, Kind::Idle, Target::Delete, kg, usd);
            }
        }

        // a cold bucket
        let days_since_last_access = self.rng.range(120.0, 400.0);
        let cold = self.bucket(account, region, 3000.0, 0.0, days_since_last_access);
        let usd = s3_usd_per_gb_month(region, "STANDARD")
            .zip(s3_usd_per_gb_month(region, "GLACIER_IR"))
            .map(|(a, b)| (a - b) * 3000.0);
        let arn = self.push(cold);
        self.truth(
            &arn,
            Kind::StorageClass,
            Target::Lifecycle {
                storage_class: "GLACIER_IR",
                after_days: 90,
            },
            0.0,
            usd,
        );

        // near-idle but not idle: p95 about 3 % of 2 vCPUs → the 1-vCPU size, memory measured
        {
            let base = self.rng.range(2.2, 2.8);
            let days = self.days();
            let mut u = series(&mut self.rng, as_of, days, &|_| Some(base));
            u.memory_p95_pct = Some(self.rng.range(20.0, 35.0));
            let mut i = self.instance(
                account,
                region,
                "m7g.large",
                Architecture::Arm64,
                Some(u),
                team,
            );
            // billed through the CUR: the cost saving is half the bill (1 of 2 vCPUs)
            let billed = self.rng.range(50.0, 70.0);
            i.billed_usd_per_month = Some(billed);
            let kg = (self
                .month(region, "m7g.large", HOURS_PER_MONTH, base)
                .location_g
                - self
                    .month(region, "m7g.medium", HOURS_PER_MONTH, base * 2.0)
                    .location_g)
                / 1000.0;
            let arn = self.push(i);
            self.truth(
                &arn,
                Kind::Rightsizing,
                Target::InstanceType("m7g.medium".into()),
                kg,
                Some(billed * 0.5),
            );
        }

        // x86 and heavily over-provisioned: rightsizing beats Graviton
        {
            let base = self.rng.range(4.0, 5.0);
            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &|_| Some(base));
            let i = self.instance(
                account,
                region,
                "m5.4xlarge",
                Architecture::X86_64,
                Some(u),
                team,
            );
            let kg = (self
                .month(region, "m5.4xlarge", HOURS_PER_MONTH, base)
                .location_g
                - self
                    .month(region, "m5.large", HOURS_PER_MONTH, base * 8.0)
                    .location_g)
                / 1000.0;
            let usd = ec2_usd_per_month(region, "m5.4xlarge")
                .zip(ec2_usd_per_month(region, "m5.large"))
                .map(|(a, b)| a - b);
            let arn = self.push(i);
            self.truth(
                &arn,
                Kind::Rightsizing,
                Target::InstanceType("m5.large".into()),
                kg,
                usd,
            );
        }

        // decoys that must not be flagged: a Windows x86 instance, a non-production
        // instance already stopped at night, a nightly batch where no hourly data exists,
        // a bucket with moderate access, a recently stopped instance with a volume
        {
            let mean = self.rng.range(45.0, 52.0);
            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &|_| Some(mean));
            let mut w = self.instance(
                account,
                region,
                "m5.xlarge",
                Architecture::X86_64,
                Some(u),
                team,
            );
            w.attributes.insert("platform".into(), "windows".into());
            self.push(w);

            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &|how| {
                (!is_off_hour(how)).then_some(60.0)
            });
            let mut dev = self.instance(
                account,
                region,
                "m7g.large",
                Architecture::Arm64,
                Some(u),
                team,
            );
            dev.tags.insert("env".into(), "test".into());
            self.push(dev);

            if region != HOURLY_REGION {
                let days = self.days();
                let u = series(&mut self.rng, as_of, days, &|how| {
                    Some(if how % 24 < 3 { 85.0 } else { 4.0 })
                });
                let b = self.instance(
                    account,
                    region,
                    "m7g.2xlarge",
                    Architecture::Arm64,
                    Some(u),
                    team,
                );
                self.push(b);
            }

            let warm = self.bucket(account, region, 2000.0, 20_000.0, 1.0);
            self.push(warm);

            let mut recent = self.instance(
                account,
                region,
                "m7g.large",
                Architecture::Arm64,
                None,
                team,
            );
            recent.lifecycle = Lifecycle::Stopped;
            recent.state_since_unix_s = Some(as_of - 2 * 86_400);
            let id = crate::rules::instance_id(&recent.arn).to_owned();
            self.push(recent);
            let v = self.volume(account, region, "gp3", 80.0, Some(&id));
            self.push(v);
        }

        // a non-production fleet running nights and weekends
        for _ in 0..3 {
            let (day, night) = (self.rng.range(55.0, 65.0), self.rng.range(2.0, 4.0));
            let level = move |how: usize| Some(if is_off_hour(how) { night } else { day });
            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &level);
            let mut i = self.instance(
                account,
                region,
                "m7g.large",
                Architecture::Arm64,
                Some(u),
                team,
            );
            i.tags.insert("env".into(), "dev".into());
            let off_hours = (0..168).filter(|h| is_off_hour(*h)).count() as f64;
            let kg = self
                .month(
                    region,
                    "m7g.large",
                    HOURS_PER_MONTH * off_hours / 168.0,
                    night,
                )
                .location_g
                / 1000.0;
            let usd = ec2_usd_per_month(region, "m7g.large").map(|m| m * off_hours / 168.0);
            let arn = self.push(i);
            self.truth(
                &arn,
                Kind::OffHoursSchedule,
                Target::Schedule {
                    on_hours_per_week: 60,
                    description: "Mon-Fri 07:00-19:00 UTC".into(),
                },
                kg,
                usd,
            );
        }
    }

    /// A batch account in [`HOURLY_REGION`]: nightly jobs in the dirtiest hours.
    fn batch(&mut self, account: &str) {
        let as_of = self.as_of;
        let region = HOURLY_REGION;
        for _ in 0..3 {
            let first = self.rng.below(4); // 00:00 - 03:00 UTC, the dirty hours
            let len = 3 + self.rng.below(3);
            let (peak, base) = (self.rng.range(80.0, 90.0), self.rng.range(3.0, 6.0));
            let level = move |how: usize| {
                Some(if (how % 24 + 24 - first) % 24 < len {
                    peak
                } else {
                    base
                })
            };
            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &level);
            let window = (u.window_start_unix_s, u.window_end_unix_s);
            let i = self.instance(
                account,
                region,
                "m7g.2xlarge",
                Architecture::Arm64,
                Some(u),
                "data",
            );
            // truth: the cleanest start for this block over the same window, from the source itself
            let mut mean = [0.0; 24];
            let n = (window.1 - window.0) / 86_400;
            for d in 0..n {
                for (h, m) in mean.iter_mut().enumerate() {
                    *m += SyntheticIntensity::g_per_kwh(window.0 + d * 86_400 + h as i64 * 3600)
                        / n as f64;
                }
            }
            let at = |s: usize| (0..len).map(|k| mean[(s + k) % 24]).sum::<f64>();
            let best = (0..24)
                .min_by(|a, b| at(*a).total_cmp(&at(*b)).then(a.cmp(b)))
                .expect("24 hours");
            let extra = self.month(region, "m7g.2xlarge", 1.0, peak).energy_kwh
                - self.month(region, "m7g.2xlarge", 1.0, base).energy_kwh;
            let kg = extra * (at(first) - at(best)) * HOURS_PER_MONTH / 24.0 / 1000.0;
            let arn = self.push(i);
            self.truth(
                &arn,
                Kind::TimeShift,
                Target::StartAtHour(best as u8),
                kg,
                Some(0.0),
            );
        }
    }

    /// An account with a placement policy and workloads in `region`; truth
    /// from the policy and the annual factors, independently of the rule.
    fn placed(&mut self, account: &str, region: &str, policy: PlacementPolicy) {
        let as_of = self.as_of;
        let best = REGIONS
            .iter()
            .filter(|r| r.code != region && allowed(&policy, region, r.code))
            .min_by(|a, b| {
                location_factor(a.code)
                    .g_co2e_per_kwh
                    .total_cmp(&location_factor(b.code).g_co2e_per_kwh)
            })
            .map(|r| r.code);
        self.p.policies.push(policy);
        for _ in 0..2 {
            let mean = self.rng.range(45.0, 52.0);
            let days = self.days();
            let u = series(&mut self.rng, as_of, days, &|_| Some(mean));
            let i = self.instance(
                account,
                region,
                "m7g.xlarge",
                Architecture::Arm64,
                Some(u),
                "platform",
            );
            let arn = self.push(i);
            if let Some(to) = best {
                let here = self.month(region, "m7g.xlarge", HOURS_PER_MONTH, mean);
                let there = self.month(to, "m7g.xlarge", HOURS_PER_MONTH, mean);
                let embodied =
                    canopy_emissions::model::embodied_g_co2e_per_instance_hour("m7g.xlarge")
                        .map_or(0.0, |(g, _)| g * HOURS_PER_MONTH);
                if here.location_g - there.location_g >= 0.5 * (here.location_g - embodied) {
                    self.truth(
                        &arn,
                        Kind::RegionMigration,
                        Target::Region(to.into()),
                        (here.location_g - there.location_g) / 1000.0,
                        None,
                    );
                }
            }
        }
    }
}

/// Generates an organisation: `accounts` ordinary accounts, a batch
/// account, and three accounts with placement policies (EU only, an allowed
/// list, US only).
pub fn generate(config: SimConfig) -> Planted {
    let mut market = MarketConfig::new();
    market
        .set_region(
            "eu-west-1",
            MarketRegion {
                renewable_share: 0.5,
                residual_mix_g_co2e_per_kwh: None,
            },
        )
        .expect("valid");
    market
        .set_region(
            "us-east-1",
            MarketRegion {
                renewable_share: 0.3,
                residual_mix_g_co2e_per_kwh: Some(450.0),
            },
        )
        .expect("valid");
    let mut g = Gen {
        rng: Rng::new(config.seed),
        as_of: unix_seconds(2026, 12, 7, 0, 0, 0),
        p: Planted {
            as_of_unix_s: unix_seconds(2026, 12, 7, 0, 0, 0),
            resources: Vec::new(),
            accounts: Vec::new(),
            policies: Vec::new(),
            non_production: NonProductionRule {
                tag_key: "env".into(),
                values: vec!["dev".into(), "test".into(), "staging".into()],
            },
            market,
            hourly: SyntheticIntensity::new(),
            truth: Vec::new(),
        },
        next_id: 0,
    };
    let regions = [
        "us-east-1",
        "us-west-2",
        "eu-west-1",
        "eu-central-1",
        "ap-southeast-1",
    ];
    for a in 0..config.accounts {
        let account = format!("{:012}", 100_000_000_000u64 + a as u64);
        let region = *g.rng.pick(&regions);
        g.p.accounts.push(Account {
            account_id: account.clone(),
            ou_path: "r-root/ou-root-apps0001".into(),
        });
        g.ordinary(&account, region, &format!("team-{}", a % 5));
    }
    let batch = "200000000001";
    g.p.accounts.push(Account {
        account_id: batch.into(),
        ou_path: "r-root/ou-root-data0001".into(),
    });
    g.batch(batch);
    let eu = "300000000001";
    g.p.accounts.push(Account {
        account_id: eu.into(),
        ou_path: "r-root/ou-root-eu000001".into(),
    });
    // declared on the OU: the account inherits it
    g.placed(
        eu,
        "eu-central-1",
        PlacementPolicy {
            scope: "ou-root-eu000001".into(),
            residency: Residency::EuOnly,
            allowed_regions: vec![],
            latency: LatencyClass::SameContinent,
        },
    );
    let listed = "300000000002";
    g.p.accounts.push(Account {
        account_id: listed.into(),
        ou_path: "r-root".into(),
    });
    g.placed(
        listed,
        "ap-south-1",
        PlacementPolicy {
            scope: listed.into(),
            residency: Residency::Anywhere,
            allowed_regions: vec!["ap-southeast-1".into(), "ca-central-1".into()],
            latency: LatencyClass::Any,
        },
    );
    let us = "300000000003";
    g.p.accounts.push(Account {
        account_id: us.into(),
        ou_path: "r-root".into(),
    });
    g.placed(
        us,
        "us-east-2",
        PlacementPolicy {
            scope: us.into(),
            residency: Residency::UsOnly,
            allowed_regions: vec![],
            latency: LatencyClass::Any,
        },
    );
    g.p
}

/// Planted truths per kind, for quick inspection.
pub fn count_by_kind(p: &Planted) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for t in &p.truth {
        *out.entry(t.kind.as_str()).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_covers_every_kind() {
        let a = generate(SimConfig {
            seed: 7,
            accounts: 3,
        });
        let b = generate(SimConfig {
            seed: 7,
            accounts: 3,
        });
        assert_eq!(a.resources, b.resources);
        assert_eq!(a.truth, b.truth);
        let kinds = count_by_kind(&a);
        for k in Kind::ALL {
            assert!(
                kinds.get(k.as_str()).copied().unwrap_or(0) > 0,
                "{k:?} not planted: {kinds:?}"
            );
        }
        // EU-only account: planted moves stay in the EU
        for t in a.truth.iter().filter(|t| t.kind == Kind::RegionMigration) {
            if t.arn.contains(":300000000001:") {
                assert_eq!(t.target, Target::Region("eu-north-1".into()));
            }
        }
        assert!(a.inventory().validate().is_ok());
    }
}
