//! Bedrock misbehaving, through the emulator and the real SDK: each fault ends in the
//! documented state after the documented number of `call_bedrock` attempts.

use std::time::{Duration, Instant};

use backend::bedrock::BedrockApi;
use common::{FaultKind, FaultPlan, RunDetail, RunState, TaskName, TaskState};
use tests::{BinaryServer, TestApp, TestDirs, attempts, serve_flags, spawn_app_with, unique_prompt};

use crate::support::try_submit;

fn plan(kind: FaultKind, fail_first: u32, every_nth: u32) -> FaultPlan {
    FaultPlan { kind, fail_first, every_nth }
}

/// Submits a run under `plan` and waits for it to end.
async fn run_under(app: &TestApp, plan: FaultPlan) -> RunDetail {
    app.inject(plan).await;
    let run = app.submit(&unique_prompt(&format!("fault {}", plan.kind.as_str()))).await;
    app.wait_until_finished(run.id).await
}

fn call_errors(run: &RunDetail) -> Vec<String> {
    attempts(run, TaskName::CallBedrock).iter().map(|a| a.error.clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn a_throttling_storm_fails_the_run_after_exactly_max_attempts() {
    let app = spawn_app_with(|args| args.app.retries = 3).await;
    let run = run_under(&app, plan(FaultKind::Throttle, 0, 1)).await;
    assert_eq!(run.state, RunState::Failed, "{run:#?}");
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 4, "retries 3 → 4 attempts");
    for (n, call) in calls.iter().enumerate() {
        // A retried attempt ends `AwaitingRetry`; the last one `Failed`.
        let state = if n + 1 < calls.len() { TaskState::AwaitingRetry } else { TaskState::Failed };
        assert_eq!((call.state, call.retryable, call.http_status), (state, Some(true), Some(429)), "{call:#?}");
    }
    assert_eq!(
        app.app.emulator().expect("the test app runs on the emulator").status().calls,
        4,
        "no hidden SDK retries"
    );
    eprintln!("FIGURE bedrock throttle storm: Failed after {} attempts, {} emulator calls", calls.len(), 4);
}

#[tokio::test]
async fn http_500_and_503_are_retried_until_the_call_succeeds() {
    let app = spawn_app_with(|_| {}).await;
    for (kind, status) in [(FaultKind::Internal, 500), (FaultKind::Unavailable, 503)] {
        let run = run_under(&app, plan(kind, 2, 0)).await;
        assert_eq!(run.state, RunState::Completed, "{kind:?}: {run:#?}");
        let calls = attempts(&run, TaskName::CallBedrock);
        assert_eq!(calls.len(), 3, "{kind:?}: two failures, then success");
        for failed in &calls[..2] {
            assert_eq!(failed.http_status, Some(status), "{failed:#?}");
            assert_eq!(failed.retryable, Some(true));
        }
        assert_eq!(calls[2].state, TaskState::Completed);
        eprintln!("FIGURE bedrock {kind:?}: Completed after {} attempts ({:?})", calls.len(), call_errors(&run));
    }
}

#[tokio::test]
async fn a_stalled_stream_times_out_is_retried_and_completes_once_faults_clear() {
    let app = spawn_app_with(|args| args.app.stream_idle_timeout_secs = 0.3).await;
    let started = Instant::now();
    let run = run_under(&app, plan(FaultKind::Stall, 1, 0)).await;
    assert_eq!(run.state, RunState::Completed, "{run:#?}");
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 2);
    let error = calls[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("idle"), "the first attempt failed as a stalled stream: {error}");
    assert_eq!(calls[0].retryable, Some(true));
    eprintln!("FIGURE bedrock stall: Completed after 2 attempts in {:?}; first: {error}", started.elapsed());
}

#[tokio::test]
async fn an_answer_cut_off_mid_stream_is_retried_and_the_response_starts_afresh() {
    for api in [BedrockApi::Converse, BedrockApi::Invoke] {
        let app = spawn_app_with(|args| args.app.bedrock_api = api).await;
        let prompt = "a prompt whose answer is cut";
        app.inject(plan(FaultKind::Cut, 1, 0)).await;
        let run = app.submit(prompt).await;
        let run = app.wait_until_finished(run.id).await;
        assert_eq!(run.state, RunState::Completed, "{api:?}: {run:#?}");
        let calls = attempts(&run, TaskName::CallBedrock);
        assert_eq!(calls.len(), 2, "{api:?}");
        assert_eq!(calls[0].retryable, Some(true), "{api:?}");
        let error = calls[0].error.as_deref().unwrap_or_default();
        assert!(error.contains("ended before") || error.contains("cut"), "{api:?}: {error}");
        // The half answer of the first attempt must not stay in front of the full one.
        assert_eq!(run.response.as_deref(), Some(backend::emulator::reply_for(prompt).as_str()), "{api:?}");
        eprintln!("FIGURE bedrock cut ({api:?}): Completed after 2 attempts; first: {error}");
    }
}

#[tokio::test]
async fn a_slow_first_byte_beyond_the_first_byte_timeout_is_a_retried_timeout() {
    let app = spawn_app_with(|args| {
        args.app.emulator_latency_ms = 1500;
        args.app.first_byte_timeout_secs = 0.3;
        args.app.retries = 1;
    })
    .await;
    let run = app.submit(&unique_prompt("slow first byte")).await;
    let run = app.wait_until_finished(run.id).await;
    assert_eq!(run.state, RunState::Failed, "{run:#?}");
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 2, "retries 1 → 2 attempts");
    for call in calls {
        let error = call.error.as_deref().unwrap_or_default();
        assert!(error.contains("no response within 0.3 s"), "{error}");
        assert_eq!(call.retryable, Some(true));
        assert_eq!(call.http_status, None, "no response arrived");
    }
    eprintln!("FIGURE bedrock slow first byte: Failed after 2 timed-out attempts ({:?})", call_errors(&run));
}

#[tokio::test]
async fn the_whole_call_limit_cuts_a_long_stream_once_and_does_not_retry_it() {
    let app = spawn_app_with(|args| {
        args.app.emulator_tokens_per_sec = 20;
        args.app.call_timeout_secs = 0.3;
        args.app.retries = 2;
    })
    .await;
    let run = app.submit(&unique_prompt("a long answer cut by the operator's limit")).await;
    let run = app.wait_until_finished(run.id).await;
    assert_eq!(run.state, RunState::Failed, "{run:#?}");
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 1, "a call cut by --call-timeout-secs is not billed again: {calls:#?}");
    let error = calls[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("--call-timeout-secs"), "{error}");
    assert_eq!(calls[0].retryable, Some(false));
    eprintln!("FIGURE bedrock whole-call limit: Failed after 1 attempt ({:?})", call_errors(&run));
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_fails_with_a_connection_error() {
    // A port that was just free: nothing listens there.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dirs = TestDirs::new();
    let mut flags = serve_flags(&dirs);
    flags.insert("--bedrock", "aws".to_owned());
    flags.insert("--bedrock-endpoint", format!("http://127.0.0.1:{closed_port}"));
    flags.insert("--connect-timeout-secs", "1".to_owned());
    let env =
        [("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")];
    let server = BinaryServer::start(&flags, &env).await;
    let client = reqwest::Client::new();
    let id = try_submit(&client, &server.address, &unique_prompt("nobody listens")).await.unwrap();
    let deadline = Instant::now() + tests::DEADLINE;
    let run: RunDetail = loop {
        let run: RunDetail =
            client.get(server.url(&format!("/api/runs/{id}"))).send().await.unwrap().json().await.unwrap();
        if run.state.is_terminal() {
            break run;
        }
        assert!(Instant::now() < deadline, "{run:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run.state, RunState::Failed, "{run:#?}");
    let calls = attempts(&run, TaskName::CallBedrock);
    assert_eq!(calls.len(), 3, "retries 2 → 3 attempts");
    for call in calls {
        let error = call.error.as_deref().unwrap_or_default().to_lowercase();
        assert!(error.contains("connect") || error.contains("dispatch"), "a connection error: {error}");
        assert_eq!(call.retryable, Some(true), "{call:#?}");
    }
    eprintln!("FIGURE bedrock connection refused: Failed after 3 attempts ({:?})", call_errors(&run));
}
