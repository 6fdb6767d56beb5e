//! Errors raised while importing or configuring grid data.

/// An import or configuration error; messages name what was expected and
/// what was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GridError {
    /// The text has no header line.
    #[error("expected a header line, found empty input")]
    EmptyInput,
    /// A required column is neither named nor at its usual position.
    #[error("expected a column {expected:?} (or at position {position}), found header {found:?}")]
    MissingColumn {
        /// Column name expected.
        expected: &'static str,
        /// 1-based position used as a fallback.
        position: usize,
        /// The header as read.
        found: String,
    },
    /// A line has too few fields.
    #[error("line {line}: expected at least {expected} fields, found {found}")]
    ShortLine {
        /// 1-based line number.
        line: usize,
        /// Fields needed.
        expected: usize,
        /// Fields present.
        found: usize,
    },
    /// A field could not be parsed.
    #[error("line {line}, column {column}: expected {expected}, found {found:?}")]
    BadField {
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// What the field should hold.
        expected: &'static str,
        /// The text found.
        found: String,
    },
    /// A line is not valid CSV (e.g. an unterminated quote).
    #[error("{0}")]
    Csv(#[from] crate::csv_text::CsvError),
    /// A market configuration value is out of range.
    #[error("region {region}: expected {expected}, found {found}")]
    BadMarketValue {
        /// The region being configured.
        region: String,
        /// The accepted range.
        expected: &'static str,
        /// The value given.
        found: f64,
    },
}
