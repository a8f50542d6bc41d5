//! Exports: one run as JSON or Markdown, the history (with its filters) as JSON Lines or CSV.

use backend::emulator::reply_for;
use common::{RunDetail, RunState};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use tests::{BinaryServer, TestApp, TestDirs, on_postgres, serve_flags, spawn_app};

use crate::expected::{tokens, usage_for};

async fn download(app: &TestApp, path: &str) -> (StatusCode, String, String, String) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    (response.status(), content_type, disposition, response.text().await.unwrap())
}

async fn completed(app: &TestApp, body: Value) -> RunDetail {
    let run = app.submit_json(&body).await;
    app.wait_for_state(run.id, RunState::Completed).await
}

#[tokio::test]
async fn a_run_exports_as_its_json_detail_and_as_a_markdown_document() {
    let app = spawn_app().await;
    let prompt = "Explain ```fences``` briefly";
    let run = completed(&app, json!({ "prompt": prompt, "system": "Be terse", "temperature": 0.5 })).await;

    let (status, content_type, disposition, body) = download(&app, &format!("/api/runs/{}/export", run.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(disposition, format!("attachment; filename=\"run-{}.json\"", run.id));
    let exported: RunDetail = serde_json::from_str(&body).unwrap();
    assert_eq!(exported, app.run(run.id).await, "the detail itself");

    let (status, content_type, _, markdown) = download(&app, &format!("/api/runs/{}/export?format=md", run.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/markdown; charset=utf-8");
    // The system prompt's words count as input tokens too.
    let usage = usage_for(prompt);
    let input_tokens = usage.input_tokens + tokens("Be terse");
    let reply = reply_for(prompt);
    assert!(
        markdown.starts_with(&format!("# Run {}\n\n| | |\n| --- | --- |\n| State | Completed |\n", run.id)),
        "{markdown}"
    );
    assert!(markdown.contains("| Temperature | 0.5 |\n"), "{markdown}");
    assert!(markdown.contains(&format!("| Tokens | {input_tokens} in, {} out |\n", usage.output_tokens)), "{markdown}");
    assert!(markdown.contains("\n## System prompt\n\n```text\nBe terse\n```\n"), "{markdown}");
    // The prompt holds a run of three backticks: its fence is four long.
    assert!(markdown.contains(&format!("\n## Prompt\n\n````text\n{prompt}\n````\n")), "{markdown}");
    assert!(markdown.ends_with(&format!("\n## Response\n\n{}\n", reply.trim_end())), "{markdown}");
}

#[tokio::test]
async fn the_history_exports_every_run_the_filters_select_as_json_lines_and_csv() {
    let app = spawn_app().await;
    let mut runs = Vec::new();
    for n in 0..3 {
        runs.push(completed(&app, json!({ "prompt": format!("export, \"quoted\" {n}") })).await);
    }
    let other = completed(&app, json!({ "prompt": "other model", "model_id": "us.anthropic.claude-sonnet-4-6" })).await;

    let (status, content_type, disposition, ndjson) = download(&app, "/api/runs/export").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/x-ndjson");
    assert_eq!(disposition, "attachment; filename=\"runs.ndjson\"");
    let lines: Vec<Value> = ndjson.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 4, "{ndjson}");
    assert_eq!(lines[0]["id"], other.id.to_string(), "newest first");
    let first = &lines[3];
    assert_eq!(first["prompt"], "export, \"quoted\" 0");
    assert_eq!(first["response"], reply_for("export, \"quoted\" 0"));
    assert_eq!(first["state"], "Completed");
    assert_eq!(first["usage"]["output_tokens"], usage_for("export, \"quoted\" 0").output_tokens);

    let (_, _, _, filtered) = download(&app, "/api/runs/export?model=us.anthropic.claude-sonnet-4-6").await;
    assert_eq!(filtered.lines().count(), 1, "the history's filters apply");

    let (status, content_type, _, csv) = download(&app, "/api/runs/export?format=csv").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let mut records = csv.split("\r\n");
    assert_eq!(
        records.next(),
        Some(
            "id,state,model_id,system,max_tokens,temperature,prompt,response,input_tokens,output_tokens,cost_usd,\
             stop_reason,error,retries,created_at,started_at,finished_at,duration_ms,replay_of,batch_id"
        )
    );
    let oldest = csv.split("\r\n").filter(|r| r.starts_with(&runs[0].id.to_string())).collect::<Vec<_>>();
    assert_eq!(oldest.len(), 1);
    assert!(oldest[0].contains(",\"export, \"\"quoted\"\" 0\","), "quoted as RFC 4180 says: {}", oldest[0]);

    let (status, _, _, body) = download(&app, "/api/runs/export?format=xml").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("format `xml` is not one of ndjson, csv"), "{body}");
}

#[tokio::test]
async fn a_history_longer_than_one_page_exports_whole() {
    let app = spawn_app().await;
    // More than the 200 runs an export reads per step.
    let submissions = (0..230).map(|n| {
        let app = &app;
        async move { app.submit(&format!("page {n}")).await }
    });
    let ids: Vec<_> = futures_util::future::join_all(submissions).await;
    for run in &ids {
        app.wait_until_finished(run.id).await;
    }
    let (_, _, _, ndjson) = download(&app, "/api/runs/export").await;
    let mut exported: Vec<String> =
        ndjson.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_owned()).collect();
    exported.sort();
    let mut expected: Vec<String> = ids.iter().map(|r| r.id.to_string()).collect();
    expected.sort();
    assert_eq!(exported, expected, "every run once");
}

/// Runs seeded for the memory test, and how many times the history is then doubled in SQL:
/// 625 × 2³ = 5,000 runs (the benchmark exports 100,000, in release).
const SEEDED_RUNS: usize = 625;
const DOUBLINGS: u32 = 3;
/// Characters added to each seeded prompt, so the export is large: 5,000 × 20,000 ≈ 100 MB,
/// where a page of 200 runs is 4 MB.
const PROMPT_FILLER: usize = 20_000;

/// A history of `SEEDED_RUNS << DOUBLINGS` finished runs with long prompts, written into the
/// SQLite store of `dirs` before any server opens it: seeding through the store writes a run in
/// a fraction of a millisecond, and each doubling copies every run and its events in one
/// statement, under new ids.
async fn seed_long_history(dirs: &TestDirs) {
    let store = backend::store::SqliteStore::open(&dirs.data_dir, backend::store::Synchronous::Normal).await.unwrap();
    backend::store::seed_finished_runs(&store, SEEDED_RUNS, backend::config::DEFAULT_MODEL_ID).await.unwrap();
    drop(store);
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(dirs.data_dir.join("runs.db"));
    let mut db = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    let filler = "lorem ".repeat(PROMPT_FILLER / 6);
    sqlx::query("UPDATE events SET body = replace(body, '\"prompt\":\"seeded run', '\"prompt\":\"' || ?1 || 'seeded run') WHERE kind = 'run_created'")
        .bind(&filler)
        .execute(&mut db)
        .await
        .unwrap();
    let columns: Vec<String> =
        sqlx::query("SELECT name FROM pragma_table_info('runs') WHERE name NOT IN ('seq', 'id', 'idempotency_key')")
            .fetch_all(&mut db)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get("name"))
            .collect();
    let columns = columns.join(", ");
    for _ in 0..DOUBLINGS {
        for statement in [
            // The same UUID with its first 32 bits drawn anew: still a UUID, and a fresh one.
            "CREATE TEMP TABLE copies AS SELECT id AS old, lower(hex(randomblob(4))) || substr(id, 9) AS new FROM runs".to_owned(),
            format!("INSERT INTO runs (id, {columns}) SELECT c.new, {columns} FROM runs JOIN copies c ON c.old = runs.id ORDER BY runs.seq"),
            "INSERT INTO events (run_id, seq, kind, body) SELECT c.new, e.seq, e.kind, replace(e.body, c.old, c.new) FROM events e JOIN copies c ON c.old = e.run_id".to_owned(),
            "DROP TABLE copies".to_owned(),
        ] {
            sqlx::query(&statement).execute(&mut db).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_history_export_streams_in_the_memory_of_a_page_not_of_the_history() {
    if on_postgres() {
        return; // the history is seeded into SQLite's file; the export code is the same
    }
    let dirs = TestDirs::new();
    seed_long_history(&dirs).await;
    let server = BinaryServer::start(&serve_flags(&dirs), &[]).await;
    let before_kib = server.rss_kib();

    let client = reqwest::Client::new();
    let mut response = client.get(server.url("/api/runs/export")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }

    assert_eq!(lines, SEEDED_RUNS << DOUBLINGS, "one line per run");
    assert!(bytes > 100_000_000, "the export is {bytes} bytes, larger than any page");
    let grew_mib = server.peak_rss_kib().saturating_sub(before_kib) / 1024;
    assert!(grew_mib < 40, "the server grew by {grew_mib} MiB while streaming {} MB", bytes / 1_000_000);
}
