//! Deterministic synthetic cycles and their produced-log lines.
//!
//! Cycle `c`, record `i`: instance `i-<agent>-c<c>-r<i>`, hour `c % 24`
//! after the base, compute `0.001 * (i + 1) + 0.0001 * c` kWh, memory
//! 0.0005 kWh, PUE 1.135, location grid 334 g/kWh, embodied 1 g, revision 0.
//! Every cycle `c >= 1` with `c % 5 == 0` also carries revision 1 of record
//! 0 of cycle `c - 1` with 10 % more compute energy (a superseding
//! re-estimate, which must replace the stored revision 0).

use canopy_outbox::{Cycle, GroupedEmission};
use canopy_protocol::{EmissionRecord, GridFactorUsed, GroupKey, Quality, Subject};

/// PUE of every record.
pub const PUE: f64 = 1.135;
/// Location-based grid factor of every record, gCO2e/kWh.
pub const GRID_G_CO2E_PER_KWH: f64 = 334.0;

/// What every cycle of this agent shares.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Account id of the records.
    pub account_id: String,
    /// Region of the records.
    pub region: String,
    /// Agent id (part of every ARN, so agents never share keys).
    pub agent_id: String,
    /// Records per cycle (revision 0).
    pub records_per_cycle: usize,
    /// Start of hour 0, Unix seconds.
    pub base_unix_s: i64,
}

impl Spec {
    fn record(&self, c: u64, i: usize, revision: u32) -> GroupedEmission {
        let compute_kwh = (0.001 * (i as f64 + 1.0) + 0.0001 * c as f64) * if revision > 0 { 1.1 } else { 1.0 };
        let memory_kwh = 0.0005;
        let operational = (compute_kwh + memory_kwh) * PUE * GRID_G_CO2E_PER_KWH;
        let embodied = 1.0;
        let central = embodied + operational;
        let start = self.base_unix_s + (c % 24) as i64 * 3_600;
        let arn = format!("arn:aws:ec2:{}:{}:instance/i-{}-c{c}-r{i}", self.region, self.account_id, self.agent_id);
        let grid = |g: f64| GridFactorUsed { g_co2e_per_kwh: g, source: "ccf".into(), vintage: "2024".into() };
        GroupedEmission {
            record: EmissionRecord {
                subject: Subject::Resource { arn },
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
                grid_location: grid(GRID_G_CO2E_PER_KWH),
                grid_market: grid(0.0),
                quality: if revision > 0 { Quality::Measured } else { Quality::Estimated },
                low_g_co2e: central * 0.5,
                high_g_co2e: central * 2.0,
                methodology_version: "canopy-sim-1".into(),
                revision,
            },
            group: GroupKey {
                service: "ec2".into(),
                resource_type: "instance".into(),
                team: Some(format!("team-{}", i % 4)),
            },
        }
    }

    /// Cycle `c` (always the same content for the same spec and `c`).
    pub fn cycle(&self, c: u64) -> Cycle {
        let mut emissions: Vec<GroupedEmission> = (0..self.records_per_cycle).map(|i| self.record(c, i, 0)).collect();
        if c >= 1 && c.is_multiple_of(5) && self.records_per_cycle > 0 {
            emissions.push(self.record(c - 1, 0, 1));
        }
        Cycle {
            account_id: self.account_id.clone(),
            region: self.region.clone(),
            created_at_unix_ms: (self.base_unix_s + (c % 24) as i64 * 3_600) * 1_000,
            resources: Vec::new(),
            emissions,
            agent_status: None,
        }
    }
}

/// Produced-log lines of cycle `c`: one per record (`record_key` as the
/// aggregator stores it, `period_start_unix_s`, `revision`, facility
/// `energy_kwh`), then `{"cycle_done": c}`.
pub fn log_lines(cycle: &Cycle, c: u64) -> String {
    let mut out = String::new();
    for g in &cycle.emissions {
        let e = &g.record;
        let line = serde_json::json!({
            "record_key": format!("{}@{}s", e.subject, e.interval_end_unix_s - e.interval_start_unix_s),
            "period_start_unix_s": e.interval_start_unix_s,
            "revision": e.revision,
            "energy_kwh": e.energy_total_kwh() * e.pue,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out.push_str(&serde_json::json!({ "cycle_done": c }).to_string());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            agent_id: "a1".into(),
            records_per_cycle: 3,
            // 1,800,000,000 = 500,000 whole hours.
            base_unix_s: 1_800_000_000,
        }
    }

    #[test]
    fn cycles_are_deterministic_and_every_fifth_supersedes() {
        let s = spec();
        assert_eq!(s.cycle(7).emissions.len(), 3);
        assert_eq!(s.cycle(5).emissions.len(), 4);
        let lines = log_lines(&s.cycle(5), 5);
        assert_eq!(lines, log_lines(&s.cycle(5), 5));
        let last_record: serde_json::Value = serde_json::from_str(lines.lines().nth(3).unwrap()).unwrap();
        // Revision 1 of cycle 4 record 0: compute (0.001 + 0.0004) x 1.1 =
        // 0.00154 kWh, + memory 0.0005 = 0.00204 kWh, x PUE 1.135 = 0.0023154 kWh.
        assert_eq!(last_record["revision"], 1);
        assert_eq!(last_record["record_key"], "resource:arn:aws:ec2:eu-west-1:123456789012:instance/i-a1-c4-r0@3600s");
        assert!((last_record["energy_kwh"].as_f64().unwrap() - 0.0023154).abs() < 1e-12);
        assert_eq!(lines.lines().last().unwrap(), r#"{"cycle_done":5}"#);
    }

    #[test]
    fn records_pass_protocol_validation() {
        let s = spec();
        let cycle = s.cycle(10);
        let batch = canopy_protocol::Batch {
            agent_id: "a1".into(),
            account_id: cycle.account_id.clone(),
            region: cycle.region.clone(),
            sequence: 1,
            idempotency_key: canopy_protocol::IdempotencyKey([0; 16]),
            created_at_unix_ms: cycle.created_at_unix_ms,
            resources: vec![],
            emissions: cycle.emissions.iter().map(|g| g.record.clone()).collect(),
            agent_status: None,
        };
        batch.validate(&canopy_protocol::DecodeLimits::default()).expect("valid");
        // Hour 10 of the base.
        assert_eq!(batch.emissions[0].interval_start_unix_s, s.base_unix_s + 36_000);
    }
}
