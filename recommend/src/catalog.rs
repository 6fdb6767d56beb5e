//! Static knowledge the rules share: instance-size ladders, the x86 → Graviton
//! family map with its caveats, and where each AWS region is (jurisdiction and
//! continent) for placement constraints.
//!
//! **Sizes and specifications come from the emissions model's tables**
//! ([`instance_power`]): a size the model does not know is never proposed, so
//! every energy difference can be computed. This module must never invent a
//! vCPU or memory figure.

use canopy_emissions::model::{InstancePower, instance_power};

use crate::input::Residency;

/// Size suffixes in ascending order (`metal` is never proposed).
const SIZES: [&str; 19] = [
    "nano", "micro", "small", "medium", "large", "xlarge", "2xlarge", "3xlarge", "4xlarge",
    "6xlarge", "8xlarge", "9xlarge", "10xlarge", "12xlarge", "16xlarge", "18xlarge", "24xlarge",
    "32xlarge", "48xlarge",
];

/// An instance type split into service prefix (`db.` or none), family and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceType<'a> {
    /// `db.` for RDS classes, empty for EC2.
    pub prefix: &'a str,
    /// Family, e.g. `m5`.
    pub family: &'a str,
    /// Size, e.g. `2xlarge`.
    pub size: &'a str,
}

impl<'a> InstanceType<'a> {
    /// Parses `m5.large` or `db.r5.2xlarge`.
    pub fn parse(name: &'a str) -> Option<InstanceType<'a>> {
        let (prefix, rest) = match name.strip_prefix("db.") {
            Some(rest) => ("db.", rest),
            None => ("", name),
        };
        let (family, size) = rest.split_once('.')?;
        (!family.is_empty() && SIZES.contains(&size)).then_some(InstanceType {
            prefix,
            family,
            size,
        })
    }

    /// Full name with another family or size.
    pub fn with(&self, family: &str, size: &str) -> String {
        format!("{}{}.{}", self.prefix, family, size)
    }
}

/// A size of a family with the model's specification.
#[derive(Debug, Clone)]
pub struct Sized {
    /// Full type name (`db.r5.large`).
    pub name: String,
    /// vCPUs.
    pub vcpus: f64,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// The power model.
    pub power: InstancePower,
}

/// The sizes of `t`'s family the emissions model knows, smallest first.
/// RDS classes below `large` exist only for burstable (`t`) families.
pub fn family_sizes(t: &InstanceType<'_>) -> Vec<Sized> {
    let burstable = t.family.starts_with('t');
    SIZES
        .iter()
        .filter(|s| {
            t.prefix.is_empty()
                || burstable
                || SIZES.iter().position(|x| x == *s) >= SIZES.iter().position(|x| *x == "large")
        })
        .filter_map(|size| {
            let name = t.with(t.family, size);
            let power = instance_power(&name)?;
            (power.vcpus() > 0.0).then(|| Sized {
                vcpus: power.vcpus(),
                memory_gib: power.memory_gib(),
                name,
                power,
            })
        })
        .collect()
}

/// The arm64 family for an x86 family, if one exists (same role, current
/// Graviton generation).
pub fn graviton_family(family: &str) -> Option<&'static str> {
    Some(match family {
        "m4" | "m5" | "m5a" | "m5n" | "m5d" | "m6i" | "m6a" | "m7i" | "m7a" => "m7g",
        "c4" | "c5" | "c5a" | "c5n" | "c5d" | "c6i" | "c6a" | "c7i" | "c7a" => "c7g",
        "r4" | "r5" | "r5a" | "r5n" | "r5d" | "r6i" | "r6a" | "r7i" | "r7a" => "r7g",
        "t2" | "t3" | "t3a" => "t4g",
        _ => return None,
    })
}

/// Known compatibility caveats of moving to Graviton, EC2.
pub const GRAVITON_EC2_CAVEATS: &[&str] = &[
    "every binary, container image and AMI must be built for arm64 (multi-arch images or a rebuilt AMI)",
    "Windows is not offered on Graviton; x86-only agents, drivers and commercial software must be checked",
    "JIT runtimes are fine on current versions (Java 11+, Node 14+, Python 3.8+, .NET 6+); native extensions need arm64 wheels or builds",
    "performance per vCPU differs: load-test before switching a latency-critical service",
];

/// Known compatibility caveats of moving to Graviton, RDS.
pub const GRAVITON_RDS_CAVEATS: &[&str] = &[
    "the engine version must support Graviton classes (upgrade first if it does not)",
    "the class change restarts the instance (a Multi-AZ failover keeps the downtime short)",
    "performance per vCPU differs: check the workload's p95 latency after the change",
];

/// Where an AWS region is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionInfo {
    /// Region code.
    pub code: &'static str,
    /// In an EU member state.
    pub eu: bool,
    /// In the United States.
    pub us: bool,
    /// Continent, for the latency class.
    pub continent: Continent,
    /// False for partitions a workload cannot simply move into (GovCloud, China).
    pub migration_target: bool,
}

/// Continents for [`crate::input::LatencyClass::SameContinent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Continent {
    /// Europe.
    Europe,
    /// North America.
    NorthAmerica,
    /// South America.
    SouthAmerica,
    /// Asia and the Middle East.
    Asia,
    /// Oceania.
    Oceania,
    /// Africa.
    Africa,
}

const fn region(
    code: &'static str,
    eu: bool,
    us: bool,
    continent: Continent,
    migration_target: bool,
) -> RegionInfo {
    RegionInfo {
        code,
        eu,
        us,
        continent,
        migration_target,
    }
}

use Continent::*;

/// AWS regions with their jurisdiction. EU membership: Ireland, France,
/// Germany, Sweden, Italy, Spain; London (UK) and Zurich (Switzerland) are
/// in Europe but not in the EU.
pub const REGIONS: &[RegionInfo] = &[
    region("us-east-1", false, true, NorthAmerica, true),
    region("us-east-2", false, true, NorthAmerica, true),
    region("us-west-1", false, true, NorthAmerica, true),
    region("us-west-2", false, true, NorthAmerica, true),
    region("us-gov-east-1", false, true, NorthAmerica, false),
    region("us-gov-west-1", false, true, NorthAmerica, false),
    region("ca-central-1", false, false, NorthAmerica, true),
    region("ca-west-1", false, false, NorthAmerica, true),
    region("mx-central-1", false, false, NorthAmerica, true),
    region("sa-east-1", false, false, SouthAmerica, true),
    region("eu-west-1", true, false, Europe, true),
    region("eu-west-2", false, false, Europe, true),
    region("eu-west-3", true, false, Europe, true),
    region("eu-central-1", true, false, Europe, true),
    region("eu-central-2", false, false, Europe, true),
    region("eu-north-1", true, false, Europe, true),
    region("eu-south-1", true, false, Europe, true),
    region("eu-south-2", true, false, Europe, true),
    region("af-south-1", false, false, Africa, true),
    region("me-south-1", false, false, Asia, true),
    region("me-central-1", false, false, Asia, true),
    region("il-central-1", false, false, Asia, true),
    region("ap-east-1", false, false, Asia, true),
    region("ap-south-1", false, false, Asia, true),
    region("ap-south-2", false, false, Asia, true),
    region("ap-northeast-1", false, false, Asia, true),
    region("ap-northeast-2", false, false, Asia, true),
    region("ap-northeast-3", false, false, Asia, true),
    region("ap-southeast-1", false, false, Asia, true),
    region("ap-southeast-2", false, false, Oceania, true),
    region("ap-southeast-3", false, false, Asia, true),
    region("ap-southeast-4", false, false, Oceania, true),
    region("ap-southeast-5", false, false, Asia, true),
    region("cn-north-1", false, false, Asia, false),
    region("cn-northwest-1", false, false, Asia, false),
];

/// The region's entry, if listed.
pub fn region_info(code: &str) -> Option<&'static RegionInfo> {
    REGIONS.iter().find(|r| r.code == code)
}

/// True when `region` satisfies `residency`. Unlisted regions satisfy only
/// [`Residency::Anywhere`].
pub fn residency_allows(residency: Residency, region: &str) -> bool {
    match (residency, region_info(region)) {
        (Residency::Anywhere, _) => true,
        (Residency::EuOnly, Some(r)) => r.eu,
        (Residency::UsOnly, Some(r)) => r.us,
        (_, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ec2_and_rds_types() {
        let t = InstanceType::parse("db.r5.2xlarge").unwrap();
        assert_eq!((t.prefix, t.family, t.size), ("db.", "r5", "2xlarge"));
        assert_eq!(t.with("r7g", "large"), "db.r7g.large");
        assert!(InstanceType::parse("m5.metal").is_none());
        assert!(InstanceType::parse("gp2").is_none());
    }

    #[test]
    fn ladders_come_from_the_model() {
        let m5 = family_sizes(&InstanceType::parse("m5.4xlarge").unwrap());
        let names: Vec<&str> = m5.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            &names[..4],
            &["m5.large", "m5.xlarge", "m5.2xlarge", "m5.4xlarge"]
        );
        assert_eq!(m5[0].vcpus, 2.0);
        assert_eq!(m5[0].memory_gib, 8.0);
        // every Graviton target family has sizes in the model
        for f in ["m7g", "c7g", "r7g", "t4g"] {
            let t = InstanceType {
                prefix: "",
                family: f,
                size: "large",
            };
            assert!(family_sizes(&t).len() >= 3, "{f}");
        }
        let rds = family_sizes(&InstanceType::parse("db.r5.large").unwrap());
        assert_eq!(rds[0].name, "db.r5.large");
    }

    #[test]
    fn eu_residency_excludes_london_and_zurich() {
        assert!(residency_allows(Residency::EuOnly, "eu-north-1"));
        assert!(residency_allows(Residency::EuOnly, "eu-west-1"));
        assert!(!residency_allows(Residency::EuOnly, "eu-west-2"));
        assert!(!residency_allows(Residency::EuOnly, "eu-central-2"));
        assert!(!residency_allows(Residency::EuOnly, "us-east-1"));
        assert!(residency_allows(Residency::UsOnly, "us-west-2"));
        assert!(!residency_allows(Residency::UsOnly, "ca-central-1"));
        assert!(!residency_allows(Residency::EuOnly, "xx-nowhere-1"));
    }
}
