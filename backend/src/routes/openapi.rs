//! `/api/openapi.json`: the API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` attributes and the `common` wire types, so it cannot drift from the code
//! that serves it. CI runs schemathesis against it (`cargo xtask test`).

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

use super::{batches, emulator, health, models, runs};
use crate::app::App;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Prompt pipeline",
        description = "Prompts to Claude on AWS Bedrock as durable, observable runs: submit, follow, search, compare and export them, alone or in batches.\n\nThe live events of runs come over a WebSocket, `GET /api/ws` (`?run_id=` to follow one run, `&after_seq=` to resume it): a protocol switch this document does not describe; its events are the `Event` type of the `common` crate, and the README shows them."
    ),
    paths(
        runs::create,
        runs::list,
        runs::totals,
        runs::export_history,
        runs::detail,
        runs::logs,
        runs::export_run,
        runs::cancel,
        runs::replay,
        batches::create,
        batches::list,
        batches::detail,
        batches::items,
        batches::cancel,
        batches::retry,
        batches::export_results,
        models::models,
        health::health,
        health::metrics,
        emulator::status,
        emulator::set,
        emulator::clear,
        document,
    ),
    components(schemas(common::ErrorBody, runs::HistoryFormat, runs::RunFormat, batches::ResultsFormat)),
    tags(
        (name = "runs", description = "One prompt through the flow: `load_prompt_file`, then `call_bedrock`."),
        (name = "batches", description = "Many prompts with one set of settings, paced to the model's quota."),
        (name = "server", description = "Health, metrics and the model catalog."),
        (name = "emulator", description = "Faults injected into the built-in Bedrock emulator."),
    )
)]
struct ApiDoc;

/// Built once: the document is a function of the code alone.
static DOCUMENT: LazyLock<serde_json::Value> = LazyLock::new(|| {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    if let Some(batch) = doc.pointer_mut("/components/schemas/SubmitBatch").and_then(|s| s.as_object_mut()) {
        batch.insert("oneOf".to_owned(), batch_kinds());
    }
    doc
});

/// What the derive of `SubmitBatch` cannot say: a batch is either its `prompts` (a non-empty
/// list of prompts with something in them), or a `template` with a placeholder and its
/// non-empty `rows`; the fields of the other kind absent or null.
fn batch_kinds() -> serde_json::Value {
    use serde_json::{Value, json};
    let given = |name: &str, schema: Value| json!({ "required": [name], "properties": { name: schema } });
    let list = json!({ "type": "array", "minItems": 1 });
    let prompts = json!({ "type": "array", "minItems": 1, "items": { "pattern": "\\S" } });
    let template = json!({ "type": "string", "pattern": "\\{\\{ *\\w+ *\\}\\}" });
    json!([
        {
            "allOf": [given("prompts", prompts)],
            "not": { "anyOf": [given("template", json!({ "type": "string" })), given("rows", list.clone())] },
        },
        {
            "allOf": [given("template", template), given("rows", list.clone())],
            "not": given("prompts", list),
        },
    ])
}

pub fn router() -> Router<Arc<App>> {
    Router::new().route("/api/openapi.json", get(document))
}

/// The OpenAPI document of this API.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "server",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json"))
)]
pub(super) async fn document() -> axum::Json<&'static serde_json::Value> {
    axum::Json(&DOCUMENT)
}
