//! Where a cycle's records go. For now a JSON-lines spool file; the durable
//! outbox plugs in behind the same trait.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cycle::CycleOutput;
use crate::records::{emission_json, resource_json};

/// Why a sink could not take a cycle's records.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing the file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Takes each cycle's records.
pub trait Sink {
    /// Accepts one cycle's output; returns once it is durably handed over.
    fn accept(&mut self, output: &CycleOutput) -> Result<(), SinkError>;
}

/// Writes `output` as JSON lines (inventory records, then emission records).
pub fn write_jsonl(out: &mut dyn Write, output: &CycleOutput) -> std::io::Result<()> {
    for (record, attributes) in &output.resources {
        serde_json::to_writer(&mut *out, &resource_json(record, attributes))?;
        out.write_all(b"\n")?;
    }
    for record in &output.emissions {
        serde_json::to_writer(&mut *out, &emission_json(record))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Appends each cycle to a JSON-lines file and syncs it.
#[derive(Debug, Clone)]
pub struct JsonlSpool {
    path: PathBuf,
}

impl JsonlSpool {
    /// A spool appending to `path`.
    pub fn new(path: &Path) -> JsonlSpool {
        JsonlSpool { path: path.to_owned() }
    }
}

impl Sink for JsonlSpool {
    fn accept(&mut self, output: &CycleOutput) -> Result<(), SinkError> {
        let io = |source| SinkError::Io { path: self.path.clone(), source };
        let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?;
        let mut w = BufWriter::new(file);
        write_jsonl(&mut w, output).map_err(io)?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_data().map_err(io)
    }
}
