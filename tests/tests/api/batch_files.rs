//! Batches from files (text, JSON Lines, CSV) through the API and `backend batch`; the runs of
//! a batch in the history; retrying a batch's failed items.

use std::collections::BTreeSet;

use backend::emulator::reply_for;
use common::{BatchCounts, BatchItem, BatchSummary, RunSummary};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::{TestApp, TestDirs, backend_command, error_of, eventually, run_backend, spawn_app_with};

async fn upload(app: &TestApp, content_type: &str, query: &str, body: &str) -> reqwest::Response {
    let url = app.url(&format!("/api/batches{query}"));
    app.client.post(url).header("content-type", content_type).body(body.to_owned()).send().await.unwrap()
}

async fn uploaded(app: &TestApp, content_type: &str, query: &str, body: &str) -> BatchSummary {
    let response = upload(app, content_type, query, body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{content_type} {query}");
    response.json().await.unwrap()
}

async fn get<T: serde::de::DeserializeOwned>(app: &TestApp, path: &str) -> T {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.json().await.unwrap()
}

async fn until_finished(app: &TestApp, batch: &BatchSummary) -> BatchSummary {
    eventually("every item of the batch to finish", || async {
        let now: BatchSummary = get(app, &format!("/api/batches/{}", batch.id)).await;
        (now.counts.finished() == now.total && now.counts.queued == 0).then_some(now)
    })
    .await
}

async fn items(app: &TestApp, batch: &BatchSummary) -> Vec<BatchItem> {
    get(app, &format!("/api/batches/{}/items", batch.id)).await
}

#[tokio::test]
async fn a_file_of_each_format_becomes_a_batch_with_the_settings_of_its_query() {
    let app = spawn_app_with(|_| {}).await;
    let text = uploaded(&app, "text/plain", "?max_tokens=77", "First ticket\r\n\nSecond ticket\n").await;
    let jsonl =
        uploaded(&app, "application/x-ndjson", "", "\"Plain string\"\n{\"prompt\": \"From an object\"}\n").await;
    let template = "Summarise {{doc}} in {{words}} words";
    let query =
        format!("?template={}&temperature=0.5", template.replace(' ', "%20").replace('{', "%7B").replace('}', "%7D"));
    let csv =
        uploaded(&app, "text/csv; charset=utf-8", &query, "doc,words\n\"the memo, v2\",10\nthe report,20\n").await;

    for (batch, prompts) in [
        (&text, vec!["First ticket", "Second ticket"]),
        (&jsonl, vec!["Plain string", "From an object"]),
        (&csv, vec!["Summarise the memo, v2 in 10 words", "Summarise the report in 20 words"]),
    ] {
        let done = until_finished(&app, batch).await;
        assert_eq!(done.counts, BatchCounts { completed: prompts.len() as u64, ..BatchCounts::default() });
        let items = items(&app, batch).await;
        assert_eq!(items.iter().map(|item| item.prompt.as_str()).collect::<Vec<_>>(), prompts);
        for item in &items {
            let run = app.run(item.run_id.expect("a started item names its run")).await;
            assert_eq!(run.response.as_deref(), Some(reply_for(&item.prompt).as_str()));
            assert_eq!(run.batch_id, Some(batch.id), "the run names its batch");
        }
    }
    assert_eq!(text.max_tokens, 77);
    assert_eq!(csv.temperature, Some(0.5));
    let values = items(&app, &csv).await[0].variables.clone().expect("a template item keeps its values");
    assert_eq!(values.get("doc").map(String::as_str), Some("the memo, v2"));
}

#[tokio::test]
async fn the_history_lists_the_runs_of_one_batch_and_marks_each_with_it() {
    let app = spawn_app_with(|_| {}).await;
    let single = app.submit("not part of any batch").await.id;
    let batch = uploaded(&app, "text/plain", "", "one\ntwo\nthree\n").await;
    until_finished(&app, &batch).await;

    let of_batch: Vec<RunSummary> = get(&app, &format!("/api/runs?batch={}", batch.id)).await;
    let expected: BTreeSet<_> = items(&app, &batch).await.iter().filter_map(|item| item.run_id).collect();
    assert_eq!(of_batch.iter().map(|run| run.id).collect::<BTreeSet<_>>(), expected);
    assert!(of_batch.iter().all(|run| run.batch_id == Some(batch.id)));
    let all = app.runs().await;
    assert_eq!(all.len(), 4);
    assert_eq!(all.iter().find(|run| run.id == single).map(|run| run.batch_id), Some(None));
    let (status, message) = error_of(app.list_runs("batch=nope").await).await;
    assert_eq!((status, message.as_str()), (StatusCode::BAD_REQUEST, "`nope` is not a batch id (expected a UUID)"));
}

#[tokio::test]
async fn malformed_files_are_refused_naming_the_line_and_nothing_runs() {
    let app = spawn_app_with(|args| args.app.max_batch_bytes = 4_096).await;
    let csv_template = "?template=%7B%7Ba%7D%7D%20%7B%7Bb%7D%7D";
    let cases: [(&str, &str, String, StatusCode, &str); 6] = [
        (
            "application/x-ndjson",
            "",
            "\"fine\"\n{\"prompt\": \"open\"\n".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "line 2: not JSON",
        ),
        (
            "text/csv",
            csv_template,
            "a,b\n1,2\n3\n".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "line 3: 1 fields; the header has 2",
        ),
        (
            "text/csv",
            csv_template,
            "a,b\n1,2\n1,2,3\n".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "line 3: 3 fields; the header has 2",
        ),
        (
            "text/csv",
            "?template=%7B%7Ba%7D%7D",
            "a,b\n1,2\n".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "line 2: `b` is not a placeholder of the template",
        ),
        ("text/plain", "", "\n  \n".into(), StatusCode::UNPROCESSABLE_ENTITY, "the file has no items"),
        (
            "text/plain",
            "",
            "ok\n".repeat(2_000),
            StatusCode::PAYLOAD_TOO_LARGE,
            "the file is larger than --max-batch-bytes",
        ),
    ];
    for (content_type, query, body, status, message) in &cases {
        let (got, text) = error_of(upload(&app, content_type, query, body).await).await;
        assert_eq!((got, text.starts_with(message)), (*status, true), "{content_type}: {text}");
    }
    let (status, text) = error_of(upload(&app, "text/plain", "?max_tokens=0", "a\n").await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text.starts_with("line 1: max_tokens must be between 1 and "), "{text}");
    let (status, text) = error_of(upload(&app, "text/plain", "?colour=red", "a\n").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("colour"), "{text}");

    assert!(get::<Vec<BatchSummary>>(&app, "/api/batches").await.is_empty(), "nothing was stored");
    assert!(app.runs().await.is_empty(), "nothing ran");
}

#[tokio::test]
async fn retrying_a_batch_runs_only_its_failed_items_again_as_new_runs() {
    let app = spawn_app_with(|args| args.app.max_batch_concurrency = 1).await;
    // A validation error is not retried by the flow: the first two calls fail their items.
    let plan = json!({ "kind": "validation", "fail_first": 2 });
    let response = app.client.put(app.url("/api/emulator/faults")).json(&plan).send().await.unwrap();
    assert!(response.status().is_success());
    let batch = uploaded(&app, "text/plain", "", "alpha\nbravo\ncharlie\n").await;
    let first = until_finished(&app, &batch).await;
    assert_eq!((first.counts.failed, first.counts.completed), (2, 1), "{:?}", first.counts);
    let before = items(&app, &batch).await;

    let response = app.client.post(app.url(&format!("/api/batches/{}/retry", batch.id))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried["retried"], 2);

    let second = until_finished(&app, &batch).await;
    assert_eq!(second.counts, BatchCounts { completed: 3, ..BatchCounts::default() });
    let after = items(&app, &batch).await;
    for (old, new) in before.iter().zip(&after) {
        let rerun = old.state != common::ItemState::Completed;
        assert_eq!(old.run_id != new.run_id, rerun, "item {}: only a failed item gets a new run", new.index);
    }
    let of_batch: Vec<RunSummary> = get(&app, &format!("/api/runs?batch={}", batch.id)).await;
    assert_eq!(of_batch.len(), 5, "the failed runs stay in the history beside their retries");
    let response = app.client.post(app.url(&format!("/api/batches/{}/retry", batch.id))).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["retried"], 0, "nothing left to retry");
}

// Two worker threads: while the test waits for the child, the app it talks to keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_batch_submits_a_file_follows_it_and_writes_the_results() {
    let app = spawn_app_with(|_| {}).await;
    let dirs = TestDirs::new();
    let input = dirs.data_dir.with_file_name("tickets.jsonl");
    std::fs::write(&input, "{\"ticket\": \"printer on fire\"}\n{\"ticket\": \"coffee machine sad\"}\n").unwrap();
    let output = dirs.data_dir.with_file_name("results.csv");
    let mut command = backend_command(["batch"]);
    command
        .arg(&input)
        .args(["--server", &app.address, "--template", "Triage: {{ticket}}", "--max-tokens", "64"])
        .arg("--output")
        .arg(&output)
        .env("RUST_LOG", "warn");
    let done = run_backend(&mut command).await;
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{:?}: {stderr}", done.status);
    assert!(stderr.contains("all 2 items completed"), "{stderr}");
    let id = String::from_utf8(done.stdout).unwrap().trim().to_owned();
    let batch: BatchSummary = get(&app, &format!("/api/batches/{id}")).await;
    assert_eq!((batch.total, batch.max_tokens), (2, 64));
    let results = std::fs::read_to_string(&output).unwrap();
    assert!(results.starts_with("index,state,run_id,prompt,"), "a CSV with its header:\n{results}");
    assert_eq!(results.matches(",Completed,").count(), 2, "a row per item:\n{results}");
    for prompt in ["Triage: printer on fire", "Triage: coffee machine sad"] {
        let quoted = format!("\"{}\"", reply_for(prompt).replace('"', "\"\""));
        assert!(results.contains(&quoted), "{prompt}: the reply, as a quoted CSV field:\n{results}");
    }

    let bad = dirs.data_dir.with_file_name("bad.csv");
    std::fs::write(&bad, "prompt\nfine\n\"never closed\n").unwrap();
    let mut command = backend_command(["batch"]);
    command.arg(&bad).args(["--server", &app.address]).env("RUST_LOG", "warn");
    let refused = run_backend(&mut command).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("line 3: a quoted field is never closed"), "{stderr}");
}
