//! What a simulated agent hands to its outbox: per-resource records only.
//!
//! The agent's cycle also emits 5-minute group records for the same
//! resources; the aggregator adds every fact into its rollups, so sending
//! both would count each resource twice. The simulated fleet therefore sends
//! per-resource records: hourly during the backfill (measured), and
//! 5-minute ones in the live phase (provisional each cycle, superseded by
//! measured ones with the same keys once the hour's utilisation is fetched),
//! so the real-time panel has 5-minute resolution.

use canopy_agent::cycle::{Agent, CycleOutput};
use canopy_agent::estimate::{Estimator, REVISION_MEASURED, REVISION_PROVISIONAL};
use canopy_agent::inventory::Resource;
use canopy_agent::utilisation::PERIOD_S;
use canopy_outbox::{Cycle, GroupedEmission};
use canopy_protocol::{EmissionRecord, GroupKey, LifecycleState, Subject};

fn group_of(estimator: &Estimator, agent: &Agent, record: &EmissionRecord) -> GroupKey {
    match &record.subject {
        Subject::Resource { arn } => match agent.inventory().get(arn) {
            Some(r) => estimator.group_key(r),
            None => GroupKey { service: "unknown".into(), resource_type: "resource".into(), team: None },
        },
        Subject::Group(g) => g.clone(),
    }
}

/// The outbox cycle of a backfill cycle: inventory plus the per-resource
/// records of `output`.
pub fn backfill_cycle(estimator: &Estimator, agent: &Agent, region: &str, output: CycleOutput) -> Cycle {
    let emissions = output
        .emissions
        .into_iter()
        .filter(|e| matches!(e.subject, Subject::Resource { .. }))
        .map(|record| GroupedEmission { group: group_of(estimator, agent, &record), record })
        .collect();
    Cycle {
        account_id: agent.account_id().to_owned(),
        region: region.to_owned(),
        created_at_unix_ms: output.stats.cycle_end_unix_s * 1_000,
        resources: output.resources.into_iter().map(|(r, _)| r).collect(),
        emissions,
        agent_status: None,
    }
}

fn present(r: &Resource, start: i64) -> bool {
    !(r.lifecycle == LifecycleState::Terminated && r.last_seen_unix_s <= start)
}

/// The outbox cycle of a live cycle ending at `output`'s cycle end:
/// provisional 5-minute records of the last interval, and measured
/// 5-minute records for the utilisation window the cycle fetched (only its
/// intervals from `live_from_unix_s` on: earlier ones were backfilled hourly).
pub fn live_cycle(
    estimator: &Estimator,
    agent: &Agent,
    region: &str,
    output: CycleOutput,
    live_from_unix_s: i64,
) -> Cycle {
    let end = output.stats.cycle_end_unix_s;
    let mut emissions = Vec::new();
    let mut push = |r: &Resource, start: i64, measured: bool| {
        let (util, revision) = if measured {
            (agent.utilisation().measured(r, start, start + PERIOD_S), REVISION_MEASURED)
        } else {
            (agent.utilisation().provisional(r, PERIOD_S), REVISION_PROVISIONAL)
        };
        if let Ok(Some(record)) = estimator.estimate(r, start, start + PERIOD_S, util, revision) {
            emissions.push(GroupedEmission { group: estimator.group_key(r), record });
        }
    };
    if let Some((from, to)) = output.stats.utilisation_window {
        let mut t = from.max(live_from_unix_s);
        while t < to {
            for r in agent.inventory().iter().filter(|r| present(r, t)) {
                push(r, t, true);
            }
            t += PERIOD_S;
        }
    }
    let start = end - PERIOD_S;
    if start >= live_from_unix_s && !agent.utilisation().is_measured(start, end) {
        for r in agent.inventory().iter().filter(|r| present(r, start)) {
            push(r, start, false);
        }
    }
    Cycle {
        account_id: agent.account_id().to_owned(),
        region: region.to_owned(),
        created_at_unix_ms: end * 1_000,
        resources: output.resources.into_iter().map(|(r, _)| r).collect(),
        emissions,
        agent_status: None,
    }
}
