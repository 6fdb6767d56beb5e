//! Provisional records superseded by measured ones; SQS change events
//! reflected within one cycle; the simulated source end to end.

use aws_sdk_ec2::types::InstanceStateName;
use canopy_agent::build::{build_agent, build_agent_with_credentials};
use canopy_agent::config::AgentConfig;
use canopy_agent::env::MapEnv;
use canopy_protocol::{LifecycleState, Quality, Subject};

use crate::collect::{any_ami, config, now_unix_s, run_instances};
use crate::moto::{Moto, credentials};

const H: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

#[tokio::test]
async fn provisional_hour_is_superseded_by_the_measured_one() {
    // A 2-hour cadence, so that an hour ends before its measurement lands.
    let text = "config_version = 1\nagent_id = \"sim\"\nregion = \"eu-west-1\"\n[source]\nkind = \"simulated\"\nseed = 3\nresources = 40\n[intervals]\nutilisation_s = 7200\n";
    let config = AgentConfig::from_toml(text, "t", &MapEnv::default()).unwrap();
    let mut agent = build_agent(&config).await.unwrap();
    // Start: window [H - 2 h, H) measured.
    let first = agent.run_cycle(H).await;
    assert_eq!(first.stats.utilisation_window, Some((H - 7_200, H)));
    assert_eq!(first.resources.len(), 40);
    let mut provisional = Vec::new();
    for i in 1..=12 {
        let out = agent.run_cycle(H + i * 300).await;
        assert_eq!(out.stats.utilisation_window, None, "no fetch before two hours have passed");
        // Every cycle gives the dashboards one provisional 5-minute record per group.
        assert!(
            out.emissions
                .iter()
                .any(|e| matches!(e.subject, Subject::Group(_)) && e.interval_start_unix_s == H + (i - 1) * 300)
        );
        provisional.extend(out.emissions.into_iter().filter(|e| matches!(e.subject, Subject::Resource { .. })));
    }
    // The cycle ending at H + 1 h gives provisional hourly records for [H, H + 1 h).
    assert_eq!(
        provisional.len(),
        agent
            .inventory()
            .iter()
            .filter(|r| !matches!(r.basis, canopy_agent::inventory::Basis::CountedElsewhere))
            .count()
    );
    assert!(
        provisional
            .iter()
            .all(|e| e.revision == 1 && e.interval_start_unix_s == H && e.interval_end_unix_s == H + 3_600)
    );
    let mut measured = Vec::new();
    for i in 13..=24 {
        let out = agent.run_cycle(H + i * 300).await;
        if i == 24 {
            assert_eq!(out.stats.utilisation_window, Some((H, H + 7_200)));
            // 40 utilisation queries: one GetMetricData call.
            assert_eq!(out.stats.cost.get_metric_data_calls, 1);
        }
        measured.extend(
            out.emissions
                .into_iter()
                .filter(|e| e.revision == 2 && e.interval_start_unix_s == H && e.interval_end_unix_s == H + 3_600),
        );
    }
    for p in &provisional {
        let m = measured
            .iter()
            .find(|m| m.subject == p.subject)
            .unwrap_or_else(|| panic!("no measured record for {}", p.subject));
        assert!(m.supersedes(p));
    }
    // The simulated source leaves every tenth metered resource without datapoints.
    assert!(measured.iter().any(|m| m.quality == Quality::Default));
    assert!(measured.iter().any(|m| m.quality != Quality::Default));
}

#[tokio::test]
async fn hourly_default_supersedes_provisional_groups_within_the_cost_ceiling() {
    let text = "config_version = 1\nagent_id = \"sim\"\nregion = \"eu-west-1\"\n[source]\nkind = \"simulated\"\nseed = 5\nresources = 1000\n";
    let config = AgentConfig::from_toml(text, "t", &MapEnv::default()).unwrap();
    let mut agent = build_agent(&config).await.unwrap();
    let first = agent.run_cycle(H).await;
    assert_eq!(first.stats.utilisation_window, Some((H - 3_600, H)));
    // The simulated mix averages (10 × 730 + 3 × 760.42 + 2 × 60.83) / 20 = 485.15 metrics per
    // resource per month = $0.0048515: within the $0.005 ceiling at the hourly default.
    assert_eq!(agent.utilisation_interval_s(), 3_600);
    let per_resource = agent.estimated_usd_per_resource_month();
    assert!((per_resource - 0.004_851_458_3).abs() < 1e-9, "{per_resource}");
    assert_eq!(agent.metrics().get("canopy_agent_estimated_api_cost_usd_per_resource_month", &[]), per_resource);
    // 650 metered resources (8 + 2 + 3 per 20): 2 requests.
    assert_eq!((first.stats.cost.get_metric_data_calls, first.stats.cost.metrics_requested), (2, 650));
    let mut provisional = Vec::new();
    for i in 1..=11 {
        let out = agent.run_cycle(H + i * 300).await;
        assert_eq!(out.stats.utilisation_window, None);
        assert!(out.emissions.iter().all(|e| e.revision == 1 && matches!(e.subject, Subject::Group(_))));
        provisional.extend(out.emissions);
    }
    let out = agent.run_cycle(H + 3_600).await;
    assert_eq!(out.stats.utilisation_window, Some((H, H + 3_600)));
    // The hour is measured in the cycle that ends it: no provisional hourly records.
    assert!(out.emissions.iter().all(|e| e.revision == 2 || e.interval_start_unix_s >= H + 3_600));
    assert_eq!(provisional.len(), 11 * provisional.iter().filter(|e| e.interval_start_unix_s == H).count());
    for p in &provisional {
        let m = out
            .emissions
            .iter()
            .find(|m| m.subject == p.subject && m.interval_start_unix_s == p.interval_start_unix_s && m.revision == 2)
            .unwrap_or_else(|| panic!("no measured group record for {} at {}", p.subject, p.interval_start_unix_s));
        assert!(m.supersedes(p));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_create_and_terminate_events_are_reflected_within_one_cycle() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url =
        sqs.create_queue().queue_name("canopy-changes").send().await.unwrap().queue_url().unwrap().to_owned();
    let ami = any_ami(&ec2).await;
    let old = run_instances(&ec2, &ami, "m5.large", &[]).await;
    let extra =
        format!("collectors = [\"ec2\", \"ebs\"]\n[change_queue]\nqueue_url = \"{queue_url}\"\nwait_time_s = 1\n");
    let config = config(&moto.url(), &extra);
    let mut agent = build_agent_with_credentials(&config, Some(credentials())).await.unwrap();
    let now = now_unix_s();
    let first = agent.run_cycle(now).await;
    // The instance and the root volume moto gives it.
    assert_eq!(first.resources.len(), 2);

    let new = run_instances(&ec2, &ami, "c5.large", &[("Team", "search")]).await;
    ec2.terminate_instances().instance_ids(&old).send().await.unwrap();
    let arn = |id: &str| format!("arn:aws:ec2:eu-west-1:123456789012:instance/{id}");
    let event = |id: &str, state: InstanceStateName| {
        format!(
            r#"{{"version":"0","source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","account":"123456789012","region":"eu-west-1","resources":["{}"],"detail":{{"instance-id":"{id}","state":"{}"}}}}"#,
            arn(id),
            state.as_str()
        )
    };
    for body in [
        event(&new, InstanceStateName::Running),
        event(&old, InstanceStateName::Terminated),
        "{not an event".to_owned(),
    ] {
        sqs.send_message().queue_url(&queue_url).message_body(body).send().await.unwrap();
    }
    let second = agent.run_cycle(now + 300).await;
    assert!(!second.stats.full_inventory);
    assert_eq!(second.stats.changes_malformed, 1);
    let inv = agent.inventory();
    assert_eq!(inv.get(&arn(&new)).map(|r| r.lifecycle), Some(LifecycleState::Running));
    assert_eq!(inv.get(&arn(&new)).and_then(|r| r.class.as_deref()), Some("c5.large"));
    assert_eq!(inv.get(&arn(&old)).map(|r| r.lifecycle), Some(LifecycleState::Terminated));
    assert_eq!(agent.metrics().get("canopy_agent_change_events_total", &[("outcome", "malformed")]), 1.0);
    // The changed resources are reported in that cycle.
    assert!(second.resources.iter().any(|(r, _)| r.arn == arn(&new)));
    // The queue was drained.
    let left = sqs.receive_message().queue_url(&queue_url).wait_time_seconds(0).send().await.unwrap();
    assert!(left.messages().is_empty());
}
