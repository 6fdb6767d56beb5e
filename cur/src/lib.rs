//! Streaming readers and a deterministic generator for AWS Cost and Usage
//! Report (CUR) files.
//!
//! Readers accept legacy CUR CSV (`lineItem/UsageType` headers), Athena-style
//! snake_case CSV and Parquet, and CUR 2.0 / Data Exports CSV and Parquet
//! (with the `product` and `resource_tags` map columns), plain or gzipped.
//! Every row is handed to a sink as a borrowed
//! [`canopy_emissions::cur::CurLine`]; memory does not grow with file size.
//!
//! - [`read_file`]: one file, format from its name.
//! - [`read_reader`]: CSV from any reader.
//! - [`plan_csv_chunks`] + [`read_csv_chunk`]: one plain CSV file split into
//!   byte ranges for parallel reading.
//! - [`expand_inputs`]: files and folders (as AWS delivers them) into a
//!   sorted list of data files.
//! - [`generate`]: deterministic synthetic CUR data in every format.
#![forbid(unsafe_code)]

mod chunks;
mod columns;
mod csv_read;
mod csv_row;
mod error;
pub mod generate;
mod inputs;
mod json_map;
mod options;
mod parquet_read;
pub mod parse;
mod read;
mod records;
pub mod tag;

pub use chunks::{CsvChunk, plan_csv_chunks, read_csv_chunk};
pub use columns::HeaderStyle;
pub use csv_read::read_reader;
pub use error::{BadRow, CurError, RowPosition};
pub use inputs::{FileKind, expand_inputs};
pub use options::{FileStats, MAX_BAD_ROW_EXAMPLES, ReadOptions};
pub use parquet_read::BATCH_ROWS;
pub use read::read_file;
