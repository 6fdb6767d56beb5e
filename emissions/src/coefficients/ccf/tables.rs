//! The CCF tables compiled in from `emissions/data/ccf/*.csv`, parsed once.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::csv::{Table, number};

/// One instance type as CCF's AWS tables describe it (`instance_types.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct CcfInstance {
    /// Family, e.g. `m5`.
    pub family: String,
    /// vCPUs from whichever CCF table lists the type.
    pub vcpus: Option<f64>,
    /// Memory (GiB; CCF calls it GB) from CCF's table, copied as-is (t1.micro says 613).
    pub memory_gib: Option<f64>,
    /// What a lookup in CCF's `EC2_INSTANCE_TYPES` yields (`None` for d3.xlarge,
    /// whose key carries a TAB, and for types outside that table).
    pub ec2_table_vcpus: Option<f64>,
    /// Burstable baseline CPU share in percent (t2/t3/t3a/t4g).
    pub burstable_baseline_pct: Option<f64>,
    /// Physical GPUs per instance (GPU table only).
    pub gpu_count: Option<f64>,
    /// Idle watts per vCPU CCF resolves for `BoxUsage:<type>`.
    pub min_watts_per_vcpu: f64,
    /// Full-load watts per vCPU CCF resolves for `BoxUsage:<type>`.
    pub max_watts_per_vcpu: f64,
    /// Idle watts per physical GPU.
    pub gpu_min_watts: Option<f64>,
    /// Full-load watts per physical GPU.
    pub gpu_max_watts: Option<f64>,
    /// Memory above SPECpower's GB per chip charged per instance-hour; `None`
    /// where CCF's memory step yields NaN (size missing from its table).
    pub extra_memory_gb_per_instance_hour: Option<f64>,
}

/// Embodied figures for one instance type (`embodied_emissions.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct CcfEmbodied {
    /// Total embodied emissions of the whole server as stored (metric tons CO2e).
    pub total_t_co2e: f64,
    /// The total CCF's code actually picks up (the memory column for u-* types,
    /// `None` where the lookup fails, e.g. d3.xlarge).
    pub total_used_by_code_t_co2e: Option<f64>,
    /// vCPUs of this size.
    pub instance_vcpus: f64,
    /// vCPUs of the last-listed (largest) size of the family.
    pub reference_vcpus: f64,
}

/// An instance family as CCF's memory step sees it: the last-listed size of
/// `EC2_INSTANCE_TYPES[family]`, or of `REDSHIFT_INSTANCE_TYPES[family]` for
/// families only Redshift lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CcfFamily {
    /// vCPUs of the last-listed size.
    pub reference_vcpus: f64,
    /// Memory (GB) of the last-listed size.
    pub reference_memory_gib: f64,
    /// Physical chips CCF assumes for that size (`ceil(vCPUs / 96)`, 2 for m5zn and z1d).
    pub physical_chips: f64,
}

/// All CCF tables, parsed once.
#[derive(Debug)]
pub struct CcfTables {
    /// Instance types by name (`m5.xlarge`).
    pub instances: HashMap<String, CcfInstance>,
    /// Families present in CCF's EC2 or Redshift tables (the memory step's
    /// validity test), with the figures of their last-listed size.
    pub families: HashMap<String, CcfFamily>,
    /// Memory (GB) by `family.size` as CCF's memory step reads it:
    /// `EC2_INSTANCE_TYPES[family][size][1] || REDSHIFT_INSTANCE_TYPES[family][size][1]`
    /// (so no entry for d3.xlarge, whose EC2 key carries a TAB).
    pub memory_gib: HashMap<String, f64>,
    /// Embodied data by instance type.
    pub embodied: HashMap<String, CcfEmbodied>,
    /// MSK vCPUs by `Kafka.<type>`.
    pub msk_vcpus: HashMap<String, f64>,
    /// Redshift vCPUs by node type (`dc2.large`).
    pub redshift_vcpus: HashMap<String, f64>,
    /// Grid factor per region, metric tons CO2e per kWh (`Unknown` included).
    pub region_t_co2e_per_kwh: HashMap<String, f64>,
    /// (min, max) watts per vCPU by microarchitecture name, where CCF has values.
    pub microarchitecture_watts: HashMap<String, (f64, f64)>,
}

static TABLES: LazyLock<CcfTables> = LazyLock::new(load);

/// The parsed CCF tables.
pub fn tables() -> &'static CcfTables {
    &TABLES
}

fn load() -> CcfTables {
    let mut instances = HashMap::new();
    let mut families = HashMap::new();
    let mut memory_gib = HashMap::new();
    let t = Table::new(include_str!("../../../data/ccf/instance_types.csv"));
    let c = |name: &str| t.column(name);
    let (ty, fam, src, vc, mem, burst, gpus) =
        (c("instance_type"), c("family"), c("source_table"), c("vcpus"), c("memory_gib"), c("burstable_baseline_pct"), c("gpu_count"));
    let (ref_vcpus, ref_memory, chips) =
        (c("ccf_family_reference_vcpus"), c("ccf_family_reference_memory_gib"), c("ccf_physical_chips"));
    let (minw, maxw, gmin, gmax, per_hour, extra) = (
        c("ccf_effective_min_watts_per_vcpu"),
        c("ccf_effective_max_watts_per_vcpu"),
        c("ccf_gpu_min_watts"),
        c("ccf_gpu_max_watts"),
        c("ccf_vcpu_hours_per_instance_hour"),
        c("ccf_extra_memory_gb_per_instance_hour"),
    );
    for row in t.rows() {
        let in_ec2 = row[src] == "EC2_INSTANCE_TYPES";
        if in_ec2 {
            // Every EC2 row carries its family's figures (checked by the unit tests).
            let figure = |column: usize| number(&row[column]).unwrap_or(f64::NAN);
            let family = CcfFamily {
                reference_vcpus: figure(ref_vcpus),
                reference_memory_gib: figure(ref_memory),
                physical_chips: figure(chips),
            };
            families.insert(row[fam].clone(), family);
        }
        let vcpus = number(&row[vc]);
        let ec2_table_vcpus = if in_ec2 && !row[per_hour].is_empty() { vcpus } else { None };
        if let (Some(_), Some(memory)) = (ec2_table_vcpus, number(&row[mem])) {
            memory_gib.insert(row[ty].clone(), memory);
        }
        instances.insert(
            row[ty].clone(),
            CcfInstance {
                family: row[fam].clone(),
                vcpus,
                memory_gib: number(&row[mem]),
                ec2_table_vcpus,
                burstable_baseline_pct: number(&row[burst]),
                gpu_count: number(&row[gpus]),
                min_watts_per_vcpu: number(&row[minw]).unwrap_or(super::MIN_WATTS_AVG),
                max_watts_per_vcpu: number(&row[maxw]).unwrap_or(super::MAX_WATTS_AVG),
                gpu_min_watts: number(&row[gmin]),
                gpu_max_watts: number(&row[gmax]),
                extra_memory_gb_per_instance_hour: number(&row[extra]),
            },
        );
    }

    let mut msk_vcpus = HashMap::new();
    let mut redshift_vcpus = HashMap::new();
    // Families only Redshift lists: their last-listed size, in table order.
    let mut redshift_only: HashMap<String, CcfFamily> = HashMap::new();
    let t = Table::new(include_str!("../../../data/ccf/service_instance_types.csv"));
    let (table, ty, vc, mem) = (t.column("table"), t.column("instance_type"), t.column("vcpus"), t.column("memory_gib"));
    for row in t.rows() {
        let Some(v) = number(&row[vc]) else { continue };
        match row[table].as_str() {
            "MSK_INSTANCE_TYPES" => {
                msk_vcpus.insert(row[ty].clone(), v);
            }
            "REDSHIFT_INSTANCE_TYPES" => {
                redshift_vcpus.insert(row[ty].clone(), v);
                let memory = number(&row[mem]);
                if let Some(memory) = memory {
                    memory_gib.entry(row[ty].clone()).or_insert(memory);
                }
                if let (Some((family, _)), Some(memory)) = (row[ty].split_once('.'), memory)
                    && !families.contains_key(family)
                {
                    let physical_chips = (v / 96.0).ceil();
                    redshift_only.insert(
                        family.to_owned(),
                        CcfFamily { reference_vcpus: v, reference_memory_gib: memory, physical_chips },
                    );
                }
            }
            _ => {}
        }
    }

    families.extend(redshift_only);

    let mut embodied = HashMap::new();
    let t = Table::new(include_str!("../../../data/ccf/embodied_emissions.csv"));
    let (ty, total, used, iv, rv) = (
        t.column("instance_type"),
        t.column("total_embodied_tCO2e"),
        t.column("ccf_te_used_by_code_tCO2e"),
        t.column("instance_vcpus"),
        t.column("ccf_largest_instance_vcpus_in_family"),
    );
    for row in t.rows() {
        let (Some(total_t_co2e), Some(instance_vcpus), Some(reference_vcpus)) = (number(&row[total]), number(&row[iv]), number(&row[rv]))
        else {
            continue;
        };
        embodied.insert(
            row[ty].clone(),
            CcfEmbodied { total_t_co2e, total_used_by_code_t_co2e: number(&row[used]), instance_vcpus, reference_vcpus },
        );
    }

    let t = Table::new(include_str!("../../../data/ccf/region_emission_factors.csv"));
    let (region, factor) = (t.column("region"), t.column("tCO2e_per_kWh"));
    let region_t_co2e_per_kwh =
        t.rows().iter().filter_map(|row| Some((row[region].clone(), number(&row[factor])?))).collect();

    let t = Table::new(include_str!("../../../data/ccf/microarchitecture_watts.csv"));
    let (name, min, max) = (t.column("microarchitecture"), t.column("min_watts"), t.column("max_watts"));
    let microarchitecture_watts =
        t.rows().iter().filter_map(|row| Some((row[name].clone(), (number(&row[min])?, number(&row[max])?)))).collect();

    CcfTables { instances, families, memory_gib, embodied, msk_vcpus, redshift_vcpus, region_t_co2e_per_kwh, microarchitecture_watts }
}
