//! Choosing which Bedrock the server calls: AWS, an endpoint override, or the built-in emulator.

use std::path::Path;
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
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let credentials = credential_source(|name| std::env::var(name).ok(), home.as_deref(), Path::new("/sys"));
    let use_emulator = match settings.choice {
        BedrockChoice::Emulator => true,
        BedrockChoice::Aws => false,
        BedrockChoice::Auto => settings.endpoint.is_none() && credentials.is_none(),
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
        credentials: (!use_emulator).then(|| credentials.unwrap_or("SDK default chain").to_owned()),
    };
    Ok(Connected { client: Arc::new(sdk), info, emulator })
}

/// Where the SDK's default credential chain will find credentials, judged without contacting
/// anything: probing the instance metadata service off AWS stalls until a timeout, so an EC2
/// instance is recognised by its firmware's vendor string instead, as cloud-init does.
fn credential_source(env: impl Fn(&str) -> Option<String>, home: Option<&Path>, sys: &Path) -> Option<&'static str> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID") {
        Some("environment")
    } else if set("AWS_BEARER_TOKEN_BEDROCK") {
        Some("Bedrock API key")
    } else if set("AWS_WEB_IDENTITY_TOKEN_FILE") {
        Some("web identity")
    } else if set("AWS_PROFILE")
        || home.is_some_and(|home| home.join(".aws/credentials").exists() || home.join(".aws/config").exists())
    {
        Some("profile")
    } else if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || set("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        Some("container role")
    } else if on_ec2(sys) {
        Some("instance role")
    } else {
        None
    }
}

/// Whether this machine is an EC2 instance, from the DMI data Linux exposes under `sys`.
fn on_ec2(sys: &Path) -> bool {
    let read = |name: &str| std::fs::read_to_string(sys.join("devices/virtual/dmi/id").join(name)).unwrap_or_default();
    read("sys_vendor").trim() == "Amazon EC2" || read("board_asset_tag").trim().starts_with("i-")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn source(vars: &[(&str, &str)], home: Option<&Path>, sys: &Path) -> Option<&'static str> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        credential_source(|name| vars.get(name).cloned(), home, sys)
    }

    #[test]
    fn credentials_are_found_where_the_sdk_s_default_chain_looks() {
        let empty = std::env::temp_dir().join(format!("no-such-dir-{}", uuid::Uuid::now_v7()));
        assert_eq!(source(&[], None, &empty), None);
        assert_eq!(source(&[("AWS_ACCESS_KEY_ID", "")], None, &empty), None, "an empty variable is unset");
        assert_eq!(source(&[("AWS_ACCESS_KEY_ID", "AKID")], None, &empty), Some("environment"));
        assert_eq!(source(&[("AWS_PROFILE", "dev")], None, &empty), Some("profile"));
        assert_eq!(
            source(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x")], None, &empty),
            Some("container role")
        );
    }

    #[test]
    fn an_ec2_instance_is_recognised_by_its_firmware_without_a_network_call() {
        let sys = std::env::temp_dir().join(format!("sys-{}", uuid::Uuid::now_v7()));
        let dmi = sys.join("devices/virtual/dmi/id");
        std::fs::create_dir_all(&dmi).expect("temp dir");
        std::fs::write(dmi.join("sys_vendor"), "QEMU\n").expect("write");
        assert_eq!(source(&[], None, &sys), None);
        std::fs::write(dmi.join("sys_vendor"), "Amazon EC2\n").expect("write");
        assert_eq!(source(&[], None, &sys), Some("instance role"));
        std::fs::write(dmi.join("sys_vendor"), "Xen\n").expect("write");
        std::fs::write(dmi.join("board_asset_tag"), "i-0123456789abcdef0\n").expect("write");
        assert_eq!(source(&[], None, &sys), Some("instance role"), "older Xen instances");
        let _ = std::fs::remove_dir_all(&sys);
    }
}
