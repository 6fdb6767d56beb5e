//! Every kind of bad input gives an error naming file, line and column, or
//! is counted with `skip_bad_rows`.

use std::io::Write;

use canopy_cur::generate::{CsvStyle, GeneratorConfig, SampleFormat, write_format};
use canopy_cur::{BadRow, CurError, ReadOptions, RowPosition};

use crate::support::{opts, read_path, read_text, temp_dir};

const HEADER: &str = "line_item_usage_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_usage_amount,line_item_unblended_cost,product_region,product_vcpu\n";
const GOOD: &str =
    "2023-10-01 00:00:00.000,111122223333,Usage,AmazonEC2,BoxUsage:m5.large,1,0.096,us-east-1,2\n";

fn check_err(text: &str, expected: &str) {
    match read_text(text, &opts(None)) {
        Ok((rows, _)) => panic!("expected error {expected:?}, read {} rows", rows.len()),
        Err(e) => assert_eq!(e.to_string(), expected),
    }
}

fn with_row(bad: &str) -> String {
    format!("{HEADER}{GOOD}{bad}\n{GOOD}")
}

#[test]
fn bad_cells_name_line_and_column() {
    let cases = [
        (
            "2023-10-01 00:00:00.000,111122223333,Usage,AmazonEC2,BoxUsage:m5.large,abc,0.096,us-east-1,2",
            r#"t.csv: line 3: line_item_usage_amount: expected a number, found "abc""#,
        ),
        (
            "2023-10-01 00:00:00.000,111122223333,Usage,AmazonEC2,BoxUsage:m5.large,,0.096,us-east-1,2",
            "t.csv: line 3: line_item_usage_amount: expected a number, found an empty cell",
        ),
        (
            "2023-10-01 00:00:00.000,111122223333,Usage,AmazonEC2,BoxUsage:m5.large,1,1.2.3,us-east-1,2",
            r#"t.csv: line 3: line_item_unblended_cost: expected a number, found "1.2.3""#,
        ),
        (
            "2023-10-01 00:00:00.000,111122223333,Usage,AmazonEC2,BoxUsage:m5.large,1,0.1,us-east-1,two",
            r#"t.csv: line 3: product_vcpu: expected a number, found "two""#,
        ),
        (
            "10/01/2023 00:00,111122223333,Usage,AmazonEC2,BoxUsage:m5.large,1,0.096,us-east-1,2",
            r#"t.csv: line 3: line_item_usage_start_date: expected a timestamp like 2023-10-01T00:00:00Z, found "10/01/2023 00:00""#,
        ),
        (
            "2023-10-01 00:00:00.000,111122223333,Usage",
            "t.csv: line 3: (row): expected 9 fields as in the header, found 3",
        ),
    ];
    for (bad, expected) in cases {
        check_err(&with_row(bad), expected);
    }
}

#[test]
fn bad_json_map_is_named() {
    let text = "line_item_usage_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_usage_amount,line_item_unblended_cost,product\n\
2023-10-01 00:00:00.000,1,Usage,AmazonEC2,BoxUsage:m5.large,1,0.1,\"{\"\"region\"\":\"\"us\"\n";
    check_err(
        text,
        r#"t.csv: line 2: product: expected a JSON object of strings, found "{\"region\":\"us""#,
    );
}

#[test]
fn missing_columns_are_named_with_style() {
    check_err(
        "lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,lineItem/UsageAmount,lineItem/UnblendedCost,product/region\n",
        "t.csv: missing required column lineItem/UsageType (detected header style: legacy)",
    );
    check_err(
        "line_item_usage_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_usage_amount,line_item_unblended_cost,resource_tags\n",
        "t.csv: missing required column product_region_code (detected header style: cur2)",
    );
    check_err(
        "line_item_usage_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_usage_amount,product_region\n",
        "t.csv: missing required column line_item_unblended_cost (detected header style: athena)",
    );
}

#[test]
fn empty_file_is_an_error() {
    check_err("", "t.csv: empty file, expected a CUR header row");
}

#[test]
fn skip_bad_rows_counts_and_keeps_examples() {
    let mut text = format!("{HEADER}{GOOD}");
    for _ in 0..12 {
        text.push_str(
            "2023-10-01 00:00:00.000,1,Usage,AmazonEC2,BoxUsage:m5.large,x,0.1,us-east-1,\n",
        );
    }
    text.push_str(GOOD);
    let options = ReadOptions {
        skip_bad_rows: true,
        ..ReadOptions::default()
    };
    let (rows, stats) = read_text(&text, &options).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(stats.rows_read, 2);
    assert_eq!(stats.bad_rows_skipped, 12);
    assert_eq!(stats.bad_row_examples.len(), 10);
    assert_eq!(
        stats.bad_row_examples[0],
        BadRow {
            position: RowPosition::Line(3),
            column: "line_item_usage_amount".to_owned(),
            message: r#"expected a number, found "x""#.to_owned(),
        }
    );
    assert_eq!(stats.bad_row_examples[9].position, RowPosition::Line(12));
}

#[test]
fn truncated_gzip_is_reported() {
    let dir = temp_dir("gz");
    let config = GeneratorConfig {
        rows: 2_000,
        ..GeneratorConfig::default()
    };
    let mut bytes = Vec::new();
    write_format(&config, SampleFormat::CsvGz(CsvStyle::Legacy), &mut bytes).unwrap();
    let path = dir.join("cut.csv.gz");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_path(&path, &opts(None)).unwrap_err();
    assert!(matches!(err, CurError::Gzip { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("cut.csv.gz: gzip stream is truncated or corrupt"),
        "{err}"
    );

    let path = dir.join("plain-text.gz");
    std::fs::write(&path, b"this is not gzip").unwrap();
    let err = read_path(&path, &opts(None)).unwrap_err();
    assert!(matches!(err, CurError::Gzip { .. }), "{err:?}");
}

#[test]
fn garbage_and_truncated_parquet_are_reported() {
    let dir = temp_dir("parquet");
    let path = dir.join("garbage.parquet");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"definitely not a parquet file")
        .unwrap();
    let err = read_path(&path, &opts(None)).unwrap_err();
    assert!(matches!(err, CurError::Parquet { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!(
        "{}: expected a readable parquet file",
        path.display()
    )));

    let mut bytes = Vec::new();
    let config = GeneratorConfig {
        rows: 500,
        ..GeneratorConfig::default()
    };
    write_format(&config, SampleFormat::Cur2Parquet, &mut bytes).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 3] {
        let path = dir.join(format!("cut-{cut}.parquet"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = read_path(&path, &opts(None)).unwrap_err();
        assert!(matches!(err, CurError::Parquet { .. }), "{err:?}");
    }
    // Corrupt bytes in the middle (data pages) must not panic either.
    let mut corrupt = bytes.clone();
    for b in &mut corrupt[100..bytes.len() / 2] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    let path = dir.join("corrupt.parquet");
    std::fs::write(&path, &corrupt).unwrap();
    assert!(read_path(&path, &opts(None)).is_err());
}

#[test]
fn unknown_extension_is_reported() {
    let dir = temp_dir("ext");
    let path = dir.join("report.csv.zip");
    std::fs::write(&path, b"x").unwrap();
    let err = read_path(&path, &opts(None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: unknown file type, expected .csv, .csv.gz, .gz or .parquet",
            path.display()
        )
    );
}
