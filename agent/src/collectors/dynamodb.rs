//! DynamoDB tables (ListTables, DescribeTable, ListTagsOfResource), sized
//! from `TableSizeBytes` (updated by AWS about every six hours).

use canopy_emissions::model::StorageMedium;
use canopy_protocol::LifecycleState;

use super::{BoxFuture, CollectContext, CollectError, Collector};
use crate::aws::AwsContext;
use crate::inventory::{Basis, Resource, StoragePart};

/// IAM actions this collector calls.
pub const IAM_ACTIONS: &[&str] = &["dynamodb:ListTables", "dynamodb:DescribeTable", "dynamodb:ListTagsOfResource"];

/// CCF's replication factor for DynamoDB storage.
pub const DYNAMODB_REPLICATION: f64 = 2.0;

/// The DynamoDB table collector.
#[derive(Debug)]
pub struct DynamoDbCollector {
    client: aws_sdk_dynamodb::Client,
}

impl DynamoDbCollector {
    /// A collector using the shared AWS configuration.
    pub fn new(aws: &AwsContext) -> DynamoDbCollector {
        let config = aws_sdk_dynamodb::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        DynamoDbCollector { client: aws_sdk_dynamodb::Client::from_conf(config) }
    }
}

/// The inventory resource of one described table (tags are added by the
/// caller): `TableSizeBytes` as SSD storage with DynamoDB's replication.
pub fn table_resource(name: &str, table: &aws_sdk_dynamodb::types::TableDescription) -> Resource {
    let arn = table.table_arn().unwrap_or_default();
    let bytes = table.table_size_bytes().unwrap_or(0).max(0) as u64;
    let part =
        StoragePart { class: "dynamodb".into(), bytes, medium: StorageMedium::Ssd, replication: DYNAMODB_REPLICATION };
    let mut r =
        Resource::new("dynamodb", "dynamodb", "table", arn.to_owned(), name.to_owned(), Basis::Storage(vec![part]));
    r.size_bytes = Some(bytes);
    r.lifecycle = match table.table_status().map(|s| s.as_str()) {
        Some("CREATING") => LifecycleState::Pending,
        Some("DELETING") => LifecycleState::Stopping,
        Some(_) => LifecycleState::Running,
        None => LifecycleState::Unknown,
    };
    r
}

impl Collector for DynamoDbCollector {
    fn name(&self) -> &'static str {
        "dynamodb"
    }

    fn iam_actions(&self) -> &'static [&'static str] {
        IAM_ACTIONS
    }

    fn collect<'a>(&'a self, _ctx: &'a CollectContext) -> BoxFuture<'a, Result<Vec<Resource>, CollectError>> {
        Box::pin(async move {
            let mut names = Vec::new();
            let mut pages = self.client.list_tables().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| CollectError::api("dynamodb", "ListTables", e))?;
                names.extend(page.table_names().iter().cloned());
            }
            let mut found = Vec::new();
            for name in names {
                let out = self
                    .client
                    .describe_table()
                    .table_name(&name)
                    .send()
                    .await
                    .map_err(|e| CollectError::api("dynamodb", "DescribeTable", e))?;
                let Some(table) = out.table() else { continue };
                let Some(arn) = table.table_arn() else { continue };
                let mut r = table_resource(&name, table);
                let mut token: Option<String> = None;
                loop {
                    let tags = self
                        .client
                        .list_tags_of_resource()
                        .resource_arn(arn)
                        .set_next_token(token.take())
                        .send()
                        .await
                        .map_err(|e| CollectError::api("dynamodb", "ListTagsOfResource", e))?;
                    r.tags.extend(tags.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())));
                    match tags.next_token() {
                        Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                        _ => break,
                    }
                }
                found.push(r);
            }
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{TableDescription, TableStatus};

    #[test]
    fn table_size_becomes_replicated_ssd_storage() {
        // moto always reports TableSizeBytes = 0; real tables report their size.
        let table = TableDescription::builder()
            .table_arn("arn:aws:dynamodb:eu-west-1:123456789012:table/orders")
            .table_size_bytes(25_000_000_000)
            .table_status(TableStatus::Active)
            .build();
        let r = table_resource("orders", &table);
        assert_eq!((r.arn.as_str(), r.id.as_str()), ("arn:aws:dynamodb:eu-west-1:123456789012:table/orders", "orders"));
        assert_eq!(r.size_bytes, Some(25_000_000_000));
        assert_eq!(r.lifecycle, LifecycleState::Running);
        assert_eq!(
            r.basis,
            Basis::Storage(vec![StoragePart {
                class: "dynamodb".into(),
                bytes: 25_000_000_000,
                medium: StorageMedium::Ssd,
                replication: 2.0
            }])
        );
    }
}
