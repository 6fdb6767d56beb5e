//! Forwarding a checked request to STS and reading its answer.
//!
//! The request always goes to the aggregator's configured endpoint, never to
//! a URL the agent names, and carries only the headers the agent signed.

use std::time::Duration;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::error::{Refusal, RefusalCode};
use crate::wire::SignedRequest;

/// What `GetCallerIdentity` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// Account id.
    pub account: String,
    /// Caller ARN.
    pub arn: String,
}

/// An HTTP client for one STS endpoint.
#[derive(Debug, Clone)]
pub struct StsForwarder {
    http: reqwest::Client,
    url: String,
}

impl StsForwarder {
    /// A forwarder posting to `url` with `timeout` per request.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, Refusal> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Refusal::new(RefusalCode::Internal, format!("http client: {e}")))?;
        Ok(Self {
            http,
            url: url.to_owned(),
        })
    }

    /// Sends `req` (already checked locally) to STS and returns the caller.
    pub async fn get_caller_identity(
        &self,
        req: &SignedRequest,
    ) -> Result<CallerIdentity, Refusal> {
        let mut builder = self.http.post(&self.url);
        for (name, value) in &req.headers {
            // reqwest writes Host from the URL; the check already made sure
            // it equals the signed value.
            if !name.eq_ignore_ascii_case("host") {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        let response = builder.body(req.body.clone()).send().await.map_err(|e| {
            Refusal::new(
                RefusalCode::StsUnavailable,
                format!("sts request failed: {e}"),
            )
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            Refusal::new(
                RefusalCode::StsUnavailable,
                format!("sts response unreadable: {e}"),
            )
        })?;
        if status.is_success() {
            parse_caller_identity(&text).map_err(|e| Refusal::new(RefusalCode::StsUnavailable, e))
        } else {
            let (code, message) = parse_error(&text);
            let refusal_code = if status.is_server_error() || status.as_u16() == 429 {
                RefusalCode::StsUnavailable
            } else {
                RefusalCode::StsRejected
            };
            Err(Refusal::new(
                refusal_code,
                format!("sts answered {status}: {code}: {message}"),
            ))
        }
    }
}

/// Text of the first elements named in `names`, in that order.
fn element_texts(xml: &str, names: &[&str]) -> Vec<Option<String>> {
    let mut found = vec![None; names.len()];
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                let local = start.local_name();
                if let Some(i) = names.iter().position(|n| n.as_bytes() == local.as_ref())
                    && found[i].is_none()
                    && let Ok(text) = reader.read_text(start.name())
                {
                    found[i] = Some(text.trim().to_owned());
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    found
}

/// Reads `Account` and `Arn` from a `GetCallerIdentityResponse`.
pub fn parse_caller_identity(xml: &str) -> Result<CallerIdentity, String> {
    let texts = element_texts(xml, &["Account", "Arn"]);
    match (&texts[0], &texts[1]) {
        (Some(account), Some(arn)) if !account.is_empty() && !arn.is_empty() => {
            Ok(CallerIdentity {
                account: account.clone(),
                arn: arn.clone(),
            })
        }
        _ => Err(format!(
            "expected Account and Arn in the sts response, found {:?}",
            xml.chars().take(200).collect::<String>()
        )),
    }
}

/// Reads `Code` and `Message` from an STS error response.
pub fn parse_error(xml: &str) -> (String, String) {
    let texts = element_texts(xml, &["Code", "Message"]);
    (
        texts[0].clone().unwrap_or_else(|| "unknown".into()),
        texts[1]
            .clone()
            .unwrap_or_else(|| xml.chars().take(200).collect()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_caller_identity() {
        let xml = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::111122223333:assumed-role/CanopyAgent/i-1</Arn>
    <UserId>AROAEXAMPLE:i-1</UserId>
    <Account>111122223333</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;
        let id = parse_caller_identity(xml).expect("parses");
        assert_eq!(id.account, "111122223333");
        assert_eq!(
            id.arn,
            "arn:aws:sts::111122223333:assumed-role/CanopyAgent/i-1"
        );
        assert!(parse_caller_identity("<x/>").is_err());
    }

    #[test]
    fn reads_error() {
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message></Error></ErrorResponse>";
        assert_eq!(
            parse_error(xml),
            ("SignatureDoesNotMatch".to_owned(), "bad sig".to_owned())
        );
    }
}
