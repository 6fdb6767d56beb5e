//! Reading one plain CSV file in byte-range chunks, so several threads can
//! share the parsing work.
//!
//! Chunk boundaries are placed just after a newline. A newline inside a
//! quoted field would make such a split unsafe. AWS does not write line
//! breaks inside CUR values (tag values cannot contain them and descriptions
//! are single-line), but the planner does not rely on that: around every
//! chosen boundary it checks that the line before and the line after are
//! each a complete record (balanced quotes, as many fields as the header).
//! If any check fails, the whole file becomes a single chunk.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use canopy_emissions::cur::CurLine;
use csv::ByteRecord;

use crate::csv_read::{LineBase, Source, csv_reader, read_records};
use crate::records::RecordReader;
use crate::csv_row::CsvRowMapper;
use crate::error::CurError;
use crate::options::{FileStats, ReadOptions};

/// Bytes examined on each side of a proposed boundary.
const WINDOW_BYTES: u64 = 1 << 16;
/// Files smaller than this are never split: threads would cost more than they save.
const MIN_CHUNK_BYTES: u64 = 1 << 20;

/// A byte range of data rows of one plain CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvChunk {
    /// The CSV file.
    pub path: PathBuf,
    /// Position of the chunk in the file, from 0.
    pub index: usize,
    /// First byte of the chunk (start of a data row).
    pub start_byte: u64,
    /// One past the last byte of the chunk.
    pub end_byte: u64,
}

/// Splits the data rows of a plain (uncompressed) CSV file into at most `n`
/// chunks of similar size, each starting at a record boundary. Returns a
/// single chunk when `n <= 1`, the file is small, or a boundary looks unsafe.
pub fn plan_csv_chunks(path: &Path, n: usize) -> Result<Vec<CsvChunk>, CurError> {
    let mut file = File::open(path).map_err(|e| CurError::io(path, e))?;
    let len = file.metadata().map_err(|e| CurError::io(path, e))?.len();
    let (data_start, field_count) = header_extent(&mut file, path)?;
    let chunk = |index, start_byte, end_byte| CsvChunk {
        path: path.to_path_buf(),
        index,
        start_byte,
        end_byte,
    };
    let data_len = len.saturating_sub(data_start);
    let n = n.max(1).min(
        usize::try_from(data_len / MIN_CHUNK_BYTES)
            .unwrap_or(usize::MAX)
            .max(1),
    );
    if n == 1 {
        return Ok(vec![chunk(0, data_start, len)]);
    }
    let mut boundaries = vec![data_start];
    for k in 1..n as u64 {
        let target = data_start + data_len * k / n as u64;
        match safe_boundary(&mut file, path, target, data_start, len, field_count)? {
            Some(b) if b > *boundaries.last().unwrap_or(&0) && b < len => boundaries.push(b),
            Some(_) => {}
            None => return Ok(vec![chunk(0, data_start, len)]),
        }
    }
    boundaries.push(len);
    Ok(boundaries
        .windows(2)
        .enumerate()
        .map(|(i, w)| chunk(i, w[0], w[1]))
        .collect())
}

/// Byte offset where data rows start, and the header's field count.
fn header_extent(file: &mut File, path: &Path) -> Result<(u64, usize), CurError> {
    let mut rdr = csv_reader(&mut *file);
    let mut header = ByteRecord::new();
    let source = Source { path, gzip: false };
    if !source.read(&mut rdr, &mut header, &mut LineBase::Known(0))? {
        return Err(CurError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok((rdr.position().byte(), header.len()))
}

/// The first record start at or after `target`, or `None` when the lines
/// around it are not clearly complete records.
fn safe_boundary(
    file: &mut File,
    path: &Path,
    target: u64,
    data_start: u64,
    len: u64,
    field_count: usize,
) -> Result<Option<u64>, CurError> {
    let window_start = target.saturating_sub(WINDOW_BYTES).max(data_start);
    let window_end = (target + WINDOW_BYTES).min(len);
    let mut window = vec![0u8; (window_end - window_start) as usize];
    file.seek(SeekFrom::Start(window_start))
        .map_err(|e| CurError::io(path, e))?;
    file.read_exact(&mut window)
        .map_err(|e| CurError::io(path, e))?;
    let at = (target - window_start) as usize;
    let Some(newline) = window[at.saturating_sub(1)..]
        .iter()
        .position(|&b| b == b'\n')
    else {
        return Ok(None);
    };
    let newline = at.saturating_sub(1) + newline;
    let before_start = match window[..newline].iter().rposition(|&b| b == b'\n') {
        Some(p) => p + 1,
        None if window_start == data_start => 0,
        None => return Ok(None),
    };
    let after_end = match window[newline + 1..].iter().position(|&b| b == b'\n') {
        Some(p) => newline + 1 + p,
        None if window_end == len => window.len(),
        None => return Ok(None),
    };
    let complete = |line: &[u8]| is_complete_record(line, field_count);
    let after = &window[newline + 1..after_end];
    if !complete(&window[before_start..newline]) || (!after.is_empty() && !complete(after)) {
        return Ok(None);
    }
    Ok(Some(window_start + newline as u64 + 1))
}

fn is_complete_record(line: &[u8], field_count: usize) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().filter(|&&b| b == b'"').count() % 2 != 0 {
        return false;
    }
    let mut rdr = csv_reader(line);
    let mut rec = ByteRecord::new();
    matches!(rdr.read_byte_record(&mut rec), Ok(true))
        && rec.len() == field_count
        && matches!(rdr.read_byte_record(&mut rec), Ok(false))
}

/// Reads the rows of one chunk into the sink. Column mapping comes from the
/// file's header; line numbers in errors and examples are those of the whole file.
pub fn read_csv_chunk(
    chunk: &CsvChunk,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(&CurLine<'_>),
) -> Result<FileStats, CurError> {
    let path = chunk.path.as_path();
    let mut file = File::open(path).map_err(|e| CurError::io(path, e))?;
    let source = Source { path, gzip: false };
    let mut header = ByteRecord::new();
    {
        let mut rdr = csv_reader(&mut file);
        if !source.read(&mut rdr, &mut header, &mut LineBase::Known(0))? {
            return Err(CurError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
    }
    let names = header.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
    let mut mapper = CsvRowMapper::new(names, opts.tag_key.as_deref(), path)?;
    file.seek(SeekFrom::Start(chunk.start_byte))
        .map_err(|e| CurError::io(path, e))?;
    let mut records = RecordReader::new(file.take(chunk.end_byte.saturating_sub(chunk.start_byte)));
    let mut base = LineBase::BeforeByte(chunk.start_byte);
    read_records(
        &mut records,
        &mut mapper,
        &source,
        opts,
        &mut base,
        sink,
    )
}
