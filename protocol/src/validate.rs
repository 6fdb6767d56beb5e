//! Structural validation of a batch: what the protocol itself guarantees
//! about every accepted batch, independent of how estimates were computed.

use std::collections::HashMap;

use thiserror::Error;

use crate::batch::Batch;
use crate::emission::{EmissionRecord, GridFactorUsed, Subject};
use crate::limits::DecodeLimits;
use crate::location::RecordRef;
use crate::resource::ResourceRecord;

/// The first problem [`Batch::validate`] found, naming the record and field.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ValidationError {
    /// A quantity is NaN, infinite or below its minimum.
    #[error("{record}.{field}: expected a finite number >= {min}, found {found}")]
    OutOfRange {
        /// Where.
        record: RecordRef,
        /// Which field.
        field: &'static str,
        /// Smallest allowed value.
        min: f64,
        /// Value found.
        found: f64,
    },
    /// The bounds do not bracket the central location-based total.
    #[error(
        "{record}: expected low_g_co2e <= embodied + operational location ({central}) <= high_g_co2e, found low {low} and high {high}"
    )]
    BoundsExcludeCentral {
        /// Where.
        record: RecordRef,
        /// Low bound.
        low: f64,
        /// Embodied + operational location-based, gCO2e.
        central: f64,
        /// High bound.
        high: f64,
    },
    /// The interval is empty or reversed.
    #[error(
        "{record}: expected interval_end_unix_s > interval_start_unix_s, found start {start} and end {end}"
    )]
    EmptyInterval {
        /// Where.
        record: RecordRef,
        /// Interval start.
        start: i64,
        /// Interval end.
        end: i64,
    },
    /// A resource was last seen before it was first seen.
    #[error("{record}: expected first_seen_unix_s <= last_seen_unix_s, found {first} > {last}")]
    SeenOutOfOrder {
        /// Where.
        record: RecordRef,
        /// First seen.
        first: i64,
        /// Last seen.
        last: i64,
    },
    /// A required string is empty.
    #[error("{record}.{field}: expected a non-empty string, found an empty one")]
    Empty {
        /// Where.
        record: RecordRef,
        /// Which field.
        field: &'static str,
    },
    /// A string is longer than its limit.
    #[error("{record}.{field}: expected at most {max} bytes, found {found}")]
    TooLong {
        /// Where.
        record: RecordRef,
        /// Which field.
        field: &'static str,
        /// The limit.
        max: usize,
        /// Length found.
        found: usize,
    },
    /// A string does not have the required shape.
    #[error("{record}.{field}: expected {expected}, found {found:?}")]
    Malformed {
        /// Where.
        record: RecordRef,
        /// Which field.
        field: &'static str,
        /// What shape was expected.
        expected: &'static str,
        /// Value found (cut to 64 characters).
        found: String,
    },
    /// A collection has more entries than its limit.
    #[error("{record}.{field}: expected at most {max} entries, found {found}")]
    TooMany {
        /// Where.
        record: RecordRef,
        /// Which collection.
        field: &'static str,
        /// The limit.
        max: usize,
        /// Entries found.
        found: usize,
    },
    /// A timestamp or count that must not be negative is.
    #[error("{record}.{field}: expected a value >= 0, found {found}")]
    Negative {
        /// Where.
        record: RecordRef,
        /// Which field.
        field: &'static str,
        /// Value found.
        found: i64,
    },
    /// Two emission records in one batch share a record key.
    #[error("{record}: expected a unique record key, found the same key as emissions[{first}]")]
    DuplicateRecordKey {
        /// The later record.
        record: RecordRef,
        /// Index of the earlier record with the same key.
        first: usize,
    },
}

type Result<T = ()> = std::result::Result<T, ValidationError>;

impl Batch {
    /// Checks what the protocol guarantees about every batch: a 12-digit
    /// account id; non-empty, limit-respecting strings; record, tag,
    /// accelerator and attribute counts within `limits`; a non-empty agent
    /// version and a non-negative status time when a status is present;
    /// finite non-negative vCPUs, energies, emissions and grid factors; PUE >= 1; `low <= embodied +
    /// operational location <= high`; non-empty intervals; first seen <=
    /// last seen; unique emission record keys. Returns the first problem.
    pub fn validate(&self, limits: &DecodeLimits) -> Result {
        let env = RecordRef::Envelope;
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(
                env,
                "account_id",
                "12 ASCII digits",
                &self.account_id,
            ));
        }
        text(env, "agent_id", &self.agent_id, limits.max_string_bytes)?;
        text(env, "region", &self.region, limits.max_string_bytes)?;
        if !self
            .region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(malformed(
                env,
                "region",
                "lowercase letters, digits and '-'",
                &self.region,
            ));
        }
        count(
            env,
            "records",
            self.record_count(),
            limits.max_records_per_batch,
        )?;
        for (i, r) in self.resources.iter().enumerate() {
            validate_resource(r, RecordRef::Resource(i), limits)?;
        }
        if let Some(status) = &self.agent_status {
            text(
                env,
                "agent_status.agent_version",
                &status.agent_version,
                limits.max_string_bytes,
            )?;
            if status.taken_at_unix_ms < 0 {
                return Err(ValidationError::Negative {
                    record: env,
                    field: "agent_status.taken_at_unix_ms",
                    found: status.taken_at_unix_ms,
                });
            }
        }
        let mut seen: HashMap<(&Subject, i64, i64), usize> =
            HashMap::with_capacity(self.emissions.len());
        for (i, e) in self.emissions.iter().enumerate() {
            let at = RecordRef::Emission(i);
            validate_emission(e, at, limits)?;
            let key = (&e.subject, e.interval_start_unix_s, e.interval_end_unix_s);
            if let Some(&first) = seen.get(&key) {
                return Err(ValidationError::DuplicateRecordKey { record: at, first });
            }
            seen.insert(key, i);
        }
        Ok(())
    }
}

fn validate_resource(r: &ResourceRecord, at: RecordRef, limits: &DecodeLimits) -> Result {
    let max = limits.max_string_bytes;
    text(at, "arn", &r.arn, max)?;
    if !r.arn.starts_with("arn:") {
        return Err(malformed(
            at,
            "arn",
            "a string starting with \"arn:\"",
            &r.arn,
        ));
    }
    text(at, "service", &r.service, max)?;
    text(at, "resource_type", &r.resource_type, max)?;
    if let Some(class) = &r.class {
        text(at, "class", class, max)?;
    }
    if let Some(vcpus) = r.vcpus {
        at_least(at, "vcpus", vcpus, 0.0)?;
    }
    count(
        at,
        "accelerators",
        r.accelerators.len(),
        limits.max_accelerators_per_resource,
    )?;
    for a in &r.accelerators {
        text(at, "accelerators.model", &a.model, max)?;
    }
    count(at, "tags", r.tags.len(), limits.max_tags_per_resource)?;
    for (k, v) in &r.tags {
        text(at, "tags.key", k, limits.max_tag_key_bytes)?;
        too_long(at, "tags.value", v, limits.max_tag_value_bytes)?;
    }
    count(
        at,
        "attributes",
        r.attributes.len(),
        limits.max_attributes_per_resource,
    )?;
    for (k, v) in &r.attributes {
        text(at, "attributes.key", k, limits.max_attribute_key_bytes)?;
        too_long(at, "attributes.value", v, limits.max_attribute_value_bytes)?;
    }
    if r.first_seen_unix_s > r.last_seen_unix_s {
        return Err(ValidationError::SeenOutOfOrder {
            record: at,
            first: r.first_seen_unix_s,
            last: r.last_seen_unix_s,
        });
    }
    Ok(())
}

fn validate_emission(e: &EmissionRecord, at: RecordRef, limits: &DecodeLimits) -> Result {
    let max = limits.max_string_bytes;
    match &e.subject {
        Subject::Resource { arn } => text(at, "subject.arn", arn, max)?,
        Subject::Group(g) => {
            text(at, "subject.service", &g.service, max)?;
            text(at, "subject.resource_type", &g.resource_type, max)?;
            if let Some(team) = &g.team {
                too_long(at, "subject.team", team, limits.max_tag_value_bytes)?;
            }
        }
    }
    if e.interval_end_unix_s <= e.interval_start_unix_s {
        return Err(ValidationError::EmptyInterval {
            record: at,
            start: e.interval_start_unix_s,
            end: e.interval_end_unix_s,
        });
    }
    for (field, value) in [
        ("energy_compute_kwh", e.energy_compute_kwh),
        ("energy_memory_kwh", e.energy_memory_kwh),
        ("energy_storage_kwh", e.energy_storage_kwh),
        ("energy_networking_kwh", e.energy_networking_kwh),
        ("energy_accelerators_kwh", e.energy_accelerators_kwh),
        ("embodied_g_co2e", e.embodied_g_co2e),
        ("operational_location_g_co2e", e.operational_location_g_co2e),
        ("operational_market_g_co2e", e.operational_market_g_co2e),
        ("low_g_co2e", e.low_g_co2e),
        ("high_g_co2e", e.high_g_co2e),
    ] {
        at_least(at, field, value, 0.0)?;
    }
    at_least(at, "pue", e.pue, 1.0)?;
    grid(at, GRID_LOCATION, &e.grid_location, max)?;
    grid(at, GRID_MARKET, &e.grid_market, max)?;
    let central = e.total_location_g_co2e();
    if !(e.low_g_co2e <= central && central <= e.high_g_co2e) {
        return Err(ValidationError::BoundsExcludeCentral {
            record: at,
            low: e.low_g_co2e,
            central,
            high: e.high_g_co2e,
        });
    }
    text(at, "methodology_version", &e.methodology_version, max)?;
    Ok(())
}

/// Field names of one grid factor: factor, source, vintage.
type GridFields = [&'static str; 3];

const GRID_LOCATION: GridFields = [
    "grid_location.g_co2e_per_kwh",
    "grid_location.source",
    "grid_location.vintage",
];
const GRID_MARKET: GridFields = [
    "grid_market.g_co2e_per_kwh",
    "grid_market.source",
    "grid_market.vintage",
];

fn grid(at: RecordRef, fields: GridFields, g: &GridFactorUsed, max: usize) -> Result {
    let [factor, source, vintage] = fields;
    at_least(at, factor, g.g_co2e_per_kwh, 0.0)?;
    text(at, source, &g.source, max)?;
    text(at, vintage, &g.vintage, max)
}

fn at_least(at: RecordRef, field: &'static str, value: f64, min: f64) -> Result {
    if value.is_finite() && value >= min {
        Ok(())
    } else {
        Err(ValidationError::OutOfRange {
            record: at,
            field,
            min,
            found: value,
        })
    }
}

fn text(at: RecordRef, field: &'static str, value: &str, max: usize) -> Result {
    if value.is_empty() {
        return Err(ValidationError::Empty { record: at, field });
    }
    too_long(at, field, value, max)
}

fn too_long(at: RecordRef, field: &'static str, value: &str, max: usize) -> Result {
    if value.len() > max {
        return Err(ValidationError::TooLong {
            record: at,
            field,
            max,
            found: value.len(),
        });
    }
    Ok(())
}

fn count(at: RecordRef, field: &'static str, found: usize, max: usize) -> Result {
    if found > max {
        return Err(ValidationError::TooMany {
            record: at,
            field,
            max,
            found,
        });
    }
    Ok(())
}

fn malformed(
    at: RecordRef,
    field: &'static str,
    expected: &'static str,
    found: &str,
) -> ValidationError {
    ValidationError::Malformed {
        record: at,
        field,
        expected,
        found: found.chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::IdempotencyKey;

    fn empty_batch() -> Batch {
        Batch {
            agent_id: "agent".into(),
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            sequence: 0,
            idempotency_key: IdempotencyKey::default(),
            created_at_unix_ms: 0,
            resources: vec![],
            emissions: vec![],
            agent_status: None,
        }
    }

    #[test]
    fn empty_batch_is_valid_and_bad_account_is_named() {
        let limits = DecodeLimits::default();
        empty_batch().validate(&limits).unwrap();
        let bad = Batch {
            account_id: "0000000000000".into(),
            ..empty_batch()
        };
        assert_eq!(
            bad.validate(&limits).unwrap_err().to_string(),
            "batch.account_id: expected 12 ASCII digits, found \"0000000000000\""
        );
    }

    #[test]
    fn malformed_values_are_cut_to_64_characters() {
        let long = "x".repeat(200);
        let bad = Batch {
            account_id: long,
            ..empty_batch()
        };
        match bad.validate(&DecodeLimits::default()).unwrap_err() {
            ValidationError::Malformed { found, .. } => assert_eq!(found.len(), 64),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
}
