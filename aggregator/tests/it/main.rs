//! Integration tests against the real PostgreSQL (one throwaway database per
//! test). Set CANOPY_TEST_ADMIN_URL to point elsewhere than
//! postgres://postgres@127.0.0.1:5432/postgres.

mod attribution;
mod bench;
mod grpc_api;
mod hostile;
mod http_api;
mod ingest;
mod migrations;
mod org_rollups;
mod organizations;
mod queries;
mod realtime;
mod retention;
mod retention_ingest;
mod support;
