//! `/api/health` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use common::Health;

use super::documented::Refused;
use super::extract::Json;
use crate::app::App;

pub fn router() -> Router<Arc<App>> {
    Router::new().route("/api/health", get(health)).route("/metrics", get(metrics))
}

/// 200 with `status: "ok"` (or `"shutting_down"` while draining); 503 with `"lease_lost"` once a
/// replica lost its cluster lease, or `"storage_failing"` while storage refuses writes, so a load
/// balancer sends work elsewhere.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "server",
    responses(
        (status = 200, description = "Serving (`ok`), or draining before a shutdown (`shutting_down`).", body = Health),
        (status = 503, description = "A replica that lost its cluster lease (`lease_lost`), or whose storage refuses writes (`storage_failing`).", body = Health),
        Refused,
    )
)]
pub(super) async fn health(State(app): State<Arc<App>>) -> (StatusCode, Json<Health>) {
    let cluster = match app.cluster() {
        Some(cluster) => Some((cluster.healthy(), cluster.health().await)),
        None => None,
    };
    let (code, status) = if app.closing().is_cancelled() {
        (StatusCode::OK, "shutting_down")
    } else if cluster.as_ref().is_some_and(|(healthy, _)| !healthy) {
        // Checked first: a lost lease lasts until a restart, while the storage errors that
        // often come with it (a pool timeout on waking from a freeze) pass.
        (StatusCode::SERVICE_UNAVAILABLE, "lease_lost")
    } else if !app.storage_ok() {
        (StatusCode::SERVICE_UNAVAILABLE, "storage_failing")
    } else {
        (StatusCode::OK, "ok")
    };
    let policy = app.submissions().policy();
    (
        code,
        Json(Health {
            status: status.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            bedrock: app.bedrock().clone(),
            defaults: policy.defaults.clone(),
            limits: policy.limits.clone(),
            store: if cluster.is_some() { "postgres" } else { "sqlite" }.to_owned(),
            cluster: cluster.map(|(_, health)| health),
        }),
    )
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    responses(
        (status = 200, description = "Prometheus text exposition format.", content_type = "text/plain", body = String),
        Refused,
    )
)]
pub(super) async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.metrics().runs_in_memory(app.runs().hub().runs_held());
    let batches = app.batches().activity();
    app.metrics().batch_items(batches.started, &batches.ended);
    for (model, pace) in batches.models {
        app.metrics().batch_pace(&model, pace);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], app.metrics().render())
}
