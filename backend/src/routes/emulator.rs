//! `/api/emulator/faults`: inject Bedrock failures into the built-in emulator at run time.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::{EmulatorStatus, FaultPlan};

use super::extract::{Json, Object};
use crate::app::App;
use crate::emulator::Emulator;
use crate::error::ApiError;

pub fn router() -> Router<Arc<App>> {
    Router::new().route("/api/emulator/faults", get(status).put(set).delete(clear))
}

fn emulator(app: &App) -> Result<&Emulator, ApiError> {
    app.emulator().ok_or_else(|| ApiError::Conflict("the server calls real Bedrock, not the built-in emulator".into()))
}

async fn status(State(app): State<Arc<App>>) -> Result<Json<EmulatorStatus>, ApiError> {
    Ok(Json(emulator(&app)?.status()))
}

async fn set(
    State(app): State<Arc<App>>,
    Json(Object(plan)): Json<Object<FaultPlan>>,
) -> Result<Json<EmulatorStatus>, ApiError> {
    if plan.fail_first == 0 && plan.every_nth == 0 {
        return Err(ApiError::Invalid("a fault plan needs fail_first or every_nth above 0".into()));
    }
    let emulator = emulator(&app)?;
    emulator.set_faults(Some(plan));
    tracing::info!(
        kind = plan.kind.as_str(),
        fail_first = plan.fail_first,
        every_nth = plan.every_nth,
        "emulator faults set"
    );
    Ok(Json(emulator.status()))
}

async fn clear(State(app): State<Arc<App>>) -> Result<Json<EmulatorStatus>, ApiError> {
    let emulator = emulator(&app)?;
    emulator.set_faults(None);
    Ok(Json(emulator.status()))
}
