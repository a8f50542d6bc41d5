//! The OpenAPI document at `/api/openapi.json`, and the server held to it by schemathesis:
//! thousands of generated requests, valid and invalid, whose every answer must be documented
//! (status, content type, body schema, headers) and never a server error.

use std::path::PathBuf;
use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::Value;
use tests::spawn_app;

/// Every operation the API serves over plain HTTP, as a person lists them from the README.
const OPERATIONS: &[&str] = &[
    "DELETE /api/emulator/faults",
    "GET /api/batches",
    "GET /api/batches/{id}",
    "GET /api/batches/{id}/export",
    "GET /api/batches/{id}/items",
    "GET /api/emulator/faults",
    "GET /api/health",
    "GET /api/models",
    "GET /api/openapi.json",
    "GET /api/runs",
    "GET /api/runs/export",
    "GET /api/runs/totals",
    "GET /api/runs/{id}",
    "GET /api/runs/{id}/export",
    "GET /api/runs/{id}/logs",
    "GET /metrics",
    "POST /api/batches",
    "POST /api/batches/{id}/cancel",
    "POST /api/batches/{id}/retry",
    "POST /api/runs",
    "POST /api/runs/{id}/cancel",
    "POST /api/runs/{id}/replay",
    "PUT /api/emulator/faults",
];

#[tokio::test]
async fn the_openapi_document_is_version_3_1_and_lists_every_operation() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();

    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |method| (method.to_uppercase(), path)))
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    operations.sort();
    assert_eq!(operations, OPERATIONS);
    let refused = &doc["paths"]["/api/runs"]["post"]["responses"]["422"]["content"]["application/json"]["schema"];
    assert_eq!(refused["$ref"], "#/components/schemas/ErrorBody", "errors document their body");
}

/// The schemathesis that `cargo xtask setup` installs (`SCHEMATHESIS` overrides it).
fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/schemathesis/bin/schemathesis")
    });
    assert!(path.is_file(), "no schemathesis at {}: `cargo xtask setup` installs it", path.display());
    path
}

#[tokio::test]
async fn schemathesis_finds_no_failure_in_any_documented_operation() {
    let app = spawn_app().await;
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    // One worker: schemathesis' own threads trip a CPython 3.11 parser bug (`AST constructor
    // recursion depth mismatch`) in hypothesis. A fixed seed makes a failure reproducible.
    let output = tokio::process::Command::new(schemathesis())
        .arg("--config-file")
        .arg(&config)
        .args(["--no-color", "run", "--workers", "1", "--max-examples", "100", "--seed", "20261203"])
        .args(["--request-timeout", "30", "--max-failures", "20"])
        .arg(app.url("/api/openapi.json"))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis failed ({}):\n{report}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("Tested: 22"), "every operation but the document itself was exercised:\n{report}");
}
