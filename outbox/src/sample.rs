//! Deterministic synthetic cycles for tests, the crash writer and the
//! benchmark. Values are simple enough to hand-compute.

use std::collections::BTreeMap;

use canopy_protocol::{
    CpuArchitecture, EmissionRecord, GridFactorUsed, GroupKey, LifecycleState, Quality,
    ResourceRecord, Subject,
};

use crate::cycle::{Cycle, GroupedEmission};

/// Account id of every sample cycle.
pub const ACCOUNT_ID: &str = "123456789012";
/// Region of every sample cycle.
pub const REGION: &str = "eu-west-1";
/// Start of hour 0 of sample records, Unix seconds (2023-11-14T22:00:00Z).
pub const BASE_UNIX_S: i64 = 1_700_000_000 - 1_700_000_000 % 3_600;
/// Location-based grid factor of sample records, gCO2e/kWh.
pub const GRID_G_CO2E_PER_KWH: f64 = 334.0;
/// PUE of sample records.
pub const PUE: f64 = 1.135;

/// ARN of sample instance `i`.
pub fn arn(i: usize) -> String {
    format!("arn:aws:ec2:{REGION}:{ACCOUNT_ID}:instance/i-{i:08x}")
}

/// Group of sample instance `i`: EC2 instances of team `team-<i % teams>`.
pub fn group(i: usize, teams: usize) -> GroupKey {
    GroupKey {
        service: "ec2".into(),
        resource_type: "instance".into(),
        team: Some(format!("team-{}", i % teams.max(1))),
    }
}

/// Emission record of instance `i` in hour `hour`: compute `0.010 * (i + 1)`
/// kWh, memory 0.002 kWh, PUE 1.135, location grid 334 g/kWh, market grid 0,
/// embodied 1.5 g, operational location `energy * PUE * 334` g, bounds half
/// and twice the central total.
pub fn emission(i: usize, hour: i64) -> EmissionRecord {
    let compute_kwh = 0.010 * (i as f64 + 1.0);
    let memory_kwh = 0.002;
    let operational = (compute_kwh + memory_kwh) * PUE * GRID_G_CO2E_PER_KWH;
    let embodied = 1.5;
    let central = embodied + operational;
    let start = BASE_UNIX_S + hour * 3_600;
    EmissionRecord {
        subject: Subject::Resource { arn: arn(i) },
        interval_start_unix_s: start,
        interval_end_unix_s: start + 3_600,
        energy_compute_kwh: compute_kwh,
        energy_memory_kwh: memory_kwh,
        energy_storage_kwh: 0.0,
        energy_networking_kwh: 0.0,
        energy_accelerators_kwh: 0.0,
        pue: PUE,
        embodied_g_co2e: embodied,
        operational_location_g_co2e: operational,
        operational_market_g_co2e: 0.0,
        grid_location: GridFactorUsed {
            g_co2e_per_kwh: GRID_G_CO2E_PER_KWH,
            source: "ccf".into(),
            vintage: "2023".into(),
        },
        grid_market: GridFactorUsed {
            g_co2e_per_kwh: 0.0,
            source: "residual-mix".into(),
            vintage: "2023".into(),
        },
        quality: Quality::Estimated,
        low_g_co2e: central * 0.5,
        high_g_co2e: central * 2.0,
        methodology_version: "canopy-2025.1".into(),
        revision: 0,
    }
}

/// Inventory record of instance `i` (an `m5.large` of team `team-<i % teams>`).
pub fn resource(i: usize, teams: usize) -> ResourceRecord {
    let mut tags = BTreeMap::new();
    tags.insert("team".to_owned(), format!("team-{}", i % teams.max(1)));
    ResourceRecord {
        arn: arn(i),
        service: "ec2".into(),
        resource_type: "instance".into(),
        class: Some("m5.large".into()),
        size: None,
        vcpus: Some(2.0),
        memory_mib: Some(8_192),
        cpu_architecture: Some(CpuArchitecture::X86_64),
        accelerators: Vec::new(),
        tags,
        attributes: BTreeMap::new(),
        lifecycle: LifecycleState::Running,
        first_seen_unix_s: BASE_UNIX_S,
        last_seen_unix_s: BASE_UNIX_S,
    }
}

/// A cycle of `resources` instances (inventory plus one emission record
/// each per hour) over `hours` hours, spread over `teams` teams.
/// Records are ordered hour by hour.
pub fn cycle(resources: usize, hours: i64, teams: usize) -> Cycle {
    let mut emissions = Vec::with_capacity(resources * hours.max(0) as usize);
    for hour in 0..hours {
        for i in 0..resources {
            emissions.push(GroupedEmission {
                record: emission(i, hour),
                group: group(i, teams),
            });
        }
    }
    Cycle {
        account_id: ACCOUNT_ID.into(),
        region: REGION.into(),
        created_at_unix_ms: BASE_UNIX_S * 1_000,
        resources: (0..resources).map(|i| resource(i, teams)).collect(),
        emissions,
        agent_status: None,
    }
}

/// A cycle of `records` emission records only (no inventory): `records`
/// instances for one hour, `hour` hours after [`BASE_UNIX_S`].
pub fn emissions_only(records: usize, hour: i64, teams: usize) -> Cycle {
    Cycle {
        account_id: ACCOUNT_ID.into(),
        region: REGION.into(),
        created_at_unix_ms: (BASE_UNIX_S + hour * 3_600) * 1_000,
        resources: Vec::new(),
        emissions: (0..records)
            .map(|i| GroupedEmission {
                record: emission(i, hour),
                group: group(i, teams),
            })
            .collect(),
        agent_status: None,
    }
}
