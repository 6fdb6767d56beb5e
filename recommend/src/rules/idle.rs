//! Idle and orphaned resources: instances near 0 % CPU for at least
//! [`MIN_WINDOW_DAYS`], stopped instances still holding volumes, unattached
//! EBS volumes, gp2 volumes that gp3 would serve, idle RDS instances (no
//! connections), Lambda provisioned concurrency with no invocations, and old
//! snapshots. The saving is the model's footprint of what goes away.
//! **Never fires on a resource without the evidence its sub-rule names**
//! (an unknown connection count is not zero; an unknown age is not old).

use canopy_emissions::model::{CpuArchitecture, StorageMedium};

use super::{
    MIN_WINDOW_DAYS, cost, evidence, instance_copies, instance_id, long_enough, recommendation,
    running_fraction,
};
use crate::input::{Architecture, Inventory, Lifecycle, ResourceKind, ResourceSnapshot};
use crate::prices::{
    HOURS_PER_MONTH, ebs_usd_per_gb_month, ec2_usd_per_month, gp3_extra_iops_usd_per_month,
    lambda_provisioned_usd_per_month, snapshot_usd_per_gb_month,
};
use crate::recommendation::{
    Confidence, CostSaving, Effort, Footprint, Kind, Recommendation, Risk, Target, instance_month,
    storage_month,
};

/// p95 CPU at or under which an instance counts as idle, percent.
pub const IDLE_CPU_P95_PCT: f64 = 2.0;
/// Snapshots older than this are flagged, days.
pub const OLD_SNAPSHOT_DAYS: f64 = 365.0;
/// gp2 baseline IOPS per GB (gp3 gives 3,000 regardless of size).
const GP2_IOPS_PER_GB: f64 = 3.0;
const GP3_BASELINE_IOPS: f64 = 3000.0;

/// Every idle/orphaned recommendation that fires for `r`.
pub fn idle(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Vec<Recommendation> {
    [
        idle_instance(inv, r),
        stopped_with_volumes(inv, r),
        unattached_volume(inv, r),
        gp2_volume(inv, r),
        idle_rds(inv, r),
        idle_provisioned_concurrency(inv, r),
        old_snapshot(inv, r),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn days_in_state(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<f64> {
    r.state_since_unix_s
        .map(|s| (inv.as_of_unix_s - s) as f64 / 86_400.0)
}

fn storage_footprint(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Footprint> {
    r.storage.iter().try_fold(Footprint::default(), |acc, p| {
        Some(acc.plus(storage_month(
            inv,
            &r.region,
            p.gb,
            p.medium,
            p.replication,
            HOURS_PER_MONTH,
        )?))
    })
}

fn volume_list_usd(r: &ResourceSnapshot) -> Option<f64> {
    let class = r
        .class
        .as_deref()
        .or(r.storage.first().map(|p| p.class.as_str()))?;
    Some(ebs_usd_per_gb_month(&r.region, class)? * r.storage_gb())
}

fn idle_instance(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if r.kind() != ResourceKind::Ec2Instance || r.lifecycle != Lifecycle::Running {
        return None;
    }
    let u = long_enough(r)?;
    if u.cpu_p95_pct > IDLE_CPU_P95_PCT {
        return None;
    }
    let class = r.class.as_deref()?;
    let fraction = running_fraction(u);
    let before = instance_month(
        inv,
        &r.region,
        class,
        r.vcpus,
        HOURS_PER_MONTH * fraction,
        Some(u.cpu_mean_pct),
    )?;
    let carbon = before.saving_to(&Footprint::default());
    let list = ec2_usd_per_month(&r.region, class).map(|m| m * fraction);
    let cost = cost(
        r,
        Some(1.0),
        list,
        "no billed cost and no listed price for this type and region",
    );
    let confidence = if u.cpu_max_pct <= 10.0 {
        Confidence::High
    } else {
        Confidence::Medium
    };
    Some(recommendation(
        r,
        Kind::Idle,
        format!("stop idle {class} (p95 cpu {:.1} % over {:.0} days)", u.cpu_p95_pct, u.window_days()),
        Target::Stop,
        carbon,
        cost,
        confidence,
        evidence(format!("idle instance: p95 cpu {:.2} % <= {IDLE_CPU_P95_PCT} % over {:.0} days", u.cpu_p95_pct, u.window_days()), Some(u)),
        Risk::Medium,
        Effort::Low,
        vec!["check for work the CPU metric does not show (a mostly idle listener, a scheduled job less often than the window)".into()],
    ))
}

fn stopped_with_volumes(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if r.kind() != ResourceKind::Ec2Instance || r.lifecycle != Lifecycle::Stopped {
        return None;
    }
    let days = days_in_state(inv, r);
    if days.is_some_and(|d| d < MIN_WINDOW_DAYS) {
        return None;
    }
    let id = instance_id(&r.arn);
    let volumes: Vec<&ResourceSnapshot> = inv
        .resources
        .iter()
        .filter(|v| {
            v.kind() == ResourceKind::EbsVolume
                && v.account_id == r.account_id
                && v.region == r.region
                && v.attributes.get("attached_to").map(String::as_str) == Some(id)
        })
        .collect();
    if volumes.is_empty() {
        return None;
    }
    let mut before = Footprint::default();
    for v in &volumes {
        before = before.plus(storage_footprint(inv, v)?);
    }
    let carbon = before.saving_to(&Footprint::default());
    let gb: f64 = volumes.iter().map(|v| v.storage_gb()).sum();
    let billed: Option<f64> = volumes.iter().map(|v| v.billed_usd_per_month).sum();
    let listed: Option<f64> = volumes.iter().map(|v| volume_list_usd(v)).sum();
    let cost = match (billed, listed) {
        (Some(b), _) => CostSaving::Known {
            usd_per_month: b,
            basis: crate::recommendation::CostBasis::Billing,
        },
        (None, Some(l)) => CostSaving::Known {
            usd_per_month: l,
            basis: crate::recommendation::CostBasis::PriceTable(crate::prices::PRICE_TABLE_SOURCE),
        },
        _ => CostSaving::Unknown {
            reason: "no billed cost and no listed price for these volumes".into(),
        },
    };
    let mut ev = evidence(
        format!(
            "stopped instance holding {} volume(s), {gb:.0} GB{}",
            volumes.len(),
            days.map_or(", stopped since an unknown date".into(), |d| format!(
                ", stopped {d:.0} days"
            ))
        ),
        None,
    );
    ev.figures.push((
        "volumes".into(),
        volumes
            .iter()
            .map(|v| v.arn.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    ));
    Some(recommendation(
        r,
        Kind::Idle,
        format!("snapshot and delete the {} volume(s) of stopped {id}, then terminate it", volumes.len()),
        Target::Delete,
        carbon,
        cost,
        if days.is_some() { Confidence::High } else { Confidence::Low },
        ev,
        Risk::High,
        Effort::Low,
        vec!["a final snapshot keeps the data (snapshot storage is billed at about half the gp2 price)".into()],
    ))
}

fn unattached_volume(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if r.kind() != ResourceKind::EbsVolume
        || r.attributes.contains_key("attached_to")
        || r.lifecycle == Lifecycle::Terminated
    {
        return None;
    }
    let days = days_in_state(inv, r);
    if days.is_some_and(|d| d < MIN_WINDOW_DAYS) {
        return None;
    }
    let carbon = storage_footprint(inv, r)?.saving_to(&Footprint::default());
    let cost = cost(
        r,
        Some(1.0),
        volume_list_usd(r),
        "no billed cost and no listed price for this volume type and region",
    );
    Some(recommendation(
        r,
        Kind::Idle,
        format!(
            "snapshot and delete unattached volume ({:.0} GB)",
            r.storage_gb()
        ),
        Target::Delete,
        carbon,
        cost,
        if days.is_some() {
            Confidence::High
        } else {
            Confidence::Medium
        },
        evidence(
            format!(
                "unattached volume{}",
                days.map_or(String::new(), |d| format!(" for {d:.0} days"))
            ),
            None,
        ),
        Risk::High,
        Effort::Low,
        vec!["a final snapshot keeps the data".into()],
    ))
}

fn gp2_volume(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if r.kind() != ResourceKind::EbsVolume || r.class.as_deref() != Some("gp2") {
        return None;
    }
    // A volume held by a stopped instance is covered by that instance's recommendation.
    if let Some(owner) = r.attributes.get("attached_to")
        && inv.resources.iter().any(|i| {
            i.kind() == ResourceKind::Ec2Instance
                && instance_id(&i.arn) == owner
                && i.lifecycle == Lifecycle::Stopped
        })
    {
        return None;
    }
    let gb = r.storage_gb();
    let before = storage_footprint(inv, r)?;
    let after = r.storage.iter().try_fold(Footprint::default(), |acc, p| {
        Some(acc.plus(storage_month(
            inv,
            &r.region,
            p.gb,
            StorageMedium::Ssd,
            p.replication,
            HOURS_PER_MONTH,
        )?))
    })?;
    let carbon = before.saving_to(&after);
    let extra_iops = (gb * GP2_IOPS_PER_GB).min(16_000.0) - GP3_BASELINE_IOPS;
    let list = match (
        ebs_usd_per_gb_month(&r.region, "gp2"),
        ebs_usd_per_gb_month(&r.region, "gp3"),
        gp3_extra_iops_usd_per_month(&r.region),
    ) {
        (Some(a), Some(b), Some(iops)) => Some((a - b) * gb - extra_iops.max(0.0) * iops),
        _ => None,
    };
    let fraction = (extra_iops <= 0.0).then_some(0.2);
    let cost = cost(r, fraction, list, "no listed price for this region");
    if cost.usd_or_zero() <= 0.0 && matches!(cost, CostSaving::Known { .. }) {
        return None;
    }
    let mut ev = evidence(
        "gp2 volume: gp3 gives the same or better baseline for less".into(),
        None,
    );
    ev.figures.push(("size_gb".into(), format!("{gb:.0}")));
    ev.figures.push((
        "gp2_baseline_iops".into(),
        format!("{:.0}", (gb * GP2_IOPS_PER_GB).clamp(100.0, 16_000.0)),
    ));
    Some(recommendation(
        r,
        Kind::StorageClass,
        format!("modify volume gp2 → gp3 ({gb:.0} GB)"),
        Target::VolumeType("gp3".into()),
        carbon,
        cost,
        Confidence::High,
        ev,
        Risk::Low,
        Effort::Low,
        vec![
            "same SSD medium: the emissions model gives no carbon difference".into(),
            "gp2 bursts to 3,000 IOPS below 1 TB and throughput up to 250 MiB/s; provision gp3 throughput if the volume needs more than 125 MiB/s".into(),
        ],
    ))
}

fn idle_rds(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if r.kind() != ResourceKind::RdsInstance || r.lifecycle != Lifecycle::Running {
        return None;
    }
    let u = long_enough(r)?;
    if u.connections_max != Some(0.0) {
        return None;
    }
    let class = r.class.as_deref()?;
    let compute = instance_month(
        inv,
        &r.region,
        class,
        r.vcpus,
        HOURS_PER_MONTH * running_fraction(u),
        Some(u.cpu_mean_pct),
    )?
    .scale(instance_copies(r));
    let before = compute.plus(storage_footprint(inv, r)?);
    let carbon = before.saving_to(&Footprint::default());
    let cost = cost(
        r,
        Some(1.0),
        None,
        "no billed cost; RDS prices are not in the price table",
    );
    Some(recommendation(
        r,
        Kind::Idle,
        format!(
            "delete idle {class} after a final snapshot (no connections in {:.0} days)",
            u.window_days()
        ),
        Target::Delete,
        carbon,
        cost,
        Confidence::High,
        evidence(
            format!("idle RDS: 0 connections over {:.0} days", u.window_days()),
            Some(u),
        ),
        Risk::High,
        Effort::Low,
        vec![
            "take a final snapshot; stopping instead lasts at most 7 days before RDS restarts it"
                .into(),
        ],
    ))
}

fn idle_provisioned_concurrency(
    inv: &Inventory<'_>,
    r: &ResourceSnapshot,
) -> Option<Recommendation> {
    if r.kind() != ResourceKind::LambdaFunction {
        return None;
    }
    let concurrency = r
        .attribute_f64("provisioned_concurrency")
        .filter(|c| *c > 0.0)?;
    let u = long_enough(r)?;
    if u.invocations_total != Some(0.0) {
        return None;
    }
    let gb = concurrency * r.memory_mib? as f64 / 1024.0;
    let arch = if r.architecture == Some(Architecture::Arm64) {
        CpuArchitecture::Arm
    } else {
        CpuArchitecture::X86
    };
    let before = crate::recommendation::function_month(inv, &r.region, gb, arch, 0.0)?;
    let carbon = before.saving_to(&Footprint::default());
    let cost = cost(
        r,
        Some(1.0),
        lambda_provisioned_usd_per_month(&r.region, gb),
        "no billed cost and no listed price for this region",
    );
    let mut ev = evidence(
        format!(
            "provisioned concurrency {concurrency} with 0 invocations over {:.0} days",
            u.window_days()
        ),
        Some(u),
    );
    ev.figures
        .push(("provisioned_gb".into(), format!("{gb:.2}")));
    Some(recommendation(
        r,
        Kind::Idle,
        format!("remove provisioned concurrency ({concurrency}) from an uninvoked function"),
        Target::RemoveProvisionedConcurrency,
        carbon,
        cost,
        Confidence::High,
        ev,
        Risk::Low,
        Effort::Low,
        vec!["the first invocations afterwards have cold starts".into()],
    ))
}

fn old_snapshot(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if r.kind() != ResourceKind::EbsSnapshot {
        return None;
    }
    let created = r.attribute_f64("created_unix_s")?;
    let age_days = (inv.as_of_unix_s as f64 - created) / 86_400.0;
    if age_days < OLD_SNAPSHOT_DAYS {
        return None;
    }
    let carbon = storage_footprint(inv, r)?.saving_to(&Footprint::default());
    let list = snapshot_usd_per_gb_month(&r.region).map(|p| p * r.storage_gb());
    let cost = cost(
        r,
        Some(1.0),
        list,
        "no billed cost and no listed price for this region",
    );
    Some(recommendation(
        r,
        Kind::Idle,
        format!("delete snapshot older than {age_days:.0} days (or archive it)"),
        Target::Delete,
        carbon,
        cost,
        Confidence::Medium,
        evidence(
            format!("snapshot age {age_days:.0} days >= {OLD_SNAPSHOT_DAYS}"),
            None,
        ),
        Risk::High,
        Effort::Low,
        vec!["check retention obligations and whether an AMI or backup plan references it".into()],
    ))
}

#[cfg(test)]
mod tests {
    use canopy_emissions::grid::MarketConfig;

    use super::*;
    use crate::input::StoragePart;
    use crate::rules::testkit::{as_of, ec2, flat, inventory};

    fn volume(id: &str, class: &str, gb: f64, attached_to: Option<&str>) -> ResourceSnapshot {
        let mut v = ResourceSnapshot::new(
            &format!("arn:aws:ec2:us-east-1:123456789012:volume/{id}"),
            "123456789012",
            "us-east-1",
            "ec2",
            "volume",
        );
        v.class = Some(class.into());
        v.storage.push(StoragePart {
            class: class.into(),
            gb,
            medium: StorageMedium::Ssd,
            replication: 2.0,
        });
        if let Some(a) = attached_to {
            v.attributes.insert("attached_to".into(), a.into());
        }
        v
    }

    #[test]
    fn idle_instance_fires_only_near_zero_for_14_days() {
        let market = MarketConfig::new();
        let idle_r = ec2(
            "i-1",
            "us-east-1",
            "m5.xlarge",
            Architecture::X86_64,
            Some(flat(14, 0.5, 1.2)),
        );
        let busy = ec2(
            "i-2",
            "us-east-1",
            "m5.xlarge",
            Architecture::X86_64,
            Some(flat(30, 5.0, 12.0)),
        );
        let short = ec2(
            "i-3",
            "us-east-1",
            "m5.xlarge",
            Architecture::X86_64,
            Some(flat(10, 0.5, 1.2)),
        );
        let inv = inventory(&market, vec![idle_r.clone(), busy.clone(), short.clone()]);
        let rec = idle_instance(&inv, &idle_r).unwrap();
        let whole = instance_month(&inv, "us-east-1", "m5.xlarge", None, 730.0, Some(0.5)).unwrap();
        assert!((rec.carbon.location_kg_co2e - whole.location_g / 1000.0).abs() < 1e-9);
        assert!((rec.cost.usd_or_zero() - 0.192 * 730.0).abs() < 1e-6);
        assert!(idle_instance(&inv, &busy).is_none());
        assert!(idle_instance(&inv, &short).is_none());
    }

    #[test]
    fn stopped_instance_with_volumes_and_unattached_volumes() {
        let market = MarketConfig::new();
        let mut stopped = ec2("i-9", "us-east-1", "m5.large", Architecture::X86_64, None);
        stopped.lifecycle = Lifecycle::Stopped;
        stopped.state_since_unix_s = Some(as_of() - 40 * 86_400);
        let v1 = volume("vol-1", "gp2", 100.0, Some("i-9"));
        let v2 = volume("vol-2", "gp3", 500.0, Some("i-9"));
        let loose = volume("vol-3", "gp3", 1000.0, None);
        let inv = inventory(
            &market,
            vec![stopped.clone(), v1.clone(), v2, loose.clone()],
        );
        let rec = stopped_with_volumes(&inv, &stopped).unwrap();
        // 600 GB × $0.10/$0.08: 100 × 0.10 + 500 × 0.08 = $50
        assert!((rec.cost.usd_or_zero() - 50.0).abs() < 1e-9);
        let ssd = storage_month(&inv, "us-east-1", 600.0, StorageMedium::Ssd, 2.0, 730.0).unwrap();
        assert!((rec.carbon.location_kg_co2e - ssd.location_g / 1000.0).abs() < 1e-9);
        // gp2 held by the stopped instance: not a separate gp3 recommendation
        assert!(gp2_volume(&inv, &v1).is_none());
        let rec = unattached_volume(&inv, &loose).unwrap();
        assert_eq!(rec.target, Target::Delete);
        assert!((rec.cost.usd_or_zero() - 80.0).abs() < 1e-9);
        // stopped for 3 days: too recent
        stopped.state_since_unix_s = Some(as_of() - 3 * 86_400);
        assert!(stopped_with_volumes(&inv, &stopped).is_none());
    }

    #[test]
    fn gp2_to_gp3_prices_extra_iops() {
        let market = MarketConfig::new();
        let small = volume("vol-1", "gp2", 500.0, Some("i-1"));
        let big = volume("vol-2", "gp2", 4000.0, Some("i-1"));
        let inv = inventory(&market, vec![small.clone(), big.clone()]);
        // 500 GB × $0.02
        assert!((gp2_volume(&inv, &small).unwrap().cost.usd_or_zero() - 10.0).abs() < 1e-9);
        // 4,000 GB: $80 cheaper storage, 9,000 extra IOPS × $0.005 = $45 → $35
        let rec = gp2_volume(&inv, &big).unwrap();
        assert!((rec.cost.usd_or_zero() - 35.0).abs() < 1e-9);
        assert_eq!(rec.carbon.location_kg_co2e, 0.0);
    }

    #[test]
    fn idle_rds_lambda_and_snapshot() {
        let market = MarketConfig::new();
        let mut rds = ec2(
            "db-1",
            "us-east-1",
            "db.r5.large",
            Architecture::X86_64,
            Some(flat(14, 1.0, 2.0)),
        );
        rds.service = "rds".into();
        rds.resource_type = "db".into();
        let mut unknown = rds.clone();
        rds.utilisation.as_mut().unwrap().connections_max = Some(0.0);
        let inv = inventory(&market, vec![]);
        let rec = idle_rds(&inv, &rds).unwrap();
        assert!(rec.carbon.location_kg_co2e > 0.0);
        assert!(matches!(rec.cost, CostSaving::Unknown { .. }));
        unknown.utilisation.as_mut().unwrap().connections_max = None;
        assert!(idle_rds(&inv, &unknown).is_none());

        let mut f = ResourceSnapshot::new(
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "123456789012",
            "us-east-1",
            "lambda",
            "function",
        );
        f.memory_mib = Some(1024);
        f.attributes
            .insert("provisioned_concurrency".into(), "10".into());
        let mut u = flat(14, 0.0, 0.0);
        u.invocations_total = Some(0.0);
        f.utilisation = Some(u);
        let rec = idle_provisioned_concurrency(&inv, &f).unwrap();
        // 10 GB × $0.0000041667 × 2,628,000 s
        assert!((rec.cost.usd_or_zero() - 109.50).abs() < 0.01);
        assert!(rec.carbon.location_kg_co2e > 0.0);
        f.utilisation.as_mut().unwrap().invocations_total = Some(3.0);
        assert!(idle_provisioned_concurrency(&inv, &f).is_none());

        let mut s = ResourceSnapshot::new(
            "arn:aws:ec2:us-east-1:123456789012:snapshot/snap-1",
            "123456789012",
            "us-east-1",
            "ec2",
            "snapshot",
        );
        s.storage.push(StoragePart {
            class: "snapshot".into(),
            gb: 200.0,
            medium: StorageMedium::Hdd,
            replication: 6.0,
        });
        s.attributes.insert(
            "created_unix_s".into(),
            (as_of() - 400 * 86_400).to_string(),
        );
        assert!((old_snapshot(&inv, &s).unwrap().cost.usd_or_zero() - 10.0).abs() < 1e-9);
        s.attributes.insert(
            "created_unix_s".into(),
            (as_of() - 100 * 86_400).to_string(),
        );
        assert!(old_snapshot(&inv, &s).is_none());
    }
}
