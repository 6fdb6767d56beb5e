//! Storage class: S3 buckets whose size and access pattern fit a cheaper
//! class. With request metrics: no access for [`GLACIER_AFTER_DAYS`] →
//! lifecycle to Glacier Instant Retrieval; under [`IA_MAX_GETS_PER_GB_MONTH`]
//! GETs per GB-month → lifecycle to Standard-IA after 30 days. Without
//! access data, large buckets → Intelligent-Tiering (its saving depends on
//! the access pattern, so the cost saving is unknown). **The emissions
//! model gives every S3 class the same HDD energy and the same replication,
//! so the carbon saving is computed but is zero; it is never invented.**
//! gp2 → gp3 lives in `idle` (an EBS volume).

use canopy_emissions::model::StorageMedium;

use super::{cost, evidence, recommendation};
use crate::input::{Inventory, ResourceKind, ResourceSnapshot};
use crate::prices::{HOURS_PER_MONTH, s3_usd_per_gb_month};
use crate::recommendation::{
    Confidence, Effort, Footprint, Kind, Recommendation, Risk, Target, storage_month,
};

/// Smallest Standard size worth a change, GB (Intelligent-Tiering does not
/// tier objects under 128 KB; small buckets save cents).
pub const MIN_STANDARD_GB: f64 = 100.0;
/// Size above which a bucket without access data gets Intelligent-Tiering, GB.
pub const INTELLIGENT_TIERING_MIN_GB: f64 = 1000.0;
/// Days without access after which Glacier Instant Retrieval fits.
pub const GLACIER_AFTER_DAYS: f64 = 90.0;
/// GETs per GB-month under which Standard-IA fits (retrieval fees stay below the storage saving).
pub const IA_MAX_GETS_PER_GB_MONTH: f64 = 1.0;

fn is_standard(class: &str) -> bool {
    matches!(class, "STANDARD" | "StandardStorage")
}

/// The storage-class recommendation for `r`, if the rule fires.
pub fn storage(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if r.kind() != ResourceKind::S3Bucket {
        return None;
    }
    let standard: Vec<_> = r.storage.iter().filter(|p| is_standard(&p.class)).collect();
    let gb: f64 = standard.iter().map(|p| p.gb).sum();
    if gb < MIN_STANDARD_GB {
        return None;
    }
    let replication = standard.first()?.replication;
    let access = r.access.unwrap_or_default();
    let (target, to_class, confidence, rule) =
        match (access.days_since_last_access, access.get_requests_per_month) {
            (Some(d), _) if d >= GLACIER_AFTER_DAYS => (
                Target::Lifecycle {
                    storage_class: "GLACIER_IR",
                    after_days: GLACIER_AFTER_DAYS as u32,
                },
                Some("GLACIER_IR"),
                Confidence::High,
                format!("storage class: {gb:.0} GB Standard, no access for {d:.0} days"),
            ),
            (_, Some(gets)) if gets / gb < IA_MAX_GETS_PER_GB_MONTH => (
                Target::Lifecycle {
                    storage_class: "STANDARD_IA",
                    after_days: 30,
                },
                Some("STANDARD_IA"),
                Confidence::Medium,
                format!(
                    "storage class: {gb:.0} GB Standard, {:.3} GETs per GB-month",
                    gets / gb
                ),
            ),
            (None, None) if gb >= INTELLIGENT_TIERING_MIN_GB => (
                Target::IntelligentTiering,
                None,
                Confidence::Low,
                format!("storage class: {gb:.0} GB Standard without request metrics"),
            ),
            _ => return None,
        };
    // S3 classes share the model's HDD coefficient and replication (6 copies).
    let before = storage_month(
        inv,
        &r.region,
        gb,
        StorageMedium::Hdd,
        replication,
        HOURS_PER_MONTH,
    )?;
    let after = storage_month(
        inv,
        &r.region,
        gb,
        StorageMedium::Hdd,
        replication,
        HOURS_PER_MONTH,
    )?;
    let carbon = Footprint::saving_to(&before, &after);
    let list = to_class.and_then(|c| {
        Some(
            (s3_usd_per_gb_month(&r.region, "STANDARD")? - s3_usd_per_gb_month(&r.region, c)?) * gb,
        )
    });
    let billed_fraction = to_class.and_then(|c| {
        Some(
            1.0 - s3_usd_per_gb_month("us-east-1", c)?
                / s3_usd_per_gb_month("us-east-1", "STANDARD")?,
        )
    });
    let cost = cost(
        r,
        billed_fraction.map(|f| f * gb / r.storage_gb().max(gb)),
        list,
        if to_class.is_none() {
            "depends on the access pattern (objects move tiers after 30/90 days without access)"
        } else {
            "no billed cost and no listed price for this region"
        },
    );
    let mut ev = evidence(rule, None);
    ev.figures.push(("standard_gb".into(), format!("{gb:.0}")));
    let action = match &target {
        Target::Lifecycle {
            storage_class,
            after_days,
        } => format!("add a lifecycle rule: Standard → {storage_class} after {after_days} days"),
        _ => "switch to S3 Intelligent-Tiering".to_owned(),
    };
    Some(recommendation(
        r,
        Kind::StorageClass,
        action,
        target,
        carbon,
        cost,
        confidence,
        ev,
        Risk::Low,
        Effort::Low,
        vec![
            "the emissions model has no per-class difference for S3 (HDD, 6 copies): no carbon saving is claimed".into(),
            "retrieval fees and minimum storage durations apply to IA and Glacier classes".into(),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use canopy_emissions::grid::MarketConfig;

    use super::*;
    use crate::input::{StorageAccess, StoragePart};
    use crate::recommendation::CostSaving;
    use crate::rules::testkit::inventory;

    fn bucket(gb: f64, access: Option<StorageAccess>) -> ResourceSnapshot {
        let mut b = ResourceSnapshot::new(
            "arn:aws:s3:::logs",
            "123456789012",
            "us-east-1",
            "s3",
            "bucket",
        );
        b.storage.push(StoragePart {
            class: "StandardStorage".into(),
            gb,
            medium: StorageMedium::Hdd,
            replication: 6.0,
        });
        b.access = access;
        b
    }

    fn check(gb: f64, access: Option<StorageAccess>, expected: Option<Target>, usd: Option<f64>) {
        let market = MarketConfig::new();
        let b = bucket(gb, access);
        let got = storage(&inventory(&market, vec![]), &b);
        assert_eq!(
            got.as_ref().map(|g| g.target.clone()),
            expected,
            "{gb} {access:?}"
        );
        if let Some(g) = got {
            assert_eq!(g.carbon.location_kg_co2e, 0.0);
            match (usd, g.cost) {
                (Some(u), CostSaving::Known { usd_per_month, .. }) => {
                    assert!((usd_per_month - u).abs() < 1e-9)
                }
                (None, CostSaving::Unknown { .. }) => {}
                (u, c) => panic!("{u:?} {c:?}"),
            }
        }
    }

    #[test]
    fn access_pattern_picks_the_class() {
        let cold = StorageAccess {
            get_requests_per_month: Some(0.0),
            days_since_last_access: Some(200.0),
        };
        // 1,000 GB × (0.023 − 0.004)
        check(
            1000.0,
            Some(cold),
            Some(Target::Lifecycle {
                storage_class: "GLACIER_IR",
                after_days: 90,
            }),
            Some(19.0),
        );
        let cool = StorageAccess {
            get_requests_per_month: Some(100.0),
            days_since_last_access: Some(2.0),
        };
        // 1,000 GB × (0.023 − 0.0125)
        check(
            1000.0,
            Some(cool),
            Some(Target::Lifecycle {
                storage_class: "STANDARD_IA",
                after_days: 30,
            }),
            Some(10.5),
        );
        let hot = StorageAccess {
            get_requests_per_month: Some(1e6),
            days_since_last_access: Some(0.0),
        };
        check(1000.0, Some(hot), None, None);
        check(5000.0, None, Some(Target::IntelligentTiering), None);
        check(500.0, None, None, None);
        check(50.0, Some(cold), None, None);
    }
}
