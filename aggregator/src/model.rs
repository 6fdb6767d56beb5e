//! The aggregator's domain view of one agent batch. The delivery layer
//! converts the protocol crate's decoded batch into these types at the edge;
//! they are deliberately not `Serialize`.

use crate::accounting::{FIRST_PART, FactParts, Measures};

/// How an estimate was obtained (the protocol's flags), stored as its
/// lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quality {
    /// From measured utilisation and a measured power curve.
    Measured,
    /// From modelled inputs (e.g. a microarchitecture fallback).
    Estimated,
    /// From documented defaults only.
    Default,
}

impl Quality {
    /// Every quality flag, in storage order.
    pub const ALL: [Quality; 3] = [Quality::Measured, Quality::Estimated, Quality::Default];

    /// Lowercase name as stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Measured => "measured",
            Quality::Estimated => "estimated",
            Quality::Default => "default",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(text: &str) -> Option<Quality> {
        Quality::ALL.into_iter().find(|q| q.as_str() == text)
    }
}

/// One emission fact: energy and CO2e of one record (typically one resource's
/// component) over one interval that lies within a single UTC hour.
#[derive(Debug, Clone, PartialEq)]
pub struct FactRow {
    /// Identity of the record within (account, region, period start).
    pub record_key: String,
    /// Revision; a higher revision replaces a lower one.
    pub revision: u32,
    /// Start of the interval, Unix seconds.
    pub period_start_unix_s: i64,
    /// Length of the interval in seconds (1..=3600, not crossing an hour).
    pub period_s: u32,
    /// 12-digit AWS account id.
    pub account_id: String,
    /// AWS region code.
    pub region: String,
    /// Resource id or ARN.
    pub resource_id: String,
    /// Resource type, e.g. `ec2:instance`.
    pub resource_type: String,
    /// Service, e.g. `AmazonEC2`.
    pub service: String,
    /// Team decided by the agent (group records); takes precedence.
    pub team: Option<String>,
    /// Resource tags for this interval; `None` when the batch did not carry
    /// them, in which case the stored inventory's tags are used.
    pub tags: Option<Vec<(String, String)>>,
    /// Quality flag.
    pub quality: Quality,
    /// Energy, kWh.
    pub energy_kwh: f64,
    /// Location-based CO2e, grams.
    pub location_g_co2e: f64,
    /// Market-based CO2e, grams.
    pub market_g_co2e: f64,
    /// Lower bound of the location-based CO2e, grams.
    pub low_g_co2e: f64,
    /// Upper bound of the location-based CO2e, grams.
    pub high_g_co2e: f64,
    /// Version of the methodology that produced the figures.
    pub methodology_version: String,
    /// Source of the grid factor (e.g. `ccf`, `electricity-maps`).
    pub factor_source: String,
    /// Vintage of the grid factor (e.g. `2024`).
    pub factor_vintage: String,
    /// The accounting split (IT energy, operational location/market and
    /// embodied CO2e with bounds) and the market factor's lineage; `None`
    /// for a fact built without them, stored as all operational
    /// ([`FactParts::unsplit`]).
    pub accounting: Option<Accounting>,
    /// A 5-minute group record of the agent's real-time path: the same
    /// energy as the per-resource hourly records, sent early. Stored in
    /// `realtime_group_facts` only, never in the facts or rollups (migration
    /// 0009), so nothing is counted twice.
    pub realtime: bool,
}

/// The parts of a fact and the lineage of its market-based figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Accounting {
    /// IT energy and the CO2e parts with their bounds.
    pub parts: FactParts,
    /// Source of the market factor (e.g. `residual-mix`, `location` when
    /// the market figure is the location figure for lack of market data).
    pub market_factor_source: String,
    /// Vintage of the market factor.
    pub market_factor_vintage: String,
}

impl FactRow {
    /// The parts of this fact: its own, else all operational.
    pub fn parts(&self) -> FactParts {
        match &self.accounting {
            Some(a) => a.parts,
            None => FactParts::unsplit(
                self.energy_kwh,
                self.location_g_co2e,
                self.market_g_co2e,
                self.low_g_co2e,
                self.high_g_co2e,
            ),
        }
    }

    /// Every measure of this fact, in [`crate::accounting::MEASURE_COLUMNS`] order.
    pub fn measures(&self) -> Measures {
        let mut m = [0.0; crate::accounting::MEASURES];
        m[..FIRST_PART].copy_from_slice(&[
            self.energy_kwh,
            self.location_g_co2e,
            self.market_g_co2e,
            self.low_g_co2e,
            self.high_g_co2e,
        ]);
        m[FIRST_PART..].copy_from_slice(&self.parts().values());
        m
    }

    /// Source and vintage of the market factor (the location factor's, marked
    /// `location`, when the fact carries none).
    pub fn market_lineage(&self) -> (&str, &str) {
        match &self.accounting {
            Some(a) => (&a.market_factor_source, &a.market_factor_vintage),
            None => ("location", &self.factor_vintage),
        }
    }
}

/// One inventory observation of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryRow {
    /// 12-digit AWS account id.
    pub account_id: String,
    /// AWS region code.
    pub region: String,
    /// Resource id or ARN.
    pub resource_id: String,
    /// Resource type.
    pub resource_type: String,
    /// Service.
    pub service: String,
    /// Tags at observation time.
    pub tags: Vec<(String, String)>,
    /// Service-specific attributes (name, value), e.g. `("iops", "3000")`;
    /// empty for protocol v1 batches.
    pub attributes: Vec<(String, String)>,
    /// When the agent observed the resource, Unix seconds.
    pub observed_unix_s: i64,
    /// The resource no longer exists.
    pub deleted: bool,
}

/// A decoded agent batch, identified by (agent id, sequence).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// Agent identity.
    pub agent_id: String,
    /// The agent's monotonic batch sequence number.
    pub sequence: u64,
    /// Emission facts.
    pub facts: Vec<FactRow>,
    /// Inventory observations.
    pub inventory: Vec<InventoryRow>,
}

/// The newest health snapshot an agent reported (protocol v2 batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatusRow {
    /// Agent identity.
    pub agent_id: String,
    /// 12-digit AWS account id the agent collects in.
    pub account_id: String,
    /// AWS region code.
    pub region: String,
    /// The agent's version.
    pub agent_version: String,
    /// Batches in the agent's outbox not yet acknowledged.
    pub outbox_backlog_frames: u64,
    /// Bytes of those batches.
    pub outbox_backlog_bytes: u64,
    /// Records the agent's outbox shed or coarsened away.
    pub records_shed_total: u64,
    /// Collection errors since the agent started.
    pub collection_errors_total: u64,
    /// Failed batch sends since the agent started.
    pub send_failures_total: u64,
    /// When the snapshot was taken, Unix milliseconds.
    pub taken_at_unix_ms: i64,
    /// Sequence of the batch that carried it.
    pub batch_sequence: u64,
}

#[cfg(test)]
impl FactRow {
    /// A valid measured fact of instance `i-1` in `123456789012`/`eu-west-1`
    /// (record key `i-1/cpu`, revision 1, 1.0 of every metric), for unit tests.
    pub(crate) fn sample(period_start_unix_s: i64, period_s: u32) -> FactRow {
        FactRow {
            record_key: "i-1/cpu".into(),
            revision: 1,
            period_start_unix_s,
            period_s,
            account_id: "123456789012".into(),
            region: "eu-west-1".into(),
            resource_id: "i-1".into(),
            resource_type: "ec2:instance".into(),
            service: "AmazonEC2".into(),
            team: None,
            tags: None,
            quality: Quality::Measured,
            energy_kwh: 1.0,
            location_g_co2e: 1.0,
            market_g_co2e: 1.0,
            low_g_co2e: 1.0,
            high_g_co2e: 1.0,
            methodology_version: "canopy-1".into(),
            factor_source: "ccf".into(),
            factor_vintage: "2024".into(),
            accounting: None,
            realtime: false,
        }
    }
}
