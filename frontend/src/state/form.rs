//! The submit form: its fields, client-side validation and one idempotency key per submission.
//!
//! A form starts from the last used settings, or from a run being edited as a new one (then
//! the submission names that run in `replay_of`). A refused field gets its own error and keeps
//! the settings section open while it is fixed; a failed request is a form-level message, since
//! no field is wrong.
//!
//! The key is what makes "a double click does not create two runs" hold end to end: it is made
//! when a submission starts, reused if that submission is retried after a failure, and
//! forgotten as soon as the input changes (a different input is a different run).

use std::rc::Rc;

use common::{ApiLimits, Defaults, RunDetail, RunId, SubmitRun};
use yew::Reducible;

use super::settings::Settings;
use crate::format;

/// The inputs an error can point at (and focus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Prompt,
    /// The Bedrock model id.
    Model,
    /// The optional system prompt.
    System,
    /// The response token limit.
    MaxTokens,
    /// The sampling temperature.
    Temperature,
}

impl Field {
    /// The `id` of the field's input element, for labels and `aria-describedby`.
    pub fn input_id(self) -> &'static str {
        match self {
            Field::Prompt => "prompt",
            Field::Model => "model-id",
            Field::System => "system-prompt",
            Field::MaxTokens => "max-tokens",
            Field::Temperature => "temperature",
        }
    }

    /// The `id` of the element holding the field's error, next to the field.
    pub fn error_id(self) -> &'static str {
        match self {
            Field::Prompt => "prompt-error",
            Field::Model => "model-id-error",
            Field::System => "system-prompt-error",
            Field::MaxTokens => "max-tokens-error",
            Field::Temperature => "temperature-error",
        }
    }

    /// Whether the field sits in the (collapsible) settings section.
    pub fn is_setting(self) -> bool {
        self != Field::Prompt
    }
}

/// Why the form cannot be sent yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError {
    /// The field to fix (and focus).
    pub field: Field,
    /// What to do about it.
    pub message: String,
}

/// Whether a submission is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// Nothing sent, or the last send failed.
    #[default]
    Idle,
    /// `POST /api/runs` is in flight; the button is disabled.
    Sending,
}

/// The fields exactly as typed (checked only by [`Form::request`]) and where sending stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Form {
    pub prompt: String,
    /// The model id (prefilled with the server's default).
    pub model_id: String,
    /// Empty means none.
    pub system: String,
    /// The response token limit, as typed.
    pub max_tokens: String,
    /// The temperature, as typed; empty means the model's default.
    pub temperature: String,
    /// The run this form was prefilled from ("edit as a new run"); the submission links to it.
    pub replay_of: Option<RunId>,
    pub status: Status,
    /// The field validation refused, shown next to that field.
    pub error: Option<FormError>,
    /// Why the last submission failed when no field is at fault (network, server), for the
    /// whole form.
    pub failure: Option<String>,
    /// The idempotency key of the current submission, kept for retries of the same input.
    pub key: Option<String>,
    /// Whether the settings section is open. Kept here, not derived from the error, so fixing a
    /// refused setting does not collapse the section (and drop focus) at the first keystroke.
    pub settings_open: bool,
    /// How many submissions validation refused: the page moves focus to the field at fault
    /// after each refusal, including a second one with the same message.
    pub refusals: u32,
}

/// What can happen to the form.
#[derive(Debug, Clone, PartialEq)]
pub enum FormAction {
    /// The server's defaults arrived; they fill only fields the person has not typed in.
    Defaults(Defaults),
    /// A field was edited.
    Edit(Field, String),
    /// Validation refused the input.
    Invalid(FormError),
    /// A submission started with this idempotency key.
    Sending(String),
    /// The server refused or the request failed; the key stays for a retry.
    Failed(String),
    /// The run was created.
    Sent,
    /// The person opened or closed the settings section.
    SettingsOpen(bool),
    /// The live connection came back after a drop: a failure from the outage is stale.
    Reconnected,
}

impl Form {
    /// An empty form with the last used settings.
    pub fn from_settings(settings: &Settings) -> Form {
        Form {
            model_id: settings.model_id.clone().unwrap_or_default(),
            system: settings.system.clone().unwrap_or_default(),
            max_tokens: settings.max_tokens.map(|n| n.to_string()).unwrap_or_default(),
            temperature: settings.temperature.map(format::temperature).unwrap_or_default(),
            ..Form::default()
        }
    }

    /// A form holding a run's input, to be changed and sent as a new run linked to it; the
    /// settings are open, since they are usually what is being changed.
    pub fn from_run(run: &RunDetail) -> Form {
        Form {
            prompt: run.prompt.clone(),
            model_id: run.model_id.clone(),
            system: run.system.clone().unwrap_or_default(),
            max_tokens: run.max_tokens.to_string(),
            temperature: run.temperature.map(format::temperature).unwrap_or_default(),
            replay_of: Some(run.id),
            settings_open: true,
            ..Form::default()
        }
    }

    /// Validates the input and builds the request body, or says which field to fix.
    pub fn request(&self, limits: Option<&ApiLimits>) -> Result<SubmitRun, FormError> {
        let error = |field, message: String| Err(FormError { field, message });
        if self.prompt.trim().is_empty() {
            return error(Field::Prompt, "Write a prompt first.".into());
        }
        if let Some(limits) = limits
            && self.prompt.len() > limits.max_prompt_bytes
        {
            return error(
                Field::Prompt,
                format!("The prompt is {} bytes; the limit is {}.", self.prompt.len(), limits.max_prompt_bytes),
            );
        }
        let max_tokens = match self.max_tokens.trim() {
            "" => None,
            text => match text.parse::<u32>() {
                Ok(n) if n >= 1 && limits.is_none_or(|l| n <= l.max_tokens) => Some(n),
                _ => {
                    let most = limits.map_or(String::new(), |l| format!(" up to {}", l.max_tokens));
                    return error(Field::MaxTokens, format!("Max tokens must be a whole number from 1{most}."));
                }
            },
        };
        let temperature = match self.temperature.trim() {
            "" => None,
            text => match format::parse_temperature(text) {
                Some(t) => Some(t),
                None => return error(Field::Temperature, "Temperature must be a number from 0 to 1.".into()),
            },
        };
        let optional = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        Ok(SubmitRun {
            prompt: self.prompt.clone(),
            model_id: optional(&self.model_id),
            system: optional(&self.system),
            max_tokens,
            temperature,
            replay_of: self.replay_of,
        })
    }

    fn field_mut(&mut self, field: Field) -> &mut String {
        match field {
            Field::Prompt => &mut self.prompt,
            Field::Model => &mut self.model_id,
            Field::System => &mut self.system,
            Field::MaxTokens => &mut self.max_tokens,
            Field::Temperature => &mut self.temperature,
        }
    }
}

impl Reducible for Form {
    type Action = FormAction;

    fn reduce(self: Rc<Self>, action: FormAction) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            FormAction::Defaults(defaults) => {
                if next.model_id.is_empty() {
                    next.model_id = defaults.model_id;
                }
                if next.max_tokens.is_empty() {
                    next.max_tokens = defaults.max_tokens.to_string();
                }
            }
            FormAction::Edit(field, value) => {
                if *next.field_mut(field) == value {
                    return self;
                }
                *next.field_mut(field) = value;
                next.key = None;
                if next.error.as_ref().is_some_and(|e| e.field == field) {
                    next.error = None;
                }
            }
            FormAction::Invalid(error) => {
                next.settings_open |= error.field.is_setting();
                next.error = Some(error);
                next.failure = None;
                next.refusals += 1;
            }
            FormAction::Sending(key) => {
                next.status = Status::Sending;
                next.error = None;
                next.failure = None;
                next.key = Some(key);
            }
            FormAction::Failed(message) => {
                next.status = Status::Idle;
                next.failure = Some(message);
            }
            FormAction::Sent => {
                next.status = Status::Idle;
                next.key = None;
            }
            FormAction::SettingsOpen(open) => {
                if next.settings_open == open {
                    return self;
                }
                next.settings_open = open;
            }
            FormAction::Reconnected => {
                if next.failure.is_none() {
                    return self;
                }
                next.failure = None;
            }
        }
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ApiLimits {
        ApiLimits { max_body_bytes: 1_000, max_prompt_bytes: 10, max_tokens: 4_096 }
    }

    fn form(prompt: &str) -> Form {
        Form { prompt: prompt.into(), ..Form::default() }
    }

    fn reduce(state: Form, actions: impl IntoIterator<Item = FormAction>) -> Form {
        let mut state = Rc::new(state);
        for action in actions {
            state = state.reduce(action);
        }
        (*state).clone()
    }

    #[test]
    fn an_empty_or_blank_prompt_is_refused_before_any_request() {
        for prompt in ["", "   \n\t"] {
            let err = form(prompt).request(None).expect_err("blank prompt refused");
            assert_eq!(err.field, Field::Prompt);
            assert_eq!(err.message, "Write a prompt first.");
        }
    }

    #[test]
    fn limits_from_the_server_are_checked() {
        assert_eq!(form("01234567890").request(Some(&limits())).map_err(|e| e.field), Err(Field::Prompt));
        let too_many = Form { max_tokens: "5000".into(), ..form("hi") };
        assert_eq!(too_many.request(Some(&limits())).map_err(|e| e.field), Err(Field::MaxTokens));
        let zero = Form { max_tokens: "0".into(), ..form("hi") };
        assert_eq!(zero.request(None).map_err(|e| e.field), Err(Field::MaxTokens));
        let hot = Form { temperature: "1.5".into(), ..form("hi") };
        assert_eq!(hot.request(None).map_err(|e| e.field), Err(Field::Temperature));
    }

    #[test]
    fn blank_optional_fields_are_left_to_the_server() {
        let request =
            Form { model_id: " ".into(), system: "".into(), ..form("hi") }.request(Some(&limits())).expect("valid");
        assert_eq!(request, SubmitRun { prompt: "hi".into(), ..SubmitRun::default() });
        let full = Form {
            model_id: " m ".into(),
            system: "be brief".into(),
            max_tokens: "64".into(),
            temperature: "0.5".into(),
            ..form("hi")
        }
        .request(None)
        .expect("valid");
        assert_eq!(full.model_id.as_deref(), Some("m"));
        assert_eq!(full.system.as_deref(), Some("be brief"));
        assert_eq!(full.max_tokens, Some(64));
        assert_eq!(full.temperature, Some(0.5));
    }

    #[test]
    fn defaults_fill_only_untouched_fields() {
        let defaults =
            Defaults { model_id: "claude".into(), max_tokens: 512, retries: 2, stream_idle_timeout_ms: 30_000 };
        let state =
            reduce(Form::default(), [FormAction::Edit(Field::Model, "mine".into()), FormAction::Defaults(defaults)]);
        assert_eq!(state.model_id, "mine");
        assert_eq!(state.max_tokens, "512");
    }

    #[test]
    fn a_failed_submission_keeps_its_key_until_the_input_changes() {
        let failed = reduce(form("hi"), [FormAction::Sending("k1".into()), FormAction::Failed("offline".into())]);
        assert_eq!(failed.status, Status::Idle);
        assert_eq!(failed.key.as_deref(), Some("k1"));
        assert_eq!(failed.failure.as_deref(), Some("offline"));
        assert_eq!(failed.error, None, "a network failure puts no field at fault");
        let edited = reduce(failed, [FormAction::Edit(Field::Prompt, "hi!".into())]);
        assert_eq!(edited.key, None);
        let sent = reduce(form("x"), [FormAction::Sending("k2".into()), FormAction::Sent]);
        assert_eq!(sent.key, None);
    }

    #[test]
    fn a_failure_from_an_outage_is_cleared_once_reconnected_and_the_key_kept_for_the_retry() {
        let failed = reduce(form("hi"), [FormAction::Sending("k1".into()), FormAction::Failed("offline".into())]);
        let back = reduce(failed, [FormAction::Reconnected]);
        assert_eq!(back.failure, None);
        assert_eq!(back.key.as_deref(), Some("k1"), "a retry must not create a second run");
    }

    #[test]
    fn editing_the_field_in_error_clears_the_error() {
        let state = reduce(
            Form::default(),
            [
                FormAction::Invalid(FormError { field: Field::Prompt, message: "Write a prompt first.".into() }),
                FormAction::Edit(Field::Prompt, "h".into()),
            ],
        );
        assert_eq!(state.error, None);
    }

    #[test]
    fn a_refused_setting_opens_the_section_and_it_stays_open_while_the_field_is_fixed() {
        let refused = Form { max_tokens: "0".into(), ..form("hi") };
        let error = refused.request(None).expect_err("0 is refused");
        let state = reduce(refused, [FormAction::Invalid(error)]);
        assert!(state.settings_open);
        assert_eq!(state.refusals, 1);
        assert_eq!(state.error.as_ref().map(|e| e.field), Some(Field::MaxTokens));
        let fixed = reduce(state, [FormAction::Edit(Field::MaxTokens, "5".into())]);
        assert_eq!(fixed.error, None);
        assert!(fixed.settings_open, "the section does not collapse under the typing");
        let fixed = reduce(fixed, [FormAction::Edit(Field::MaxTokens, "512".into())]);
        assert_eq!(fixed.request(None).map(|r| r.max_tokens), Ok(Some(512)));
        let closed = reduce(fixed, [FormAction::SettingsOpen(false)]);
        assert!(!closed.settings_open);
    }

    #[test]
    fn a_refused_prompt_leaves_the_settings_as_they_were() {
        let state = reduce(
            Form::default(),
            [FormAction::Invalid(FormError { field: Field::Prompt, message: "Write a prompt first.".into() })],
        );
        assert!(!state.settings_open);
    }

    #[test]
    fn a_form_made_from_a_run_carries_its_input_and_links_to_it() {
        let created = common::Event {
            run_id: RunId(uuid::Uuid::nil()),
            seq: 1,
            ts: chrono::DateTime::UNIX_EPOCH,
            kind: common::EventKind::RunCreated {
                prompt: "Explain retries".into(),
                model_id: "m".into(),
                system: Some("be brief".into()),
                max_tokens: 12,
                temperature: Some(0.2),
                max_attempts: 3,
                replay_of: None,
                batch_id: None,
            },
        };
        let run = RunDetail::from_created(&created).expect("a created event");
        let form = Form::from_run(&run);
        assert!(form.settings_open);
        let request = form.request(None).expect("a run's own input is valid");
        assert_eq!(
            request,
            SubmitRun {
                prompt: "Explain retries".into(),
                model_id: Some("m".into()),
                system: Some("be brief".into()),
                max_tokens: Some(12),
                temperature: Some(0.2),
                replay_of: Some(run.id),
            }
        );
    }

    #[test]
    fn stored_settings_fill_the_form_and_the_server_defaults_only_what_they_leave_empty() {
        let stored = Settings { model_id: Some("mine".into()), system: None, max_tokens: None, temperature: Some(0.5) };
        let defaults = Defaults { model_id: "server".into(), max_tokens: 512, retries: 2, stream_idle_timeout_ms: 1 };
        let state = reduce(Form::from_settings(&stored), [FormAction::Defaults(defaults)]);
        assert_eq!((state.model_id.as_str(), state.max_tokens.as_str()), ("mine", "512"));
        assert_eq!(state.temperature, "0.5");
        assert_eq!(state.replay_of, None);
    }
}
