//! The agent's configuration: one typed struct read from `agent.toml`,
//! overridden by environment variables, validated at start.
//!
//! Precedence: environment > file > default. Unknown keys are rejected.
//! Every error names the key (`intervals.cycle_s`) or the variable
//! (`CANOPY_AGENT_CYCLE_S`) that is wrong, what was expected and what was
//! found.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cost::CostModel;
use crate::env::Env;
use crate::rates::RateConfig;

/// The only configuration format version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("config {origin}: {message}")]
    Parse {
        /// File path or `<text>`.
        origin: String,
        /// Parser message (names the key).
        message: String,
    },
    /// An environment variable has a value of the wrong type.
    #[error("environment variable {var} (overrides {key}): expected {expected}, found {found:?}")]
    Env {
        /// Variable name.
        var: &'static str,
        /// Config key it overrides.
        key: &'static str,
        /// What the value should look like.
        expected: &'static str,
        /// The value given.
        found: String,
    },
    /// A value parsed but is out of range or inconsistent.
    #[error("config key {key}: expected {expected}, found {found}")]
    Invalid {
        /// Dotted key path.
        key: &'static str,
        /// What is acceptable.
        expected: String,
        /// What was given.
        found: String,
    },
}

/// Where resources and metrics come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The AWS APIs of the agent's account and region.
    #[default]
    Aws,
    /// Synthetic resources and metrics (demos, load tests).
    Simulated,
}

/// `[source]`: the collector backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// `aws` or `simulated`.
    pub kind: SourceKind,
    /// Seed of the simulated source.
    pub seed: u64,
    /// Number of simulated resources.
    pub resources: u32,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig { kind: SourceKind::Aws, seed: 1, resources: 1_000 }
    }
}

/// `[intervals]`: cadences.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntervalsConfig {
    /// Length of one precompute cycle, seconds (5 minutes).
    pub cycle_s: u32,
    /// How often utilisation is fetched from CloudWatch, seconds; each fetch
    /// covers the whole interval at 5-minute resolution.
    pub utilisation_s: u32,
    /// Hours between full inventories (change events fill the gaps).
    pub full_inventory_h: u32,
}

impl Default for IntervalsConfig {
    fn default() -> Self {
        IntervalsConfig { cycle_s: 300, utilisation_s: 3_600, full_inventory_h: 6 }
    }
}

/// `[budget]`: API and cost budgets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Ceiling of the agent's own estimated AWS API cost, USD per resource per month.
    pub max_cost_usd_per_resource_month: f64,
    /// In-flight AWS calls per service.
    pub max_concurrency: u32,
    /// Attempts per call, including the first (SDK standard retry mode).
    pub max_attempts: u32,
    /// First retry back-off, milliseconds (exponential with full jitter after).
    pub initial_backoff_ms: u64,
    /// Per-API request rates, requests per second.
    pub rates: RateConfig,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            max_cost_usd_per_resource_month: 0.005,
            max_concurrency: 4,
            max_attempts: 5,
            initial_backoff_ms: 200,
            rates: RateConfig::default(),
        }
    }
}

/// `[attribution]`: how resources are attributed to teams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributionConfig {
    /// Tag keys tried in order; the first present non-empty value is the team.
    pub team_tag_keys: Vec<String>,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        AttributionConfig { team_tag_keys: vec!["Team".into(), "team".into(), "team-name".into()] }
    }
}

/// `[change_queue]`: the SQS queue EventBridge resource-change events land in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChangeQueueConfig {
    /// Queue URL; no queue → full inventories only.
    pub queue_url: Option<String>,
    /// Long-polling wait, seconds (0..=20).
    pub wait_time_s: u32,
    /// Messages per receive (1..=10).
    pub max_messages: u32,
}

impl Default for ChangeQueueConfig {
    fn default() -> Self {
        ChangeQueueConfig { queue_url: None, wait_time_s: 20, max_messages: 10 }
    }
}

/// `[output]`: debugging output of `run` and its metrics file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// JSON-lines spool file each cycle's records are also appended to
    /// (debugging; grows without bound). Off when absent.
    pub spool_path: Option<PathBuf>,
    /// Prometheus text-exposition file rewritten after every cycle.
    pub metrics_path: Option<PathBuf>,
}

/// `[delivery]`: the durable outbox and the aggregator it is shipped to.
/// Delivery is on when `aggregator_endpoint` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Aggregator QUIC endpoint, `host:port` (a DNS name or an IP address).
    pub aggregator_endpoint: Option<String>,
    /// Name the aggregator's server certificate is checked against; the
    /// endpoint's host when absent.
    pub server_name: Option<String>,
    /// PEM file of the aggregator's CA certificate (the only trust anchor).
    pub ca_file: Option<PathBuf>,
    /// The aggregator deployment's id (its `CANOPY_SERVER_ID`): the agent
    /// signs enrolment challenges only for this id.
    pub server_id: String,
    /// STS endpoint the aggregator forwards enrolments to (its
    /// `CANOPY_STS_URL`): the agent signs only for this endpoint's host.
    pub sts_url: String,
    /// Folder of the durable outbox.
    pub outbox_path: PathBuf,
    /// Byte cap of the outbox's pending frames (1 GiB).
    pub max_outbox_bytes: u64,
    /// Batches sent and awaiting a reply at once.
    pub max_in_flight: u32,
    /// Time allowed for one enrolment exchange, seconds.
    pub enroll_timeout_s: u32,
    /// Longest wait between attempts after failed sends or enrolments,
    /// seconds (exponential backoff with jitter up to this).
    pub max_backoff_s: u32,
    /// Renew the client certificate this fraction of its lifetime after
    /// receiving it (the transport's `AgentCertificate::renew_at` is 2/3).
    pub renew_at_lifetime_fraction: f64,
    /// At shutdown, time allowed to send what is pending, seconds.
    pub drain_timeout_s: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            aggregator_endpoint: None,
            server_name: None,
            ca_file: None,
            server_id: "canopy-aggregator".into(),
            sts_url: "https://sts.amazonaws.com".into(),
            outbox_path: PathBuf::from("canopy-outbox"),
            max_outbox_bytes: 1 << 30,
            max_in_flight: 16,
            enroll_timeout_s: 30,
            max_backoff_s: 30,
            renew_at_lifetime_fraction: 2.0 / 3.0,
            drain_timeout_s: 90,
        }
    }
}

impl DeliveryConfig {
    /// The endpoint split into host (without IPv6 brackets) and port.
    pub fn endpoint_host_port(&self) -> Option<(String, u16)> {
        let endpoint = self.aggregator_endpoint.as_deref()?;
        let (host, port) = endpoint.rsplit_once(':')?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
        (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| (host.to_owned(), port))
    }

    /// The server name to check: [`server_name`](Self::server_name), else the endpoint's host.
    pub fn effective_server_name(&self) -> Option<String> {
        self.server_name.clone().or_else(|| self.endpoint_host_port().map(|(h, _)| h))
    }
}

/// The whole configuration (`agent.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Format version; must be [`CONFIG_VERSION`].
    pub config_version: u32,
    /// Stable identifier of this agent.
    pub agent_id: String,
    /// AWS region the agent collects in.
    pub region: String,
    /// 12-digit account id; asked from STS when absent.
    #[serde(default)]
    pub account_id: Option<String>,
    /// Endpoint override for every AWS client (tests, VPC endpoints).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Collectors to run, by name; empty = all.
    #[serde(default)]
    pub collectors: Vec<String>,
    /// Collector backend.
    #[serde(default)]
    pub source: SourceConfig,
    /// Cadences.
    #[serde(default)]
    pub intervals: IntervalsConfig,
    /// Budgets.
    #[serde(default)]
    pub budget: BudgetConfig,
    /// Team attribution.
    #[serde(default)]
    pub attribution: AttributionConfig,
    /// Change-event queue.
    #[serde(default)]
    pub change_queue: ChangeQueueConfig,
    /// Outputs.
    #[serde(default)]
    pub output: OutputConfig,
    /// Durable outbox and aggregator.
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

/// Type of an environment override's value.
#[derive(Clone, Copy)]
enum EnvKind {
    Text,
    Integer,
    Float,
    List,
}

/// Environment variables and the keys they override.
const ENV_OVERRIDES: &[(&str, &[&str], EnvKind)] = &[
    ("CANOPY_AGENT_AGENT_ID", &["agent_id"], EnvKind::Text),
    ("CANOPY_AGENT_REGION", &["region"], EnvKind::Text),
    ("CANOPY_AGENT_ACCOUNT_ID", &["account_id"], EnvKind::Text),
    ("CANOPY_AGENT_ENDPOINT_URL", &["endpoint_url"], EnvKind::Text),
    ("CANOPY_AGENT_SOURCE", &["source", "kind"], EnvKind::Text),
    ("CANOPY_AGENT_CYCLE_S", &["intervals", "cycle_s"], EnvKind::Integer),
    ("CANOPY_AGENT_UTILISATION_S", &["intervals", "utilisation_s"], EnvKind::Integer),
    ("CANOPY_AGENT_FULL_INVENTORY_H", &["intervals", "full_inventory_h"], EnvKind::Integer),
    ("CANOPY_AGENT_MAX_COST_USD_PER_RESOURCE_MONTH", &["budget", "max_cost_usd_per_resource_month"], EnvKind::Float),
    ("CANOPY_AGENT_TEAM_TAG_KEYS", &["attribution", "team_tag_keys"], EnvKind::List),
    ("CANOPY_AGENT_QUEUE_URL", &["change_queue", "queue_url"], EnvKind::Text),
    ("CANOPY_AGENT_SPOOL_PATH", &["output", "spool_path"], EnvKind::Text),
    ("CANOPY_AGENT_METRICS_PATH", &["output", "metrics_path"], EnvKind::Text),
    ("CANOPY_AGENT_AGGREGATOR_ENDPOINT", &["delivery", "aggregator_endpoint"], EnvKind::Text),
    ("CANOPY_AGENT_AGGREGATOR_SERVER_NAME", &["delivery", "server_name"], EnvKind::Text),
    ("CANOPY_AGENT_AGGREGATOR_CA_FILE", &["delivery", "ca_file"], EnvKind::Text),
    ("CANOPY_AGENT_AGGREGATOR_SERVER_ID", &["delivery", "server_id"], EnvKind::Text),
    ("CANOPY_AGENT_STS_URL", &["delivery", "sts_url"], EnvKind::Text),
    ("CANOPY_AGENT_OUTBOX_PATH", &["delivery", "outbox_path"], EnvKind::Text),
    ("CANOPY_AGENT_MAX_OUTBOX_BYTES", &["delivery", "max_outbox_bytes"], EnvKind::Integer),
    ("CANOPY_AGENT_MAX_IN_FLIGHT", &["delivery", "max_in_flight"], EnvKind::Integer),
];

/// Names of the environment variables that override config keys.
pub fn env_variables() -> impl Iterator<Item = (&'static str, String)> {
    ENV_OVERRIDES.iter().map(|(var, path, _)| (*var, path.join(".")))
}

fn env_value(
    var: &'static str,
    path: &'static [&'static str],
    kind: EnvKind,
    raw: &str,
) -> Result<toml::Value, ConfigError> {
    let key = match path {
        [one] => *one,
        _ => ENV_KEYS.iter().find(|(v, _)| *v == var).map_or("?", |(_, k)| k),
    };
    let bad = |expected: &'static str| ConfigError::Env { var, key, expected, found: raw.to_owned() };
    Ok(match kind {
        EnvKind::Text => toml::Value::String(raw.to_owned()),
        EnvKind::Integer => toml::Value::Integer(raw.trim().parse::<i64>().map_err(|_| bad("an integer"))?),
        EnvKind::Float => toml::Value::Float(raw.trim().parse::<f64>().map_err(|_| bad("a number"))?),
        EnvKind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

/// Dotted key names of the nested overrides, for error messages.
const ENV_KEYS: &[(&str, &str)] = &[
    ("CANOPY_AGENT_SOURCE", "source.kind"),
    ("CANOPY_AGENT_CYCLE_S", "intervals.cycle_s"),
    ("CANOPY_AGENT_UTILISATION_S", "intervals.utilisation_s"),
    ("CANOPY_AGENT_FULL_INVENTORY_H", "intervals.full_inventory_h"),
    ("CANOPY_AGENT_MAX_COST_USD_PER_RESOURCE_MONTH", "budget.max_cost_usd_per_resource_month"),
    ("CANOPY_AGENT_TEAM_TAG_KEYS", "attribution.team_tag_keys"),
    ("CANOPY_AGENT_QUEUE_URL", "change_queue.queue_url"),
    ("CANOPY_AGENT_SPOOL_PATH", "output.spool_path"),
    ("CANOPY_AGENT_METRICS_PATH", "output.metrics_path"),
    ("CANOPY_AGENT_AGGREGATOR_ENDPOINT", "delivery.aggregator_endpoint"),
    ("CANOPY_AGENT_AGGREGATOR_SERVER_NAME", "delivery.server_name"),
    ("CANOPY_AGENT_AGGREGATOR_CA_FILE", "delivery.ca_file"),
    ("CANOPY_AGENT_AGGREGATOR_SERVER_ID", "delivery.server_id"),
    ("CANOPY_AGENT_STS_URL", "delivery.sts_url"),
    ("CANOPY_AGENT_OUTBOX_PATH", "delivery.outbox_path"),
    ("CANOPY_AGENT_MAX_OUTBOX_BYTES", "delivery.max_outbox_bytes"),
    ("CANOPY_AGENT_MAX_IN_FLIGHT", "delivery.max_in_flight"),
];

fn apply_env(table: &mut toml::Table, env: &dyn Env) -> Result<(), ConfigError> {
    for (var, path, kind) in ENV_OVERRIDES {
        let Some(raw) = env.var(var) else { continue };
        let value = env_value(var, path, *kind, &raw)?;
        let (last, parents) = path.split_last().expect("override paths are non-empty");
        let mut node = &mut *table;
        for part in parents {
            let entry = node.entry((*part).to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                other => {
                    return Err(ConfigError::Invalid {
                        key: path[0],
                        expected: "a table".into(),
                        found: other.type_str().into(),
                    });
                }
            };
        }
        node.insert((*last).to_owned(), value);
    }
    Ok(())
}

impl AgentConfig {
    /// Reads `path`, applies environment overrides and validates.
    pub fn load(path: &Path, env: &dyn Env) -> Result<AgentConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        AgentConfig::from_toml(&text, &path.display().to_string(), env)
    }

    /// Parses TOML `text` (named `origin` in errors), applies environment
    /// overrides and validates.
    pub fn from_toml(text: &str, origin: &str, env: &dyn Env) -> Result<AgentConfig, ConfigError> {
        let parse = |message: String| ConfigError::Parse { origin: origin.to_owned(), message };
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| parse(e.message().to_owned() + &span_hint(text, e.span())))?;
        apply_env(&mut table, env)?;
        let config: AgentConfig = table.try_into().map_err(|e: toml::de::Error| parse(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, expected: &str, found: String| {
            Err(ConfigError::Invalid { key, expected: expected.to_owned(), found })
        };
        if self.config_version != CONFIG_VERSION {
            return invalid("config_version", "1", self.config_version.to_string());
        }
        if self.agent_id.trim().is_empty() {
            return invalid("agent_id", "a non-empty identifier", format!("{:?}", self.agent_id));
        }
        if !is_region(&self.region) {
            return invalid("region", "an AWS region code such as eu-west-1", format!("{:?}", self.region));
        }
        if let Some(account) = &self.account_id
            && !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        {
            return invalid("account_id", "12 digits", format!("{account:?}"));
        }
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("endpoint_url", "an http:// or https:// URL", format!("{url:?}"));
        }
        for name in &self.collectors {
            if !crate::collectors::COLLECTOR_NAMES.contains(&name.as_str()) {
                let expected = format!("one of {}", crate::collectors::COLLECTOR_NAMES.join(", "));
                return invalid("collectors", &expected, format!("{name:?}"));
            }
        }
        if self.source.kind == SourceKind::Simulated && self.source.resources == 0 {
            return invalid("source.resources", "at least 1 simulated resource", "0".into());
        }
        let i = &self.intervals;
        if !(60..=3600).contains(&i.cycle_s) || !i.cycle_s.is_multiple_of(300) && !300_u32.is_multiple_of(i.cycle_s) {
            return invalid(
                "intervals.cycle_s",
                "60..=3600 seconds, a divisor or multiple of 300",
                i.cycle_s.to_string(),
            );
        }
        if i.utilisation_s < 3600 || !i.utilisation_s.is_multiple_of(3600) || i.utilisation_s > 86_400 {
            return invalid(
                "intervals.utilisation_s",
                "a whole number of hours between 3600 and 86400 seconds",
                i.utilisation_s.to_string(),
            );
        }
        if !(1..=168).contains(&i.full_inventory_h) {
            return invalid("intervals.full_inventory_h", "1..=168 hours", i.full_inventory_h.to_string());
        }
        let b = &self.budget;
        if !(b.max_cost_usd_per_resource_month.is_finite() && b.max_cost_usd_per_resource_month > 0.0) {
            return invalid(
                "budget.max_cost_usd_per_resource_month",
                "a positive number of USD",
                b.max_cost_usd_per_resource_month.to_string(),
            );
        }
        if !(1..=64).contains(&b.max_concurrency) {
            return invalid("budget.max_concurrency", "1..=64 in-flight calls", b.max_concurrency.to_string());
        }
        if !(1..=10).contains(&b.max_attempts) {
            return invalid("budget.max_attempts", "1..=10 attempts", b.max_attempts.to_string());
        }
        if !(1..=60_000).contains(&b.initial_backoff_ms) {
            return invalid("budget.initial_backoff_ms", "1..=60000 milliseconds", b.initial_backoff_ms.to_string());
        }
        b.rates.validate()?;
        // The agent lengthens the cadence to keep its inventory's average
        // within the budget; a budget even a daily cadence cannot meet is refused.
        let floor = CostModel::from_config(self).at_cadence(crate::cost::MAX_UTILISATION_S).worst_kind_usd_per_resource_month();
        if b.max_cost_usd_per_resource_month < floor {
            return invalid(
                "budget.max_cost_usd_per_resource_month",
                &format!("at least {floor:.5} USD, what a Lambda function costs at the longest cadence (86400 s)"),
                b.max_cost_usd_per_resource_month.to_string(),
            );
        }
        if self.attribution.team_tag_keys.iter().any(|k| k.trim().is_empty() || k.len() > 128) {
            return invalid(
                "attribution.team_tag_keys",
                "tag keys of 1..=128 characters",
                format!("{:?}", self.attribution.team_tag_keys),
            );
        }
        let q = &self.change_queue;
        if let Some(url) = &q.queue_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("change_queue.queue_url", "an SQS queue URL", format!("{url:?}"));
        }
        if q.wait_time_s > 20 {
            return invalid(
                "change_queue.wait_time_s",
                "0..=20 seconds (SQS long-poll maximum)",
                q.wait_time_s.to_string(),
            );
        }
        if !(1..=10).contains(&q.max_messages) {
            return invalid(
                "change_queue.max_messages",
                "1..=10 (SQS maximum per receive)",
                q.max_messages.to_string(),
            );
        }
        if self.output.spool_path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return invalid("output.spool_path", "a file path", "\"\"".into());
        }
        self.validate_delivery()
    }

    /// Checks `[delivery]`; only when an aggregator endpoint is set.
    fn validate_delivery(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, expected: &str, found: String| {
            Err(ConfigError::Invalid { key, expected: expected.to_owned(), found })
        };
        let d = &self.delivery;
        let Some(endpoint) = &d.aggregator_endpoint else { return Ok(()) };
        if d.endpoint_host_port().is_none() {
            return invalid(
                "delivery.aggregator_endpoint",
                "host:port, e.g. canopy.example.com:4433",
                format!("{endpoint:?}"),
            );
        }
        if d.server_id.trim().is_empty() {
            return invalid("delivery.server_id", "the aggregator's server id", "\"\"".into());
        }
        let sts_host = d.sts_url.strip_prefix("https://").or_else(|| d.sts_url.strip_prefix("http://"));
        if sts_host.is_none_or(|rest| rest.split('/').next().is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace))) {
            return invalid("delivery.sts_url", "an http(s) URL with a host", format!("{:?}", d.sts_url));
        }
        if d.server_name.as_ref().is_some_and(|n| n.trim().is_empty()) {
            return invalid("delivery.server_name", "a DNS name or IP address", "\"\"".into());
        }
        match &d.ca_file {
            None => {
                return invalid(
                    "delivery.ca_file",
                    "the aggregator CA certificate's PEM file when delivery.aggregator_endpoint is set",
                    "none".into(),
                );
            }
            Some(p) if p.as_os_str().is_empty() => return invalid("delivery.ca_file", "a file path", "\"\"".into()),
            Some(_) => {}
        }
        if d.outbox_path.as_os_str().is_empty() {
            return invalid("delivery.outbox_path", "a folder path", "\"\"".into());
        }
        if d.max_outbox_bytes < 1 << 20 {
            return invalid("delivery.max_outbox_bytes", "at least 1048576 bytes (1 MiB)", d.max_outbox_bytes.to_string());
        }
        if !(1..=256).contains(&d.max_in_flight) {
            return invalid("delivery.max_in_flight", "1..=256 batches", d.max_in_flight.to_string());
        }
        if !(1..=600).contains(&d.enroll_timeout_s) {
            return invalid("delivery.enroll_timeout_s", "1..=600 seconds", d.enroll_timeout_s.to_string());
        }
        if !(1..=3600).contains(&d.max_backoff_s) {
            return invalid("delivery.max_backoff_s", "1..=3600 seconds", d.max_backoff_s.to_string());
        }
        if !(d.renew_at_lifetime_fraction > 0.0 && d.renew_at_lifetime_fraction < 1.0) {
            return invalid(
                "delivery.renew_at_lifetime_fraction",
                "a fraction strictly between 0 and 1",
                d.renew_at_lifetime_fraction.to_string(),
            );
        }
        if d.drain_timeout_s > 3600 {
            return invalid("delivery.drain_timeout_s", "0..=3600 seconds", d.drain_timeout_s.to_string());
        }
        Ok(())
    }

    /// Team tag keys, in the order they are tried.
    pub fn team_tag_keys(&self) -> &[String] {
        &self.attribution.team_tag_keys
    }
}

/// `" at line L"` for a parse error span, or empty.
fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(range) => format!(" at line {}", text[..range.start.min(text.len())].matches('\n').count() + 1),
        None => String::new(),
    }
}

/// `xx-name-N` style AWS region codes (also `us-gov-west-1`, `cn-north-1`).
pub fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    const MINIMAL: &str = "config_version = 1\nagent_id = \"a1\"\nregion = \"eu-west-1\"\n";

    fn load(text: &str, env: &[(&str, &str)]) -> Result<AgentConfig, ConfigError> {
        AgentConfig::from_toml(text, "agent.toml", &MapEnv::from_pairs(env))
    }

    #[test]
    fn defaults_fill_missing_sections() {
        let c = load(MINIMAL, &[]).unwrap();
        assert_eq!(c.intervals.cycle_s, 300);
        assert_eq!(c.intervals.utilisation_s, 3_600);
        assert_eq!(c.attribution.team_tag_keys, ["Team", "team", "team-name"]);
        assert_eq!(c.budget.max_cost_usd_per_resource_month, 0.005);
    }

    #[test]
    fn environment_overrides_file() {
        let text = format!("{MINIMAL}[intervals]\ncycle_s = 600\n");
        let c = load(&text, &[("CANOPY_AGENT_CYCLE_S", "900"), ("CANOPY_AGENT_TEAM_TAG_KEYS", "Owner, CostCentre")])
            .unwrap();
        assert_eq!(c.intervals.cycle_s, 900);
        assert_eq!(c.attribution.team_tag_keys, ["Owner", "CostCentre"]);
    }

    fn check_error(text: &str, env: &[(&str, &str)], expected: &str) {
        let err = load(text, env).unwrap_err().to_string();
        assert_eq!(err, expected);
    }

    #[test]
    fn errors_name_the_key() {
        check_error(
            &format!("{MINIMAL}[intervals]\ncycle_s = 7\n"),
            &[],
            "config key intervals.cycle_s: expected 60..=3600 seconds, a divisor or multiple of 300, found 7",
        );
        check_error(
            &MINIMAL.replace("eu-west-1", "Ireland"),
            &[],
            "config key region: expected an AWS region code such as eu-west-1, found \"Ireland\"",
        );
        check_error(
            MINIMAL,
            &[("CANOPY_AGENT_CYCLE_S", "five")],
            "environment variable CANOPY_AGENT_CYCLE_S (overrides intervals.cycle_s): expected an integer, found \"five\"",
        );
        // Even daily, a Lambda function requests 2 × 30.42 metrics a month = $0.00061.
        check_error(
            &format!("{MINIMAL}[budget]\nmax_cost_usd_per_resource_month = 0.0005\n"),
            &[],
            "config key budget.max_cost_usd_per_resource_month: expected at least 0.00061 USD, what a Lambda function costs at the longest cadence (86400 s), found 0.0005",
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = load(&format!("{MINIMAL}[intervals]\ncycle_seconds = 300\n"), &[]).unwrap_err().to_string();
        assert!(err.starts_with("config agent.toml: unknown field `cycle_seconds`"), "{err}");
        let err = load(&format!("{MINIMAL}colour = \"green\"\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn delivery_from_environment_and_its_errors() {
        let c = load(
            MINIMAL,
            &[
                ("CANOPY_AGENT_AGGREGATOR_ENDPOINT", "canopy.example.com:4433"),
                ("CANOPY_AGENT_AGGREGATOR_CA_FILE", "/etc/canopy/aggregator-ca.pem"),
                ("CANOPY_AGENT_OUTBOX_PATH", "/var/lib/canopy/outbox"),
                ("CANOPY_AGENT_MAX_OUTBOX_BYTES", "2147483648"),
            ],
        )
        .unwrap();
        let d = &c.delivery;
        assert_eq!(d.endpoint_host_port(), Some(("canopy.example.com".to_owned(), 4433)));
        assert_eq!(d.effective_server_name().as_deref(), Some("canopy.example.com"));
        assert_eq!(d.outbox_path, PathBuf::from("/var/lib/canopy/outbox"));
        assert_eq!(d.max_outbox_bytes, 2_147_483_648);
        assert_eq!(d.max_in_flight, 16);
        let v6 = format!("{MINIMAL}[delivery]\naggregator_endpoint = \"[::1]:4433\"\nca_file = \"ca.pem\"\n");
        assert_eq!(load(&v6, &[]).unwrap().delivery.endpoint_host_port(), Some(("::1".to_owned(), 4433)));
        // Off by default: no endpoint, no outbox.
        assert_eq!(load(MINIMAL, &[]).unwrap().delivery.aggregator_endpoint, None);
        check_error(
            MINIMAL,
            &[("CANOPY_AGENT_AGGREGATOR_ENDPOINT", "canopy.example.com")],
            "config key delivery.aggregator_endpoint: expected host:port, e.g. canopy.example.com:4433, found \"canopy.example.com\"",
        );
        check_error(
            MINIMAL,
            &[("CANOPY_AGENT_AGGREGATOR_ENDPOINT", "canopy.example.com:4433")],
            "config key delivery.ca_file: expected the aggregator CA certificate's PEM file when delivery.aggregator_endpoint is set, found none",
        );
        check_error(
            MINIMAL,
            &[("CANOPY_AGENT_MAX_IN_FLIGHT", "many")],
            "environment variable CANOPY_AGENT_MAX_IN_FLIGHT (overrides delivery.max_in_flight): expected an integer, found \"many\"",
        );
        check_error(
            &format!("{MINIMAL}[delivery]\naggregator_endpoint = \"a:1\"\nca_file = \"ca.pem\"\nmax_outbox_bytes = 1000\n"),
            &[],
            "config key delivery.max_outbox_bytes: expected at least 1048576 bytes (1 MiB), found 1000",
        );
    }

    /// Issue 19: the agent signs enrolment challenges only for the server
    /// id and STS endpoint it is configured with; both default to the
    /// aggregator's defaults and are checked.
    #[test]
    fn challenge_pin_keys() {
        let base = format!("{MINIMAL}[delivery]\naggregator_endpoint = \"a:1\"\nca_file = \"ca.pem\"\n");
        let d = load(&base, &[]).unwrap().delivery;
        assert_eq!((d.server_id.as_str(), d.sts_url.as_str()), ("canopy-aggregator", "https://sts.amazonaws.com"));
        let c = load(
            &base,
            &[("CANOPY_AGENT_AGGREGATOR_SERVER_ID", "canopy-prod"), ("CANOPY_AGENT_STS_URL", "https://sts.eu-west-1.amazonaws.com")],
        )
        .unwrap();
        assert_eq!(c.delivery.server_id, "canopy-prod");
        assert_eq!(c.delivery.sts_url, "https://sts.eu-west-1.amazonaws.com");
        check_error(
            &format!("{base}sts_url = \"sts.amazonaws.com\"\n"),
            &[],
            "config key delivery.sts_url: expected an http(s) URL with a host, found \"sts.amazonaws.com\"",
        );
        check_error(
            &format!("{base}server_id = \" \"\n"),
            &[],
            "config key delivery.server_id: expected the aggregator's server id, found \"\"",
        );
    }

    #[test]
    fn region_codes() {
        assert!(is_region("us-gov-west-1"));
        assert!(is_region("ap-southeast-3"));
        assert!(!is_region("eu-west"));
        assert!(!is_region("EU-WEST-1"));
    }
}
