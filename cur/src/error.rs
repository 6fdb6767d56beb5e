//! The one error type of the crate and the description of a rejected row.

use std::fmt;
use std::path::PathBuf;

/// Where a row sits in its file: a physical line of a CSV file (the header is
/// line 1) or a 1-based data row of a Parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPosition {
    /// 1-based physical line of a CSV file; the header row is line 1.
    Line(u64),
    /// 1-based data row of a Parquet file (Parquet has no lines).
    Row(u64),
}

impl fmt::Display for RowPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowPosition::Line(n) => write!(f, "line {n}"),
            RowPosition::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// One row that could not be read: where it is, which column, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Position of the row in its file.
    pub position: RowPosition,
    /// Column name exactly as it appears in the file's header or schema.
    pub column: String,
    /// What was expected and what was found, e.g. `expected a number, found "abc"`.
    pub message: String,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.position, self.column, self.message)
    }
}

/// Everything that can go wrong while finding, opening or reading CUR files.
#[derive(Debug, thiserror::Error)]
pub enum CurError {
    /// The file or folder could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// File or folder that failed.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A `.gz` file ended early or holds bytes that are not gzip.
    #[error("{}: gzip stream is truncated or corrupt: {source}", path.display())]
    Gzip {
        /// Compressed file.
        path: PathBuf,
        /// Error reported by the decompressor.
        source: std::io::Error,
    },
    /// The file has no header row at all.
    #[error("{}: empty file, expected a CUR header row", path.display())]
    EmptyFile {
        /// The empty file.
        path: PathBuf,
    },
    /// A column every CUR style must have is missing from the header or schema.
    #[error("{}: missing required column {column} (detected header style: {style})", path.display())]
    MissingColumn {
        /// The file whose header lacks the column.
        path: PathBuf,
        /// Name of the missing column in the detected style.
        column: String,
        /// Header style detected from the other column names.
        style: &'static str,
    },
    /// A row could not be read (bad number, bad date, wrong field count...).
    #[error("{}: {row}", path.display())]
    BadRow {
        /// File holding the row.
        path: PathBuf,
        /// Position, column and reason.
        row: BadRow,
    },
    /// The CSV layer itself failed (for example invalid quoting).
    #[error("{}: {position}: malformed csv: {message}", path.display())]
    Csv {
        /// CSV file.
        path: PathBuf,
        /// Where the parser stopped.
        position: RowPosition,
        /// Parser message.
        message: String,
    },
    /// The Parquet file is unreadable (not Parquet, truncated, corrupt page...).
    #[error("{}: expected a readable parquet file: {message}", path.display())]
    Parquet {
        /// Parquet file.
        path: PathBuf,
        /// Error reported by the Parquet/Arrow reader.
        message: String,
    },
    /// A Parquet column has a type the reader cannot interpret for its role.
    #[error("{}: column {column}: expected {expected}, found type {found}", path.display())]
    ColumnType {
        /// Parquet file.
        path: PathBuf,
        /// Column name.
        column: String,
        /// What the reader accepts for this column.
        expected: &'static str,
        /// Arrow data type found.
        found: String,
    },
    /// The file name does not say which CUR format it holds.
    #[error("{}: unknown file type, expected .csv, .csv.gz, .gz or .parquet", path.display())]
    UnknownFormat {
        /// File with the unrecognised name.
        path: PathBuf,
    },
    /// A folder given as input holds no CUR data files.
    #[error("{}: folder holds no cur files, expected *.csv, *.csv.gz, *.gz or *.parquet", path.display())]
    NoInputFiles {
        /// The folder.
        path: PathBuf,
    },
}

impl CurError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CurError::Io {
            path: path.into(),
            source,
        }
    }
}
