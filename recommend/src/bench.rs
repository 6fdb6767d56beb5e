//! Scores the engine's output against a planted truth ([`crate::sim`]):
//! precision and recall per kind (a hit is the resource's best action with
//! the planted kind and target), the relative error of the estimated saving
//! on hits (carbon where the truth saves carbon, else dollars), and the
//! number of residency violations (any proposed region, alternatives
//! included, outside the account's policy). **Pure: the bench binary does
//! the printing.**

use std::collections::HashMap;

use crate::input::Inventory;
use crate::recommendation::{Kind, Recommendation, Target};
use crate::rules::region::allowed;
use crate::sim::Truth;

/// Scores of one kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindScore {
    /// Best actions of this kind matching a planted truth.
    pub true_positives: usize,
    /// Best actions of this kind with no matching truth.
    pub false_positives: usize,
    /// Planted truths of this kind not reported as the best action.
    pub false_negatives: usize,
    /// Relative errors of the estimated saving on the hits.
    pub saving_errors: Vec<f64>,
}

impl KindScore {
    /// TP / (TP + FP); 1 when nothing was reported.
    pub fn precision(&self) -> f64 {
        let d = self.true_positives + self.false_positives;
        if d == 0 {
            1.0
        } else {
            self.true_positives as f64 / d as f64
        }
    }
    /// TP / (TP + FN); 1 when nothing was planted.
    pub fn recall(&self) -> f64 {
        let d = self.true_positives + self.false_negatives;
        if d == 0 {
            1.0
        } else {
            self.true_positives as f64 / d as f64
        }
    }
    /// Largest absolute relative saving error.
    pub fn max_abs_error(&self) -> f64 {
        self.saving_errors.iter().fold(0.0, |m, e| m.max(e.abs()))
    }
    /// Share of hits whose saving is within ±`tolerance`.
    pub fn within(&self, tolerance: f64) -> f64 {
        if self.saving_errors.is_empty() {
            return 1.0;
        }
        self.saving_errors
            .iter()
            .filter(|e| e.abs() <= tolerance)
            .count() as f64
            / self.saving_errors.len() as f64
    }
}

/// The whole score.
#[derive(Debug, Clone, Default)]
pub struct Score {
    /// Per kind, in [`Kind::ALL`] order.
    pub kinds: Vec<(Kind, KindScore)>,
    /// Proposed regions (best or alternative) outside the account's policy.
    pub residency_violations: usize,
}

fn relative_error(truth: &Truth, rec: &Recommendation) -> Option<f64> {
    if truth.location_kg_co2e.abs() > 1e-6 {
        return Some(rec.carbon.location_kg_co2e / truth.location_kg_co2e - 1.0);
    }
    let t = truth.usd_per_month.filter(|u| u.abs() > 1e-9)?;
    Some(rec.cost.usd_or_zero() / t - 1.0)
}

/// Counts region proposals that break the account's policy (must be 0).
pub fn residency_violations(inv: &Inventory<'_>, recs: &[Recommendation]) -> usize {
    let mut n = 0;
    for r in recs {
        let mut targets: Vec<&Target> = r
            .alternatives
            .iter()
            .filter(|a| a.kind == Kind::RegionMigration)
            .map(|a| &a.target)
            .collect();
        if r.kind == Kind::RegionMigration {
            targets.push(&r.target);
        }
        for t in targets {
            let Target::Region(to) = t else { continue };
            match inv.policy_for(&r.account_id) {
                Some(p) if allowed(p, &r.region, to) => {}
                _ => n += 1,
            }
        }
    }
    n
}

/// Scores `recs` against `truth`.
pub fn score(inv: &Inventory<'_>, truth: &[Truth], recs: &[Recommendation]) -> Score {
    let by_arn: HashMap<&str, &Truth> = truth.iter().map(|t| (t.arn.as_str(), t)).collect();
    let reported: HashMap<&str, &Recommendation> =
        recs.iter().map(|r| (r.arn.as_str(), r)).collect();
    let mut kinds: Vec<(Kind, KindScore)> = Kind::ALL
        .iter()
        .map(|k| (*k, KindScore::default()))
        .collect();
    let slot = |kinds: &mut Vec<(Kind, KindScore)>, k: Kind| -> usize {
        kinds.iter().position(|(x, _)| *x == k).expect("every kind")
    };
    for r in recs {
        let i = slot(&mut kinds, r.kind);
        match by_arn.get(r.arn.as_str()) {
            Some(t) if t.kind == r.kind && t.target == r.target => {
                kinds[i].1.true_positives += 1;
                if let Some(e) = relative_error(t, r) {
                    kinds[i].1.saving_errors.push(e);
                }
            }
            _ => kinds[i].1.false_positives += 1,
        }
    }
    for t in truth {
        let hit = reported
            .get(t.arn.as_str())
            .is_some_and(|r| r.kind == t.kind && r.target == t.target);
        if !hit {
            let i = slot(&mut kinds, t.kind);
            kinds[i].1.false_negatives += 1;
        }
    }
    Score {
        kinds,
        residency_violations: residency_violations(inv, recs),
    }
}
