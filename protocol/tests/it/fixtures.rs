//! Fixed sample values shared by the tests. Changing `sample_batch` changes
//! the golden bytes: change them only together with a new protocol version.

use std::collections::BTreeMap;

use canopy_protocol::*;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "eu-west-1";

pub fn grid(g_co2e_per_kwh: f64, source: &str, vintage: &str) -> GridFactorUsed {
    GridFactorUsed {
        g_co2e_per_kwh,
        source: source.into(),
        vintage: vintage.into(),
    }
}

pub fn instance_arn(n: u32) -> String {
    format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0abc{n:013x}")
}

/// An m5.large resource record with tags.
pub fn sample_resource() -> ResourceRecord {
    let mut tags = BTreeMap::new();
    tags.insert("team".to_owned(), "payments".to_owned());
    tags.insert("env".to_owned(), "prod".to_owned());
    ResourceRecord {
        arn: instance_arn(1),
        service: "ec2".into(),
        resource_type: "instance".into(),
        class: Some("m5.large".into()),
        size: None,
        vcpus: Some(2.0),
        memory_mib: Some(8_192),
        cpu_architecture: Some(CpuArchitecture::X86_64),
        accelerators: vec![],
        tags,
        attributes: BTreeMap::new(),
        lifecycle: LifecycleState::Running,
        first_seen_unix_s: 1_700_000_000,
        last_seen_unix_s: 1_700_003_600,
    }
}

/// A g4dn.xlarge with one T4 GPU and a gp3 volume.
pub fn sample_gpu_and_volume() -> Vec<ResourceRecord> {
    let gpu = ResourceRecord {
        arn: instance_arn(2),
        class: Some("g4dn.xlarge".into()),
        vcpus: Some(4.0),
        memory_mib: Some(16_384),
        accelerators: vec![Accelerator {
            kind: AcceleratorKind::Gpu,
            model: "NVIDIA T4".into(),
            count: 1,
        }],
        tags: BTreeMap::new(),
        lifecycle: LifecycleState::Stopped,
        ..sample_resource()
    };
    let volume = ResourceRecord {
        arn: format!("arn:aws:ec2:{REGION}:{ACCOUNT}:volume/vol-0123456789abcdef0"),
        service: "ec2".into(),
        resource_type: "volume".into(),
        class: Some("gp3".into()),
        size: Some(Size {
            value: 100,
            unit: SizeUnit::Gib,
        }),
        vcpus: None,
        memory_mib: None,
        cpu_architecture: None,
        accelerators: vec![],
        tags: BTreeMap::new(),
        attributes: BTreeMap::new(),
        lifecycle: LifecycleState::Running,
        first_seen_unix_s: 1_699_000_000,
        last_seen_unix_s: 1_700_003_600,
    };
    vec![gpu, volume]
}

/// One hour of an m5.large at ~50 % CPU in eu-west-1.
///
/// Hand-computed from the figures used: compute 0.00930 kWh + memory
/// 0.00300 kWh = 0.01230 kWh IT energy; x PUE 1.135 = 0.0139605 kWh;
/// x 334 gCO2e/kWh (location) = 4.662807 g; market factor 0 → 0 g.
/// Embodied 1.2 g. Central location total 5.862807 g, bounds 4.0..9.5 g.
pub fn sample_emission() -> EmissionRecord {
    EmissionRecord {
        subject: Subject::Resource {
            arn: instance_arn(1),
        },
        interval_start_unix_s: 1_700_000_000,
        interval_end_unix_s: 1_700_003_600,
        energy_compute_kwh: 0.00930,
        energy_memory_kwh: 0.00300,
        energy_storage_kwh: 0.0,
        energy_networking_kwh: 0.0,
        energy_accelerators_kwh: 0.0,
        pue: 1.135,
        embodied_g_co2e: 1.2,
        operational_location_g_co2e: 4.662807,
        operational_market_g_co2e: 0.0,
        grid_location: grid(334.0, "ccf", "2023"),
        grid_market: grid(0.0, "market-config", "2024"),
        quality: Quality::Estimated,
        low_g_co2e: 4.0,
        high_g_co2e: 9.5,
        methodology_version: "canopy-1".into(),
        revision: 0,
    }
}

/// A group record (team "payments", EBS volumes) revised once.
pub fn sample_group_emission() -> EmissionRecord {
    EmissionRecord {
        subject: Subject::Group(GroupKey {
            service: "ec2".into(),
            resource_type: "volume".into(),
            team: Some("payments".into()),
        }),
        energy_compute_kwh: 0.0,
        energy_memory_kwh: 0.0,
        energy_storage_kwh: 0.0012,
        embodied_g_co2e: 0.3,
        operational_location_g_co2e: 0.45,
        operational_market_g_co2e: 0.1,
        low_g_co2e: 0.5,
        high_g_co2e: 1.5,
        quality: Quality::Default,
        revision: 1,
        ..sample_emission()
    }
}

/// The fixed batch the golden file encodes.
pub fn sample_batch() -> Batch {
    let mut resources = vec![sample_resource()];
    resources.extend(sample_gpu_and_volume());
    Batch {
        agent_id: "agent-7f3a".into(),
        account_id: ACCOUNT.into(),
        region: REGION.into(),
        sequence: 42,
        idempotency_key: IdempotencyKey(*b"0123456789abcdef"),
        created_at_unix_ms: 1_700_003_700_123,
        resources,
        emissions: vec![sample_emission(), sample_group_emission()],
        agent_status: None,
    }
}

/// The fixed batch the v2 golden file encodes: the v1 sample plus
/// attributes on the volume (IOPS, attachment) and an agent status.
pub fn sample_v2_batch() -> Batch {
    let mut batch = sample_batch();
    batch.resources[2].attributes = BTreeMap::from([
        ("iops".to_owned(), "3000".to_owned()),
        ("attached_to".to_owned(), "i-0abc0000000000002".to_owned()),
    ]);
    batch.agent_status = Some(sample_status());
    batch
}

/// The agent status of [`sample_v2_batch`].
pub fn sample_status() -> AgentStatus {
    AgentStatus {
        agent_version: "0.2.0".into(),
        outbox_backlog_frames: 3,
        outbox_backlog_bytes: 123_456,
        records_shed_total: 7,
        collection_errors_total: 2,
        send_failures_total: 5,
        taken_at_unix_ms: 1_700_003_700_000,
    }
}

/// The fixed reply the golden reply file encodes.
pub fn sample_ack() -> Reply {
    Reply::Ack(Ack {
        sequence: 42,
        idempotency_key: IdempotencyKey(*b"0123456789abcdef"),
        duplicate: false,
    })
}

/// `n` hourly emission records over `n / 24` instances, as an agent would
/// send for a day: distinct values so compression has realistic work.
pub fn day_of_hourly_records(n: usize) -> Batch {
    let emissions = (0..n)
        .map(|i| {
            let resource = (i / 24) as u32;
            let hour = (i % 24) as i64;
            let compute_kwh = 0.004 + (i % 97) as f64 * 0.000_113;
            let memory_kwh = 0.0015 + (i % 13) as f64 * 0.000_07;
            let it_kwh = compute_kwh + memory_kwh;
            let operational = it_kwh * 1.135 * 334.0;
            let embodied = 1.2 + (resource % 5) as f64 * 0.4;
            EmissionRecord {
                subject: Subject::Resource {
                    arn: instance_arn(resource),
                },
                interval_start_unix_s: 1_700_006_400 + hour * 3_600,
                interval_end_unix_s: 1_700_006_400 + (hour + 1) * 3_600,
                energy_compute_kwh: compute_kwh,
                energy_memory_kwh: memory_kwh,
                operational_location_g_co2e: operational,
                embodied_g_co2e: embodied,
                low_g_co2e: (operational + embodied) * 0.7,
                high_g_co2e: (operational + embodied) * 1.6,
                ..sample_emission()
            }
        })
        .collect();
    Batch {
        resources: vec![],
        emissions,
        ..sample_batch()
    }
}
