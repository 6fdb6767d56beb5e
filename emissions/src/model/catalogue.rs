//! The compiled-in instance tables, parsed once on first use.
//!
//! * `data/teads/aws_ec2_teads_power_curves.csv` — Teads per-instance power
//!   curves (0/10/50/100 % CPU) and platform embodied emissions.
//! * `data/teads/ccf_instance_types_fallback.csv` — Cloud Carbon Footprint's
//!   vCPU, memory, watts-per-vCPU and GPU figures for types Teads lacks.
//! * `data/teads/ccf_embodied_fallback.csv` — CCF's server embodied totals for
//!   the same types.
//! * `data/teads/aws_instances_2026.csv` — CCF's 2026 instance catalogue
//!   (vCPU, memory, host CPU, base-platform embodied) for newer families.
//! * `data/teads/ccf_microarchitecture_watts.csv` and
//!   `data/teads/cpu_name_microarchitecture.csv` — watts per vCPU / per GPU by
//!   microarchitecture and our map from catalogue CPU names onto them.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::csv_text::{Record, column, opt_f64, records};

/// One Teads row: watts at the four load points and embodied figures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TeadsRow {
    pub instance_vcpus: f64,
    pub platform_vcpus: f64,
    pub memory_gib: f64,
    pub gpus: f64,
    /// CPU package W at 0, 10, 50, 100 %.
    pub cpu_w: [f64; 4],
    /// RAM W at 0, 10, 50, 100 %.
    pub ram_w: [f64; 4],
    /// GPU W at 0, 10, 50, 100 %.
    pub gpu_w: [f64; 4],
    /// Load-independent share of the rest of the server.
    pub delta_w: f64,
    /// Whole-instance W at 0, 10, 50, 100 % (as published, rounded to 0.1 W);
    /// the model sums the components, this is kept to check that sum.
    #[cfg(test)]
    pub instance_w: [f64; 4],
    pub platform_total_embodied_kg_co2e: f64,
}

/// One CCF instance row for a type Teads lacks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CcfInstanceRow {
    pub vcpus: f64,
    pub memory_gib: f64,
    pub min_w_per_vcpu: f64,
    pub max_w_per_vcpu: f64,
    pub gpus: f64,
    pub gpu_min_w: f64,
    pub gpu_max_w: f64,
    pub memory_gb_per_chip: f64,
}

/// One CCF embodied row for a type Teads lacks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CcfEmbodiedRow {
    pub total_embodied_kg_co2e: f64,
    pub instance_vcpus: f64,
    pub family_largest_vcpus: f64,
}

/// One row of the 2026 catalogue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CatalogueRow {
    pub vcpus: f64,
    pub memory_gib: f64,
    pub platform_cpu_name: &'static str,
    pub platform_embodied_t_co2e: Option<f64>,
}

/// Watts for one microarchitecture (per vCPU for CPUs, per GPU for GPUs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MicroarchitectureWatts {
    pub min_w: f64,
    pub max_w: f64,
    pub memory_gb_per_chip: f64,
}

const TEADS_CSV: &str = include_str!("../../data/teads/aws_ec2_teads_power_curves.csv");
const CCF_INSTANCES_CSV: &str = include_str!("../../data/teads/ccf_instance_types_fallback.csv");
const CCF_EMBODIED_CSV: &str = include_str!("../../data/teads/ccf_embodied_fallback.csv");
const CATALOGUE_2026_CSV: &str = include_str!("../../data/teads/aws_instances_2026.csv");
const MICROARCHITECTURE_CSV: &str = include_str!("../../data/teads/ccf_microarchitecture_watts.csv");
const CPU_NAME_MAP_CSV: &str = include_str!("../../data/teads/cpu_name_microarchitecture.csv");

/// Name of the CCF fallback row used when a microarchitecture is unknown.
pub(crate) const AWS_AVERAGE: &str = "AWS average";

fn table(text: &'static str) -> (Record<'static>, Vec<Record<'static>>) {
    let mut rows = records(text).map(|r| r.unwrap_or_else(|e| panic!("compiled-in table: {e}")));
    let header = rows.next().expect("compiled-in table has a header");
    (header, rows.collect())
}

fn num(row: &Record<'_>, index: usize) -> f64 {
    opt_f64(row.get(index)).unwrap_or(0.0)
}

fn static_field(row: &Record<'static>, index: usize) -> &'static str {
    match row.fields.get(index) {
        Some(std::borrow::Cow::Borrowed(s)) => s,
        _ => "",
    }
}

pub(crate) static TEADS: LazyLock<HashMap<&'static str, TeadsRow>> = LazyLock::new(|| {
    let (h, rows) = table(TEADS_CSV);
    let points = |prefix: &str| -> [usize; 4] {
        ["idle", "10pct", "50pct", "100pct"].map(|p| column(&h, &format!("{prefix}_{p}")))
    };
    let (cpu, ram, gpu) = (points("cpu_pkg_w"), points("ram_w"), points("gpu_w"));
    #[cfg(test)]
    let inst = points("instance_w");
    let c = |name| column(&h, name);
    let (name, ivcpu, pvcpu, mem, gpus, delta, emb) = (
        c("instance_type"),
        c("instance_vcpu"),
        c("platform_vcpu"),
        c("instance_memory_gb"),
        c("instance_gpu_count"),
        c("delta_full_machine_w"),
        c("platform_total_embodied_kg_co2e"),
    );
    rows.iter()
        .map(|r| {
            let four = |idx: [usize; 4]| idx.map(|i| num(r, i));
            let row = TeadsRow {
                instance_vcpus: num(r, ivcpu),
                platform_vcpus: num(r, pvcpu),
                memory_gib: num(r, mem),
                gpus: num(r, gpus),
                cpu_w: four(cpu),
                ram_w: four(ram),
                gpu_w: four(gpu),
                delta_w: num(r, delta),
                #[cfg(test)]
                instance_w: four(inst),
                platform_total_embodied_kg_co2e: num(r, emb),
            };
            (static_field(r, name), row)
        })
        .collect()
});

pub(crate) static CCF_INSTANCES: LazyLock<HashMap<&'static str, CcfInstanceRow>> =
    LazyLock::new(|| {
        let (h, rows) = table(CCF_INSTANCES_CSV);
        let c = |name| column(&h, name);
        let idx = [
            c("vcpus"),
            c("memory_gib"),
            c("min_w_per_vcpu"),
            c("max_w_per_vcpu"),
            c("gpu_count"),
            c("gpu_min_w"),
            c("gpu_max_w"),
            c("memory_gb_per_chip"),
        ];
        let name = c("instance_type");
        rows.iter()
            .map(|r| {
                let v = idx.map(|i| num(r, i));
                let row = CcfInstanceRow {
                    vcpus: v[0],
                    memory_gib: v[1],
                    min_w_per_vcpu: v[2],
                    max_w_per_vcpu: v[3],
                    gpus: v[4],
                    gpu_min_w: v[5],
                    gpu_max_w: v[6],
                    memory_gb_per_chip: v[7],
                };
                (static_field(r, name), row)
            })
            .collect()
    });

pub(crate) static CCF_EMBODIED: LazyLock<HashMap<&'static str, CcfEmbodiedRow>> =
    LazyLock::new(|| {
        let (h, rows) = table(CCF_EMBODIED_CSV);
        let c = |name| column(&h, name);
        let (name, total, vcpus, largest) = (
            c("instance_type"),
            c("total_embodied_kg_co2e"),
            c("instance_vcpus"),
            c("family_largest_vcpus"),
        );
        rows.iter()
            .map(|r| {
                let row = CcfEmbodiedRow {
                    total_embodied_kg_co2e: num(r, total),
                    instance_vcpus: num(r, vcpus),
                    family_largest_vcpus: num(r, largest),
                };
                (static_field(r, name), row)
            })
            .collect()
    });

pub(crate) static CATALOGUE_2026: LazyLock<HashMap<&'static str, CatalogueRow>> =
    LazyLock::new(|| {
        let (h, rows) = table(CATALOGUE_2026_CSV);
        let c = |name| column(&h, name);
        let (name, vcpu, mem, cpu, emb) = (
            c("instance_type"),
            c("vcpu"),
            c("memory_gib"),
            c("platform_cpu_name"),
            c("platform_embodied_t_co2e"),
        );
        rows.iter()
            .map(|r| {
                let row = CatalogueRow {
                    vcpus: num(r, vcpu),
                    memory_gib: num(r, mem),
                    platform_cpu_name: static_field(r, cpu),
                    platform_embodied_t_co2e: opt_f64(r.get(emb)),
                };
                (static_field(r, name), row)
            })
            .collect()
    });

/// Largest vCPU count per family (text before the first `.`) in the 2026
/// catalogue: the host-platform size used to apportion its embodied figure.
pub(crate) static CATALOGUE_2026_FAMILY_MAX_VCPUS: LazyLock<HashMap<&'static str, f64>> =
    LazyLock::new(|| {
        let mut max: HashMap<&'static str, f64> = HashMap::new();
        for (name, row) in CATALOGUE_2026.iter() {
            let family = name.split('.').next().unwrap_or(name);
            let entry = max.entry(family).or_insert(0.0);
            *entry = entry.max(row.vcpus);
        }
        max
    });

pub(crate) static MICROARCHITECTURES: LazyLock<HashMap<&'static str, MicroarchitectureWatts>> =
    LazyLock::new(|| {
        let (h, rows) = table(MICROARCHITECTURE_CSV);
        let c = |name| column(&h, name);
        let (name, min, max, mem) =
            (c("microarchitecture"), c("min_w"), c("max_w"), c("memory_gb_per_chip"));
        rows.iter()
            .map(|r| {
                let row = MicroarchitectureWatts {
                    min_w: num(r, min),
                    max_w: num(r, max),
                    memory_gb_per_chip: num(r, mem),
                };
                (static_field(r, name), row)
            })
            .collect()
    });

pub(crate) static CPU_NAME_MAP: LazyLock<HashMap<&'static str, &'static str>> =
    LazyLock::new(|| {
        let (h, rows) = table(CPU_NAME_MAP_CSV);
        let (name, arch) = (column(&h, "platform_cpu_name"), column(&h, "microarchitecture"));
        rows.iter().map(|r| (static_field(r, name), static_field(r, arch))).collect()
    });

/// Watts of a microarchitecture by CCF name; the AWS average when unknown.
pub(crate) fn microarchitecture(name: &str) -> (MicroarchitectureWatts, bool) {
    match MICROARCHITECTURES.get(name) {
        Some(w) => (*w, true),
        None => (MICROARCHITECTURES[AWS_AVERAGE], false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_load_with_expected_sizes() {
        assert_eq!(TEADS.len(), 621);
        assert_eq!(CCF_INSTANCES.len(), 97);
        assert_eq!(CCF_EMBODIED.len(), 97);
        assert_eq!(CATALOGUE_2026.len(), 1195);
        assert_eq!(MICROARCHITECTURES.len(), 21);
        assert!(CPU_NAME_MAP.values().all(|arch| MICROARCHITECTURES.contains_key(arch)));
    }

    #[test]
    fn teads_row_matches_published_m5_large() {
        let m5 = TEADS["m5.large"];
        assert_eq!(m5.instance_w, [4.4, 7.0, 14.1, 20.0]);
        assert_eq!(m5.platform_vcpus, 96.0);
        assert_eq!(m5.platform_total_embodied_kg_co2e, 1610.4);
        // whole instance = cpu + ram + gpu + delta at every point, within the 0.1 W rounding
        for row in TEADS.values() {
            for i in 0..4 {
                let sum = row.cpu_w[i] + row.ram_w[i] + row.gpu_w[i] + row.delta_w;
                assert!((sum - row.instance_w[i]).abs() <= 0.11, "{row:?}");
            }
        }
    }

    #[test]
    fn catalogue_families_have_platform_sizes() {
        assert_eq!(CATALOGUE_2026_FAMILY_MAX_VCPUS["c7g"], 64.0);
        assert_eq!(CATALOGUE_2026["c7g.xlarge"].platform_cpu_name, "AWS Graviton3 Processor");
    }
}
