//! Integration tests of canopy-agent: moto in server mode (started per
//! test on a free port), a fault-injecting proxy, the simulated source and
//! the CLI.

mod cli;
mod collect;
mod faults;
mod moto;
mod proxy;
mod revisions;
mod services;
