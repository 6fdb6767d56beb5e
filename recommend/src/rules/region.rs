//! Region migration: a running instance in a high-carbon region, in an
//! account whose placement policy (declared for the account or an OU above
//! it) allows a cleaner region. Candidates must satisfy the residency, the
//! allowed-region list and the latency class; among them the one with the
//! largest location-based saving that is also cleaner market-based wins,
//! the others are listed as alternatives. Footprints come from the emissions
//! model in each region (the hourly profile when the hourly factor set
//! covers the month, else the annual factor; the market set per region).
//! **Invariant: a region that violates the account's residency or allowed
//! list is never proposed, not even as an alternative; accounts without a
//! declared policy get no region advice.**

use canopy_emissions::grid::{UNKNOWN_REGION, location_factor, zone_for_region};
use canopy_emissions::model::embodied_g_co2e_per_instance_hour;

use super::{evidence, instance_copies, recommendation, running_fraction};
use crate::catalog::{REGIONS, region_info, residency_allows};
use crate::input::{
    Inventory, LatencyClass, Lifecycle, PlacementPolicy, ResourceKind, ResourceSnapshot,
};
use crate::prices::HOURS_PER_MONTH;
use crate::recommendation::{
    Alternative, CarbonSaving, Confidence, CostSaving, Effort, Kind, Recommendation, Risk, Target,
    instance_month,
};

/// Share of the current operational location-based footprint a move must
/// save to be proposed (the region is "high-carbon" relative to the option).
pub const MIN_SAVING_SHARE: f64 = 0.5;

/// True when the emissions tables have an annual factor of the region's
/// own (not the fallback for unknown regions).
pub fn has_own_factor(region: &str) -> bool {
    location_factor(region) != location_factor(UNKNOWN_REGION)
}

/// True when the region's footprint rests on real data: its own annual
/// factor, or hourly intensity for its zone at both ends of the month. A
/// target is never chosen on a placeholder figure.
fn has_data(inv: &Inventory<'_>, region: &str) -> bool {
    has_own_factor(region)
        || inv
            .hourly
            .zip(zone_for_region(region))
            .is_some_and(|(source, zone)| {
                source
                    .intensity(zone, crate::recommendation::month_start(inv))
                    .is_some()
                    && source.intensity(zone, inv.as_of_unix_s - 3600).is_some()
            })
}

/// True when `region` satisfies every constraint of `policy` for a workload now in `from`.
pub fn allowed(policy: &PlacementPolicy, from: &str, region: &str) -> bool {
    let Some(info) = region_info(region) else {
        return false;
    };
    if !info.migration_target || !residency_allows(policy.residency, region) {
        return false;
    }
    if !policy.allowed_regions.is_empty() && !policy.allowed_regions.iter().any(|r| r == region) {
        return false;
    }
    match policy.latency {
        LatencyClass::Any => true,
        LatencyClass::SameContinent => {
            region_info(from).is_some_and(|f| f.continent == info.continent)
        }
    }
}

/// The region-migration recommendation for `r`, if the rule fires.
pub fn region(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if !matches!(
        r.kind(),
        ResourceKind::Ec2Instance | ResourceKind::RdsInstance
    ) || r.lifecycle != Lifecycle::Running
    {
        return None;
    }
    let policy = inv.policy_for(&r.account_id)?;
    let class = r.class.as_deref()?;
    let u = r.utilisation.as_ref();
    let cpu = u.map(|u| u.cpu_mean_pct);
    let hours = HOURS_PER_MONTH * u.map_or(1.0, running_fraction);
    let copies = instance_copies(r);
    let here = instance_month(inv, &r.region, class, r.vcpus, hours, cpu)?.scale(copies);
    let mut options: Vec<(&str, CarbonSaving)> = REGIONS
        .iter()
        .filter(|c| {
            c.code != r.region && allowed(policy, &r.region, c.code) && has_data(inv, c.code)
        })
        .filter_map(|c| {
            Some((
                c.code,
                here.saving_to(
                    &instance_month(inv, c.code, class, r.vcpus, hours, cpu)?.scale(copies),
                ),
            ))
        })
        .filter(|(_, s)| s.location_kg_co2e > 0.0 && s.market_kg_co2e >= 0.0)
        .collect();
    options.sort_by(|a, b| {
        b.1.location_kg_co2e
            .total_cmp(&a.1.location_kg_co2e)
            .then(a.0.cmp(b.0))
    });
    let (best, carbon) = *options.first()?;
    // Embodied is the same in every region: the share is taken of the operational part.
    let embodied_g =
        embodied_g_co2e_per_instance_hour(class).map_or(0.0, |(g, _)| g * hours) * copies;
    let operational_kg = (here.location_g - embodied_g) / 1000.0;
    if operational_kg <= 0.0 || carbon.location_kg_co2e < MIN_SAVING_SHARE * operational_kg {
        return None;
    }
    let unknown = || CostSaving::Unknown {
        reason: "regional price differences are not in the price table".into(),
    };
    let mut ev = evidence(
        format!(
            "region migration: {} → {best} saves {:.0} % of the operational location-based footprint; policy {} (residency {:?}, latency {:?})",
            r.region,
            100.0 * carbon.location_kg_co2e / operational_kg,
            policy.scope,
            policy.residency,
            policy.latency
        ),
        u,
    );
    ev.figures
        .push(("hourly_profile".into(), inv.hourly.is_some().to_string()));
    let mut rec = recommendation(
        r,
        Kind::RegionMigration,
        format!("move {class} from {} to {best}", r.region),
        Target::Region(best.to_owned()),
        carbon,
        unknown(),
        Confidence::Medium,
        ev,
        Risk::High,
        Effort::High,
        vec![
            "data transfer during and after the move, and the latency to users and dependencies".into(),
            "check that the instance type and every service the workload uses exist in the target region".into(),
        ],
    );
    rec.alternatives = options[1..]
        .iter()
        .take(3)
        .map(|(code, s)| Alternative {
            kind: Kind::RegionMigration,
            target: Target::Region((*code).to_owned()),
            carbon: *s,
            cost: unknown(),
        })
        .collect();
    Some(rec)
}

#[cfg(test)]
mod tests {
    use canopy_emissions::grid::MarketConfig;

    use super::*;
    use crate::input::{Architecture, Residency};
    use crate::rules::testkit::{ec2, flat, inventory};

    fn policy(residency: Residency, allowed: &[&str], latency: LatencyClass) -> PlacementPolicy {
        PlacementPolicy {
            scope: "123456789012".into(),
            residency,
            allowed_regions: allowed.iter().map(|s| (*s).to_owned()).collect(),
            latency,
        }
    }

    fn best(from: &str, p: Option<PlacementPolicy>) -> Option<String> {
        let market = MarketConfig::new();
        let r = ec2(
            "i-1",
            from,
            "m7g.xlarge",
            Architecture::Arm64,
            Some(flat(30, 40.0, 60.0)),
        );
        let mut inv = inventory(&market, vec![r.clone()]);
        inv.policies.extend(p);
        region(&inv, &r).map(|rec| match rec.target {
            Target::Region(code) => code,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn constraints_choose_the_region() {
        // no policy: no advice
        assert_eq!(best("eu-central-1", None), None);
        // EU only from Frankfurt (311 g): Stockholm (8.8 g) is the cleanest EU region
        assert_eq!(
            best(
                "eu-central-1",
                Some(policy(Residency::EuOnly, &[], LatencyClass::SameContinent))
            )
            .as_deref(),
            Some("eu-north-1")
        );
        // allowed list without Stockholm: Paris (51.1 g)
        assert_eq!(
            best(
                "eu-central-1",
                Some(policy(
                    Residency::EuOnly,
                    &["eu-west-1", "eu-west-3"],
                    LatencyClass::Any
                ))
            )
            .as_deref(),
            Some("eu-west-3")
        );
        // same continent from Mumbai: nothing in Asia saves half
        assert_eq!(
            best(
                "ap-south-1",
                Some(policy(
                    Residency::Anywhere,
                    &[],
                    LatencyClass::SameContinent
                ))
            ),
            None
        );
        // US only from us-east-2: none of the US regions saves half (322 vs 410 g)
        assert_eq!(
            best(
                "us-east-2",
                Some(policy(Residency::UsOnly, &[], LatencyClass::Any))
            ),
            None
        );
        // Anywhere, batch: the cleanest region overall
        assert_eq!(
            best(
                "ap-south-1",
                Some(policy(Residency::Anywhere, &[], LatencyClass::Any))
            )
            .as_deref(),
            Some("eu-north-1")
        );
        // already clean: nothing
        assert_eq!(
            best(
                "eu-north-1",
                Some(policy(Residency::EuOnly, &[], LatencyClass::Any))
            ),
            None
        );
    }

    #[test]
    fn a_region_dirtier_market_based_is_not_proposed() {
        // Stockholm made dirty by a configured residual mix: Paris wins for EU only
        let mut market = MarketConfig::new();
        market
            .set_region(
                "eu-north-1",
                canopy_emissions::grid::MarketRegion {
                    renewable_share: 0.0,
                    residual_mix_g_co2e_per_kwh: Some(900.0),
                },
            )
            .unwrap();
        let r = ec2(
            "i-1",
            "eu-central-1",
            "m7g.xlarge",
            Architecture::Arm64,
            Some(flat(30, 40.0, 60.0)),
        );
        let mut inv = inventory(&market, vec![r.clone()]);
        inv.policies
            .push(policy(Residency::EuOnly, &[], LatencyClass::Any));
        let rec = region(&inv, &r).unwrap();
        assert_eq!(rec.target, Target::Region("eu-west-3".into()));
        assert!(rec.carbon.market_kg_co2e > 0.0);
        assert!(
            rec.alternatives
                .iter()
                .all(|a| a.target != Target::Region("eu-north-1".into()))
        );
    }

    #[test]
    fn regions_without_their_own_factor_are_never_targets() {
        assert!(has_own_factor("eu-north-1"));
        assert!(!has_own_factor("ap-southeast-5"));
        // Cape Town (900.6 g) to anywhere in the world, cleanest by real factors only
        assert_eq!(
            best(
                "af-south-1",
                Some(policy(Residency::Anywhere, &[], LatencyClass::Any))
            )
            .as_deref(),
            Some("eu-north-1")
        );
        // Africa has no other region: same continent gives nothing
        assert_eq!(
            best(
                "af-south-1",
                Some(policy(
                    Residency::Anywhere,
                    &[],
                    LatencyClass::SameContinent
                ))
            ),
            None
        );
    }

    #[test]
    fn the_hourly_profile_is_used_when_it_covers_the_month() {
        use canopy_emissions::grid::{CarbonIntensitySource, GridFactor};
        use canopy_emissions::model::Provenance;
        // Frankfurt's zone hourly at 5 g/kWh (cleaner than its annual 311 g and than Stockholm): no move
        struct CleanGermany;
        impl CarbonIntensitySource for CleanGermany {
            fn intensity(&self, zone: &str, _hour: i64) -> Option<GridFactor> {
                (zone == "DE").then_some(GridFactor {
                    g_co2e_per_kwh: 5.0,
                    provenance: Provenance {
                        source: "test",
                        vintage: "test",
                    },
                })
            }
        }
        let market = MarketConfig::new();
        let r = ec2(
            "i-1",
            "eu-central-1",
            "m7g.xlarge",
            Architecture::Arm64,
            Some(flat(30, 40.0, 60.0)),
        );
        let mut inv = inventory(&market, vec![r.clone()]);
        inv.policies
            .push(policy(Residency::EuOnly, &[], LatencyClass::Any));
        assert!(
            region(&inv, &r).is_some(),
            "annual factors: Frankfurt is dirty"
        );
        inv.hourly = Some(&CleanGermany);
        let got = region(&inv, &r);
        assert!(got.is_none(), "hourly profile: Frankfurt is clean: {got:?}");
    }

    #[test]
    fn allowed_checks_every_constraint() {
        let p = policy(Residency::EuOnly, &[], LatencyClass::Any);
        assert!(allowed(&p, "us-east-1", "eu-west-1"));
        assert!(!allowed(&p, "eu-west-1", "eu-west-2"));
        assert!(!allowed(
            &policy(Residency::Anywhere, &[], LatencyClass::Any),
            "us-east-1",
            "us-gov-west-1"
        ));
        assert!(!allowed(
            &policy(Residency::Anywhere, &[], LatencyClass::SameContinent),
            "eu-west-1",
            "us-east-1"
        ));
    }
}
