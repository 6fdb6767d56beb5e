//! Streaming CSV reading: one reused [`ByteRecord`], a mapper built from the
//! header, rows handed to the sink one at a time. Memory does not grow with
//! the file.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use canopy_emissions::cur::CurLine;
use crate::records::RecordReader;

use crate::csv_row::CsvRowMapper;
use crate::error::{BadRow, CurError, RowPosition};
use crate::options::{FileStats, ReadOptions};

/// Read buffer of the CSV parser.
const CSV_BUFFER_BYTES: usize = 1 << 17;

/// Reads CUR CSV (any header style) from `reader`; `path` only names the
/// source in errors. The first record must be the header.
pub fn read_reader<R: Read>(
    reader: R,
    path: &Path,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(&CurLine<'_>),
) -> Result<FileStats, CurError> {
    read_stream(reader, path, false, opts, sink)
}

pub(crate) fn read_csv_file(
    path: &Path,
    gzip: bool,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(&CurLine<'_>),
) -> Result<FileStats, CurError> {
    let file = File::open(path).map_err(|e| CurError::io(path, e))?;
    if gzip {
        let decoder = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file));
        read_stream(decoder, path, true, opts, sink)
    } else {
        read_stream(file, path, false, opts, sink)
    }
}

fn read_stream<R: Read>(
    reader: R,
    path: &Path,
    gzip: bool,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(&CurLine<'_>),
) -> Result<FileStats, CurError> {
    let mut records = RecordReader::new(reader);
    let source = Source { path, gzip };
    let names = match records.next_record().map_err(|e| source.io_error(e))? {
        Some(header) => header.to_strings(),
        None => {
            return Err(CurError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
    };
    let mut mapper = CsvRowMapper::new(names, opts.tag_key.as_deref(), path)?;
    read_records(&mut records, &mut mapper, &source, opts, &mut LineBase::Known(0), sink)
}

pub(crate) fn csv_reader<R: Read>(reader: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(CSV_BUFFER_BYTES)
        .from_reader(reader)
}

/// The file a reader works on, for error messages.
pub(crate) struct Source<'p> {
    pub path: &'p Path,
    pub gzip: bool,
}

/// Number of physical lines that precede what the CSV reader sees: zero for
/// a whole file, found lazily (only when an error must be reported) for a
/// chunk by counting newlines before its first byte.
pub(crate) enum LineBase {
    Known(u64),
    BeforeByte(u64),
}

impl LineBase {
    fn lines_before(&mut self, path: &Path) -> Result<u64, CurError> {
        if let LineBase::BeforeByte(offset) = *self {
            let count = count_newlines(path, offset)?;
            *self = LineBase::Known(count);
        }
        match *self {
            LineBase::Known(count) => Ok(count),
            LineBase::BeforeByte(_) => unreachable!("resolved above"),
        }
    }
}

fn count_newlines(path: &Path, end: u64) -> Result<u64, CurError> {
    let file = File::open(path).map_err(|e| CurError::io(path, e))?;
    let mut limited = file.take(end);
    let mut buf = vec![0u8; 1 << 16];
    let mut count = 0u64;
    loop {
        let n = limited.read(&mut buf).map_err(|e| CurError::io(path, e))?;
        if n == 0 {
            return Ok(count);
        }
        count += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

impl Source<'_> {
    /// An I/O error while reading records (a gzip error when the file is gzipped).
    pub fn io_error(&self, source: std::io::Error) -> CurError {
        if self.gzip {
            CurError::Gzip { path: self.path.to_path_buf(), source }
        } else {
            CurError::io(self.path, source)
        }
    }

    /// Reads the next record; `Ok(false)` at the end.
    pub fn read<R: Read>(
        &self,
        rdr: &mut csv::Reader<R>,
        rec: &mut csv::ByteRecord,
        base: &mut LineBase,
    ) -> Result<bool, CurError> {
        rdr.read_byte_record(rec).map_err(|err| self.csv_error(err, base))
    }

    fn csv_error(&self, err: csv::Error, base: &mut LineBase) -> CurError {
        let line = err.position().map_or(0, csv::Position::line);
        if !err.is_io_error() {
            let message = err.to_string();
            return match base.lines_before(self.path) {
                Ok(before) => CurError::Csv {
                    path: self.path.to_path_buf(),
                    position: RowPosition::Line(before + line),
                    message,
                },
                Err(e) => e,
            };
        }
        match err.into_kind() {
            csv::ErrorKind::Io(source) if self.gzip => CurError::Gzip {
                path: self.path.to_path_buf(),
                source,
            },
            csv::ErrorKind::Io(source) => CurError::io(self.path, source),
            other => CurError::Csv {
                path: self.path.to_path_buf(),
                position: RowPosition::Line(line),
                message: format!("{other:?}"),
            },
        }
    }
}

/// Reads every remaining record into the sink.
pub(crate) fn read_records<R: Read>(
    records: &mut RecordReader<R>,
    mapper: &mut CsvRowMapper,
    source: &Source<'_>,
    opts: &ReadOptions,
    base: &mut LineBase,
    sink: &mut dyn FnMut(&CurLine<'_>),
) -> Result<FileStats, CurError> {
    let mut stats = FileStats {
        header_style: Some(mapper.style()),
        ..FileStats::default()
    };
    // Examples are collected with chunk-relative lines, fixed up at the end.
    let mut relative_examples: Vec<BadRow> = Vec::new();
    while let Some(rec) = records.next_record().map_err(|e| source.io_error(e))? {
        let relative_line = rec.line();
        match mapper.map(&rec) {
            Ok(line) => {
                sink(&line);
                stats.rows_read += 1;
            }
            Err(field) => {
                let row = BadRow {
                    position: RowPosition::Line(relative_line),
                    column: field.column,
                    message: field.message,
                };
                if !opts.skip_bad_rows {
                    let before = base.lines_before(source.path)?;
                    return Err(CurError::BadRow {
                        path: source.path.to_path_buf(),
                        row: shift(row, before),
                    });
                }
                stats.bad_rows_skipped += 1;
                if relative_examples.len() < crate::options::MAX_BAD_ROW_EXAMPLES {
                    relative_examples.push(row);
                }
            }
        }
    }
    if !relative_examples.is_empty() {
        let before = base.lines_before(source.path)?;
        stats.bad_row_examples = relative_examples
            .into_iter()
            .map(|r| shift(r, before))
            .collect();
    }
    Ok(stats)
}

fn shift(mut row: BadRow, lines_before: u64) -> BadRow {
    if let RowPosition::Line(n) = row.position {
        row.position = RowPosition::Line(n + lines_before);
    }
    row
}
