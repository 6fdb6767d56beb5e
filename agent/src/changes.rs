//! Change detection between full inventories: EventBridge resource-change
//! events, routed by the StackSet to an SQS queue, read with long polling.
//!
//! An event either names terminated resources (removed at once) or asks
//! for the affected collector to be refreshed in the next cycle. Anything
//! that is not a well-formed EventBridge event is counted and dropped; the
//! next full inventory reconciles whatever it would have changed.

use std::sync::Arc;

use serde_json::Value;

use crate::aws::AwsContext;
use crate::collectors::{BoxFuture, CollectError, collectors_for_event_source};
use crate::cost::CostMeter;

/// What one event means for the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The resource is gone (terminated, deleted).
    Terminated {
        /// Its ARN.
        arn: String,
    },
    /// Re-list this collector's resources.
    Refresh {
        /// Collector name.
        collector: &'static str,
    },
}

/// Result of one poll of the change source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeBatch {
    /// Changes in arrival order.
    pub changes: Vec<Change>,
    /// Messages that were not well-formed events.
    pub malformed: usize,
    /// Well-formed events of sources no collector handles.
    pub ignored: usize,
}

/// Why a message is not a usable event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not JSON.
    #[error("expected a JSON EventBridge event, found {found}")]
    NotJson {
        /// Start of the text.
        found: String,
    },
    /// A required field is missing or has the wrong type.
    #[error("expected field {field} to be {expected}")]
    Field {
        /// Field name.
        field: &'static str,
        /// Expected type.
        expected: &'static str,
    },
}

/// Parses one EventBridge event: `Ok(None)` for a well-formed event no
/// collector handles.
pub fn parse_event(body: &str) -> Result<Option<Vec<Change>>, EventError> {
    let v: Value =
        serde_json::from_str(body).map_err(|_| EventError::NotJson { found: body.chars().take(40).collect() })?;
    let source =
        v.get("source").and_then(Value::as_str).ok_or(EventError::Field { field: "source", expected: "a string" })?;
    let detail_type = v
        .get("detail-type")
        .and_then(Value::as_str)
        .ok_or(EventError::Field { field: "detail-type", expected: "a string" })?;
    let detail = v
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or(EventError::Field { field: "detail", expected: "an object" })?;
    let resources: Vec<String> = match v.get("resources") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(_) => return Err(EventError::Field { field: "resources", expected: "an array of ARNs" }),
    };
    let collectors = collectors_for_event_source(source);
    if collectors.is_empty() {
        return Ok(None);
    }
    let state = detail.get("state").and_then(Value::as_str).unwrap_or_default();
    let event_name = detail.get("eventName").and_then(Value::as_str).unwrap_or_default();
    let gone = matches!(state, "terminated" | "shutting-down" | "deleted")
        || event_name.starts_with("Delete")
        || event_name.starts_with("Terminate")
        || detail_type.ends_with("Deletion");
    let mut changes = Vec::new();
    if gone {
        changes.extend(resources.into_iter().filter(|a| a.starts_with("arn:")).map(|arn| Change::Terminated { arn }));
    }
    changes.extend(collectors.iter().map(|c| Change::Refresh { collector: c }));
    Ok(Some(changes))
}

/// A source of change events.
pub trait ChangeSource: Send + Sync {
    /// Everything that arrived since the last poll (waiting at most the
    /// configured long-poll time when nothing is queued).
    fn poll(&self) -> BoxFuture<'_, Result<ChangeBatch, CollectError>>;
}

/// Maximum receives per poll (10 messages each) before the rest waits for the next cycle.
pub const MAX_RECEIVES_PER_POLL: usize = 10;

/// The SQS queue EventBridge delivers to.
#[derive(Debug)]
pub struct SqsChangeSource {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait_time_s: i32,
    max_messages: i32,
    meter: Arc<CostMeter>,
}

impl SqsChangeSource {
    /// A source reading `queue_url`.
    pub fn new(
        aws: &AwsContext,
        queue_url: &str,
        wait_time_s: u32,
        max_messages: u32,
        meter: Arc<CostMeter>,
    ) -> SqsChangeSource {
        let config = aws_sdk_sqs::config::Builder::from(&aws.sdk).interceptor(aws.interceptor).build();
        SqsChangeSource {
            client: aws_sdk_sqs::Client::from_conf(config),
            queue_url: queue_url.to_owned(),
            wait_time_s: wait_time_s as i32,
            max_messages: max_messages as i32,
            meter,
        }
    }
}

impl ChangeSource for SqsChangeSource {
    fn poll(&self) -> BoxFuture<'_, Result<ChangeBatch, CollectError>> {
        Box::pin(async move {
            let mut batch = ChangeBatch::default();
            for i in 0..MAX_RECEIVES_PER_POLL {
                self.meter.sqs();
                let out = self
                    .client
                    .receive_message()
                    .queue_url(&self.queue_url)
                    .max_number_of_messages(self.max_messages)
                    .wait_time_seconds(if i == 0 { self.wait_time_s } else { 0 })
                    .send()
                    .await
                    .map_err(|e| CollectError::api("sqs", "ReceiveMessage", e))?;
                let messages = out.messages();
                for m in messages {
                    match parse_event(m.body().unwrap_or_default()) {
                        Ok(Some(changes)) => batch.changes.extend(changes),
                        Ok(None) => batch.ignored += 1,
                        Err(_) => batch.malformed += 1,
                    }
                    if let Some(handle) = m.receipt_handle() {
                        self.meter.sqs();
                        self.client
                            .delete_message()
                            .queue_url(&self.queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(|e| CollectError::api("sqs", "DeleteMessage", e))?;
                    }
                }
                if messages.len() < self.max_messages as usize {
                    break;
                }
            }
            Ok(batch)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: Result<Option<Vec<Change>>, EventError>) {
        assert_eq!(parse_event(body), expected, "{body}");
    }

    #[test]
    fn events_become_changes() {
        let arn = "arn:aws:ec2:eu-west-1:123456789012:instance/i-1";
        check(
            &format!(
                r#"{{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","resources":["{arn}"],"detail":{{"instance-id":"i-1","state":"terminated"}}}}"#
            ),
            Ok(Some(vec![
                Change::Terminated { arn: arn.into() },
                Change::Refresh { collector: "ec2" },
                Change::Refresh { collector: "ebs" },
            ])),
        );
        check(
            r#"{"source":"aws.ec2","detail-type":"EC2 Instance State-change Notification","resources":[],"detail":{"state":"running"}}"#,
            Ok(Some(vec![Change::Refresh { collector: "ec2" }, Change::Refresh { collector: "ebs" }])),
        );
        check(
            r#"{"source":"aws.s3","detail-type":"AWS API Call via CloudTrail","resources":["arn:aws:s3:::b"],"detail":{"eventName":"DeleteBucket"}}"#,
            Ok(Some(vec![Change::Terminated { arn: "arn:aws:s3:::b".into() }, Change::Refresh { collector: "s3" }])),
        );
        check(r#"{"source":"aws.kms","detail-type":"x","detail":{}}"#, Ok(None));
        check("not json", Err(EventError::NotJson { found: "not json".into() }));
        check(
            r#"{"source":"aws.ec2","detail":{}}"#,
            Err(EventError::Field { field: "detail-type", expected: "a string" }),
        );
        check(
            r#"{"source":"aws.ec2","detail-type":"x","detail":[]}"#,
            Err(EventError::Field { field: "detail", expected: "an object" }),
        );
    }
}
