//! A CSV record reader tuned for CUR files.
//!
//! CUR CSV lines almost never contain a quote: for such a line the fields are
//! found with `memchr` on the raw buffer, without copying. A line that holds a
//! quote (a quoted field, possibly spanning lines) is handed to `csv-core`,
//! which unescapes it into an owned buffer. Blank lines are skipped, `\r\n`
//! and `\n` both end a record, and every record reports the physical line it
//! starts on (1-based, counting from the first byte this reader saw).

use std::io::{self, Read};

use memchr::{memchr, memchr_iter};

const BUFFER_BYTES: usize = 1 << 18;

/// One record, borrowed from the reader until the next call.
pub(crate) struct Record<'a> {
    data: &'a [u8],
    /// `data` as text when the whole record is valid UTF-8 (checked once, so
    /// fields need no check of their own).
    text: Option<&'a str>,
    fields: &'a [(usize, usize)],
    line: u64,
}

impl<'a> Record<'a> {
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Bytes of field `i` (unescaped).
    pub fn field(&self, i: usize) -> &'a [u8] {
        let (start, end) = self.fields[i];
        &self.data[start..end]
    }

    /// Field `i` as text, or `None` when it is not valid UTF-8.
    pub fn field_str(&self, i: usize) -> Option<&'a str> {
        let (start, end) = self.fields[i];
        match self.text {
            // Field bounds sit next to ASCII commas or at the ends, so they are char boundaries.
            Some(text) => text.get(start..end),
            None => std::str::from_utf8(&self.data[start..end]).ok(),
        }
    }

    /// Physical line the record starts on, 1-based.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Every field as lossy text (for headers).
    pub fn to_strings(&self) -> Vec<String> {
        (0..self.len()).map(|i| String::from_utf8_lossy(self.field(i)).into_owned()).collect()
    }
}

/// Streams records out of any reader.
pub(crate) struct RecordReader<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    /// Lines fully consumed so far.
    lines_done: u64,
    fields: Vec<(usize, usize)>,
    core: csv_core::Reader,
    unescaped: Vec<u8>,
    ends: Vec<usize>,
}

impl<R: Read> RecordReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; BUFFER_BYTES],
            pos: 0,
            len: 0,
            eof: false,
            lines_done: 0,
            fields: Vec::with_capacity(128),
            core: csv_core::Reader::new(),
            unescaped: vec![0; 4096],
            ends: vec![0; 256],
        }
    }

    /// Moves unread bytes to the front and reads more; grows the buffer when
    /// a single record does not fit. Returns false at end of input.
    fn refill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        if self.len == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.len += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next record, or `None` at the end of input.
    pub fn next_record(&mut self) -> io::Result<Option<Record<'_>>> {
        loop {
            let rest = &self.buf[self.pos..self.len];
            let line_end = match memchr(b'\n', rest) {
                Some(n) => n,
                None if !self.eof => {
                    self.refill()?;
                    continue;
                }
                None if rest.is_empty() => return Ok(None),
                None => rest.len(),
            };
            let line = &rest[..line_end];
            if memchr(b'"', line).is_some() {
                return self.quoted_record();
            }
            let start = self.pos;
            self.pos = (self.pos + line_end + 1).min(self.len);
            self.lines_done += 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            self.fields.clear();
            let mut field_start = 0;
            // Commas are dense (a field every ~10 bytes), where a plain scan
            // beats memchr's per-call set-up.
            for (i, &byte) in line.iter().enumerate() {
                if byte == b',' {
                    self.fields.push((field_start, i));
                    field_start = i + 1;
                }
            }
            self.fields.push((field_start, line.len()));
            let data = &self.buf[start..start + line.len()];
            let text = std::str::from_utf8(data).ok();
            return Ok(Some(Record { data, text, fields: &self.fields, line: self.lines_done }));
        }
    }

    /// Parses one record that contains quotes with csv-core, reading more
    /// input until the record is complete.
    fn quoted_record(&mut self) -> io::Result<Option<Record<'_>>> {
        loop {
            self.core.reset();
            let input = &self.buf[self.pos..self.len];
            let (mut nin_total, mut nout, mut nend) = (0usize, 0usize, 0usize);
            let complete = loop {
                let (result, nin, n_out, n_end) = self.core.read_record(
                    &input[nin_total..],
                    &mut self.unescaped[nout..],
                    &mut self.ends[nend..],
                );
                nin_total += nin;
                nout += n_out;
                nend += n_end;
                match result {
                    csv_core::ReadRecordResult::OutputFull => {
                        let grown = self.unescaped.len() * 2;
                        self.unescaped.resize(grown, 0);
                    }
                    csv_core::ReadRecordResult::OutputEndsFull => {
                        let grown = self.ends.len() * 2;
                        self.ends.resize(grown, 0);
                    }
                    csv_core::ReadRecordResult::Record => break true,
                    csv_core::ReadRecordResult::End => break true,
                    csv_core::ReadRecordResult::InputEmpty if self.eof && nin_total == input.len() => {
                        // Tell csv-core the input is over so it finishes the last record.
                        let (result, _, _, n_end) =
                            self.core.read_record(&[], &mut self.unescaped[nout..], &mut self.ends[nend..]);
                        nend += n_end;
                        break matches!(result, csv_core::ReadRecordResult::Record);
                    }
                    csv_core::ReadRecordResult::InputEmpty => break false,
                }
            };
            if !complete {
                // Not enough input for the whole record: read more and start over.
                self.refill()?;
                continue;
            }
            let consumed = &self.buf[self.pos..self.pos + nin_total];
            let first_line = self.lines_done + 1;
            self.lines_done += memchr_iter(b'\n', consumed).count() as u64;
            // A final record without a trailing newline still counts as a line.
            if consumed.last() != Some(&b'\n') && nin_total > 0 {
                self.lines_done += 1;
            }
            self.pos += nin_total;
            if nend == 0 {
                if self.pos >= self.len && self.eof {
                    return Ok(None);
                }
                continue;
            }
            self.fields.clear();
            let mut field_start = 0;
            for &end in &self.ends[..nend] {
                self.fields.push((field_start, end));
                field_start = end;
            }
            let data = &self.unescaped[..field_start];
            let text = std::str::from_utf8(data).ok();
            return Ok(Some(Record { data, text, fields: &self.fields, line: first_line }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], buffer: usize) -> Vec<(u64, Vec<String>)> {
        let mut reader = RecordReader::new(input);
        reader.buf = vec![0; buffer];
        let mut out = Vec::new();
        while let Some(rec) = reader.next_record().unwrap() {
            out.push((rec.line(), rec.to_strings()));
        }
        out
    }

    fn fields(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_quoted_blank_and_crlf_lines() {
        let input = b"a,b,c\r\n1,,3\n\n\"x,y\",\"say \"\"hi\"\"\",z\n\"multi\nline\",2,3\nlast,row,nolf";
        for buffer in [4, 7, 64, 1 << 16] {
            assert_eq!(
                collect(input, buffer),
                vec![
                    (1, fields(&["a", "b", "c"])),
                    (2, fields(&["1", "", "3"])),
                    (4, fields(&["x,y", "say \"hi\"", "z"])),
                    (5, fields(&["multi\nline", "2", "3"])),
                    (7, fields(&["last", "row", "nolf"])),
                ],
                "buffer {buffer}"
            );
        }
    }

    #[test]
    fn empty_input_has_no_records() {
        assert!(collect(b"", 16).is_empty());
        assert!(collect(b"\n\n", 16).is_empty());
    }

    #[test]
    fn quoted_last_record_without_newline() {
        assert_eq!(collect(b"a\n\"q,1\",2", 8), vec![(1, fields(&["a"])), (2, fields(&["q,1", "2"]))]);
    }
}
