use backend::emulator::reply_for;
use backend::journal::ScannedRecord;
use common::{RunDetail, RunState, TaskName, TaskState};
use tests::{BinaryServer, TestDirs, attempts, eventually, serve_flags, spawn_app_in, unique_prompt};

#[tokio::test]
async fn a_process_killed_mid_run_leaves_a_crashed_run_and_an_intact_journal() {
    let dirs = TestDirs::new();
    let mut flags = serve_flags(&dirs);
    // Paced, so the run is still streaming when the process dies.
    flags.insert("--emulator-tokens-per-sec", "5".to_owned());
    let mut server = BinaryServer::start(&flags, &[]).await;
    let address = server.address.clone();

    let client = reqwest::Client::new();
    let prompt = unique_prompt("Crash while streaming me");
    let accepted: RunDetail = client
        .post(format!("{address}/api/runs"))
        .json(&serde_json::json!({ "prompt": prompt }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted.id;
    let streaming = eventually("the run to stream", || {
        let client = client.clone();
        let url = format!("{address}/api/runs/{id}");
        async move {
            let detail: RunDetail = client.get(url).send().await.ok()?.json().await.ok()?;
            (detail.state == RunState::Running && detail.response.is_some()).then_some(detail)
        }
    })
    .await;
    assert_eq!(streaming.tasks[1].state, TaskState::Running);
    let partial = streaming.response.clone().unwrap();
    assert!(reply_for(&prompt).starts_with(&partial), "streamed so far: a prefix of the emulator's reply");

    server.kill9().await;

    let app = spawn_app_in(dirs, |_| {}).await;
    if tests::on_postgres() {
        // A cluster resumes what a dead replica left, once its lease expires: here the
        // restarted server takes the run over, the cut attempt ends retryable, the next finishes.
        let run = app.wait_for_state(id, RunState::Completed).await;
        let calls = attempts(&run, TaskName::CallBedrock);
        assert_eq!(calls.len(), 2, "{calls:#?}");
        assert_eq!(calls[0].state, TaskState::AwaitingRetry);
        assert!(calls[0].error.as_deref().unwrap_or_default().contains("stopped while this run was in flight"));
        assert_eq!(run.response.as_deref(), Some(reply_for(&prompt).as_str()));
        return;
    }
    let run = app.run(id).await;
    assert_eq!(run.state, RunState::Crashed, "{run:#?}");
    let error = run.error.as_deref().expect("the crash is explained");
    assert!(error.contains("crashed"), "{error}");
    assert!(run.finished_at.is_some());
    let call = attempts(&run, TaskName::CallBedrock).last().expect("the call had started");
    assert!(call.finished_at.is_some(), "the open attempt is ended: {call:#?}");
    assert_eq!(call.state, TaskState::Failed);
    assert!(run.tasks.iter().all(|t| t.state.is_terminal() || t.attempts.is_empty()), "{:#?}", run.tasks);
    assert_eq!(app.runs().await[0].state, RunState::Crashed);
    let crashed: Vec<common::RunSummary> = app.list_runs("state=Crashed").await.json().await.unwrap();
    assert_eq!(crashed.len(), 1);

    let records = app.dirs.journal();
    assert!(records.iter().all(|r| matches!(r, ScannedRecord::Intact { .. })), "{records:#?}");
    assert!(
        records
            .iter()
            .any(|r| matches!(r, ScannedRecord::Intact { run_id, prompt: p, .. } if *run_id == id && *p == prompt))
    );

    // The recovered history replays over the WebSocket, ending with the crash.
    let mut feed = app.ws_follow(id, 0).await;
    let events = feed.until_finished(id).await;
    let kept = crate::expected::streamed_text(&events);
    assert!(kept.starts_with(&partial), "every delta a client had is kept: {kept:?} vs {partial:?}");
    assert!(reply_for(&prompt).starts_with(&kept), "and is the emulator's text: {kept:?}");
    assert_eq!(run.response.as_deref(), Some(kept.as_str()), "the detail shows what was streamed");
    assert_eq!(RunDetail::fold(&events).unwrap(), tests::unpriced(run.clone()));

    // A second restart does not touch the run again.
    let app = app.restart().await;
    assert_eq!(app.run(id).await, run);
}
