//! ECS tasks (ListClusters, ListTasks, DescribeTasks with tags). Fargate
//! tasks are estimated from their reserved vCPU and memory; tasks on EC2
//! capacity are inventory only (their instance is counted by `ec2`).

use aws_sdk_ecs::types::{LaunchType, TaskField};
use canopy_protocol::{CpuArchitecture, LifecycleState};

use super::{BoxFuture, CollectContext, CollectError, Collector, tag_map};
use crate::aws::AwsContext;
use crate::inventory::{Basis, Resource};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &["ecs:ListClusters", "ecs:ListTasks", "ecs:DescribeTasks"];

/// The ECS task collector.
#[derive(Debug)]
pub struct EcsCollector {
    client: aws_sdk_ecs::Client,
}

impl EcsCollector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext) -> EcsCollector {
        let config = aws_sdk_ecs::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        EcsCollector { client: aws_sdk_ecs::Client::from_conf(config) }
    }
}

/// Lifecycle from an ECS task status.
pub fn task_lifecycle(status: &str) -> LifecycleState {
    match status {
        "PROVISIONING" | "PENDING" | "ACTIVATING" => LifecycleState::Pending,
        "RUNNING" => LifecycleState::Running,
        "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => LifecycleState::Stopping,
        "STOPPED" | "DELETED" => LifecycleState::Terminated,
        _ => LifecycleState::Unknown,
    }
}

/// The inventory resource of one described task (`None` without an ARN).
/// Fargate tasks with task-level `cpu` (units of 1/1,024 vCPU) and
/// `memory` (MiB) are estimated from them; other tasks are inventory only.
pub fn task_resource(cluster: &str, task: &aws_sdk_ecs::types::Task) -> Option<Resource> {
    let arn = task.task_arn()?;
    let vcpus = task.cpu().and_then(|c| c.parse::<f64>().ok()).map(|units| units / 1024.0);
    let memory_mib = task.memory().and_then(|m| m.parse::<u64>().ok());
    let arm = task.attributes().iter().any(|a| a.name() == "ecs.cpu-architecture" && a.value() == Some("arm64"));
    let architecture = if arm { CpuArchitecture::Arm64 } else { CpuArchitecture::X86_64 };
    let fargate = task.launch_type() == Some(&LaunchType::Fargate);
    let basis = match (fargate, vcpus, memory_mib) {
        (true, Some(vcpus), Some(memory_mib)) => Basis::Container { vcpus, memory_mib, architecture },
        _ => Basis::CountedElsewhere,
    };
    let id = arn.rsplit('/').next().unwrap_or(arn).to_owned();
    let mut r = Resource::new("ecs", "ecs", "task", arn.to_owned(), id, basis);
    r.class = Some(if fargate { "FARGATE".to_owned() } else { "EC2".to_owned() });
    r.vcpus = vcpus;
    r.memory_mib = memory_mib;
    r.architecture = Some(architecture);
    r.tags = tag_map(task.tags().iter().map(|t| (t.key(), t.value())));
    r.lifecycle = task_lifecycle(task.last_status().unwrap_or_default());
    r.attributes.insert("cluster", cluster.to_owned());
    Some(r)
}

impl Collector for EcsCollector {
    fn name(&self) -> &'static str {
        "ecs"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, _ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut clusters = Vec::new();
            let mut pages = self.client.list_clusters().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("ecs", "ListClusters", e))?;
                clusters.extend(page.cluster_arns().iter().cloned());
            }
            let mut found = Vec::new();
            for cluster in &clusters {
                let mut task_arns = Vec::new();
                let mut pages = self.client.list_tasks().cluster(cluster).into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| CollectError::api("ecs", "ListTasks", e))?;
                    task_arns.extend(page.task_arns().iter().cloned());
                }
                // DescribeTasks takes up to 100 tasks per request.
                for chunk in task_arns.chunks(100) {
                    let out = self
                        .client
                        .describe_tasks()
                        .cluster(cluster)
                        .set_tasks(Some(chunk.to_vec()))
                        .include(TaskField::Tags)
                        .send()
                        .await
                        .map_err(|e| CollectError::api("ecs", "DescribeTasks", e))?;
                    found.extend(out.tasks().iter().filter_map(|task| task_resource(cluster, task)));
                }
            }
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Attribute, Tag, Task};

    #[test]
    fn fargate_task_is_sized_from_task_level_cpu_and_memory() {
        // moto's DescribeTasks omits task-level cpu/memory and the
        // architecture attribute; real Fargate tasks carry them.
        let task = Task::builder()
            .task_arn("arn:aws:ecs:eu-west-1:123456789012:task/prod/abc123")
            .launch_type(LaunchType::Fargate)
            .cpu("512")
            .memory("2048")
            .attributes(Attribute::builder().name("ecs.cpu-architecture").value("arm64").build().unwrap())
            .tags(Tag::builder().key("Team").value("search").build())
            .last_status("RUNNING")
            .build();
        let r = task_resource("arn:aws:ecs:eu-west-1:123456789012:cluster/prod", &task).unwrap();
        assert_eq!(r.id, "abc123");
        assert_eq!(
            r.basis,
            Basis::Container { vcpus: 0.5, memory_mib: 2_048, architecture: CpuArchitecture::Arm64 }
        );
        assert_eq!((r.class.as_deref(), r.vcpus, r.memory_mib), (Some("FARGATE"), Some(0.5), Some(2_048)));
        assert_eq!(r.tags.get("Team").map(String::as_str), Some("search"));
        assert_eq!(r.lifecycle, LifecycleState::Running);
        assert_eq!(r.attributes.get("cluster").map(String::as_str), Some("arn:aws:ecs:eu-west-1:123456789012:cluster/prod"));
        // Without task-level sizes (or on EC2 capacity) the task is inventory only.
        let bare = Task::builder().task_arn("arn:aws:ecs:eu-west-1:123456789012:task/prod/d").launch_type(LaunchType::Fargate).build();
        assert_eq!(task_resource("c", &bare).unwrap().basis, Basis::CountedElsewhere);
        let on_ec2 = Task::builder().task_arn("arn:t/e").launch_type(LaunchType::Ec2).cpu("1024").memory("512").build();
        assert_eq!(task_resource("c", &on_ec2).unwrap().basis, Basis::CountedElsewhere);
    }
}
