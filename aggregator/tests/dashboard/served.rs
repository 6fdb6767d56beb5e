//! The dashboard page and assets are served, and its JSON endpoints answer the
//! same numbers as the query API and a brute-force sum over the stored facts.

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use canopy_aggregator::http::router;
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::query::QueryEngine;
use canopy_aggregator::time::month_start_shifted;
use serde_json::Value;
use tower::ServiceExt;

use crate::org::{self, NOW};
use crate::support::{TestDb, close, stored_facts};

fn clock() -> i64 {
    NOW
}

async fn get_raw(app: &axum::Router, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let resp = app.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let content_type =
        resp.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = to_bytes(resp.into_body(), 1 << 24).await.unwrap().to_vec();
    (status, content_type, body)
}

async fn get_json(app: &axum::Router, uri: &str) -> Value {
    let (status, content_type, body) = get_raw(app, uri).await;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{uri}: {value}");
    assert_eq!(content_type, "application/json", "{uri}");
    value
}

fn assert_metrics_eq(a: &Value, b: &Value, what: &str) {
    for key in ["energy_kwh", "location_kg_co2e", "market_kg_co2e", "low_kg_co2e", "high_kg_co2e"] {
        let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
        assert!(close(x, y), "{what} {key}: {x} vs {y}");
    }
    assert_eq!(a["fact_count"], b["fact_count"], "{what}");
}

#[tokio::test]
async fn page_and_assets_are_served() {
    let t = TestDb::migrated().await;
    let app = router(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), clock, canopy_aggregator::auth::Auth::insecure_open_access());
    let (status, content_type, body) = get_raw(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/html; charset=utf-8");
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<script type=\"module\" src=\"/assets/app.js\">"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "the page must not load anything remote");
    for (path, expected_type, marker) in [
        ("/assets/app.js", "text/javascript; charset=utf-8", "/v1/overview"),
        ("/assets/charts.js", "text/javascript; charset=utf-8", "export function lineChart"),
        ("/assets/style.css", "text/css; charset=utf-8", ".panel"),
    ] {
        let (status, content_type, body) = get_raw(&app, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(content_type, expected_type, "{path}");
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(marker), "{path} lacks {marker:?}");
        assert!(!text.contains("https://"), "{path} must not load anything remote");
    }
    let (status, _, _) = get_raw(&app, "/assets/missing.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The query API is still there next to the page.
    let (status, _, body) = get_raw(&app, "/healthz").await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, b"ok".as_slice()));
}

#[tokio::test]
async fn dashboard_endpoints_match_the_query_api() {
    let t = TestDb::migrated().await;
    org::load(&t.pool).await;
    let app = router(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), clock, canopy_aggregator::auth::Auth::insecure_open_access());

    // Overview with a team filter against /v1/totals over the same ranges.
    let overview = get_json(&app, &format!("/v1/overview?now={NOW}&team=web")).await;
    let month = month_start_shifted(NOW, 0);
    let previous = month_start_shifted(NOW, -1);
    // NOW is 12:00:00, so the current 5-minute bucket ends at 12:05:00.
    let end = NOW + 300;
    assert_eq!(overview["this_month"]["from_unix_s"], month);
    assert_eq!(overview["this_month"]["to_unix_s"], end);
    assert_eq!(overview["last_month"]["from_unix_s"], previous);
    assert_eq!(overview["last_month_same_elapsed"]["to_unix_s"], previous + (end - month));
    assert_eq!(overview["last_hour"]["from_unix_s"], end - 3_600);
    // Stored without the live path's pricing: none of this month's energy
    // was priced hourly, and the share is of all of it.
    let hourly = &overview["this_month_hourly_priced"];
    assert_eq!(hourly["energy_kwh"], 0.0, "{hourly}");
    assert_eq!(hourly["share"], 0.0, "{hourly}");
    let month_kwh = overview["this_month"]["totals"]["total"]["energy_kwh"].as_f64().unwrap();
    assert!((hourly["of_energy_kwh"].as_f64().unwrap() - month_kwh).abs() <= 1e-9 * month_kwh.max(1.0), "{hourly} vs {month_kwh}");
    for (name, from, to) in [
        ("this_month", month, end),
        ("last_month", previous, month),
        ("last_month_same_elapsed", previous, previous + (end - month)),
    ] {
        let api = get_json(&app, &format!("/v1/totals?from={from}&to={to}&team=web")).await;
        let mine = &overview[name]["totals"];
        assert_metrics_eq(&mine["total"], &api["total"], name);
        assert_eq!(mine["by_quality"], api["by_quality"], "{name}");
        assert!(api["total"]["fact_count"].as_i64().unwrap() > 0, "{name}: the data covers every range");
    }
    // The last hour is the real-time view (5-minute group records): equal to
    // the /v1/realtime series summed, and the same energy and CO2e as the
    // per-resource facts of that hour (the organisation's group records sum
    // them), counted once, not twice.
    let realtime = get_json(&app, &format!("/v1/realtime?now={NOW}&team=web")).await;
    let rows = realtime["rows"].as_array().unwrap();
    // Twelve buckets 11:05-12:05; the organisation's data ends at NOW
    // (12:00), so eleven hold rows.
    assert_eq!(rows.len(), 11, "{realtime}");
    let sum = |key: &str| rows.iter().map(|r| r["metrics"][key].as_f64().unwrap()).sum::<f64>();
    let last_hour = &overview["last_hour"]["totals"]["total"];
    for key in ["energy_kwh", "location_kg_co2e", "market_kg_co2e", "low_kg_co2e", "high_kg_co2e"] {
        assert!(close(last_hour[key].as_f64().unwrap(), sum(key)), "last_hour {key} vs /v1/realtime");
    }
    let hour_totals = get_json(&app, &format!("/v1/totals?from={}&to={end}&team=web", end - 3_600)).await;
    for key in ["energy_kwh", "location_kg_co2e", "market_kg_co2e"] {
        let (x, y) = (last_hour[key].as_f64().unwrap(), hour_totals["total"][key].as_f64().unwrap());
        assert!(y > 0.0 && close(x, y), "last_hour {key}: real-time {x} vs totals {y}");
    }
    let shares = |v: &Value| -> Vec<(String, f64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|q| (q["quality"].as_str().unwrap().to_owned(), q["share_of_location_co2e"].as_f64().unwrap()))
            .collect()
    };
    let (rt_shares, total_shares) =
        (shares(&overview["last_hour"]["totals"]["by_quality"]), shares(&hour_totals["by_quality"]));
    assert_eq!(rt_shares.len(), total_shares.len());
    for ((qa, a), (qb, b)) in rt_shares.iter().zip(&total_shares) {
        assert!(qa == qb && close(*a, *b), "quality share {qa} {a} vs {qb} {b}");
    }

    // And against a brute-force sum over the stored facts (team web, this month).
    let facts = stored_facts(&t.pool).await;
    let web: Vec<_> = facts.iter().filter(|f| f.team == "web" && f.start >= month && f.start < end).collect();
    let location_kg: f64 = web.iter().map(|f| f.sums[1]).sum::<f64>() / 1e3;
    let energy_kwh: f64 = web.iter().map(|f| f.sums[0]).sum();
    let this_month = &overview["this_month"]["totals"]["total"];
    assert!(close(this_month["location_kg_co2e"].as_f64().unwrap(), location_kg));
    assert!(close(this_month["energy_kwh"].as_f64().unwrap(), energy_kwh));
    assert_eq!(this_month["fact_count"].as_i64().unwrap(), web.len() as i64);
    let last_elapsed = overview["last_month_same_elapsed"]["totals"]["total"]["location_kg_co2e"].as_f64().unwrap();
    let trend = overview["trend_ratio"].as_f64().unwrap();
    assert!(close(trend, (location_kg - last_elapsed) / last_elapsed), "trend {trend}");

    // The overview refuses parameters that would change its ranges.
    for (uri, parameter) in [
        ("/v1/overview?from=0", "from"),
        ("/v1/overview?account=1;drop", "account"),
        ("/v1/fleet?window_hours=0", "window_hours"),
        ("/v1/resource-history?account=100000000001&region=eu-west-1&from=0&to=3600", "resource"),
    ] {
        let (status, _, body) = get_raw(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["parameter"], parameter, "{uri}");
    }

    // The requests app.js builds (rangeBounds: the 7-day range ends at the
    // next whole hour, steps 1h; breakdown limit 500; top 20) are accepted.
    let hour_end = NOW + 3_600;
    let week = hour_end - 7 * 86_400;
    for uri in [
        format!("/v1/series?team=web&from={week}&to={hour_end}&step=1h&limit=10000"),
        format!("/v1/totals?region=eu-west-1&from={week}&to={hour_end}&group_by=ou&limit=500"),
        format!("/v1/top-resources?account=100000000001&from={week}&to={hour_end}&limit=20"),
        "/v1/realtime?service=AmazonEC2".to_owned(),
    ] {
        let body = get_json(&app, &uri).await;
        assert!(!body["rows"].as_array().unwrap().is_empty(), "{uri}: {body}");
    }

    // Fleet: the account without an agent first, then 4 accounts × 3 regions.
    let fleet = get_json(&app, &format!("/v1/fleet?now={NOW}")).await;
    let cells = fleet["cells"].as_array().unwrap();
    assert_eq!(fleet["accounts_without_agent"], 1);
    assert_eq!(cells[0]["account_id"], org::ACCOUNT_WITHOUT_AGENT);
    assert_eq!(cells[0]["agent_id"], Value::Null);
    assert_eq!(cells.len(), 1 + 4 * 3);
    for cell in &cells[1..] {
        let account = cell["account_id"].as_str().unwrap();
        assert_eq!(cell["agent_id"], format!("agent-{account}"));
        // 62 daily batches of hourly facts and one of 5-minute facts.
        assert_eq!(cell["batches"], 63);
        assert_eq!(cell["last_sequence"], 63);
        assert_eq!(cell["last_data_unix_s"], NOW - 60, "inventory observed a minute before now");
        assert!(cell["lag_s"].as_i64().is_some());
    }

    // Resource history per day against the facts of that resource.
    let (resource_id, region, ..) = org::resource(0, 0);
    let account = org::ACCOUNTS[0].0;
    let day_end = NOW - NOW.rem_euclid(86_400) + 86_400;
    let from = day_end - 10 * 86_400;
    let history = get_json(
        &app,
        &format!("/v1/resource-history?account={account}&region={region}&resource={resource_id}&from={from}&to={day_end}&step=1d"),
    )
    .await;
    assert_eq!(history["resource"]["team"], "web"); // resource 0 of account 0 carries team=web
    let rows = history["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    for row in rows {
        let b = row["bucket_start_unix_s"].as_i64().unwrap();
        let mine: Vec<_> = facts
            .iter()
            .filter(|f| f.resource_id == resource_id && f.account == account && f.start >= b && f.start < b + 86_400)
            .collect();
        assert_eq!(row["fact_count"].as_i64().unwrap(), mine.len() as i64);
        let location: f64 = mine.iter().map(|f| f.sums[1]).sum::<f64>() / 1e3;
        assert!(close(row["location_kg_co2e"].as_f64().unwrap(), location), "bucket {b}");
    }
    // The last day: hourly facts every third hour ending by 10:00 (00, 03, 06
    // and 09: 4 facts), then 5-minute facts from 10:00 to 12:00 (24 facts).
    assert_eq!(rows[9]["fact_count"], 4 + 24);
}

/// Resource history and the fleet read the fact segments directly (not
/// through `emission_facts_all`): a superseded position must not count.
#[tokio::test]
async fn resource_history_counts_only_the_newest_revision() {
    use canopy_aggregator::model::Batch;

    let t = TestDb::migrated().await;
    let app = router(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), clock, canopy_aggregator::auth::Auth::insecure_open_access());
    let hour = NOW - NOW.rem_euclid(3_600) - 3 * 3_600;
    // Resource 0: two hourly facts, the first replaced by revision 2 in a later batch.
    let first = vec![crate::support::fact(0, hour, 3_600, 1), crate::support::fact(0, hour + 3_600, 3_600, 1)];
    let replacement = crate::support::fact(0, hour, 3_600, 2);
    for (sequence, facts) in [(1, first.clone()), (2, vec![replacement.clone()])] {
        crate::support::store(&t.pool, &Batch { agent_id: "agent-x".into(), sequence, facts, inventory: vec![] }).await;
    }
    let f = &first[0];
    let history = get_json(
        &app,
        &format!(
            "/v1/resource-history?account={}&region={}&resource={}&from={hour}&to={}&step=1h",
            f.account_id,
            f.region,
            f.resource_id,
            hour + 2 * 3_600
        ),
    )
    .await;
    let rows = history["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{history}");
    assert_eq!(rows[0]["fact_count"], 1);
    assert!(close(rows[0]["energy_kwh"].as_f64().unwrap(), replacement.energy_kwh), "{history}");
    assert!(close(rows[1]["energy_kwh"].as_f64().unwrap(), first[1].energy_kwh), "{history}");
    assert!((replacement.energy_kwh - f.energy_kwh).abs() > 1e-9, "the revisions must differ for the test to mean anything");
    // Per day (the per-resource daily rollup): the same two facts.
    let day = hour - hour.rem_euclid(86_400);
    let daily = get_json(
        &app,
        &format!(
            "/v1/resource-history?account={}&region={}&resource={}&from={day}&to={}&step=1d",
            f.account_id,
            f.region,
            f.resource_id,
            day + 2 * 86_400
        ),
    )
    .await;
    let days = daily["rows"].as_array().unwrap();
    let in_first_day = i64::from(hour + 3_600 < day + 86_400) + 1;
    assert_eq!(days[0]["fact_count"], in_first_day, "{daily}");
    let kwh: f64 = days.iter().map(|d| d["energy_kwh"].as_f64().unwrap()).sum();
    assert!(close(kwh, replacement.energy_kwh + first[1].energy_kwh), "{daily}");

    // The fleet sees the agent's newest data hour through the segments.
    let fleet = get_json(&app, &format!("/v1/fleet?now={NOW}")).await;
    let cell = fleet["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["agent_id"] == "agent-x")
        .unwrap_or_else(|| panic!("{fleet}"))
        .clone();
    assert_eq!(cell["last_data_unix_s"], hour + 3_600, "{cell}");
}
