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
    /// Number of billed resources (instances, volumes, buckets, functions …);
    /// every usage line belongs to one of them, as in a real CUR, where a
    /// resource bills a line per hour. `0` picks [`GeneratorConfig::fleet_size`]'s
    /// default.
    pub resources: u32,
}

impl GeneratorConfig {
    /// Resources billed: `resources`, or by default enough for about one line
    /// per resource and hour, at least 400 (or one per 10 rows in small files)
    /// so that small files still show every kind of usage.
    pub fn fleet_size(&self) -> usize {
        if self.resources > 0 {
            return self.resources as usize;
        }
        let hours = u64::from(self.days.max(1)) * 24;
        let per_hour = self.rows.div_ceil(hours);
        per_hour.max(400.min(self.rows / 10)).max(1) as usize
    }
}

impl Default for GeneratorConfig {
    /// 1,000 rows over three days of October 2023 in two accounts.
    fn default() -> Self {
        GeneratorConfig {
            seed: 1,
            rows: 1_000,
            accounts: 2,
            start_unix_s: unix_seconds(2023, 10, 1, 0, 0, 0),
            days: 3,
            resources: 0,
        }
    }
}

/// The configuration of the sample files under `samples/cur/`.
pub fn sample_config() -> GeneratorConfig {
    GeneratorConfig {
        seed: 202_310,
        rows: 2_000,
        accounts: 2,
        start_unix_s: unix_seconds(2023, 10, 1, 0, 0, 0),
        days: 3,
        resources: 0,
    }
}

/// The format of one sample file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// Plain CSV in a header style.
    Csv(CsvStyle),
    /// Gzipped CSV in a header style.
    CsvGz(CsvStyle),
    /// CUR 2.0 Parquet.
    Cur2Parquet,
}

/// The sample files committed under `samples/cur/`: name and format. All
/// hold the rows of [`sample_config`].
pub const SAMPLE_FILES: &[(&str, SampleFormat)] = &[
    ("sample-legacy.csv", SampleFormat::Csv(CsvStyle::Legacy)),
    (
        "sample-legacy.csv.gz",
        SampleFormat::CsvGz(CsvStyle::Legacy),
    ),
    ("sample-athena.csv", SampleFormat::Csv(CsvStyle::Athena)),
    ("sample-cur2.csv", SampleFormat::Csv(CsvStyle::Cur2)),
    ("sample-cur2.parquet", SampleFormat::Cur2Parquet),
];

/// Writes the rows of `config` in `format`; returns the row count.
pub fn write_format<W: std::io::Write + Send>(
    config: &GeneratorConfig,
    format: SampleFormat,
    out: W,
) -> std::io::Result<u64> {
    match format {
        SampleFormat::Csv(style) => write_csv(config, style, out),
        SampleFormat::CsvGz(style) => write_csv_gz(config, style, out),
        SampleFormat::Cur2Parquet => write_cur2_parquet(config, out).map_err(std::io::Error::other),
    }
}
