//! Benchmark of the agent's cycle on the simulated source (prints figures;
//! not a timed test), at the default settings.
//! `cargo run --release -p canopy-agent --bin agent_bench [resources] [cycles] [utilisation_s]`
#![forbid(unsafe_code)]

use canopy_agent::build::build_agent;
use canopy_agent::config::AgentConfig;
use canopy_agent::env::MapEnv;
use canopy_agent::utilisation::get_metric_data_calls;

/// Process CPU time, seconds, from /proc/self/stat (utime + stime at the
/// usual 100 ticks per second).
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields after the command: state is index 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// Current resident set size, KiB (VmRSS).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Peak resident set size, KiB (VmHWM).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let resources: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let cycles: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(48);
    // Optional: a utilisation cadence other than the default, seconds.
    let intervals = args.next().map_or(String::new(), |s| format!("[intervals]\nutilisation_s = {s}\n"));
    let text = format!(
        "config_version = 1\nagent_id = \"bench\"\nregion = \"eu-west-1\"\n[source]\nkind = \"simulated\"\nseed = 42\nresources = {resources}\n{intervals}"
    );
    let config = AgentConfig::from_toml(&text, "bench", &MapEnv::default()).expect("bench config is valid");
    // The runtime `canopy-agent` itself uses (main.rs): two worker threads.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut agent = build_agent(&config).await.expect("simulated agent");
        println!("before the first cycle: rss {:.1} MiB", rss_kib() as f64 / 1024.0);
        // Start on an hour boundary so the run sees fetch, hourly and plain cycles.
        let start = 1_767_225_600 + 3_600;
        let (cpu0, wall0) = (cpu_s(), std::time::Instant::now());
        let (mut records, mut calls, mut metrics, mut usd, mut fetches) = (0usize, 0u64, 0u64, 0.0, 0);
        let mut first_cycle_cpu = 0.0;
        for i in 0..cycles {
            let c0 = cpu_s();
            let out = agent.run_cycle(start + i * 300).await;
            if i == 0 {
                first_cycle_cpu = cpu_s() - c0;
                println!(
                    "after the first cycle (output held): rss {:.1} MiB, peak {:.1} MiB; {} resources + {} emissions",
                    rss_kib() as f64 / 1024.0,
                    peak_rss_kib() as f64 / 1024.0,
                    out.resources.len(),
                    out.emissions.len()
                );
            }
            records += out.resources.len() + out.emissions.len();
            calls += out.stats.cost.get_metric_data_calls;
            metrics += out.stats.cost.metrics_requested;
            usd += out.stats.cost.usd();
            if out.stats.utilisation_window.is_some() {
                fetches += 1;
                assert_eq!(out.stats.cost.get_metric_data_calls as usize, get_metric_data_calls(out.stats.cost.metrics_requested as usize));
            }
        }
        let cpu = cpu_s() - cpu0;
        let wall = wall0.elapsed().as_secs_f64();
        let per_cycle_per_1000_ms = cpu * 1_000.0 / cycles as f64 / (f64::from(resources) / 1_000.0);
        println!("resources: {resources}, cycles: {cycles} (simulated {} min), utilisation fetches: {fetches}", cycles * 5);
        println!("records produced: {records}");
        println!("CPU: {cpu:.3} s total, {:.2} ms per cycle, {per_cycle_per_1000_ms:.2} ms per 1,000 resources per cycle (target <= 20)", cpu * 1_000.0 / cycles as f64);
        println!(
            "first cycle (full inventory + {} h utilisation fetch + measured records): {:.1} ms CPU",
            agent.utilisation_interval_s() / 3_600,
            first_cycle_cpu * 1_000.0
        );
        println!("wall: {wall:.3} s");
        println!("peak RSS: {:.1} MiB (target <= 25)", peak_rss_kib() as f64 / 1_024.0);
        println!(
            "GetMetricData: {calls} calls for {metrics} metrics over the run (= ceil(metrics / 500) per fetch); {:.2} calls per cycle",
            calls as f64 / cycles as f64
        );
        println!("estimated API cost: {usd:.5} USD over the run, {:.6} USD per cycle", usd / cycles as f64);
        println!(
            "settings: utilisation every {} s; estimated API cost at this inventory {:.4} USD per month = {:.6} USD per resource per month (ceiling 0.005)",
            agent.utilisation_interval_s(),
            agent.estimated_usd_per_month(),
            agent.estimated_usd_per_resource_month()
        );
    });
}
