//! Key lookup in the JSON objects that CUR 2.0 CSV files use for their map
//! columns (`product`, `resource_tags`): `{"region":"us-east-1","vcpu":"2"}`.
//!
//! The cell is scanned in place; a value is borrowed from the cell unless it
//! contains escapes, in which case it is decoded into a caller-owned scratch
//! buffer that is reused from row to row (no allocation per row).

/// Finds `key` in the JSON object `text`.
///
/// Returns `Ok(None)` when the key is absent, the cell is empty or `null`, or
/// the value is JSON `null`. Number and boolean values are returned as their
/// literal text. `Err(())` means `text` is not a flat JSON object.
pub(crate) fn lookup<'a>(
    text: &'a str,
    key: &str,
    scratch: &'a mut String,
) -> Result<Option<&'a str>, ()> {
    let bytes = text.as_bytes();
    let mut pos = skip_ws(bytes, 0);
    if pos == bytes.len() || text[pos..].trim_end() == "null" {
        return Ok(None);
    }
    if bytes[pos] != b'{' {
        return Err(());
    }
    pos = skip_ws(bytes, pos + 1);
    if bytes.get(pos) == Some(&b'}') {
        return Ok(None);
    }
    loop {
        let (key_start, key_end, key_escaped) = scan_string(bytes, pos)?;
        let found = if key_escaped {
            let mut decoded = String::new();
            decode(&text[key_start..key_end], &mut decoded)?;
            decoded == key
        } else {
            &text[key_start..key_end] == key
        };
        pos = skip_ws(bytes, key_end + 1);
        if bytes.get(pos) != Some(&b':') {
            return Err(());
        }
        pos = skip_ws(bytes, pos + 1);
        let value: Option<(usize, usize, bool)>;
        match bytes.get(pos) {
            Some(b'"') => {
                let (start, end, escaped) = scan_string(bytes, pos)?;
                value = Some((start, end, escaped));
                pos = end + 1;
            }
            Some(b'{' | b'[') | None => return Err(()),
            Some(_) => {
                let start = pos;
                while pos < bytes.len()
                    && !matches!(bytes[pos], b',' | b'}' | b' ' | b'\t' | b'\r' | b'\n')
                {
                    pos += 1;
                }
                let literal = &text[start..pos];
                value = if literal == "null" {
                    None
                } else {
                    Some((start, pos, false))
                };
            }
        }
        if found {
            return match value {
                None => Ok(None),
                Some((start, end, false)) => Ok(Some(&text[start..end])),
                Some((start, end, true)) => {
                    scratch.clear();
                    decode(&text[start..end], scratch)?;
                    Ok(Some(scratch.as_str()))
                }
            };
        }
        pos = skip_ws(bytes, pos);
        match bytes.get(pos) {
            Some(b',') => pos = skip_ws(bytes, pos + 1),
            Some(b'}') => return Ok(None),
            _ => return Err(()),
        }
    }
}

fn skip_ws(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && matches!(bytes[pos], b' ' | b'\t' | b'\r' | b'\n') {
        pos += 1;
    }
    pos
}

/// Scans a JSON string starting at the opening quote `bytes[pos]`; returns
/// the content range (without quotes) and whether it contains escapes.
fn scan_string(bytes: &[u8], pos: usize) -> Result<(usize, usize, bool), ()> {
    if bytes.get(pos) != Some(&b'"') {
        return Err(());
    }
    let start = pos + 1;
    let mut i = start;
    let mut escaped = false;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok((start, i, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
    Err(())
}

fn decode(raw: &str, out: &mut String) -> Result<(), ()> {
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().ok_or(())? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let high = hex4(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&high) {
                    if chars.next() != Some('\\') || chars.next() != Some('u') {
                        return Err(());
                    }
                    let low = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(());
                    }
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                out.push(char::from_u32(code).ok_or(())?);
            }
            _ => return Err(()),
        }
    }
    Ok(())
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, ()> {
    let mut value = 0;
    for _ in 0..4 {
        value = value * 16 + chars.next().and_then(|c| c.to_digit(16)).ok_or(())?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::lookup;

    fn check(text: &str, key: &str, expected: Result<Option<&str>, ()>) {
        let mut scratch = String::new();
        assert_eq!(lookup(text, key, &mut scratch), expected, "{text} [{key}]");
    }

    #[test]
    fn finds_values() {
        let product = r#"{"region":"us-east-1","instance_type":"m5.large","vcpu":"2"}"#;
        check(product, "region", Ok(Some("us-east-1")));
        check(product, "instance_type", Ok(Some("m5.large")));
        check(product, "vcpu", Ok(Some("2")));
        check(product, "memory", Ok(None));
        check(r#" { "a" : "x" , "b" : 4 } "#, "b", Ok(Some("4")));
        check(r#"{"a":null}"#, "a", Ok(None));
        check(r#"{"a":""}"#, "a", Ok(Some("")));
    }

    #[test]
    fn empty_cells_are_empty_maps() {
        check("", "a", Ok(None));
        check("{}", "a", Ok(None));
        check("null", "a", Ok(None));
    }

    #[test]
    fn decodes_escapes() {
        check(
            r#"{"user_team":"a\"b\\c\u00e9\ud83d\ude00"}"#,
            "user_team",
            Ok(Some("a\"b\\cé😀")),
        );
        check(r#"{"us\u0065r_team":"x"}"#, "user_team", Ok(Some("x")));
    }

    #[test]
    fn rejects_non_objects() {
        check("[1,2]", "a", Err(()));
        check(r#"{"a":"x""#, "b", Err(()));
        check(r#"{"a":{"b":"c"}}"#, "a", Err(()));
        check(r#"{"a" "x"}"#, "a", Err(()));
        check(r#"{"a":"\q"}"#, "a", Err(()));
    }
}
