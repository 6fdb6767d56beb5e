//! Deserialising a v1 batch body with its counts checked against
//! [`DecodeLimits`] *before* the vectors are filled, so a small body cannot
//! make the decoder build millions of records or string-table entries.
//!
//! Postcard writes a sequence's length before its elements; the visitors
//! here compare that declared length with the limit and stop at once.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

use crate::error::DecodeError;
use crate::frame::MessageKind;
use crate::limits::DecodeLimits;
use crate::location::RecordRef;

use super::{BatchV1, EmissionV1, ResourceV1};

/// The limit a body broke, recorded beside the deserialiser's own error so
/// the caller can report it precisely.
#[derive(Clone, Copy)]
pub(crate) struct Breach {
    field: &'static str,
    max: usize,
    found: usize,
}

/// Parses a whole v1 batch body (which must be consumed exactly).
pub(crate) fn parse_batch<'b>(
    body: &'b [u8],
    limits: &DecodeLimits,
) -> Result<BatchV1<'b>, DecodeError> {
    let breach = Cell::new(None);
    parse_bounded(
        body,
        1,
        &breach,
        BatchSeed {
            limits,
            breach: &breach,
        },
    )
}

/// Parses a whole batch body of `version` with `seed`, which records any
/// limit it enforces in `breach`; the body must be consumed exactly. A limit
/// breach is reported as [`DecodeError::LimitExceeded`], anything else as a
/// body error of that version.
pub(crate) fn parse_bounded<'b, S: DeserializeSeed<'b>>(
    body: &'b [u8],
    version: u16,
    breach: &Cell<Option<Breach>>,
    seed: S,
) -> Result<S::Value, DecodeError> {
    let mut deserializer = postcard::Deserializer::from_bytes(body);
    let batch = match seed.deserialize(&mut deserializer) {
        Ok(batch) => batch,
        Err(source) => {
            return Err(match breach.get() {
                Some(b) => DecodeError::LimitExceeded {
                    record: RecordRef::Envelope,
                    field: b.field,
                    max: b.max,
                    found: b.found,
                },
                None => DecodeError::Body {
                    version,
                    kind: MessageKind::Batch,
                    source,
                },
            });
        }
    };
    let rest = deserializer
        .finalize()
        .map_err(|source| DecodeError::Body {
            version,
            kind: MessageKind::Batch,
            source,
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBodyBytes {
            version,
            extra: rest.len(),
        });
    }
    Ok(batch)
}

struct BatchSeed<'s> {
    limits: &'s DecodeLimits,
    breach: &'s Cell<Option<Breach>>,
}

/// Field names of [`BatchV1`], in wire order.
const BATCH_FIELDS: &[&str] = &[
    "agent_id",
    "account_id",
    "region",
    "sequence",
    "idempotency_key",
    "created_at_unix_ms",
    "strings",
    "resources",
    "emissions",
];

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = BatchV1<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_struct("BatchV1", BATCH_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = BatchV1<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a v1 batch")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Position of the next field, for postcard's "missing field" error.
        let mut index = 0;
        macro_rules! field {
            ($seq:expr) => {{
                index += 1;
                $seq.next_element()?
                    .ok_or_else(|| de::Error::invalid_length(index - 1, &self))?
            }};
            ($seq:expr, $seed:expr) => {{
                index += 1;
                $seq.next_element_seed($seed)?
                    .ok_or_else(|| de::Error::invalid_length(index - 1, &self))?
            }};
        }
        let agent_id = field!(seq);
        let account_id = field!(seq);
        let region = field!(seq);
        let sequence = field!(seq);
        let idempotency_key = field!(seq);
        let created_at_unix_ms = field!(seq);
        let strings: Vec<&'de str> = field!(
            seq,
            self.bounded("strings", self.limits.max_strings_per_batch, 0)
        );
        let resources: Vec<ResourceV1> = field!(
            seq,
            self.bounded("records", self.limits.max_records_per_batch, 0)
        );
        let emissions: Vec<EmissionV1> = field!(
            seq,
            self.bounded(
                "records",
                self.limits.max_records_per_batch,
                resources.len()
            )
        );
        Ok(BatchV1 {
            agent_id,
            account_id,
            region,
            sequence,
            idempotency_key,
            created_at_unix_ms,
            strings,
            resources,
            emissions,
        })
    }
}

impl<'s> BatchSeed<'s> {
    fn bounded<T>(&self, field: &'static str, max: usize, already: usize) -> BoundedVec<'s, T> {
        BoundedVec::new(field, max, already, self.breach)
    }
}

/// A `Vec<T>` whose declared length plus `already` must not exceed `max`.
pub(crate) struct BoundedVec<'s, T> {
    field: &'static str,
    max: usize,
    already: usize,
    breach: &'s Cell<Option<Breach>>,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for BoundedVec<'_, T> {
    type Value = Vec<T>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedVec<'_, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {} {}", self.max, self.field)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Postcard gives the declared length unless it exceeds the bytes
        // left (a length that cannot be true); then the count is checked
        // element by element instead, and the body runs out soon anyway.
        let declared = seq.size_hint();
        if let Some(declared) = declared {
            self.check(self.already.saturating_add(declared))?;
        }
        let mut items = Vec::with_capacity(declared.unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
            self.check(self.already + items.len())?;
        }
        Ok(items)
    }
}

impl<'s, T> BoundedVec<'s, T> {
    /// A bounded vector named `field` (in errors) of at most `max` elements
    /// counting `already` elements read elsewhere, recording a breach.
    pub(crate) fn new(
        field: &'static str,
        max: usize,
        already: usize,
        breach: &'s Cell<Option<Breach>>,
    ) -> Self {
        BoundedVec {
            field,
            max,
            already,
            breach,
            element: PhantomData,
        }
    }

    /// Errors (recording the breach) when `found` exceeds the limit.
    fn check<E: de::Error>(&self, found: usize) -> Result<(), E> {
        if found <= self.max {
            return Ok(());
        }
        self.breach.set(Some(Breach {
            field: self.field,
            max: self.max,
            found,
        }));
        Err(E::custom(format_args!(
            "{}: expected at most {}, found {found}",
            self.field, self.max
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v1 batch body up to the string table, all fields empty or zero.
    fn envelope() -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0]; // agent_id, account_id, region: empty; sequence 0
        body.extend_from_slice(&[0; 16]); // idempotency key
        body.push(0); // created_at_unix_ms 0
        body
    }

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    #[test]
    fn empty_batch_body_parses() {
        let mut body = envelope();
        body.extend_from_slice(&[0, 0, 0]); // no strings, resources, emissions
        let batch = parse_batch(&body, &DecodeLimits::default()).unwrap();
        assert_eq!(
            (
                batch.strings.len(),
                batch.resources.len(),
                batch.emissions.len()
            ),
            (0, 0, 0)
        );
    }

    fn small() -> DecodeLimits {
        DecodeLimits {
            max_records_per_batch: 100,
            max_strings_per_batch: 10,
            ..DecodeLimits::default()
        }
    }

    #[test]
    fn declared_record_count_is_refused_before_reading_records() {
        // Claims 1,000 resources; 2,000 padding bytes make the claim
        // plausible to postcard, so the declared length is what is checked.
        let mut body = envelope();
        body.push(0);
        varint(1_000, &mut body);
        body.resize(body.len() + 2_000, 0);
        let err = parse_batch(&body, &small()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch.records: expected at most 100, found 1000"
        );
    }

    #[test]
    fn emissions_count_adds_to_resources() {
        let mut body = envelope();
        body.extend_from_slice(&[0, 0]); // no strings, no resources
        varint(101, &mut body);
        body.resize(body.len() + 200 * 101, 0);
        let err = parse_batch(&body, &small()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch.records: expected at most 100, found 101"
        );
    }

    #[test]
    fn impossible_length_is_checked_element_by_element() {
        // Claims ten million strings but holds 50 empty ones: postcard
        // withholds the impossible length, and the 11th string trips the limit.
        let mut body = envelope();
        varint(10_000_000, &mut body);
        body.resize(body.len() + 50, 0);
        let err = parse_batch(&body, &small()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch.strings: expected at most 10, found 11"
        );
    }

    #[test]
    fn impossible_length_within_limits_is_a_body_error() {
        let mut body = envelope();
        varint(10_000_000, &mut body);
        let err = parse_batch(&body, &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(err, DecodeError::Body { version: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn missing_fields_are_a_body_error() {
        let err = parse_batch(&envelope(), &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(err, DecodeError::Body { version: 1, .. }),
            "{err:?}"
        );
    }
}
