//! Physical plausibility bounds for the numbers an agent sends.
//!
//! The protocol only checks that values are finite and non-negative; an
//! enrolled but hostile (or broken) agent could still send 1e308 kWh, which
//! overflows PostgreSQL's sums in the rollups and the org drain. Every
//! numeric field of an emission record, resource record and agent status
//! gets a generous ceiling here, derived from what one resource (or one
//! group of at most [`MAX_GROUP_RESOURCES`] resources) can physically draw
//! or emit over the record's interval. [`check_batch`] names the first
//! field outside its bound; `delivery` refuses and quarantines the batch.

use canopy_protocol as wire;

/// Most resources one group record may stand for.
pub const MAX_GROUP_RESOURCES: f64 = 100_000.0;
/// Highest power, kW, of one compute-like resource (the largest GPU
/// instances draw about 10 kW at the wall; five times that).
pub const MAX_COMPUTE_KW: f64 = 50.0;
/// Highest power, kW, of one storage-like resource (a multi-petabyte
/// bucket, file system or table: replicated storage at about 1 W per TB).
pub const MAX_STORAGE_KW: f64 = 10_000.0;
/// Highest PUE accepted (AWS reports 1.15; old on-premises rooms reach 2.5).
pub const MAX_PUE: f64 = 3.0;
/// Highest grid intensity accepted, g CO2e per kWh (the dirtiest grids
/// are near 1,000; twice that).
pub const MAX_GRID_G_PER_KWH: f64 = 2_000.0;
/// Highest embodied emissions of one resource per hour, g CO2e (a large
/// server's ~4 t over four years is ~115 g/h; about 100 times that).
pub const MAX_EMBODIED_G_PER_RESOURCE_HOUR: f64 = 10_000.0;
/// Most vCPUs of one resource.
pub const MAX_VCPUS: f64 = 4_096.0;
/// Most memory of one resource, MiB (64 TiB).
pub const MAX_MEMORY_MIB: u64 = 64 * 1024 * 1024;
/// Most accelerators of one resource.
pub const MAX_ACCELERATORS: u32 = 64;

/// Power ceiling, kW, of one resource of `resource_type`: storage-like
/// types (buckets, file systems, tables, streams, snapshots) may be huge;
/// everything else is bounded like the largest server.
pub fn max_kw_per_resource(resource_type: &str) -> f64 {
    let t = resource_type.to_ascii_lowercase();
    let storage = ["bucket", "file-system", "filesystem", "table", "stream", "snapshot", "volume", "cluster", "domain"];
    if storage.iter().any(|s| t.contains(s)) { MAX_STORAGE_KW } else { MAX_COMPUTE_KW }
}

fn bound(field: String, value: f64, max: f64) -> Result<(), String> {
    if value.is_nan() || value > max {
        return Err(format!("{field}: expected at most {max:e} (physical plausibility bound), found {value:e}"));
    }
    Ok(())
}

/// Resource type of a record: the group's, else the inventory's for its
/// ARN, else the ARN's resource part (`arn:aws:ec2:..:instance/i-1` →
/// `instance`).
fn resource_type_of<'a>(batch: &'a wire::Batch, record: &'a wire::EmissionRecord) -> (&'a str, f64) {
    match &record.subject {
        wire::Subject::Group(g) => (g.resource_type.as_str(), MAX_GROUP_RESOURCES),
        wire::Subject::Resource { arn } => {
            let inventory = batch.resources.iter().find(|r| &r.arn == arn).map(|r| r.resource_type.as_str());
            let from_arn = arn.splitn(6, ':').nth(5).map(|r| r.split(['/', ':']).next().unwrap_or(r));
            (inventory.or(from_arn).unwrap_or(""), 1.0)
        }
    }
}

/// Checks every record of `batch` against its bounds; `Err` names the
/// record, field, bound and value. `max_taken_at_unix_ms` bounds the agent
/// status's `taken_at`.
pub fn check_batch(batch: &wire::Batch, max_taken_at_unix_ms: i64) -> Result<(), String> {
    for (i, e) in batch.emissions.iter().enumerate() {
        let (resource_type, resources) = resource_type_of(batch, e);
        let hours = (e.interval_end_unix_s - e.interval_start_unix_s).max(0) as f64 / 3_600.0;
        let max_kwh = max_kw_per_resource(resource_type) * resources * hours;
        let f = |name: &str| format!("emissions[{i}].{name}");
        for (name, value) in [
            ("energy_compute_kwh", e.energy_compute_kwh),
            ("energy_memory_kwh", e.energy_memory_kwh),
            ("energy_storage_kwh", e.energy_storage_kwh),
            ("energy_networking_kwh", e.energy_networking_kwh),
            ("energy_accelerators_kwh", e.energy_accelerators_kwh),
        ] {
            bound(f(name), value, max_kwh)?;
        }
        bound(f("energy_total_kwh"), e.energy_total_kwh(), max_kwh)?;
        bound(f("pue"), e.pue, MAX_PUE)?;
        bound(f("grid_location.g_co2e_per_kwh"), e.grid_location.g_co2e_per_kwh, MAX_GRID_G_PER_KWH)?;
        bound(f("grid_market.g_co2e_per_kwh"), e.grid_market.g_co2e_per_kwh, MAX_GRID_G_PER_KWH)?;
        // CO2e consistent with the record's own energy at the highest
        // plausible intensity (a little slack for rounding).
        let facility_kwh = e.energy_total_kwh() * e.pue.max(1.0);
        let max_operational = facility_kwh * MAX_GRID_G_PER_KWH * (1.0 + 1e-9) + 1e-6;
        bound(f("operational_location_g_co2e"), e.operational_location_g_co2e, max_operational)?;
        bound(f("operational_market_g_co2e"), e.operational_market_g_co2e, max_operational)?;
        let max_embodied = MAX_EMBODIED_G_PER_RESOURCE_HOUR * resources * hours;
        bound(f("embodied_g_co2e"), e.embodied_g_co2e, max_embodied)?;
        let max_total = max_kwh * MAX_PUE * MAX_GRID_G_PER_KWH + max_embodied;
        bound(f("low_g_co2e"), e.low_g_co2e, max_total)?;
        bound(f("high_g_co2e"), e.high_g_co2e, max_total)?;
    }
    for (i, r) in batch.resources.iter().enumerate() {
        if let Some(vcpus) = r.vcpus {
            bound(format!("resources[{i}].vcpus"), vcpus, MAX_VCPUS)?;
        }
        if let Some(mib) = r.memory_mib {
            bound(format!("resources[{i}].memory_mib"), mib as f64, MAX_MEMORY_MIB as f64)?;
        }
        let accelerators: u64 = r.accelerators.iter().map(|a| u64::from(a.count)).sum();
        bound(format!("resources[{i}].accelerators"), accelerators as f64, f64::from(MAX_ACCELERATORS))?;
    }
    if let Some(status) = &batch.agent_status
        && status.taken_at_unix_ms > max_taken_at_unix_ms
    {
        return Err(format!(
            "agent_status.taken_at_unix_ms: expected at most {max_taken_at_unix_ms} (15 min ahead of the \
             aggregator clock), found {}",
            status.taken_at_unix_ms
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_types_get_the_larger_ceiling() {
        assert_eq!(max_kw_per_resource("instance"), MAX_COMPUTE_KW);
        assert_eq!(max_kw_per_resource("bucket"), MAX_STORAGE_KW);
        assert_eq!(max_kw_per_resource("file-system"), MAX_STORAGE_KW);
    }

    #[test]
    fn nan_is_out_of_bounds() {
        assert!(bound("x".into(), f64::NAN, 1.0).is_err());
        assert!(bound("x".into(), 1.0, 1.0).is_ok());
        let err = bound("emissions[0].energy_compute_kwh".into(), 1e308, 50.0).unwrap_err();
        assert!(err.contains("emissions[0].energy_compute_kwh: expected at most 5e1"), "{err}");
    }
}
