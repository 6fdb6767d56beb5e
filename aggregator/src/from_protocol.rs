//! The edge between the wire and storage: converts the protocol crate's
//! decoded [`canopy_protocol::Batch`] into the aggregator's [`Batch`].
//!
//! - Energy stored is facility energy: the sum of the component (IT)
//!   energies times the record's PUE.
//! - Location-based CO2e is embodied + operational location-based (the value
//!   the protocol's low/high bounds bracket); market-based is embodied +
//!   operational market-based. Both totals keep that meaning, and the parts
//!   are kept apart as well (IT energy, operational location, operational
//!   market, embodied, each with bounds: [`crate::accounting::FactParts`]).
//! - The factor lineage stored is the location-based factor's source and
//!   vintage, and the market factor's.
//! - A resource record's service, type and tags come from the batch's
//!   inventory when it lists the ARN; otherwise service and type are read
//!   from the ARN and the tags from the stored inventory at ingest.
//! - Group records keep the agent's team; an untagged group (no team) gets
//!   the account's default rule, else `untagged`.
//! - 5-minute group records are the real-time path ([`is_realtime`]): the
//!   same energy as the hourly per-resource records, so they are marked and
//!   stored apart from the totals.
//! - Resource attributes (protocol v2) go with the inventory row; a v1
//!   batch has none. The agent status (v2) becomes an [`AgentStatusRow`]
//!   for the batch's agent, account and region ([`agent_status_from_protocol`]).

use std::collections::HashMap;

use canopy_protocol as wire;

use crate::accounting::FactParts;
use crate::model::{Accounting, AgentStatusRow, Batch, FactRow, InventoryRow, Quality};

/// Converts a decoded wire batch.
pub fn batch_from_protocol(batch: &wire::Batch) -> Batch {
    let by_arn: HashMap<&str, &wire::ResourceRecord> = batch.resources.iter().map(|r| (r.arn.as_str(), r)).collect();
    let facts = batch.emissions.iter().map(|e| fact_from_record(batch, e, &by_arn)).collect();
    let inventory = batch
        .resources
        .iter()
        .map(|r| InventoryRow {
            account_id: batch.account_id.clone(),
            region: batch.region.clone(),
            resource_id: r.arn.clone(),
            resource_type: r.resource_type.clone(),
            service: r.service.clone(),
            tags: r.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            attributes: r.attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            observed_unix_s: r.last_seen_unix_s,
            deleted: r.lifecycle == wire::LifecycleState::Terminated,
        })
        .collect();
    Batch { agent_id: batch.agent_id.clone(), sequence: batch.sequence, facts, inventory }
}

/// The agent status a wire batch carries, if any.
pub fn agent_status_from_protocol(batch: &wire::Batch) -> Option<AgentStatusRow> {
    batch.agent_status.as_ref().map(|s| AgentStatusRow {
        agent_id: batch.agent_id.clone(),
        account_id: batch.account_id.clone(),
        region: batch.region.clone(),
        agent_version: s.agent_version.clone(),
        outbox_backlog_frames: s.outbox_backlog_frames,
        outbox_backlog_bytes: s.outbox_backlog_bytes,
        records_shed_total: s.records_shed_total,
        collection_errors_total: s.collection_errors_total,
        send_failures_total: s.send_failures_total,
        taken_at_unix_ms: s.taken_at_unix_ms,
        batch_sequence: batch.sequence,
    })
}

fn quality(q: wire::Quality) -> Quality {
    match q {
        wire::Quality::Measured => Quality::Measured,
        wire::Quality::Estimated => Quality::Estimated,
        wire::Quality::Default => Quality::Default,
    }
}

/// (service, resource type) from an ARN `arn:partition:service:region:account:resource`,
/// where resource is `type/id`, `type:id` or a bare id (type `resource`).
pub fn service_and_type_from_arn(arn: &str) -> (String, String) {
    let mut parts = arn.splitn(6, ':');
    let service = parts.nth(2).filter(|s| !s.is_empty()).unwrap_or("unknown");
    let resource = parts.nth(2).unwrap_or("");
    let resource_type = match resource.find(['/', ':']) {
        Some(i) if i > 0 => &resource[..i],
        _ => "resource",
    };
    (service.to_owned(), resource_type.to_owned())
}

fn fact_from_record(
    batch: &wire::Batch,
    e: &wire::EmissionRecord,
    by_arn: &HashMap<&str, &wire::ResourceRecord>,
) -> FactRow {
    let (resource_id, service, resource_type, team, tags) = match &e.subject {
        wire::Subject::Resource { arn } => match by_arn.get(arn.as_str()) {
            Some(r) => (
                arn.clone(),
                r.service.clone(),
                r.resource_type.clone(),
                None,
                Some(r.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ),
            None => {
                let (service, resource_type) = service_and_type_from_arn(arn);
                (arn.clone(), service, resource_type, None, None)
            }
        },
        wire::Subject::Group(g) => (
            group_subject(g),
            g.service.clone(),
            g.resource_type.clone(),
            g.team.clone(),
            Some(Vec::new()),
        ),
    };
    let length_s = e.interval_end_unix_s.saturating_sub(e.interval_start_unix_s);
    FactRow {
        record_key: record_key(&e.subject, length_s),
        revision: e.revision,
        period_start_unix_s: e.interval_start_unix_s,
        // Out-of-range lengths become 0 or u32::MAX and are rejected by
        // validation with the interval named.
        period_s: u32::try_from(length_s).unwrap_or(if length_s < 0 { 0 } else { u32::MAX }),
        account_id: batch.account_id.clone(),
        region: batch.region.clone(),
        resource_id,
        resource_type,
        service,
        team,
        tags,
        quality: quality(e.quality),
        energy_kwh: e.energy_total_kwh() * e.pue,
        location_g_co2e: e.total_location_g_co2e(),
        market_g_co2e: e.embodied_g_co2e + e.operational_market_g_co2e,
        low_g_co2e: e.low_g_co2e,
        high_g_co2e: e.high_g_co2e,
        methodology_version: e.methodology_version.clone(),
        factor_source: e.grid_location.source.clone(),
        factor_vintage: e.grid_location.vintage.clone(),
        accounting: Some(Accounting {
            parts: FactParts::from_record(
                e.energy_total_kwh(),
                e.operational_location_g_co2e,
                e.operational_market_g_co2e,
                e.embodied_g_co2e,
                e.low_g_co2e,
                e.high_g_co2e,
            ),
            market_factor_source: market_source(e),
            market_factor_vintage: e.grid_market.vintage.clone(),
        }),
        realtime: is_realtime(&e.subject, length_s),
    }
}

/// The market factor's source as stored: [`MARKET_FALLBACK`] when the agent
/// had no market data (its market factor is its location factor, same
/// provenance), so the copy is flagged instead of passing for a
/// market-based figure.
fn market_source(e: &wire::EmissionRecord) -> String {
    let (m, l) = (&e.grid_market, &e.grid_location);
    if m.source == l.source && m.vintage == l.vintage && m.g_co2e_per_kwh == l.g_co2e_per_kwh {
        MARKET_FALLBACK.to_owned()
    } else {
        m.source.clone()
    }
}

/// Market factor source of a figure whose market factor is the location
/// factor for lack of market data.
pub const MARKET_FALLBACK: &str = "location-fallback";

/// `<subject>@<length>s`, the record's key within (account, region,
/// period start). Written without the formatting machinery for a
/// resource subject (its ARN): this runs for every record of every batch.
fn record_key(subject: &wire::Subject, length_s: i64) -> String {
    use std::fmt::Write as _;
    match subject {
        wire::Subject::Resource { arn } => {
            let mut key = String::with_capacity(arn.len() + 18);
            key.push_str("resource:");
            key.push_str(arn);
            key.push('@');
            let _ = write!(key, "{length_s}s");
            key
        }
        wire::Subject::Group(g) => format!("{}@{length_s}s", group_subject(g)),
    }
}

/// `group:<service>/<type>/<team>`, the text of a group subject in record
/// keys and as the fact's resource id. An untagged group (no team) is `-`;
/// a team that is `-` itself, or starts with `%`, is written with a `%`
/// in front, so no team's text equals another's (`-` alone used to name
/// both an untagged group and a team called `-`, and the two replaced each
/// other). Every other team is written as is, so the keys already stored
/// for them stay the same.
pub fn group_subject(g: &wire::GroupKey) -> String {
    let team = match g.team.as_deref() {
        None => "-".to_owned(),
        Some(t) if t == "-" || t.starts_with('%') => format!("%{t}"),
        Some(t) => t.to_owned(),
    };
    format!("group:{}/{}/{team}", g.service, g.resource_type)
}

/// True for the real-time path's records: a group subject over less than an
/// hour. A group record over a whole hour (an outbox that coarsened
/// per-resource records) replaces those records and counts in the totals.
pub fn is_realtime(subject: &wire::Subject, length_s: i64) -> bool {
    matches!(subject, wire::Subject::Group(_)) && length_s < 3_600
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn grid(g: f64, source: &str) -> wire::GridFactorUsed {
        wire::GridFactorUsed { g_co2e_per_kwh: g, source: source.into(), vintage: "2024".into() }
    }

    fn record(subject: wire::Subject) -> wire::EmissionRecord {
        wire::EmissionRecord {
            subject,
            interval_start_unix_s: 1_795_896_000,
            interval_end_unix_s: 1_795_899_600,
            energy_compute_kwh: 0.010,
            energy_memory_kwh: 0.002,
            energy_storage_kwh: 0.0,
            energy_networking_kwh: 0.001,
            energy_accelerators_kwh: 0.0,
            pue: 1.135,
            embodied_g_co2e: 1.5,
            operational_location_g_co2e: 4.4,
            operational_market_g_co2e: 0.5,
            grid_location: grid(334.0, "ccf"),
            grid_market: grid(0.0, "residual-mix"),
            quality: wire::Quality::Estimated,
            low_g_co2e: 3.0,
            high_g_co2e: 9.0,
            methodology_version: "canopy-1".into(),
            revision: 2,
        }
    }

    #[test]
    fn record_keys_are_the_subject_and_the_length() {
        let resource = wire::Subject::Resource { arn: "arn:aws:ec2:eu-west-1:123456789012:instance/i-1".into() };
        assert_eq!(record_key(&resource, 3_600), "resource:arn:aws:ec2:eu-west-1:123456789012:instance/i-1@3600s");
        let group = wire::Subject::Group(wire::GroupKey { service: "ec2".into(), resource_type: "instance".into(), team: None });
        for subject in [resource, group] {
            assert_eq!(record_key(&subject, 300), format!("{subject}@300s"));
        }
    }

    #[test]
    fn no_two_teams_share_a_group_key() {
        let group = |team: Option<&str>| {
            wire::Subject::Group(wire::GroupKey {
                service: "ec2".into(),
                resource_type: "instance".into(),
                team: team.map(str::to_owned),
            })
        };
        let keys: Vec<String> = [None, Some("-"), Some("%-"), Some("%%-"), Some("%"), Some("web"), Some("")]
            .into_iter()
            .map(|t| record_key(&group(t), 3_600))
            .collect();
        assert_eq!(
            keys,
            [
                "group:ec2/instance/-@3600s",
                "group:ec2/instance/%-@3600s",
                "group:ec2/instance/%%-@3600s",
                "group:ec2/instance/%%%-@3600s",
                "group:ec2/instance/%%@3600s",
                "group:ec2/instance/web@3600s",
                "group:ec2/instance/@3600s",
            ]
        );
    }

    #[test]
    fn converts_records_and_inventory() {
        let arn = "arn:aws:ec2:eu-west-1:123456789012:instance/i-1";
        let batch = wire::Batch {
            agent_id: "agent-1".into(),
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            sequence: 9,
            idempotency_key: wire::IdempotencyKey([0; 16]),
            created_at_unix_ms: 0,
            resources: vec![wire::ResourceRecord {
                arn: arn.into(),
                service: "ec2".into(),
                resource_type: "instance".into(),
                class: None,
                size: None,
                vcpus: None,
                memory_mib: None,
                cpu_architecture: None,
                accelerators: vec![],
                tags: BTreeMap::from([("team".to_owned(), "web".to_owned())]),
                attributes: BTreeMap::from([("engine".to_owned(), "postgres".to_owned())]),
                lifecycle: wire::LifecycleState::Terminated,
                first_seen_unix_s: 1,
                last_seen_unix_s: 2,
            }],
            emissions: vec![
                record(wire::Subject::Resource { arn: arn.into() }),
                record(wire::Subject::Resource { arn: "arn:aws:s3:::my-bucket".into() }),
                record(wire::Subject::Group(wire::GroupKey {
                    service: "lambda".into(),
                    resource_type: "function".into(),
                    team: None,
                })),
            ],
            agent_status: None,
        };
        let b = batch_from_protocol(&batch);
        assert_eq!((b.agent_id.as_str(), b.sequence), ("agent-1", 9));
        let f = &b.facts[0];
        // (0.010 + 0.002 + 0.001) kWh x 1.135 = 0.014755 kWh
        assert!((f.energy_kwh - 0.014_755).abs() < 1e-15);
        // location 1.5 + 4.4 = 5.9 g; market 1.5 + 0.5 = 2.0 g
        assert!((f.location_g_co2e - 5.9).abs() < 1e-12);
        assert!((f.market_g_co2e - 2.0).abs() < 1e-12);
        assert_eq!((f.period_s, f.revision, f.quality), (3_600, 2, Quality::Estimated));
        assert_eq!((f.service.as_str(), f.resource_type.as_str()), ("ec2", "instance"));
        assert_eq!(f.tags, Some(vec![("team".to_owned(), "web".to_owned())]));
        assert_eq!(f.record_key, format!("resource:{arn}@3600s"));
        assert_eq!((f.factor_source.as_str(), f.factor_vintage.as_str()), ("ccf", "2024"));
        // The parts are kept apart and add up to the totals: embodied is no
        // longer folded into the operational figures.
        let p = f.parts();
        assert!((p.it_energy_kwh - 0.013).abs() < 1e-15);
        assert_eq!((p.operational_location_g_co2e, p.operational_market_g_co2e, p.embodied_g_co2e), (4.4, 0.5, 1.5));
        assert!((p.operational_location_g_co2e + p.embodied_g_co2e - f.location_g_co2e).abs() < 1e-12);
        assert!((p.operational_market_g_co2e + p.embodied_g_co2e - f.market_g_co2e).abs() < 1e-12);
        assert!((p.operational_location_low_g_co2e + p.embodied_low_g_co2e - f.low_g_co2e).abs() < 1e-12);
        assert!((p.operational_location_high_g_co2e + p.embodied_high_g_co2e - f.high_g_co2e).abs() < 1e-12);
        assert_eq!(f.market_lineage(), ("residual-mix", "2024"));
        // An agent without market data sends its location factor as market
        // factor: flagged, never passed off as market-based.
        let mut copy = record(wire::Subject::Resource { arn: arn.into() });
        copy.grid_market = copy.grid_location.clone();
        assert_eq!(market_source(&copy), MARKET_FALLBACK);
        let s3 = &b.facts[1];
        assert_eq!((s3.service.as_str(), s3.resource_type.as_str(), s3.tags.clone()), ("s3", "resource", None));
        let g = &b.facts[2];
        assert_eq!((g.resource_id.as_str(), g.team.clone()), ("group:lambda/function/-", None));
        // An hour-long group record (coarsened by a full outbox) counts in
        // the totals; only shorter group records are the real-time path.
        assert!(!f.realtime && !s3.realtime && !g.realtime);
        let group = wire::Subject::Group(wire::GroupKey { service: "ec2".into(), resource_type: "instance".into(), team: None });
        assert!(is_realtime(&group, 300));
        assert!(!is_realtime(&group, 3_600));
        assert!(!is_realtime(&wire::Subject::Resource { arn: arn.into() }, 300));
        assert_eq!(b.inventory.len(), 1);
        assert!(b.inventory[0].deleted);
        assert_eq!(b.inventory[0].observed_unix_s, 2);
        assert_eq!(b.inventory[0].attributes, vec![("engine".to_owned(), "postgres".to_owned())]);
        assert_eq!(agent_status_from_protocol(&batch), None);
        let with_status = wire::Batch {
            agent_status: Some(wire::AgentStatus {
                agent_version: "0.2.0".into(),
                outbox_backlog_frames: 3,
                outbox_backlog_bytes: 4_096,
                records_shed_total: 1,
                collection_errors_total: 2,
                send_failures_total: 5,
                taken_at_unix_ms: 1_795_899_700_000,
            }),
            ..batch
        };
        let s = agent_status_from_protocol(&with_status).unwrap();
        assert_eq!(
            (s.agent_id.as_str(), s.account_id.as_str(), s.region.as_str(), s.batch_sequence),
            ("agent-1", "123456789012", "eu-west-1", 9)
        );
        assert_eq!(
            (s.outbox_backlog_frames, s.outbox_backlog_bytes, s.collection_errors_total, s.send_failures_total),
            (3, 4_096, 2, 5)
        );
    }

    #[test]
    fn arn_parts() {
        let check = |arn: &str, service: &str, ty: &str| {
            assert_eq!(service_and_type_from_arn(arn), (service.to_owned(), ty.to_owned()), "{arn}");
        };
        check("arn:aws:ec2:eu-west-1:123456789012:volume/vol-1", "ec2", "volume");
        check("arn:aws:rds:eu-west-1:123456789012:db:prod", "rds", "db");
        check("arn:aws:s3:::bucket", "s3", "resource");
        check("not-an-arn", "unknown", "resource");
    }
}
