//! Decode limits: each limit refuses a frame that exceeds it and names it.

use canopy_protocol::*;

use crate::fixtures::{day_of_hourly_records, sample_batch, sample_v2_batch};

fn check(batch: &Batch, limits: DecodeLimits, expected_message: &str) {
    let frame = encode_batch(batch, Compression::Lz4).unwrap();
    let err = decode_batch(&frame, &limits).unwrap_err();
    assert_eq!(err.to_string(), expected_message);
    assert_eq!(err.reply_code(), ErrorCode::InvalidBatch, "{err}");
}

#[test]
fn sample_decodes_under_default_limits() {
    let frame = encode_batch(&sample_batch(), Compression::Lz4).unwrap();
    assert_eq!(
        decode_batch(&frame, &DecodeLimits::default()).unwrap(),
        sample_batch()
    );
}

#[test]
fn too_many_records() {
    // 3 resources + 2 emissions = 5 records.
    check(
        &sample_batch(),
        DecodeLimits {
            max_records_per_batch: 4,
            ..DecodeLimits::default()
        },
        "batch.records: expected at most 4, found 5",
    );
}

#[test]
fn too_many_distinct_strings() {
    // The sample's string table: 3 ARNs, ec2, instance, volume, m5.large,
    // g4dn.xlarge, gp3, NVIDIA T4, env, prod, team, payments, ccf, 2023,
    // market-config, 2024, canopy-1 = 19 distinct strings.
    check(
        &sample_batch(),
        DecodeLimits {
            max_strings_per_batch: 18,
            ..DecodeLimits::default()
        },
        "batch.strings: expected at most 18, found 19",
    );
}

#[test]
fn too_many_tags() {
    // resources[0] has two tags (env, team).
    check(
        &sample_batch(),
        DecodeLimits {
            max_tags_per_resource: 1,
            ..DecodeLimits::default()
        },
        "resources[0].tags: expected at most 1, found 2",
    );
}

#[test]
fn long_tag_value() {
    // "payments" is 8 bytes.
    check(
        &sample_batch(),
        DecodeLimits {
            max_tag_value_bytes: 7,
            ..DecodeLimits::default()
        },
        "resources[0].tags.value: expected at most 7, found 8",
    );
}

#[test]
fn long_string() {
    // The first ARN is arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc0000000000001:
    // 4+4+4+10+13 = 35 bytes of prefix + "instance/i-0abc" (15) + 13 hex digits = 63.
    let arn = crate::fixtures::instance_arn(1);
    assert_eq!(arn.len(), 63);
    check(
        &sample_batch(),
        DecodeLimits {
            max_string_bytes: 62,
            ..DecodeLimits::default()
        },
        "resources[0].arn: expected at most 62, found 63",
    );
}

#[test]
fn too_many_accelerators() {
    check(
        &sample_batch(),
        DecodeLimits {
            max_accelerators_per_resource: 0,
            ..DecodeLimits::default()
        },
        "resources[1].accelerators: expected at most 0, found 1",
    );
}

#[test]
fn decoded_string_budget_stops_string_table_amplification() {
    // 240 records each referencing one 63-byte ARN plus "ccf", "2023",
    // "market-config", "2024", "canopy-1" (3+4+13+4+8 = 32 bytes): 95 bytes
    // per record when expanded, sent once in the string table.
    let batch = day_of_hourly_records(240);
    let limits = DecodeLimits {
        max_decoded_string_bytes: 95 * 100,
        ..DecodeLimits::default()
    };
    let frame = encode_batch(&batch, Compression::None).unwrap();
    let err = decode_batch(&frame, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::LimitExceeded {
                record: RecordRef::Emission(100),
                field: "decoded_string_bytes",
                max: 9_500,
                ..
            }
        ),
        "{err:?}"
    );
    let enough = DecodeLimits {
        max_decoded_string_bytes: 95 * 240,
        ..DecodeLimits::default()
    };
    assert_eq!(decode_batch(&frame, &enough).unwrap(), batch);
}

#[test]
fn too_many_attributes() {
    // resources[2] of the v2 sample has two attributes (attached_to, iops).
    check(
        &sample_v2_batch(),
        DecodeLimits {
            max_attributes_per_resource: 1,
            ..DecodeLimits::default()
        },
        "resources[2].attributes: expected at most 1, found 2",
    );
}

#[test]
fn long_attribute_key_and_value() {
    // "attached_to" is 11 bytes; its value "i-0abc0000000000002" 19.
    check(
        &sample_v2_batch(),
        DecodeLimits {
            max_attribute_key_bytes: 10,
            ..DecodeLimits::default()
        },
        "resources[2].attributes.key: expected at most 10, found 11",
    );
    check(
        &sample_v2_batch(),
        DecodeLimits {
            max_attribute_value_bytes: 18,
            ..DecodeLimits::default()
        },
        "resources[2].attributes.value: expected at most 18, found 19",
    );
}

#[test]
fn long_agent_version() {
    let mut batch = sample_v2_batch();
    batch.agent_status.as_mut().unwrap().agent_version = "v".repeat(40);
    check(
        &batch,
        DecodeLimits {
            max_string_bytes: 39,
            max_tag_value_bytes: 1_024,
            ..DecodeLimits::default()
        },
        "batch.agent_status.agent_version: expected at most 39, found 40",
    );
}
