//! The honesty banner: says when answers come from the built-in emulator, or when the server
//! cannot be reached at all.

use common::BedrockBackend;
use yew::prelude::*;

use crate::state::HealthState;

/// Shows which Bedrock answers, when it is not AWS, and a server-unreachable warning. A plain
/// function of the health the app holds: a component type costs the Wasm its own lifecycle code.
pub fn emulator_banner(health: &HealthState) -> Html {
    match health {
        HealthState::Loading => html! {},
        HealthState::Failed(error) => html! {
            <div class="banner banner-error" id="health-error" data-testid="health-error" role="alert">
                { "The server is not answering: " }{ error.clone() }
            </div>
        },
        HealthState::Ready(health) => match health.bedrock.backend {
            BedrockBackend::Emulator => html! {
                <div class="banner banner-emulator" id="emulator-banner" data-testid="emulator-banner" role="note">
                    <strong>{ "Emulator mode." }</strong>
                    { " Answers come from the built-in Bedrock emulator; no AWS call is made." }
                </div>
            },
            BedrockBackend::Endpoint => html! {
                <div class="banner banner-endpoint" id="endpoint-banner" data-testid="endpoint-banner" role="note">
                    { "Bedrock calls go to " }<code>{ health.bedrock.endpoint.clone() }</code>
                </div>
            },
            BedrockBackend::Aws => html! {},
        },
    }
}
