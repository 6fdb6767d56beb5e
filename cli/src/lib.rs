//! Library behind the `canopy` binary: every subcommand lives here so it can
//! be tested without spawning a process.
#![forbid(unsafe_code)]

pub mod cli;
pub mod demo;
pub mod estimate;
pub mod output;
pub mod process_stats;
pub mod simulate;
