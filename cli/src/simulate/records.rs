//! What a simulated agent hands to its outbox: exactly what the real agent
//! sends, i.e. its cycle's output as is: the inventory, per-resource hourly
//! records (the detail, and the totals) and 5-minute group records (the
//! real-time view, which the aggregator keeps apart from the totals, so
//! nothing is counted twice), each provisional first and superseded by a
//! measured revision once the window's utilisation is fetched.

use canopy_agent::cycle::{Agent, CycleOutput};
use canopy_agent::estimate::Estimator;
use canopy_outbox::{Cycle, GroupedEmission};
use canopy_protocol::{EmissionRecord, GroupKey, Subject};

fn group_of(estimator: &Estimator, agent: &Agent, record: &EmissionRecord) -> GroupKey {
    match &record.subject {
        Subject::Resource { arn } => match agent.inventory().get(arn) {
            Some(r) => estimator.group_key(r),
            None => GroupKey { service: "unknown".into(), resource_type: "resource".into(), team: None },
        },
        Subject::Group(g) => g.clone(),
    }
}

/// The outbox cycle of one agent cycle: its inventory and every emission
/// record, each with the group it is coarsened into when the outbox is full.
pub fn outbox_cycle(estimator: &Estimator, agent: &Agent, region: &str, output: CycleOutput) -> Cycle {
    let emissions = output
        .emissions
        .into_iter()
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
