//! Protocol version 1 wire types. FROZEN: once released, nothing in this
//! module's types may change (field order, types, enum variant order), since
//! postcard encodes by position. A change means a new version module; this
//! one then only gains an upgrade path to the current in-memory types.
//!
//! Layout choices for compactness: every string inside a record is a varint
//! index into the batch's string table (so ARNs, services, tag keys, grid
//! sources and methodology versions repeated across records are sent once);
//! an interval is sent as start and length.

mod bounded;
mod from_wire;
mod intern;
mod to_wire;

use serde::{Deserialize, Serialize};

pub(crate) use bounded::{BoundedVec, Breach, parse_batch, parse_bounded};
pub(crate) use from_wire::{
    Resolver, batch_from_wire, check_count, check_len, emission_from_wire, reply_from_wire,
    resource_from_wire,
};
pub(crate) use intern::Interner;
pub(crate) use to_wire::{batch_to_wire, emission_to_wire, reply_to_wire, resource_to_wire};

/// Index into [`BatchV1::strings`].
pub(crate) type StrIdx = u32;

/// A v1 batch body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BatchV1<'a> {
    #[serde(borrow)]
    pub agent_id: &'a str,
    #[serde(borrow)]
    pub account_id: &'a str,
    #[serde(borrow)]
    pub region: &'a str,
    pub sequence: u64,
    pub idempotency_key: [u8; 16],
    pub created_at_unix_ms: i64,
    #[serde(borrow)]
    pub strings: Vec<&'a str>,
    pub resources: Vec<ResourceV1>,
    pub emissions: Vec<EmissionV1>,
}

/// A v1 resource record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResourceV1 {
    pub arn: StrIdx,
    pub service: StrIdx,
    pub resource_type: StrIdx,
    pub class: Option<StrIdx>,
    pub size: Option<SizeV1>,
    pub vcpus: Option<f64>,
    pub memory_mib: Option<u64>,
    pub cpu_architecture: Option<CpuArchitectureV1>,
    pub accelerators: Vec<AcceleratorV1>,
    /// (key, value) pairs in ascending key order.
    pub tags: Vec<(StrIdx, StrIdx)>,
    pub lifecycle: LifecycleV1,
    pub first_seen_unix_s: i64,
    pub last_seen_unix_s: i64,
}

/// A v1 size.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SizeV1 {
    pub value: u64,
    pub unit: SizeUnitV1,
}

/// v1 size units, in wire order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SizeUnitV1 {
    Bytes,
    Kib,
    Mib,
    Gib,
    Tib,
}

/// v1 CPU architectures, in wire order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum CpuArchitectureV1 {
    X86_64,
    Arm64,
    Other,
}

/// A v1 accelerator entry.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AcceleratorV1 {
    pub kind: AcceleratorKindV1,
    pub model: StrIdx,
    pub count: u32,
}

/// v1 accelerator kinds, in wire order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum AcceleratorKindV1 {
    Gpu,
    Inferentia,
    Trainium,
    Fpga,
    Other,
}

/// v1 lifecycle states, in wire order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum LifecycleV1 {
    Pending,
    Running,
    Stopping,
    Stopped,
    Terminated,
    Unknown,
}

/// A v1 emission record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EmissionV1 {
    pub subject: SubjectV1,
    pub interval_start_unix_s: i64,
    /// `end - start` with wrapping arithmetic (so any pair round-trips).
    pub interval_length_s: i64,
    pub energy_compute_kwh: f64,
    pub energy_memory_kwh: f64,
    pub energy_storage_kwh: f64,
    pub energy_networking_kwh: f64,
    pub energy_accelerators_kwh: f64,
    pub pue: f64,
    pub embodied_g_co2e: f64,
    pub operational_location_g_co2e: f64,
    pub operational_market_g_co2e: f64,
    pub grid_location: GridFactorV1,
    pub grid_market: GridFactorV1,
    pub quality: QualityV1,
    pub low_g_co2e: f64,
    pub high_g_co2e: f64,
    pub methodology_version: StrIdx,
    pub revision: u32,
}

/// A v1 subject.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SubjectV1 {
    Resource {
        arn: StrIdx,
    },
    Group {
        service: StrIdx,
        resource_type: StrIdx,
        team: Option<StrIdx>,
    },
}

/// A v1 grid factor.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GridFactorV1 {
    pub g_co2e_per_kwh: f64,
    pub source: StrIdx,
    pub vintage: StrIdx,
}

/// v1 quality flags, in wire order.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum QualityV1 {
    Measured,
    Estimated,
    Default,
}

/// A v1 reply body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ReplyV1<'a> {
    Ack {
        sequence: u64,
        idempotency_key: [u8; 16],
        duplicate: bool,
    },
    Error {
        sequence: Option<u64>,
        /// [`ErrorCode`](crate::ErrorCode) number; unknown numbers are kept.
        code: u16,
        #[serde(borrow)]
        message: &'a str,
        retry_after_s: Option<u32>,
    },
}
