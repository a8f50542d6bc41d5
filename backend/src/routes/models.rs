//! `/api/models`: the model catalog, each model's lifecycle status as it stands today.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::Catalog;

use super::documented::Refused;
use super::extract::Json;
use crate::app::App;
use crate::catalog;

/// `GET /api/models`.
pub fn router() -> Router<Arc<App>> {
    Router::new().route("/api/models", get(models))
}

/// The model catalog, each model's lifecycle status as it stands today.
#[utoipa::path(
    get,
    path = "/api/models",
    tag = "server",
    responses((status = 200, description = "The catalog, with the sources it was read from.", body = Catalog), Refused)
)]
pub(super) async fn models(State(app): State<Arc<App>>) -> Json<Catalog> {
    Json(catalog::as_of(app.runs().catalog(), catalog::today()))
}
