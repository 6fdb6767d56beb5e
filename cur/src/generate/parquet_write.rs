//! Writing generated rows as CUR 2.0 Parquet: typed columns (timestamps in
//! milliseconds UTC, doubles for amounts and costs) and real
//! `map<string, string>` columns for `product` and `resource_tags`.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, MapBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use super::GeneratorConfig;
use super::row::Generator;
use super::write::{CUR2_COLUMNS, product_map, tag_map};

/// Rows per written record batch.
const BATCH_ROWS: usize = 8_192;

/// Writes the rows of `config` as CUR 2.0 Parquet (Snappy); returns the row count.
pub fn write_cur2_parquet<W: Write + Send>(
    config: &GeneratorConfig,
    out: W,
) -> Result<u64, ParquetError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by("canopy-cur generator".to_owned())
        .build();
    let mut rows = Generator::new(config).peekable();
    let mut writer: Option<ArrowWriter<W>> = None;
    let mut out = Some(out);
    let mut count = 0u64;
    loop {
        let mut b = Builders::default();
        let mut in_batch = 0;
        while in_batch < BATCH_ROWS {
            let Some(row) = rows.next() else { break };
            let text = [
                &row.line_item_id,
                &row.payer_account_id,
                &row.usage_account_id,
            ];
            for (builder, value) in b.text[..3].iter_mut().zip(text) {
                builder.append_value(value);
            }
            b.text[3].append_value(row.line_item_type);
            b.start.append_value(row.usage_start_unix_s * 1_000);
            b.end.append_value(row.usage_end_unix_s * 1_000);
            b.text[4].append_value(row.product_code);
            b.text[5].append_value(&row.usage_type);
            b.text[6].append_value(row.operation);
            b.text[7].append_value(&row.resource_id);
            b.amount.append_value(row.usage_amount);
            b.blended.append_value(row.blended_cost);
            b.unblended.append_value(row.unblended_cost);
            b.text[8].append_value(row.instance_type);
            b.text[9].append_value(row.region);
            b.text[10].append_value(row.pricing_unit);
            for (map, entries) in [
                (&mut b.product, product_map(&row)),
                (&mut b.tags, tag_map(&row)),
            ] {
                for (key, value) in entries {
                    map.keys().append_value(key);
                    map.values().append_value(value);
                }
                map.append(true)?;
            }
            in_batch += 1;
        }
        count += in_batch as u64;
        let batch = b.finish()?;
        if writer.is_none() {
            let sink = out
                .take()
                .ok_or_else(|| ParquetError::General("writer already created".to_owned()))?;
            writer = Some(ArrowWriter::try_new(
                sink,
                batch.schema(),
                Some(props.clone()),
            )?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch)?;
        }
        if rows.peek().is_none() {
            break;
        }
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(count)
}

struct Builders {
    /// Text columns in [`CUR2_COLUMNS`] order, skipping typed ones.
    text: Vec<StringBuilder>,
    start: TimestampMillisecondBuilder,
    end: TimestampMillisecondBuilder,
    amount: Float64Builder,
    blended: Float64Builder,
    unblended: Float64Builder,
    product: MapBuilder<StringBuilder, StringBuilder>,
    tags: MapBuilder<StringBuilder, StringBuilder>,
}

impl Default for Builders {
    fn default() -> Self {
        Builders {
            text: (0..11).map(|_| StringBuilder::new()).collect(),
            start: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            end: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            amount: Float64Builder::new(),
            blended: Float64Builder::new(),
            unblended: Float64Builder::new(),
            product: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            tags: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
        }
    }
}

impl Builders {
    fn finish(mut self) -> Result<RecordBatch, ParquetError> {
        let mut text = self
            .text
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef);
        let mut next_text = || {
            text.next()
                .ok_or_else(|| ParquetError::General("missing text column".to_owned()))
        };
        let arrays: Vec<ArrayRef> = vec![
            next_text()?,
            next_text()?,
            next_text()?,
            next_text()?,
            Arc::new(self.start.finish()),
            Arc::new(self.end.finish()),
            next_text()?,
            next_text()?,
            next_text()?,
            next_text()?,
            Arc::new(self.amount.finish()),
            Arc::new(self.blended.finish()),
            Arc::new(self.unblended.finish()),
            next_text()?,
            next_text()?,
            next_text()?,
            Arc::new(self.product.finish()),
            Arc::new(self.tags.finish()),
        ];
        let fields: Vec<Field> = CUR2_COLUMNS
            .iter()
            .zip(&arrays)
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect();
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
    }
}
