//! A small synthetic organisation loaded through `store_batch`: four accounts
//! in three OUs, three regions, four services, teams tagged cleanly, with
//! messy keys (`Team`, `team-name`) and not at all; hourly facts over 62 days
//! and 5-minute facts over the last two hours before [`NOW`].

use canopy_aggregator::model::{Batch, FactRow, InventoryRow, Quality};
use sqlx::PgPool;

use crate::support::{Rng, store};

/// The instant the tests evaluate at: 2026-11-20T12:00:00Z (day 20_777).
pub const NOW: i64 = 20_777 * 86_400 + 12 * 3_600;
/// Days of hourly history before [`NOW`].
pub const DAYS: i64 = 62;

/// (account, name, OU path).
pub const ACCOUNTS: [(&str, &str, &str); 4] = [
    ("100000000001", "web-prod", "r-root/ou-prod"),
    ("100000000002", "data-prod", "r-root/ou-prod"),
    ("100000000003", "ml-sandbox", "r-root/ou-sandbox"),
    ("100000000004", "shared", "r-root/ou-shared"),
];
/// An account known from AWS Organizations with no agent and no data.
pub const ACCOUNT_WITHOUT_AGENT: &str = "100000000009";
const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "eu-north-1"];
const SERVICES: [(&str, &str); 4] = [
    ("AmazonEC2", "ec2:instance"),
    ("AmazonS3", "s3:bucket"),
    ("AmazonRDS", "rds:db"),
    ("AWSLambda", "lambda:function"),
];
const TAGS: [(&str, &str); 6] =
    [("team", "web"), ("team", "data"), ("team", "ml"), ("Team", "web"), ("team-name", "data"), ("", "")];
/// Resources per account.
pub const RESOURCES_PER_ACCOUNT: u64 = 6;

/// Resource `i` of account `a`: (resource id, region, service, resource type, tags).
pub fn resource(a: usize, i: u64) -> (String, &'static str, &'static str, &'static str, Vec<(String, String)>) {
    let region = REGIONS[(i as usize + a) % REGIONS.len()];
    let (service, resource_type) = SERVICES[i as usize % SERVICES.len()];
    let (k, v) = TAGS[(i as usize + 2 * a) % TAGS.len()];
    let tags = if k.is_empty() { vec![] } else { vec![(k.to_owned(), v.to_owned())] };
    (format!("res-{a}-{i}"), region, service, resource_type, tags)
}

fn fact(a: usize, i: u64, start_unix_s: i64, period_s: u32) -> FactRow {
    let (resource_id, region, service, resource_type, tags) = resource(a, i);
    let mut r = Rng::new(((a as u64 + 1) * 7_919) ^ i.wrapping_mul(104_729) ^ (start_unix_s as u64).wrapping_mul(31));
    // Diurnal shape: busier 08:00-20:00 UTC.
    let hour = start_unix_s.rem_euclid(86_400) / 3_600;
    let load = if (8..20).contains(&hour) { 2.0 } else { 1.0 };
    let energy_kwh = load * f64::from(period_s) / 3_600.0 * (50 + r.below(450)) as f64 / 1_000.0;
    let intensity_g_per_kwh = match region {
        "eu-north-1" => 30.0,
        "eu-west-1" => 290.0,
        _ => 380.0,
    };
    let location = energy_kwh * intensity_g_per_kwh;
    FactRow {
        record_key: format!("{resource_id}/total"),
        revision: 1,
        period_start_unix_s: start_unix_s,
        period_s,
        account_id: ACCOUNTS[a].0.to_owned(),
        region: region.to_owned(),
        resource_id,
        resource_type: resource_type.to_owned(),
        service: service.to_owned(),
        team: None,
        tags: Some(tags),
        quality: Quality::ALL[r.below(3) as usize],
        energy_kwh,
        location_g_co2e: location,
        market_g_co2e: location * 0.6,
        low_g_co2e: location * 0.8,
        high_g_co2e: location * 1.3,
        methodology_version: "canopy-1".to_owned(),
        factor_source: "ccf".to_owned(),
        factor_vintage: "2024".to_owned(),
        accounting: None,
        realtime: false,
    }
}

/// The 5-minute group records of the real-time path for `facts`: summed per
/// (start, region, service, resource type, team under the `team` key,
/// quality), so the real-time view carries the same energy, CO2e and
/// quality split as the facts.
pub fn group_facts(facts: &[FactRow]) -> Vec<FactRow> {
    /// (start, region, service, resource type, team, quality).
    type GroupKey = (i64, String, String, String, Option<String>, &'static str);
    let mut groups: std::collections::BTreeMap<GroupKey, FactRow> = std::collections::BTreeMap::new();
    for f in facts {
        let team = f.tags.as_ref().and_then(|t| t.iter().find(|(k, _)| k == "team").map(|(_, v)| v.clone()));
        let key = (
            f.period_start_unix_s,
            f.region.clone(),
            f.service.clone(),
            f.resource_type.clone(),
            team.clone(),
            f.quality.as_str(),
        );
        let subject = format!("group:{}/{}/{}/{}", f.service, f.resource_type, team.as_deref().unwrap_or("-"), f.quality.as_str());
        let g = groups.entry(key).or_insert_with(|| FactRow {
            record_key: format!("{subject}@{}s", f.period_s),
            resource_id: subject,
            team,
            tags: Some(vec![]),
            energy_kwh: 0.0,
            location_g_co2e: 0.0,
            market_g_co2e: 0.0,
            low_g_co2e: 0.0,
            high_g_co2e: 0.0,
            realtime: true,
            ..f.clone()
        });
        g.energy_kwh += f.energy_kwh;
        g.location_g_co2e += f.location_g_co2e;
        g.market_g_co2e += f.market_g_co2e;
        g.low_g_co2e += f.low_g_co2e;
        g.high_g_co2e += f.high_g_co2e;
    }
    groups.into_values().collect()
}

/// Loads the organisation: the directory, then one agent per account sending
/// a batch per day of hourly facts (every third hour) and a batch of
/// 5-minute facts for the last two hours, with the inventory.
pub async fn load(pool: &PgPool) {
    for (account, name, ou) in
        ACCOUNTS.iter().copied().chain([(ACCOUNT_WITHOUT_AGENT, "new-account", "r-root/ou-prod")])
    {
        sqlx::query("INSERT INTO accounts (account_id, name, ou_path) VALUES ($1, $2, $3)")
            .bind(account)
            .bind(name)
            .bind(ou)
            .execute(pool)
            .await
            .expect("insert account");
    }
    let day0 = NOW - NOW.rem_euclid(86_400) - (DAYS - 1) * 86_400;
    for (a, (account_id, _, _)) in ACCOUNTS.iter().enumerate() {
        let agent_id = format!("agent-{account_id}");
        let mut sequence = 0;
        for d in 0..DAYS {
            let mut facts = Vec::new();
            for h in (0..24).step_by(3) {
                let start = day0 + d * 86_400 + h * 3_600;
                if start + 3_600 > NOW - 2 * 3_600 {
                    continue;
                }
                for i in 0..RESOURCES_PER_ACCOUNT {
                    facts.push(fact(a, i, start, 3_600));
                }
            }
            if facts.is_empty() {
                continue;
            }
            sequence += 1;
            store(pool, &Batch { agent_id: agent_id.clone(), sequence, facts, inventory: vec![] }).await;
        }
        let mut facts = Vec::new();
        let mut start = NOW - 2 * 3_600;
        while start < NOW {
            for i in 0..RESOURCES_PER_ACCOUNT {
                facts.push(fact(a, i, start, 300));
            }
            start += 300;
        }
        // The real-time path, as an agent sends it: the same energy again as
        // 5-minute group records, which the aggregator keeps apart.
        let groups = group_facts(&facts);
        facts.extend(groups);
        let inventory = (0..RESOURCES_PER_ACCOUNT)
            .map(|i| {
                let (resource_id, region, service, resource_type, tags) = resource(a, i);
                InventoryRow {
                    account_id: (*account_id).to_owned(),
                    region: region.to_owned(),
                    resource_id,
                    resource_type: resource_type.to_owned(),
                    service: service.to_owned(),
                    tags,
                    attributes: vec![],
                    observed_unix_s: NOW - 60,
                    deleted: false,
                }
            })
            .collect();
        store(pool, &Batch { agent_id, sequence: sequence + 1, facts, inventory }).await;
    }
}
