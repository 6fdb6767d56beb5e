//! AWS SDK configuration shared by every collector: region, endpoint
//! override, standard retry mode, and an HTTP client wrapper that enforces
//! the per-API budgets on every attempt and counts calls, retries,
//! throttles and server errors.
//!
//! How the pieces fit: an interceptor tags each outgoing attempt (after
//! signing, so the tag is not signed) with its service, operation and
//! attempt number; the budgeted HTTP connector strips the tag, waits for a
//! concurrency permit and a token of that API's bucket, sends, and
//! classifies the response. Retries (exponential back-off with jitter on
//! throttling errors, transient errors and 5xx) are the SDK's standard
//! retry strategy, so each retry passes the bucket again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, Metadata};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use aws_smithy_types::config_bag::ConfigBag;
use tokio::sync::Semaphore;

use crate::config::AgentConfig;
use crate::metrics::Metrics;
use crate::rates::RateLimiter;

const API_HEADER: &str = "x-canopy-agent-api";
const ATTEMPT_HEADER: &str = "x-canopy-agent-attempt";

/// Everything a collector needs to build its SDK client.
#[derive(Clone, Debug)]
pub struct AwsContext {
    /// Shared SDK configuration (region, endpoint, credentials, retry, HTTP client).
    pub sdk: SdkConfig,
    /// Interceptor to install on every service client.
    pub interceptor: BudgetInterceptor,
    /// Use path-style S3 addressing (endpoint overrides, moto).
    pub s3_force_path_style: bool,
}

/// Builds the shared SDK configuration for `config`; credentials come from
/// `credentials` when given (tests), else the SDK's default chain.
pub async fn aws_context(
    config: &AgentConfig,
    limiter: Arc<RateLimiter>,
    metrics: Arc<Metrics>,
    credentials: Option<aws_sdk_sts::config::Credentials>,
) -> AwsContext {
    let inner = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::AwsLc)).build_https();
    let http = SharedHttpClient::new(BudgetedHttpClient {
        inner,
        state: Arc::new(BudgetState {
            limiter,
            metrics,
            max_concurrency: config.budget.max_concurrency as usize,
            semaphores: Mutex::new(HashMap::new()),
        }),
    });
    let retry = RetryConfig::standard()
        .with_max_attempts(config.budget.max_attempts)
        .with_initial_backoff(Duration::from_millis(config.budget.initial_backoff_ms))
        .with_max_backoff(Duration::from_secs(20));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .http_client(http)
        .retry_config(retry);
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    AwsContext {
        sdk: loader.load().await,
        interceptor: BudgetInterceptor,
        s3_force_path_style: config.endpoint_url.is_some(),
    }
}

/// Tags each attempt with its API and attempt number for the budgeted connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct BudgetInterceptor;

impl Intercept for BudgetInterceptor {
    fn name(&self) -> &'static str {
        "CanopyBudgetInterceptor"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let api = cfg
            .load::<Metadata>()
            .map(|m| format!("{}/{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown/unknown".into());
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        let headers = context.request_mut().headers_mut();
        headers.insert(API_HEADER, api);
        headers.insert(ATTEMPT_HEADER, attempt.to_string());
        Ok(())
    }
}

#[derive(Debug)]
struct BudgetState {
    limiter: Arc<RateLimiter>,
    metrics: Arc<Metrics>,
    max_concurrency: usize,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl BudgetState {
    fn semaphore(&self, service: &str) -> Arc<Semaphore> {
        let mut map = self.semaphores.lock().expect("semaphore map lock");
        map.entry(service.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.max_concurrency))).clone()
    }
}

#[derive(Debug)]
struct BudgetedHttpClient {
    inner: SharedHttpClient,
    state: Arc<BudgetState>,
}

impl HttpClient for BudgetedHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(BudgetedConnector {
            inner: self.inner.http_connector(settings, components),
            state: self.state.clone(),
        })
    }
}

#[derive(Debug)]
struct BudgetedConnector {
    inner: SharedHttpConnector,
    state: Arc<BudgetState>,
}

/// Error codes AWS services use for throttling.
const THROTTLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// True when an error response (status, headers, body) is a throttling error.
pub fn is_throttle(status: u16, error_type_header: Option<&str>, body: &[u8]) -> bool {
    if status == 429 {
        return true;
    }
    if let Some(t) = error_type_header {
        let code = t.split(':').next().unwrap_or(t);
        if THROTTLE_CODES.contains(&code) {
            return true;
        }
    }
    let text = String::from_utf8_lossy(body);
    THROTTLE_CODES.iter().any(|code| {
        text.contains(&format!("<Code>{code}</Code>"))
            || text.contains(&format!("\"{code}\""))
            || text.contains(&format!("#{code}\""))
    })
}

impl HttpConnector for BudgetedConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let state = self.state.clone();
        let api = request.headers_mut().remove(API_HEADER).unwrap_or_else(|| "unknown/unknown".into());
        let attempt: u32 = request.headers_mut().remove(ATTEMPT_HEADER).and_then(|a| a.parse().ok()).unwrap_or(1);
        HttpConnectorFuture::new(async move {
            let (service, operation) = api.split_once('/').unwrap_or(("unknown", "unknown"));
            let service = service.to_ascii_lowercase();
            let _permit = state.semaphore(&service).acquire_owned().await.expect("semaphore never closed");
            state.limiter.bucket(&service, operation).acquire().await;
            let metrics = &state.metrics;
            metrics.inc("canopy_agent_api_calls_total", &[("service", &service), ("operation", operation)]);
            if attempt > 1 {
                metrics.inc("canopy_agent_api_retries_total", &[("service", &service)]);
            }
            let mut response = inner.call(request).await?;
            let status = response.status().as_u16();
            if status < 400 {
                return Ok(response);
            }
            // Error bodies are small: buffer to classify, then hand back.
            let error_type = response.headers().get("x-amzn-ErrorType").map(str::to_owned);
            let bytes =
                ByteStream::new(response.take_body()).collect().await.map(|b| b.into_bytes()).unwrap_or_default();
            let throttled = is_throttle(status, error_type.as_deref(), &bytes);
            if throttled {
                metrics.inc("canopy_agent_api_throttles_total", &[("service", &service)]);
            } else if status >= 500 {
                metrics.inc("canopy_agent_api_server_errors_total", &[("service", &service)]);
            }
            *response.body_mut() = SdkBody::from(bytes);
            Ok(response)
        })
    }
}
