//! The rules, one module each, and what they share: the recommendation
//! skeleton and the cost arithmetic (billed cost first, then the price
//! table, else unknown). **A rule reads the inventory and returns values; it
//! never estimates energy itself** (see [`crate::recommendation`]).

pub mod graviton;
pub mod idle;
pub mod region;
pub mod rightsizing;
pub mod scheduling;
pub mod storage;

use crate::input::{Inventory, ResourceSnapshot, Utilisation};
use crate::prices::PRICE_TABLE_SOURCE;
use crate::recommendation::{
    CarbonSaving, Confidence, CostBasis, CostSaving, Effort, Evidence, Kind, Recommendation, Risk,
    Target,
};

/// Shortest utilisation window a utilisation-based rule accepts, days.
pub const MIN_WINDOW_DAYS: f64 = 14.0;

/// Runs every rule on every resource (before deduplication).
pub fn all(inv: &Inventory<'_>) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for r in &inv.resources {
        out.extend(rightsizing::rightsizing(inv, r));
        out.extend(graviton::graviton(inv, r));
        out.extend(idle::idle(inv, r));
        out.extend(storage::storage(inv, r));
        out.extend(region::region(inv, r));
        out.extend(scheduling::off_hours(inv, r));
        out.extend(scheduling::time_shift(inv, r));
    }
    out
}

/// The utilisation summary when it covers at least [`MIN_WINDOW_DAYS`].
pub(crate) fn long_enough(r: &ResourceSnapshot) -> Option<&Utilisation> {
    r.utilisation
        .as_ref()
        .filter(|u| u.window_days() >= MIN_WINDOW_DAYS - 1e-9)
}

/// Fraction of the window the resource ran (sampled hours / window hours).
pub(crate) fn running_fraction(u: &Utilisation) -> f64 {
    let hours = (u.window_end_unix_s - u.window_start_unix_s) as f64 / 3600.0;
    (u.sampled_hours as f64 / hours).clamp(0.0, 1.0)
}

/// Evidence with the utilisation summary's figures.
pub(crate) fn evidence(rule: String, u: Option<&Utilisation>) -> Evidence {
    Evidence {
        rule,
        window_start_unix_s: u.map(|u| u.window_start_unix_s),
        window_end_unix_s: u.map(|u| u.window_end_unix_s),
        cpu_p95_pct: u.map(|u| u.cpu_p95_pct),
        cpu_mean_pct: u.map(|u| u.cpu_mean_pct),
        memory_p95_pct: u.and_then(|u| u.memory_p95_pct),
        figures: Vec::new(),
    }
}

/// Cost saving: `billed × saved_fraction` when the resource is billed (and
/// the fraction is known), else `list_saving`, else unknown.
pub(crate) fn cost(
    r: &ResourceSnapshot,
    saved_fraction: Option<f64>,
    list_saving: Option<f64>,
    unknown: &str,
) -> CostSaving {
    if let (Some(billed), Some(f)) = (r.billed_usd_per_month, saved_fraction) {
        return CostSaving::Known {
            usd_per_month: billed * f,
            basis: CostBasis::Billing,
        };
    }
    match list_saving {
        Some(usd) => CostSaving::Known {
            usd_per_month: usd,
            basis: CostBasis::PriceTable(PRICE_TABLE_SOURCE),
        },
        None => CostSaving::Unknown {
            reason: unknown.to_owned(),
        },
    }
}

/// A recommendation with no alternatives yet.
#[allow(clippy::too_many_arguments)]
pub(crate) fn recommendation(
    r: &ResourceSnapshot,
    kind: Kind,
    action: String,
    target: Target,
    carbon: CarbonSaving,
    cost: CostSaving,
    confidence: Confidence,
    evidence: Evidence,
    risk: Risk,
    effort: Effort,
    caveats: Vec<String>,
) -> Recommendation {
    Recommendation {
        id: format!("{}:{}", kind.as_str(), r.arn),
        kind,
        arn: r.arn.clone(),
        account_id: r.account_id.clone(),
        region: r.region.clone(),
        team: r.team.clone(),
        action,
        target,
        carbon,
        cost,
        confidence,
        evidence,
        risk,
        effort,
        caveats,
        alternatives: Vec::new(),
    }
}

/// Instances behind one resource: 2 for a Multi-AZ RDS instance (the
/// standby runs the same class), else 1. Footprints of instance rules are
/// scaled by it; billed costs already include the standby.
pub(crate) fn instance_copies(r: &ResourceSnapshot) -> f64 {
    let multi_az = r
        .attributes
        .get("multi_az")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if r.service == "rds" && multi_az {
        2.0
    } else {
        1.0
    }
}

/// The instance id at the end of an EC2 instance ARN (`…:instance/i-0abc` → `i-0abc`).
pub(crate) fn instance_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Hand-made inventories for the rule tests.
    use canopy_emissions::grid::MarketConfig;
    use canopy_emissions::time::unix_seconds;

    use crate::input::{Architecture, Inventory, Lifecycle, ResourceSnapshot, Utilisation};

    /// 2026-12-07 00:00 UTC, a Monday.
    pub fn as_of() -> i64 {
        unix_seconds(2026, 12, 7, 0, 0, 0)
    }

    /// An inventory over `resources` with no policies and no hourly data.
    pub fn inventory(market: &MarketConfig, resources: Vec<ResourceSnapshot>) -> Inventory<'_> {
        Inventory {
            as_of_unix_s: as_of(),
            resources,
            accounts: vec![],
            policies: vec![],
            non_production: None,
            market,
            hourly: None,
        }
    }

    /// A flat utilisation summary over `days` before the snapshot.
    pub fn flat(days: i64, mean: f64, p95: f64) -> Utilisation {
        Utilisation {
            window_start_unix_s: as_of() - days * 86_400,
            window_end_unix_s: as_of(),
            sampled_hours: (days * 24) as u32,
            cpu_mean_pct: mean,
            cpu_p95_pct: p95,
            cpu_max_pct: p95.max(mean),
            memory_p95_pct: None,
            connections_max: None,
            invocations_total: None,
            hour_of_week_cpu_pct: None,
        }
    }

    /// A running EC2 instance.
    pub fn ec2(
        id: &str,
        region: &str,
        class: &str,
        arch: Architecture,
        u: Option<Utilisation>,
    ) -> ResourceSnapshot {
        let mut r = ResourceSnapshot::new(
            &format!("arn:aws:ec2:{region}:123456789012:instance/{id}"),
            "123456789012",
            region,
            "ec2",
            "instance",
        );
        r.class = Some(class.into());
        r.architecture = Some(arch);
        r.lifecycle = Lifecycle::Running;
        r.utilisation = u;
        r
    }
}
