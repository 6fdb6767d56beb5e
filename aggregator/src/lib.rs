//! The Canopy aggregator's storage and query layer.
//!
//! - [`auth`]: who may see what: OIDC JWTs, dashboard login, API tokens,
//!   roles and scopes, the audit log, the development mode.
//! - [`error_reply`]: generic error replies with a request id.
//! - [`alerts`]: carbon budgets, alert evaluation, the notification
//!   outbox and its PagerDuty, email and webhook delivery.
//! - [`bench`]: the storage scale benchmark.
//! - [`delivery`]: batch ingest over QUIC (validate, store in one
//!   transaction, commit, then acknowledge; quarantine what is refused).
//! - [`dev_ca`]: the development CA folder (key written with mode 0600).
//! - [`db`]: connecting to PostgreSQL, choosing the storage path
//!   (`--storage`) and applying the embedded migrations.
//! - [`directory`]: organisations, accounts and attribution settings.
//! - [`coarsened`]: hour-long group records (outbox coarsening) against the
//!   per-resource records of their hour, so each kWh counts once.
//! - [`fact_segments`]: native-mode storage of a batch's facts as columnar
//!   segments, revision-aware, with the rollup difference.
//! - [`model`]: the aggregator's own view of an ingested batch (facts and
//!   inventory), independent of the wire format.
//! - [`from_protocol`]: the wire batch to [`model::Batch`].
//! - [`ingest`]: [`ingest::store_batch`], idempotent per (agent, sequence),
//!   revision-aware upsert of facts with incremental rollup maintenance.
//! - [`maintenance`]: partitions ahead of time and retention.
//! - [`organizations`]: the AWS Organizations refresh of the directory and
//!   of the enrolment allow-list.
//! - [`query`]: the query layer (validated parameters, exact rollup choice,
//!   parameterised SQL).
//! - [`query_limits`]: the query side's own pool, statement timeout,
//!   request timeout and concurrency limit (so queries cannot starve ingest).
//! - [`route_table`]: a router that lists its routes (for the OpenAPI test).
//! - [`http`]: the HTTP/JSON API over [`query`].
//! - [`dashboard`]: the web dashboard and its JSON endpoints.
//! - [`grpc`]: the gRPC API (tonic), same semantics.
//! - [`restatement`]: a new factor set version restates the stored
//!   periods it prices differently, chunk by chunk, with a record.
//! - [`timescale`]: TimescaleDB path only: late data into the continuous
//!   aggregates.
#![forbid(unsafe_code)]

pub mod accounting;
pub mod auth;
pub mod alerts;
pub mod bench;
pub mod coarsened;
pub mod dashboard;
pub mod db;
pub mod delivery;
pub mod dev_ca;
pub mod directory;
pub mod error_reply;
pub mod factors;
pub mod fact_segments;
pub mod from_protocol;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod lineage;
pub mod maintenance;
pub mod model;
pub mod organizations;
pub mod plausibility;
pub mod query;
pub mod query_limits;
pub mod restatement;
pub mod route_table;
pub mod time;
pub mod timescale;
