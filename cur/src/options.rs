//! What callers choose about a read and what a read reports back.

use crate::columns::HeaderStyle;
use crate::error::BadRow;

/// How many rejected rows are kept as examples in [`FileStats`].
pub const MAX_BAD_ROW_EXAMPLES: usize = 10;

/// Choices that apply to every file of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// User tag to group by, as the user types it: `Team` or `user:Team`
    /// (`aws:createdBy` for AWS-generated tags). Mapped to each format's
    /// column or map key; see [`crate::tag::TagKey`].
    pub tag_key: Option<String>,
    /// Count and report malformed rows instead of stopping at the first one.
    pub skip_bad_rows: bool,
}

/// What one read delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Rows handed to the sink (rows that were read successfully).
    pub rows_read: u64,
    /// Rows rejected and skipped (only with `skip_bad_rows`).
    pub bad_rows_skipped: u64,
    /// The first [`MAX_BAD_ROW_EXAMPLES`] rejected rows, in file order.
    pub bad_row_examples: Vec<BadRow>,
    /// Header style detected from the header row or schema.
    pub header_style: Option<HeaderStyle>,
}

impl FileStats {
    /// Adds the counts of `other` (a later part of the input) to `self`,
    /// keeping at most [`MAX_BAD_ROW_EXAMPLES`] examples.
    pub fn merge(&mut self, other: FileStats) {
        self.rows_read += other.rows_read;
        self.bad_rows_skipped += other.bad_rows_skipped;
        self.header_style = self.header_style.or(other.header_style);
        for example in other.bad_row_examples {
            if self.bad_row_examples.len() >= MAX_BAD_ROW_EXAMPLES {
                break;
            }
            self.bad_row_examples.push(example);
        }
    }

    pub(crate) fn record_bad_row(&mut self, row: BadRow) {
        self.bad_rows_skipped += 1;
        if self.bad_row_examples.len() < MAX_BAD_ROW_EXAMPLES {
            self.bad_row_examples.push(row);
        }
    }
}
