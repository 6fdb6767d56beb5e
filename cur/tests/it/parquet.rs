//! Parquet variants beyond the generator's: Athena-style string columns,
//! map-only product attributes, other timestamp units, bad values.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{Field, Schema};
use canopy_cur::{HeaderStyle, ReadOptions, RowPosition};
use parquet::arrow::ArrowWriter;

use crate::support::{Owned, opts, read_path, temp_dir};

fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|c| c.1).collect(),
    )
    .unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

// 2023-10-01T00:00:00Z.
const OCT1: i64 = 1_696_118_400;

#[test]
fn athena_parquet_with_string_columns() {
    let dir = temp_dir("pq-athena");
    let path = dir.join("athena.parquet");
    write(
        &path,
        vec![
            (
                "line_item_usage_start_date",
                strings(&[
                    Some("2023-10-01 00:00:00.000"),
                    Some("2023-10-01T01:00:00Z"),
                ]),
            ),
            (
                "line_item_usage_account_id",
                strings(&[Some("1"), Some("2")]),
            ),
            (
                "line_item_line_item_type",
                strings(&[Some("Usage"), Some("Tax")]),
            ),
            (
                "line_item_product_code",
                strings(&[Some("AmazonEC2"), Some("AmazonEC2")]),
            ),
            (
                "line_item_usage_type",
                strings(&[Some("BoxUsage:t3.large"), Some("")]),
            ),
            ("line_item_usage_amount", strings(&[Some("1"), Some("0")])),
            (
                "line_item_unblended_cost",
                Arc::new(Int64Array::from(vec![Some(2), None])),
            ),
            (
                "line_item_blended_cost",
                Arc::new(Float64Array::from(vec![Some(0.5), Some(1.25)])),
            ),
            ("product_region", strings(&[Some("us-east-1"), None])),
            ("product_vcpu", strings(&[Some("2"), Some("")])),
            ("product_instance_type", strings(&[Some("t3.large"), None])),
            ("resource_tags_user_team", strings(&[Some("web"), Some("")])),
            ("unrelated_column", strings(&[Some("x"), Some("y")])),
        ],
    );
    let (rows, stats) = read_path(&path, &opts(Some("Team"))).unwrap();
    assert_eq!(stats.header_style, Some(HeaderStyle::Athena));
    let base = Owned {
        start: OCT1,
        account: "1".to_owned(),
        region: "us-east-1".to_owned(),
        product_code: "AmazonEC2".to_owned(),
        usage_type: "BoxUsage:t3.large".to_owned(),
        pricing_unit: String::new(),
        line_item_type: "Usage".to_owned(),
        instance_type: "t3.large".to_owned(),
        vcpu: Some(2.0),
        amount: 1.0,
        blended: 0.5,
        unblended: 2.0,
        tag: Some("web".to_owned()),
    };
    let tax = Owned {
        start: OCT1 + 3_600,
        account: "2".to_owned(),
        region: String::new(),
        usage_type: String::new(),
        line_item_type: "Tax".to_owned(),
        instance_type: String::new(),
        vcpu: None,
        amount: 0.0,
        blended: 1.25,
        // Null cost reads as 0.
        unblended: 0.0,
        tag: None,
        ..base.clone()
    };
    assert_eq!(rows, vec![base, tax]);
}

fn map(rows: &[&[(&str, &str)]]) -> ArrayRef {
    let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for entries in rows {
        for (k, v) in *entries {
            b.keys().append_value(k);
            b.values().append_value(v);
        }
        b.append(true).unwrap();
    }
    Arc::new(b.finish())
}

fn cur2_columns(amounts: Vec<Option<f64>>) -> Vec<(&'static str, ArrayRef)> {
    let n = amounts.len();
    vec![
        (
            "line_item_usage_start_date",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(
                    OCT1 * 1_000_000 + 999_999
                );
                n
            ])) as ArrayRef,
        ),
        ("line_item_usage_account_id", strings(&vec![Some("1"); n])),
        ("line_item_line_item_type", strings(&vec![Some("Usage"); n])),
        (
            "line_item_product_code",
            strings(&vec![Some("AmazonEC2"); n]),
        ),
        (
            "line_item_usage_type",
            strings(&vec![Some("EU-BoxUsage:m6g.large"); n]),
        ),
        (
            "line_item_usage_amount",
            Arc::new(Float64Array::from(amounts)),
        ),
        (
            "line_item_unblended_cost",
            Arc::new(Float64Array::from(vec![Some(0.077); n])),
        ),
        ("pricing_unit", strings(&vec![Some("Hrs"); n])),
        (
            "product",
            map(&vec![
                &[
                    ("region", "eu-west-1"),
                    ("instance_type", "m6g.large"),
                    ("vcpu", "2")
                ][..];
                n
            ]),
        ),
        ("resource_tags", map(&vec![&[("user_team", "data")][..]; n])),
    ]
}

#[test]
fn cur2_parquet_with_product_map_only_and_microsecond_timestamps() {
    let dir = temp_dir("pq-cur2");
    let path = dir.join("cur2.parquet");
    write(&path, cur2_columns(vec![Some(1.0)]));
    let (rows, stats) = read_path(&path, &opts(Some("user:Team"))).unwrap();
    assert_eq!(stats.header_style, Some(HeaderStyle::Cur2));
    assert_eq!(
        rows,
        vec![Owned {
            // 999_999 µs past the hour are dropped.
            start: OCT1,
            account: "1".to_owned(),
            region: "eu-west-1".to_owned(),
            product_code: "AmazonEC2".to_owned(),
            usage_type: "EU-BoxUsage:m6g.large".to_owned(),
            pricing_unit: "Hrs".to_owned(),
            line_item_type: "Usage".to_owned(),
            instance_type: "m6g.large".to_owned(),
            vcpu: Some(2.0),
            amount: 1.0,
            blended: 0.0,
            unblended: 0.077,
            tag: Some("data".to_owned()),
        }]
    );
}

#[test]
fn parquet_bad_rows_name_row_and_column() {
    let dir = temp_dir("pq-bad");
    let path = dir.join("bad.parquet");
    write(
        &path,
        cur2_columns(vec![Some(1.0), Some(1.0), None, Some(1.0)]),
    );
    let err = read_path(&path, &opts(None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: row 3: line_item_usage_amount: expected a number, found an empty or null cell",
            path.display()
        )
    );
    let skipping = ReadOptions {
        skip_bad_rows: true,
        ..ReadOptions::default()
    };
    let (rows, stats) = read_path(&path, &skipping).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(stats.bad_rows_skipped, 1);
    assert_eq!(stats.bad_row_examples[0].position, RowPosition::Row(3));
}

#[test]
fn parquet_column_of_wrong_type_is_named() {
    let dir = temp_dir("pq-type");
    let path = dir.join("type.parquet");
    let mut columns = cur2_columns(vec![Some(1.0)]);
    columns[1] = (
        "line_item_usage_account_id",
        Arc::new(Float64Array::from(vec![Some(1.0)])),
    );
    write(&path, columns);
    let err = read_path(&path, &opts(None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: column line_item_usage_account_id: expected a string column, found type Float64",
            path.display()
        )
    );
}
