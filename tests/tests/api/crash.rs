use std::process::Stdio;
use std::time::Duration;

use backend::journal::ScannedRecord;
use common::{RunDetail, RunState, TaskName, TaskState};
use tests::{TestDirs, attempts, backend_bin, eventually, spawn_app_in, unique_prompt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn a_process_killed_mid_run_leaves_a_crashed_run_and_an_intact_journal() {
    let dirs = TestDirs::new();
    let mut child = Command::new(backend_bin())
        .arg("serve")
        .args(["--addr", "127.0.0.1:0", "--emulator-tokens-per-sec", "5", "--emulator-latency-ms", "0"])
        .arg("--data-dir")
        .arg(&dirs.data_dir)
        .arg("--prompts-file")
        .arg(&dirs.prompts_file)
        .arg("--static-dir")
        .arg(&dirs.static_dir)
        .env("APP_BEDROCK", "emulator")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the backend binary starts");

    // The server logs the address it bound.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on ".len()..];
                return rest.split(|c: char| c.is_whitespace() || c == '\u{1b}').next().unwrap().to_owned();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server says where it listens");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

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

    child.kill().await.unwrap(); // SIGKILL: no shutdown code runs

    let app = spawn_app_in(dirs, |_| {}).await;
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
    assert_eq!(RunDetail::fold(&events).unwrap(), run);

    // A second restart does not touch the run again.
    let app = app.restart().await;
    assert_eq!(app.run(id).await, run);
}
