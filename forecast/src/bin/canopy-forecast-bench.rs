//! `canopy-forecast-bench`: the forecast and anomaly benchmarks of issue 17,
//! outside CI (a small version runs as the unit test
//! `backtest::tests::smoke_backtest_meets_the_targets_on_a_small_run`).
//!
//! 1. Rolling-origin forecast backtests over the simulator's history
//!    (several seeds; the realistic mix and each profile alone): MASE
//!    against the 7-day seasonal naive method at 7 and 30 days, coverage of
//!    the 80 % and 95 % intervals.
//! 2. Recall of the detectors on planted anomalies, false alerts per
//!    series-month on clean history.
//! 3. One evaluation round over `--round-series` series (default 50,000, as
//!    for 10,000 accounts): a daily forecast 12 months ahead with a budget
//!    exhaustion date, daily anomaly detection on 13 weeks and hourly on
//!    5 weeks, per series; wall time, CPU time in the library, peak RSS.
//!
//! Usage: `cargo run -p canopy-forecast --release --bin canopy-forecast-bench -- [--seeds N]
//! [--first-seed N] [--profile NAME] [--accounts N] [--days N] [--round-series N] [--threads N] [--skip-backtest] [--skip-anomalies] [--skip-round]`

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use canopy_forecast::backtest::{BacktestConfig, false_alerts, forecast_backtest_sim, oracle_mase_sim, recall};
use canopy_forecast::sim::{Profile, synthetic_daily, synthetic_hourly};
use canopy_forecast::{AnomalyConfig, ForecastConfig, detect, forecast_daily};

struct Args {
    seeds: u64,
    first_seed: u64,
    /// Only this profile in the backtest (None: the mix and every profile).
    profile: Option<String>,
    accounts: u32,
    days: u32,
    round_series: usize,
    threads: usize,
    skip_backtest: bool,
    skip_anomalies: bool,
    skip_round: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args { seeds: 5, first_seed: 1, profile: None, accounts: 40, days: 365, round_series: 50_000, threads: 2, skip_backtest: false, skip_anomalies: false, skip_round: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--seeds" => a.seeds = value("--seeds")?.parse().context("--seeds")?,
            "--first-seed" => a.first_seed = value("--first-seed")?.parse().context("--first-seed")?,
            "--profile" => a.profile = Some(value("--profile")?),
            "--accounts" => a.accounts = value("--accounts")?.parse().context("--accounts")?,
            "--days" => a.days = value("--days")?.parse().context("--days")?,
            "--round-series" => a.round_series = value("--round-series")?.parse().context("--round-series")?,
            "--threads" => a.threads = value("--threads")?.parse().context("--threads")?,
            "--skip-backtest" => a.skip_backtest = true,
            "--skip-anomalies" => a.skip_anomalies = true,
            "--skip-round" => a.skip_round = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if a.days < 160 {
        bail!("--days must be at least 160 (91 days before the first origin, 30-day horizons)");
    }
    Ok(a)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU seconds of this process so far (from /proc, 100 Hz ticks).
fn process_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let seeds: Vec<u64> = (args.first_seed..args.first_seed + args.seeds).collect();
    if !args.skip_backtest {
        println!(
            "forecast backtest: seeds {}..={}, {} accounts, {} days, origins from day 91 every 7 days; series = 6 team + {} account daily totals per seed",
            args.first_seed,
            args.first_seed + args.seeds - 1,
            args.accounts,
            args.days,
            args.accounts
        );
        println!(
            "{:<14} {:>7} {:>9} {:>4} {:>7} {:>11} {:>11} {:>7} {:>7}",
            "profile", "series", "forecasts", "h", "MASE", "MASE snaive", "MASE oracle", "cov80", "cov95"
        );
        let mut profiles: Vec<Option<Profile>> = std::iter::once(None).chain(Profile::ALL.iter().copied().map(Some)).collect();
        if let Some(name) = &args.profile {
            profiles.retain(|p| p.map_or("mix", Profile::name) == name.as_str());
            if profiles.is_empty() {
                bail!("--profile {name:?}: expected mix, flat, diurnal, weekly, nightly-batch or growth");
            }
        }
        for profile in profiles {
            let b = forecast_backtest_sim(&seeds, args.accounts, args.days, profile, &[7, 30], &BacktestConfig::default());
            let oracle = oracle_mase_sim(&seeds, args.accounts, args.days, profile, &[7, 30], &BacktestConfig::default());
            for (s, oracle) in b.scores.iter().zip(oracle) {
                println!(
                    "{:<14} {:>7} {:>9} {:>4} {:>7.3} {:>11.3} {:>11.3} {:>6.1}% {:>6.1}%",
                    profile.map_or("mix", Profile::name),
                    b.series,
                    b.forecasts,
                    s.horizon_days,
                    s.mase,
                    s.mase_seasonal_naive,
                    oracle,
                    100.0 * s.coverage80,
                    100.0 * s.coverage95
                );
            }
        }
        if !args.skip_anomalies {
            let r = recall(&seeds, args.accounts, args.days);
            println!(
                "anomaly recall (planted): {} planted, hourly {} ({:.1} %), daily {} ({:.1} %), either {} ({:.1} %)",
                r.planted,
                r.hourly,
                pct(r.hourly, r.planted),
                r.daily,
                pct(r.daily, r.planted),
                r.either,
                pct(r.either, r.planted)
            );
            for (kind, n, found) in &r.by_kind {
                println!("  {:<24} {found}/{n}", kind.name());
            }
            for f in false_alerts(&seeds, args.accounts, args.days) {
                println!(
                    "false alerts on clean history, {:<16} {:>8.1} series-months: hourly {}, daily {}, {:.3} per series-month ({:.2} per 10)",
                    f.scope,
                    f.series_months,
                    f.hourly_alerts,
                    f.daily_alerts,
                    f.per_series_month(),
                    10.0 * f.per_series_month()
                );
            }
        }
    }
    if !args.skip_round {
        round(&args)?;
    }
    Ok(())
}

fn pct(a: usize, b: usize) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

fn round(args: &Args) -> anyhow::Result<()> {
    const DAILY_DAYS: usize = 400;
    const HOURLY_HOURS: usize = 35 * 24;
    // Monday 2025-01-06.
    let first_day = 1_736_121_600i64;
    let hourly_start = first_day + (DAILY_DAYS as i64 - 35) * 86_400;
    let started = Instant::now();
    let cpu_before = process_cpu_s();
    let threads = args.threads.max(1);
    let results: Vec<([Duration; 3], usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let (mut busy, mut anomalies, mut exhausted) = ([Duration::ZERO; 3], 0usize, 0usize);
                    let (fc, daily_cfg, hourly_cfg) = (ForecastConfig::default(), AnomalyConfig::daily(1_000.0), AnomalyConfig::hourly(100.0));
                    for i in (t..args.round_series).step_by(threads) {
                        let daily = synthetic_daily(i as u64, DAILY_DAYS);
                        let hourly = synthetic_hourly(i as u64 ^ 0xABCD, hourly_start, HOURLY_HOURS);
                        let t0 = Instant::now();
                        let f = forecast_daily(first_day, &daily, 0, &fc).expect("forecast");
                        // A budget of 1.2 × the last 30 days a month, 60 days left.
                        let remaining = 2.4 * daily[DAILY_DAYS - 30..].iter().sum::<f64>();
                        exhausted += usize::from(f.exhaustion(remaining).expect("exhaustion").day_unix_s.is_some());
                        std::hint::black_box(&f);
                        let t1 = Instant::now();
                        let tail = &daily[DAILY_DAYS - 91..];
                        anomalies += detect(tail, first_day + (DAILY_DAYS as i64 - 91) * 86_400, &daily_cfg).expect("daily").len();
                        let t2 = Instant::now();
                        anomalies += detect(&hourly, hourly_start, &hourly_cfg).expect("hourly").len();
                        let t3 = Instant::now();
                        busy[0] += t1 - t0;
                        busy[1] += t2 - t1;
                        busy[2] += t3 - t2;
                    }
                    (busy, anomalies, exhausted)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let wall = started.elapsed();
    let cpu = cpu_before.zip(process_cpu_s()).map(|(a, b)| b - a);
    let part = |k: usize| results.iter().map(|r| r.0[k]).sum::<Duration>().as_secs_f64();
    let busy = Duration::from_secs_f64(part(0) + part(1) + part(2));
    let anomalies: usize = results.iter().map(|r| r.1).sum();
    let exhausted: usize = results.iter().map(|r| r.2).sum();
    println!(
        "round: {} series ({} daily days + {} hourly points each) on {threads} threads: wall {:.2} s including generation; library time {:.2} s summed over threads ({:.1} µs/series), i.e. {:.2} s of wall on {threads} threads; peak RSS {} MiB; {anomalies} anomaly episodes, {exhausted} budgets exhausted within 12 months",
        args.round_series,
        DAILY_DAYS,
        HOURLY_HOURS,
        wall.as_secs_f64(),
        busy.as_secs_f64(),
        busy.as_secs_f64() * 1e6 / args.round_series.max(1) as f64,
        busy.as_secs_f64() / threads as f64,
        peak_rss_kib().map_or("?".into(), |k| (k / 1024).to_string())
    );
    println!(
        "round by step (summed over threads, wall time inside the library): forecast + exhaustion {:.2} s, daily detection {:.2} s, hourly detection {:.2} s; process CPU for the whole round incl. generation {} s",
        part(0),
        part(1),
        part(2),
        cpu.map_or("?".into(), |c| format!("{c:.2}"))
    );
    Ok(())
}
