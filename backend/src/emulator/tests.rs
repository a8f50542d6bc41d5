//! The emulator exercised through the real `aws-sdk-bedrockruntime` client over a loopback socket,
//! plus raw-HTTP checks of what the SDK hides (headers, framing).

use std::time::Duration;

use aws_sdk_bedrockruntime as bedrock;
use bedrock::Client;
use bedrock::error::ProvideErrorMetadata as _;
use bedrock::operation::RequestId as _;
use bedrock::primitives::Blob;
use bedrock::types::{
    ContentBlock, ContentBlockDelta, ConversationRole, ConverseOutput, ConverseStreamOutput, InferenceConfiguration,
    Message, ResponseStream, StopReason,
};
use common::{FaultKind, FaultPlan, Quota};
use tokio::sync::oneshot;
use tower::ServiceExt as _;

use super::*;

const MODEL: &str = "anthropic.claude-3-sonnet-20240229-v1:0";

/// An emulator serving on a loopback port, with an SDK client pointed at it.
struct TestEmulator {
    emulator: Emulator,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestEmulator {
    async fn start(config: EmulatorConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let emulator = Emulator::new(config);
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(emulator.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        TestEmulator { emulator, client: sdk_client(&url), stop: Some(stop), served }
    }

    async fn unpaced() -> Self {
        Self::start(EmulatorConfig::unpaced()).await
    }

    fn with_faults(self, kind: FaultKind, fail_first: u32, every_nth: u32) -> Self {
        self.emulator.set_faults(Some(FaultPlan { kind, fail_first, every_nth }));
        self
    }

    async fn converse_stream_text(&self, prompt: &str) -> Result<String, String> {
        let output = self
            .client
            .converse_stream()
            .model_id(MODEL)
            .messages(user_message(prompt))
            .send()
            .await
            .map_err(|e| e.code().unwrap_or("no code").to_owned())?;
        let mut stream = output.stream;
        let mut text = String::new();
        while let Some(event) = stream.recv().await.map_err(|e| e.to_string())? {
            if let ConverseStreamOutput::ContentBlockDelta(delta) = event
                && let Some(ContentBlockDelta::Text(piece)) = delta.delta
            {
                text.push_str(&piece);
            }
        }
        Ok(text)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.served)
            .await
            .expect("graceful shutdown finishes")
            .expect("server task joins")
            .expect("server ends cleanly");
    }
}

fn sdk_client(url: &str) -> Client {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    let sdk_config = aws_config::SdkConfig::builder()
        .behavior_version(bedrock::config::BehaviorVersion::latest())
        .region(bedrock::config::Region::new("us-east-1"))
        .credentials_provider(bedrock::config::SharedCredentialsProvider::new(bedrock::config::Credentials::new(
            "AKIDEMULATORTEST",
            "emulator-test-secret",
            None,
            None,
            "emulator-tests",
        )))
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        .http_client(http)
        .build();
    Client::from_conf(bedrock::config::Builder::from(&sdk_config).endpoint_url(url).build())
}

fn user_message(prompt: &str) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(prompt.to_owned()))
        .build()
        .expect("message builds")
}

fn anthropic_body(prompt: &str, max_tokens: u32) -> Blob {
    Blob::new(
        serde_json::to_vec(&serde_json::json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        }))
        .expect("json"),
    )
}

#[tokio::test]
async fn converse_stream_returns_exactly_the_reply_as_deltas_with_usage_in_metadata() {
    let emu = TestEmulator::unpaced().await;
    let prompt = "Tell me about <script>alert(1)</script> & rivers";
    let output = emu
        .client
        .converse_stream()
        .model_id(MODEL)
        .messages(user_message(prompt))
        .system(bedrock::types::SystemContentBlock::Text("be brief".into()))
        .send()
        .await
        .expect("stream starts");
    let mut stream = output.stream;
    let (mut text, mut deltas, mut usage, mut stop, mut started) = (String::new(), 0, None, None, false);
    while let Some(event) = stream.recv().await.expect("event decodes") {
        match event {
            ConverseStreamOutput::MessageStart(start) => {
                started = true;
                assert_eq!(start.role, ConversationRole::Assistant);
            }
            ConverseStreamOutput::ContentBlockDelta(delta) => {
                assert_eq!(delta.content_block_index, 0);
                if let Some(ContentBlockDelta::Text(piece)) = delta.delta {
                    text.push_str(&piece);
                    deltas += 1;
                }
            }
            ConverseStreamOutput::MessageStop(message_stop) => stop = Some(message_stop.stop_reason),
            ConverseStreamOutput::Metadata(metadata) => usage = metadata.usage,
            _ => {}
        }
    }
    assert!(started);
    assert_eq!(text, reply_for(prompt));
    assert_eq!(stop, Some(StopReason::EndTurn));
    let usage = usage.expect("metadata carries usage");
    assert_eq!(usage.output_tokens, deltas);
    assert_eq!(usage.input_tokens, 6 + 2, "prompt words plus system words");
    assert_eq!(usage.total_tokens, usage.input_tokens + usage.output_tokens);
    assert_eq!(emu.emulator.status().calls, 1);
    emu.stop().await;
}

#[tokio::test]
async fn converse_returns_the_reply_with_stop_reason_and_usage() {
    let emu = TestEmulator::unpaced().await;
    let output = emu.client.converse().model_id(MODEL).messages(user_message("hello")).send().await.expect("converse");
    let Some(ConverseOutput::Message(message)) = output.output() else { panic!("no message in {output:?}") };
    assert_eq!(message.role, ConversationRole::Assistant);
    assert_eq!(message.content, [ContentBlock::Text(reply_for("hello"))]);
    assert_eq!(output.stop_reason, StopReason::EndTurn);
    let usage = output.usage().expect("usage");
    assert_eq!(usage.input_tokens, 1);
    assert_eq!(usage.output_tokens, reply::count_tokens(&reply_for("hello")) as i32);
    emu.stop().await;
}

#[tokio::test]
async fn a_reply_longer_than_max_tokens_is_cut_and_stops_for_max_tokens() {
    let emu = TestEmulator::unpaced().await;
    let output = emu
        .client
        .converse()
        .model_id(MODEL)
        .messages(user_message("hello"))
        .inference_config(InferenceConfiguration::builder().max_tokens(3).build())
        .send()
        .await
        .expect("converse");
    assert_eq!(output.stop_reason, StopReason::MaxTokens);
    assert_eq!(output.usage().map(|u| u.output_tokens), Some(3));
    let Some(ConverseOutput::Message(message)) = output.output() else { panic!("no message") };
    assert_eq!(message.content, [ContentBlock::Text(reply::chunks(&reply_for("hello")).take(3).collect())]);
    emu.stop().await;
}

#[tokio::test]
async fn invoke_model_answers_an_anthropic_messages_body() {
    let emu = TestEmulator::unpaced().await;
    let output = emu
        .client
        .invoke_model()
        .model_id(MODEL)
        .content_type("application/json")
        .accept("application/json")
        .body(anthropic_body("invoke me", 4096))
        .send()
        .await
        .expect("invoke");
    let body: serde_json::Value = serde_json::from_slice(output.body.as_ref()).expect("json body");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["content"][0]["text"], reply_for("invoke me"));
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["input_tokens"], 2);
    emu.stop().await;
}

#[tokio::test]
async fn invoke_model_with_response_stream_sends_anthropic_stream_events_in_chunks() {
    let emu = TestEmulator::unpaced().await;
    let output = emu
        .client
        .invoke_model_with_response_stream()
        .model_id(MODEL)
        .content_type("application/json")
        .body(anthropic_body("stream me", 4096))
        .send()
        .await
        .expect("invoke stream");
    let mut stream = output.body;
    let (mut types, mut text, mut last) = (Vec::new(), String::new(), serde_json::Value::Null);
    while let Some(event) = stream.recv().await.expect("event decodes") {
        let ResponseStream::Chunk(part) = event else { continue };
        let event: serde_json::Value =
            serde_json::from_slice(part.bytes.expect("chunk bytes").as_ref()).expect("anthropic event json");
        let kind = event["type"].as_str().expect("typed event").to_owned();
        if kind == "content_block_delta" {
            assert_eq!(event["delta"]["type"], "text_delta");
            text.push_str(event["delta"]["text"].as_str().expect("text"));
        } else {
            types.push(kind);
        }
        if event["type"] == "message_delta" {
            assert_eq!(event["delta"]["stop_reason"], "end_turn");
            assert_eq!(event["usage"]["output_tokens"], reply::count_tokens(&reply_for("stream me")));
        }
        last = event;
    }
    assert_eq!(text, reply_for("stream me"));
    assert_eq!(types, ["message_start", "content_block_start", "content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(last["amazon-bedrock-invocationMetrics"]["inputTokenCount"], 2);
    emu.stop().await;
}

#[tokio::test]
async fn a_throttle_fault_is_a_throttling_exception_with_its_message_and_a_request_id() {
    let emu = TestEmulator::unpaced().await.with_faults(FaultKind::Throttle, 1, 0);
    let error = emu.client.converse().model_id(MODEL).messages(user_message("hi")).send().await.expect_err("throttled");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(429));
    let service_error = error.as_service_error().expect("a service error");
    assert!(service_error.is_throttling_exception(), "{service_error:?}");
    assert_eq!(service_error.message(), Some("Too many requests, please wait before trying again."));
    assert!(error.request_id().is_some_and(|id| id.len() == 36), "{:?}", error.request_id());
    emu.stop().await;
}

#[tokio::test]
async fn each_fault_kind_maps_to_its_bedrock_exception() {
    let emu = TestEmulator::unpaced().await;
    for (kind, status, code) in [
        (FaultKind::Internal, 500, "InternalServerException"),
        (FaultKind::Unavailable, 503, "ServiceUnavailableException"),
        (FaultKind::Validation, 400, "ValidationException"),
        (FaultKind::Throttle, 429, "ThrottlingException"),
    ] {
        emu.emulator.set_faults(Some(FaultPlan { kind, fail_first: 1, every_nth: 0 }));
        let error =
            emu.client.converse_stream().model_id(MODEL).messages(user_message("x")).send().await.expect_err("fault");
        assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(status));
        assert_eq!(error.code(), Some(code));
    }
    emu.stop().await;
}

#[tokio::test]
async fn an_unknown_model_id_is_a_validation_exception() {
    let emu = TestEmulator::unpaced().await;
    for model in ["amazon.titan-text-express-v1", "meta.llama3-8b-instruct-v1:0", "claude"] {
        let error =
            emu.client.converse().model_id(model).messages(user_message("hi")).send().await.expect_err("invalid");
        let service_error = error.as_service_error().expect("a service error");
        assert!(service_error.is_validation_exception(), "{service_error:?}");
        assert_eq!(service_error.message(), Some("The provided model identifier is invalid."));
    }
    emu.stop().await;
}

#[tokio::test]
async fn inference_profile_ids_and_arns_of_claude_models_are_accepted() {
    let emu = TestEmulator::unpaced().await;
    for model in [
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-sonnet-20240229-v1:0",
    ] {
        let output = emu.client.converse().model_id(model).messages(user_message("hi")).send().await;
        assert!(output.is_ok(), "{model}: {output:?}");
    }
    emu.stop().await;
}

#[tokio::test]
async fn invalid_converse_requests_are_validation_exceptions() {
    let emu = TestEmulator::unpaced().await;
    let assistant_first = Message::builder()
        .role(ConversationRole::Assistant)
        .content(ContentBlock::Text("hi".into()))
        .build()
        .expect("message builds");
    let cases = [
        (Some(assistant_first), None, "must start with a user message"),
        (None, Some(InferenceConfiguration::builder().max_tokens(0).build()), "inferenceConfig.maxTokens"),
        (None, Some(InferenceConfiguration::builder().temperature(1.5).build()), "inferenceConfig.temperature"),
    ];
    for (message, config, expected) in cases {
        let error = emu
            .client
            .converse()
            .model_id(MODEL)
            .messages(message.unwrap_or_else(|| user_message("hi")))
            .set_inference_config(config)
            .send()
            .await
            .expect_err("invalid request");
        let service_error = error.as_service_error().expect("a service error");
        assert!(service_error.is_validation_exception(), "{service_error:?}");
        assert!(service_error.message().is_some_and(|m| m.contains(expected)), "{:?}", service_error.message());
    }
    let error = emu.client.converse().model_id(MODEL).send().await.expect_err("no messages");
    assert_eq!(error.code(), Some("ValidationException"));
    emu.stop().await;
}

#[tokio::test]
async fn invalid_anthropic_bodies_are_validation_exceptions() {
    let emu = TestEmulator::unpaced().await;
    let cases = [
        (serde_json::json!({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}), "anthropic_version"),
        (
            serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "hi"}]}),
            "max_tokens",
        ),
        (
            serde_json::json!({"anthropic_version": "2023-06-01", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
            "anthropic_version",
        ),
        (serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10, "messages": []}), "messages"),
        (
            serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
                "messages": [{"role": "assistant", "content": "hi"}]}),
            "user",
        ),
    ];
    for (body, expected) in cases {
        let error = emu
            .client
            .invoke_model()
            .model_id(MODEL)
            .content_type("application/json")
            .body(Blob::new(serde_json::to_vec(&body).expect("json")))
            .send()
            .await
            .expect_err("invalid body");
        let service_error = error.as_service_error().expect("a service error");
        assert!(service_error.is_validation_exception(), "{service_error:?}");
        assert!(service_error.message().is_some_and(|m| m.contains(expected)), "{body}: {:?}", service_error.message());
    }
    emu.stop().await;
}

#[tokio::test]
async fn fail_first_two_fails_exactly_two_calls_then_succeeds() {
    let emu = TestEmulator::unpaced().await.with_faults(FaultKind::Throttle, 2, 0);
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(emu.converse_stream_text("again").await);
    }
    let throttled = Err("ThrottlingException".to_owned());
    assert_eq!(outcomes, [throttled.clone(), throttled, Ok(reply_for("again")), Ok(reply_for("again"))]);
    assert_eq!(emu.emulator.status().calls, 4);
    emu.stop().await;
}

#[tokio::test]
async fn every_nth_fails_every_nth_call() {
    let emu = TestEmulator::unpaced().await.with_faults(FaultKind::Unavailable, 0, 3);
    let mut failed = Vec::new();
    for _ in 0..7 {
        failed.push(emu.converse_stream_text("n").await.is_err());
    }
    assert_eq!(failed, [false, false, true, false, false, true, false]);
    emu.stop().await;
}

/// The first half of the reply's word-sized chunks, rounded up: what a disrupted stream delivers.
fn first_half_of(reply: &str) -> String {
    let words: Vec<&str> = reply.split_inclusive(char::is_whitespace).collect();
    // `split_inclusive` yields one piece per whitespace character; join runs of whitespace back
    // to the word before them, as the emulator's chunks do.
    let mut chunks: Vec<String> = Vec::new();
    for piece in words {
        match chunks.last_mut() {
            Some(last) if piece.trim().is_empty() => last.push_str(piece),
            _ => chunks.push(piece.to_owned()),
        }
    }
    chunks[..chunks.len().div_ceil(2)].concat()
}

#[tokio::test]
async fn a_mid_stream_fault_sends_half_the_answer_then_an_exception_frame() {
    let emu = TestEmulator::unpaced().await;
    // The SDK decodes an exception frame into its typed variant (from `:exception-type`).
    let variant = |error: &bedrock::error::SdkError<_, _>| match error.as_service_error() {
        Some(bedrock::types::error::ConverseStreamOutputError::ThrottlingException(_)) => "throttlingException",
        Some(bedrock::types::error::ConverseStreamOutputError::ModelStreamErrorException(_)) => {
            "modelStreamErrorException"
        }
        Some(bedrock::types::error::ConverseStreamOutputError::InternalServerException(_)) => "internalServerException",
        _ => "something else",
    };
    for (kind, code) in [
        (FaultKind::StreamThrottle, "throttlingException"),
        (FaultKind::StreamModelError, "modelStreamErrorException"),
        (FaultKind::StreamInternal, "internalServerException"),
    ] {
        emu.emulator.set_faults(Some(FaultPlan { kind, fail_first: 1, every_nth: 0 }));
        let output =
            emu.client.converse_stream().model_id(MODEL).messages(user_message("half")).send().await.expect("200");
        let mut stream = output.stream;
        let mut text = String::new();
        let error = loop {
            match stream.recv().await {
                Ok(Some(ConverseStreamOutput::ContentBlockDelta(delta))) => {
                    if let Some(ContentBlockDelta::Text(piece)) = delta.delta {
                        text.push_str(&piece);
                    }
                }
                Ok(Some(ConverseStreamOutput::MessageStop(_))) => panic!("{kind:?}: the stream must not finish"),
                Ok(Some(_)) => {}
                Ok(None) => panic!("{kind:?}: the stream must end with an exception"),
                Err(error) => break error,
            }
        };
        assert_eq!(variant(&error), code, "{kind:?}: {error:?}");
        assert_eq!(text, first_half_of(&reply_for("half")), "{kind:?}");
    }
    emu.stop().await;
}

#[tokio::test]
async fn a_mid_stream_fault_ends_an_invoke_stream_with_the_same_exception() {
    let emu = TestEmulator::unpaced().await.with_faults(FaultKind::StreamThrottle, 1, 0);
    let output = emu
        .client
        .invoke_model_with_response_stream()
        .model_id(MODEL)
        .content_type("application/json")
        .body(anthropic_body("half", 4096))
        .send()
        .await
        .expect("200");
    let mut stream = output.body;
    let error = loop {
        match stream.recv().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream must end with an exception"),
            Err(error) => break error,
        }
    };
    let throttled =
        matches!(error.as_service_error(), Some(bedrock::types::error::ResponseStreamError::ThrottlingException(_)));
    assert!(throttled, "{error:?}");
    emu.stop().await;
}

#[tokio::test]
async fn a_mid_stream_fault_refuses_a_non_streaming_call_with_its_status() {
    let emu = TestEmulator::unpaced().await.with_faults(FaultKind::StreamModelError, 1, 0);
    let error = emu.client.converse().model_id(MODEL).messages(user_message("x")).send().await.expect_err("fault");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(424));
    assert_eq!(error.code(), Some("ModelStreamErrorException"));
    emu.stop().await;
}

#[tokio::test]
async fn a_cut_fault_ends_even_a_one_token_reply_before_message_stop() {
    let emu = TestEmulator::unpaced().await.with_faults(FaultKind::Cut, 1, 0);
    let output = emu
        .client
        .converse_stream()
        .model_id(MODEL)
        .messages(user_message("one"))
        .inference_config(InferenceConfiguration::builder().max_tokens(1).build())
        .send()
        .await
        .expect("200");
    let mut stream = output.stream;
    let mut events = Vec::new();
    while let Some(event) = stream.recv().await.expect("frames decode") {
        events.push(event);
    }
    assert!(events.iter().any(|e| matches!(e, ConverseStreamOutput::ContentBlockDelta(_))), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, ConverseStreamOutput::MessageStop(_))), "{events:?}");
    emu.stop().await;
}

#[tokio::test]
async fn a_stall_sends_one_delta_then_nothing_and_ends_when_the_client_leaves() {
    let emu = TestEmulator::unpaced().await.with_faults(FaultKind::Stall, 1, 0);
    let output =
        emu.client.converse_stream().model_id(MODEL).messages(user_message("stall")).send().await.expect("starts");
    let mut stream = output.stream;
    let first = stream.recv().await.expect("decodes").expect("an event");
    assert!(matches!(first, ConverseStreamOutput::MessageStart(_)), "{first:?}");
    let second = stream.recv().await.expect("decodes").expect("an event");
    let ConverseStreamOutput::ContentBlockDelta(delta) = second else { panic!("expected a delta, got {second:?}") };
    assert_eq!(
        delta.delta,
        Some(ContentBlockDelta::Text(reply::chunks(&reply_for("stall")).next().expect("a chunk").into()))
    );
    assert!(tokio::time::timeout(Duration::from_millis(300), stream.recv()).await.is_err(), "nothing more arrives");
    assert_eq!(emu.emulator.open_streams(), 1);
    drop(stream);
    wait_until(|| emu.emulator.open_streams() == 0).await;
    // The next call is not stalled and the emulator still answers.
    assert_eq!(emu.converse_stream_text("after").await, Ok(reply_for("after")));
    emu.stop().await;
}

#[tokio::test]
async fn a_stalled_non_streaming_call_never_completes() {
    let emu = TestEmulator::unpaced().await.with_faults(FaultKind::Stall, 1, 0);
    let call = emu.client.converse().model_id(MODEL).messages(user_message("stall")).send();
    assert!(tokio::time::timeout(Duration::from_millis(300), call).await.is_err());
    wait_until(|| emu.emulator.open_streams() == 0).await;
    emu.stop().await;
}

#[tokio::test]
async fn shutdown_ends_a_stalled_stream_instead_of_waiting_for_it() {
    let emu = TestEmulator::unpaced().await.with_faults(FaultKind::Stall, 1, 0);
    let output =
        emu.client.converse_stream().model_id(MODEL).messages(user_message("stall")).send().await.expect("starts");
    let mut stream = output.stream;
    let _ = stream.recv().await;
    // `stop` asserts that the graceful shutdown completes within its timeout.
    emu.stop().await;
    let mut ended = false;
    for _ in 0..3 {
        match stream.recv().await {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended);
}

#[tokio::test]
async fn a_paced_stream_spreads_its_chunks_over_time() {
    let emu = TestEmulator::start(EmulatorConfig {
        latency: Duration::from_millis(50),
        tokens_per_sec: 500,
        ..EmulatorConfig::default()
    })
    .await;
    let started = std::time::Instant::now();
    let text = emu.converse_stream_text("pace me").await.expect("streams");
    let chunks = reply::count_tokens(&text);
    let elapsed = started.elapsed();
    // 50 ms latency, then one chunk every 2 ms after the first.
    assert!(elapsed >= Duration::from_millis(50 + 2 * u64::from(chunks - 1)), "{elapsed:?} for {chunks} chunks");
    assert_eq!(text, reply_for("pace me"));
    assert_eq!(emu.emulator.open_streams(), 0);
    emu.stop().await;
}

#[tokio::test]
async fn errors_carry_the_bedrock_headers_and_a_json_message() {
    let emulator = Emulator::new(EmulatorConfig::unpaced());
    emulator.set_faults(Some(FaultPlan { kind: FaultKind::Throttle, fail_first: 1, every_nth: 0 }));
    let response =
        emulator.router().oneshot(post_json("/model/anthropic.claude-v2/converse", "{}")).await.expect("answer");
    assert_eq!(response.status(), 429);
    let headers = response.headers();
    assert_eq!(headers["x-amzn-errortype"], "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/");
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.contains_key("x-amzn-requestid"));
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
        serde_json::json!({"message": "Too many requests, please wait before trying again."})
    );
}

#[tokio::test]
async fn calls_over_a_models_quota_are_throttled_through_the_sdk_and_other_models_are_not() {
    let quota = Quota { rpm: 1, tpm: 0 };
    let emu = TestEmulator::start(EmulatorConfig { quota, ..EmulatorConfig::unpaced() }).await;
    assert_eq!(emu.converse_stream_text("first").await, Ok(reply_for("first")));
    assert_eq!(emu.converse_stream_text("second").await, Err("ThrottlingException".to_owned()));
    let other = emu
        .client
        .converse()
        .model_id("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        .messages(user_message("other model"))
        .send()
        .await;
    assert!(other.is_ok(), "{other:?}");
    let status = emu.emulator.status();
    assert_eq!((status.quota, status.calls, status.throttled), (Some(quota), 3, 1));
    emu.stop().await;
}

#[tokio::test]
async fn the_quota_answers_as_bedrock_and_charges_neither_faulted_nor_invalid_calls() {
    let emulator = Emulator::new(EmulatorConfig { quota: Quota { rpm: 1, tpm: 0 }, ..EmulatorConfig::unpaced() });
    emulator.set_faults(Some(FaultPlan { kind: FaultKind::Internal, fail_first: 1, every_nth: 0 }));
    let path = "/model/anthropic.claude-v2/converse";
    let body = r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
    let mut statuses = Vec::new();
    for body in [body, "{}", body, body] {
        statuses.push(emulator.router().oneshot(post_json(path, body)).await.expect("answer"));
    }
    let codes: Vec<_> = statuses.iter().map(|response| response.status().as_u16()).collect();
    assert_eq!(codes, [500, 400, 200, 429], "the fault first, then a bad body, then the one call the quota allows");
    let throttled = statuses.pop().expect("four answers");
    assert_eq!(
        throttled.headers()["x-amzn-errortype"],
        "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    );
    assert!(throttled.headers().contains_key("x-amzn-requestid"));
    let body = axum::body::to_bytes(throttled.into_body(), 1 << 20).await.expect("body");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
        serde_json::json!({"message": "Too many requests, please wait before trying again."})
    );
    assert_eq!((emulator.status().calls, emulator.status().throttled), (4, 1));
}

#[tokio::test]
async fn url_encoded_model_ids_are_decoded() {
    let emulator = Emulator::new(EmulatorConfig::unpaced());
    let body = r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
    let arn = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.anthropic.claude-3-5-haiku-v1%3A0/converse";
    for path in ["/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse", arn] {
        let response = emulator.router().oneshot(post_json(path, body)).await.expect("answer");
        assert_eq!(response.status(), 200, "{path}");
    }
    let response = emulator.router().oneshot(post_json("/model/x/unknown-op", body)).await.expect("answer");
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn stream_frames_carry_bedrock_headers_and_padding() {
    let emulator = Emulator::new(EmulatorConfig::unpaced());
    let body = r#"{"messages":[{"role":"user","content":[{"text":"frame me"}]}],"inferenceConfig":{"maxTokens":2}}"#;
    let response =
        emulator.router().oneshot(post_json("/model/anthropic.claude-v2/converse-stream", body)).await.expect("answer");
    assert_eq!(response.headers()["content-type"], "application/vnd.amazon.eventstream");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    let messages = eventstream::decode_all(&bytes).expect("valid frames");
    let types: Vec<_> = messages.iter().map(|m| m.header_str(":event-type").expect("event type")).collect();
    assert_eq!(
        types,
        ["messageStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
    );
    for message in &messages {
        assert_eq!(message.header_str(":message-type"), Some("event"));
        assert_eq!(message.header_str(":content-type"), Some("application/json"));
        let payload: serde_json::Value = serde_json::from_slice(&message.payload).expect("json payload");
        assert!(payload["p"].is_string(), "{payload}");
    }
    let stop: serde_json::Value = serde_json::from_slice(&messages[4].payload).expect("json");
    assert_eq!(stop["stopReason"], "max_tokens");
}

fn post_json(path: &str, body: &'static str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .expect("request builds")
}

async fn wait_until(condition: impl Fn() -> bool) {
    // Generous, so a loaded machine under coverage instrumentation does not fail it.
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 10 s");
}

/// Rough throughput check (run with `--ignored --nocapture`, ideally in release): SDK calls per second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check; slow in debug builds"]
async fn unpaced_converse_stream_throughput() {
    let emu = TestEmulator::unpaced().await;
    let (calls, concurrency) = (4000, 32);
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = emu.client.clone();
            tokio::spawn(async move {
                for _ in 0..calls / concurrency {
                    let output = client.converse_stream().model_id(MODEL).messages(user_message("bench")).send().await;
                    let mut stream = output.expect("call succeeds").stream;
                    while stream.recv().await.expect("event").is_some() {}
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed();
    println!("{calls} calls in {elapsed:?}: {:.0} calls/s", f64::from(calls) / elapsed.as_secs_f64());
    emu.stop().await;
}
