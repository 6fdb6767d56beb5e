//! Canopy's per-account agent: discovers resources and utilisation in its
//! own AWS account and region through the AWS SDK, within API and cost
//! budgets, and precomputes emission records with `canopy-emissions`.
//!
//! Map: [`config`] (typed `agent.toml` + environment), [`collectors`] (one
//! module per service, IAM actions declared beside each), [`aws`] (SDK
//! setup, per-API token buckets, retries, call metrics), [`utilisation`]
//! (CloudWatch GetMetricData batching and the measured-point store),
//! [`estimate`] (records), [`cycle`] (one cycle), [`changes`] (SQS
//! change events), [`simulated`] (synthetic source), [`sink`] and
//! [`records`] (the edge to protocol types and JSON lines), [`deliver`]
//! (outbox sink, enrolment, QUIC sender), [`run`].
//!
//! **Agent domain types are not `Serialize`**: only protocol records and the
//! JSON debug lines built from them leave the process.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod aws;
pub mod build;
pub mod changes;
pub mod collectors;
pub mod config;
pub mod cost;
pub mod cycle;
pub mod deliver;
pub mod env;
pub mod estimate;
pub mod inventory;
pub mod metrics;
pub mod rates;
pub mod records;
pub mod run;
pub mod simulated;
pub mod sink;
pub mod utilisation;
