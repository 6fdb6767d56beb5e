//! Canopy's estimation model: energy (kWh) and emissions (CO2e) of AWS usage.
//!
//! **This crate does no I/O and no async.** Coefficient tables are compiled in
//! (`include_str!` of the CSVs in `data/`) and parsed once; every input arrives
//! as a value and every result leaves as a value. Agent, aggregator and CLI
//! share it, so one resource gives the same figure wherever it is computed.
//!
//! Units are part of every name: `_kwh`, `_w`, `_g_co2e`, `_kg_co2e`,
//! `_vcpu_hours`, `_gb_hours`, `_tb_hours`.
#![forbid(unsafe_code)]

pub mod coefficients;
pub mod cur;
pub(crate) mod csv_text;
pub mod grid;
pub mod model;
pub mod time;
pub mod units;
