//! Faults: 30 % throttled and 5 % failing calls through a proxy; the cycle
//! completes, retries are counted, and no API exceeds its budget.

use canopy_agent::build::build_agent_with_credentials;

use crate::collect::{any_ami, config, now_unix_s, run_instances};
use crate::moto::{Moto, credentials};
use crate::proxy::FaultProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cycle_completes_under_throttling_within_rate_budget() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let ami = any_ami(&ec2).await;
    for i in 0..3 {
        run_instances(&ec2, &ami, "m5.large", &[("Team", if i % 2 == 0 { "a" } else { "b" })]).await;
    }
    for size in [10, 20, 30] {
        ec2.create_volume().availability_zone("eu-west-1a").size(size).send().await.unwrap();
    }
    // Buckets make per-resource calls (GetBucketLocation, GetBucketTagging).
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    for i in 0..25 {
        s3.create_bucket()
            .bucket(format!("fault-bucket-{i}"))
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from("eu-west-1"))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let proxy = FaultProxy::start(moto.port, 30, 5, 7).await;
    let rate = 8.0;
    let extra = format!(
        "collectors = [\"ec2\", \"ebs\", \"rds\", \"s3\", \"lambda\"]\n\
         [budget]\nmax_attempts = 10\ninitial_backoff_ms = 20\n\
         [budget.rates]\nec2_per_s = {rate}\nrds_per_s = {rate}\ns3_per_s = {rate}\nlambda_per_s = {rate}\n\
         cloudwatch_get_metric_data_per_s = {rate}\ncloudwatch_list_metrics_per_s = {rate}\nsts_per_s = {rate}\n"
    );
    let config = config(&format!("http://127.0.0.1:{}", proxy.port), &extra);
    let mut agent = build_agent_with_credentials(&config, Some(credentials())).await.unwrap();
    let out = agent.run_cycle(now_unix_s()).await;

    assert_eq!(out.stats.collector_failures, 0, "{:?}", out.stats);
    assert_eq!(out.resources.iter().filter(|(r, _)| r.resource_type == "instance").count(), 3);
    assert_eq!(out.resources.iter().filter(|(r, _)| r.resource_type == "bucket").count(), 25);
    // Three created volumes plus the root volume moto attaches to each instance.
    assert_eq!(out.resources.iter().filter(|(r, _)| r.resource_type == "volume").count(), 6);
    let log = proxy.log.lock().unwrap();
    let (throttled, errors) = (log.throttled, log.server_errors);
    let sent: usize = log.arrivals.values().map(Vec::len).sum();
    drop(log);
    assert!(throttled > 0 && errors > 0, "the proxy injected faults: {throttled} throttles, {errors} errors");
    let m = agent.metrics();
    // Every injected fault was retried, and the agent counted each kind.
    assert_eq!(m.sum("canopy_agent_api_retries_total") as usize, throttled + errors);
    assert_eq!(m.sum("canopy_agent_api_throttles_total") as usize, throttled);
    assert_eq!(m.sum("canopy_agent_api_server_errors_total") as usize, errors);
    assert_eq!(m.sum("canopy_agent_api_calls_total") as usize, sent);
    println!(
        "calls {sent}, throttled {throttled}, 5xx {errors}, worst 1-s window per API {:?}",
        proxy.max_in_window(1.0)
    );
    // Budget: one token per 1/rate s, so at most rate + 1 calls of one API in any second.
    for (api, n) in proxy.max_in_window(1.0) {
        assert!(n as f64 <= rate + 1.0, "{api}: {n} calls within one second, budget {rate}/s");
    }
}
