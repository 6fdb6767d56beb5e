//! Delivery fault suite (issue #4 §4): the ingest handler in process, then
//! fault scenarios over real aggregator and simulated-agent processes with
//! PostgreSQL. Needs PostgreSQL at `CANOPY_TEST_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Run:
//! `cargo test -p canopy-e2e --test fault -- --nocapture` (prints the table).
#![forbid(unsafe_code)]

mod delivery;
mod private_pg;
mod proxy;
mod scenarios;
mod small_disk;
mod support;
