//! Resource inventory records.

use std::collections::BTreeMap;

/// One resource observed by the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRecord {
    /// The resource's ARN (unique within the batch's account and region).
    pub arn: String,
    /// Service code, e.g. `ec2`, `rds`, `s3`.
    pub service: String,
    /// Resource type within the service, e.g. `instance`, `volume`, `bucket`.
    pub resource_type: String,
    /// Instance type or storage class, e.g. `m5.large`, `gp3`, `STANDARD_IA`.
    pub class: Option<String>,
    /// Provisioned or measured size, where the resource has one.
    pub size: Option<Size>,
    /// vCPUs (fractional for e.g. Fargate's 0.25 vCPU tasks).
    pub vcpus: Option<f64>,
    /// Memory in MiB.
    pub memory_mib: Option<u64>,
    /// CPU architecture, where known.
    pub cpu_architecture: Option<CpuArchitecture>,
    /// Attached accelerators (GPUs, Inferentia, ...).
    pub accelerators: Vec<Accelerator>,
    /// User tags, key → value.
    pub tags: BTreeMap<String, String>,
    /// Service-specific details the agent discovered, name → value as text,
    /// e.g. `iops` → `3000`, `engine` → `postgres`, `multi_az` → `true`
    /// (protocol v2; empty when decoded from a v1 frame).
    pub attributes: BTreeMap<String, String>,
    /// Lifecycle state when last seen.
    pub lifecycle: LifecycleState,
    /// First time the agent saw the resource, Unix seconds.
    pub first_seen_unix_s: i64,
    /// Last time the agent saw the resource, Unix seconds.
    pub last_seen_unix_s: i64,
}

/// A size with its unit, e.g. a 100 GiB volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Size {
    /// Amount in `unit`s.
    pub value: u64,
    /// Unit of `value`.
    pub unit: SizeUnit,
}

impl Size {
    /// The size in bytes, or `None` if that overflows `u64`.
    pub fn bytes(&self) -> Option<u64> {
        self.value.checked_mul(self.unit.bytes())
    }
}

/// Unit of a [`Size`]; binary multiples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeUnit {
    /// Bytes.
    Bytes,
    /// 2^10 bytes.
    Kib,
    /// 2^20 bytes.
    Mib,
    /// 2^30 bytes.
    Gib,
    /// 2^40 bytes.
    Tib,
}

impl SizeUnit {
    /// Bytes in one unit.
    pub fn bytes(&self) -> u64 {
        match self {
            SizeUnit::Bytes => 1,
            SizeUnit::Kib => 1 << 10,
            SizeUnit::Mib => 1 << 20,
            SizeUnit::Gib => 1 << 30,
            SizeUnit::Tib => 1 << 40,
        }
    }
}

/// CPU architecture of a compute resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CpuArchitecture {
    /// x86-64 (Intel or AMD).
    X86_64,
    /// 64-bit Arm (e.g. Graviton).
    Arm64,
    /// Anything else AWS reports (e.g. `i386`).
    Other,
}

/// One kind of accelerator attached to a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Accelerator {
    /// Kind of device.
    pub kind: AcceleratorKind,
    /// Model as AWS names it, e.g. `NVIDIA T4`, `Inferentia2`.
    pub model: String,
    /// Number of such devices.
    pub count: u32,
}

/// Kind of an [`Accelerator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcceleratorKind {
    /// Graphics processing unit.
    Gpu,
    /// AWS Inferentia.
    Inferentia,
    /// AWS Trainium.
    Trainium,
    /// Field-programmable gate array.
    Fpga,
    /// Any other accelerator.
    Other,
}

/// Lifecycle state of a resource when it was last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleState {
    /// Being created or starting.
    Pending,
    /// Running / available / in use.
    Running,
    /// Stopping.
    Stopping,
    /// Stopped (still exists, may still use storage).
    Stopped,
    /// Terminated or deleted; `last_seen_unix_s` is the last observation.
    Terminated,
    /// State not reported by the service.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_converts_binary_units_to_bytes() {
        // 100 GiB = 100 * 2^30 = 107,374,182,400 bytes.
        let volume = Size {
            value: 100,
            unit: SizeUnit::Gib,
        };
        assert_eq!(volume.bytes(), Some(107_374_182_400));
        let huge = Size {
            value: u64::MAX,
            unit: SizeUnit::Kib,
        };
        assert_eq!(huge.bytes(), None);
    }
}
