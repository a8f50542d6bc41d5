//! The two tasks of the flow: `load_prompt_file` and `call_bedrock`.

use std::sync::Arc;

use common::{AttemptOutcome, EventKind, RunId};
use tracing::{info, warn};

use super::{AttemptFailure, RunSpec, Runner};
use crate::bedrock::{CallTrace, ModelRequest};
use crate::journal::JournalError;

/// The model call a run makes with its prompt.
pub(super) fn model_request(spec: &RunSpec, prompt: String) -> ModelRequest {
    ModelRequest {
        model_id: spec.model_id.clone(),
        prompt,
        system: spec.system.clone(),
        max_tokens: spec.max_tokens,
        temperature: spec.temperature,
    }
}

fn outcome_of(trace: &CallTrace) -> AttemptOutcome {
    AttemptOutcome {
        http_status: trace.http_status,
        request_id: trace.request_id.clone(),
        first_byte_ms: trace.first_byte_ms,
        total_ms: trace.total_ms,
        ..AttemptOutcome::default()
    }
}

impl Runner {
    /// `load_prompt_file`: reads this run's record back from the prompt journal and verifies it.
    pub(super) async fn load_prompt_file(&self, spec: &RunSpec) -> Result<(String, AttemptOutcome), AttemptFailure> {
        match self.journal.read(spec.id, spec.journal).await {
            Ok(prompt) => {
                info!(bytes = prompt.len(), from = %self.journal.location(), "prompt loaded from the journal");
                Ok((prompt, AttemptOutcome::default()))
            }
            Err(error) => {
                // An I/O error (file moved, disk hiccup) may pass; a damaged record will not.
                let retryable = !matches!(error, JournalError::Corrupt { .. });
                let kind = if retryable { "io" } else { "corrupt" };
                Err(AttemptFailure { message: error.to_string(), retryable, kind, outcome: AttemptOutcome::default() })
            }
        }
    }

    /// `call_bedrock`: one call to the model, publishing the response text as it streams.
    pub(super) async fn call_bedrock(
        &self,
        run_id: RunId,
        request: &ModelRequest,
        attempt: u32,
    ) -> Result<((), AttemptOutcome), AttemptFailure> {
        let _slot = match Arc::clone(&self.call_slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                info!(limit = self.settings.max_concurrent_calls, "waiting for a free Bedrock call slot");
                Arc::clone(&self.call_slots).acquire_owned().await.map_err(|_| AttemptFailure {
                    message: "the server is shutting down".into(),
                    retryable: false,
                    kind: "shutdown",
                    outcome: AttemptOutcome::default(),
                })?
            }
        };
        info!(model_id = %request.model_id, max_tokens = request.max_tokens, "calling Bedrock");
        let mut on_text = |text: &str| {
            self.hub.publish(run_id, EventKind::Delta { attempt, text: text.to_owned() });
        };
        match self.model.call(request, &mut on_text).await {
            Ok(reply) => {
                info!(
                    request_id = reply.trace.request_id.as_deref().unwrap_or("-"),
                    first_byte_ms = reply.trace.first_byte_ms,
                    total_ms = reply.trace.total_ms,
                    input_tokens = reply.usage.map(|u| u.input_tokens),
                    output_tokens = reply.usage.map(|u| u.output_tokens),
                    "Bedrock answered"
                );
                self.metrics.model_answered(&request.model_id, &reply);
                self.hub.publish(
                    run_id,
                    EventKind::ModelResult {
                        usage: reply.usage,
                        stop_reason: reply.stop_reason,
                        latency_ms: reply.latency_ms,
                    },
                );
                Ok(((), outcome_of(&reply.trace)))
            }
            Err(error) => {
                warn!(
                    kind = %error.kind,
                    http_status = error.trace.http_status,
                    request_id = error.trace.request_id.as_deref().unwrap_or("-"),
                    "Bedrock call failed: {}",
                    error.message
                );
                self.metrics.model_failed(&error);
                Err(AttemptFailure {
                    message: error.message,
                    retryable: error.kind.is_retryable(),
                    kind: error.kind.as_str(),
                    outcome: outcome_of(&error.trace),
                })
            }
        }
    }
}
