//! `/api/emulator/faults`: inject Bedrock failures into the built-in emulator at run time.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::{EmulatorStatus, FaultPlan};

use super::documented::{BodyRefused, Refused};
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

#[utoipa::path(
    get,
    path = "/api/emulator/faults",
    tag = "emulator",
    responses((status = 200, description = "The fault plan, the quota and the calls served.", body = EmulatorStatus), Refused, NoEmulator)
)]
pub(super) async fn status(State(app): State<Arc<App>>) -> Result<Json<EmulatorStatus>, ApiError> {
    Ok(Json(emulator(&app)?.status()))
}

/// Make the next calls (`fail_first`) and every Nth call after them fail with `kind`.
#[utoipa::path(
    put,
    path = "/api/emulator/faults",
    tag = "emulator",
    request_body = FaultPlan,
    responses((status = 200, description = "The plan is in force.", body = EmulatorStatus), Refused, BodyRefused, NoEmulator)
)]
pub(super) async fn set(
    State(app): State<Arc<App>>,
    Json(Object(plan)): Json<Object<FaultPlan>>,
) -> Result<Json<EmulatorStatus>, ApiError> {
    if plan.fail_first == 0 && plan.every_nth == 0 {
        return Err(ApiError::Invalid("a fault plan needs fail_first or every_nth above 0".into()));
    }
    if plan.fail_first.max(plan.every_nth) > FaultPlan::MAX_CALLS {
        return Err(ApiError::Invalid(format!("fail_first and every_nth may not exceed {}", FaultPlan::MAX_CALLS)));
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

/// Stop injecting faults.
#[utoipa::path(
    delete,
    path = "/api/emulator/faults",
    tag = "emulator",
    responses((status = 200, description = "No fault plan is in force.", body = EmulatorStatus), Refused, NoEmulator)
)]
pub(super) async fn clear(State(app): State<Arc<App>>) -> Result<Json<EmulatorStatus>, ApiError> {
    let emulator = emulator(&app)?;
    emulator.set_faults(None);
    Ok(Json(emulator.status()))
}

/// 409 from a server that calls real Bedrock.
#[derive(utoipa::IntoResponses)]
#[response(status = 409, description = "The server calls real Bedrock, not the built-in emulator.")]
#[allow(dead_code)]
struct NoEmulator(common::ErrorBody);
