//! Mapping the tag key a user types onto each CUR format's column or map key.
//!
//! AWS writes the same cost-allocation tag three ways:
//! - legacy CUR CSV: a column `resourceTags/user:CostCenter` (key as typed);
//! - Athena-style snake_case CSV/Parquet: a column `resource_tags_user_cost_center`;
//! - CUR 2.0 (Data Exports): key `user_cost_center` of the `resource_tags` map.
//!
//! The snake_case forms come from AWS's column-name normalisation: camelCase
//! word boundaries become `_`, everything is lowercased, any other character
//! becomes `_`, and runs of `_` collapse. [`snake_case`] implements that rule.

/// A user tag key resolved into the name each format uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagKey {
    /// Key with its source prefix, as in legacy CUR: `user:Team`, `aws:createdBy`.
    pub prefixed: String,
    /// Legacy CUR column: `resourceTags/user:Team`.
    pub legacy_column: String,
    /// Athena snake_case column: `resource_tags_user_team`.
    pub athena_column: String,
    /// CUR 2.0 `resource_tags` map key: `user_team`.
    pub cur2_key: String,
}

impl TagKey {
    /// Resolves a key as typed by the user. `Team` and `user:Team` are the
    /// same key; keys starting with `aws:` keep that prefix.
    pub fn new(typed: &str) -> TagKey {
        let typed = typed.trim();
        let prefixed = if has_prefix(typed, "user:") || has_prefix(typed, "aws:") {
            typed.to_owned()
        } else {
            format!("user:{typed}")
        };
        let cur2_key = snake_case(&prefixed);
        TagKey {
            legacy_column: format!("resourceTags/{prefixed}"),
            athena_column: format!("resource_tags_{cur2_key}"),
            cur2_key,
            prefixed,
        }
    }
}

fn has_prefix(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// AWS's snake_case normalisation of a column or tag name:
/// `user:CostCenter` → `user_cost_center`, `lineItem/UsageType` → `line_item_usage_type`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    let mut previous: Option<char> = None;
    for c in name.chars() {
        if c.is_alphanumeric() {
            let boundary = c.is_uppercase()
                && previous.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit());
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
        previous = Some(c);
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(typed: &str, legacy: &str, athena: &str, cur2: &str) {
        let key = TagKey::new(typed);
        assert_eq!(key.legacy_column, legacy, "{typed}");
        assert_eq!(key.athena_column, athena, "{typed}");
        assert_eq!(key.cur2_key, cur2, "{typed}");
    }

    #[test]
    fn maps_typed_keys_to_every_format() {
        check(
            "Team",
            "resourceTags/user:Team",
            "resource_tags_user_team",
            "user_team",
        );
        check(
            "user:Team",
            "resourceTags/user:Team",
            "resource_tags_user_team",
            "user_team",
        );
        check(
            "CostCenter",
            "resourceTags/user:CostCenter",
            "resource_tags_user_cost_center",
            "user_cost_center",
        );
        check(
            "aws:createdBy",
            "resourceTags/aws:createdBy",
            "resource_tags_aws_created_by",
            "aws_created_by",
        );
        check(
            "cost-center",
            "resourceTags/user:cost-center",
            "resource_tags_user_cost_center",
            "user_cost_center",
        );
    }

    #[test]
    fn snake_case_matches_aws_column_names() {
        assert_eq!(snake_case("lineItem/UsageType"), "line_item_usage_type");
        assert_eq!(snake_case("product/vcpu"), "product_vcpu");
        assert_eq!(snake_case("identity/LineItemId"), "identity_line_item_id");
        assert_eq!(snake_case("user:env__Name "), "user_env_name");
    }
}
