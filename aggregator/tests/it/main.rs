//! Integration tests against the real PostgreSQL (one throwaway database per
//! test). Set CANOPY_TEST_ADMIN_URL to point elsewhere than
//! postgres://postgres@127.0.0.1:5432/postgres. CANOPY_TEST_TIMESCALEDB_URL
//! (the admin URL of a server with TimescaleDB preloaded) enables the tests
//! that compare both storage paths; with CANOPY_TEST_STORAGE=timescaledb as
//! well, the whole suite runs on the TimescaleDB path and the native-only
//! tests print why they skip (`scripts/test.sh` runs it both ways).

mod alerts;
mod attribution;
mod authz;
mod bench;
mod coarsening;
mod db_tls;
mod factors;
mod dev_ca;
mod grpc_api;
mod hostile;
mod http_api;
mod ingest;
mod migrations;
mod openapi;
mod org_rollups;
mod organizations;
mod past_retention;
mod queries;
mod query_flood;
mod realtime;
mod restatement;
mod retention;
mod retention_ingest;
mod snapshot;
mod storage;
mod support;
