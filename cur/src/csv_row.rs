//! Turning one CSV record into a [`CurLine`] using column indexes resolved
//! once from the header. Allocation-free on success: text fields borrow the
//! record, JSON map values with escapes go to reused scratch buffers.

use std::path::Path;

use canopy_emissions::cur::CurLine;
use crate::records::Record;

use crate::columns::{
    Columns, HeaderStyle, PRODUCT_KEY_INSTANCE_TYPE, net_amortized, PRODUCT_KEY_REGION, PRODUCT_KEY_VCPU,
};
use crate::error::CurError;
use crate::json_map;
use crate::parse::{parse_number, parse_timestamp, quoted_excerpt};

/// Why one cell was rejected; the caller adds the row position.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub column: String,
    pub message: String,
}

/// Maps records of one CSV file (or chunk of it) to [`CurLine`]s.
pub(crate) struct CsvRowMapper {
    cols: Columns,
    field_count: usize,
    scratch_region: String,
    scratch_instance: String,
    scratch_vcpu: String,
    scratch_tag: String,
}

impl CsvRowMapper {
    /// Resolves the columns from the header record.
    pub fn new(names: Vec<String>, tag_key: Option<&str>, path: &Path) -> Result<Self, CurError> {
        let field_count = names.len();
        let cols = Columns::resolve(names, tag_key, path)?;
        Ok(CsvRowMapper {
            field_count,
            cols,
            scratch_region: String::new(),
            scratch_instance: String::new(),
            scratch_vcpu: String::new(),
            scratch_tag: String::new(),
        })
    }

    /// Header style detected for the file.
    pub fn style(&self) -> HeaderStyle {
        self.cols.style
    }

    /// Maps one record; the result borrows the record and this mapper.
    pub fn map<'r>(&'r mut self, rec: &'r Record<'r>) -> Result<CurLine<'r>, FieldError> {
        let CsvRowMapper {
            cols,
            field_count,
            scratch_region,
            scratch_instance,
            scratch_vcpu,
            scratch_tag,
        } = self;
        let cols: &'r Columns = cols;
        if rec.len() != *field_count {
            return Err(FieldError {
                column: "(row)".to_owned(),
                message: format!(
                    "expected {field_count} fields as in the header, found {}",
                    rec.len()
                ),
            });
        }
        let text = move |i: usize| -> Result<&'r str, FieldError> {
            rec.field_str(i).ok_or_else(|| FieldError {
                column: cols.name(i).to_owned(),
                message: format!(
                    "expected UTF-8 text, found invalid bytes {}",
                    quoted_excerpt(rec.field(i))
                ),
            })
        };
        let opt_text =
            move |i: Option<usize>| -> Result<&'r str, FieldError> { i.map_or(Ok(""), text) };
        let number_error = move |i: usize, cell: &[u8]| FieldError {
            column: cols.name(i).to_owned(),
            message: if cell.is_empty() {
                "expected a number, found an empty cell".to_owned()
            } else {
                format!("expected a number, found {}", quoted_excerpt(cell))
            },
        };
        // Costs: AWS leaves them blank on some line types, so empty means 0.
        let cost = move |i: Option<usize>| -> Result<f64, FieldError> {
            match i {
                None => Ok(0.0),
                Some(i) if rec.field(i).is_empty() => Ok(0.0),
                Some(i) => parse_number(rec.field(i)).ok_or_else(|| number_error(i, rec.field(i))),
            }
        };

        let start_cell = rec.field(cols.start);
        let usage_start_unix_s = parse_timestamp(start_cell).ok_or_else(|| FieldError {
            column: cols.name(cols.start).to_owned(),
            message: format!(
                "expected a timestamp like 2023-10-01T00:00:00Z, found {}",
                quoted_excerpt(start_cell)
            ),
        })?;
        // Usage amount: every usage line has one, so an empty cell is a bad row.
        let amount_cell = rec.field(cols.amount);
        let usage_amount =
            parse_number(amount_cell).ok_or_else(|| number_error(cols.amount, amount_cell))?;
        let blended_cost = cost(cols.blended)?;
        let unblended_cost = cost(cols.unblended)?;

        let product: &'r str = match cols.product_map {
            Some(i) => text(i)?,
            None => "",
        };
        let product_error = move || FieldError {
            column: cols.name(cols.product_map.unwrap_or(0)).to_owned(),
            message: format!(
                "expected a JSON object of strings, found {}",
                quoted_excerpt(product.as_bytes())
            ),
        };
        let from_product =
            move |key: &str, scratch: &'r mut String| -> Result<&'r str, FieldError> {
                if product.is_empty() {
                    return Ok("");
                }
                json_map::lookup(product, key, scratch)
                    .map(Option::unwrap_or_default)
                    .map_err(|()| product_error())
            };

        let region = match cols.region {
            Some(i) => text(i)?,
            None => from_product(PRODUCT_KEY_REGION, scratch_region)?,
        };
        let instance_type = match cols.instance_type {
            Some(i) => text(i)?,
            None => from_product(PRODUCT_KEY_INSTANCE_TYPE, scratch_instance)?,
        };
        let (vcpu_cell, vcpu_column): (&[u8], usize) = match cols.vcpu {
            Some(i) => (rec.field(i), i),
            None => (
                from_product(PRODUCT_KEY_VCPU, scratch_vcpu)?.as_bytes(),
                cols.product_map.unwrap_or(0),
            ),
        };
        // vcpu: blank for non-instance rows, so empty means unknown.
        let product_vcpu = if vcpu_cell.is_empty() {
            None
        } else {
            Some(parse_number(vcpu_cell).ok_or_else(|| number_error(vcpu_column, vcpu_cell))?)
        };

        let tag = match (&cols.tag, &cols.tag_map) {
            (Some(i), _) => text(*i)?,
            (None, Some((i, key))) => {
                let tags = text(*i)?;
                json_map::lookup(tags, key, scratch_tag)
                    .map(Option::unwrap_or_default)
                    .map_err(|()| FieldError {
                        column: cols.name(*i).to_owned(),
                        message: format!(
                            "expected a JSON object of strings, found {}",
                            quoted_excerpt(tags.as_bytes())
                        ),
                    })?
            }
            (None, None) => "",
        };

        let opt_cost = move |i: Option<usize>| -> Result<Option<f64>, FieldError> { i.map(|i| cost(Some(i))).transpose() };
        let line_item_type = text(cols.line_item_type)?;
        let net_amortized_cost = if cols.has_net_costs() {
            Some(net_amortized(
                line_item_type,
                unblended_cost,
                opt_cost(cols.net_unblended)?,
                opt_cost(cols.ri_net_effective)?,
                opt_cost(cols.sp_net_effective)?,
            ))
        } else {
            None
        };
        Ok(CurLine {
            usage_start_unix_s,
            account_id: text(cols.account)?,
            region,
            product_code: text(cols.product_code)?,
            usage_type: text(cols.usage_type)?,
            pricing_unit: opt_text(cols.pricing_unit)?,
            line_item_type,
            instance_type,
            product_vcpu,
            usage_amount,
            blended_cost,
            unblended_cost,
            tag: (!tag.is_empty()).then_some(tag),
            resource_id: opt_text(cols.resource_id)?,
            net_amortized_cost,
        })
    }
}
