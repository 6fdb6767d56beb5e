//! Line items into stored rows: every usage line goes to the emissions
//! library's [`CurEstimator`] (the `canopy` methodology with the options
//! `canopy estimate` uses by default) and, in parallel, to cost sums per
//! output key. The estimator groups by UTC day, account, region, service
//! and usage type; resource id and team ride in its group tag (estimates
//! are linear in usage and cost, so the finer grouping sums to what
//! `canopy estimate` gives for the same file).

use std::collections::HashMap;

use canopy_emissions::cur::{CurEstimator, CurLine, EstimateOptions, Methodology, Period};

/// Line item types that carry usage (the estimator's own filter); other
/// lines (tax, fees, credits, refunds) are counted, not stored.
const USAGE_TYPES: [&str; 3] = ["Usage", "DiscountedUsage", "SavingsPlanCoveredUsage"];

/// Separates resource id and team inside the estimator's tag (a control
/// character that neither contains).
const SEP: char = '\u{1f}';

/// The team when neither the tag nor the account's default names one (the agent data's rule).
pub const UNTAGGED_TEAM: &str = "untagged";

/// One stored row: key, costs and (where estimated) the figures.
#[derive(Debug, Clone, PartialEq)]
pub struct BillingRow {
    /// UTC day, Unix seconds of its midnight.
    pub day_unix_s: i64,
    pub account_id: String,
    pub region: String,
    pub service: String,
    pub usage_type: String,
    /// '' when the line items name no resource.
    pub resource_id: String,
    pub team: String,
    pub line_items: u64,
    pub unblended_cost: f64,
    pub net_amortized_cost: f64,
    /// `None` when the methodology gave no estimate.
    pub figures: Option<Figures>,
}

/// Energy and CO2e of one row, grams (as agent facts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub energy_kwh: f64,
    pub it_energy_kwh: Option<f64>,
    pub location_g_co2e: f64,
    pub market_g_co2e: f64,
    pub low_g_co2e: f64,
    pub high_g_co2e: f64,
    pub embodied_g_co2e: f64,
    pub embodied_low_g_co2e: f64,
    pub embodied_high_g_co2e: f64,
}

#[derive(Debug, Default, Clone, Copy)]
struct CostSums {
    line_items: u64,
    unblended: f64,
    net_amortized: f64,
}

/// Accumulates one delivery (all its files). Memory grows with the number
/// of distinct output keys (day × account × … × resource × team), never
/// with the number of line items.
pub struct Accumulator {
    estimator: CurEstimator,
    costs: HashMap<Box<str>, CostSums>,
    default_teams: HashMap<String, String>,
    key: String,
    tag: String,
    /// Usage line items read.
    pub usage_line_items: u64,
    /// Line items of other types (not stored).
    pub other_line_items: u64,
}

/// The estimator options of `canopy estimate` with its defaults (canopy
/// methodology, built-in annual location factors, default market
/// settings), per day and usage type.
pub fn estimate_options() -> EstimateOptions {
    EstimateOptions {
        methodology: Methodology::Canopy,
        period: Period::Day,
        by_usage_type: true,
        ..EstimateOptions::default()
    }
}

fn day_of(unix_s: i64) -> i64 {
    unix_s.div_euclid(86_400) * 86_400
}

impl Accumulator {
    /// An empty accumulator; `default_teams` maps account id → default team.
    pub fn new(default_teams: HashMap<String, String>) -> Self {
        Accumulator {
            estimator: CurEstimator::new(estimate_options()),
            costs: HashMap::new(),
            default_teams,
            key: String::new(),
            tag: String::new(),
            usage_line_items: 0,
            other_line_items: 0,
        }
    }

    /// Adds one line item (its `tag` is the team tag's value).
    pub fn add(&mut self, line: &CurLine<'_>) {
        if !USAGE_TYPES.contains(&line.line_item_type) {
            self.other_line_items += 1;
            return;
        }
        self.usage_line_items += 1;
        let team = line
            .tag
            .filter(|t| !t.is_empty())
            .or_else(|| self.default_teams.get(line.account_id).map(String::as_str))
            .unwrap_or(UNTAGGED_TEAM);
        // Control characters cannot appear in ids or tag values AWS emits;
        // a stray one would only split the key differently, never mix rows.
        self.tag.clear();
        self.tag.push_str(line.resource_id);
        self.tag.push(SEP);
        self.tag.push_str(team);
        let mut tagged = *line;
        tagged.tag = Some(&self.tag);
        self.estimator.add(&tagged);

        self.key.clear();
        use std::fmt::Write;
        let _ = write!(
            self.key,
            "{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
            day_of(line.usage_start_unix_s),
            line.account_id,
            line.region,
            line.product_code,
            line.usage_type,
            self.tag
        );
        let sums = match self.costs.get_mut(self.key.as_str()) {
            Some(s) => s,
            None => self
                .costs
                .entry(self.key.clone().into_boxed_str())
                .or_default(),
        };
        sums.line_items += 1;
        sums.unblended += line.unblended_cost;
        sums.net_amortized += line.net_amortized_cost.unwrap_or(line.unblended_cost);
    }

    /// Estimates everything and returns the rows, sorted by key.
    pub fn finish(self) -> Vec<BillingRow> {
        let estimate = self.estimator.finish();
        let mut figures: HashMap<String, Figures> = HashMap::with_capacity(estimate.rows.len());
        for r in estimate.rows {
            let (Some(energy_kwh), Some(location), Some(market)) =
                (r.energy_kwh, r.co2e_location_kg, r.co2e_market_kg)
            else {
                continue;
            };
            let key = format!(
                "{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}",
                r.period_start_unix_s,
                r.account_id,
                r.region,
                r.service,
                r.usage_type.as_deref().unwrap_or(""),
                r.tag.as_deref().unwrap_or("")
            );
            let g = |kg: Option<f64>| kg.unwrap_or(0.0) * 1000.0;
            figures.insert(
                key,
                Figures {
                    energy_kwh,
                    it_energy_kwh: r.it_energy_kwh,
                    location_g_co2e: location * 1000.0,
                    market_g_co2e: market * 1000.0,
                    low_g_co2e: r.co2e_low_kg.map_or(location * 1000.0, |v| v * 1000.0),
                    high_g_co2e: r.co2e_high_kg.map_or(location * 1000.0, |v| v * 1000.0),
                    embodied_g_co2e: g(r.co2e_embodied_kg),
                    embodied_low_g_co2e: g(r.co2e_embodied_low_kg),
                    embodied_high_g_co2e: g(r.co2e_embodied_high_kg),
                },
            );
        }
        let mut rows: Vec<BillingRow> = self
            .costs
            .into_iter()
            .map(|(key, sums)| {
                let mut parts = key.split(SEP);
                let mut next = || parts.next().unwrap_or("").to_owned();
                let day: i64 = next().parse().unwrap_or(0);
                let (account_id, region, service, usage_type, resource_id, team) =
                    (next(), next(), next(), next(), next(), next());
                BillingRow {
                    figures: figures.get(&*key).copied(),
                    day_unix_s: day,
                    account_id,
                    region,
                    service,
                    usage_type,
                    resource_id,
                    team,
                    line_items: sums.line_items,
                    unblended_cost: sums.unblended,
                    net_amortized_cost: sums.net_amortized,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            (
                a.day_unix_s,
                &a.account_id,
                &a.region,
                &a.service,
                &a.usage_type,
                &a.resource_id,
                &a.team,
            )
                .cmp(&(
                    b.day_unix_s,
                    &b.account_id,
                    &b.region,
                    &b.service,
                    &b.usage_type,
                    &b.resource_id,
                    &b.team,
                ))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(kind: &'a str, resource: &'a str, tag: Option<&'a str>, cost: f64) -> CurLine<'a> {
        CurLine {
            usage_start_unix_s: 1_696_118_400 + 3_600 * 5,
            account_id: "111111111111",
            region: "eu-west-1",
            product_code: "AmazonEC2",
            usage_type: "EUW1-BoxUsage:m5.large",
            pricing_unit: "Hrs",
            line_item_type: kind,
            instance_type: "m5.large",
            product_vcpu: Some(2.0),
            usage_amount: 1.0,
            blended_cost: cost,
            unblended_cost: cost,
            tag,
            resource_id: resource,
            net_amortized_cost: Some(cost * 0.5),
        }
    }

    #[test]
    fn keys_by_resource_and_team_and_skips_other_types() {
        let mut acc = Accumulator::new(HashMap::from([(
            "111111111111".to_owned(),
            "platform".to_owned(),
        )]));
        acc.add(&line("Usage", "i-1", Some("web"), 0.1));
        acc.add(&line("Usage", "i-1", Some("web"), 0.1));
        acc.add(&line("Usage", "i-2", None, 0.2));
        acc.add(&line("Tax", "", None, 9.0));
        assert_eq!((acc.usage_line_items, acc.other_line_items), (3, 1));
        let rows = acc.finish();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                rows[0].resource_id.as_str(),
                rows[0].team.as_str(),
                rows[0].line_items
            ),
            ("i-1", "web", 2)
        );
        assert_eq!(
            (rows[1].resource_id.as_str(), rows[1].team.as_str()),
            ("i-2", "platform")
        );
        assert_eq!(rows[0].day_unix_s, 1_696_118_400);
        assert!(
            (rows[0].unblended_cost - 0.2).abs() < 1e-12
                && (rows[0].net_amortized_cost - 0.1).abs() < 1e-12
        );
        let f = rows[0].figures.expect("an m5.large hour is estimated");
        assert!(
            f.energy_kwh > 0.0 && f.location_g_co2e > f.embodied_g_co2e && f.embodied_g_co2e > 0.0
        );
        // Two identical hours give twice one hour.
        let one = rows[1].figures.unwrap();
        assert!((f.energy_kwh - 2.0 * one.energy_kwh).abs() < 1e-12);
    }
}
