//! Streaming Parquet reading (CUR 2.0 Data Exports and Athena-style CUR):
//! only the needed columns are decoded (projection mask), in batches of
//! [`BATCH_ROWS`]; each column is downcast once per batch.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{
    Array, ArrayRef, Decimal128Array, GenericStringArray, MapArray, PrimitiveArray, RecordBatch,
    RecordBatchReader, StringViewArray,
};
use arrow_schema::{DataType, TimeUnit};
use canopy_emissions::cur::CurLine;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::columns::{
    Columns, PRODUCT_KEY_INSTANCE_TYPE, PRODUCT_KEY_REGION, PRODUCT_KEY_VCPU, net_amortized,
};
use crate::csv_row::FieldError;
use crate::error::{BadRow, CurError, RowPosition};
use crate::options::{FileStats, ReadOptions};
use crate::parse::{parse_number, parse_timestamp, quoted_excerpt};

/// Rows decoded per batch.
pub const BATCH_ROWS: usize = 8_192;

pub(crate) fn read_parquet_file(
    path: &Path,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(&CurLine<'_>),
) -> Result<FileStats, CurError> {
    let parquet_error = |e: &dyn std::fmt::Display| CurError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(|e| CurError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(&e))?;
    let tag_key = opts.tag_key.as_deref();
    let names = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let full = Columns::resolve(names, tag_key, path)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), full.used());
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| parquet_error(&e))?;
    let names = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let cols = Columns::resolve(names, tag_key, path)?;

    let mut stats = FileStats {
        header_style: Some(cols.style),
        ..FileStats::default()
    };
    let mut row_number = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| parquet_error(&e))?;
        let view = BatchView::new(&batch, &cols, path)?;
        for i in 0..batch.num_rows() {
            row_number += 1;
            match view.line(i) {
                Ok(line) => {
                    sink(&line);
                    stats.rows_read += 1;
                }
                Err(field) => {
                    let row = BadRow {
                        position: RowPosition::Row(row_number),
                        column: field.column,
                        message: field.message,
                    };
                    if !opts.skip_bad_rows {
                        return Err(CurError::BadRow {
                            path: path.to_path_buf(),
                            row,
                        });
                    }
                    stats.record_bad_row(row);
                }
            }
        }
    }
    Ok(stats)
}

/// A string column of any Arrow string layout.
#[derive(Clone, Copy)]
enum Text<'a> {
    Utf8(&'a GenericStringArray<i32>),
    Large(&'a GenericStringArray<i64>),
    View(&'a StringViewArray),
}

impl<'a> Text<'a> {
    fn of(array: &'a ArrayRef) -> Option<Text<'a>> {
        if let Some(a) = array.as_string_opt::<i32>() {
            Some(Text::Utf8(a))
        } else if let Some(a) = array.as_string_opt::<i64>() {
            Some(Text::Large(a))
        } else {
            array.as_string_view_opt().map(Text::View)
        }
    }

    /// Value at `i`; `None` when null.
    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Text::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Text::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Text::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// A numeric column, or a string column holding numbers.
enum Num<'a> {
    F64(&'a PrimitiveArray<Float64Type>),
    F32(&'a PrimitiveArray<Float32Type>),
    I64(&'a PrimitiveArray<Int64Type>),
    I32(&'a PrimitiveArray<Int32Type>),
    Decimal(&'a Decimal128Array, i32),
    Text(Text<'a>),
}

/// A timestamp column (any unit, with or without zone), a date, or text.
enum Time<'a> {
    Seconds(&'a PrimitiveArray<TimestampSecondType>),
    Millis(&'a PrimitiveArray<TimestampMillisecondType>),
    Micros(&'a PrimitiveArray<TimestampMicrosecondType>),
    Nanos(&'a PrimitiveArray<TimestampNanosecondType>),
    Date(&'a PrimitiveArray<Date32Type>),
    Text(Text<'a>),
}

/// A `map<string, string>` column.
struct Map<'a> {
    array: &'a MapArray,
    keys: Text<'a>,
    values: Text<'a>,
}

impl<'a> Map<'a> {
    /// Value of `key` in row `i`; `None` when the row or key is absent or null.
    fn get(&self, i: usize, key: &str) -> Option<&'a str> {
        if self.array.is_null(i) {
            return None;
        }
        let offsets = self.array.value_offsets();
        (offsets[i] as usize..offsets[i + 1] as usize)
            .find(|&j| {
                self.keys
                    .get(j)
                    .is_some_and(|k| k.eq_ignore_ascii_case(key))
            })
            .and_then(|j| self.values.get(j))
    }
}

/// Typed access to the needed columns of one batch.
struct BatchView<'a> {
    cols: &'a Columns,
    start: Time<'a>,
    account: Text<'a>,
    product_code: Text<'a>,
    usage_type: Text<'a>,
    amount: Num<'a>,
    line_item_type: Text<'a>,
    blended: Option<Num<'a>>,
    unblended: Option<Num<'a>>,
    region: Option<Text<'a>>,
    pricing_unit: Option<Text<'a>>,
    vcpu: Option<Num<'a>>,
    instance_type: Option<Text<'a>>,
    resource_id: Option<Text<'a>>,
    net_unblended: Option<Num<'a>>,
    ri_net_effective: Option<Num<'a>>,
    sp_net_effective: Option<Num<'a>>,
    product: Option<Map<'a>>,
    tag: Option<Text<'a>>,
    tags: Option<(Map<'a>, &'a str)>,
}

impl<'a> BatchView<'a> {
    fn new(
        batch: &'a RecordBatch,
        cols: &'a Columns,
        path: &Path,
    ) -> Result<BatchView<'a>, CurError> {
        let type_error = |i: usize, expected: &'static str| CurError::ColumnType {
            path: path.to_path_buf(),
            column: cols.name(i).to_owned(),
            expected,
            found: batch.column(i).data_type().to_string(),
        };
        let text =
            |i: usize| Text::of(batch.column(i)).ok_or_else(|| type_error(i, "a string column"));
        let num = |i: usize| -> Result<Num<'a>, CurError> {
            let a = batch.column(i);
            Ok(match a.data_type() {
                DataType::Float64 => Num::F64(a.as_primitive()),
                DataType::Float32 => Num::F32(a.as_primitive()),
                DataType::Int64 => Num::I64(a.as_primitive()),
                DataType::Int32 => Num::I32(a.as_primitive()),
                DataType::Decimal128(_, scale) => Num::Decimal(a.as_primitive(), i32::from(*scale)),
                _ => Num::Text(
                    Text::of(a).ok_or_else(|| type_error(i, "a number or string column"))?,
                ),
            })
        };
        let map = |i: usize| -> Result<Map<'a>, CurError> {
            let expected = "a map<string, string> column";
            let array = batch
                .column(i)
                .as_map_opt()
                .ok_or_else(|| type_error(i, expected))?;
            let keys = Text::of(array.keys()).ok_or_else(|| type_error(i, expected))?;
            let values = Text::of(array.values()).ok_or_else(|| type_error(i, expected))?;
            Ok(Map {
                array,
                keys,
                values,
            })
        };
        let start_array = batch.column(cols.start);
        let start = match start_array.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => Time::Seconds(start_array.as_primitive()),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                Time::Millis(start_array.as_primitive())
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Time::Micros(start_array.as_primitive())
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => Time::Nanos(start_array.as_primitive()),
            DataType::Date32 => Time::Date(start_array.as_primitive()),
            _ => Time::Text(
                Text::of(start_array)
                    .ok_or_else(|| type_error(cols.start, "a timestamp or string column"))?,
            ),
        };
        Ok(BatchView {
            cols,
            start,
            account: text(cols.account)?,
            product_code: text(cols.product_code)?,
            usage_type: text(cols.usage_type)?,
            amount: num(cols.amount)?,
            line_item_type: text(cols.line_item_type)?,
            blended: cols.blended.map(num).transpose()?,
            unblended: cols.unblended.map(num).transpose()?,
            region: cols.region.map(text).transpose()?,
            pricing_unit: cols.pricing_unit.map(text).transpose()?,
            vcpu: cols.vcpu.map(num).transpose()?,
            instance_type: cols.instance_type.map(text).transpose()?,
            resource_id: cols.resource_id.map(text).transpose()?,
            net_unblended: cols.net_unblended.map(num).transpose()?,
            ri_net_effective: cols.ri_net_effective.map(num).transpose()?,
            sp_net_effective: cols.sp_net_effective.map(num).transpose()?,
            product: cols.product_map.map(map).transpose()?,
            tag: cols.tag.map(text).transpose()?,
            tags: match &cols.tag_map {
                Some((i, key)) => Some((map(*i)?, key.as_str())),
                None => None,
            },
        })
    }

    fn line(&self, i: usize) -> Result<CurLine<'a>, FieldError> {
        let cols = self.cols;
        let text = |t: &Text<'a>| t.get(i).unwrap_or("");
        let opt_text = |t: &Option<Text<'a>>| t.as_ref().map_or("", text);
        let product = |key: &str| {
            self.product
                .as_ref()
                .and_then(|m| m.get(i, key))
                .unwrap_or("")
        };

        let usage_start_unix_s = self.start_at(i).map_err(|found| FieldError {
            column: cols.name(cols.start).to_owned(),
            message: format!("expected a timestamp like 2023-10-01T00:00:00Z, found {found}"),
        })?;
        // Usage amount is required on every row; costs and vcpu may be null.
        let usage_amount =
            number(&self.amount, i, cols.name(cols.amount))?.ok_or_else(|| FieldError {
                column: cols.name(cols.amount).to_owned(),
                message: "expected a number, found an empty or null cell".to_owned(),
            })?;
        let cost = |column: &Option<Num<'a>>, index: Option<usize>| -> Result<f64, FieldError> {
            match (column, index) {
                (Some(c), Some(index)) => Ok(number(c, i, cols.name(index))?.unwrap_or(0.0)),
                _ => Ok(0.0),
            }
        };
        let product_vcpu = match (&self.vcpu, cols.vcpu) {
            (Some(c), Some(index)) => number(c, i, cols.name(index))?,
            _ => {
                let cell = product(PRODUCT_KEY_VCPU);
                if cell.is_empty() {
                    None
                } else {
                    Some(parse_number(cell.as_bytes()).ok_or_else(|| FieldError {
                        column: cols.name(cols.product_map.unwrap_or(0)).to_owned(),
                        message: format!(
                            "expected a number for key vcpu, found {}",
                            quoted_excerpt(cell.as_bytes())
                        ),
                    })?)
                }
            }
        };
        let tag = match (&self.tag, &self.tags) {
            (Some(t), _) => text(t),
            (None, Some((map, key))) => map.get(i, key).unwrap_or(""),
            (None, None) => "",
        };
        let opt_cost = |column: &Option<Num<'a>>,
                        index: Option<usize>|
         -> Result<Option<f64>, FieldError> {
            match (column, index) {
                (Some(c), Some(index)) => Ok(Some(number(c, i, cols.name(index))?.unwrap_or(0.0))),
                _ => Ok(None),
            }
        };
        let line_item_type = text(&self.line_item_type);
        let unblended_cost = cost(&self.unblended, cols.unblended)?;
        let net_amortized_cost = if cols.has_net_costs() {
            Some(net_amortized(
                line_item_type,
                unblended_cost,
                opt_cost(&self.net_unblended, cols.net_unblended)?,
                opt_cost(&self.ri_net_effective, cols.ri_net_effective)?,
                opt_cost(&self.sp_net_effective, cols.sp_net_effective)?,
            ))
        } else {
            None
        };
        Ok(CurLine {
            usage_start_unix_s,
            account_id: text(&self.account),
            region: self
                .region
                .as_ref()
                .map_or_else(|| product(PRODUCT_KEY_REGION), text),
            product_code: text(&self.product_code),
            usage_type: text(&self.usage_type),
            pricing_unit: opt_text(&self.pricing_unit),
            line_item_type,
            instance_type: self
                .instance_type
                .as_ref()
                .map_or_else(|| product(PRODUCT_KEY_INSTANCE_TYPE), text),
            product_vcpu,
            usage_amount,
            blended_cost: cost(&self.blended, cols.blended)?,
            unblended_cost,
            tag: (!tag.is_empty()).then_some(tag),
            resource_id: opt_text(&self.resource_id),
            net_amortized_cost,
        })
    }

    /// Start time in Unix seconds, or a description of what was found.
    fn start_at(&self, i: usize) -> Result<i64, String> {
        fn prim<T: arrow_array::ArrowPrimitiveType<Native = i64>>(
            a: &PrimitiveArray<T>,
            i: usize,
            per_s: i64,
        ) -> Result<i64, String> {
            if a.is_null(i) {
                Err("null".to_owned())
            } else {
                Ok(a.value(i).div_euclid(per_s))
            }
        }
        match &self.start {
            Time::Seconds(a) => prim(*a, i, 1),
            Time::Millis(a) => prim(*a, i, 1_000),
            Time::Micros(a) => prim(*a, i, 1_000_000),
            Time::Nanos(a) => prim(*a, i, 1_000_000_000),
            Time::Date(a) => {
                if a.is_null(i) {
                    Err("null".to_owned())
                } else {
                    Ok(i64::from(a.value(i)) * 86_400)
                }
            }
            Time::Text(t) => match t.get(i) {
                None => Err("null".to_owned()),
                Some(s) => {
                    parse_timestamp(s.as_bytes()).ok_or_else(|| quoted_excerpt(s.as_bytes()))
                }
            },
        }
    }
}

/// Number at row `i`: `Ok(None)` for null or an empty string.
fn number(column: &Num<'_>, i: usize, name: &str) -> Result<Option<f64>, FieldError> {
    fn valid<T: arrow_array::ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> bool {
        a.is_valid(i)
    }
    Ok(match column {
        Num::F64(a) => valid(*a, i).then(|| a.value(i)),
        Num::F32(a) => valid(*a, i).then(|| f64::from(a.value(i))),
        Num::I64(a) => valid(*a, i).then(|| a.value(i) as f64),
        Num::I32(a) => valid(*a, i).then(|| f64::from(a.value(i))),
        Num::Decimal(a, scale) => valid(*a, i).then(|| a.value(i) as f64 / 10f64.powi(*scale)),
        Num::Text(t) => match t.get(i) {
            None | Some("") => None,
            Some(s) => Some(parse_number(s.as_bytes()).ok_or_else(|| FieldError {
                column: name.to_owned(),
                message: format!("expected a number, found {}", quoted_excerpt(s.as_bytes())),
            })?),
        },
    })
}
