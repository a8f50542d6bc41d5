//! Choosing which Bedrock the server calls: AWS, an endpoint override, or the built-in emulator.

use std::sync::Arc;

use common::{BedrockBackend, BedrockInfo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{BedrockApi, ModelClient, SdkClient, SdkSettings, Timeouts};
use crate::emulator::{Emulator, EmulatorConfig};

/// Which Bedrock to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BedrockChoice {
    /// AWS when credentials or an endpoint are configured, otherwise the built-in emulator.
    #[default]
    Auto,
    /// Always the built-in emulator.
    Emulator,
    /// Always AWS (or `--bedrock-endpoint`), even without visible credentials.
    Aws,
}

/// Everything that decides how Bedrock is reached.
#[derive(Debug, Clone)]
pub struct BedrockSettings {
    pub choice: BedrockChoice,
    /// Send every call here instead of the AWS endpoint (credentials still from the AWS chain).
    pub endpoint: Option<String>,
    pub api: BedrockApi,
    pub timeouts: Timeouts,
    /// How the built-in emulator behaves if it is the one chosen.
    pub emulator: EmulatorConfig,
}

/// The Bedrock in use, ready to call.
pub struct Connected {
    pub client: Arc<dyn ModelClient>,
    /// What the page and `/api/health` say about it.
    pub info: BedrockInfo,
    /// The built-in emulator, when it is the Bedrock in use (its faults can be set at run time).
    pub emulator: Option<Emulator>,
}

/// Why no Bedrock could be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("--bedrock emulator and --bedrock-endpoint exclude each other")]
    Contradictory,
    #[error("cannot start the built-in Bedrock emulator on 127.0.0.1: {0}")]
    EmulatorBind(#[source] std::io::Error),
}

/// Sets up the chosen Bedrock. The emulator, when chosen, listens on a loopback port until
/// `stop` is cancelled, and the SDK is pointed at it, so the code path is the one used with AWS.
pub async fn connect(settings: &BedrockSettings, stop: &CancellationToken) -> Result<Connected, ConnectError> {
    let use_emulator = match settings.choice {
        BedrockChoice::Emulator => true,
        BedrockChoice::Aws => false,
        BedrockChoice::Auto => settings.endpoint.is_none() && !aws_credentials_configured(),
    };
    if use_emulator && settings.endpoint.is_some() {
        return Err(ConnectError::Contradictory);
    }
    let (emulator, endpoint, backend) = if use_emulator {
        let emulator = Emulator::new(settings.emulator);
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(ConnectError::EmulatorBind)?;
        let addr = listener.local_addr().map_err(ConnectError::EmulatorBind)?;
        let stop = stop.clone();
        tokio::spawn(emulator.clone().serve(listener, async move { stop.cancelled().await }));
        (Some(emulator), Some(format!("http://{addr}")), BedrockBackend::Emulator)
    } else if let Some(endpoint) = &settings.endpoint {
        (None, Some(endpoint.clone()), BedrockBackend::Endpoint)
    } else {
        (None, None, BedrockBackend::Aws)
    };
    let sdk = SdkClient::connect(&SdkSettings {
        endpoint: endpoint.clone(),
        dummy_credentials: use_emulator,
        region: None,
        api: settings.api,
        timeouts: settings.timeouts,
    })
    .await;
    let info = BedrockInfo {
        backend,
        endpoint: endpoint.unwrap_or_else(|| format!("https://bedrock-runtime.{}.amazonaws.com", sdk.region())),
        region: sdk.region().to_owned(),
        api: settings.api.as_str().to_owned(),
    };
    Ok(Connected { client: Arc::new(sdk), info, emulator })
}

/// Whether the usual AWS credential sources are configured, without contacting any of them
/// (probing the instance metadata service would stall start-up off AWS).
fn aws_credentials_configured() -> bool {
    let env_set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let from_env = [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|name| env_set(name));
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let from_files =
        home.is_some_and(|home| home.join(".aws/credentials").exists() || home.join(".aws/config").exists());
    from_env || from_files
}
