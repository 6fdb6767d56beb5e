//! Integration tests of canopy-cur: every format, every error, chunks,
//! folders and the committed samples.

mod chunks;
mod errors;
mod formats;
mod inputs;
mod parquet;
mod samples;
mod support;
