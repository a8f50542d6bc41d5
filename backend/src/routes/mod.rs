//! The HTTP layer: REST routes, the WebSocket, static files, and the middleware around them.
//!
//! Each resource module exposes `fn router() -> Router<Arc<App>>`; [`router`] merges them and
//! adds what applies to every request: the [`Guard`] (host, cross-site and token checks), the
//! body limit, metrics by route template, and logging of failed requests (once, here).

mod batches;
mod documented;
mod emulator;
mod extract;
mod guard;
mod health;
mod models;
mod openapi;
mod params;
mod runs;
mod static_files;
mod ws;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::any;

use crate::app::App;
use crate::error::{ApiError, LoggedError};

pub use guard::{Guard, TOKEN_COOKIE};

/// The whole HTTP API, plus the frontend from `static_dir` when it exists.
pub fn router(app: Arc<App>, guard: Guard, static_dir: &Path, max_body_bytes: usize) -> Router {
    let max_batch_bytes = app.max_batch_bytes();
    Router::new()
        .merge(runs::router())
        .merge(batches::router(max_batch_bytes))
        .merge(ws::router())
        .merge(health::router())
        .merge(models::router())
        .merge(emulator::router())
        .merge(openapi::router())
        .route("/api", any(api_not_found))
        .route("/api/{*rest}", any(api_not_found))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback_service(static_files::service(static_dir))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(Arc::new(guard), guard::check))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), observe))
        .with_state(app)
}

async fn api_not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no API route {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not accept {method}", uri.path()))
}

/// Counts and times every request by route template, and logs failures once.
async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    app.metrics().http_request(&route, method.as_str(), status.as_u16(), started.elapsed());
    if let Some(LoggedError(message)) = response.extensions().get::<LoggedError>() {
        if status.is_server_error() {
            tracing::error!(%method, %route, status = status.as_u16(), "{message}");
        } else {
            tracing::debug!(%method, %route, status = status.as_u16(), "{message}");
        }
    }
    response
}
