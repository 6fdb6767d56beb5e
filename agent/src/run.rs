//! The `run` loop: one cycle per interval; a cycle that overruns its
//! interval carries the missed ticks over (skipped and counted) instead of
//! letting cycles pile up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::MissedTickBehavior;

use crate::cycle::Agent;
use crate::sink::{Sink, SinkError};

/// Current Unix time, seconds.
pub fn now_unix_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Ticks an overrunning cycle of `elapsed` made the loop skip at `interval`.
pub fn carried_over_ticks(elapsed: Duration, interval: Duration) -> u64 {
    (elapsed.as_secs_f64() / interval.as_secs_f64()).floor() as u64
}

/// Runs cycles every `cycle` until `shutdown` resolves; each cycle's output
/// goes to `sink`, metrics to `metrics_path` when given.
pub async fn run(
    agent: &mut Agent,
    sink: &mut dyn Sink,
    cycle: Duration,
    metrics_path: Option<&std::path::Path>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), SinkError> {
    let mut ticks = tokio::time::interval(cycle);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = ticks.tick() => {}
        }
        let started = tokio::time::Instant::now();
        let output = agent.run_cycle(now_unix_s()).await;
        sink.accept(&output, agent)?;
        let elapsed = started.elapsed();
        let skipped = carried_over_ticks(elapsed, cycle);
        if skipped > 0 {
            agent.metrics().add("canopy_agent_cycles_carried_over_total", &[], skipped as f64);
            tracing::warn!(elapsed_s = elapsed.as_secs_f64(), skipped, "cycle overran its interval; carrying over");
        }
        tracing::info!(
            resources = output.resources.len(),
            emissions = output.emissions.len(),
            cost_usd = output.stats.cost.usd(),
            elapsed_s = elapsed.as_secs_f64(),
            "cycle done"
        );
        write_metrics(agent, sink, metrics_path);
    }
}

/// Rewrites the metrics file (when configured) with the agent's and the
/// sink's current figures.
pub fn write_metrics(agent: &Agent, sink: &dyn Sink, metrics_path: Option<&std::path::Path>) {
    let Some(path) = metrics_path else { return };
    sink.export_metrics(agent.metrics());
    if let Err(e) = std::fs::write(path, agent.metrics().render()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write metrics file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overruns_count_whole_intervals() {
        let five_min = Duration::from_secs(300);
        assert_eq!(carried_over_ticks(Duration::from_secs(299), five_min), 0);
        assert_eq!(carried_over_ticks(Duration::from_secs(300), five_min), 1);
        assert_eq!(carried_over_ticks(Duration::from_secs(901), five_min), 3);
    }
}
