//! Rightsizing: an EC2 instance or RDS class whose p95 CPU (and p95 memory,
//! where measured) over at least [`MIN_WINDOW_DAYS`] fits a smaller size of
//! the same family with headroom: the smallest size whose vCPUs keep the p95
//! at or under [`CPU_P95_TARGET_PCT`] and whose memory keeps the p95 at or
//! under [`MEMORY_P95_TARGET_PCT`]. The saving is the model's footprint of
//! the current size minus that of the target, the target running the same
//! work (mean CPU scaled by the vCPU ratio). **Never proposes a size the
//! emissions model does not know, nor any size without 14 days of data.**

use super::{
    MIN_WINDOW_DAYS, cost, evidence, instance_copies, long_enough, recommendation, running_fraction,
};
use crate::catalog::{InstanceType, family_sizes};
use crate::input::{Inventory, Lifecycle, ResourceKind, ResourceSnapshot};
use crate::prices::{HOURS_PER_MONTH, ec2_usd_per_month};
use crate::recommendation::{
    Confidence, Effort, Kind, Recommendation, Risk, Target, instance_month,
};

/// Highest p95 CPU the target may run at, percent of its vCPUs.
pub const CPU_P95_TARGET_PCT: f64 = 70.0;
/// Highest p95 memory the target may run at, percent of its memory.
pub const MEMORY_P95_TARGET_PCT: f64 = 80.0;

/// The rightsizing recommendation for `r`, if the rule fires.
pub fn rightsizing(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if !matches!(
        r.kind(),
        ResourceKind::Ec2Instance | ResourceKind::RdsInstance
    ) || r.lifecycle != Lifecycle::Running
    {
        return None;
    }
    let u = long_enough(r)?;
    let class = r.class.as_deref()?;
    let t = InstanceType::parse(class)?;
    let sizes = family_sizes(&t);
    let current = sizes.iter().find(|s| s.name == class)?;
    let need_vcpus = current.vcpus * u.cpu_p95_pct / CPU_P95_TARGET_PCT;
    let need_gib = u
        .memory_p95_pct
        .map(|m| current.memory_gib * m / MEMORY_P95_TARGET_PCT);
    let target = sizes
        .iter()
        .find(|s| s.vcpus >= need_vcpus && need_gib.is_none_or(|g| s.memory_gib >= g))?;
    if target.vcpus >= current.vcpus {
        return None;
    }
    let hours = HOURS_PER_MONTH * running_fraction(u);
    let after_cpu = (u.cpu_mean_pct * current.vcpus / target.vcpus).min(100.0);
    let copies = instance_copies(r);
    let before =
        instance_month(inv, &r.region, class, None, hours, Some(u.cpu_mean_pct))?.scale(copies);
    let after =
        instance_month(inv, &r.region, &target.name, None, hours, Some(after_cpu))?.scale(copies);
    let carbon = before.saving_to(&after);
    let fraction = running_fraction(u);
    let list = match (
        ec2_usd_per_month(&r.region, class),
        ec2_usd_per_month(&r.region, &target.name),
    ) {
        (Some(a), Some(b)) if t.prefix.is_empty() => Some((a - b) * fraction),
        _ => None,
    };
    // On-Demand prices within a family are proportional to vCPUs, so the
    // billed cost scales with the vCPU ratio.
    let cost = cost(
        r,
        Some(1.0 - target.vcpus / current.vcpus),
        list,
        "no billed cost and no listed price for this type and region",
    );
    let mut ev = evidence(
        format!(
            "rightsizing: p95 cpu {:.1} % of {} vcpus needs {:.1} vcpus at <= {CPU_P95_TARGET_PCT} %{}",
            u.cpu_p95_pct,
            current.vcpus,
            need_vcpus,
            need_gib.map_or(String::new(), |g| format!(
                ", p95 memory needs {g:.1} GiB at <= {MEMORY_P95_TARGET_PCT} %"
            ))
        ),
        Some(u),
    );
    ev.figures
        .push(("target_vcpus".into(), format!("{}", target.vcpus)));
    ev.figures
        .push(("target_memory_gib".into(), format!("{}", target.memory_gib)));
    ev.figures
        .push(("target_mean_cpu_pct".into(), format!("{after_cpu:.1}")));
    let mut caveats = Vec::new();
    if u.memory_p95_pct.is_none() {
        caveats.push(format!(
            "memory is not measured (no CloudWatch agent): check that {} GiB is enough before resizing",
            target.memory_gib
        ));
    }
    if t.family.starts_with('t') {
        caveats.push("burstable family: check the CPU credit balance at the smaller size".into());
    }
    let confidence = if u.memory_p95_pct.is_some() && u.window_days() >= MIN_WINDOW_DAYS {
        Confidence::High
    } else {
        Confidence::Medium
    };
    Some(recommendation(
        r,
        Kind::Rightsizing,
        format!("resize {class} to {}", target.name),
        Target::InstanceType(target.name.clone()),
        carbon,
        cost,
        confidence,
        ev,
        Risk::Medium,
        Effort::Low,
        caveats,
    ))
}

#[cfg(test)]
mod tests {
    use canopy_emissions::grid::MarketConfig;

    use super::*;
    use crate::input::Architecture;
    use crate::recommendation::CostSaving;
    use crate::rules::testkit::{ec2, flat, inventory};

    fn check(
        class: &str,
        days: i64,
        mean: f64,
        p95: f64,
        mem: Option<f64>,
        expected: Option<&str>,
    ) {
        let market = MarketConfig::new();
        let mut u = flat(days, mean, p95);
        u.memory_p95_pct = mem;
        let r = ec2("i-1", "us-east-1", class, Architecture::X86_64, Some(u));
        let inv = inventory(&market, vec![r.clone()]);
        let got = rightsizing(&inv, &r);
        assert_eq!(
            got.as_ref().map(|g| g.target.clone()),
            expected.map(|e| Target::InstanceType(e.into())),
            "{class} p95 {p95} mem {mem:?}"
        );
        if let Some(g) = got {
            assert!(g.carbon.location_kg_co2e > 0.0);
            assert!(
                g.carbon.location_low_kg_co2e <= g.carbon.location_kg_co2e
                    && g.carbon.location_kg_co2e <= g.carbon.location_high_kg_co2e
            );
        }
    }

    #[test]
    fn picks_the_smallest_size_with_headroom() {
        // 8 vcpus at p95 15 % = 1.2 vcpus busy → needs 1.71 vcpus at 70 % → m5.large (2)
        check("m5.2xlarge", 14, 8.0, 15.0, None, Some("m5.large"));
        // p95 30 % of 8 = 2.4 busy → 3.43 needed → m5.xlarge (4)
        check("m5.2xlarge", 30, 15.0, 30.0, None, Some("m5.xlarge"));
        // memory p95 90 % of 32 GiB → 36 GiB needed → nothing smaller fits
        check("m5.2xlarge", 30, 8.0, 15.0, Some(90.0), None);
        // memory p95 40 % of 32 → 16 GiB → m5.xlarge despite the cpu fitting m5.large
        check("m5.2xlarge", 30, 8.0, 15.0, Some(40.0), Some("m5.xlarge"));
        // busy: stays
        check("m5.2xlarge", 30, 50.0, 80.0, None, None);
        // 13 days is not enough
        check("m5.2xlarge", 13, 8.0, 15.0, None, None);
        // already the smallest
        check("m5.large", 30, 2.0, 5.0, None, None);
    }

    #[test]
    fn saving_and_cost_of_a_known_case() {
        let market = MarketConfig::new();
        let r = ec2(
            "i-1",
            "us-east-1",
            "m5.2xlarge",
            Architecture::X86_64,
            Some(flat(30, 8.0, 15.0)),
        );
        let inv = inventory(&market, vec![r.clone()]);
        let rec = rightsizing(&inv, &r).unwrap();
        let before =
            instance_month(&inv, "us-east-1", "m5.2xlarge", None, 730.0, Some(8.0)).unwrap();
        let after = instance_month(&inv, "us-east-1", "m5.large", None, 730.0, Some(32.0)).unwrap();
        let expected_kg = (before.location_g - after.location_g) / 1000.0;
        assert!((rec.carbon.location_kg_co2e - expected_kg).abs() < 1e-9);
        // m5.2xlarge $0.384/h − m5.large $0.096/h = $0.288 × 730 h
        match rec.cost {
            CostSaving::Known { usd_per_month, .. } => {
                assert!((usd_per_month - 210.24).abs() < 1e-6)
            }
            other => panic!("{other:?}"),
        }
        // with billing data the billed cost wins: 3/4 of $300
        let mut billed = r.clone();
        billed.billed_usd_per_month = Some(300.0);
        let rec = rightsizing(&inventory(&market, vec![billed.clone()]), &billed).unwrap();
        assert_eq!(rec.cost.usd_or_zero(), 225.0);
        // RDS class in another region: rule fires, cost unknown
        let mut rds = r;
        rds.service = "rds".into();
        rds.resource_type = "db".into();
        rds.region = "eu-west-1".into();
        rds.class = Some("db.r5.2xlarge".into());
        let rec = rightsizing(&inventory(&market, vec![rds.clone()]), &rds).unwrap();
        assert_eq!(rec.target, Target::InstanceType("db.r5.large".into()));
        assert!(matches!(rec.cost, CostSaving::Unknown { .. }));
        // Multi-AZ: the standby is resized too, twice the saving
        let mut multi = rds.clone();
        multi.attributes.insert("multi_az".into(), "true".into());
        let twice = rightsizing(&inventory(&market, vec![multi.clone()]), &multi).unwrap();
        assert!((twice.carbon.location_kg_co2e - 2.0 * rec.carbon.location_kg_co2e).abs() < 1e-9);
    }
}
