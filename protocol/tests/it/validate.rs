//! `Batch::validate`: one broken field at a time, checked by message.

use canopy_protocol::*;

use crate::fixtures::sample_batch;

fn check(edit: impl FnOnce(&mut Batch), expected: &str) {
    let mut batch = sample_batch();
    edit(&mut batch);
    let err = batch.validate(&DecodeLimits::default()).unwrap_err();
    assert_eq!(err.to_string(), expected);
}

#[test]
fn sample_batch_is_valid() {
    sample_batch().validate(&DecodeLimits::default()).unwrap();
    crate::fixtures::day_of_hourly_records(1_000)
        .validate(&DecodeLimits::default())
        .unwrap();
}

#[test]
fn envelope_errors() {
    check(
        |b| b.account_id = "12345".into(),
        "batch.account_id: expected 12 ASCII digits, found \"12345\"",
    );
    check(
        |b| b.account_id = "12345678901x".into(),
        "batch.account_id: expected 12 ASCII digits, found \"12345678901x\"",
    );
    check(
        |b| b.agent_id.clear(),
        "batch.agent_id: expected a non-empty string, found an empty one",
    );
    check(
        |b| b.region = "EU West".into(),
        "batch.region: expected lowercase letters, digits and '-', found \"EU West\"",
    );
}

#[test]
fn resource_errors() {
    check(
        |b| b.resources[2].arn = "vol-1".into(),
        "resources[2].arn: expected a string starting with \"arn:\", found \"vol-1\"",
    );
    check(
        |b| b.resources[0].vcpus = Some(-1.0),
        "resources[0].vcpus: expected a finite number >= 0, found -1",
    );
    check(
        |b| b.resources[1].first_seen_unix_s = b.resources[1].last_seen_unix_s + 1,
        "resources[1]: expected first_seen_unix_s <= last_seen_unix_s, found 1700003601 > 1700003600",
    );
    check(
        |b| {
            b.resources[0].tags.insert(String::new(), "x".into());
        },
        "resources[0].tags.key: expected a non-empty string, found an empty one",
    );
    check(
        |b| {
            for i in 0..49 {
                b.resources[0].tags.insert(format!("k{i}"), String::new());
            }
        },
        "resources[0].tags: expected at most 50 entries, found 51",
    );
}

#[test]
fn emission_number_errors() {
    check(
        |b| b.emissions[1].energy_storage_kwh = f64::NAN,
        "emissions[1].energy_storage_kwh: expected a finite number >= 0, found NaN",
    );
    check(
        |b| b.emissions[0].operational_market_g_co2e = f64::INFINITY,
        "emissions[0].operational_market_g_co2e: expected a finite number >= 0, found inf",
    );
    check(
        |b| b.emissions[0].energy_compute_kwh = -0.5,
        "emissions[0].energy_compute_kwh: expected a finite number >= 0, found -0.5",
    );
    check(
        |b| b.emissions[0].pue = 0.9,
        "emissions[0].pue: expected a finite number >= 1, found 0.9",
    );
    check(
        |b| b.emissions[0].grid_market.g_co2e_per_kwh = -3.0,
        "emissions[0].grid_market.g_co2e_per_kwh: expected a finite number >= 0, found -3",
    );
    check(
        |b| b.emissions[0].grid_location.source.clear(),
        "emissions[0].grid_location.source: expected a non-empty string, found an empty one",
    );
}

#[test]
fn bounds_must_bracket_the_location_total() {
    // Central = embodied 1.2 + operational 4.662807 = 5.862807 g.
    check(
        |b| b.emissions[0].low_g_co2e = 6.0,
        "emissions[0]: expected low_g_co2e <= embodied + operational location (5.862807) <= high_g_co2e, found low 6 and high 9.5",
    );
    check(
        |b| b.emissions[0].high_g_co2e = 5.8,
        "emissions[0]: expected low_g_co2e <= embodied + operational location (5.862807) <= high_g_co2e, found low 4 and high 5.8",
    );
}

#[test]
fn interval_must_be_non_empty() {
    check(
        |b| b.emissions[1].interval_end_unix_s = b.emissions[1].interval_start_unix_s,
        "emissions[1]: expected interval_end_unix_s > interval_start_unix_s, found start 1700000000 and end 1700000000",
    );
}

#[test]
fn record_keys_are_unique_within_a_batch() {
    check(
        |b| {
            let mut again = b.emissions[0].clone();
            again.revision = 3;
            b.emissions.push(again);
        },
        "emissions[2]: expected a unique record key, found the same key as emissions[0]",
    );
}

#[test]
fn record_key_ignores_revision_and_values_but_not_interval() {
    let batch = sample_batch();
    let first = batch.record_key(&batch.emissions[0]);
    let mut revised = batch.emissions[0].clone();
    revised.revision = 9;
    revised.operational_location_g_co2e = 100.0;
    revised.methodology_version = "canopy-2".into();
    assert_eq!(batch.record_key(&revised), first);
    assert!(revised.supersedes(&batch.emissions[0]));
    let mut next_hour = batch.emissions[0].clone();
    next_hour.interval_start_unix_s += 3_600;
    next_hour.interval_end_unix_s += 3_600;
    assert_ne!(batch.record_key(&next_hour), first);
    assert_eq!(
        first.to_string(),
        "123456789012/eu-west-1/resource:arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc0000000000001@1700000000..1700003600"
    );
}

#[test]
fn attribute_and_status_errors() {
    let limits = DecodeLimits::default();
    crate::fixtures::sample_v2_batch().validate(&limits).unwrap();
    let check_v2 = |edit: &dyn Fn(&mut Batch), expected: &str| {
        let mut batch = crate::fixtures::sample_v2_batch();
        edit(&mut batch);
        assert_eq!(batch.validate(&limits).unwrap_err().to_string(), expected);
    };
    check_v2(
        &|b| {
            b.resources[0].attributes.insert(String::new(), "x".into());
        },
        "resources[0].attributes.key: expected a non-empty string, found an empty one",
    );
    check_v2(
        &|b| {
            b.resources[1].attributes.insert("engine".into(), "x".repeat(1_025));
        },
        "resources[1].attributes.value: expected at most 1024 bytes, found 1025",
    );
    check_v2(
        &|b| {
            for i in 0..65 {
                b.resources[0].attributes.insert(format!("a{i}"), "1".into());
            }
        },
        "resources[0].attributes: expected at most 64 entries, found 65",
    );
    check_v2(
        &|b| b.agent_status.as_mut().unwrap().agent_version.clear(),
        "batch.agent_status.agent_version: expected a non-empty string, found an empty one",
    );
    check_v2(
        &|b| b.agent_status.as_mut().unwrap().taken_at_unix_ms = -1,
        "batch.agent_status.taken_at_unix_ms: expected a value >= 0, found -1",
    );
}
