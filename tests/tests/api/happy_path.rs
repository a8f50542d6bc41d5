use backend::emulator::reply_for;
use backend::journal::ScannedRecord;
use common::{BedrockBackend, RunState, TaskName, TaskState};
use reqwest::StatusCode;
use tests::{attempts, spawn_app, unique_prompt};

use crate::expected;

#[tokio::test]
async fn a_submitted_prompt_completes_with_the_exact_emulated_response() {
    let app = spawn_app().await;
    let prompt = unique_prompt("Explain in three sentences why retries need jitter");

    let response = app.post_run(&serde_json::json!({ "prompt": prompt })).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: serde_json::Value = response.json().await.unwrap();
    let id = accepted["id"].as_str().expect("the accepted run has an id").parse().unwrap();

    let run = app.wait_for_state(id, RunState::Completed).await;
    assert_eq!(run.response.as_deref(), Some(reply_for(&prompt).as_str()));
    assert_eq!(run.prompt, prompt);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert!(run.started_at.is_some() && run.finished_at.is_some());
    assert_eq!(run.usage, Some(expected::usage_for(&prompt)), "the emulator's token counts");

    for task in &run.tasks {
        assert_eq!(task.state, TaskState::Completed, "{:?}", task.name);
        assert_eq!(task.attempts.len(), 1, "{:?} made one attempt", task.name);
        assert_eq!(task.attempts[0].state, TaskState::Completed);
        assert!(task.attempts[0].finished_at.is_some());
    }
    let call = &attempts(&run, TaskName::CallBedrock)[0];
    assert_eq!(call.http_status, Some(200));
    assert!(call.request_id.as_deref().is_some_and(|r| !r.is_empty()), "request id: {:?}", call.request_id);
    assert!(call.first_byte_ms.is_some(), "first_byte_ms");
    assert!(call.total_ms.is_some(), "total_ms");
    assert!(call.first_byte_ms <= call.total_ms);
}

#[tokio::test]
async fn a_completed_run_has_log_lines_tagged_with_task_and_attempt() {
    let app = spawn_app().await;
    let run = app.submit("Tag my log lines").await;
    app.wait_for_state(run.id, RunState::Completed).await;

    let logs = app.logs(run.id).await;
    assert!(!logs.is_empty());
    for task in TaskName::ALL {
        assert!(
            logs.iter().any(|l| l.task == Some(task) && l.attempt == Some(1)),
            "no log line of {task} attempt 1 in {logs:#?}"
        );
    }
    assert!(logs.windows(2).all(|w| w[0].seq < w[1].seq), "logs are in event order");
}

#[tokio::test]
async fn a_submitted_prompt_is_recorded_in_the_prompt_journal_under_its_run_id() {
    let app = spawn_app().await;
    let prompt = "Line one\nline two with \"quotes\" and ünïcödé\n";
    let run = app.submit(prompt).await;
    // The record is durable before the run is accepted: no wait needed.
    let records = app.dirs.journal();
    assert!(
        records
            .iter()
            .any(|r| matches!(r, ScannedRecord::Intact { run_id, prompt: p, .. } if *run_id == run.id && p == prompt)),
        "no intact record of run {} in {records:#?}",
        run.id
    );
    if !tests::on_postgres() {
        let text = std::fs::read_to_string(&app.dirs.prompts_file).unwrap();
        assert!(text.contains(&run.id.to_string()), "the file names the run for a person reading it");
    }
    app.wait_for_state(run.id, RunState::Completed).await;
}

#[tokio::test]
async fn health_says_the_built_in_emulator_is_in_use() {
    let app = spawn_app().await;
    let health = app.health().await;
    assert_eq!(health["status"], "ok");
    let bedrock: common::BedrockInfo = serde_json::from_value(health["bedrock"].clone()).unwrap();
    assert_eq!(bedrock.backend, BedrockBackend::Emulator);
    assert!(bedrock.endpoint.starts_with("http://127.0.0.1:"), "{}", bedrock.endpoint);
}

#[tokio::test]
async fn the_list_shows_the_newest_run_first_with_a_prompt_preview() {
    let app = spawn_app().await;
    let first = app.submit("first prompt").await;
    let second = app.submit("second   prompt\nwith a newline").await;
    app.wait_until_finished(first.id).await;
    app.wait_until_finished(second.id).await;

    let runs = app.runs().await;
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [second.id, first.id]);
    assert_eq!(runs[0].prompt_preview, "second prompt with a newline");
    assert_eq!(runs[0].model_id, backend::config::DEFAULT_MODEL_ID);

    let page: Vec<common::RunSummary> =
        app.list_runs(&format!("limit=10&before={}", second.id)).await.json().await.unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [first.id]);
    let completed: Vec<common::RunSummary> = app.list_runs("state=Completed&limit=1").await.json().await.unwrap();
    assert_eq!(completed.len(), 1);
    let failed: Vec<common::RunSummary> = app.list_runs("state=Failed").await.json().await.unwrap();
    assert!(failed.is_empty());
}

#[tokio::test]
async fn the_invoke_api_also_completes_with_the_exact_emulated_response() {
    let app = tests::spawn_app_with(|args| args.app.bedrock_api = backend::bedrock::BedrockApi::Invoke).await;
    let prompt = unique_prompt("Through InvokeModel");
    let run = app.submit(&prompt).await;
    let run = app.wait_for_state(run.id, RunState::Completed).await;
    assert_eq!(run.response.as_deref(), Some(reply_for(&prompt).as_str()));
    assert_eq!(attempts(&run, TaskName::CallBedrock)[0].http_status, Some(200));
}

#[tokio::test]
async fn the_list_agrees_with_the_detail_as_soon_as_a_run_has_finished() {
    let app = spawn_app().await;
    for i in 0..10 {
        let prompt = format!("Consistent  {i}\nacross  views");
        let before = chrono::Utc::now();
        let run = app.submit(&prompt).await;
        let accepted_by = chrono::Utc::now();
        let detail = app.wait_until_finished(run.id).await;
        let finished_by = chrono::Utc::now();
        // No wait: the list must show the run as finished the moment the detail does.
        let listed = app.runs().await.into_iter().find(|r| r.id == run.id).expect("the finished run is listed");

        // Each view against what the run must be, known without the server's help.
        for (view, state, usage, error) in
            [("list", listed.state, listed.usage, &listed.error), ("detail", detail.state, detail.usage, &detail.error)]
        {
            assert_eq!(state, RunState::Completed, "{view}: run {i}");
            assert_eq!(usage, Some(expected::usage_for(&prompt)), "{view}: the emulator's token counts");
            assert_eq!(*error, None, "{view}");
        }
        assert_eq!(detail.response.as_deref(), Some(reply_for(&prompt).as_str()));
        assert_eq!(listed.prompt_preview, format!("Consistent {i} across views"), "whitespace collapsed");
        assert_eq!(listed.model_id, backend::config::DEFAULT_MODEL_ID);
        assert_eq!(detail.model_id, backend::config::DEFAULT_MODEL_ID);
        // Timestamps are truncated to microseconds in storage: allow that much.
        let slack = chrono::Duration::milliseconds(1);
        assert!(before - slack <= listed.created_at && listed.created_at <= accepted_by, "{listed:?}");
        let started = listed.started_at.expect("started");
        let finished = listed.finished_at.expect("finished");
        assert!(listed.created_at <= started && started <= finished && finished <= finished_by, "{listed:?}");

        // And the list against the detail, field by field.
        assert_eq!(listed.created_at, detail.created_at, "created_at");
        assert_eq!(listed.started_at, detail.started_at, "started_at");
        assert_eq!(listed.finished_at, detail.finished_at, "finished_at");
        assert_eq!(listed.model_id, detail.model_id, "model_id");
        assert_eq!(listed.usage, detail.usage, "usage");
        assert_eq!(listed.error, detail.error, "error");
        assert_eq!(listed.created_at, run.created_at, "the list and the 202 answer agree on acceptance");
        assert_eq!(listed, detail.summary(), "and on any field added later");
        assert_eq!(detail.prompt, prompt);
    }

    // A failed run: its reason is in both views, and it has no usage.
    app.inject(common::FaultPlan { kind: common::FaultKind::Validation, fail_first: 1, every_nth: 0 }).await;
    let run = app.submit("Refused by the model").await;
    let detail = app.wait_until_finished(run.id).await;
    let listed = app.runs().await.into_iter().find(|r| r.id == run.id).expect("the failed run is listed");
    assert_eq!((listed.state, detail.state), (RunState::Failed, RunState::Failed));
    assert!(listed.error.as_deref().is_some_and(|e| !e.is_empty()), "the list says why: {listed:?}");
    assert_eq!(listed.error, detail.error, "the same reason in both views");
    assert_eq!((listed.usage, detail.usage), (None, None), "no answer, no usage");
    assert_eq!(listed.finished_at, detail.finished_at);
}
