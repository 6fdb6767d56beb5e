//! Header-style detection and column resolution, done once per file from the
//! CSV header row or the Parquet schema. Rows are then read by index only.

use std::path::Path;

use crate::error::CurError;
use crate::tag::{TagKey, snake_case};

/// The naming scheme of a file's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStyle {
    /// Legacy CUR CSV: `lineItem/UsageType`, `product/region`, `resourceTags/user:Team`.
    Legacy,
    /// Athena-style snake_case: `line_item_usage_type`, `product_region`,
    /// `resource_tags_user_team` (legacy CUR with Athena integration, Parquet or CSV).
    Athena,
    /// CUR 2.0 / Data Exports: snake_case plus `product_region_code` and the
    /// `product` and `resource_tags` map columns.
    Cur2,
}

impl HeaderStyle {
    /// Short name used in messages: `legacy`, `athena` or `cur2`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HeaderStyle::Legacy => "legacy",
            HeaderStyle::Athena => "athena",
            HeaderStyle::Cur2 => "cur2",
        }
    }

    /// Detects the style from column names: any `/` means legacy; snake_case
    /// with a `product` or `resource_tags` map or `product_region_code` means
    /// CUR 2.0; other snake_case headers are Athena style.
    pub fn detect<'n>(names: impl IntoIterator<Item = &'n str> + Clone) -> HeaderStyle {
        if names.clone().into_iter().any(|n| n.contains('/')) {
            return HeaderStyle::Legacy;
        }
        let cur2 = names.into_iter().any(|n| {
            ["product", "resource_tags", "product_region_code"]
                .iter()
                .any(|c| n.eq_ignore_ascii_case(c))
        });
        if cur2 {
            HeaderStyle::Cur2
        } else {
            HeaderStyle::Athena
        }
    }
}

/// Column names per role, in legacy and snake_case spelling, first choice first.
struct Names {
    legacy: &'static [&'static str],
    snake: &'static [&'static str],
}

const START: Names = Names {
    legacy: &["lineItem/UsageStartDate"],
    snake: &["line_item_usage_start_date"],
};
const ACCOUNT: Names = Names {
    legacy: &["lineItem/UsageAccountId"],
    snake: &["line_item_usage_account_id"],
};
const PRODUCT_CODE: Names = Names {
    legacy: &["lineItem/ProductCode"],
    snake: &["line_item_product_code"],
};
const USAGE_TYPE: Names = Names {
    legacy: &["lineItem/UsageType"],
    snake: &["line_item_usage_type"],
};
const AMOUNT: Names = Names {
    legacy: &["lineItem/UsageAmount"],
    snake: &["line_item_usage_amount"],
};
const LINE_ITEM_TYPE: Names = Names {
    legacy: &["lineItem/LineItemType"],
    snake: &["line_item_line_item_type"],
};
const BLENDED: Names = Names {
    legacy: &["lineItem/BlendedCost"],
    snake: &["line_item_blended_cost"],
};
const UNBLENDED: Names = Names {
    legacy: &["lineItem/UnblendedCost"],
    snake: &["line_item_unblended_cost"],
};
const REGION: Names = Names {
    legacy: &["product/region", "product/regionCode"],
    snake: &["product_region_code", "product_region"],
};
const PRICING_UNIT: Names = Names {
    legacy: &["pricing/unit"],
    snake: &["pricing_unit"],
};
const VCPU: Names = Names {
    legacy: &["product/vcpu"],
    snake: &["product_vcpu"],
};
const INSTANCE_TYPE: Names = Names {
    legacy: &["product/instanceType"],
    snake: &["product_instance_type"],
};

const RESOURCE_ID: Names = Names {
    legacy: &["lineItem/ResourceId"],
    snake: &["line_item_resource_id"],
};
const NET_UNBLENDED: Names = Names {
    legacy: &["lineItem/NetUnblendedCost"],
    snake: &["line_item_net_unblended_cost"],
};
const RI_NET_EFFECTIVE: Names = Names {
    legacy: &["reservation/NetEffectiveCost"],
    snake: &["reservation_net_effective_cost"],
};
const SP_NET_EFFECTIVE: Names = Names {
    legacy: &["savingsPlan/NetSavingsPlanEffectiveCost"],
    snake: &["savings_plan_net_savings_plan_effective_cost"],
};

/// Keys of the CUR 2.0 `product` map used when the plain column is absent.
pub(crate) const PRODUCT_KEY_REGION: &str = "region";
pub(crate) const PRODUCT_KEY_INSTANCE_TYPE: &str = "instance_type";
pub(crate) const PRODUCT_KEY_VCPU: &str = "vcpu";

/// Where each needed value lives in one file.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    pub style: HeaderStyle,
    /// Every header name, by index (for error messages).
    pub names: Vec<String>,
    pub start: usize,
    pub account: usize,
    pub product_code: usize,
    pub usage_type: usize,
    pub amount: usize,
    pub line_item_type: usize,
    pub blended: Option<usize>,
    pub unblended: Option<usize>,
    pub region: Option<usize>,
    pub pricing_unit: Option<usize>,
    pub vcpu: Option<usize>,
    pub instance_type: Option<usize>,
    pub resource_id: Option<usize>,
    /// Net cost columns (the net amortised cost is derived from them).
    pub net_unblended: Option<usize>,
    pub ri_net_effective: Option<usize>,
    pub sp_net_effective: Option<usize>,
    /// CUR 2.0 `product` map, used for region / instance type / vcpu when
    /// the plain columns are absent.
    pub product_map: Option<usize>,
    /// Plain tag column (legacy or Athena style).
    pub tag: Option<usize>,
    /// CUR 2.0 `resource_tags` map and the key to look up in it.
    pub tag_map: Option<(usize, String)>,
}

impl Columns {
    /// Resolves every role from the header names. Unknown columns are ignored.
    pub fn resolve(
        names: Vec<String>,
        tag_key: Option<&str>,
        path: &Path,
    ) -> Result<Columns, CurError> {
        let mut names = names;
        if let Some(first) = names.first_mut()
            && let Some(stripped) = first.strip_prefix('\u{feff}')
        {
            *first = stripped.to_owned();
        }
        let style = HeaderStyle::detect(names.iter().map(String::as_str));
        let find = |role: &Names| -> Option<usize> {
            let candidates = if style == HeaderStyle::Legacy {
                role.legacy
            } else {
                role.snake
            };
            candidates
                .iter()
                .find_map(|c| names.iter().position(|n| n.eq_ignore_ascii_case(c)))
        };
        let missing = |role: &Names| CurError::MissingColumn {
            path: path.to_path_buf(),
            column: if style == HeaderStyle::Legacy {
                role.legacy[0]
            } else {
                role.snake[0]
            }
            .to_owned(),
            style: style.as_str(),
        };
        let require = |role: &Names| find(role).ok_or_else(|| missing(role));
        let position_of = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));

        let start = require(&START)?;
        let account = require(&ACCOUNT)?;
        let product_code = require(&PRODUCT_CODE)?;
        let usage_type = require(&USAGE_TYPE)?;
        let amount = require(&AMOUNT)?;
        let line_item_type = require(&LINE_ITEM_TYPE)?;
        let blended = find(&BLENDED);
        let unblended = find(&UNBLENDED);
        if blended.is_none() && unblended.is_none() {
            return Err(missing(&UNBLENDED));
        }
        let product_map = if style == HeaderStyle::Legacy {
            None
        } else {
            position_of("product")
        };
        let region = find(&REGION);
        if region.is_none() && product_map.is_none() {
            // Athena-style files name it product_region, CUR 2.0 product_region_code.
            let column = match style {
                HeaderStyle::Legacy => REGION.legacy[0],
                HeaderStyle::Athena => REGION.snake[1],
                HeaderStyle::Cur2 => REGION.snake[0],
            };
            return Err(CurError::MissingColumn {
                path: path.to_path_buf(),
                column: column.to_owned(),
                style: style.as_str(),
            });
        }

        let mut tag = None;
        let mut tag_map = None;
        if let Some(typed) = tag_key {
            let key = TagKey::new(typed);
            if style == HeaderStyle::Legacy {
                tag = names
                    .iter()
                    .position(|n| *n == key.legacy_column)
                    .or_else(|| position_of(&key.legacy_column));
            } else {
                tag = names
                    .iter()
                    .position(|n| snake_case(n) == key.athena_column);
                if tag.is_none() {
                    tag_map = position_of("resource_tags").map(|i| (i, key.cur2_key.clone()));
                }
            }
        }

        Ok(Columns {
            style,
            start,
            account,
            product_code,
            usage_type,
            amount,
            line_item_type,
            blended,
            unblended,
            region,
            pricing_unit: find(&PRICING_UNIT),
            vcpu: find(&VCPU),
            instance_type: find(&INSTANCE_TYPE),
            resource_id: find(&RESOURCE_ID),
            net_unblended: find(&NET_UNBLENDED),
            ri_net_effective: find(&RI_NET_EFFECTIVE),
            sp_net_effective: find(&SP_NET_EFFECTIVE),
            product_map,
            tag,
            tag_map,
            names,
        })
    }

    /// Whether the file has any net cost column (else there is no net amortised cost).
    pub fn has_net_costs(&self) -> bool {
        self.net_unblended.is_some()
            || self.ri_net_effective.is_some()
            || self.sp_net_effective.is_some()
    }

    /// Header name of column `index`.
    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// Every column index the reader touches (for Parquet projection).
    pub fn used(&self) -> Vec<usize> {
        let mut used = vec![
            self.start,
            self.account,
            self.product_code,
            self.usage_type,
            self.amount,
            self.line_item_type,
        ];
        used.extend(
            [
                self.blended,
                self.unblended,
                self.region,
                self.pricing_unit,
                self.vcpu,
                self.instance_type,
                self.resource_id,
                self.net_unblended,
                self.ri_net_effective,
                self.sp_net_effective,
                self.product_map,
                self.tag,
                self.tag_map.as_ref().map(|(i, _)| *i),
            ]
            .into_iter()
            .flatten(),
        );
        used.sort_unstable();
        used.dedup();
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const SNAKE: &[&str] = &[
        "line_item_usage_start_date",
        "line_item_usage_account_id",
        "line_item_product_code",
        "line_item_usage_type",
        "line_item_usage_amount",
        "line_item_line_item_type",
        "line_item_unblended_cost",
    ];

    #[test]
    fn detects_styles() {
        assert_eq!(
            HeaderStyle::detect(["lineItem/UsageType", "x"]),
            HeaderStyle::Legacy
        );
        assert_eq!(
            HeaderStyle::detect(["line_item_usage_type", "product_region"]),
            HeaderStyle::Athena
        );
        assert_eq!(
            HeaderStyle::detect(["line_item_usage_type", "product"]),
            HeaderStyle::Cur2
        );
        assert_eq!(
            HeaderStyle::detect(["line_item_usage_type", "product_region_code"]),
            HeaderStyle::Cur2
        );
    }

    #[test]
    fn region_may_come_from_product_map() {
        let mut list = SNAKE.to_vec();
        list.extend(["product", "resource_tags"]);
        let cols = Columns::resolve(names(&list), Some("Team"), Path::new("f.csv")).unwrap();
        assert_eq!(cols.style, HeaderStyle::Cur2);
        assert_eq!(cols.region, None);
        assert_eq!(cols.product_map, Some(7));
        assert_eq!(cols.tag_map, Some((8, "user_team".to_owned())));
        assert_eq!(cols.blended, None);
        assert_eq!(cols.unblended, Some(6));
    }

    #[test]
    fn missing_region_is_named_in_style() {
        let err = Columns::resolve(names(SNAKE), None, Path::new("f.csv")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.csv: missing required column product_region (detected header style: athena)"
        );
    }

    #[test]
    fn missing_cost_is_named() {
        let list: Vec<&str> = SNAKE[..6]
            .iter()
            .copied()
            .chain(["product_region"])
            .collect();
        let err = Columns::resolve(names(&list), None, Path::new("f.csv")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.csv: missing required column line_item_unblended_cost (detected header style: athena)"
        );
    }

    #[test]
    fn bom_is_stripped_and_athena_tag_found() {
        let mut list = SNAKE.to_vec();
        list[0] = "\u{feff}line_item_usage_start_date";
        list.extend(["product_region", "resource_tags_user_cost_center"]);
        let cols =
            Columns::resolve(names(&list), Some("user:CostCenter"), Path::new("f.csv")).unwrap();
        assert_eq!(cols.start, 0);
        assert_eq!(cols.tag, Some(8));
        assert_eq!(cols.used(), vec![0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }
}

/// AWS's net amortised cost of one line from its net cost columns: Savings
/// Plan covered usage costs its net Savings Plan effective cost, Reserved
/// Instance (discounted) usage its net reservation effective cost, anything
/// else its net unblended cost. A column the file lacks counts as the net
/// unblended cost (then the unblended cost).
pub(crate) fn net_amortized(
    line_item_type: &str,
    unblended: f64,
    net_unblended: Option<f64>,
    ri_net_effective: Option<f64>,
    sp_net_effective: Option<f64>,
) -> f64 {
    let net = net_unblended.unwrap_or(unblended);
    match line_item_type {
        "SavingsPlanCoveredUsage" => sp_net_effective.unwrap_or(net),
        "DiscountedUsage" => ri_net_effective.unwrap_or(net),
        _ => net,
    }
}

#[cfg(test)]
mod net_cost_tests {
    use std::path::Path;

    use super::net_amortized;

    #[test]
    fn net_amortized_follows_the_line_item_type() {
        assert_eq!(
            net_amortized("Usage", 10.0, Some(9.0), Some(4.0), Some(3.0)),
            9.0
        );
        assert_eq!(
            net_amortized("DiscountedUsage", 0.0, Some(0.0), Some(4.0), Some(3.0)),
            4.0
        );
        assert_eq!(
            net_amortized(
                "SavingsPlanCoveredUsage",
                10.0,
                Some(9.0),
                Some(4.0),
                Some(3.0)
            ),
            3.0
        );
        // Missing columns fall back to the net unblended, then the unblended cost.
        assert_eq!(
            net_amortized("SavingsPlanCoveredUsage", 10.0, Some(9.0), None, None),
            9.0
        );
        assert_eq!(net_amortized("Usage", 10.0, None, Some(4.0), None), 10.0);
    }

    #[test]
    fn csv_lines_carry_resource_id_and_net_amortized_cost() {
        let csv = "line_item_usage_start_date,line_item_usage_account_id,line_item_product_code,line_item_usage_type,\
line_item_usage_amount,line_item_line_item_type,line_item_unblended_cost,product_region_code,line_item_resource_id,\
line_item_net_unblended_cost,savings_plan_net_savings_plan_effective_cost\n\
2023-10-01T00:00:00Z,111111111111,AmazonEC2,BoxUsage:m5.large,1,SavingsPlanCoveredUsage,0.096,us-east-1,i-0abc,0.09,0.05\n\
2023-10-01T00:00:00Z,111111111111,AmazonEC2,BoxUsage:m5.large,1,Usage,0.096,us-east-1,,0.09,\n";
        let mut seen = Vec::new();
        crate::read_reader(
            csv.as_bytes(),
            Path::new("t.csv"),
            &Default::default(),
            &mut |l| {
                seen.push((l.resource_id.to_owned(), l.net_amortized_cost));
            },
        )
        .unwrap();
        assert_eq!(
            seen,
            vec![
                ("i-0abc".to_owned(), Some(0.05)),
                (String::new(), Some(0.09))
            ]
        );
        let plain = "line_item_usage_start_date,line_item_usage_account_id,line_item_product_code,line_item_usage_type,\
line_item_usage_amount,line_item_line_item_type,line_item_unblended_cost,product_region_code\n\
2023-10-01T00:00:00Z,111111111111,AmazonEC2,BoxUsage:m5.large,1,Usage,0.096,us-east-1\n";
        let mut none = Vec::new();
        crate::read_reader(
            plain.as_bytes(),
            Path::new("t.csv"),
            &Default::default(),
            &mut |l| {
                none.push((l.resource_id.to_owned(), l.net_amortized_cost));
            },
        )
        .unwrap();
        assert_eq!(none, vec![(String::new(), None)]);
    }
}
