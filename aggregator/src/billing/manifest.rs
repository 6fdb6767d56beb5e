//! The Data Exports delivery layout and its `Manifest.json`.
//!
//! AWS writes an export's files under
//! `<prefix>/<export-name>/data/BILLING_PERIOD=YYYY-MM/` and, per billing
//! period, `<prefix>/<export-name>/metadata/BILLING_PERIOD=YYYY-MM/<export-name>-Manifest.json`,
//! overwritten at every refresh. The manifest names the execution that wrote
//! the delivery (`executionId`), the export, the billing period and the data
//! files (`dataFiles`, `s3://bucket/key` URIs). A delivery's identity is
//! (export name, billing period, execution id).

use serde::Deserialize;

/// Where the manifests of a billing period sit: `.../metadata/BILLING_PERIOD=YYYY-MM/<name>-Manifest.json`.
pub const MANIFEST_SUFFIX: &str = "-Manifest.json";

/// One parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The export's name.
    pub export_name: String,
    /// The execution that wrote this delivery.
    pub execution_id: String,
    /// Billing period as (year, month).
    pub billing_period: (i32, u32),
    /// Object keys of the data files, in the manifest's order (bucket dropped).
    pub data_keys: Vec<String>,
}

/// The manifest's JSON, as AWS writes it (unknown fields ignored: AWS adds
/// the export definition, the query and the column list).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    execution_id: Option<String>,
    export_name: Option<String>,
    billing_period: Option<serde_json::Value>,
    data_files: Option<Vec<String>>,
}

/// Why a manifest was refused; the caller adds the object key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(pub String);

/// `YYYY-MM` (as in `BILLING_PERIOD=YYYY-MM`) into (year, month).
pub fn parse_period(text: &str) -> Option<(i32, u32)> {
    let (y, m) = text.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, month) = (y.parse().ok()?, m.parse().ok()?);
    (1..=12).contains(&month).then_some((year, month))
}

/// The billing period a key's `BILLING_PERIOD=YYYY-MM` path segment names.
pub fn period_of_key(key: &str) -> Option<(i32, u32)> {
    key.split('/')
        .find_map(|segment| segment.strip_prefix("BILLING_PERIOD="))
        .and_then(parse_period)
}

/// Whether `key` is a manifest of the Data Exports layout.
pub fn is_manifest_key(key: &str) -> bool {
    key.ends_with(MANIFEST_SUFFIX) && key.contains("/metadata/") && period_of_key(key).is_some()
}

/// The object key of a `dataFiles` entry: `s3://bucket/key` must name `bucket`;
/// a bare key is taken as is.
fn data_key(entry: &str, bucket: &str) -> Result<String, ManifestError> {
    match entry.strip_prefix("s3://") {
        Some(rest) => {
            let (b, key) = rest.split_once('/').ok_or_else(|| {
                ManifestError(format!(
                    "dataFiles: expected s3://bucket/key, found {entry:?}"
                ))
            })?;
            if b != bucket {
                return Err(ManifestError(format!(
                    "dataFiles: expected files in bucket {bucket:?}, found {entry:?}"
                )));
            }
            Ok(key.to_owned())
        }
        None if !entry.is_empty() => Ok(entry.to_owned()),
        None => Err(ManifestError(
            "dataFiles: expected an object key, found \"\"".to_owned(),
        )),
    }
}

impl Manifest {
    /// Parses and validates a manifest read from `key` in `bucket`: the
    /// billing period must agree with the key's `BILLING_PERIOD=` segment
    /// (when the manifest states one), every data file must be in `bucket`.
    pub fn parse(bytes: &[u8], key: &str, bucket: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = serde_json::from_slice(bytes).map_err(|e| {
            ManifestError(format!(
                "expected a Data Exports manifest (JSON object): {e}"
            ))
        })?;
        let execution_id = raw
            .execution_id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ManifestError("expected a non-empty executionId".to_owned()))?;
        let key_period = period_of_key(key);
        let billing_period = match raw.billing_period {
            None => key_period.ok_or_else(|| {
                ManifestError(
                    "expected billingPeriod or a BILLING_PERIOD=YYYY-MM key segment".to_owned(),
                )
            })?,
            Some(value) => {
                // AWS writes "YYYY-MM"; accept {"start": "YYYY-MM-..."} too.
                let text = match &value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Object(o) => o
                        .get("start")
                        .and_then(|s| s.as_str())
                        .unwrap_or("")
                        .to_owned(),
                    _ => String::new(),
                };
                let period = parse_period(text.get(..7).unwrap_or(&text)).ok_or_else(|| {
                    ManifestError(format!("billingPeriod: expected YYYY-MM, found {value}"))
                })?;
                if let Some(kp) = key_period
                    && kp != period
                {
                    return Err(ManifestError(format!(
                        "billingPeriod: {value} disagrees with the key's BILLING_PERIOD={:04}-{:02}",
                        kp.0, kp.1
                    )));
                }
                period
            }
        };
        let export_name = match raw.export_name.filter(|s| !s.is_empty()) {
            Some(name) => name,
            None => export_name_of_key(key).ok_or_else(|| {
                ManifestError("expected exportName or a <name>-Manifest.json key".to_owned())
            })?,
        };
        let files = raw
            .data_files
            .ok_or_else(|| ManifestError("expected dataFiles (a list of s3 URIs)".to_owned()))?;
        let data_keys = files
            .iter()
            .map(|f| data_key(f, bucket))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Manifest {
            export_name,
            execution_id,
            billing_period,
            data_keys,
        })
    }

    /// First day of the billing period as `YYYY-MM-01`.
    pub fn period_start(&self) -> String {
        format!(
            "{:04}-{:02}-01",
            self.billing_period.0, self.billing_period.1
        )
    }
}

/// `<name>` of a `.../<name>-Manifest.json` key.
fn export_name_of_key(key: &str) -> Option<String> {
    let file = key.rsplit('/').next()?;
    file.strip_suffix(MANIFEST_SUFFIX)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "cur/org-cur/metadata/BILLING_PERIOD=2023-10/org-cur-Manifest.json";

    fn check(json: &str) -> Result<Manifest, String> {
        Manifest::parse(json.as_bytes(), KEY, "bills").map_err(|e| e.to_string())
    }

    #[test]
    fn parses_aws_manifest() {
        let m = check(
            r#"{"version":"1.0","executionId":"e-1","exportName":"org-cur","billingPeriod":"2023-10",
                "dataFiles":["s3://bills/cur/org-cur/data/BILLING_PERIOD=2023-10/org-cur-00001.snappy.parquet"],
                "queryStatement":"SELECT ..."}"#,
        )
        .unwrap();
        assert_eq!(m.execution_id, "e-1");
        assert_eq!(m.billing_period, (2023, 10));
        assert_eq!(m.period_start(), "2023-10-01");
        assert_eq!(
            m.data_keys,
            vec!["cur/org-cur/data/BILLING_PERIOD=2023-10/org-cur-00001.snappy.parquet"]
        );
    }

    #[test]
    fn falls_back_to_the_key_and_refuses_bad_fields() {
        let m = check(r#"{"executionId":"e-2","dataFiles":[]}"#).unwrap();
        assert_eq!(
            (m.export_name.as_str(), m.billing_period),
            ("org-cur", (2023, 10))
        );
        assert_eq!(
            check(r#"{"dataFiles":[]}"#).unwrap_err(),
            "expected a non-empty executionId"
        );
        assert!(
            check(r#"{"executionId":"e","billingPeriod":"2023-11","dataFiles":[]}"#)
                .unwrap_err()
                .contains("disagrees")
        );
        assert!(
            check(r#"{"executionId":"e","billingPeriod":"2023-13","dataFiles":[]}"#)
                .unwrap_err()
                .contains("expected YYYY-MM")
        );
        assert!(
            check(r#"{"executionId":"e","dataFiles":["s3://other/k.parquet"]}"#)
                .unwrap_err()
                .contains("bucket \"bills\"")
        );
        assert!(
            check(r#"{"executionId":"e"}"#)
                .unwrap_err()
                .contains("dataFiles")
        );
        assert!(
            check("[1]")
                .unwrap_err()
                .starts_with("expected a Data Exports manifest")
        );
    }

    #[test]
    fn recognises_manifest_keys() {
        assert!(is_manifest_key(KEY));
        assert!(!is_manifest_key(
            "cur/org-cur/data/BILLING_PERIOD=2023-10/x-Manifest.json"
        ));
        assert!(!is_manifest_key(
            "cur/org-cur/metadata/BILLING_PERIOD=2023-1/org-cur-Manifest.json"
        ));
        assert_eq!(period_of_key(KEY), Some((2023, 10)));
    }
}
