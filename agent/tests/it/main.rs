//! Integration tests of canopy-agent: moto in server mode (started per
//! test on a free port), a fault-injecting proxy, the simulated source,
//! the CLI, and `run` delivering over the outbox and QUIC into PostgreSQL.

mod cli;
mod collect;
mod delivery;
mod faults;
mod moto;
mod proxy;
mod revisions;
mod services;
