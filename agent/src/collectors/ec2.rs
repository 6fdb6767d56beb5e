//! EC2 instances (DescribeInstances), with vCPUs, memory, architecture and
//! accelerators from DescribeInstanceTypes, cached per instance type.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use aws_sdk_ec2::types::{ArchitectureValues, InstanceStateName, InstanceTypeInfo};
use canopy_protocol::{Accelerator, AcceleratorKind, CpuArchitecture, LifecycleState};

use super::{BoxFuture, CollectContext, CollectError, Collector, tag_map};
use crate::aws::AwsContext;
use crate::inventory::{Basis, Resource};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &["ec2:DescribeInstances", "ec2:DescribeInstanceTypes"];

/// What DescribeInstanceTypes says about one type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeFacts {
    /// Default vCPUs.
    pub vcpus: Option<f64>,
    /// Memory, MiB.
    pub memory_mib: Option<u64>,
    /// First supported architecture.
    pub architecture: Option<CpuArchitecture>,
    /// GPUs and inference accelerators.
    pub accelerators: Vec<Accelerator>,
}

/// The EC2 instance collector.
#[derive(Debug)]
pub struct Ec2Collector {
    client: aws_sdk_ec2::Client,
    types: Mutex<HashMap<String, TypeFacts>>,
}

impl Ec2Collector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext) -> Ec2Collector {
        let config = aws_sdk_ec2::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        Ec2Collector { client: aws_sdk_ec2::Client::from_conf(config), types: Mutex::new(HashMap::new()) }
    }

    /// Number of instance types cached so far.
    pub fn cached_types(&self) -> usize {
        self.types.lock().expect("type cache lock").len()
    }

    async fn describe_types(&self, wanted: BTreeSet<String>) -> Result<(), CollectError> {
        let missing: Vec<String> = {
            let cache = self.types.lock().expect("type cache lock");
            wanted.into_iter().filter(|t| !cache.contains_key(t)).collect()
        };
        // DescribeInstanceTypes accepts up to 100 type names per request.
        for chunk in missing.chunks(100) {
            let mut pages = self
                .client
                .describe_instance_types()
                .set_instance_types(Some(chunk.iter().map(|t| t.as_str().into()).collect()))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("ec2", "DescribeInstanceTypes", e))?;
                let mut cache = self.types.lock().expect("type cache lock");
                for info in page.instance_types() {
                    if let Some(t) = info.instance_type() {
                        cache.insert(t.as_str().to_owned(), type_facts(info));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Facts from one DescribeInstanceTypes entry.
pub fn type_facts(info: &InstanceTypeInfo) -> TypeFacts {
    let mut accelerators = Vec::new();
    if let Some(gpu) = info.gpu_info() {
        for d in gpu.gpus() {
            let model = [d.manufacturer(), d.name()].into_iter().flatten().collect::<Vec<_>>().join(" ");
            accelerators.push(Accelerator {
                kind: AcceleratorKind::Gpu,
                model,
                count: d.count().unwrap_or(0).max(0) as u32,
            });
        }
    }
    if let Some(inf) = info.inference_accelerator_info() {
        for d in inf.accelerators() {
            let model = d.name().unwrap_or_default().to_owned();
            let kind = if model.contains("Inferentia") { AcceleratorKind::Inferentia } else { AcceleratorKind::Other };
            accelerators.push(Accelerator { kind, model, count: d.count().unwrap_or(0).max(0) as u32 });
        }
    }
    TypeFacts {
        vcpus: info.v_cpu_info().and_then(|v| v.default_v_cpus()).map(f64::from),
        memory_mib: info.memory_info().and_then(|m| m.size_in_mib()).map(|m| m.max(0) as u64),
        architecture: info
            .processor_info()
            .and_then(|p| p.supported_architectures().first())
            .map(|a| architecture(a.as_str())),
        accelerators,
    }
}

/// Protocol architecture from an AWS architecture name.
pub fn architecture(name: &str) -> CpuArchitecture {
    match name {
        "x86_64" | "x86_64_mac" => CpuArchitecture::X86_64,
        "arm64" | "arm64_mac" => CpuArchitecture::Arm64,
        _ => CpuArchitecture::Other,
    }
}

fn lifecycle(state: Option<&InstanceStateName>) -> LifecycleState {
    match state {
        Some(InstanceStateName::Pending) => LifecycleState::Pending,
        Some(InstanceStateName::Running) => LifecycleState::Running,
        Some(InstanceStateName::Stopping) | Some(InstanceStateName::ShuttingDown) => LifecycleState::Stopping,
        Some(InstanceStateName::Stopped) => LifecycleState::Stopped,
        Some(InstanceStateName::Terminated) => LifecycleState::Terminated,
        _ => LifecycleState::Unknown,
    }
}

impl Collector for Ec2Collector {
    fn name(&self) -> &'static str {
        "ec2"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut found = Vec::new();
            let mut pages = self.client.describe_instances().max_results(1000).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("ec2", "DescribeInstances", e))?;
                for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                    let Some(id) = instance.instance_id() else { continue };
                    let instance_type = instance.instance_type().map(|t| t.as_str().to_owned()).unwrap_or_default();
                    let mut r = Resource::new(
                        "ec2",
                        "ec2",
                        "instance",
                        ctx.arn("ec2", &format!("instance/{id}")),
                        id.to_owned(),
                        Basis::Instance { instance_type: instance_type.clone(), count: 1, storage: Vec::new() },
                    );
                    r.class = Some(instance_type);
                    r.tags = tag_map(instance.tags().iter().map(|t| (t.key(), t.value())));
                    r.lifecycle = lifecycle(instance.state().and_then(|s| s.name()));
                    r.architecture = instance.architecture().map(|a: &ArchitectureValues| architecture(a.as_str()));
                    found.push(r);
                }
            }
            let wanted: BTreeSet<String> =
                found.iter().filter_map(|r| r.class.clone()).filter(|c| !c.is_empty()).collect();
            self.describe_types(wanted).await?;
            let cache = self.types.lock().expect("type cache lock");
            for r in &mut found {
                if let Some(facts) = r.class.as_ref().and_then(|c| cache.get(c)) {
                    r.vcpus = facts.vcpus;
                    r.memory_mib = facts.memory_mib;
                    r.architecture = r.architecture.or(facts.architecture);
                    r.accelerators = facts.accelerators.clone();
                }
            }
            Ok(found)
        })
    }
}
