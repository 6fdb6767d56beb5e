//! Where a cycle's records go: the durable outbox ([`crate::deliver`]),
//! and for debugging a JSON-lines spool file; [`Sinks`] feeds several.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cycle::{Agent, CycleOutput};
use crate::metrics::Metrics;
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
    /// The outbox could not store the cycle.
    #[error("cannot append to the outbox at {path}: {source}")]
    Outbox {
        /// Outbox folder.
        path: PathBuf,
        /// The outbox's error (boxed: it is large and this path is cold).
        source: Box<canopy_outbox::OutboxError>,
    },
}

/// Takes each cycle's records.
pub trait Sink {
    /// Accepts one cycle's output (`agent` gives the inventory and account
    /// the records belong to); returns once it is durably handed over.
    fn accept(&mut self, output: &CycleOutput, agent: &Agent) -> Result<(), SinkError>;

    /// Copies the sink's own figures into `metrics` (before they are rendered).
    fn export_metrics(&self, _metrics: &Metrics) {}
}

/// Several sinks fed in order; the first failure stops the cycle.
#[derive(Default)]
pub struct Sinks(pub Vec<Box<dyn Sink + Send>>);

impl Sink for Sinks {
    fn accept(&mut self, output: &CycleOutput, agent: &Agent) -> Result<(), SinkError> {
        self.0.iter_mut().try_for_each(|s| s.accept(output, agent))
    }

    fn export_metrics(&self, metrics: &Metrics) {
        for s in &self.0 {
            s.export_metrics(metrics);
        }
    }
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
    fn accept(&mut self, output: &CycleOutput, _agent: &Agent) -> Result<(), SinkError> {
        let io = |source| SinkError::Io { path: self.path.clone(), source };
        let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(io)?;
        let mut w = BufWriter::new(file);
        write_jsonl(&mut w, output).map_err(io)?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_data().map_err(io)
    }
}
