//! Integration tests of the web dashboard and the Grafana dashboards against
//! the real PostgreSQL (one throwaway database per test). Set
//! CANOPY_TEST_ADMIN_URL to point elsewhere than
//! postgres://postgres@127.0.0.1:5432/postgres.

mod agent_status;
mod grafana_sql;
mod org;
mod served;
#[allow(dead_code)]
#[path = "../it/support.rs"]
mod support;
