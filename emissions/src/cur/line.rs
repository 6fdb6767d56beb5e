//! The one shape every Cost and Usage Report format is read into.

/// One CUR line item, borrowed from the reader's buffer.
///
/// Readers (crate `canopy-cur`) map legacy CSV (`lineItem/UsageType`), Athena
/// snake_case and CUR 2.0 / Data Exports columns onto these fields. Text
/// fields are empty strings when the column is absent or the cell is empty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurLine<'a> {
    /// `line_item_usage_start_date`, seconds since the Unix epoch, UTC.
    pub usage_start_unix_s: i64,
    /// `line_item_usage_account_id`.
    pub account_id: &'a str,
    /// `product_region` (legacy) or `product_region_code` (CUR 2.0), e.g. `us-east-1`.
    pub region: &'a str,
    /// `line_item_product_code`, e.g. `AmazonEC2`.
    pub product_code: &'a str,
    /// `line_item_usage_type`, e.g. `USE2-BoxUsage:m5.large`.
    pub usage_type: &'a str,
    /// `pricing_unit`, e.g. `Hrs`, `GB-Mo`.
    pub pricing_unit: &'a str,
    /// `line_item_line_item_type`, e.g. `Usage`, `Tax`.
    pub line_item_type: &'a str,
    /// `product_instance_type`, empty when absent.
    pub instance_type: &'a str,
    /// `product_vcpu`; `None` when the column is absent or the cell empty.
    pub product_vcpu: Option<f64>,
    /// `line_item_usage_amount`, in the row's pricing unit.
    pub usage_amount: f64,
    /// `line_item_blended_cost`, in the CUR currency.
    pub blended_cost: f64,
    /// `line_item_unblended_cost`, in the CUR currency.
    pub unblended_cost: f64,
    /// The value of the tag chosen for grouping (`--tag KEY`); `None` when the
    /// row is untagged or no tag was requested. An empty value counts as untagged.
    pub tag: Option<&'a str>,
    /// `line_item_resource_id`; empty when the column is absent or the cell empty.
    pub resource_id: &'a str,
    /// Net amortised cost of the line in the CUR currency (AWS's rule: the
    /// net effective cost of Savings Plans and Reserved Instances for covered
    /// usage, the net unblended cost otherwise); `None` when the file has
    /// none of the net cost columns.
    pub net_amortized_cost: Option<f64>,
}
