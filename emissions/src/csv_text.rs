//! A small CSV reader for text already in memory (compiled-in tables and
//! imported files handed over as `&str`).
//!
//! Handles comma separators, `\n` and `\r\n` line ends, blank lines (skipped)
//! and RFC 4180 quoting (`"a,b"`, `""` for a literal quote) within one line.
//! Quoted fields spanning several lines are rejected, which no shipped table
//! or supported import needs.

use std::borrow::Cow;

/// A line that could not be split into fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("csv line {line}: {message}")]
pub struct CsvError {
    /// 1-based line number in the text.
    pub line: usize,
    /// What was expected and what was found.
    pub message: String,
}

/// One non-empty line split into fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    /// 1-based line number in the text.
    pub line: usize,
    /// Field values with quoting removed; borrowed unless unescaping was needed.
    pub fields: Vec<Cow<'a, str>>,
}

impl Record<'_> {
    /// Field `index` as text; empty when the line is shorter.
    pub fn get(&self, index: usize) -> &str {
        self.fields.get(index).map_or("", |f| f.as_ref())
    }
}

/// Iterates over the non-empty lines of `text`, yielding their fields.
pub fn records(text: &str) -> impl Iterator<Item = Result<Record<'_>, CsvError>> {
    text.split('\n').enumerate().filter_map(|(index, raw)| {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            return None;
        }
        Some(split_line(line, index + 1).map(|fields| Record { line: index + 1, fields }))
    })
}

/// Splits one line (without its line end) into fields.
pub fn split_line(line: &str, line_number: usize) -> Result<Vec<Cow<'_, str>>, CsvError> {
    if !line.contains('"') {
        return Ok(line.split(',').map(Cow::Borrowed).collect());
    }
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        if let Some(after_quote) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = after_quote.char_indices();
            let consumed = loop {
                match chars.next() {
                    Some((i, '"')) => {
                        if after_quote[i + 1..].starts_with('"') {
                            value.push('"');
                            chars.next();
                        } else {
                            break i + 1;
                        }
                    }
                    Some((_, c)) => value.push(c),
                    None => {
                        return Err(CsvError {
                            line: line_number,
                            message: "expected a closing quote, found end of line".to_owned(),
                        });
                    }
                }
            };
            fields.push(Cow::Owned(value));
            let tail = &after_quote[consumed..];
            if tail.is_empty() {
                return Ok(fields);
            }
            match tail.strip_prefix(',') {
                Some(next) => rest = next,
                None => {
                    return Err(CsvError {
                        line: line_number,
                        message: format!("expected a comma after a quoted field, found {tail:?}"),
                    });
                }
            }
        } else {
            match rest.find(',') {
                Some(comma) => {
                    fields.push(Cow::Borrowed(&rest[..comma]));
                    rest = &rest[comma + 1..];
                }
                None => {
                    fields.push(Cow::Borrowed(rest));
                    return Ok(fields);
                }
            }
        }
    }
}

/// Position of `name` in a header record (exact match), for compiled-in
/// tables whose headers are fixed.
///
/// # Panics
/// When the column is missing: compiled-in tables are checked by unit tests,
/// so a missing column is a build defect, not an input error.
pub(crate) fn column(header: &Record<'_>, name: &str) -> usize {
    header
        .fields
        .iter()
        .position(|f| f == name)
        .unwrap_or_else(|| panic!("compiled-in table lacks column {name:?}"))
}

/// Parses an optional number: empty → `None`.
///
/// # Panics
/// On a malformed number in a compiled-in table (see [`column`]).
pub(crate) fn opt_f64(field: &str) -> Option<f64> {
    if field.is_empty() {
        None
    } else {
        Some(
            field
                .parse()
                .unwrap_or_else(|_| panic!("compiled-in table holds a non-number {field:?}")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Vec<String> {
        split_line(line, 1).unwrap().into_iter().map(|f| f.into_owned()).collect()
    }

    #[test]
    fn splits_plain_and_quoted_fields() {
        assert_eq!(fields("a,b,,c"), ["a", "b", "", "c"]);
        assert_eq!(fields("a,\"b,c\",d"), ["a", "b,c", "d"]);
        assert_eq!(fields("\"say \"\"hi\"\"\",x"), ["say \"hi\"", "x"]);
        assert_eq!(fields("a,"), ["a", ""]);
    }

    #[test]
    fn rejects_unterminated_quote() {
        let err = split_line("a,\"b", 7).unwrap_err();
        assert_eq!(err.line, 7);
        assert!(err.message.contains("closing quote"));
    }

    #[test]
    fn records_skip_blank_lines_and_strip_crlf() {
        let text = "h1,h2\r\n1,2\r\n\r\n3,4\r\n";
        let rows: Vec<_> = records(text).map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].line, 4);
        assert_eq!(rows[2].get(1), "4");
        assert_eq!(rows[2].get(5), "");
    }
}
