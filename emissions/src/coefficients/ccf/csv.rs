//! A minimal CSV splitter for the compiled-in CCF tables: comma separated,
//! one record per line, RFC 4180 quoting (`"a,b"`, `""` inside quotes).

/// Splits `text` into records of fields, skipping empty lines. The first
/// record is the header.
pub(crate) fn parse(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(split_line)
        .collect()
}

/// Splits one line into its fields, removing quotes.
pub(crate) fn split_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => in_quotes = false,
            ('"', false) if field.is_empty() => in_quotes = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (other, _) => field.push(other),
        }
    }
    fields.push(field);
    fields
}

/// A parsed table addressed by column name.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Parses `text`, taking the first record as header.
    pub(crate) fn new(text: &str) -> Self {
        let mut records = parse(text);
        let header = if records.is_empty() { Vec::new() } else { records.remove(0) };
        Self { header, rows: records }
    }

    /// Index of `column`; panics with the column name when the compiled-in
    /// table lacks it (a build-time data error caught by the unit tests).
    pub(crate) fn column(&self, column: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == column)
            .unwrap_or_else(|| panic!("compiled-in ccf table: expected column {column:?}, found {:?}", self.header))
    }

    /// The data rows.
    pub(crate) fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }
}

/// Parses a number cell; empty or malformed cells are `None`.
pub(crate) fn number(cell: &str) -> Option<f64> {
    if cell.is_empty() { None } else { cell.parse().ok() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_fields_with_commas_and_escaped_quotes() {
        assert_eq!(split_line(r#"a,"b, c","say ""hi""",,d"#), vec!["a", "b, c", r#"say "hi""#, "", "d"]);
    }

    #[test]
    fn skips_blank_lines_and_crlf() {
        let rows = parse("h1,h2\r\n\r\n1,2\r\n");
        assert_eq!(rows, vec![vec!["h1", "h2"], vec!["1", "2"]]);
    }
}
