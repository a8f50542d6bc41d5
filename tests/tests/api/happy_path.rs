use backend::emulator::reply_for;
use backend::journal::ScannedRecord;
use common::{BedrockBackend, RunState, TaskName, TaskState};
use reqwest::StatusCode;
use tests::{attempts, spawn_app, unique_prompt};

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
    let usage = run.usage.expect("usage is recorded");
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0, "{usage:?}");

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
    let text = std::fs::read_to_string(&app.dirs.prompts_file).unwrap();
    assert!(text.contains(&run.id.to_string()), "the file names the run for a person reading it");
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
        let run = app.submit(&format!("Consistent {i}")).await;
        let detail = app.wait_until_finished(run.id).await;
        let listed = app.runs().await.into_iter().find(|r| r.id == run.id).unwrap();
        assert_eq!(listed.state, detail.state, "GET /api/runs trails GET /api/runs/{{id}}");
        assert_eq!(listed, detail.summary(), "the list and the detail describe the run alike");
    }
}
