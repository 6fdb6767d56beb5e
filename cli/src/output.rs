//! Writing estimate rows as JSON lines, CSV or an aligned table.

use std::io::Write;

use anyhow::Result;
use canopy_emissions::cur::{EstimateRow, Period};
use canopy_emissions::time;
use clap::ValueEnum;
use serde::Serialize;

/// Output formats of `canopy estimate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// Aligned columns for reading in a terminal.
    Table,
}

/// Which optional columns the output carries.
#[derive(Debug, Clone, Copy)]
pub struct OutputShape {
    pub period: Period,
    pub by_usage_type: bool,
    pub with_tag: bool,
}

/// Formats a period start: `YYYY-MM-DD` for day and month, RFC 3339 for hour.
pub fn format_period_start(period: Period, unix_s: i64) -> String {
    match period {
        Period::Hour => time::format_rfc3339(unix_s),
        Period::Day | Period::Month => time::format_date(unix_s),
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    period_start: String,
    account_id: &'a str,
    region: &'a str,
    service: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_type: Option<&'a str>,
    /// Outer `None`: no `--tag`, field absent. `Some(None)`: untagged, written as null.
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<Option<&'a str>>,
    energy_kwh: Option<f64>,
    co2e_location_kg: Option<f64>,
    co2e_market_kg: Option<f64>,
    co2e_low_kg: Option<f64>,
    co2e_high_kg: Option<f64>,
    cost: f64,
    quality: &'static str,
}

impl<'a> JsonRow<'a> {
    fn new(shape: OutputShape, row: &'a EstimateRow) -> Self {
        Self {
            period_start: format_period_start(shape.period, row.period_start_unix_s),
            account_id: &row.account_id,
            region: &row.region,
            service: &row.service,
            usage_type: if shape.by_usage_type { Some(row.usage_type.as_deref().unwrap_or("")) } else { None },
            tag: if shape.with_tag { Some(row.tag.as_deref()) } else { None },
            energy_kwh: row.energy_kwh,
            co2e_location_kg: row.co2e_location_kg,
            co2e_market_kg: row.co2e_market_kg,
            co2e_low_kg: row.co2e_low_kg,
            co2e_high_kg: row.co2e_high_kg,
            cost: row.cost,
            quality: row.quality.as_str(),
        }
    }
}

/// Writes all rows in `format`.
pub fn write_rows(out: &mut dyn Write, format: OutputFormat, shape: OutputShape, rows: &[EstimateRow]) -> Result<()> {
    let mut out = std::io::BufWriter::new(out);
    match format {
        OutputFormat::Jsonl => {
            for row in rows {
                serde_json::to_writer(&mut out, &JsonRow::new(shape, row))?;
                out.write_all(b"\n")?;
            }
        }
        OutputFormat::Csv => write_csv(&mut out, shape, rows)?,
        OutputFormat::Table => write_table(&mut out, shape, rows)?,
    }
    out.flush()?;
    Ok(())
}

fn header(shape: OutputShape) -> Vec<&'static str> {
    let mut h = vec!["period_start", "account_id", "region", "service"];
    if shape.by_usage_type {
        h.push("usage_type");
    }
    if shape.with_tag {
        h.push("tag");
    }
    h.extend([
        "energy_kwh",
        "co2e_location_kg",
        "co2e_market_kg",
        "co2e_low_kg",
        "co2e_high_kg",
        "cost",
        "quality",
    ]);
    h
}

fn text_cells(shape: OutputShape, row: &EstimateRow, number: fn(f64) -> String) -> Vec<String> {
    let opt = |v: Option<f64>| v.map(number).unwrap_or_default();
    let mut cells = vec![
        format_period_start(shape.period, row.period_start_unix_s),
        row.account_id.to_string(),
        row.region.to_string(),
        row.service.to_string(),
    ];
    if shape.by_usage_type {
        cells.push(row.usage_type.as_deref().unwrap_or_default().to_string());
    }
    if shape.with_tag {
        cells.push(row.tag.as_deref().unwrap_or_default().to_string());
    }
    cells.extend([
        opt(row.energy_kwh),
        opt(row.co2e_location_kg),
        opt(row.co2e_market_kg),
        opt(row.co2e_low_kg),
        opt(row.co2e_high_kg),
        number(row.cost),
        row.quality.as_str().to_string(),
    ]);
    cells
}

/// Quotes a CSV field when it contains a separator, quote or line break,
/// and neutralises spreadsheet formulas: a text cell starting with `=`, `+`,
/// `-`, `@`, tab or carriage return gets a leading `'` (OWASP CSV
/// injection), so a tag value such as `=HYPERLINK(…)` stays text. Numbers
/// (`-1.5`, `-2e3`) are left as they are.
pub fn csv_field(value: &str) -> std::borrow::Cow<'_, str> {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']) && value.parse::<f64>().is_err();
    let value: std::borrow::Cow<'_, str> =
        if formula { std::borrow::Cow::Owned(format!("'{value}")) } else { std::borrow::Cow::Borrowed(value) };
    if value.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", value.replace('"', "\"\"")))
    } else {
        value
    }
}

fn write_csv(out: &mut dyn Write, shape: OutputShape, rows: &[EstimateRow]) -> Result<()> {
    writeln!(out, "{}", header(shape).join(","))?;
    for row in rows {
        let cells = text_cells(shape, row, |v| v.to_string());
        let line: Vec<_> = cells.iter().map(|c| csv_field(c)).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

fn write_table(out: &mut dyn Write, shape: OutputShape, rows: &[EstimateRow]) -> Result<()> {
    let header = header(shape);
    let body: Vec<Vec<String>> = rows.iter().map(|r| text_cells(shape, r, |v| format!("{v:.6}"))).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for cells in &body {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.len());
        }
    }
    let numeric_from = header.iter().position(|h| *h == "energy_kwh").unwrap_or(header.len());
    let write_line = |out: &mut dyn Write, cells: &[String]| -> Result<()> {
        let mut line = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if i >= numeric_from && i + 1 < cells.len() {
                line.push_str(&format!("{cell:>width$}"));
            } else {
                line.push_str(&format!("{cell:<width$}"));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
        Ok(())
    };
    let header_cells: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    write_line(out, &header_cells)?;
    for cells in &body {
        write_line(out, cells)?;
    }
    let total_kwh: f64 = rows.iter().filter_map(|r| r.energy_kwh).sum();
    let total_kg: f64 = rows.iter().filter_map(|r| r.co2e_location_kg).sum();
    let total_cost: f64 = rows.iter().map(|r| r.cost).sum();
    writeln!(
        out,
        "total: {} rows, {total_kwh:.6} kWh, {total_kg:.6} kgCO2e (location-based), cost {total_cost:.6}",
        rows.len()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_neutralise_spreadsheet_formulas() {
        assert_eq!(csv_field("=HYPERLINK(\"http://x\",\"y\")"), "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
        assert_eq!(csv_field("+1+cmd|' /C calc'!A0"), "'+1+cmd|' /C calc'!A0");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(csv_field("\rx"), "\"'\rx\"");
        // Numbers stay numbers; text elsewhere is untouched.
        assert_eq!(csv_field("-1.5"), "-1.5");
        assert_eq!(csv_field("-2e3"), "-2e3");
        assert_eq!(csv_field("a=b"), "a=b");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn period_formats() {
        let t = time::unix_seconds(2023, 10, 15, 13, 0, 0);
        assert_eq!(format_period_start(Period::Day, t), "2023-10-15");
        assert_eq!(format_period_start(Period::Hour, t), "2023-10-15T13:00:00Z");
    }
}
