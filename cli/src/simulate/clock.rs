//! The simulated clock: where the backfill starts and ends, and when each
//! live cycle is due. Simulated time runs `speedup` times faster than real
//! time in the live phase but never ahead of the wall clock, so every record
//! is acceptable to an aggregator on the real clock.

use std::time::{Duration, SystemTime};

/// Hours the live phase replays at `speedup` when `speedup` > 1.
pub const REPLAY_HOURS: i64 = 6;

/// Wall-clock Unix seconds.
pub fn wall_unix_s() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// One agent's view of simulated time.
#[derive(Debug, Clone)]
pub struct SimClock {
    /// Start of the backfill (a whole hour).
    pub backfill_from_unix_s: i64,
    /// End of the backfill and start of the live phase (a whole hour).
    pub live_from_unix_s: i64,
    /// Simulated seconds per real second in the live phase.
    pub speedup: f64,
    /// Live cycles to run before stopping (`None`: until stopped).
    pub live_cycles: Option<u64>,
    origin: Option<tokio::time::Instant>,
}

impl SimClock {
    /// The clock for a backfill of `backfill_days` before `now_unix_s`'s
    /// hour; with `speedup` > 1 the last [`REPLAY_HOURS`] are left to the live
    /// phase, which replays them `speedup` times faster than real time.
    pub fn new(now_unix_s: i64, backfill_days: u32, speedup: f64, live_cycles: Option<u64>) -> SimClock {
        let hour = now_unix_s - now_unix_s.rem_euclid(3_600);
        let backfill_s = i64::from(backfill_days) * 86_400;
        let replay_s = if speedup > 1.0 { (REPLAY_HOURS * 3_600).min(backfill_s) } else { 0 };
        SimClock {
            backfill_from_unix_s: hour - backfill_s,
            live_from_unix_s: hour - replay_s,
            speedup: speedup.max(1e-3),
            live_cycles,
            origin: None,
        }
    }

    /// Backfill cycles (hours) per agent.
    pub fn backfill_hours(&self) -> u64 {
        ((self.live_from_unix_s - self.backfill_from_unix_s) / 3_600) as u64
    }

    /// Real time to wait before simulated time `sim_unix_s`, given the real
    /// time elapsed since the live phase began and the wall clock.
    pub fn wait_for(&self, sim_unix_s: i64, elapsed: Duration, wall_unix_s: i64) -> Duration {
        let scaled = Duration::from_secs_f64(((sim_unix_s - self.live_from_unix_s).max(0) as f64) / self.speedup);
        let by_speed = scaled.saturating_sub(elapsed);
        let by_wall = Duration::from_secs((sim_unix_s - wall_unix_s).max(0) as u64);
        by_speed.max(by_wall)
    }

    /// Sleeps until simulated time `sim_unix_s` (the first call starts the
    /// live phase's real-time origin).
    pub async fn sleep_until(&mut self, sim_unix_s: i64) {
        let origin = *self.origin.get_or_insert_with(tokio::time::Instant::now);
        let wait = self.wait_for(sim_unix_s, origin.elapsed(), wall_unix_s());
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600 + 1_234; // 2026-01-01T00:20:34Z

    #[test]
    fn backfill_ends_on_the_hour_and_replay_only_when_sped_up() {
        let c = SimClock::new(NOW, 14, 1.0, None);
        assert_eq!((c.backfill_from_unix_s, c.live_from_unix_s), (1_767_225_600 - 14 * 86_400, 1_767_225_600));
        assert_eq!(c.backfill_hours(), 336);
        let fast = SimClock::new(NOW, 14, 60.0, None);
        assert_eq!(fast.live_from_unix_s, 1_767_225_600 - 6 * 3_600);
        assert_eq!(fast.backfill_hours(), 330);
    }

    #[test]
    fn live_cycles_wait_for_speed_and_never_pass_the_wall_clock() {
        let c = SimClock::new(NOW, 14, 60.0, None);
        let five_min_in = c.live_from_unix_s + 300;
        // 300 simulated seconds at 60x: 5 real seconds, 2 already passed.
        assert_eq!(c.wait_for(five_min_in, Duration::from_secs(2), NOW), Duration::from_secs(3));
        // Caught up with the wall clock: wait for it.
        let ahead = NOW + 100;
        assert_eq!(c.wait_for(ahead, Duration::from_secs(10_000), NOW), Duration::from_secs(100));
        let real = SimClock::new(NOW, 1, 1.0, None);
        assert_eq!(real.wait_for(real.live_from_unix_s + 300, Duration::ZERO, NOW), Duration::from_secs(300));
    }
}
