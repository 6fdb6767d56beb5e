//! ECS/Fargate tasks, EKS node groups, DynamoDB tables, ElastiCache
//! clusters and EFS file systems against moto: inventory and emission
//! values, exactly.
//!
//! What moto 5.2 does not serve, and where it is covered instead:
//! DescribeTasks sends container-level `cpu`/`memory` as JSON numbers
//! where the API has strings (aws-sdk-ecs refuses the whole response, so
//! the harness proxy quotes them), and has no task-level `cpu`/`memory` and
//! no `ecs.cpu-architecture` attribute (so a Fargate task is inventory only
//! here; sizing is unit-tested in `collectors::ecs`), DescribeTable always
//! reports `TableSizeBytes = 0` and DescribeFileSystems always meters 0
//! bytes (sizes are unit-tested in `collectors::dynamodb` and
//! `collectors::efs`; here their records carry exactly zero energy).

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use canopy_agent::build::build_agent_with_credentials;
use canopy_emissions::model::{DEFAULT_CPU_UTILISATION_PCT, instance_power, pue};
use canopy_protocol::{EmissionRecord, LifecycleState, Quality, Subject};

use crate::collect::{REGION, config, now_unix_s};
use crate::moto::{Moto, credentials};
use crate::proxy::{FaultProxy, quote_ecs_container_numbers};

const ACCOUNT: &str = "123456789012";

fn close(found: f64, expected: f64, what: &str) {
    assert!((found - expected).abs() <= 1e-12 + expected.abs() * 1e-9, "{what}: found {found}, expected {expected}");
}

fn records<'a>(emissions: &'a [EmissionRecord], arn: &str) -> Vec<&'a EmissionRecord> {
    emissions.iter().filter(|e| e.subject == Subject::Resource { arn: arn.to_owned() }).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_eks_dynamodb_elasticache_and_efs_against_moto() {
    let moto = Moto::start();
    moto.freeze_ecs_tasks().await;
    let sdk = moto.sdk().await;
    let now = now_unix_s();
    let cycle_end = now - now % 300;
    let hour_end = cycle_end - cycle_end % 3_600;

    // ECS: one Fargate task with tags, in cluster `prod`.
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let subnet = ec2.describe_subnets().send().await.unwrap().subnets()[0].subnet_id().unwrap().to_owned();
    let sg = ec2.describe_security_groups().send().await.unwrap().security_groups()[0].group_id().unwrap().to_owned();
    // ECS calls (seeding and the agent's) go through the harness proxy, which
    // only quotes the container numbers moto sends where the API has strings.
    let proxy = FaultProxy::start_with(moto.port, 0, 0, 0, Some(quote_ecs_container_numbers)).await;
    let proxied = crate::moto::sdk_for(&format!("http://127.0.0.1:{}", proxy.port), REGION).await;
    let ecs = aws_sdk_ecs::Client::new(&proxied);
    ecs.create_cluster().cluster_name("prod").send().await.unwrap();
    // moto needs a container-level memory figure to place the task.
    ecs.register_task_definition()
        .family("web")
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .cpu("512")
        .memory("1024")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder().name("web").image("nginx").memory_reservation(1024).build(),
        )
        .send()
        .await
        .unwrap();
    let task_arn = ecs
        .run_task()
        .cluster("prod")
        .task_definition("web")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .tags(aws_sdk_ecs::types::Tag::builder().key("Team").value("search").build())
        .network_configuration(
            aws_sdk_ecs::types::NetworkConfiguration::builder()
                .awsvpc_configuration(
                    aws_sdk_ecs::types::AwsVpcConfiguration::builder().subnets(&subnet).security_groups(&sg).build().unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .task_arn()
        .unwrap()
        .to_owned();

    // EKS: a managed node group of 3 m5.large nodes.
    let eks = aws_sdk_eks::Client::new(&sdk);
    eks.create_cluster()
        .name("k8s")
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks"))
        .resources_vpc_config(aws_sdk_eks::types::VpcConfigRequest::builder().subnet_ids(&subnet).build())
        .send()
        .await
        .unwrap();
    let nodegroup_arn = eks
        .create_nodegroup()
        .cluster_name("k8s")
        .nodegroup_name("general")
        .node_role(format!("arn:aws:iam::{ACCOUNT}:role/node"))
        .subnets(&subnet)
        .instance_types("m5.large")
        .scaling_config(aws_sdk_eks::types::NodegroupScalingConfig::builder().min_size(1).max_size(5).desired_size(3).build())
        .tags("Team", "platform")
        .send()
        .await
        .unwrap()
        .nodegroup()
        .unwrap()
        .nodegroup_arn()
        .unwrap()
        .to_owned();

    // DynamoDB: a tagged on-demand table with a few items.
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    use aws_sdk_dynamodb::types::{AttributeDefinition, AttributeValue, KeySchemaElement, KeyType, ScalarAttributeType};
    ddb.create_table()
        .table_name("orders")
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
        .attribute_definitions(
            AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build().unwrap(),
        )
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .tags(aws_sdk_dynamodb::types::Tag::builder().key("Team").value("payments").build().unwrap())
        .send()
        .await
        .unwrap();
    for i in 0..3 {
        ddb.put_item().table_name("orders").item("id", AttributeValue::S(format!("o-{i}"))).send().await.unwrap();
    }

    // ElastiCache: memcached with 3 cache.m5.large nodes (CPU 30 %), and a
    // single-node Redis cluster without datapoints.
    let cache = aws_sdk_elasticache::Client::new(&sdk);
    cache
        .create_cache_cluster()
        .cache_cluster_id("sessions")
        .cache_node_type("cache.m5.large")
        .engine("memcached")
        .num_cache_nodes(3)
        .tags(aws_sdk_elasticache::types::Tag::builder().key("Team").value("payments").build())
        .send()
        .await
        .unwrap();
    cache
        .create_cache_cluster()
        .cache_cluster_id("queue")
        .cache_node_type("cache.r5.large")
        .engine("redis")
        .num_cache_nodes(1)
        .send()
        .await
        .unwrap();
    let cw = aws_sdk_cloudwatch::Client::new(&sdk);
    let points: Vec<MetricDatum> = (0..24)
        .map(|i| {
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(Dimension::builder().name("CacheClusterId").value("sessions").build())
                .timestamp(DateTime::from_secs(hour_end - 7_200 + i * 300))
                .value(30.0)
                .build()
        })
        .collect();
    for chunk in points.chunks(20) {
        cw.put_metric_data().namespace("AWS/ElastiCache").set_metric_data(Some(chunk.to_vec())).send().await.unwrap();
    }

    // EFS: a Regional file system with tags and a One Zone one.
    let efs = aws_sdk_efs::Client::new(&sdk);
    let regional = efs
        .create_file_system()
        .creation_token("shared")
        .tags(aws_sdk_efs::types::Tag::builder().key("Team").value("data").build().unwrap())
        .send()
        .await
        .unwrap()
        .file_system_id()
        .to_owned();
    let one_zone =
        efs.create_file_system().creation_token("scratch").availability_zone_name("eu-west-1a").send().await.unwrap().file_system_id().to_owned();

    let config = config(
        &format!("http://127.0.0.1:{}", proxy.port),
        "collectors = [\"ecs\", \"eks\", \"dynamodb\", \"elasticache\", \"efs\"]\n",
    );
    let mut agent = build_agent_with_credentials(&config, Some(credentials())).await.unwrap();
    let out = agent.run_cycle(now).await;
    assert_eq!(out.stats.collector_failures, 0, "{:?}", out.stats);
    assert_eq!(out.stats.estimate_failures, 0, "{:?}", out.stats);
    let (w0, w1) = out.stats.utilisation_window.expect("the first cycle fetches utilisation");
    assert_eq!(w1, hour_end);

    // Inventory: exactly these 7 resources.
    let mut arns: Vec<&str> = out.resources.iter().map(|(r, _)| r.arn.as_str()).collect();
    arns.sort_unstable();
    let sessions_arn = format!("arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:sessions");
    let queue_arn = format!("arn:aws:elasticache:{REGION}:{ACCOUNT}:cluster:queue");
    let table_arn = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders");
    let fs_arn = |id: &str| format!("arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/{id}");
    let mut expected = vec![
        task_arn.clone(),
        nodegroup_arn.clone(),
        table_arn.clone(),
        sessions_arn.clone(),
        queue_arn.clone(),
        fs_arn(&regional),
        fs_arn(&one_zone),
    ];
    expected.sort_unstable();
    assert_eq!(arns, expected);
    let resource = |arn: &str| out.resources.iter().find(|(r, _)| r.arn == arn).unwrap();
    let team = |arn: &str| resource(arn).0.tags.get("Team").cloned();

    let (task, task_attrs) = resource(&task_arn);
    assert_eq!((task.service.as_str(), task.resource_type.as_str(), task.class.as_deref()), ("ecs", "task", Some("FARGATE")));
    assert_eq!(task.lifecycle, LifecycleState::Running);
    assert_eq!(team(&task_arn).as_deref(), Some("search"));
    assert_eq!(task_attrs.get("cluster").map(String::as_str), Some(format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod").as_str()));

    let (ng, ng_attrs) = resource(&nodegroup_arn);
    assert_eq!((ng.service.as_str(), ng.resource_type.as_str(), ng.class.as_deref()), ("eks", "nodegroup", Some("m5.large")));
    assert_eq!(ng.lifecycle, LifecycleState::Running);
    assert_eq!(team(&nodegroup_arn).as_deref(), Some("platform"));
    assert_eq!(ng_attrs.get("desired_size").map(String::as_str), Some("3"));
    assert_eq!(ng_attrs.get("cluster").map(String::as_str), Some("k8s"));

    let (table, _) = resource(&table_arn);
    assert_eq!((table.service.as_str(), table.resource_type.as_str()), ("dynamodb", "table"));
    assert_eq!(table.size.and_then(|s| s.bytes()), Some(0), "moto reports TableSizeBytes = 0");
    assert_eq!(table.lifecycle, LifecycleState::Running);
    assert_eq!(team(&table_arn).as_deref(), Some("payments"));

    let (sessions, sessions_attrs) = resource(&sessions_arn);
    assert_eq!((sessions.service.as_str(), sessions.class.as_deref()), ("elasticache", Some("cache.m5.large")));
    assert_eq!(sessions_attrs.get("nodes").map(String::as_str), Some("3"));
    assert_eq!(sessions_attrs.get("engine").map(String::as_str), Some("memcached"));
    assert_eq!(team(&sessions_arn).as_deref(), Some("payments"));
    assert_eq!(resource(&queue_arn).1.get("nodes").map(String::as_str), Some("1"));
    assert_eq!(team(&queue_arn), None);

    let (fs_regional, _) = resource(&fs_arn(&regional));
    assert_eq!((fs_regional.class.as_deref(), fs_regional.size.and_then(|s| s.bytes())), (Some("regional"), Some(0)));
    assert_eq!(team(&fs_arn(&regional)).as_deref(), Some("data"));
    assert_eq!(resource(&fs_arn(&one_zone)).0.class.as_deref(), Some("one-zone"));

    // Emissions. Node groups and tasks without sizes are counted elsewhere.
    assert!(records(&out.emissions, &nodegroup_arn).is_empty());
    assert!(records(&out.emissions, &task_arn).is_empty());
    let year = canopy_emissions::time::civil_date(w0).year;
    let (pue, grid) = (pue(year).0, canopy_emissions::grid::location_factor(REGION).g_co2e_per_kwh);
    let hours = (w1 - w0) / 3_600;
    for (arn, node_type, nodes, cpu, quality) in [
        (&sessions_arn, "cache.m5.large", 3.0, 30.0, None),
        (&queue_arn, "cache.r5.large", 1.0, DEFAULT_CPU_UTILISATION_PCT, Some(Quality::Default)),
    ] {
        let recs = records(&out.emissions, arn);
        assert_eq!(recs.len() as i64, hours, "{arn}: one measured record per hour of the window");
        let curve = instance_power(node_type).unwrap();
        let p = curve.power_w(cpu);
        for rec in recs {
            assert_eq!((rec.interval_end_unix_s - rec.interval_start_unix_s, rec.revision), (3_600, 2));
            close(rec.energy_compute_kwh, nodes * (p.cpu_w + p.other_w) / 1_000.0, "ElastiCache compute kWh");
            close(rec.energy_memory_kwh, nodes * p.memory_w / 1_000.0, "ElastiCache memory kWh");
            close(
                rec.operational_location_g_co2e,
                nodes * (p.cpu_w + p.other_w + p.memory_w + p.gpu_w) / 1_000.0 * pue * grid,
                "ElastiCache location gCO2e",
            );
            if let Some(q) = quality {
                assert_eq!(rec.quality, q);
            } else {
                assert_ne!(rec.quality, Quality::Default, "measured CPU");
            }
        }
    }
    for arn in [table_arn.clone(), fs_arn(&regional), fs_arn(&one_zone)] {
        let recs = records(&out.emissions, &arn);
        assert_eq!(recs.len() as i64, hours, "{arn}");
        assert!(recs.iter().all(|r| r.energy_total_kwh() == 0.0 && r.operational_location_g_co2e == 0.0), "{arn}: 0 bytes stored");
    }
    // The 5-minute group of payments' ElastiCache: the 3 nodes at 30 % for 5 minutes.
    let group = out
        .emissions
        .iter()
        .find(|e| {
            e.interval_start_unix_s == w0
                && matches!(&e.subject, Subject::Group(g) if g.service == "elasticache" && g.team.as_deref() == Some("payments"))
        })
        .expect("elasticache/payments group");
    let p = instance_power("cache.m5.large").unwrap().power_w(30.0);
    close(group.energy_compute_kwh, 3.0 * (p.cpu_w + p.other_w) / 1_000.0 / 12.0, "group compute kWh per 5 min");
    // Only the two ElastiCache clusters are metered: one GetMetricData call for 2 metrics.
    assert_eq!((out.stats.cost.get_metric_data_calls, out.stats.cost.metrics_requested), (1, 2));
}
