//! What was asked: the operation, the model id and the body, checked as Bedrock checks them and
//! reduced to a [`Prompt`].
//!
//! Converse and the Anthropic Messages body (InvokeModel) reject bad input with different wording,
//! and clients show that wording to people, so each parser keeps its own messages. Nothing here
//! knows how the answer is built or paced.

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::{BytesRejection, PathRejection};
use serde::Deserialize;

use super::error::BedrockError;
use super::reply::count_tokens;

/// Converse's token limit when `inferenceConfig.maxTokens` is absent (the model's own maximum).
const DEFAULT_CONVERSE_MAX_TOKENS: u32 = 4096;
/// The only `anthropic_version` Bedrock accepts in an Anthropic Messages body.
const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// Cross-region inference-profile prefixes accepted in front of a model id.
const PROFILE_PREFIXES: [&str; 4] = ["us.", "eu.", "apac.", "global."];
/// Bedrock's longest model identifier (an ARN included).
const MAX_MODEL_ID_LEN: usize = 2048;
const INVALID_MODEL_ID: &str = "The provided model identifier is invalid.";

/// One of the four Bedrock Runtime operations the emulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
}

/// What the model is asked, reduced to what the emulator needs.
pub(crate) struct Prompt {
    /// The last user turn's text.
    pub(crate) text: String,
    /// Input tokens besides that text: the system prompt and earlier turns.
    pub(crate) context_tokens: u32,
    pub(crate) max_tokens: u32,
}

impl Prompt {
    /// Reads the body of `op`: Converse's own request, or an Anthropic Messages body for InvokeModel.
    pub(crate) fn parse(op: Operation, body: Result<Bytes, BytesRejection>) -> Result<Self, BedrockError> {
        let body = body.map_err(|e| BedrockError::invalid(format!("Malformed request body: {}", e.body_text())))?;
        match op {
            Operation::Converse | Operation::ConverseStream => parse_converse(&body),
            Operation::Invoke | Operation::InvokeStream => parse_anthropic(&body),
        }
    }
}

/// The model id from the path, if it looks like an Anthropic Claude model: a bare or
/// inference-profile id, or an ARN naming one.
pub(crate) fn model_id(path: Result<Path<String>, PathRejection>) -> Result<String, BedrockError> {
    let Path(id) = path.map_err(|_| BedrockError::invalid(INVALID_MODEL_ID))?;
    let valid = if id.starts_with("arn:") {
        id.contains("anthropic.claude")
    } else {
        PROFILE_PREFIXES
            .iter()
            .find_map(|prefix| id.strip_prefix(prefix))
            .unwrap_or(id.as_str())
            .starts_with("anthropic.claude")
    };
    if valid && id.len() <= MAX_MODEL_ID_LEN { Ok(id) } else { Err(BedrockError::invalid(INVALID_MODEL_ID)) }
}

// --- Converse ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseRequest {
    #[serde(default)]
    messages: Vec<ConverseMessage>,
    #[serde(default)]
    system: Vec<TextBlock>,
    #[serde(default)]
    inference_config: InferenceConfig,
}

#[derive(Deserialize)]
struct ConverseMessage {
    role: Role,
    #[serde(default)]
    content: Vec<TextBlock>,
}

/// A content block; only text matters to the emulator, other members are ignored.
#[derive(Deserialize)]
struct TextBlock {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Role {
    User,
    Assistant,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
}

/// Converse's wording for a value outside its constraints.
fn constraint(value: impl std::fmt::Display, at: &str, rule: &str) -> BedrockError {
    BedrockError::invalid(format!(
        "1 validation error detected: Value '{value}' at '{at}' failed to satisfy constraint: Member must {rule}"
    ))
}

fn parse_converse(body: &[u8]) -> Result<Prompt, BedrockError> {
    let request: ConverseRequest =
        serde_json::from_slice(body).map_err(|e| BedrockError::invalid(format!("Malformed request body: {e}")))?;
    let config = request.inference_config;
    let max_tokens = match config.max_tokens {
        None => DEFAULT_CONVERSE_MAX_TOKENS,
        Some(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
        Some(n) => return Err(constraint(n, "inferenceConfig.maxTokens", "have value greater than or equal to 1")),
    };
    for (value, at) in [(config.temperature, "inferenceConfig.temperature"), (config.top_p, "inferenceConfig.topP")] {
        if let Some(value) = value.filter(|v| !(0.0..=1.0).contains(v)) {
            return Err(constraint(value, at, "have value between 0 and 1"));
        }
    }
    if request.messages.is_empty() {
        return Err(constraint("[]", "messages", "have length greater than or equal to 1"));
    }
    if request.messages.first().map(|m| m.role) != Some(Role::User) {
        return Err(BedrockError::invalid(
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        ));
    }
    let texts = |blocks: &[TextBlock]| blocks.iter().filter_map(|b| b.text.as_deref()).map(count_tokens).sum::<u32>();
    let last_user = request.messages.iter().rposition(|m| m.role == Role::User).unwrap_or(0);
    let context_tokens = texts(&request.system)
        + request
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != last_user)
            .map(|(_, m)| texts(&m.content))
            .sum::<u32>();
    let text = join_texts(
        request
            .messages
            .into_iter()
            .nth(last_user)
            .map(|m| m.content)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| b.text),
    );
    Ok(Prompt { text, context_tokens, max_tokens })
}

/// Joins text blocks with newlines, moving a lone block instead of copying it.
fn join_texts(mut texts: impl Iterator<Item = String>) -> String {
    let mut joined = texts.next().unwrap_or_default();
    for text in texts {
        joined.push('\n');
        joined.push_str(&text);
    }
    joined
}

// --- Anthropic Messages (InvokeModel) ---------------------------------------------------------

#[derive(Deserialize)]
struct AnthropicRequest {
    anthropic_version: Option<String>,
    max_tokens: Option<i64>,
    messages: Option<Vec<AnthropicMessage>>,
    system: Option<AnthropicContent>,
    temperature: Option<f64>,
    top_p: Option<f64>,
}

#[derive(Deserialize)]
struct AnthropicMessage {
    role: String,
    content: AnthropicContent,
}

/// Anthropic accepts a plain string wherever it accepts a list of content blocks.
#[derive(Deserialize)]
#[serde(untagged)]
enum AnthropicContent {
    Text(String),
    Blocks(Vec<TextBlock>),
}

impl AnthropicContent {
    fn tokens(&self) -> u32 {
        match self {
            AnthropicContent::Text(text) => count_tokens(text),
            AnthropicContent::Blocks(blocks) => blocks.iter().filter_map(|b| b.text.as_deref()).map(count_tokens).sum(),
        }
    }

    fn into_text(self) -> String {
        match self {
            AnthropicContent::Text(text) => text,
            AnthropicContent::Blocks(blocks) => join_texts(blocks.into_iter().filter_map(|b| b.text)),
        }
    }
}

/// InvokeModel's wording for any body the model's JSON schema rejects.
fn malformed(detail: impl std::fmt::Display) -> BedrockError {
    BedrockError::invalid(format!("Malformed input request: {detail}, please reformat your input and try again."))
}

fn parse_anthropic(body: &[u8]) -> Result<Prompt, BedrockError> {
    let request: AnthropicRequest = serde_json::from_slice(body).map_err(malformed)?;
    match request.anthropic_version.as_deref() {
        None => return Err(malformed("#: required key [anthropic_version] not found")),
        Some(ANTHROPIC_VERSION) => {}
        Some(other) => return Err(malformed(format!("#/anthropic_version: {other} is not a valid enum value"))),
    }
    let max_tokens = match request.max_tokens {
        None => return Err(malformed("#: required key [max_tokens] not found")),
        Some(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
        Some(n) => return Err(malformed(format!("#/max_tokens: {n} is not greater or equal to 1"))),
    };
    for (value, at) in [(request.temperature, "temperature"), (request.top_p, "top_p")] {
        if let Some(value) = value.filter(|v| !(0.0..=1.0).contains(v)) {
            return Err(malformed(format!("#/{at}: {value} is not in the range 0 to 1")));
        }
    }
    let messages = request.messages.ok_or_else(|| malformed("#: required key [messages] not found"))?;
    if messages.is_empty() {
        return Err(malformed("#/messages: expected minimum item count: 1, found: 0"));
    }
    if let Some((i, m)) = messages.iter().enumerate().find(|(_, m)| m.role != "user" && m.role != "assistant") {
        return Err(malformed(format!("#/messages/{i}/role: {} is not a valid enum value", m.role)));
    }
    if messages.first().map(|m| m.role.as_str()) != Some("user") {
        return Err(BedrockError::invalid("messages: first message must use the \"user\" role"));
    }
    let last_user = messages.iter().rposition(|m| m.role == "user").unwrap_or(0);
    let context_tokens = request.system.as_ref().map_or(0, AnthropicContent::tokens)
        + messages.iter().enumerate().filter(|(i, _)| *i != last_user).map(|(_, m)| m.content.tokens()).sum::<u32>();
    let text = messages.into_iter().nth(last_user).map(|m| m.content.into_text()).unwrap_or_default();
    Ok(Prompt { text, context_tokens, max_tokens })
}
