//! PagerDuty Events API v2: `trigger` with a payload (summary, source,
//! severity, timestamp, component, group, class, custom details) and
//! `links` back to the dashboard; `acknowledge` and `resolve` with the
//! same `dedup_key`. 202 is accepted; 400 refused; 429 and 5xx retried.

use serde_json::{Value, json};

use super::{NotifyError, classify_status, text};

/// The `source` of every event.
pub const SOURCE: &str = "canopy-aggregator";

/// The request body for `event` with `routing_key`.
pub fn body(routing_key: &str, event: &Value) -> Value {
    let action = text(event, "action");
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": text(event, "dedup_key"),
    });
    if action == "trigger" {
        let occurred = event.get("occurred_unix_s").and_then(Value::as_i64).unwrap_or(0);
        let scope = event.get("scope").cloned().unwrap_or(Value::Null);
        let group = ["team", "account_id", "ou_id", "service"]
            .iter()
            .find_map(|k| scope.get(*k).and_then(Value::as_str))
            .unwrap_or("organisation");
        body["payload"] = json!({
            "summary": text(event, "summary").chars().take(1024).collect::<String>(),
            "source": SOURCE,
            "severity": text(event, "severity"),
            "timestamp": rfc3339(occurred),
            "component": event.get("budget_name").and_then(Value::as_str).unwrap_or("budget"),
            "group": group,
            "class": text(event, "kind"),
            "custom_details": {
                "value_kg_co2e": event.get("value_kg_co2e"),
                "budget_kg_co2e": event.get("budget_kg_co2e"),
                "percent_of_budget": event.get("percent_of_budget"),
                "basis": event.get("basis"),
                "period": event.get("period"),
                "scope": scope,
                "alert_key": event.get("alert_key"),
            },
        });
        body["links"] = json!([{ "href": text(event, "dashboard_url"), "text": "Alert in the Canopy dashboard" }]);
        body["client"] = json!("Canopy");
        body["client_url"] = json!(text(event, "dashboard_url"));
    }
    body
}

/// RFC 3339 UTC of Unix seconds.
pub fn rfc3339(t_unix_s: i64) -> String {
    let (y, m, d) = crate::time::civil_from_days(t_unix_s.div_euclid(86_400));
    let s = t_unix_s.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3_600, s % 3_600 / 60, s % 60)
}

/// POSTs `body` to the Events API.
pub async fn send(client: &reqwest::Client, url: &str, body: &Value) -> Result<(), NotifyError> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| NotifyError::Unavailable(format!("PagerDuty request failed: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    classify_status(status, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_carries_payload_and_links_resolve_only_the_key() {
        let event = json!({
            "action": "trigger", "dedup_key": "canopy/budget/1/threshold/20261201", "severity": "critical",
            "summary": "over", "kind": "threshold", "occurred_unix_s": 1_796_601_600i64,
            "dashboard_url": "http://d/alerts#alert-1", "scope": { "team": "web" }, "budget_name": "web",
        });
        let b = body("k", &event);
        assert_eq!(b["payload"]["severity"], "critical");
        assert_eq!(b["payload"]["source"], SOURCE);
        assert_eq!(b["payload"]["group"], "web");
        assert_eq!(b["payload"]["timestamp"], "2026-12-07T00:00:00Z");
        assert_eq!(b["links"][0]["href"], "http://d/alerts#alert-1");
        let r = body("k", &json!({ "action": "resolve", "dedup_key": "x" }));
        assert_eq!(r, json!({ "routing_key": "k", "event_action": "resolve", "dedup_key": "x" }));
    }
}
