//! What the engine decides from: one inventory snapshot with per-resource
//! utilisation summaries, the placement constraints declared per account or
//! OU, the non-production tag rule, and the factor data (market
//! configuration, optional hourly intensity).
//!
//! The types mirror what the agent reports per resource (protocol
//! `ResourceRecord`: service, resource type, class, vCPUs, memory,
//! architecture, lifecycle, storage parts, tags, attributes) plus what the
//! aggregator derives (team, utilisation percentiles over a window, CUR cost).
//! They are plain values, not serialisable: the aggregator converts at the
//! edge. **This module owns validation of the input and must never guess a
//! missing value**: absent data stays `None` and the rules that need it do
//! not fire.

use std::collections::BTreeMap;

use canopy_emissions::grid::{CarbonIntensitySource, MarketConfig};
use canopy_emissions::model::StorageMedium;

/// Lifecycle state of a resource when the snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Being created or starting.
    Pending,
    /// Running / available / in use.
    Running,
    /// Stopping.
    Stopping,
    /// Stopped (still exists, may still hold storage).
    Stopped,
    /// Terminated or deleted.
    Terminated,
    /// Not reported.
    Unknown,
}

/// CPU architecture of a compute resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// x86-64 (Intel or AMD).
    X86_64,
    /// 64-bit Arm (Graviton).
    Arm64,
    /// Anything else.
    Other,
}

/// One storage part of a resource (an S3 storage class, an EBS volume's
/// type), as the agent reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoragePart {
    /// Storage class or volume type (`STANDARD`, `gp2`).
    pub class: String,
    /// Stored or provisioned GB (decimal).
    pub gb: f64,
    /// SSD or HDD.
    pub medium: StorageMedium,
    /// Copies the service keeps (CCF replication factors).
    pub replication: f64,
}

/// Access pattern of an S3 bucket, from request metrics where the bucket
/// has them enabled.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StorageAccess {
    /// GET requests per month over the window.
    pub get_requests_per_month: Option<f64>,
    /// Days since the last GET (from request metrics or access logs).
    pub days_since_last_access: Option<f64>,
}

/// Hours in a week; index 0 of an hour-of-week profile is Monday 00:00 UTC.
pub const HOURS_PER_WEEK: usize = 168;

/// Utilisation of one resource over a window, summarised by the aggregator
/// from the agent's samples (CloudWatch) — see [`Utilisation::from_hourly`].
#[derive(Debug, Clone, PartialEq)]
pub struct Utilisation {
    /// Window start, Unix seconds (UTC).
    pub window_start_unix_s: i64,
    /// Window end, Unix seconds (UTC, exclusive).
    pub window_end_unix_s: i64,
    /// Hours with a sample in the window (running hours for instances).
    pub sampled_hours: u32,
    /// Mean CPU over the sampled hours, percent.
    pub cpu_mean_pct: f64,
    /// 95th percentile of hourly CPU, percent.
    pub cpu_p95_pct: f64,
    /// Highest hourly CPU, percent.
    pub cpu_max_pct: f64,
    /// 95th percentile of memory used, percent (CloudWatch agent), if measured.
    pub memory_p95_pct: Option<f64>,
    /// Highest number of database connections in the window (RDS).
    pub connections_max: Option<f64>,
    /// Invocations in the window (Lambda).
    pub invocations_total: Option<f64>,
    /// Mean CPU per hour of the week (168 values, Monday 00 UTC first); `None`
    /// for an hour without any sample (the resource was not running).
    pub hour_of_week_cpu_pct: Option<Vec<Option<f64>>>,
}

impl Utilisation {
    /// Length of the window in days.
    pub fn window_days(&self) -> f64 {
        (self.window_end_unix_s - self.window_start_unix_s) as f64 / 86_400.0
    }

    /// Summarises hourly CPU samples starting at `start_unix_s` (an hour
    /// start; `None` = no sample, e.g. stopped): mean, p95 (nearest rank),
    /// max and the hour-of-week profile.
    pub fn from_hourly(
        start_unix_s: i64,
        cpu_pct: &[Option<f64>],
    ) -> Result<Utilisation, InputError> {
        if start_unix_s % 3600 != 0 {
            return Err(InputError::Invalid {
                field: "utilisation.window_start",
                expected: "an hour start",
                found: start_unix_s.to_string(),
            });
        }
        let mut values: Vec<f64> = Vec::with_capacity(cpu_pct.len());
        let mut sums = vec![(0.0_f64, 0_u32); HOURS_PER_WEEK];
        for (i, v) in cpu_pct.iter().enumerate() {
            let Some(v) = *v else { continue };
            if !(0.0..=100.0).contains(&v) {
                return Err(InputError::Invalid {
                    field: "utilisation.cpu_pct",
                    expected: "a percentage 0..=100",
                    found: v.to_string(),
                });
            }
            values.push(v);
            let how = hour_of_week(start_unix_s + i as i64 * 3600);
            sums[how].0 += v;
            sums[how].1 += 1;
        }
        if values.is_empty() {
            return Err(InputError::Invalid {
                field: "utilisation.cpu_pct",
                expected: "at least one sample",
                found: "none".into(),
            });
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let max = values.iter().copied().fold(0.0, f64::max);
        Ok(Utilisation {
            window_start_unix_s: start_unix_s,
            window_end_unix_s: start_unix_s + cpu_pct.len() as i64 * 3600,
            sampled_hours: values.len() as u32,
            cpu_mean_pct: mean,
            cpu_p95_pct: percentile(&mut values, 95.0),
            cpu_max_pct: max,
            memory_p95_pct: None,
            connections_max: None,
            invocations_total: None,
            hour_of_week_cpu_pct: Some(
                sums.iter()
                    .map(|(s, n)| (*n > 0).then(|| s / *n as f64))
                    .collect(),
            ),
        })
    }
}

/// Hour of the week (0 = Monday 00 UTC) of a Unix timestamp. 1970-01-01
/// was a Thursday, hour 72 of its week.
pub fn hour_of_week(unix_s: i64) -> usize {
    ((unix_s.div_euclid(3600) + 72).rem_euclid(HOURS_PER_WEEK as i64)) as usize
}

/// Nearest-rank percentile of `values` (sorted in place); 0 when empty.
pub fn percentile(values: &mut [f64], pct: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((pct / 100.0) * values.len() as f64).ceil().max(1.0) as usize;
    values[rank.min(values.len()) - 1]
}

/// One resource of the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSnapshot {
    /// ARN (the identity of the recommendation).
    pub arn: String,
    /// 12-digit account id.
    pub account_id: String,
    /// AWS region code.
    pub region: String,
    /// Service code as the agent reports it (`ec2`, `rds`, `lambda`, `s3`).
    pub service: String,
    /// Resource type within the service (`instance`, `volume`, `snapshot`,
    /// `db`, `function`, `bucket`).
    pub resource_type: String,
    /// Instance type, volume type or storage class (`m5.large`, `db.r5.large`, `gp2`).
    pub class: Option<String>,
    /// vCPUs, where reported.
    pub vcpus: Option<f64>,
    /// Memory, MiB, where reported.
    pub memory_mib: Option<u64>,
    /// CPU architecture, where reported.
    pub architecture: Option<Architecture>,
    /// Lifecycle state.
    pub lifecycle: Lifecycle,
    /// When the resource entered its current lifecycle state, if known.
    pub state_since_unix_s: Option<i64>,
    /// Storage parts (EBS volume size and type, S3 bytes per class, snapshot size).
    pub storage: Vec<StoragePart>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// Team the aggregator attributed the resource to.
    pub team: Option<String>,
    /// Service-specific attributes (`attached_to`, `engine`, `platform`,
    /// `provisioned_concurrency`, `created_unix_s` …).
    pub attributes: BTreeMap<String, String>,
    /// Utilisation summary, if the agent measured any.
    pub utilisation: Option<Utilisation>,
    /// S3 access pattern, if known.
    pub access: Option<StorageAccess>,
    /// Billed cost per month from the CUR, USD, when billing data is present.
    pub billed_usd_per_month: Option<f64>,
}

impl ResourceSnapshot {
    /// A resource with the given identity and everything else empty.
    pub fn new(
        arn: &str,
        account_id: &str,
        region: &str,
        service: &str,
        resource_type: &str,
    ) -> ResourceSnapshot {
        ResourceSnapshot {
            arn: arn.to_owned(),
            account_id: account_id.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            resource_type: resource_type.to_owned(),
            class: None,
            vcpus: None,
            memory_mib: None,
            architecture: None,
            lifecycle: Lifecycle::Running,
            state_since_unix_s: None,
            storage: Vec::new(),
            tags: BTreeMap::new(),
            team: None,
            attributes: BTreeMap::new(),
            utilisation: None,
            access: None,
            billed_usd_per_month: None,
        }
    }

    /// What kind of resource this is, for the rules.
    pub fn kind(&self) -> ResourceKind {
        match (self.service.as_str(), self.resource_type.as_str()) {
            ("ec2", "instance") => ResourceKind::Ec2Instance,
            ("ec2", "volume") => ResourceKind::EbsVolume,
            ("ec2", "snapshot") => ResourceKind::EbsSnapshot,
            ("rds", "db") => ResourceKind::RdsInstance,
            ("lambda", "function") => ResourceKind::LambdaFunction,
            ("s3", "bucket") => ResourceKind::S3Bucket,
            _ => ResourceKind::Other,
        }
    }

    /// Total storage in GB over all parts.
    pub fn storage_gb(&self) -> f64 {
        self.storage.iter().map(|p| p.gb).sum()
    }

    /// An attribute parsed as a number.
    pub fn attribute_f64(&self, name: &str) -> Option<f64> {
        self.attributes
            .get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    }
}

/// Resource kinds the rules know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// EC2 instance.
    Ec2Instance,
    /// EBS volume.
    EbsVolume,
    /// EBS snapshot.
    EbsSnapshot,
    /// RDS DB instance.
    RdsInstance,
    /// Lambda function.
    LambdaFunction,
    /// S3 bucket.
    S3Bucket,
    /// Anything else (no rule applies).
    Other,
}

/// Data-residency constraint of an account or OU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Residency {
    /// No residency constraint (the allowed-region list may still restrict).
    Anywhere,
    /// Only regions in EU member states (not London, not Zurich).
    EuOnly,
    /// Only regions in the United States (commercial and GovCloud).
    UsOnly,
}

/// How far a workload may move from where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyClass {
    /// Interactive: same continent only.
    SameContinent,
    /// Batch / asynchronous: any region the other constraints allow.
    Any,
}

/// Placement constraints declared for an account or an OU (and everything
/// below it). A workload is only ever proposed a region that satisfies all
/// of them; accounts without a declaration get no region-migration advice.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementPolicy {
    /// The account id (`123456789012`) or OU id (`ou-ab12-prod0001`) it applies to.
    pub scope: String,
    /// Data residency.
    pub residency: Residency,
    /// Explicit allowed regions; empty = every region the residency allows.
    pub allowed_regions: Vec<String>,
    /// Latency class.
    pub latency: LatencyClass,
}

/// An account with its OU path (ids from the root, `/`-separated).
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// 12-digit account id.
    pub account_id: String,
    /// e.g. `r-ab12/ou-ab12-prod0001/ou-ab12-web00001`; empty when unknown.
    pub ou_path: String,
}

/// Which tag marks a resource as non-production.
#[derive(Debug, Clone, PartialEq)]
pub struct NonProductionRule {
    /// Tag key, e.g. `env`.
    pub tag_key: String,
    /// Values (compared case-insensitively) that mean non-production, e.g. `dev`, `test`, `staging`.
    pub values: Vec<String>,
}

impl NonProductionRule {
    /// True when the resource carries the tag with a non-production value.
    pub fn matches(&self, r: &ResourceSnapshot) -> bool {
        r.tags
            .get(&self.tag_key)
            .is_some_and(|v| self.values.iter().any(|n| n.eq_ignore_ascii_case(v.trim())))
    }
}

/// Everything the engine reads.
#[derive(Clone)]
pub struct Inventory<'a> {
    /// When the snapshot was taken, Unix seconds (UTC).
    pub as_of_unix_s: i64,
    /// The resources.
    pub resources: Vec<ResourceSnapshot>,
    /// Accounts with their OU paths (for OU-scoped policies).
    pub accounts: Vec<Account>,
    /// Placement policies per account or OU; the most specific wins
    /// (account, then the deepest OU on the path).
    pub policies: Vec<PlacementPolicy>,
    /// Non-production tag rule; `None` = no scheduling of non-production.
    pub non_production: Option<NonProductionRule>,
    /// Market-based configuration (the market factor set).
    pub market: &'a MarketConfig,
    /// Hourly intensity (the location-hourly factor set), when imported.
    pub hourly: Option<&'a dyn CarbonIntensitySource>,
}

/// Bad input: names the field, what was expected and what was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A field has an unusable value.
    #[error("{field}: expected {expected}, found {found}")]
    Invalid {
        /// Field path, e.g. `resources[3].region`.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// A field of a given resource has an unusable value.
    #[error("resource {arn}: {field}: expected {expected}, found {found}")]
    Resource {
        /// The resource's ARN.
        arn: String,
        /// Field name.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
}

/// True for a well-formed AWS region code (`eu-west-1`, `us-gov-west-1`):
/// lower-case words joined by `-`, ending in a number. A region the
/// emissions tables do not know yet is still accepted (its footprint uses
/// the model's fallback factor and it is never proposed as a target).
pub fn is_region_code(code: &str) -> bool {
    let parts: Vec<&str> = code.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok_and(|n| n > 0)
}

fn pct_ok(v: f64) -> bool {
    v.is_finite() && (0.0..=100.0).contains(&v)
}

impl Inventory<'_> {
    /// Checks every value the rules rely on; the first problem is returned.
    pub fn validate(&self) -> Result<(), InputError> {
        let bad = |arn: &str, field: &'static str, expected: &'static str, found: String| {
            InputError::Resource {
                arn: arn.to_owned(),
                field,
                expected,
                found,
            }
        };
        let mut seen = std::collections::HashSet::new();
        for r in &self.resources {
            if r.arn.trim().is_empty() {
                return Err(InputError::Invalid {
                    field: "resources.arn",
                    expected: "a non-empty ARN",
                    found: "\"\"".into(),
                });
            }
            if !seen.insert(r.arn.as_str()) {
                return Err(bad(&r.arn, "arn", "each ARN once", "a duplicate".into()));
            }
            if r.account_id.len() != 12 || !r.account_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(
                    &r.arn,
                    "account_id",
                    "12 digits",
                    format!("{:?}", r.account_id),
                ));
            }
            if !is_region_code(&r.region) {
                return Err(bad(
                    &r.arn,
                    "region",
                    "an AWS region code",
                    format!("{:?}", r.region),
                ));
            }
            if let Some(v) = r.vcpus
                && !(v.is_finite() && v > 0.0)
            {
                return Err(bad(&r.arn, "vcpus", "a positive number", v.to_string()));
            }
            for p in &r.storage {
                if !(p.gb.is_finite() && p.gb >= 0.0) {
                    return Err(bad(
                        &r.arn,
                        "storage.gb",
                        "a non-negative size",
                        p.gb.to_string(),
                    ));
                }
                if !(p.replication.is_finite() && p.replication >= 1.0) {
                    return Err(bad(
                        &r.arn,
                        "storage.replication",
                        "at least 1",
                        p.replication.to_string(),
                    ));
                }
            }
            if let Some(c) = r.billed_usd_per_month
                && !(c.is_finite() && c >= 0.0)
            {
                return Err(bad(
                    &r.arn,
                    "billed_usd_per_month",
                    "a non-negative amount",
                    c.to_string(),
                ));
            }
            if let Some(u) = &r.utilisation {
                if u.window_end_unix_s <= u.window_start_unix_s {
                    return Err(bad(
                        &r.arn,
                        "utilisation.window",
                        "an end after the start",
                        format!("{}..{}", u.window_start_unix_s, u.window_end_unix_s),
                    ));
                }
                for (field, v) in [
                    ("utilisation.cpu_mean_pct", u.cpu_mean_pct),
                    ("utilisation.cpu_p95_pct", u.cpu_p95_pct),
                    ("utilisation.cpu_max_pct", u.cpu_max_pct),
                ] {
                    if !pct_ok(v) {
                        return Err(bad(&r.arn, field, "a percentage 0..=100", v.to_string()));
                    }
                }
                if let Some(m) = u.memory_p95_pct
                    && !pct_ok(m)
                {
                    return Err(bad(
                        &r.arn,
                        "utilisation.memory_p95_pct",
                        "a percentage 0..=100",
                        m.to_string(),
                    ));
                }
                if let Some(p) = &u.hour_of_week_cpu_pct
                    && p.len() != HOURS_PER_WEEK
                {
                    return Err(bad(
                        &r.arn,
                        "utilisation.hour_of_week_cpu_pct",
                        "168 values",
                        p.len().to_string(),
                    ));
                }
            }
        }
        for p in &self.policies {
            if p.scope.trim().is_empty() {
                return Err(InputError::Invalid {
                    field: "policies.scope",
                    expected: "an account or OU id",
                    found: "\"\"".into(),
                });
            }
            if let Some(r) = p.allowed_regions.iter().find(|r| !is_region_code(r)) {
                return Err(InputError::Invalid {
                    field: "policies.allowed_regions",
                    expected: "AWS region codes",
                    found: format!("{r:?}"),
                });
            }
        }
        Ok(())
    }

    /// The placement policy that applies to `account_id`: its own, else the
    /// deepest OU on its path that has one; `None` when nothing is declared.
    pub fn policy_for(&self, account_id: &str) -> Option<&PlacementPolicy> {
        if let Some(p) = self.policies.iter().find(|p| p.scope == account_id) {
            return Some(p);
        }
        let path = &self
            .accounts
            .iter()
            .find(|a| a.account_id == account_id)?
            .ou_path;
        path.split('/').rev().find_map(|ou| {
            self.policies
                .iter()
                .find(|p| !ou.is_empty() && p.scope == ou)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_of_week_starts_monday() {
        // 2026-12-07 is a Monday.
        let monday = canopy_emissions::time::unix_seconds(2026, 12, 7, 0, 0, 0);
        assert_eq!(hour_of_week(monday), 0);
        assert_eq!(hour_of_week(monday + 3600 * 30), 30);
        assert_eq!(hour_of_week(monday - 3600), 167);
    }

    #[test]
    fn summary_from_hourly_samples() {
        let start = canopy_emissions::time::unix_seconds(2026, 12, 7, 0, 0, 0);
        // 100 samples 1..=100 and one hour not running
        let mut cpu: Vec<Option<f64>> = (1..=100).map(|v| Some(v as f64)).collect();
        cpu.push(None);
        let u = Utilisation::from_hourly(start, &cpu).unwrap();
        assert_eq!(u.sampled_hours, 100);
        assert_eq!(u.cpu_p95_pct, 95.0);
        assert_eq!(u.cpu_max_pct, 100.0);
        assert!((u.cpu_mean_pct - 50.5).abs() < 1e-9);
        let profile = u.hour_of_week_cpu_pct.unwrap();
        assert_eq!(profile[0], Some(1.0));
        assert_eq!(profile[100], None);
        let err = Utilisation::from_hourly(start, &[Some(120.0)]).unwrap_err();
        assert!(err.to_string().contains("utilisation.cpu_pct"), "{err}");
    }

    #[test]
    fn region_codes() {
        for ok in [
            "eu-west-1",
            "us-gov-west-1",
            "ap-southeast-5",
            "mx-central-1",
        ] {
            assert!(is_region_code(ok), "{ok}");
        }
        for bad in [
            "",
            "mars-1",
            "EU-west-1",
            "eu-west-0",
            "eu-west-x",
            "eu--1",
            "eu-west-1 ",
        ] {
            assert!(!is_region_code(bad), "{bad}");
        }
    }

    #[test]
    fn policy_resolution_prefers_account_then_deepest_ou() {
        let market = MarketConfig::new();
        let policy = |scope: &str, residency| PlacementPolicy {
            scope: scope.into(),
            residency,
            allowed_regions: vec![],
            latency: LatencyClass::Any,
        };
        let inv = Inventory {
            as_of_unix_s: 0,
            resources: vec![],
            accounts: vec![
                Account {
                    account_id: "111111111111".into(),
                    ou_path: "r-1/ou-a/ou-b".into(),
                },
                Account {
                    account_id: "222222222222".into(),
                    ou_path: "r-1/ou-a".into(),
                },
                Account {
                    account_id: "333333333333".into(),
                    ou_path: "r-1".into(),
                },
            ],
            policies: vec![
                policy("ou-a", Residency::Anywhere),
                policy("ou-b", Residency::EuOnly),
                policy("333333333333", Residency::UsOnly),
            ],
            non_production: None,
            market: &market,
            hourly: None,
        };
        assert_eq!(
            inv.policy_for("111111111111").unwrap().residency,
            Residency::EuOnly
        );
        assert_eq!(
            inv.policy_for("222222222222").unwrap().residency,
            Residency::Anywhere
        );
        assert_eq!(
            inv.policy_for("333333333333").unwrap().residency,
            Residency::UsOnly
        );
        assert!(inv.policy_for("444444444444").is_none());
    }

    #[test]
    fn validation_names_the_field() {
        let market = MarketConfig::new();
        let mut r = ResourceSnapshot::new("arn:x", "123456789012", "mars-1", "ec2", "instance");
        let mut inv = Inventory {
            as_of_unix_s: 0,
            resources: vec![r.clone()],
            accounts: vec![],
            policies: vec![],
            non_production: None,
            market: &market,
            hourly: None,
        };
        assert!(inv.validate().unwrap_err().to_string().contains("region"));
        r.region = "eu-west-1".into();
        r.vcpus = Some(-1.0);
        inv.resources = vec![r.clone()];
        assert!(inv.validate().unwrap_err().to_string().contains("vcpus"));
        r.vcpus = Some(2.0);
        inv.resources = vec![r.clone(), r];
        assert!(
            inv.validate()
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
    }
}
