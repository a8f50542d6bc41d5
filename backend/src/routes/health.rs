//! `/api/health` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use common::Health;

use super::extract::Json;
use crate::app::App;

pub fn router() -> Router<Arc<App>> {
    Router::new().route("/api/health", get(health)).route("/metrics", get(metrics))
}

async fn health(State(app): State<Arc<App>>) -> Json<Health> {
    let status = if app.closing().is_cancelled() { "shutting_down" } else { "ok" };
    let policy = app.submissions().policy();
    Json(Health {
        status: status.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        bedrock: app.bedrock().clone(),
        defaults: policy.defaults.clone(),
        limits: policy.limits.clone(),
    })
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], app.metrics().render())
}
