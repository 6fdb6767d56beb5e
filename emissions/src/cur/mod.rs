//! Estimating AWS Cost and Usage Reports with two methodologies:
//! [`Methodology::Ccf`] reproduces Cloud Carbon Footprint exactly;
//! [`Methodology::Canopy`] (default) fixes its defects (see `docs/methodology.md`).
//!
//! Feed [`CurLine`]s to a [`CurEstimator`] (fast, grouping only), then call
//! [`CurEstimator::finish`] for a [`CurEstimate`].

mod aggregate;
mod canopy;
mod ccf;
mod classify;
mod engine;
mod intern;
mod line;
mod options;
mod output;
mod sum;

pub use engine::CurEstimator;
pub use line::CurLine;
pub use options::{CanopySettings, DEFAULT_MAX_GROUPS_IN_MEMORY, EstimateOptions, Methodology, ParseOptionError, Period};
pub use output::{CurEstimate, EstimateRow, EstimateSummary, NotEstimatedReason, ReasonTotals};
