//! Retention horizons shared by maintenance and the query engine: for each
//! stored level, the oldest instant from which its data is complete.
//!
//! They are derived from a [`RetentionPolicy`] at "now" with the same
//! arithmetic maintenance uses to drop (so both agree on the cut-offs), and
//! stored in `retention_horizons` (migration 0014) by maintenance before it
//! drops anything older ([`publish`]). Every answer reads the stored
//! horizons in its snapshot and plans with the later of them and its own
//! configured retention's, so a query node cannot read a level that another
//! process's retention has dropped. In TimescaleDB mode the extension's
//! retention policies drop chunks themselves and store nothing; the engine
//! then also applies [`Horizons::of_timescale_policies`].

use sqlx::{PgConnection, PgPool};

use super::plan::Horizons;
use crate::maintenance::RetentionPolicy;
use crate::time::{DAY_S, floor_to, month_start_shifted};

/// The retention policies the TimescaleDB path installs (migrations 0002
/// and 0009): 5-minute rollups and real-time records 35 days, facts and
/// hourly rollups 13 months, daily and monthly forever.
const TIMESCALE_POLICIES: RetentionPolicy =
    RetentionPolicy { five_minute_days: 35, hourly_months: 13, facts_months: 13, daily_months: None };

/// The level names of `retention_horizons.level`.
const LEVELS: [&str; 4] = ["five_minute", "hourly", "facts", "daily"];

impl Horizons {
    /// The horizons `policy` leaves at `now_unix_s`: maintenance drops
    /// 5-minute day partitions before [`RetentionPolicy::five_minute_horizon_unix_s`],
    /// hourly and fact month partitions before the month `hourly_months` /
    /// `facts_months` back, and (only with `daily_months`) daily and
    /// monthly rows before the month `daily_months` back.
    pub fn of_policy(policy: &RetentionPolicy, now_unix_s: i64) -> Horizons {
        let months_back = |months: u32| month_start_shifted(now_unix_s, -i64::from(months));
        Horizons {
            five_minute_unix_s: policy.five_minute_horizon_unix_s(now_unix_s),
            hourly_unix_s: months_back(policy.hourly_months),
            facts_unix_s: months_back(policy.facts_months),
            daily_unix_s: policy.daily_months.map_or(i64::MIN, months_back),
        }
    }

    /// The horizons TimescaleDB's retention policies leave at `now_unix_s`.
    /// A policy drops, whenever its job runs, the chunks whose whole range
    /// lies before `now - interval`; what is at or after that instant is
    /// kept. Rounded up to the next whole day (5-minute level) or month
    /// (facts, hourly) so the boundaries a refusal names stay calendar ones.
    pub fn of_timescale_policies(now_unix_s: i64) -> Horizons {
        let p = TIMESCALE_POLICIES;
        Horizons {
            five_minute_unix_s: floor_to(now_unix_s, DAY_S) - (i64::from(p.five_minute_days) - 1) * DAY_S,
            hourly_unix_s: month_start_shifted(now_unix_s, 1 - i64::from(p.hourly_months)),
            facts_unix_s: month_start_shifted(now_unix_s, 1 - i64::from(p.facts_months)),
            daily_unix_s: i64::MIN,
        }
    }

    fn by_level(&self) -> [i64; 4] {
        [self.five_minute_unix_s, self.hourly_unix_s, self.facts_unix_s, self.daily_unix_s]
    }
}

/// The stored horizons (`i64::MIN` where nothing was dropped yet).
pub async fn read(conn: &mut PgConnection) -> Result<Horizons, sqlx::Error> {
    let rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT level, extract(epoch FROM horizon)::bigint FROM retention_horizons")
            .fetch_all(conn)
            .await?;
    let mut h = Horizons::NONE;
    for (level, horizon) in rows {
        let t = horizon.unwrap_or(i64::MIN);
        match level.as_str() {
            "five_minute" => h.five_minute_unix_s = t,
            "hourly" => h.hourly_unix_s = t,
            "facts" => h.facts_unix_s = t,
            "daily" => h.daily_unix_s = t,
            _ => {}
        }
    }
    Ok(h)
}

/// Raises the stored horizons to `horizons` (never lowers one) and returns
/// whether any moved. Call it before dropping data older than them: the
/// update takes `retention_horizons` in ACCESS EXCLUSIVE mode, which waits
/// for every answer in flight (they hold ACCESS SHARE from before their
/// snapshot), and answers after the commit plan with the new horizons.
pub async fn publish(pool: &PgPool, horizons: &Horizons) -> Result<bool, sqlx::Error> {
    let stored = read(&mut *pool.acquire().await?).await?;
    if stored.max(*horizons) == stored {
        return Ok(false);
    }
    let (levels, times): (Vec<&str>, Vec<i64>) =
        LEVELS.iter().zip(horizons.by_level()).filter(|(_, t)| *t != i64::MIN).map(|(l, t)| (*l, t)).unzip();
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE retention_horizons IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await?;
    sqlx::query(
        "UPDATE retention_horizons h SET horizon = to_timestamp(n.t)
         FROM unnest($1::text[], $2::bigint[]) AS n(level, t)
         WHERE h.level = n.level AND (h.horizon IS NULL OR h.horizon < to_timestamp(n.t))",
    )
    .bind(levels)
    .bind(times)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(?horizons, "retention horizons raised");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_horizons_are_the_retention_cutoffs() {
        // 2026-12-07T12:00Z: 35 days back is 2026-11-02; 13 months back 2025-11-01.
        let now = 20_794 * DAY_S + 43_200;
        let h = Horizons::of_policy(&RetentionPolicy::default(), now);
        assert_eq!(h.five_minute_unix_s, 20_759 * DAY_S);
        assert_eq!((h.hourly_unix_s, h.facts_unix_s), (20_393 * DAY_S, 20_393 * DAY_S));
        assert_eq!(h.daily_unix_s, i64::MIN);
        let h = Horizons::of_policy(&RetentionPolicy { daily_months: Some(2), ..RetentionPolicy::default() }, now);
        assert_eq!(h.daily_unix_s, 20_727 * DAY_S); // 2026-10-01
        // TimescaleDB keeps at least what is newer than now - 35 days
        // (2026-11-02T12:00Z) and now - 13 months (2025-11-07T12:00Z).
        let h = Horizons::of_timescale_policies(now);
        assert_eq!(h.five_minute_unix_s, 20_760 * DAY_S); // 2026-11-03
        assert_eq!((h.hourly_unix_s, h.facts_unix_s), (20_423 * DAY_S, 20_423 * DAY_S)); // 2025-12-01
        assert_eq!(h.daily_unix_s, i64::MIN);
    }
}
