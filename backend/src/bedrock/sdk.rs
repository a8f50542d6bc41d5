//! [`ModelClient`] over the real `aws-sdk-bedrockruntime`, for AWS and for the emulator alike.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::{Credentials, Region};
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::RequestId;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ContentBlockDelta, ConversationRole, ConverseStreamOutput as StreamEvent, InferenceConfiguration,
    Message, SystemContentBlock,
};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_types::error::display::DisplayErrorContext;
use common::{StopReason, Usage};
use futures_util::FutureExt as _;
use serde::Deserialize;

use super::{CallError, CallTrace, ErrorKind, ModelClient, ModelReply, ModelRequest, TextSink};

/// Which Bedrock operation `call_bedrock` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BedrockApi {
    /// ConverseStream: the response streams as text deltas.
    #[default]
    Converse,
    /// InvokeModel with the Anthropic Messages body, as the original system did; no streaming.
    Invoke,
}

impl BedrockApi {
    /// The name used by flags and `/api/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            BedrockApi::Converse => "converse",
            BedrockApi::Invoke => "invoke",
        }
    }
}

/// Time limits of one call.
///
/// A healthy stream is never cut: the connection must open within `connect`, the response
/// headers arrive within `first_byte`, and the stream never go silent for `idle`; all three are
/// retryable. Only `call`, a limit the operator sets on purpose, bounds a stream that keeps
/// producing, and it is not retried: a second attempt would be billed again and cut the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Duration,
    /// From sending the request to the response headers.
    pub first_byte: Duration,
    /// The longest silence allowed between two stream events.
    pub idle: Duration,
    /// The whole call, from sending to the last byte of the stream; `None` sets no limit.
    pub call: Option<Duration>,
}

/// How to reach Bedrock.
#[derive(Debug, Clone)]
pub struct SdkSettings {
    /// Send every call to this URL instead of the AWS endpoint.
    pub endpoint: Option<String>,
    /// Sign with fixed dummy credentials (for the emulator) instead of the AWS credential chain.
    pub dummy_credentials: bool,
    /// Signing region; `AWS_REGION` or `us-east-1` when `None`.
    pub region: Option<String>,
    /// Converse (streaming) or Invoke.
    pub api: BedrockApi,
    pub timeouts: Timeouts,
}

/// Calls Bedrock through the AWS SDK.
#[derive(Debug, Clone)]
pub struct SdkClient {
    client: Client,
    api: BedrockApi,
    timeouts: Timeouts,
    region: String,
}

impl SdkClient {
    /// Builds the SDK client: our TLS stack, no SDK retries, our timeouts.
    pub async fn connect(settings: &SdkSettings) -> SdkClient {
        let http_client =
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        let region = settings
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .region(Region::new(region.clone()))
            // The flow owns retries: one SDK attempt per flow attempt (see the module doc).
            .retry_config(RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().connect_timeout(settings.timeouts.connect).build())
            // Our own idle timeout watches the stream; the SDK's protection would fire on a
            // slow but healthy stream with a less useful error.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        if settings.dummy_credentials {
            loader = loader.credentials_provider(Credentials::new("emulator", "emulator", None, None, "emulator"));
        }
        let sdk_config = loader.load().await;
        let mut config = aws_sdk_bedrockruntime::config::Builder::from(&sdk_config);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        SdkClient { client: Client::from_conf(config.build()), api: settings.api, timeouts: settings.timeouts, region }
    }

    /// The signing region in use.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Waits for the response headers no longer than the first-byte timeout.
    async fn first_byte<T>(&self, send: impl Future<Output = T>, trace: &CallTrace) -> Result<T, CallError> {
        tokio::time::timeout(self.timeouts.first_byte, send).await.map_err(|_| {
            let message =
                format!("Bedrock sent no response within {} s of the request", self.timeouts.first_byte.as_secs_f32());
            local_error(ErrorKind::Timeout, message, trace)
        })
    }

    async fn converse_stream(
        &self,
        request: &ModelRequest,
        sink: &mut dyn TextSink,
        trace: &mut CallTrace,
        started: Instant,
    ) -> Result<ModelReply, CallError> {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(request.prompt.clone()))
            .build()
            .map_err(|e| local_error(ErrorKind::Other, e.to_string(), trace))?;
        let inference = InferenceConfiguration::builder()
            .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
            .set_temperature(request.temperature)
            .build();
        let mut call =
            self.client.converse_stream().model_id(&request.model_id).messages(message).inference_config(inference);
        if let Some(system) = &request.system {
            call = call.system(SystemContentBlock::Text(system.clone()));
        }
        let output = self.first_byte(call.send(), trace).await?.map_err(|e| operation_error(&e, trace))?;
        trace.http_status = Some(200);
        trace.request_id = output.request_id().map(str::to_owned);
        trace.first_byte_ms = Some(elapsed_ms(started));
        let mut stream = output.stream;
        let mut reply = ModelReply {
            text: String::new(),
            usage: None,
            stop_reason: None,
            latency_ms: None,
            trace: CallTrace::default(),
        };
        let mut stopped = false;
        // Text of deltas that arrived together, handed to the sink as one piece: a fast stream
        // (or an unpaced emulator) then costs one event per read instead of one per token,
        // while a paced stream still reaches the sink delta by delta.
        let mut pending = String::new();
        loop {
            let next = if pending.is_empty() {
                tokio::time::timeout(self.timeouts.idle, stream.recv()).await.map_err(|_| {
                    let message = format!("the response stream was idle for {} s", self.timeouts.idle.as_secs_f32());
                    local_error(ErrorKind::StreamIdle, message, trace)
                })?
            } else {
                // `recv` keeps undecoded bytes in the receiver, so dropping it when nothing is
                // ready loses nothing.
                match stream.recv().now_or_never() {
                    Some(next) => next,
                    None => {
                        sink.text(&pending);
                        pending.clear();
                        continue;
                    }
                }
            };
            if !pending.is_empty() && !matches!(next, Ok(Some(StreamEvent::ContentBlockDelta(_)))) {
                sink.text(&pending);
                pending.clear();
            }
            match next {
                Ok(Some(StreamEvent::ContentBlockDelta(event))) => {
                    if let Some(ContentBlockDelta::Text(text)) = event.delta {
                        pending.push_str(&text);
                        reply.text.push_str(&text);
                    }
                }
                Ok(Some(StreamEvent::MessageStop(event))) => {
                    stopped = true;
                    reply.stop_reason = Some(stop_reason(event.stop_reason.as_str()));
                }
                Ok(Some(StreamEvent::Metadata(event))) => {
                    reply.usage = event.usage.map(|u| Usage {
                        input_tokens: u32::try_from(u.input_tokens).unwrap_or(0),
                        output_tokens: u32::try_from(u.output_tokens).unwrap_or(0),
                    });
                    reply.latency_ms = event.metrics.and_then(|m| u64::try_from(m.latency_ms).ok());
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => {
                    let (kind, message) = match error.as_service_error() {
                        Some(exception) => stream_exception(exception),
                        None => (
                            ErrorKind::StreamBroken,
                            format!("the response stream broke: {}", DisplayErrorContext(error)),
                        ),
                    };
                    return Err(local_error(kind, message, trace));
                }
            }
        }
        if !stopped {
            return Err(local_error(
                ErrorKind::StreamBroken,
                "the response stream ended before the model finished".into(),
                trace,
            ));
        }
        Ok(reply)
    }

    async fn invoke(
        &self,
        request: &ModelRequest,
        sink: &mut dyn TextSink,
        trace: &mut CallTrace,
        started: Instant,
    ) -> Result<ModelReply, CallError> {
        let mut body = serde_json::json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": request.max_tokens,
            "messages": [{"role": "user", "content": [{"type": "text", "text": request.prompt}]}],
        });
        if let Some(system) = &request.system {
            body["system"] = system.clone().into();
        }
        if let Some(temperature) = request.temperature {
            body["temperature"] = temperature.into();
        }
        let send = self
            .client
            .invoke_model()
            .model_id(&request.model_id)
            .content_type("application/json")
            .accept("application/json")
            .body(Blob::new(body.to_string()))
            .send();
        let output = self.first_byte(send, trace).await?.map_err(|e| operation_error(&e, trace))?;
        trace.http_status = Some(200);
        trace.request_id = output.request_id().map(str::to_owned);
        trace.first_byte_ms = Some(elapsed_ms(started));
        // A body that does not parse was almost always cut in transit: worth another attempt.
        let parsed: MessagesResponse = serde_json::from_slice(output.body.as_ref()).map_err(|e| {
            let message = format!("the response body was cut or is not an Anthropic message: {e}");
            local_error(ErrorKind::StreamBroken, message, trace)
        })?;
        let text: String = parsed.content.into_iter().filter_map(|block| block.text).collect();
        sink.text(&text);
        Ok(ModelReply {
            text,
            usage: parsed.usage.map(|u| Usage { input_tokens: u.input_tokens, output_tokens: u.output_tokens }),
            stop_reason: parsed.stop_reason.as_deref().map(stop_reason),
            latency_ms: None,
            trace: CallTrace::default(),
        })
    }
}

#[async_trait]
impl ModelClient for SdkClient {
    async fn call(&self, request: &ModelRequest, sink: &mut dyn TextSink) -> Result<ModelReply, CallError> {
        let started = Instant::now();
        let mut trace = CallTrace::default();
        let call = async {
            match self.api {
                BedrockApi::Converse => self.converse_stream(request, sink, &mut trace, started).await,
                BedrockApi::Invoke => self.invoke(request, sink, &mut trace, started).await,
            }
        };
        let result = match self.timeouts.call {
            Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| limit),
            None => Ok(call.await),
        };
        trace.total_ms = Some(elapsed_ms(started));
        match result {
            Ok(Ok(mut reply)) => {
                reply.trace = trace;
                Ok(reply)
            }
            Ok(Err(mut error)) => {
                error.trace.total_ms = trace.total_ms;
                Err(error)
            }
            Err(limit) => Err(CallError {
                kind: ErrorKind::CallLimit,
                message: format!(
                    "the call exceeded the {} s limit set by --call-timeout-secs; not retried, as another attempt would be cut the same way",
                    limit.as_secs_f32()
                ),
                trace,
            }),
        }
    }
}

/// The parts of an Anthropic Messages response we use.
#[derive(Deserialize)]
struct MessagesResponse {
    content: Vec<MessagesBlock>,
    stop_reason: Option<String>,
    usage: Option<MessagesUsage>,
}

#[derive(Deserialize)]
struct MessagesBlock {
    text: Option<String>,
}

#[derive(Deserialize)]
struct MessagesUsage {
    input_tokens: u32,
    output_tokens: u32,
}

/// Classifies an exception frame inside a ConverseStream. The SDK decodes it into its typed
/// variant but leaves the error code empty, so the variant is what tells them apart; the
/// message keeps Bedrock's name for it, as the HTTP errors' messages do.
fn stream_exception(exception: &ConverseStreamOutputError) -> (ErrorKind, String) {
    let (kind, name) = match exception {
        ConverseStreamOutputError::ThrottlingException(_) => (ErrorKind::Throttled, "ThrottlingException"),
        ConverseStreamOutputError::ServiceUnavailableException(_) => {
            (ErrorKind::ServiceUnavailable, "ServiceUnavailableException")
        }
        ConverseStreamOutputError::InternalServerException(_) => (ErrorKind::InternalServer, "InternalServerException"),
        ConverseStreamOutputError::ModelStreamErrorException(_) => {
            (ErrorKind::StreamBroken, "ModelStreamErrorException")
        }
        ConverseStreamOutputError::ValidationException(_) => (ErrorKind::Validation, "ValidationException"),
        _ => (ErrorKind::StreamBroken, "an exception"),
    };
    let detail = exception.message().unwrap_or("no message");
    (kind, format!("{name} in the middle of the response stream: {detail}"))
}

fn stop_reason(name: &str) -> StopReason {
    match name {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "content_filtered" => StopReason::ContentFiltered,
        other => StopReason::Other(other.to_owned()),
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn local_error(kind: ErrorKind, message: String, trace: &CallTrace) -> CallError {
    CallError { kind, message, trace: trace.clone() }
}

/// Classifies an error returned before the response body, keeping the status and request id.
fn operation_error<E>(
    error: &SdkError<E, aws_sdk_bedrockruntime::config::http::HttpResponse>,
    trace: &mut CallTrace,
) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(response) = error.raw_response() {
        trace.http_status = Some(response.status().as_u16());
        trace.request_id = response.headers().get("x-amzn-requestid").map(str::to_owned);
    }
    let (kind, message) = match error {
        SdkError::ServiceError(context) => {
            let code = context.err().code().unwrap_or("UnknownError");
            let message = context.err().message().map_or_else(|| code.to_owned(), |m| format!("{code}: {m}"));
            (ErrorKind::from_code(code), message)
        }
        SdkError::TimeoutError(_) => (ErrorKind::Timeout, "the request to Bedrock timed out".to_owned()),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            (ErrorKind::Timeout, format!("connecting to Bedrock timed out: {}", DisplayErrorContext(error)))
        }
        SdkError::DispatchFailure(_) => {
            (ErrorKind::Connection, format!("could not reach Bedrock: {}", DisplayErrorContext(error)))
        }
        SdkError::ResponseError(_) => (
            ErrorKind::Connection,
            format!("the response from Bedrock was cut or unreadable: {}", DisplayErrorContext(error)),
        ),
        _ => (ErrorKind::Other, format!("the request could not be sent: {}", DisplayErrorContext(error))),
    };
    // A 5xx or 429 is retryable whatever its body: see `ErrorKind::from_status`.
    let kind = match trace.http_status.and_then(ErrorKind::from_status) {
        Some(by_status) if !kind.is_retryable() => by_status,
        _ => kind,
    };
    let message = match (kind, trace.http_status) {
        (_, Some(status)) if ErrorKind::from_status(status).is_some() && !message.contains(&status.to_string()) => {
            format!("HTTP {status}: {message}")
        }
        _ => message,
    };
    CallError { kind, message, trace: trace.clone() }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::{Response, StatusCode};
    use tokio::net::TcpListener;

    use common::{FaultKind, FaultPlan};

    use super::*;
    use crate::emulator::{Emulator, EmulatorConfig, reply_for};

    /// The emulator behind a "proxy" that answers its first `failures` calls itself with
    /// `status` and `page` as the body, as a load balancer in front of Bedrock would.
    async fn behind_a_failing_proxy(
        status: StatusCode,
        page: &'static str,
        failures: usize,
    ) -> (SdkClient, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let router = Emulator::new(EmulatorConfig::unpaced()).router().layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let call = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if call < failures {
                        let mut response = Response::new(Body::from(page));
                        *response.status_mut() = status;
                        response.headers_mut().insert("content-type", "text/html".parse().expect("header"));
                        return response;
                    }
                    next.run(request).await
                }
            },
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        (client_at(addr, timeouts(30_000, 30_000, None)).await, calls)
    }

    /// An SDK client with `timeouts`, signing with dummy credentials, sending every call to `addr`.
    async fn client_at(addr: std::net::SocketAddr, timeouts: Timeouts) -> SdkClient {
        let settings = SdkSettings {
            endpoint: Some(format!("http://{addr}")),
            dummy_credentials: true,
            region: None,
            api: BedrockApi::Converse,
            timeouts,
        };
        SdkClient::connect(&settings).await
    }

    fn request(prompt: &str) -> ModelRequest {
        ModelRequest {
            model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
            prompt: prompt.into(),
            system: None,
            max_tokens: 64,
            temperature: None,
        }
    }

    #[tokio::test]
    async fn a_proxy_s_502_html_page_is_a_retryable_failure_and_the_next_call_succeeds() {
        let page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
        let (client, calls) = behind_a_failing_proxy(StatusCode::BAD_GATEWAY, page, 1).await;
        let mut sink = |_: &str| {};

        let first = client.call(&request("hello"), &mut sink).await.expect_err("the proxy answers 502");
        assert!(first.kind.is_retryable(), "{:?}: {}", first.kind, first.message);
        assert_eq!(first.trace.http_status, Some(502));
        assert!(first.message.contains("502"), "{}", first.message);

        let second = client.call(&request("hello"), &mut sink).await.expect("the emulator answers");
        assert_eq!(second.text, reply_for("hello"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_504_without_any_body_is_retryable_too() {
        let (client, _) = behind_a_failing_proxy(StatusCode::GATEWAY_TIMEOUT, "", 1).await;
        let mut sink = |_: &str| {};
        let error = client.call(&request("hello"), &mut sink).await.expect_err("the proxy answers 504");
        assert!(error.kind.is_retryable(), "{:?}: {}", error.kind, error.message);
    }

    /// An SDK client with `timeouts` in front of an emulator configured as `config`.
    async fn client_of(config: EmulatorConfig, timeouts: Timeouts) -> SdkClient {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(Emulator::new(config).serve(listener, std::future::pending()));
        client_at(addr, timeouts).await
    }

    fn timeouts(first_byte_ms: u64, idle_ms: u64, call_ms: Option<u64>) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_millis(first_byte_ms),
            idle: Duration::from_millis(idle_ms),
            call: call_ms.map(Duration::from_millis),
        }
    }

    #[tokio::test]
    async fn a_server_that_never_sends_headers_is_a_retryable_first_byte_timeout() {
        let silent = EmulatorConfig { latency: Duration::from_secs(3600), ..EmulatorConfig::unpaced() };
        let client = client_of(silent, timeouts(200, 60_000, None)).await;
        let error = client.call(&request("hello"), &mut |_: &str| {}).await.expect_err("no headers ever come");
        assert_eq!(error.kind, ErrorKind::Timeout, "{}", error.message);
        assert!(error.kind.is_retryable());
        assert_eq!(error.trace.http_status, None, "no response was received");
        assert!(error.message.contains("no response within 0.2 s"), "{}", error.message);
    }

    #[tokio::test]
    async fn headers_followed_by_silence_are_caught_by_the_idle_timeout() {
        let slow_body = EmulatorConfig { body_latency: Duration::from_secs(3600), ..EmulatorConfig::unpaced() };
        let client = client_of(slow_body, timeouts(60_000, 200, None)).await;
        let error = client.call(&request("hello"), &mut |_: &str| {}).await.expect_err("the body never comes");
        assert_eq!(error.kind, ErrorKind::StreamIdle, "{}", error.message);
        assert_eq!(error.trace.http_status, Some(200), "the headers did arrive");
    }

    #[tokio::test]
    async fn a_stream_that_keeps_producing_outlives_the_first_byte_and_idle_timeouts() {
        // About 45 chunks at 20 per second: the stream lasts over 2 s, longer than either timeout,
        // while no gap between chunks comes near the idle timeout.
        let paced = EmulatorConfig { tokens_per_sec: 20, ..EmulatorConfig::unpaced() };
        let client = client_of(paced, timeouts(2_000, 2_000, None)).await;
        let reply = client.call(&request("a long and healthy answer"), &mut |_: &str| {}).await.expect("completes");
        assert_eq!(reply.text, reply_for("a long and healthy answer"));
        assert!(reply.trace.total_ms.is_some_and(|ms| ms > 2_000), "{:?}", reply.trace);
    }

    #[tokio::test]
    async fn the_operator_s_whole_call_limit_cuts_a_stream_and_is_not_retried() {
        let paced = EmulatorConfig { tokens_per_sec: 20, ..EmulatorConfig::unpaced() };
        let client = client_of(paced, timeouts(60_000, 60_000, Some(300))).await;
        let error = client.call(&request("too long for the limit"), &mut |_: &str| {}).await.expect_err("cut");
        assert_eq!(error.kind, ErrorKind::CallLimit, "{}", error.message);
        assert!(!error.kind.is_retryable());
        assert!(error.message.contains("--call-timeout-secs"), "{}", error.message);
    }

    #[tokio::test]
    async fn exceptions_inside_a_stream_are_classified_like_their_http_forms() {
        for (kind, expected) in [
            (FaultKind::StreamThrottle, ErrorKind::Throttled),
            (FaultKind::StreamModelError, ErrorKind::StreamBroken),
            (FaultKind::StreamInternal, ErrorKind::InternalServer),
        ] {
            let faulty = EmulatorConfig {
                faults: Some(FaultPlan { kind, fail_first: 1, every_nth: 0 }),
                ..EmulatorConfig::unpaced()
            };
            let client = client_of(faulty, timeouts(60_000, 60_000, None)).await;
            let mut received = String::new();
            let error = client
                .call(&request("hello"), &mut |text: &str| received.push_str(text))
                .await
                .expect_err("the stream fails");
            assert_eq!(error.kind, expected, "{kind:?}: {}", error.message);
            assert!(error.kind.is_retryable());
            assert!(!received.is_empty() && reply_for("hello").starts_with(&received), "{kind:?}: {received:?}");
        }
    }
}
