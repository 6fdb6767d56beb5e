//! Graviton: an x86 EC2 instance or RDS class whose family has an arm64
//! equivalent ([`graviton_family`]: m5 → m7g, c5 → c7g, r5 → r7g, t3 →
//! t4g, db.r5 → db.r7g …) of the same size. The power and embodied
//! difference comes from the emissions model at the measured mean CPU (the
//! model's default when unmeasured, with low confidence); the known
//! compatibility caveats are stated. **Never fires for Windows instances
//! (no Graviton Windows) nor when the model gives no saving.**

use super::{cost, evidence, instance_copies, recommendation, running_fraction};
use crate::catalog::{GRAVITON_EC2_CAVEATS, GRAVITON_RDS_CAVEATS, InstanceType, graviton_family};
use crate::input::{Architecture, Inventory, Lifecycle, ResourceKind, ResourceSnapshot};
use crate::prices::{HOURS_PER_MONTH, ec2_usd_per_month};
use crate::recommendation::{
    Confidence, Effort, Kind, Recommendation, Risk, Target, instance_month,
};

/// The Graviton recommendation for `r`, if the rule fires.
pub fn graviton(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    let rds = match r.kind() {
        ResourceKind::Ec2Instance => false,
        ResourceKind::RdsInstance => true,
        _ => return None,
    };
    if r.lifecycle != Lifecycle::Running
        || matches!(
            r.architecture,
            Some(Architecture::Arm64 | Architecture::Other)
        )
    {
        return None;
    }
    if r.attributes
        .get("platform")
        .is_some_and(|p| p.to_ascii_lowercase().contains("windows"))
    {
        return None;
    }
    let class = r.class.as_deref()?;
    let t = InstanceType::parse(class)?;
    let family = graviton_family(t.family)?;
    let target = t.with(family, t.size);
    let u = r.utilisation.as_ref();
    let cpu = u.map(|u| u.cpu_mean_pct);
    let fraction = u.map_or(1.0, running_fraction);
    let hours = HOURS_PER_MONTH * fraction;
    let before = instance_month(inv, &r.region, class, None, hours, cpu)?.scale(instance_copies(r));
    let after =
        instance_month(inv, &r.region, &target, None, hours, cpu)?.scale(instance_copies(r));
    let carbon = before.saving_to(&after);
    if carbon.location_kg_co2e <= 0.0 {
        return None;
    }
    let prices = match (
        ec2_usd_per_month("us-east-1", class),
        ec2_usd_per_month("us-east-1", &target),
    ) {
        (Some(a), Some(b)) if !rds => Some((a, b)),
        _ => None,
    };
    // Billed cost × the list-price ratio (same in every region within a
    // few percent); the table alone only in its own region.
    let fraction_saved = prices.map(|(a, b)| 1.0 - b / a);
    let list = prices
        .filter(|_| r.region == "us-east-1")
        .map(|(a, b)| (a - b) * fraction);
    let cost = cost(
        r,
        fraction_saved,
        list,
        "no billed cost and no listed price for this class and region",
    );
    let mut ev = evidence(
        format!(
            "graviton: {} family {} has the arm64 equivalent {family}",
            if rds { "RDS" } else { "EC2" },
            t.family
        ),
        u,
    );
    ev.figures.push((
        "energy_before_kwh_per_month".into(),
        format!("{:.1}", before.energy_kwh),
    ));
    ev.figures.push((
        "energy_after_kwh_per_month".into(),
        format!("{:.1}", after.energy_kwh),
    ));
    let caveats = if rds {
        GRAVITON_RDS_CAVEATS
    } else {
        GRAVITON_EC2_CAVEATS
    };
    Some(recommendation(
        r,
        Kind::Graviton,
        format!("move {class} to {target} (arm64)"),
        Target::InstanceType(target),
        carbon,
        cost,
        if cpu.is_some() {
            Confidence::Medium
        } else {
            Confidence::Low
        },
        ev,
        Risk::Medium,
        Effort::Medium,
        caveats.iter().map(|c| (*c).to_owned()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use canopy_emissions::grid::MarketConfig;

    use super::*;
    use crate::recommendation::CostSaving;
    use crate::rules::testkit::{ec2, flat, inventory};

    fn target(class: &str, arch: Architecture, rds: bool) -> Option<String> {
        let market = MarketConfig::new();
        let mut r = ec2("i-1", "us-east-1", class, arch, Some(flat(30, 40.0, 60.0)));
        if rds {
            r.service = "rds".into();
            r.resource_type = "db".into();
        }
        let inv = inventory(&market, vec![r.clone()]);
        graviton(&inv, &r).map(|g| match g.target {
            Target::InstanceType(t) => t,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn maps_families_to_graviton() {
        assert_eq!(
            target("m5.xlarge", Architecture::X86_64, false).as_deref(),
            Some("m7g.xlarge")
        );
        assert_eq!(
            target("c5.2xlarge", Architecture::X86_64, false).as_deref(),
            Some("c7g.2xlarge")
        );
        assert_eq!(
            target("r5.large", Architecture::X86_64, false).as_deref(),
            Some("r7g.large")
        );
        assert_eq!(
            target("db.r5.large", Architecture::X86_64, true).as_deref(),
            Some("db.r7g.large")
        );
        assert_eq!(target("m7g.large", Architecture::Arm64, false), None);
        assert_eq!(target("p3.2xlarge", Architecture::X86_64, false), None);
    }

    #[test]
    fn figures_come_from_the_model_and_caveats_are_stated() {
        let market = MarketConfig::new();
        let r = ec2(
            "i-1",
            "us-east-1",
            "m5.xlarge",
            Architecture::X86_64,
            Some(flat(30, 40.0, 60.0)),
        );
        let inv = inventory(&market, vec![r.clone()]);
        let g = graviton(&inv, &r).unwrap();
        let a = instance_month(&inv, "us-east-1", "m5.xlarge", None, 730.0, Some(40.0)).unwrap();
        let b = instance_month(&inv, "us-east-1", "m7g.xlarge", None, 730.0, Some(40.0)).unwrap();
        assert!((g.carbon.location_kg_co2e - (a.location_g - b.location_g) / 1000.0).abs() < 1e-9);
        assert!(g.caveats.iter().any(|c| c.contains("arm64")));
        // $0.192 − $0.1632 per hour × 730
        match g.cost {
            CostSaving::Known { usd_per_month, .. } => {
                assert!((usd_per_month - 21.024).abs() < 1e-6)
            }
            other => panic!("{other:?}"),
        }
        let mut windows = r;
        windows
            .attributes
            .insert("platform".into(), "Windows".into());
        assert!(graviton(&inv, &windows).is_none());
    }
}
