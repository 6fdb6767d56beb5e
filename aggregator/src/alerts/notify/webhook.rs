//! Webhooks: a Slack-compatible JSON body (`text` and `blocks`, plus the
//! alert's facts under `canopy`) signed with HMAC-SHA256 over
//! `v1:<timestamp>:<body>`; headers `X-Canopy-Timestamp` and
//! `X-Canopy-Signature: v1=<hex>`. A receiver recomputes the signature
//! with the route's secret and rejects stale timestamps.

use ring::hmac;
use serde_json::{Value, json};

use super::{NotifyError, classify_status, text};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-canopy-signature";
/// The timestamp header (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "x-canopy-timestamp";

/// The body for `event`.
pub fn body(event: &Value) -> Vec<u8> {
    let action = text(event, "action");
    let emoji = match (action, text(event, "severity")) {
        ("resolve", _) => ":white_check_mark:",
        ("acknowledge", _) => ":eyes:",
        (_, "critical") => ":rotating_light:",
        _ => ":warning:",
    };
    let headline = format!("{emoji} [{}] {}", action.to_uppercase(), text(event, "summary"));
    // The facts, less the PagerDuty integration key (a secret of another route).
    let mut facts = event.clone();
    if let Some(o) = facts.as_object_mut() {
        o.remove("pagerduty_routing_key");
    }
    json!({
        "text": headline,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": headline } },
            { "type": "context", "elements": [
                { "type": "mrkdwn", "text": format!("<{}|Open in Canopy> · `{}`", text(event, "dashboard_url"), text(event, "dedup_key")) }
            ] },
        ],
        "canopy": facts,
    })
    .to_string()
    .into_bytes()
}

/// `v1=<hex HMAC-SHA256(secret, "v1:<timestamp>:<body>")>`.
pub fn signature(secret: &str, timestamp_unix_s: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("v1:{timestamp_unix_s}:").as_bytes());
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// POSTs the signed body to `url`.
pub async fn send(client: &reqwest::Client, url: &str, secret: &str, event: &Value) -> Result<(), NotifyError> {
    let body = body(event);
    let ts = crate::http::system_clock();
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, ts.to_string())
        .header(SIGNATURE_HEADER, signature(secret, ts, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| NotifyError::Unavailable(format!("webhook request failed: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    classify_status(status, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_version_timestamp_and_body() {
        // RFC 4231-style check through ring itself: the same key and message verify.
        let body = br#"{"text":"x"}"#;
        let sig = signature("0123456789abcdef", 1_700_000_000, body);
        let hex = sig.strip_prefix("v1=").unwrap();
        let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        hmac::verify(&key, b"v1:1700000000:{\"text\":\"x\"}", &bytes).unwrap();
        assert!(hmac::verify(&key, b"v1:1700000001:{\"text\":\"x\"}", &bytes).is_err());
        let b: Value = serde_json::from_slice(&body_of()).unwrap();
        assert!(b["text"].as_str().unwrap().contains("[TRIGGER] over budget"));
        assert_eq!(b["blocks"][0]["type"], "section");
        assert_eq!(b["canopy"]["dedup_key"], "k");
        assert!(b["canopy"].get("pagerduty_routing_key").is_none(), "no PagerDuty key in webhooks");
    }

    fn body_of() -> Vec<u8> {
        body(&json!({ "action": "trigger", "severity": "critical", "summary": "over budget", "dedup_key": "k",
            "pagerduty_routing_key": "secret" }))
    }
}
