//! The built frontend: files from the dist directory, `index.html` for client-side routes.

use std::convert::Infallible;
use std::path::Path;

use axum::response::IntoResponse;
use axum::routing::{MethodRouter, any_service};
use tower::service_fn;
use tower_http::services::{ServeDir, ServeFile};

use crate::error::ApiError;

/// Serves `dir`, falling back to its `index.html` so `/runs/{id}` loads the app; when the
/// frontend is not built, a JSON 404 that says how to build it.
pub fn service(dir: &Path) -> MethodRouter<()> {
    if dir.join("index.html").is_file() {
        // ServeDir normalises the path and refuses `..`, encoded or not, so nothing outside
        // `dir` is reachable. The build writes a `.gz` beside each file; browsers get those.
        let index = ServeFile::new(dir.join("index.html")).precompressed_gzip();
        any_service(ServeDir::new(dir).precompressed_gzip().fallback(index))
    } else {
        any_service(service_fn(|_request| async {
            Ok::<_, Infallible>(
                ApiError::NotFound("the frontend is not built here; `cargo xtask run` builds and serves it".into())
                    .into_response(),
            )
        }))
    }
}
