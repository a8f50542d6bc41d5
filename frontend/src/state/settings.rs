//! The settings a person last ran with, kept in the browser's `localStorage` so a reload or a
//! new tab starts from them instead of the server's defaults.
//!
//! Stored as JSON under one key. Anything unreadable (an older shape, a hand edit, storage
//! blocked) reads as "nothing stored": the form then falls back to the server's defaults.

use common::SubmitRun;
use serde::{Deserialize, Serialize};

/// The `localStorage` key; versioned so a future shape can ignore this one.
pub const STORAGE_KEY: &str = "prompt-runner.settings.v1";

/// Model, system prompt, max tokens and temperature of the last submission; `None` means the
/// server's (or the model's) default was used.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Written by [`Settings::to_json`] itself, without serde_json's float code.
    #[serde(default, skip_serializing)]
    pub temperature: Option<f32>,
}

impl Settings {
    /// The settings a submission used (its prompt is not kept).
    pub fn of(request: &SubmitRun) -> Settings {
        Settings {
            model_id: request.model_id.clone(),
            system: request.system.clone(),
            max_tokens: request.max_tokens,
            temperature: request.temperature,
        }
    }

    /// Reads what [`Settings::to_json`] wrote; anything else gives the empty settings.
    pub fn from_json(stored: Option<&str>) -> Settings {
        stored.and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default()
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        crate::format::json_with_temperature(self, self.temperature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_garbage_reads_as_nothing_stored() {
        let request = SubmitRun {
            prompt: "not kept".into(),
            model_id: Some("m".into()),
            system: Some("be brief".into()),
            max_tokens: Some(12),
            temperature: Some(0.2),
            replay_of: None,
        };
        let settings = Settings::of(&request);
        assert_eq!(Settings::from_json(Some(&settings.to_json())), settings);
        let default_temperature = Settings { temperature: None, ..settings.clone() };
        assert_eq!(Settings::from_json(Some(&default_temperature.to_json())), default_temperature);
        assert!(!settings.to_json().contains("not kept"));
        assert_eq!(Settings::from_json(Some("{not json")), Settings::default());
        assert_eq!(Settings::from_json(Some("[1,2]")), Settings::default());
        assert_eq!(Settings::from_json(None), Settings::default());
        assert_eq!(Settings::from_json(Some(r#"{"max_tokens":7}"#)).max_tokens, Some(7));
    }
}
