//! Deterministic synthetic CUR data.
//!
//! [`Generator`] yields [`GeneratedRow`]s from a [`GeneratorConfig`]; the
//! writers in [`write`] put the same rows into every format (legacy CSV,
//! Athena CSV, CUR 2.0 CSV and Parquet, each CSV optionally gzipped). Values
//! are written with Rust's shortest round-trip float formatting, so every
//! format carries bit-identical numbers. The PRNG is SplitMix64
//! ([`rng::SplitMix64`]), defined here, so a seed always gives the same rows.

mod catalog;
mod parquet_write;
pub mod rng;
mod row;
pub mod write;

pub use row::{GeneratedRow, Generator, TagValue};
pub use write::{CsvStyle, write_csv, write_csv_gz, write_cur2_parquet};

use canopy_emissions::time::unix_seconds;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// PRNG seed; the same seed gives the same rows.
    pub seed: u64,
    /// Number of line items.
    pub rows: u64,
    /// Number of distinct usage accounts (at least 1).
    pub accounts: u32,
    /// Start of the first usage hour, Unix seconds (should be a whole hour).
    pub start_unix_s: i64,
    /// Number of days covered; rows are spread evenly over its hours.
    pub days: u32,
}

impl Default for GeneratorConfig {
    /// 1,000 rows over three days of October 2023 in two accounts.
    fn default() -> Self {
        GeneratorConfig { seed: 1, rows: 1_000, accounts: 2, start_unix_s: unix_seconds(2023, 10, 1, 0, 0, 0), days: 3 }
    }
}

/// The configuration of the sample files under `samples/cur/`.
pub fn sample_config() -> GeneratorConfig {
    GeneratorConfig { seed: 2023_10, rows: 2_000, accounts: 2, start_unix_s: unix_seconds(2023, 10, 1, 0, 0, 0), days: 3 }
}
