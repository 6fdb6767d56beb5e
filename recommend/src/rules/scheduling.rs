//! Scheduling: (1) non-production resources (the inventory's tag rule)
//! running nights and weekends → stop outside Monday–Friday 07:00–19:00 UTC;
//! (2) batch-like daily profiles (a short block of high CPU over a low
//! baseline) → start the block in the cleanest hours of the day, from the
//! hourly intensity of the region's zone over the utilisation window
//! (carbon-aware time shifting). The energy of the block comes from the
//! emissions model (the instance's power at the block's CPU minus at the
//! baseline, PUE included). **Time shifting never fires without hourly
//! intensity covering every hour it averages; off-hours never fires on a
//! resource the tag rule does not mark non-production.**

use canopy_emissions::grid::{GridFactor, zone_for_region};
use canopy_emissions::model::instance_power;

use super::{cost, evidence, instance_copies, long_enough, recommendation};
use crate::input::{HOURS_PER_WEEK, Inventory, Lifecycle, ResourceKind, ResourceSnapshot};
use crate::prices::{HOURS_PER_MONTH, ec2_usd_per_month};
use crate::recommendation::{
    CarbonSaving, Confidence, Effort, Kind, Recommendation, Risk, Target, instance_month,
};

/// Working hours kept by the off-hours schedule, UTC (Monday–Friday).
pub const WORK_START_HOUR: usize = 7;
/// End of working hours, UTC (exclusive).
pub const WORK_END_HOUR: usize = 19;
/// Share of off-hours a resource must be running in for the schedule to fire.
pub const MIN_OFF_HOURS_RUNNING: f64 = 0.5;
/// Smallest peak-over-baseline CPU difference for a batch-like profile, percentage points.
pub const BATCH_MIN_LIFT_PCT: f64 = 20.0;
/// Longest batch block, hours.
pub const BATCH_MAX_HOURS: usize = 8;
/// Smallest saving worth a shift, share of the block's current operational emissions.
pub const MIN_SHIFT_SAVING_SHARE: f64 = 0.1;

/// True for an hour of the week outside Monday–Friday working hours.
pub fn is_off_hour(how: usize) -> bool {
    let (day, hour) = (how / 24, how % 24);
    day >= 5 || !(WORK_START_HOUR..WORK_END_HOUR).contains(&hour)
}

fn schedulable(r: &ResourceSnapshot) -> bool {
    matches!(
        r.kind(),
        ResourceKind::Ec2Instance | ResourceKind::RdsInstance
    ) && r.lifecycle == Lifecycle::Running
}

/// The off-hours schedule for a non-production resource, if the rule fires.
pub fn off_hours(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    let rule = inv.non_production.as_ref()?;
    if !schedulable(r) || !rule.matches(r) {
        return None;
    }
    let u = long_enough(r)?;
    let profile = u.hour_of_week_cpu_pct.as_ref()?;
    let off: Vec<f64> = (0..HOURS_PER_WEEK)
        .filter(|h| is_off_hour(*h))
        .filter_map(|h| profile[h])
        .collect();
    let off_total = (0..HOURS_PER_WEEK).filter(|h| is_off_hour(*h)).count();
    let running = profile.iter().filter(|v| v.is_some()).count();
    if (off.len() as f64) < MIN_OFF_HOURS_RUNNING * off_total as f64 || running == 0 {
        return None;
    }
    let class = r.class.as_deref()?;
    let off_cpu = off.iter().sum::<f64>() / off.len() as f64;
    let saved_hours = HOURS_PER_MONTH * off.len() as f64 / HOURS_PER_WEEK as f64;
    let carbon = instance_month(inv, &r.region, class, r.vcpus, saved_hours, Some(off_cpu))?
        .scale(instance_copies(r))
        .saving_to(&Default::default());
    let list = ec2_usd_per_month(&r.region, class).map(|m| m * saved_hours / HOURS_PER_MONTH);
    let cost = cost(
        r,
        Some(off.len() as f64 / running as f64),
        list,
        "no billed cost and no listed price for this type and region",
    );
    let on = HOURS_PER_WEEK - off_total;
    let mut ev = evidence(
        format!(
            "non-production ({}={}) running {} of {off_total} off-hours per week",
            rule.tag_key,
            r.tags.get(&rule.tag_key).map_or("", String::as_str),
            off.len()
        ),
        Some(u),
    );
    ev.figures
        .push(("off_hours_mean_cpu_pct".into(), format!("{off_cpu:.1}")));
    ev.figures
        .push(("hours_saved_per_month".into(), format!("{saved_hours:.0}")));
    let mut caveats = vec![
        "working hours are taken as 07:00-19:00 UTC: shift them to the team's time zone".to_owned(),
    ];
    if r.kind() == ResourceKind::RdsInstance {
        caveats.push(
            "RDS restarts a stopped instance after 7 days: the schedule must stop it again".into(),
        );
    }
    Some(recommendation(
        r,
        Kind::OffHoursSchedule,
        format!("stop {class} outside Mon-Fri {WORK_START_HOUR:02}:00-{WORK_END_HOUR:02}:00 UTC"),
        Target::Schedule {
            on_hours_per_week: on as u32,
            description: format!("Mon-Fri {WORK_START_HOUR:02}:00-{WORK_END_HOUR:02}:00 UTC"),
        },
        carbon,
        cost,
        Confidence::Medium,
        ev,
        Risk::Low,
        Effort::Medium,
        caveats,
    ))
}

/// Mean CPU per hour of the day (UTC) from the hour-of-week profile; `None`
/// when some hour of the day never ran.
pub fn hour_of_day_profile(profile: &[Option<f64>]) -> Option<[f64; 24]> {
    let mut out = [0.0; 24];
    for (h, slot) in out.iter_mut().enumerate() {
        let v: Vec<f64> = (0..7).filter_map(|d| profile[d * 24 + h]).collect();
        if v.is_empty() {
            return None;
        }
        *slot = v.iter().sum::<f64>() / v.len() as f64;
    }
    Some(out)
}

/// The batch block of a daily profile: (first hour, length, baseline CPU),
/// when the profile is batch-like (one contiguous block, at most
/// [`BATCH_MAX_HOURS`], at least [`BATCH_MIN_LIFT_PCT`] above the baseline).
pub fn batch_block(day: &[f64; 24]) -> Option<(usize, usize, f64)> {
    let mut sorted = *day;
    sorted.sort_by(f64::total_cmp);
    let baseline = sorted[5]; // 25th percentile of 24 values
    let peak = sorted[23];
    if peak - baseline < BATCH_MIN_LIFT_PCT {
        return None;
    }
    let high: Vec<bool> = day
        .iter()
        .map(|v| *v >= baseline + 0.5 * (peak - baseline))
        .collect();
    let len = high.iter().filter(|h| **h).count();
    if len == 0 || len > BATCH_MAX_HOURS {
        return None;
    }
    // contiguous (cyclically): exactly one rising edge
    let starts: Vec<usize> = (0..24)
        .filter(|h| high[*h] && !high[(h + 23) % 24])
        .collect();
    (starts.len() == 1).then(|| (starts[0], len, baseline))
}

/// Mean intensity per hour of the day over `[start, end)` (whole days), location
/// and market; `None` when the source misses any hour.
fn daily_intensity(
    inv: &Inventory<'_>,
    region: &str,
    start: i64,
    end: i64,
) -> Option<([f64; 24], [f64; 24])> {
    let source = inv.hourly?;
    let zone = zone_for_region(region)?;
    let first_day = canopy_emissions::time::day_start(start + 86_399);
    let days = (end - first_day) / 86_400;
    if days < 1 {
        return None;
    }
    let (mut loc, mut mkt) = ([0.0; 24], [0.0; 24]);
    for d in 0..days {
        for h in 0..24 {
            let f: GridFactor = source.intensity(zone, first_day + d * 86_400 + h as i64 * 3600)?;
            loc[h] += f.g_co2e_per_kwh / days as f64;
            mkt[h] += inv.market.market_factor(region, &f).g_co2e_per_kwh / days as f64;
        }
    }
    Some((loc, mkt))
}

/// The time-shift recommendation for a batch-like resource, if the rule fires.
pub fn time_shift(inv: &Inventory<'_>, r: &ResourceSnapshot) -> Option<Recommendation> {
    if !schedulable(r) {
        return None;
    }
    let u = long_enough(r)?;
    let day = hour_of_day_profile(u.hour_of_week_cpu_pct.as_ref()?)?;
    let (first, len, baseline) = batch_block(&day)?;
    let class = r.class.as_deref()?;
    let (loc, mkt) = daily_intensity(inv, &r.region, u.window_start_unix_s, u.window_end_unix_s)?;
    // Extra facility energy of each block hour over the baseline, kWh per day.
    let base = instance_month(inv, &r.region, class, r.vcpus, 1.0, Some(baseline))?.energy_kwh;
    let extra: Vec<f64> = (0..len)
        .map(|k| {
            Some(
                (instance_month(
                    inv,
                    &r.region,
                    class,
                    r.vcpus,
                    1.0,
                    Some(day[(first + k) % 24]),
                )?
                .energy_kwh
                    - base)
                    .max(0.0),
            )
        })
        .collect::<Option<_>>()?;
    let at = |start: usize, f: &[f64; 24]| -> f64 {
        (0..len).map(|k| extra[k] * f[(start + k) % 24]).sum()
    };
    let now_loc = at(first, &loc);
    let best = (0..24).min_by(|a, b| at(*a, &loc).total_cmp(&at(*b, &loc)).then(a.cmp(b)))?;
    let saved_loc = now_loc - at(best, &loc);
    if best == first || saved_loc < MIN_SHIFT_SAVING_SHARE * now_loc {
        return None;
    }
    let saved_mkt = at(first, &mkt) - at(best, &mkt);
    let days_per_month = HOURS_PER_MONTH / 24.0;
    let rel = instance_power(class).map_or(0.5, |p| p.coefficient_uncertainty());
    let kg = |g: f64| g * days_per_month / 1000.0;
    let carbon = CarbonSaving {
        location_kg_co2e: kg(saved_loc),
        location_low_kg_co2e: kg(saved_loc) * (1.0 - rel),
        location_high_kg_co2e: kg(saved_loc) * (1.0 + rel),
        market_kg_co2e: kg(saved_mkt),
        market_low_kg_co2e: kg(saved_mkt).min(kg(saved_mkt) * (1.0 - rel)),
        market_high_kg_co2e: kg(saved_mkt).max(kg(saved_mkt) * (1.0 + rel)),
    };
    let mut ev = evidence(
        format!(
            "batch-like profile: {len} h block from {first:02}:00 UTC at up to {:.0} % over a {baseline:.0} % baseline",
            day.iter().copied().fold(0.0, f64::max)
        ),
        Some(u),
    );
    ev.figures.push((
        "block_intensity_now_g_per_kwh".into(),
        format!(
            "{:.0}",
            (0..len).map(|k| loc[(first + k) % 24]).sum::<f64>() / len as f64
        ),
    ));
    ev.figures.push((
        "block_intensity_best_g_per_kwh".into(),
        format!(
            "{:.0}",
            (0..len).map(|k| loc[(best + k) % 24]).sum::<f64>() / len as f64
        ),
    ));
    ev.figures.push((
        "block_extra_kwh_per_day".into(),
        format!("{:.3}", extra.iter().sum::<f64>()),
    ));
    Some(recommendation(
        r,
        Kind::TimeShift,
        format!("start the daily batch at {best:02}:00 UTC instead of {first:02}:00 UTC"),
        Target::StartAtHour(best as u8),
        carbon,
        crate::recommendation::CostSaving::Known {
            usd_per_month: 0.0,
            basis: crate::recommendation::CostBasis::PriceTable(
                "same instance-hours: no price change",
            ),
        },
        Confidence::Medium,
        ev,
        Risk::Low,
        Effort::Medium,
        vec![
            "the job and its dependants must tolerate the new start time".into(),
            "the saving is the average day's: the cleanest hours move with weather and season"
                .into(),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use canopy_emissions::grid::{CarbonIntensitySource, MarketConfig};
    use canopy_emissions::model::Provenance;

    use super::*;
    use crate::input::{Architecture, NonProductionRule, Utilisation};
    use crate::rules::testkit::{as_of, ec2, inventory};

    /// 500 g/kWh except 100 g/kWh from 10:00 to 15:00 UTC.
    struct Solar;
    impl CarbonIntensitySource for Solar {
        fn intensity(&self, _zone: &str, hour_start_unix_s: i64) -> Option<GridFactor> {
            let h = hour_start_unix_s.rem_euclid(86_400) / 3600;
            let g = if (10..15).contains(&h) { 100.0 } else { 500.0 };
            Some(GridFactor {
                g_co2e_per_kwh: g,
                provenance: Provenance {
                    source: "test",
                    vintage: "test",
                },
            })
        }
    }

    fn hourly(days: i64, f: impl Fn(usize) -> Option<f64>) -> Utilisation {
        let start = as_of() - days * 86_400;
        let cpu: Vec<Option<f64>> = (0..days * 24)
            .map(|i| f(crate::input::hour_of_week(start + i * 3600)))
            .collect();
        Utilisation::from_hourly(start, &cpu).unwrap()
    }

    #[test]
    fn off_hours_for_tagged_non_production_only() {
        let market = MarketConfig::new();
        let u = hourly(14, |_| Some(30.0));
        let mut dev = ec2(
            "i-1",
            "us-east-1",
            "m5.large",
            Architecture::X86_64,
            Some(u.clone()),
        );
        dev.tags.insert("env".into(), "Dev".into());
        let prod = ec2(
            "i-2",
            "us-east-1",
            "m5.large",
            Architecture::X86_64,
            Some(u),
        );
        let mut inv = inventory(&market, vec![dev.clone(), prod.clone()]);
        assert!(off_hours(&inv, &dev).is_none(), "no rule configured");
        inv.non_production = Some(NonProductionRule {
            tag_key: "env".into(),
            values: vec!["dev".into(), "test".into()],
        });
        let rec = off_hours(&inv, &dev).unwrap();
        assert!(off_hours(&inv, &prod).is_none());
        // 108 of 168 hours off: 469.3 h a month, $0.096/h
        assert!((rec.cost.usd_or_zero() - 0.096 * 730.0 * 108.0 / 168.0).abs() < 1e-6);
        let expected = instance_month(
            &inv,
            "us-east-1",
            "m5.large",
            None,
            730.0 * 108.0 / 168.0,
            Some(30.0),
        )
        .unwrap();
        assert!((rec.carbon.location_kg_co2e - expected.location_g / 1000.0).abs() < 1e-9);
        // already scheduled (only working hours sampled): nothing
        let scheduled = hourly(14, |how| (!is_off_hour(how)).then_some(30.0));
        dev.utilisation = Some(scheduled);
        assert!(off_hours(&inv, &dev).is_none());
    }

    #[test]
    fn batch_moves_to_the_clean_hours() {
        let market = MarketConfig::new();
        // 4 h at 90 % from 01:00 UTC over a 5 % baseline
        let u = hourly(14, |how| {
            Some(if (1..5).contains(&(how % 24)) {
                90.0
            } else {
                5.0
            })
        });
        let r = ec2(
            "i-1",
            "eu-west-1",
            "m7g.2xlarge",
            Architecture::Arm64,
            Some(u),
        );
        let mut inv = inventory(&market, vec![r.clone()]);
        assert!(time_shift(&inv, &r).is_none(), "no hourly data");
        inv.hourly = Some(&Solar);
        let rec = time_shift(&inv, &r).unwrap();
        assert_eq!(rec.target, Target::StartAtHour(10));
        // the block's extra energy × (500 − 100) g/kWh × 30.4 days
        let e = |c: f64| {
            instance_month(&inv, "eu-west-1", "m7g.2xlarge", None, 1.0, Some(c))
                .unwrap()
                .energy_kwh
        };
        let expected = 4.0 * (e(90.0) - e(5.0)) * 400.0 * 730.0 / 24.0 / 1000.0;
        assert!(
            (rec.carbon.location_kg_co2e - expected).abs() < 1e-6,
            "{} vs {expected}",
            rec.carbon.location_kg_co2e
        );
        // flat profile: not batch-like
        let flat = ec2(
            "i-2",
            "eu-west-1",
            "m7g.2xlarge",
            Architecture::Arm64,
            Some(hourly(14, |_| Some(40.0))),
        );
        assert!(time_shift(&inv, &flat).is_none());
        // already in the clean hours
        let good = ec2(
            "i-3",
            "eu-west-1",
            "m7g.2xlarge",
            Architecture::Arm64,
            Some(hourly(14, |how| {
                Some(if (10..14).contains(&(how % 24)) {
                    90.0
                } else {
                    5.0
                })
            })),
        );
        assert!(time_shift(&inv, &good).is_none());
    }

    #[test]
    fn market_saving_follows_the_market_set() {
        let u = hourly(14, |how| {
            Some(if (1..5).contains(&(how % 24)) {
                90.0
            } else {
                5.0
            })
        });
        let r = ec2(
            "i-1",
            "eu-west-1",
            "m7g.2xlarge",
            Architecture::Arm64,
            Some(u),
        );
        let saving = |market: &MarketConfig| {
            let mut inv = inventory(market, vec![r.clone()]);
            inv.hourly = Some(&Solar);
            time_shift(&inv, &r).unwrap().carbon
        };
        let plain = saving(&MarketConfig::new());
        assert!(
            (plain.market_kg_co2e - plain.location_kg_co2e).abs() < 1e-9,
            "no market data: market = location"
        );
        let mut share = MarketConfig::new();
        share
            .set_region(
                "eu-west-1",
                canopy_emissions::grid::MarketRegion {
                    renewable_share: 0.5,
                    residual_mix_g_co2e_per_kwh: None,
                },
            )
            .unwrap();
        assert!((saving(&share).market_kg_co2e - 0.5 * plain.location_kg_co2e).abs() < 1e-9);
        let mut residual = MarketConfig::new();
        residual
            .set_region(
                "eu-west-1",
                canopy_emissions::grid::MarketRegion {
                    renewable_share: 0.2,
                    residual_mix_g_co2e_per_kwh: Some(400.0),
                },
            )
            .unwrap();
        // a flat contractual factor: shifting hours changes nothing market-based
        assert!(saving(&residual).market_kg_co2e.abs() < 1e-9);
    }

    #[test]
    fn batch_block_detection() {
        let mut day = [5.0; 24];
        day[22] = 80.0;
        day[23] = 80.0;
        day[0] = 80.0;
        assert_eq!(batch_block(&day), Some((22, 3, 5.0)));
        day[12] = 80.0;
        assert_eq!(batch_block(&day), None, "two blocks");
    }
}
