//! Deterministic history of a simulated organisation, per team, account and
//! service, hourly, with optional planted anomalies and their ground truth:
//! what the forecast and anomaly benchmarks measure against.
//!
//! It follows the load shapes of the agent's simulated organisation
//! (`canopy_agent::simulated`: six teams, business-hours peak at 14:00 UTC
//! with quieter weekends, nightly batch, idle and storage resources) at the
//! level of series instead of resources, so a year of history for hundreds
//! of series takes milliseconds and this crate needs no AWS types. Each
//! component (account × team × service) has a base size (log-normal), a
//! load profile ([`Profile`]), a yearly growth rate, AR(1) noise and churn
//! (resources added and removed: small permanent steps). Planted anomalies
//! are **off by default** ([`SimConfig::planted`]): a team's GPU fleet left
//! running, a runaway Lambda function and a region (account) doubling.
//! Same config, same history.

use canopy_emissions::time::SECONDS_PER_HOUR;

/// Teams, as in the agent's simulated organisation.
pub const TEAMS: &[&str] = &["payments", "search", "data", "platform", "ml", "web"];

/// SplitMix64: a small, well-distributed deterministic hash.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A deterministic random stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// AWS services of the simulated components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Ec2,
    Ebs,
    Rds,
    S3,
    Lambda,
    Ecs,
}

impl Service {
    pub const ALL: [Service; 6] = [Service::Ec2, Service::Ebs, Service::Rds, Service::S3, Service::Lambda, Service::Ecs];

    pub fn name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Ebs => "ebs",
            Service::Rds => "rds",
            Service::S3 => "s3",
            Service::Lambda => "lambda",
            Service::Ecs => "ecs",
        }
    }

    /// Median base size of one component, gCO2e per hour.
    fn base_g_per_hour(self) -> f64 {
        match self {
            Service::Ec2 => 300.0,
            Service::Ebs => 40.0,
            Service::Rds => 150.0,
            Service::S3 => 20.0,
            Service::Lambda => 30.0,
            Service::Ecs => 60.0,
        }
    }
}

/// Load shape of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Constant load (storage, idle fleets), slow growth.
    Flat,
    /// Business-hours peak (14:00 UTC) every day of the week.
    Diurnal,
    /// Business-hours peak on weekdays, quieter weekends (the agent's
    /// `Profile::Diurnal`).
    Weekly,
    /// Busy 00:00–06:00 UTC every day.
    NightlyBatch,
    /// `Weekly` with strong growth (40–120 % a year).
    Growth,
}

impl Profile {
    pub const ALL: [Profile; 5] = [Profile::Flat, Profile::Diurnal, Profile::Weekly, Profile::NightlyBatch, Profile::Growth];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Flat => "flat",
            Profile::Diurnal => "diurnal",
            Profile::Weekly => "weekly",
            Profile::NightlyBatch => "nightly-batch",
            Profile::Growth => "growth",
        }
    }

    /// Relative load at `t_unix_s` (mean about 1 over a week).
    fn shape(self, t_unix_s: i64, idle_share: f64) -> f64 {
        let hour = t_unix_s.rem_euclid(86_400) as f64 / 3_600.0;
        let weekend = matches!(t_unix_s.div_euclid(86_400).rem_euclid(7), 2 | 3);
        // CPU as in the agent's simulated profiles, divided by its mean.
        let cpu = match self {
            Profile::Flat => return 1.0,
            Profile::Diurnal => (12.0 + 55.0 * day_curve(hour)) / 39.5,
            Profile::Weekly | Profile::Growth => {
                (12.0 + 55.0 * day_curve(hour) * if weekend { 0.35 } else { 1.0 }) / 33.0
            }
            Profile::NightlyBatch => {
                if hour < 6.0 {
                    80.0 / 24.5
                } else {
                    8.0 / 24.5
                }
            }
        };
        idle_share + (1.0 - idle_share) * cpu
    }
}

/// 0 at 02:00 UTC, 1 at 14:00.
fn day_curve(hour: f64) -> f64 {
    0.5 - 0.5 * ((hour - 2.0) / 24.0 * std::f64::consts::TAU).cos()
}

/// What a planted anomaly simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlantedKind {
    /// A team's GPU instances left running around the clock for days.
    GpuFleetLeftRunning,
    /// One account's Lambda functions in a loop for hours.
    RunawayLambda,
    /// Everything of one account (its region) doubles, for good.
    RegionDoubling,
}

impl PlantedKind {
    pub fn name(self) -> &'static str {
        match self {
            PlantedKind::GpuFleetLeftRunning => "gpu-fleet-left-running",
            PlantedKind::RunawayLambda => "runaway-lambda",
            PlantedKind::RegionDoubling => "region-doubling",
        }
    }
}

/// The series an anomaly is planted in (and should be found in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A team's total over all accounts and services.
    Team(usize),
    /// An account's total.
    Account(u32),
    /// One service of one account.
    AccountService(u32, Service),
}

/// Ground truth of one planted anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedAnomaly {
    pub kind: PlantedKind,
    pub scope: Scope,
    /// First and past-the-last hour (index into the history).
    pub start_hour: usize,
    pub end_hour: usize,
    /// Mean added emissions while it lasts, gCO2e per hour.
    pub added_g_co2e_per_hour: f64,
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    pub accounts: u32,
    pub days: u32,
    /// Start of the first hour (a UTC midnight).
    pub start_unix_s: i64,
    /// Every component gets this profile instead of the realistic mix.
    pub only_profile: Option<Profile>,
    /// Plant anomalies (off by default).
    pub planted: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            seed: 1,
            accounts: 40,
            days: 365,
            // Monday 2025-01-06 00:00 UTC.
            start_unix_s: 1_736_121_600,
            only_profile: None,
            planted: false,
        }
    }
}

/// One account × team × service component.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub account: u32,
    pub team: usize,
    pub service: Service,
    pub profile: Profile,
    pub hourly_g_co2e: Vec<f64>,
    /// What the component would emit without noise and without churn
    /// (base × growth × load shape), gCO2e per hour.
    pub expected_g_co2e: Vec<f64>,
    /// The churn factor (product of the steps so far) in force at each hour.
    pub churn: Vec<f64>,
}

/// A simulated history.
#[derive(Debug, Clone, PartialEq)]
pub struct SimHistory {
    pub config: SimConfig,
    pub hours: usize,
    pub components: Vec<Component>,
    pub planted: Vec<PlantedAnomaly>,
}

impl SimHistory {
    /// The history `config` describes (deterministic).
    pub fn generate(config: &SimConfig) -> SimHistory {
        let hours = config.days as usize * 24;
        let mut components = Vec::new();
        for account in 0..config.accounts {
            let mut rng = Rng::new(config.seed ^ (u64::from(account) + 1).wrapping_mul(0xA24B_AED4_963E_E407));
            let main_team = account as usize % TEAMS.len();
            let other_team = (main_team + 1 + rng.below(TEAMS.len() - 1)) % TEAMS.len();
            for service in Service::ALL {
                let present = match service {
                    Service::Ec2 | Service::Ebs | Service::S3 => true,
                    Service::Rds => rng.uniform() < 0.6,
                    Service::Lambda => rng.uniform() < 0.7,
                    Service::Ecs => rng.uniform() < 0.4,
                };
                if !present {
                    continue;
                }
                for team in [main_team, other_team] {
                    if team == other_team && rng.uniform() < 0.5 {
                        continue;
                    }
                    let profile = config.only_profile.unwrap_or_else(|| match service {
                        Service::Ebs | Service::S3 => Profile::Flat,
                        Service::Lambda => Profile::Weekly,
                        _ => match rng.below(20) {
                            0..=3 => Profile::Flat,
                            4..=7 => Profile::Diurnal,
                            8..=13 => Profile::Weekly,
                            14..=16 => Profile::NightlyBatch,
                            _ => Profile::Growth,
                        },
                    });
                    let parts = component_parts(&mut rng, config, hours, service, profile);
                    components.push(Component {
                        account,
                        team,
                        service,
                        profile,
                        hourly_g_co2e: parts.hourly_g_co2e,
                        expected_g_co2e: parts.expected_g_co2e,
                        churn: parts.churn,
                    });
                }
            }
        }
        let mut history = SimHistory { config: config.clone(), hours, components, planted: Vec::new() };
        if config.planted {
            history.plant();
        }
        history
    }

    fn sum_where(&self, keep: impl Fn(&Component) -> bool) -> Vec<f64> {
        let mut out = vec![0.0; self.hours];
        for c in self.components.iter().filter(|c| keep(c)) {
            out.iter_mut().zip(&c.hourly_g_co2e).for_each(|(o, v)| *o += v);
        }
        out
    }

    /// Hourly series (gCO2e per hour) of a scope.
    pub fn hourly(&self, scope: Scope) -> Vec<f64> {
        match scope {
            Scope::Team(t) => self.sum_where(|c| c.team == t),
            Scope::Account(a) => self.sum_where(|c| c.account == a),
            Scope::AccountService(a, s) => self.sum_where(|c| c.account == a && c.service == s),
        }
    }

    /// Every (account, service) pair with a component.
    pub fn account_services(&self) -> Vec<(u32, Service)> {
        let mut pairs: Vec<(u32, Service)> = self.components.iter().map(|c| (c.account, c.service)).collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    fn plant(&mut self) {
        let mut rng = Rng::new(self.config.seed ^ 0x0050_4C41_4E54_4544);
        let hours = self.hours;
        let accounts = self.config.accounts.max(1);
        // Planted after five weeks (detector warm-up) and before the last two days.
        let (first, last) = (35 * 24, hours.saturating_sub(48));
        if last <= first + 24 * 8 {
            return;
        }
        let scale = (hours as f64 / (365.0 * 24.0)).max(0.1);
        let count = |per_year: f64| ((per_year * scale).round() as usize).max(1);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        for _ in 0..count(4.0) {
            // GPU fleet: from a Friday evening, 2 to 7 days, 30–80 % of the team's mean.
            let team = rng.below(TEAMS.len());
            let day = first / 24 + rng.below((last - first) / 24 - 8);
            let start = day * 24 + 18;
            let duration = 24 * (2 + rng.below(6));
            let team_mean = mean(&self.hourly(Scope::Team(team)));
            let added = team_mean * rng.range(0.3, 0.8);
            let account = self.components.iter().find(|c| c.team == team).map_or(0, |c| c.account);
            let mut series = vec![0.0; hours];
            series[start..(start + duration).min(hours)].iter_mut().for_each(|v| *v = added * (1.0 + 0.02 * rng.normal()));
            self.components.push(Component {
                account,
                team,
                service: Service::Ec2,
                profile: Profile::Flat,
                hourly_g_co2e: series,
                expected_g_co2e: vec![0.0; hours],
                churn: vec![1.0; hours],
            });
            self.planted.push(PlantedAnomaly {
                kind: PlantedKind::GpuFleetLeftRunning,
                scope: Scope::Team(team),
                start_hour: start,
                end_hour: (start + duration).min(hours),
                added_g_co2e_per_hour: added,
            });
        }
        for _ in 0..count(8.0) {
            // Runaway Lambda: 4 to 36 hours at 3–10 × the account's Lambda mean
            // (at least half the account's own mean).
            let lambdas: Vec<usize> =
                (0..self.components.len()).filter(|&i| self.components[i].service == Service::Lambda).collect();
            let Some(&index) = lambdas.get(rng.below(lambdas.len())) else { break };
            let account = self.components[index].account;
            let start = first + rng.below(last - first - 36);
            let duration = 4 + rng.below(33);
            let lambda_mean = mean(&self.hourly(Scope::AccountService(account, Service::Lambda)));
            let account_mean = mean(&self.hourly(Scope::Account(account)));
            let added = (lambda_mean * rng.range(3.0, 10.0)).max(0.5 * account_mean);
            let c = &mut self.components[index];
            c.hourly_g_co2e[start..start + duration].iter_mut().for_each(|v| *v += added);
            self.planted.push(PlantedAnomaly {
                kind: PlantedKind::RunawayLambda,
                scope: Scope::AccountService(account, Service::Lambda),
                start_hour: start,
                end_hour: start + duration,
                added_g_co2e_per_hour: added,
            });
        }
        for _ in 0..count(3.0) {
            // Region doubling: every component of one account ×2 from a point on.
            let account = rng.below(accounts as usize) as u32;
            let start = first + rng.below(last - first);
            let before = self.hourly(Scope::Account(account));
            for c in self.components.iter_mut().filter(|c| c.account == account) {
                c.hourly_g_co2e[start..].iter_mut().for_each(|v| *v *= 2.0);
            }
            self.planted.push(PlantedAnomaly {
                kind: PlantedKind::RegionDoubling,
                scope: Scope::Account(account),
                start_hour: start,
                end_hour: hours,
                added_g_co2e_per_hour: mean(&before[start..]),
            });
        }
    }
}

struct ComponentParts {
    hourly_g_co2e: Vec<f64>,
    expected_g_co2e: Vec<f64>,
    churn: Vec<f64>,
}

fn component_series(rng: &mut Rng, config: &SimConfig, hours: usize, service: Service, profile: Profile) -> Vec<f64> {
    component_parts(rng, config, hours, service, profile).hourly_g_co2e
}

fn component_parts(rng: &mut Rng, config: &SimConfig, hours: usize, service: Service, profile: Profile) -> ComponentParts {
    let base = service.base_g_per_hour() * (0.8 * rng.normal()).exp();
    let growth_per_year = match profile {
        Profile::Growth => rng.range(0.4, 1.2),
        _ => rng.range(-0.1, 0.25),
    };
    let idle_share = rng.range(0.35, 0.7);
    let noise_sd = rng.range(0.03, 0.10);
    // Day-to-day variation of the load (traffic, batch sizes); storage hardly varies.
    let daily_sd = match profile {
        Profile::Flat => rng.range(0.002, 0.01),
        _ => rng.range(0.03, 0.12),
    };
    let mut day_factor = 1.0;
    let rho: f64 = 0.7;
    let innovation_sd = noise_sd * (1.0 - rho * rho).sqrt();
    // Churn: a resource added or removed every ~45 days, ±2–10 % for good.
    let mut churn = 1.0;
    let mut next_churn = (rng.range(0.0, 90.0) * 24.0) as usize;
    let mut ar = 0.0;
    let per_hour_growth = (1.0 + growth_per_year).ln() / (365.0 * 24.0);
    let mut parts = ComponentParts {
        hourly_g_co2e: Vec::with_capacity(hours),
        expected_g_co2e: Vec::with_capacity(hours),
        churn: Vec::with_capacity(hours),
    };
    for h in 0..hours {
        if h == next_churn {
            let step = rng.range(0.02, 0.10);
            churn *= if rng.uniform() < 0.55 { 1.0 + step } else { 1.0 - step };
            next_churn += (rng.range(15.0, 75.0) * 24.0) as usize;
        }
        if h % 24 == 0 {
            day_factor = (1.0 + daily_sd * rng.normal()).max(0.2);
        }
        ar = rho * ar + innovation_sd * rng.normal();
        let t = config.start_unix_s + h as i64 * SECONDS_PER_HOUR;
        let expected = base * (per_hour_growth * h as f64).exp() * profile.shape(t, idle_share);
        parts.hourly_g_co2e.push((expected * churn * day_factor * (1.0 + ar)).max(0.0));
        parts.expected_g_co2e.push(expected);
        parts.churn.push(churn);
    }
    parts
}

/// One synthetic component series for load benchmarks: `hours` hourly
/// values from `start_unix_s` with a profile drawn from `seed` (the same
/// generator as the simulated organisation's components).
pub fn synthetic_hourly(seed: u64, start_unix_s: i64, hours: usize) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let profile = Profile::ALL[rng.below(Profile::ALL.len())];
    let service = Service::ALL[rng.below(Service::ALL.len())];
    let config = SimConfig { start_unix_s, ..SimConfig::default() };
    component_series(&mut rng, &config, hours, service, profile)
}

/// One synthetic daily series for load benchmarks (weekday shape, growth,
/// AR(1) noise, churn steps), `days` values, deterministic from `seed`.
pub fn synthetic_daily(seed: u64, days: usize) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let base = 5_000.0 * (0.8 * rng.normal()).exp();
    let weekend = rng.range(0.5, 1.0);
    let growth_per_day = rng.range(-0.1, 0.8) / 365.0;
    let noise_sd = rng.range(0.02, 0.08);
    let (mut ar, mut churn) = (0.0, 1.0);
    (0..days)
        .map(|d| {
            if rng.uniform() < 1.0 / 45.0 {
                churn *= 1.0 + rng.range(-0.08, 0.1);
            }
            ar = 0.5 * ar + noise_sd * 0.866 * rng.normal();
            let w = if d % 7 >= 5 { weekend } else { 1.0 };
            (base * (1.0 + growth_per_day * d as f64) * w * churn * (1.0 + ar)).max(0.0)
        })
        .collect()
}

/// Sums of 24 hours (the first hour must start a UTC day); a partial last
/// day is dropped.
pub fn daily_from_hourly(hourly: &[f64]) -> Vec<f64> {
    hourly.chunks_exact(24).map(|d| d.iter().sum()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_config_same_history_and_planting_is_off_by_default() {
        let config = SimConfig { accounts: 6, days: 60, ..SimConfig::default() };
        let a = SimHistory::generate(&config);
        assert_eq!(a, SimHistory::generate(&config));
        assert!(a.planted.is_empty());
        assert_ne!(a, SimHistory::generate(&SimConfig { seed: 2, ..config.clone() }));
        assert_eq!(a.hours, 60 * 24);
        assert!(a.components.iter().all(|c| c.hourly_g_co2e.len() == a.hours && c.hourly_g_co2e.iter().all(|v| *v >= 0.0)));
        // Every account has EC2, EBS and S3.
        for account in 0..6 {
            for s in [Service::Ec2, Service::Ebs, Service::S3] {
                assert!(a.components.iter().any(|c| c.account == account && c.service == s));
            }
        }
    }

    #[test]
    fn planted_anomalies_are_in_their_series() {
        let clean = SimHistory::generate(&SimConfig { accounts: 20, days: 120, ..SimConfig::default() });
        let planted = SimHistory::generate(&SimConfig { accounts: 20, days: 120, planted: true, ..SimConfig::default() });
        // GPU fleets are extra components; everything before them has the same shape.
        assert!(planted.components.len() > clean.components.len());
        for (p, c) in planted.components.iter().zip(&clean.components) {
            assert_eq!((p.account, p.team, p.service, p.profile), (c.account, c.team, c.service, c.profile));
        }
        let kinds: std::collections::BTreeSet<PlantedKind> = planted.planted.iter().map(|p| p.kind).collect();
        assert_eq!(kinds.len(), 3);
        for p in &planted.planted {
            let with = planted.hourly(p.scope);
            let without = clean.hourly(p.scope);
            let added: f64 = (p.start_hour..p.end_hour).map(|h| with[h] - without[h]).sum::<f64>() / (p.end_hour - p.start_hour) as f64;
            assert!(added > 0.2 * p.added_g_co2e_per_hour, "{p:?}: {added}");
            assert!(p.start_hour >= 35 * 24 && p.end_hour <= planted.hours);
        }
    }

    #[test]
    fn weekly_profile_is_lower_on_weekends_and_growth_grows() {
        let start = SimConfig::default().start_unix_s; // a Monday
        let wednesday_14 = start + 2 * 86_400 + 14 * 3_600;
        let saturday_14 = start + 5 * 86_400 + 14 * 3_600;
        assert!(Profile::Weekly.shape(wednesday_14, 0.5) > Profile::Weekly.shape(saturday_14, 0.5) + 0.3);
        assert!((Profile::Diurnal.shape(wednesday_14, 0.5) - Profile::Diurnal.shape(saturday_14, 0.5)).abs() < 1e-12);
        let h = SimHistory::generate(&SimConfig { accounts: 5, days: 364, only_profile: Some(Profile::Growth), ..SimConfig::default() });
        let daily = daily_from_hourly(&h.hourly(Scope::Account(0)));
        let first: f64 = daily[..28].iter().sum();
        let last: f64 = daily[daily.len() - 28..].iter().sum();
        assert!(last > 1.3 * first, "{first} → {last}");
    }
}
