//! Writing generated rows as CUR CSV in each header style, plain or gzipped,
//! and as CUR 2.0 Parquet.

use std::io::{self, Write};

use canopy_emissions::time::format_rfc3339;

use super::GeneratorConfig;
use super::row::{GeneratedRow, Generator, TagValue};
use crate::tag::snake_case;

pub use super::parquet_write::write_cur2_parquet;

/// Column layout and conventions of a CSV CUR file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvStyle {
    /// Legacy CUR: `lineItem/UsageType` headers, `2023-10-01T00:00:00Z` dates.
    Legacy,
    /// Athena snake_case headers, `2023-10-01 00:00:00.000` dates.
    Athena,
    /// CUR 2.0 CSV: snake_case, `product_region_code`, JSON `product` and
    /// `resource_tags` maps, `2023-10-01T00:00:00.000Z` dates.
    Cur2,
}

/// Legacy CUR columns written by the generator, in order.
pub const LEGACY_COLUMNS: &[&str] = &[
    "identity/LineItemId",
    "bill/PayerAccountId",
    "lineItem/UsageAccountId",
    "lineItem/LineItemType",
    "lineItem/UsageStartDate",
    "lineItem/UsageEndDate",
    "lineItem/ProductCode",
    "lineItem/UsageType",
    "lineItem/Operation",
    "lineItem/ResourceId",
    "lineItem/UsageAmount",
    "lineItem/BlendedCost",
    "lineItem/UnblendedCost",
    "product/instanceType",
    "product/region",
    "product/vcpu",
    "pricing/unit",
    "resourceTags/user:CostCenter",
    "resourceTags/user:Team",
];

/// CUR 2.0 columns written by the generator (CSV and Parquet), in order.
pub const CUR2_COLUMNS: &[&str] = &[
    "identity_line_item_id",
    "bill_payer_account_id",
    "line_item_usage_account_id",
    "line_item_line_item_type",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_operation",
    "line_item_resource_id",
    "line_item_usage_amount",
    "line_item_blended_cost",
    "line_item_unblended_cost",
    "product_instance_type",
    "product_region_code",
    "pricing_unit",
    "product",
    "resource_tags",
];

/// Header of a CSV in `style`.
pub fn csv_header(style: CsvStyle) -> Vec<String> {
    match style {
        CsvStyle::Legacy => LEGACY_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        // Athena names are AWS's snake_case of the legacy names.
        CsvStyle::Athena => LEGACY_COLUMNS.iter().map(|c| snake_case(c)).collect(),
        CsvStyle::Cur2 => CUR2_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
    }
}

/// Writes the rows of `config` as CSV in `style`; returns the row count.
pub fn write_csv<W: Write>(config: &GeneratorConfig, style: CsvStyle, out: W) -> io::Result<u64> {
    let mut writer = csv::WriterBuilder::new().from_writer(out);
    writer.write_record(csv_header(style))?;
    let mut count = 0;
    let mut fields: Vec<String> = Vec::new();
    for row in Generator::new(config) {
        fields.clear();
        csv_fields(&row, style, &mut fields);
        writer.write_record(&fields)?;
        count += 1;
    }
    writer.flush()?;
    Ok(count)
}

/// Same as [`write_csv`], gzip-compressed (header mtime 0 for reproducibility).
pub fn write_csv_gz<W: Write>(
    config: &GeneratorConfig,
    style: CsvStyle,
    out: W,
) -> io::Result<u64> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(out, flate2::Compression::default());
    let count = write_csv(config, style, &mut encoder)?;
    encoder.finish()?;
    Ok(count)
}

fn csv_fields(row: &GeneratedRow, style: CsvStyle, fields: &mut Vec<String>) {
    let date = |unix_s: i64| match style {
        CsvStyle::Legacy => format_rfc3339(unix_s),
        CsvStyle::Athena => athena_timestamp(unix_s),
        CsvStyle::Cur2 => format_rfc3339(unix_s).replace('Z', ".000Z"),
    };
    fields.extend([
        row.line_item_id.clone(),
        row.payer_account_id.clone(),
        row.usage_account_id.clone(),
        row.line_item_type.to_owned(),
        date(row.usage_start_unix_s),
        date(row.usage_end_unix_s),
        row.product_code.to_owned(),
        row.usage_type.clone(),
        row.operation.to_owned(),
        row.resource_id.clone(),
        row.usage_amount.to_string(),
        row.blended_cost.to_string(),
        row.unblended_cost.to_string(),
        row.instance_type.to_owned(),
        row.region.to_owned(),
    ]);
    match style {
        CsvStyle::Legacy | CsvStyle::Athena => fields.extend([
            row.vcpu.map(|v| v.to_string()).unwrap_or_default(),
            row.pricing_unit.to_owned(),
            row.cost_center.as_cell().to_owned(),
            row.team.as_cell().to_owned(),
        ]),
        CsvStyle::Cur2 => fields.extend([
            row.pricing_unit.to_owned(),
            json_object(&product_map(row)),
            json_object(&tag_map(row)),
        ]),
    }
}

/// `YYYY-MM-DD HH:MM:SS.000`, the Athena / CUR 2.0 CSV timestamp shape
/// (RFC 3339 with a space for the `T` and milliseconds for the `Z`).
fn athena_timestamp(unix_s: i64) -> String {
    format_rfc3339(unix_s).replace('T', " ").replace('Z', ".000")
}

/// Entries of the CUR 2.0 `product` map for a row.
pub(crate) fn product_map(row: &GeneratedRow) -> Vec<(&'static str, String)> {
    let mut entries = vec![("servicecode", row.product_code.to_owned())];
    if let Some(vcpu) = row.vcpu {
        entries.push(("vcpu", vcpu.to_string()));
    }
    entries
}

/// Entries of the CUR 2.0 `resource_tags` map: missing tags have no key.
pub(crate) fn tag_map(row: &GeneratedRow) -> Vec<(&'static str, String)> {
    let mut entries = Vec::new();
    for (key, tag) in [
        ("user_cost_center", row.cost_center),
        ("user_team", row.team),
    ] {
        if tag != TagValue::Missing {
            entries.push((key, tag.as_cell().to_owned()));
        }
    }
    entries
}

fn json_object(entries: &[(&str, String)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(key, &mut out);
        out.push(':');
        json_string(value, &mut out);
    }
    out.push('}');
    out
}

fn json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn athena_header_is_snake_case_of_legacy() {
        let header = csv_header(CsvStyle::Athena);
        assert_eq!(header[4], "line_item_usage_start_date");
        assert_eq!(header[14], "product_region");
        assert_eq!(header[17], "resource_tags_user_cost_center");
        assert_eq!(header[18], "resource_tags_user_team");
    }

    #[test]
    fn json_and_dates() {
        let mut out = String::new();
        json_string("a\"b\\c\n", &mut out);
        assert_eq!(out, r#""a\"b\\c\u000a""#);
        assert_eq!(
            json_object(&[("k", "v".to_owned()), ("x", String::new())]),
            r#"{"k":"v","x":""}"#
        );
        // 2023-10-01T13:00:00Z = 1_696_118_400 + 13 * 3_600.
        assert_eq!(athena_timestamp(1_696_165_200), "2023-10-01 13:00:00.000");
    }
}
