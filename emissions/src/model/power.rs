//! Instance power at a given CPU utilisation.
//!
//! Lookup order for an instance type (service prefixes `db.`, `cache.`, `ml.`,
//! `search.` and the OpenSearch suffix `.search`/`.elasticsearch` are stripped
//! when the full name is not found):
//!
//! 1. **Teads measured curve** — whole-instance and per-component watts at 0,
//!    10, 50 and 100 % CPU, interpolated piecewise-linearly. Quality `Measured`.
//! 2. **CCF instance table** (types Teads lacks, e.g. `c6i`, `g5`): vCPUs ×
//!    (min + u × (max − min)) watts per vCPU for the CCF microarchitecture,
//!    GPUs likewise with per-GPU watts. Quality `Estimated`.
//! 3. **2026 catalogue** (newer families, e.g. `c7g`, `m7i`): vCPUs and memory
//!    from the catalogue, watts per vCPU from the microarchitecture of its host
//!    CPU (our map `cpu_name_microarchitecture.csv`; CPUs without a CCF
//!    coefficient get CCF's AWS average 0.74/3.5 W). Quality `Estimated`.
//!
//! In cases 2 and 3 memory power is CCF's rule in per-vCPU form: the memory
//! above the SPECpower reference (`memory_gb_per_chip / 96` GB per vCPU, which
//! the per-vCPU watts already include) × 0.392 W/GB, load-independent.
//!
//! Types in none of the tables give `None`; callers that know the vCPU count
//! use [`InstancePower::fleet_average`] (quality `Default`).

use super::catalogue::{
    self, CATALOGUE_2026, CCF_INSTANCES, CPU_NAME_MAP, MicroarchitectureWatts, TEADS, TeadsRow,
};
use super::quality::{Provenance, Quality};
use crate::units::{gib_to_gb, w_hours_to_kwh};

/// CPU utilisation assumed when none is measured: 50 %, the hyperscale
/// average projected by the 2016 LBNL US data-centre report (the figure CCF
/// applies to every row). Results built on it carry quality `Default`.
pub const DEFAULT_CPU_UTILISATION_PCT: f64 = 50.0;
/// Lower utilisation bound used when utilisation is unknown: idle.
pub const DEFAULT_CPU_UTILISATION_LOW_PCT: f64 = 0.0;
/// Upper utilisation bound used when utilisation is unknown: full load.
pub const DEFAULT_CPU_UTILISATION_HIGH_PCT: f64 = 100.0;

/// Memory power above the SPECpower reference, W per GB (CCF's
/// `MEMORY_COEFFICIENT` 0.000392 kWh per GB-hour).
pub const MEMORY_W_PER_GB: f64 = 0.392;
/// vCPUs per physical chip in CCF's memory rule.
const VCPUS_PER_CHIP: f64 = 96.0;

/// Utilisation load points of the Teads curves, in percent.
const LOAD_POINTS_PCT: [f64; 4] = [0.0, 10.0, 50.0, 100.0];

const TEADS_PROVENANCE: Provenance = Provenance {
    source: "Teads AWS EC2 dataset (via Cloud Carbon Footprint ccf-coefficients)",
    vintage: "2021",
};
const CCF_TABLE_PROVENANCE: Provenance = Provenance {
    source: "Cloud Carbon Footprint instance table and microarchitecture watts (SPECpower)",
    vintage: "2022",
};
const CATALOGUE_PROVENANCE: Provenance = Provenance {
    source: "Cloud Carbon Footprint 2026 instance catalogue with microarchitecture watts",
    vintage: "2026 catalogue, 2022 watts",
};
const FLEET_AVERAGE_PROVENANCE: Provenance = Provenance {
    source: "Cloud Carbon Footprint AWS average watts per vCPU (0.74/3.5 W)",
    vintage: "2022",
};

/// Power draw of one instance, by component, without PUE.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PowerW {
    /// CPU package.
    pub cpu_w: f64,
    /// Memory.
    pub memory_w: f64,
    /// Accelerators (GPUs).
    pub gpu_w: f64,
    /// The instance's share of the rest of the server (fans, drives, NICs,
    /// power-supply losses); load-independent.
    pub other_w: f64,
}

impl PowerW {
    /// Sum of all components.
    pub fn total_w(&self) -> f64 {
        self.cpu_w + self.memory_w + self.gpu_w + self.other_w
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Model {
    /// Teads curve: per-component watts at the four load points.
    Curve { cpu_w: [f64; 4], ram_w: [f64; 4], gpu_w: [f64; 4], other_w: f64 },
    /// Linear min/max model (totals for the whole instance).
    Linear { cpu_min_w: f64, cpu_max_w: f64, gpu_min_w: f64, gpu_max_w: f64, memory_w: f64 },
}

/// The power model of one instance type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstancePower {
    vcpus: f64,
    memory_gib: f64,
    gpus: f64,
    model: Model,
    provenance: Provenance,
    quality: Quality,
}

/// Looks up the power model of `instance_type` (see the module docs for the
/// order). `None` when no table knows the type.
pub fn instance_power(instance_type: &str) -> Option<InstancePower> {
    lookup_variants(instance_type, power_exact)
}

/// Tries the name as given, then with a service prefix / suffix removed.
pub(crate) fn lookup_variants<T>(instance_type: &str, f: impl Fn(&str) -> Option<T>) -> Option<T> {
    let name = instance_type.trim();
    if let Some(found) = f(name) {
        return Some(found);
    }
    let stripped = base_instance_type(name);
    if stripped != name { f(stripped) } else { None }
}

/// The EC2 instance type behind a service-specific name: `db.r5.large`,
/// `cache.m5.large`, `ml.m5.xlarge`, `search.m5.large` → `r5.large` …;
/// `m5.large.search` / `m5.large.elasticsearch` → `m5.large`.
pub fn base_instance_type(instance_type: &str) -> &str {
    let mut name = instance_type.trim();
    for prefix in ["db.", "cache.", "ml.", "search."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest;
            break;
        }
    }
    for suffix in [".search", ".elasticsearch"] {
        if let Some(rest) = name.strip_suffix(suffix) {
            name = rest;
            break;
        }
    }
    name
}

fn power_exact(name: &str) -> Option<InstancePower> {
    if let Some(row) = TEADS.get(name) {
        return Some(from_teads(row));
    }
    if let Some(row) = CCF_INSTANCES.get(name) {
        let memory_w = excess_memory_w(row.memory_gib, row.vcpus, row.memory_gb_per_chip);
        return Some(InstancePower {
            vcpus: row.vcpus,
            memory_gib: row.memory_gib,
            gpus: row.gpus,
            model: Model::Linear {
                cpu_min_w: row.vcpus * row.min_w_per_vcpu,
                cpu_max_w: row.vcpus * row.max_w_per_vcpu,
                gpu_min_w: row.gpus * row.gpu_min_w,
                gpu_max_w: row.gpus * row.gpu_max_w,
                memory_w,
            },
            provenance: CCF_TABLE_PROVENANCE,
            quality: Quality::Estimated,
        });
    }
    let row = CATALOGUE_2026.get(name)?;
    if row.vcpus <= 0.0 {
        return None;
    }
    let arch_name = CPU_NAME_MAP.get(row.platform_cpu_name).copied().unwrap_or(catalogue::AWS_AVERAGE);
    let (arch, _) = catalogue::microarchitecture(arch_name);
    Some(linear(row.vcpus, row.memory_gib, arch, CATALOGUE_PROVENANCE, Quality::Estimated))
}

fn from_teads(row: &TeadsRow) -> InstancePower {
    InstancePower {
        vcpus: row.instance_vcpus,
        memory_gib: row.memory_gib,
        gpus: row.gpus,
        model: Model::Curve { cpu_w: row.cpu_w, ram_w: row.ram_w, gpu_w: row.gpu_w, other_w: row.delta_w },
        provenance: TEADS_PROVENANCE,
        quality: Quality::Measured,
    }
}

fn excess_memory_w(memory_gib: f64, vcpus: f64, memory_gb_per_chip: f64) -> f64 {
    let included_gb = vcpus * memory_gb_per_chip / VCPUS_PER_CHIP;
    (gib_to_gb(memory_gib) - included_gb).max(0.0) * MEMORY_W_PER_GB
}

fn linear(
    vcpus: f64,
    memory_gib: f64,
    arch: MicroarchitectureWatts,
    provenance: Provenance,
    quality: Quality,
) -> InstancePower {
    InstancePower {
        vcpus,
        memory_gib,
        gpus: 0.0,
        model: Model::Linear {
            cpu_min_w: vcpus * arch.min_w,
            cpu_max_w: vcpus * arch.max_w,
            gpu_min_w: 0.0,
            gpu_max_w: 0.0,
            memory_w: excess_memory_w(memory_gib, vcpus, arch.memory_gb_per_chip),
        },
        provenance,
        quality,
    }
}

/// Piecewise-linear interpolation over the Teads load points; utilisation is
/// clamped to 0..=100 %.
fn interpolate(points_w: &[f64; 4], utilisation_pct: f64) -> f64 {
    let u = utilisation_pct.clamp(0.0, 100.0);
    let segment = LOAD_POINTS_PCT.windows(2).position(|w| u <= w[1]).unwrap_or(2);
    let (x0, x1) = (LOAD_POINTS_PCT[segment], LOAD_POINTS_PCT[segment + 1]);
    let (y0, y1) = (points_w[segment], points_w[segment + 1]);
    y0 + (y1 - y0) * (u - x0) / (x1 - x0)
}

fn lerp(min_w: f64, max_w: f64, utilisation_pct: f64) -> f64 {
    min_w + (max_w - min_w) * utilisation_pct.clamp(0.0, 100.0) / 100.0
}

impl InstancePower {
    /// A linear model from CCF's AWS average watts per vCPU (0.74 W idle,
    /// 3.5 W at full load), for instance types no table knows but whose vCPU
    /// count the caller has (e.g. the CUR's `product_vcpu`). Quality `Default`.
    pub fn fleet_average(vcpus: f64) -> InstancePower {
        let (arch, _) = catalogue::microarchitecture(catalogue::AWS_AVERAGE);
        linear(vcpus.max(0.0), 0.0, arch, FLEET_AVERAGE_PROVENANCE, Quality::Default)
    }

    /// vCPUs of the instance.
    pub fn vcpus(&self) -> f64 {
        self.vcpus
    }

    /// Memory of the instance, GiB (0 when unknown).
    pub fn memory_gib(&self) -> f64 {
        self.memory_gib
    }

    /// GPUs of the instance.
    pub fn gpus(&self) -> f64 {
        self.gpus
    }

    /// Power by component at `cpu_utilisation_pct` (clamped to 0..=100). The
    /// GPU is assumed to run at the same utilisation as the CPU.
    pub fn power_w(&self, cpu_utilisation_pct: f64) -> PowerW {
        let u = if cpu_utilisation_pct.is_nan() { DEFAULT_CPU_UTILISATION_PCT } else { cpu_utilisation_pct };
        match self.model {
            Model::Curve { cpu_w, ram_w, gpu_w, other_w } => PowerW {
                cpu_w: interpolate(&cpu_w, u),
                memory_w: interpolate(&ram_w, u),
                gpu_w: interpolate(&gpu_w, u),
                other_w,
            },
            Model::Linear { cpu_min_w, cpu_max_w, gpu_min_w, gpu_max_w, memory_w } => PowerW {
                cpu_w: lerp(cpu_min_w, cpu_max_w, u),
                memory_w,
                gpu_w: lerp(gpu_min_w, gpu_max_w, u),
                other_w: 0.0,
            },
        }
    }

    /// IT energy of `instance_hours` at `cpu_utilisation_pct`, kWh, without PUE.
    pub fn kwh(&self, instance_hours: f64, cpu_utilisation_pct: f64) -> f64 {
        w_hours_to_kwh(self.power_w(cpu_utilisation_pct).total_w(), instance_hours)
    }

    /// Where the power figures come from.
    pub fn provenance(&self) -> Provenance {
        self.provenance
    }

    /// True when the figures come from a Teads per-instance curve.
    pub fn from_measured_curve(&self) -> bool {
        matches!(self.model, Model::Curve { .. })
    }

    /// Quality of the power model alone: `Measured` (Teads curve),
    /// `Estimated` (microarchitecture watts) or `Default` (fleet average).
    pub fn quality(&self) -> Quality {
        self.quality
    }

    /// Relative uncertainty of the power coefficients (0.1 = ±10 %): a
    /// project judgment, documented in `docs/data-sources.md` — measured
    /// curves ±10 %, microarchitecture models ±30 %, fleet average ±50 %.
    pub fn coefficient_uncertainty(&self) -> f64 {
        match self.quality {
            Quality::Measured => 0.10,
            Quality::Estimated => 0.30,
            Quality::Default => 0.50,
        }
    }
}

/// CPU architecture of serverless compute (Lambda, Fargate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CpuArchitecture {
    /// x86-64: CCF's AWS average watts per vCPU (0.74/3.5 W).
    #[default]
    X86,
    /// Arm64 (Graviton): CCF's Graviton2 watts per vCPU (0.47/1.69 W).
    Arm,
}

/// Power of one vCPU of serverless compute at `cpu_utilisation_pct`, W, with
/// the provenance of the coefficient.
pub fn vcpu_power_w(architecture: CpuArchitecture, cpu_utilisation_pct: f64) -> (f64, Provenance) {
    let name = match architecture {
        CpuArchitecture::X86 => catalogue::AWS_AVERAGE,
        CpuArchitecture::Arm => "AWS Graviton2",
    };
    let (arch, _) = catalogue::microarchitecture(name);
    let provenance = match architecture {
        CpuArchitecture::X86 => FLEET_AVERAGE_PROVENANCE,
        CpuArchitecture::Arm => CCF_TABLE_PROVENANCE,
    };
    (lerp(arch.min_w, arch.max_w, cpu_utilisation_pct), provenance)
}

/// IT energy of serverless compute, kWh, without PUE: vCPU-hours × watts per
/// vCPU at `cpu_utilisation_pct` ([`vcpu_power_w`]).
pub fn vcpu_hours_kwh(vcpu_hours: f64, architecture: CpuArchitecture, cpu_utilisation_pct: f64) -> f64 {
    w_hours_to_kwh(vcpu_power_w(architecture, cpu_utilisation_pct).0, vcpu_hours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_hits_points_and_midpoints() {
        let p = [4.4, 7.0, 14.1, 20.0];
        assert_eq!(interpolate(&p, 0.0), 4.4);
        assert_eq!(interpolate(&p, 10.0), 7.0);
        assert_eq!(interpolate(&p, 100.0), 20.0);
        assert_eq!(interpolate(&p, 150.0), 20.0);
        assert_eq!(interpolate(&p, -5.0), 4.4);
        // 5 %: 4.4 + (7.0 − 4.4) × 5/10 = 5.7
        assert!((interpolate(&p, 5.0) - 5.7).abs() < 1e-12);
        // 75 %: 14.1 + 5.9 × 25/50 = 17.05
        assert!((interpolate(&p, 75.0) - 17.05).abs() < 1e-12);
    }

    #[test]
    fn energy_helpers() {
        // m5.large 50 %: 14.12 W × 2 h = 0.02824 kWh
        let m5 = instance_power("m5.large").unwrap();
        assert!((m5.kwh(2.0, 50.0) - 0.02824).abs() < 1e-12);
        // x86 fleet average at 100 %: 3.5 W × 10 vCPU-h = 0.035 kWh; Arm idle 0.47 W × 10 = 0.0047 kWh
        assert!((vcpu_hours_kwh(10.0, CpuArchitecture::X86, 100.0) - 0.035).abs() < 1e-12);
        assert!((vcpu_hours_kwh(10.0, CpuArchitecture::Arm, 0.0) - 0.0047).abs() < 1e-12);
    }

    #[test]
    fn prefixes_and_suffixes_are_stripped() {
        assert_eq!(base_instance_type("db.r5.large"), "r5.large");
        assert_eq!(base_instance_type("cache.m5.large"), "m5.large");
        assert_eq!(base_instance_type("ml.m5.xlarge"), "m5.xlarge");
        assert_eq!(base_instance_type("m5.large.search"), "m5.large");
        assert_eq!(base_instance_type("m5.large"), "m5.large");
    }
}
