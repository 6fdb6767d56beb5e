//! Deserialising a v2 batch body with its record and string-table counts
//! checked against [`DecodeLimits`] before the vectors are filled (the v1
//! machinery, with v2's trailing `agent_status` field).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

use crate::error::DecodeError;
use crate::limits::DecodeLimits;
use crate::v1::{BoundedVec, Breach, EmissionV1, parse_bounded};

use super::{BatchV2, ResourceV2};

/// Parses a whole v2 batch body (which must be consumed exactly).
pub(crate) fn parse_batch<'b>(
    body: &'b [u8],
    limits: &DecodeLimits,
) -> Result<BatchV2<'b>, DecodeError> {
    let breach = Cell::new(None);
    parse_bounded(
        body,
        2,
        &breach,
        BatchSeed {
            limits,
            breach: &breach,
        },
    )
}

struct BatchSeed<'s> {
    limits: &'s DecodeLimits,
    breach: &'s Cell<Option<Breach>>,
}

/// Field names of [`BatchV2`], in wire order.
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
    "agent_status",
];

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = BatchV2<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_struct("BatchV2", BATCH_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = BatchV2<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a v2 batch")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
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
        let max_records = self.limits.max_records_per_batch;
        let agent_id = field!(seq);
        let account_id = field!(seq);
        let region = field!(seq);
        let sequence = field!(seq);
        let idempotency_key = field!(seq);
        let created_at_unix_ms = field!(seq);
        let strings: Vec<&'de str> = field!(
            seq,
            BoundedVec::new(
                "strings",
                self.limits.max_strings_per_batch,
                0,
                self.breach
            )
        );
        let resources: Vec<ResourceV2> =
            field!(seq, BoundedVec::new("records", max_records, 0, self.breach));
        let emissions: Vec<EmissionV1> = field!(
            seq,
            BoundedVec::new("records", max_records, resources.len(), self.breach)
        );
        let agent_status = field!(seq);
        Ok(BatchV2 {
            agent_id,
            account_id,
            region,
            sequence,
            idempotency_key,
            created_at_unix_ms,
            strings,
            resources,
            emissions,
            agent_status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty v2 batch body: empty strings, zero numbers, no status.
    fn empty_body() -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&[0, 0, 0, 0, 0]); // created, strings, resources, emissions, status None
        body
    }

    #[test]
    fn empty_body_parses_and_a_v1_body_is_one_field_short() {
        let body = empty_body();
        let batch = parse_batch(&body, &DecodeLimits::default()).unwrap();
        assert!(batch.agent_status.is_none());
        let err = parse_batch(&body[..body.len() - 1], &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(err, DecodeError::Body { version: 2, .. }),
            "{err:?}"
        );
    }
}
