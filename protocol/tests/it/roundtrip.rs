//! Property tests: any batch or reply encodes and decodes to an equal value.

use std::collections::BTreeMap;

use canopy_protocol::*;
use proptest::collection::{btree_map, vec};
use proptest::num::f64 as pf64;
use proptest::option;
use proptest::prelude::*;

/// Any f64 except NaN (which is never equal to itself).
fn number() -> impl Strategy<Value = f64> {
    pf64::NORMAL | pf64::SUBNORMAL | pf64::ZERO | pf64::INFINITE
}

fn text() -> impl Strategy<Value = String> {
    // Small alphabet so strings repeat and exercise the string table.
    prop_oneof!["[a-c]{0,3}", "[a-z0-9:/._-]{0,40}", "\\PC{0,8}"]
}

fn size_unit() -> impl Strategy<Value = SizeUnit> {
    prop_oneof![
        Just(SizeUnit::Bytes),
        Just(SizeUnit::Kib),
        Just(SizeUnit::Mib),
        Just(SizeUnit::Gib),
        Just(SizeUnit::Tib)
    ]
}

fn accelerator() -> impl Strategy<Value = Accelerator> {
    let kind = prop_oneof![
        Just(AcceleratorKind::Gpu),
        Just(AcceleratorKind::Inferentia),
        Just(AcceleratorKind::Trainium),
        Just(AcceleratorKind::Fpga),
        Just(AcceleratorKind::Other)
    ];
    (kind, text(), any::<u32>()).prop_map(|(kind, model, count)| Accelerator { kind, model, count })
}

fn lifecycle() -> impl Strategy<Value = LifecycleState> {
    prop_oneof![
        Just(LifecycleState::Pending),
        Just(LifecycleState::Running),
        Just(LifecycleState::Stopping),
        Just(LifecycleState::Stopped),
        Just(LifecycleState::Terminated),
        Just(LifecycleState::Unknown)
    ]
}

fn resource() -> impl Strategy<Value = ResourceRecord> {
    let arch = prop_oneof![
        Just(CpuArchitecture::X86_64),
        Just(CpuArchitecture::Arm64),
        Just(CpuArchitecture::Other)
    ];
    (
        (text(), text(), text(), option::of(text())),
        option::of((any::<u64>(), size_unit()).prop_map(|(value, unit)| Size { value, unit })),
        (
            option::of(number()),
            option::of(any::<u64>()),
            option::of(arch),
        ),
        vec(accelerator(), 0..3),
        (btree_map(text(), text(), 0..4), btree_map(text(), text(), 0..4)),
        (lifecycle(), any::<i64>(), any::<i64>()),
    )
        .prop_map(
            |(
                (arn, service, resource_type, class),
                size,
                (vcpus, memory_mib, cpu_architecture),
                accelerators,
                (tags, attributes),
                (lifecycle, first, last),
            )| {
                ResourceRecord {
                    arn,
                    service,
                    resource_type,
                    class,
                    size,
                    vcpus,
                    memory_mib,
                    cpu_architecture,
                    accelerators,
                    tags: tags.into_iter().collect::<BTreeMap<_, _>>(),
                    attributes,
                    lifecycle,
                    first_seen_unix_s: first,
                    last_seen_unix_s: last,
                }
            },
        )
}

fn subject() -> impl Strategy<Value = Subject> {
    prop_oneof![
        text().prop_map(|arn| Subject::Resource { arn }),
        (text(), text(), option::of(text())).prop_map(|(service, resource_type, team)| {
            Subject::Group(GroupKey {
                service,
                resource_type,
                team,
            })
        }),
    ]
}

fn grid() -> impl Strategy<Value = GridFactorUsed> {
    (number(), text(), text()).prop_map(|(g_co2e_per_kwh, source, vintage)| GridFactorUsed {
        g_co2e_per_kwh,
        source,
        vintage,
    })
}

fn quality() -> impl Strategy<Value = Quality> {
    prop_oneof![
        Just(Quality::Measured),
        Just(Quality::Estimated),
        Just(Quality::Default)
    ]
}

fn emission() -> impl Strategy<Value = EmissionRecord> {
    (
        (subject(), any::<i64>(), any::<i64>()),
        vec(number(), 12),
        (grid(), grid(), quality()),
        (text(), any::<u32>()),
    )
        .prop_map(
            |(
                (subject, start, end),
                n,
                (grid_location, grid_market, quality),
                (methodology_version, revision),
            )| {
                EmissionRecord {
                    subject,
                    interval_start_unix_s: start,
                    interval_end_unix_s: end,
                    energy_compute_kwh: n[0],
                    energy_memory_kwh: n[1],
                    energy_storage_kwh: n[2],
                    energy_networking_kwh: n[3],
                    energy_accelerators_kwh: n[4],
                    pue: n[5],
                    embodied_g_co2e: n[6],
                    operational_location_g_co2e: n[7],
                    operational_market_g_co2e: n[8],
                    grid_location,
                    grid_market,
                    quality,
                    low_g_co2e: n[9],
                    high_g_co2e: n[10],
                    methodology_version,
                    revision,
                }
            },
        )
}

fn status() -> impl Strategy<Value = AgentStatus> {
    (
        text(),
        any::<[u64; 5]>(),
        any::<i64>(),
    )
        .prop_map(|(agent_version, n, taken_at_unix_ms)| AgentStatus {
            agent_version,
            outbox_backlog_frames: n[0],
            outbox_backlog_bytes: n[1],
            records_shed_total: n[2],
            collection_errors_total: n[3],
            send_failures_total: n[4],
            taken_at_unix_ms,
        })
}

pub fn batch() -> impl Strategy<Value = Batch> {
    (
        (text(), "[0-9]{12}", text()),
        (any::<u64>(), any::<[u8; 16]>(), any::<i64>()),
        vec(resource(), 0..6),
        vec(emission(), 0..8),
        option::of(status()),
    )
        .prop_map(
            |(
                (agent_id, account_id, region),
                (sequence, key, created),
                resources,
                emissions,
                agent_status,
            )| {
                Batch {
                    agent_id,
                    account_id,
                    region,
                    sequence,
                    idempotency_key: IdempotencyKey(key),
                    created_at_unix_ms: created,
                    resources,
                    emissions,
                    agent_status,
                }
            },
        )
}

/// `b` without what v1 cannot carry, as a v1 agent would have built it.
fn as_v1(mut b: Batch) -> Batch {
    for r in &mut b.resources {
        r.attributes.clear();
    }
    b.agent_status = None;
    b
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<u64>(), any::<[u8; 16]>(), any::<bool>()).prop_map(|(sequence, key, duplicate)| {
            Reply::Ack(Ack {
                sequence,
                idempotency_key: IdempotencyKey(key),
                duplicate,
            })
        }),
        (
            option::of(any::<u64>()),
            any::<u16>(),
            text(),
            option::of(any::<u32>())
        )
            .prop_map(|(sequence, code, message, retry_after_s)| Reply::Error(
                ReplyError {
                    sequence,
                    code: ErrorCode::from_u16(code),
                    message,
                    retry_after_s
                }
            )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_batch_round_trips_uncompressed(b in batch()) {
        let frame = encode_batch(&b, Compression::None).unwrap();
        prop_assert_eq!(decode_batch(&frame, &DecodeLimits::default()).unwrap(), b);
    }

    #[test]
    fn any_batch_round_trips_compressed(b in batch()) {
        let frame = encode_batch(&b, Compression::Lz4).unwrap();
        let decoded = decode_message(&frame, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(decoded.version, CURRENT_VERSION);
        prop_assert_eq!(decoded.message, Message::Batch(b));
    }

    #[test]
    fn encoding_is_deterministic(b in batch()) {
        prop_assert_eq!(encode_batch(&b, Compression::None).unwrap(), encode_batch(&b.clone(), Compression::None).unwrap());
    }

    #[test]
    fn any_v1_batch_still_decodes(b in batch()) {
        let b = as_v1(b);
        let frame = encode_batch_at_version(&b, 1, Compression::Lz4).unwrap();
        let decoded = decode_message(&frame, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(decoded.version, 1);
        prop_assert_eq!(decoded.message, Message::Batch(b));
    }

    #[test]
    fn any_reply_round_trips(r in reply(), version in 1u16..=2) {
        let frame = encode_reply(&r, version).unwrap();
        prop_assert_eq!(decode_reply(&frame, &DecodeLimits::default()).unwrap(), r);
    }
}

#[test]
fn reply_at_an_unknown_version_is_refused() {
    let ack = crate::fixtures::sample_ack();
    match encode_reply(&ack, 3) {
        Err(EncodeError::UnsupportedVersion {
            requested: 3,
            oldest: 1,
            newest: 2,
        }) => {}
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn unknown_error_codes_survive_the_round_trip() {
    let reply = Reply::Error(ReplyError {
        sequence: Some(7),
        code: ErrorCode::Unknown(900),
        message: "expected a valid batch, found nothing".into(),
        retry_after_s: None,
    });
    let frame = encode_reply(&reply, 1).unwrap();
    let decoded = decode_reply(&frame, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded, reply);
    let Reply::Error(err) = decoded else {
        panic!("expected an error reply")
    };
    assert_eq!(err.code.disposition(), Disposition::Retry);
}

#[test]
fn batch_decoder_refuses_a_reply_frame_and_vice_versa() {
    let limits = DecodeLimits::default();
    let reply = encode_reply(&crate::fixtures::sample_ack(), 1).unwrap();
    assert!(matches!(
        decode_batch(&reply, &limits),
        Err(DecodeError::WrongMessageKind {
            expected: MessageKind::Batch,
            found: MessageKind::Reply
        })
    ));
    let batch = encode_batch(&crate::fixtures::sample_batch(), Compression::None).unwrap();
    assert!(matches!(
        decode_reply(&batch, &limits),
        Err(DecodeError::WrongMessageKind { .. })
    ));
}

#[test]
fn v2_data_is_refused_at_v1_rather_than_dropped() {
    let b = crate::fixtures::sample_v2_batch();
    let err = encode_batch_at_version(&b, 1, Compression::None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot encode at protocol version 1: resources[2].attributes has no field before version 2"
    );
    let status_only = Batch {
        resources: vec![],
        ..b
    };
    let err = encode_batch_at_version(&status_only, 1, Compression::None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot encode at protocol version 1: batch.agent_status has no field before version 2"
    );
}
