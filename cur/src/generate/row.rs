//! One generated line item and the iterator that produces them.

use canopy_emissions::time::days_in_month_of;

use super::GeneratorConfig;
use super::catalog::{
    Amount, CHARGE_TYPES, COST_CENTERS, EC2, Instance, Prefix, REGIONS, Region, TEAMS, TEMPLATES,
    Template,
};
use super::rng::SplitMix64;

/// A tag cell: AWS distinguishes a missing key (CUR 2.0 map has no entry)
/// from an empty value; legacy and Athena CSV write both as an empty cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagValue {
    /// The resource has no such tag.
    Missing,
    /// The tag exists with an empty value.
    Empty,
    /// The tag's value.
    Value(&'static str),
}

impl TagValue {
    /// Text of the cell in flat formats (empty when missing or empty).
    pub fn as_cell(&self) -> &'static str {
        match self {
            TagValue::Value(v) => v,
            TagValue::Missing | TagValue::Empty => "",
        }
    }

    /// The tag as a reader reports it: `None` unless there is a non-empty value.
    pub fn as_line_tag(&self) -> Option<&'static str> {
        match self {
            TagValue::Value(v) if !v.is_empty() => Some(v),
            _ => None,
        }
    }
}

/// One synthetic CUR line item, format-independent.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedRow {
    /// `identity/LineItemId`.
    pub line_item_id: String,
    /// `bill/PayerAccountId`.
    pub payer_account_id: String,
    /// `lineItem/UsageAccountId`.
    pub usage_account_id: String,
    /// `lineItem/LineItemType`.
    pub line_item_type: &'static str,
    /// `lineItem/UsageStartDate`.
    pub usage_start_unix_s: i64,
    /// `lineItem/UsageEndDate`.
    pub usage_end_unix_s: i64,
    /// `lineItem/ProductCode`.
    pub product_code: &'static str,
    /// `lineItem/UsageType`, with its region prefix.
    pub usage_type: String,
    /// `lineItem/Operation`.
    pub operation: &'static str,
    /// `lineItem/ResourceId` (empty for most non-resource lines).
    pub resource_id: String,
    /// `lineItem/UsageAmount`, in `pricing_unit`.
    pub usage_amount: f64,
    /// `lineItem/BlendedCost`, USD.
    pub blended_cost: f64,
    /// `lineItem/UnblendedCost`, USD.
    pub unblended_cost: f64,
    /// `pricing/unit`.
    pub pricing_unit: &'static str,
    /// `product/region` (region code; empty for global services).
    pub region: &'static str,
    /// `product/instanceType`.
    pub instance_type: &'static str,
    /// `product/vcpu`; `None` for non-instance lines and for some instance lines.
    pub vcpu: Option<u32>,
    /// `resourceTags/user:Team`.
    pub team: TagValue,
    /// `resourceTags/user:CostCenter`.
    pub cost_center: TagValue,
}

/// Share of rows that are charges rather than usage (tax, credits, fees...).
const CHARGE_SHARE: f64 = 0.07;
/// CloudFront edge-location prefixes.
const EDGES: &[&str] = &["US", "EU", "AP", "CA"];

/// Iterator over the rows described by a [`GeneratorConfig`].
pub struct Generator {
    rows: u64,
    next: u64,
    start_unix_s: i64,
    total_hours: u64,
    rng: SplitMix64,
    accounts: Vec<String>,
    payer: String,
    charge_weights: Vec<u32>,
    region_weights: Vec<u32>,
    /// The resources whose usage the file bills; every usage line belongs to one.
    fleet: Vec<Resource>,
}

/// One billed resource: everything that stays the same from hour to hour.
struct Resource {
    template: &'static Template,
    region: &'static Region,
    usage_type: String,
    instance: Option<&'static Instance>,
    account: usize,
    vcpu_in_cur: bool,
    resource_id: String,
    team: TagValue,
    cost_center: TagValue,
}

impl Generator {
    /// A generator for `config`.
    pub fn new(config: &GeneratorConfig) -> Generator {
        let mut rng = SplitMix64::new(config.seed);
        let account =
            |rng: &mut SplitMix64| format!("{}", 100_000_000_000 + rng.below(900_000_000_000));
        let payer = account(&mut rng);
        let accounts = (0..config.accounts.max(1))
            .map(|_| account(&mut rng))
            .collect();
        let total_hours = u64::from(config.days.max(1)) * 24;
        let mut generator = Generator {
            rows: config.rows,
            next: 0,
            start_unix_s: config.start_unix_s,
            total_hours,
            rng,
            accounts,
            payer,
            charge_weights: CHARGE_TYPES.iter().map(|c| c.1).collect(),
            region_weights: REGIONS.iter().map(|r| r.weight).collect(),
            fleet: Vec::new(),
        };
        let size = config.fleet_size();
        let template_weights: Vec<u32> = TEMPLATES.iter().map(|t| t.weight).collect();
        generator.fleet = (0..size).map(|_| generator.resource(&template_weights)).collect();
        generator
    }

    /// Draws one resource of the fleet.
    fn resource(&mut self, template_weights: &[u32]) -> Resource {
        let template: &'static Template = &TEMPLATES[self.rng.weighted(template_weights)];
        let region = self.region();
        let mut usage_type = match template.prefix {
            Prefix::Regional if region.code == "us-east-1" => String::new(),
            Prefix::Regional | Prefix::Always => format!("{}-", region.prefix),
            Prefix::InterRegion => format!("{}-{}-", region.prefix, self.region().prefix),
            Prefix::Edge => format!("{}-", EDGES[self.rng.below(EDGES.len() as u64) as usize]),
            Prefix::Global => String::new(),
        };
        usage_type.push_str(template.usage);
        let instance: Option<&'static Instance> = (!template.instances.is_empty())
            .then(|| &template.instances[self.rng.below(template.instances.len() as u64) as usize]);
        if let Some(instance) = instance {
            usage_type.push_str(instance.name);
        }
        let account = self.rng.below(self.accounts.len() as u64) as usize;
        let vcpu_in_cur = self.rng.chance(template.vcpu_share);
        let resource_id = if instance.is_some() && template.product_code == "AmazonEC2" {
            self.id("i-", 17, b"0123456789abcdef")
        } else if template.usage.starts_with("EBS:VolumeUsage") {
            self.id("vol-", 17, b"0123456789abcdef")
        } else {
            String::new()
        };
        let team = self.tag(TEAMS, 0.55, 0.15);
        let cost_center = self.tag(COST_CENTERS, 0.4, 0.05);
        Resource { template, region, usage_type, instance, account, vcpu_in_cur, resource_id, team, cost_center }
    }

    fn id(&mut self, prefix: &str, len: usize, alphabet: &[u8]) -> String {
        let mut id = String::with_capacity(prefix.len() + len);
        id.push_str(prefix);
        for _ in 0..len {
            id.push(char::from(
                alphabet[self.rng.below(alphabet.len() as u64) as usize],
            ));
        }
        id
    }

    fn tag(
        &mut self,
        values: &'static [&'static str],
        value_share: f64,
        empty_share: f64,
    ) -> TagValue {
        let r = self.rng.unit();
        if r < value_share {
            TagValue::Value(values[self.rng.below(values.len() as u64) as usize])
        } else if r < value_share + empty_share {
            TagValue::Empty
        } else {
            TagValue::Missing
        }
    }

    fn region(&mut self) -> &'static Region {
        &REGIONS[self.rng.weighted(&self.region_weights)]
    }

    fn usage_row(&mut self, row: &mut GeneratedRow) {
        let member = &self.fleet[self.rng.below(self.fleet.len() as u64) as usize];
        let (template, region, instance) = (member.template, member.region, member.instance);
        row.usage_account_id.clone_from(&self.accounts[member.account]);
        row.usage_type.clone_from(&member.usage_type);
        row.resource_id.clone_from(&member.resource_id);
        row.team = member.team;
        row.cost_center = member.cost_center;
        let vcpu_in_cur = member.vcpu_in_cur;
        let usage_amount = match template.amount {
            Amount::Hours if self.rng.chance(0.85) => 1.0,
            Amount::Hours => round_to((1 + self.rng.below(11)) as f64 / 12.0, 6),
            Amount::GbMonth(low, high) => {
                let size_gb = self.rng.range(low, high).round();
                let hours_in_month = f64::from(days_in_month_of(row.usage_start_unix_s)) * 24.0;
                round_to(size_gb / hours_in_month, 10)
            }
            Amount::Range(low, high, decimals) => {
                round_to(self.rng.range(low, high), decimals).max(low)
            }
        };
        let usd_per_unit = instance.map_or(template.usd_per_unit, |i| i.usd_per_hour);
        let list_cost = round_to(usage_amount * usd_per_unit, 10);
        // A reserved-only template (OpenSearch `HeavyUsage:`) draws no random number here.
        let reserved = template.reserved_only || (template.reservable && self.rng.chance(0.1));
        row.line_item_type = if reserved {
            "DiscountedUsage"
        } else if template.savings_plan && self.rng.chance(0.12) {
            "SavingsPlanCoveredUsage"
        } else {
            "Usage"
        };
        if row.line_item_type == "DiscountedUsage" {
            // Reserved usage: the cost sits in the reservation, not the line.
            row.unblended_cost = 0.0;
            row.blended_cost = round_to(list_cost * 0.6, 10);
        } else {
            row.unblended_cost = list_cost;
            row.blended_cost = if self.rng.chance(0.2) {
                round_to(list_cost * 0.97, 10)
            } else {
                list_cost
            };
        }
        row.product_code = template.product_code;
        row.operation = template.operation;
        row.pricing_unit = template.unit;
        row.usage_amount = usage_amount;
        row.region = match template.prefix {
            Prefix::Edge | Prefix::Global => "",
            _ => region.code,
        };
        row.instance_type = instance.map_or("", |i| i.name);
        row.vcpu = instance.filter(|_| vcpu_in_cur).map(|i| i.vcpu);
    }

    fn charge_row(&mut self, row: &mut GeneratedRow) {
        let kind = CHARGE_TYPES[self.rng.weighted(&self.charge_weights)].0;
        row.line_item_type = kind;
        let region = self.region();
        let regional = |usage: &str| {
            if region.code == "us-east-1" {
                usage.to_owned()
            } else {
                format!("{}-{usage}", region.prefix)
            }
        };
        let (product_code, usage_type, unit, amount, cost, region_code): (
            &str,
            String,
            &str,
            f64,
            f64,
            &str,
        ) = match kind {
            "Tax" => {
                let products = ["AmazonEC2", "AmazonS3", "AmazonRDS", "AWSLambda"];
                let product = products[self.rng.below(4) as usize];
                (
                    product,
                    String::new(),
                    "",
                    0.0,
                    round_to(self.rng.range(0.01, 50.0), 2),
                    "",
                )
            }
            "Fee" => ("AmazonRoute53", "HostedZone".to_owned(), "", 1.0, 0.5, ""),
            "Credit" => (
                "AmazonEC2",
                String::new(),
                "",
                0.0,
                -round_to(self.rng.range(1.0, 100.0), 2),
                "",
            ),
            "Refund" => (
                "AmazonS3",
                String::new(),
                "",
                0.0,
                -round_to(self.rng.range(0.1, 20.0), 2),
                "",
            ),
            "RIFee" => (
                "AmazonEC2",
                regional("HeavyUsage:m5.large"),
                "Hrs",
                1.0,
                0.062,
                region.code,
            ),
            "SavingsPlanRecurringFee" => (
                "ComputeSavingsPlans",
                "ComputeSP:1yrNoUpfront".to_owned(),
                "Hrs",
                1.0,
                round_to(self.rng.range(0.5, 5.0), 4),
                "",
            ),
            "SavingsPlanNegation" => (
                "AmazonEC2",
                regional("BoxUsage:m5.large"),
                "Hrs",
                1.0,
                -0.096,
                region.code,
            ),
            _ => {
                let gb = round_to(self.rng.range(0.0, 10.0), 6);
                (
                    "AmazonCloudFront",
                    "US-DataTransfer-Out-Bytes".to_owned(),
                    "GB",
                    gb,
                    -round_to(gb * 0.085, 10),
                    "",
                )
            }
        };
        let cost = if cost == 0.0 { 0.0 } else { cost };
        row.product_code = product_code;
        row.usage_type = usage_type;
        row.operation = "";
        row.pricing_unit = unit;
        row.usage_amount = amount;
        row.blended_cost = cost;
        row.unblended_cost = cost;
        row.region = region_code;
        if kind == "SavingsPlanNegation" {
            let m5_large = &EC2[0];
            row.instance_type = m5_large.name;
            row.vcpu = Some(m5_large.vcpu);
        }
    }
}

impl Iterator for Generator {
    type Item = GeneratedRow;

    fn next(&mut self) -> Option<GeneratedRow> {
        if self.next >= self.rows {
            return None;
        }
        let hour =
            (u128::from(self.next) * u128::from(self.total_hours) / u128::from(self.rows)) as i64;
        self.next += 1;
        let usage_start_unix_s = self.start_unix_s + hour * 3_600;
        let mut row = GeneratedRow {
            line_item_id: self.id("", 20, b"abcdefghijklmnopqrstuvwxyz234567"),
            payer_account_id: self.payer.clone(),
            usage_account_id: String::new(),
            line_item_type: "Usage",
            usage_start_unix_s,
            usage_end_unix_s: usage_start_unix_s + 3_600,
            product_code: "",
            usage_type: String::new(),
            operation: "",
            resource_id: String::new(),
            usage_amount: 0.0,
            blended_cost: 0.0,
            unblended_cost: 0.0,
            pricing_unit: "",
            region: "",
            instance_type: "",
            vcpu: None,
            team: TagValue::Missing,
            cost_center: TagValue::Missing,
        };
        if self.rng.chance(CHARGE_SHARE) {
            let account = self.rng.below(self.accounts.len() as u64) as usize;
            row.usage_account_id.clone_from(&self.accounts[account]);
            self.charge_row(&mut row);
        } else {
            self.usage_row(&mut row);
        }
        Some(row)
    }
}

/// `value` rounded to `decimals` decimal places.
fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let rounded = (value * scale).round() / scale;
    if rounded == 0.0 { 0.0 } else { rounded }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows_and_rows_stay_in_window() {
        let config = GeneratorConfig {
            rows: 500,
            ..GeneratorConfig::default()
        };
        let a: Vec<_> = Generator::new(&config).collect();
        let b: Vec<_> = Generator::new(&config).collect();
        assert_eq!(a.len(), 500);
        assert_eq!(a, b);
        let end = config.start_unix_s + i64::from(config.days) * 86_400;
        assert!(
            a.iter()
                .all(|r| r.usage_start_unix_s >= config.start_unix_s && r.usage_start_unix_s < end)
        );
        let accounts: std::collections::BTreeSet<_> =
            a.iter().map(|r| r.usage_account_id.as_str()).collect();
        assert_eq!(accounts.len(), 2);
        let other = GeneratorConfig { seed: 2, ..config };
        assert_ne!(a, Generator::new(&other).collect::<Vec<_>>());
    }

    #[test]
    fn hourly_amounts_are_at_most_one_hour() {
        let config = GeneratorConfig {
            rows: 5_000,
            ..GeneratorConfig::default()
        };
        for row in Generator::new(&config) {
            if row.pricing_unit == "Hrs" {
                assert!(row.usage_amount > 0.0 && row.usage_amount <= 1.0, "{row:?}");
            }
            assert!(row.usage_amount >= 0.0, "{row:?}");
        }
    }

    #[test]
    fn mix_covers_every_line_item_type() {
        let config = GeneratorConfig {
            rows: 20_000,
            ..GeneratorConfig::default()
        };
        let types: std::collections::BTreeSet<_> =
            Generator::new(&config).map(|r| r.line_item_type).collect();
        let expected = [
            "BundledDiscount",
            "Credit",
            "DiscountedUsage",
            "Fee",
            "RIFee",
            "Refund",
            "SavingsPlanCoveredUsage",
            "SavingsPlanNegation",
            "SavingsPlanRecurringFee",
            "Tax",
            "Usage",
        ];
        assert_eq!(types.into_iter().collect::<Vec<_>>(), expected);
    }

    /// Issue 13 case 7: the mix bills OpenSearch instances by their suffixed
    /// names (`.elasticsearch`, `.search`), on demand and reserved, with and
    /// without `product/vcpu`, and the other managed-service prefixes.
    #[test]
    fn mix_covers_managed_service_instance_names() {
        let config = GeneratorConfig {
            rows: 20_000,
            resources: 2_000,
            ..GeneratorConfig::default()
        };
        let mut seen = std::collections::BTreeSet::new();
        for row in Generator::new(&config) {
            if row.product_code != "AmazonES" {
                seen.insert((row.product_code, "", "", false));
                continue;
            }
            let kind = row.usage_type.split(':').next().unwrap();
            let kind = &kind[kind.find('-').unwrap() + 1..];
            let suffix = if row.instance_type.ends_with(".elasticsearch") {
                ".elasticsearch"
            } else {
                assert!(row.instance_type.ends_with(".search"), "{row:?}");
                ".search"
            };
            assert!(row.usage_type.ends_with(row.instance_type), "{row:?}");
            assert_eq!(
                row.line_item_type == "DiscountedUsage",
                kind == "HeavyUsage",
                "{row:?}"
            );
            let kind = if kind == "HeavyUsage" {
                "HeavyUsage"
            } else {
                "ESInstance"
            };
            seen.insert(("AmazonES", kind, suffix, row.vcpu.is_some()));
            if row.instance_type.starts_with("t3.medium") && row.vcpu.is_none() {
                seen.insert(("AmazonES", "burstable", "", false));
            }
        }
        for kind in ["ESInstance", "HeavyUsage"] {
            for suffix in [".elasticsearch", ".search"] {
                for vcpu in [false, true] {
                    assert!(
                        seen.contains(&("AmazonES", kind, suffix, vcpu)),
                        "{kind} {suffix} vcpu {vcpu}"
                    );
                }
            }
        }
        assert!(seen.contains(&("AmazonES", "burstable", "", false)));
        for product in ["AmazonDAX", "AWSDatabaseMigrationSvc", "AmazonMemoryDB"] {
            assert!(seen.contains(&(product, "", "", false)), "{product}");
        }
    }

    #[test]
    fn rounding() {
        assert_eq!(round_to(0.123_456_789_01, 10), 0.123_456_789);
        assert_eq!(round_to(-0.000_000_000_01, 10), 0.0);
        assert!(round_to(-0.000_000_000_01, 10).is_sign_positive());
    }
}
