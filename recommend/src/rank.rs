//! Deduplication and ranking: one resource, one best action (the largest
//! location-based carbon saving, cost as the tie-breaker), the others kept
//! as its alternatives; the list ordered by carbon saved, then dollars
//! saved, then id (so equal inputs give an identical order). **Never drops
//! an action silently: every losing action appears as an alternative.**

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::recommendation::{Alternative, Recommendation};

fn better(a: &Recommendation, b: &Recommendation) -> Ordering {
    a.carbon
        .location_kg_co2e
        .total_cmp(&b.carbon.location_kg_co2e)
        .then(a.cost.usd_or_zero().total_cmp(&b.cost.usd_or_zero()))
        .then(b.id.cmp(&a.id))
}

/// Deduplicates per ARN and ranks.
pub fn dedup_and_rank(all: Vec<Recommendation>) -> Vec<Recommendation> {
    let mut by_arn: BTreeMap<String, Vec<Recommendation>> = BTreeMap::new();
    for r in all {
        by_arn.entry(r.arn.clone()).or_default().push(r);
    }
    let mut out: Vec<Recommendation> = by_arn
        .into_values()
        .filter_map(|mut group| {
            group.sort_by(|a, b| better(b, a));
            let mut iter = group.into_iter();
            let mut best = iter.next()?;
            let losers: Vec<Alternative> = iter
                .flat_map(|r| {
                    let own = Alternative {
                        kind: r.kind,
                        target: r.target,
                        carbon: r.carbon,
                        cost: r.cost,
                    };
                    std::iter::once(own).chain(r.alternatives)
                })
                .collect();
            best.alternatives.extend(losers);
            Some(best)
        })
        .collect();
    out.sort_by(|a, b| better(b, a));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommendation::{
        CarbonSaving, Confidence, CostBasis, CostSaving, Effort, Evidence, Kind, Risk, Target,
    };

    fn rec(arn: &str, kind: Kind, kg: f64, usd: f64) -> Recommendation {
        Recommendation {
            id: format!("{}:{arn}", kind.as_str()),
            kind,
            arn: arn.into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            team: None,
            action: String::new(),
            target: Target::Stop,
            carbon: CarbonSaving {
                location_kg_co2e: kg,
                ..Default::default()
            },
            cost: CostSaving::Known {
                usd_per_month: usd,
                basis: CostBasis::Billing,
            },
            confidence: Confidence::High,
            evidence: Evidence::default(),
            risk: Risk::Low,
            effort: Effort::Low,
            caveats: vec![],
            alternatives: vec![],
        }
    }

    #[test]
    fn one_action_per_resource_ranked_by_carbon_then_cost() {
        let out = dedup_and_rank(vec![
            rec("a", Kind::Rightsizing, 10.0, 50.0),
            rec("a", Kind::Idle, 30.0, 100.0),
            rec("a", Kind::Graviton, 5.0, 10.0),
            rec("b", Kind::StorageClass, 0.0, 20.0),
            rec("c", Kind::StorageClass, 0.0, 40.0),
            rec("d", Kind::Graviton, 30.0, 5.0),
        ]);
        let order: Vec<(&str, Kind)> = out.iter().map(|r| (r.arn.as_str(), r.kind)).collect();
        assert_eq!(
            order,
            vec![
                ("a", Kind::Idle),
                ("d", Kind::Graviton),
                ("c", Kind::StorageClass),
                ("b", Kind::StorageClass)
            ]
        );
        let alts: Vec<Kind> = out[0].alternatives.iter().map(|a| a.kind).collect();
        assert_eq!(alts, vec![Kind::Rightsizing, Kind::Graviton]);
    }
}
