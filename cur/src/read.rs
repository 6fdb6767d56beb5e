//! The entry point for reading one CUR file of any supported format.

use std::path::Path;

use canopy_emissions::cur::CurLine;

use crate::csv_read::read_csv_file;
use crate::error::CurError;
use crate::inputs::FileKind;
use crate::options::{FileStats, ReadOptions};
use crate::parquet_read::read_parquet_file;

/// Reads every row of one CUR file into `sink`, streaming.
///
/// The format comes from the file name ([`FileKind::of`]) and the header
/// style from the header row or Parquet schema. A malformed row stops the
/// read with [`CurError::BadRow`] unless `opts.skip_bad_rows` is set, in
/// which case it is counted in the returned [`FileStats`].
pub fn read_file(
    path: &Path,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(&CurLine<'_>),
) -> Result<FileStats, CurError> {
    match FileKind::of(path) {
        Some(FileKind::Csv) => read_csv_file(path, false, opts, sink),
        Some(FileKind::CsvGz) => read_csv_file(path, true, opts, sink),
        Some(FileKind::Parquet) => read_parquet_file(path, opts, sink),
        None => Err(CurError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}
