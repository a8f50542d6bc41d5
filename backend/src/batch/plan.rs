//! A batch request checked and turned into its items before anything is stored: the list of
//! prompts, or a template filled in with each row's values. Every refusal names the item (and,
//! for a template, the placeholder) so a person can find the line to fix.

use std::collections::{BTreeMap, BTreeSet};

use common::{SubmitBatch, SubmitRun};

use crate::submission::{Policy, SubmitError, check_prompt, validate};

/// How big a batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_items: usize,
}

/// A batch ready to store: the settings every item shares and the items.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub model_id: String,
    pub system: Option<String>,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    pub items: Vec<(String, Option<BTreeMap<String, String>>)>,
}

/// Why a batch was refused; the message is for the person who sent it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    TooLarge(String),
}

/// How a refusal names an item: by its place in a JSON request (`item 3`, or `row 3` of a
/// template's values), or by the line of an uploaded file it came from.
#[derive(Debug, Clone, Copy)]
pub enum ItemNames<'a> {
    Index,
    Lines(&'a [usize]),
}

impl ItemNames<'_> {
    fn item(self, index: usize) -> String {
        self.name("item", index)
    }

    fn row(self, index: usize) -> String {
        self.name("row", index)
    }

    fn name(self, kind: &str, index: usize) -> String {
        match self {
            ItemNames::Lines(lines) if index < lines.len() => format!("line {}", lines[index]),
            _ => format!("{kind} {index}"),
        }
    }
}

pub fn plan(
    request: SubmitBatch,
    policy: &Policy,
    limits: BatchLimits,
    names: ItemNames<'_>,
) -> Result<Planned, PlanError> {
    let SubmitBatch { prompts, template, rows, model_id, system, max_tokens, temperature } = request;
    let items: Vec<(String, Option<BTreeMap<String, String>>)> = match (prompts, template, rows) {
        (Some(prompts), None, None) => prompts.into_iter().map(|prompt| (prompt, None)).collect(),
        (None, Some(template), Some(rows)) => {
            let placeholders = placeholders(&template)?;
            let mut items = Vec::with_capacity(rows.len());
            for (index, values) in rows.into_iter().enumerate() {
                let prompt = fill(&template, &placeholders, &values)
                    .map_err(|e| PlanError::Invalid(format!("{}: {e}", names.row(index))))?;
                items.push((prompt, Some(values)));
            }
            items
        }
        (None, Some(_), None) => return Err(PlanError::Invalid("a template needs `rows` of values".into())),
        (None, None, Some(_)) => return Err(PlanError::Invalid("`rows` need a `template` to fill".into())),
        (None, None, None) => return Err(PlanError::Invalid("give `prompts`, or a `template` and its `rows`".into())),
        (Some(_), _, _) => return Err(PlanError::Invalid("give `prompts` or a `template`, not both".into())),
    };
    if items.is_empty() {
        return Err(PlanError::Invalid("the batch has no items".into()));
    }
    if items.len() > limits.max_items {
        return Err(PlanError::TooLarge(format!(
            "the batch has {} items; the limit is {} (--max-batch-items)",
            items.len(),
            limits.max_items
        )));
    }
    // Each item is checked as the run it becomes, so nothing is refused after it was accepted:
    // the settings once, with the first prompt, then every other prompt on its own.
    let item_error = |index: usize| {
        move |error: SubmitError| match error {
            SubmitError::TooLarge(message) => PlanError::TooLarge(format!("{}: {message}", names.item(index))),
            other => PlanError::Invalid(format!("{}: {other}", names.item(index))),
        }
    };
    let first = SubmitRun { prompt: items[0].0.clone(), model_id, system, max_tokens, temperature, replay_of: None };
    let first = validate(policy, first).map_err(item_error(0))?;
    for (index, (prompt, _)) in items.iter().enumerate().skip(1) {
        check_prompt(policy, prompt).map_err(item_error(index))?;
    }
    Ok(Planned {
        model_id: first.model_id,
        system: first.system,
        max_tokens: first.max_tokens,
        temperature: first.temperature,
        items,
    })
}

/// The `{{name}}` placeholders of a template (spaces inside the braces allowed).
fn placeholders(template: &str) -> Result<BTreeSet<String>, PlanError> {
    let mut names = BTreeSet::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end =
            after.find("}}").ok_or_else(|| PlanError::Invalid("the template has a `{{` without its `}}`".into()))?;
        let name = after[..end].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(PlanError::Invalid(format!(
                "`{{{{{}}}}}` is not a placeholder: names are letters, digits and _",
                &after[..end]
            )));
        }
        names.insert(name.to_owned());
        rest = &after[end + 2..];
    }
    if names.is_empty() {
        return Err(PlanError::Invalid("the template has no `{{name}}` placeholder".into()));
    }
    Ok(names)
}

/// The template with the row's values in its placeholders; the refusal says which value is
/// missing or not wanted.
fn fill(template: &str, names: &BTreeSet<String>, values: &BTreeMap<String, String>) -> Result<String, String> {
    if let Some(missing) = names.iter().find(|name| !values.contains_key(*name)) {
        return Err(format!("no value for `{missing}`"));
    }
    if let Some(extra) = values.keys().find(|key| !names.contains(*key)) {
        return Err(format!("`{extra}` is not a placeholder of the template"));
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").unwrap_or(after.len());
        if let Some(value) = values.get(after[..end].trim()) {
            out.push_str(value);
        }
        rest = after.get(end + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use common::{ApiLimits, Defaults};

    use super::*;

    fn policy() -> Policy {
        Policy {
            defaults: Defaults {
                model_id: "anthropic.claude-3-haiku-20240307-v1:0".into(),
                max_tokens: 256,
                retries: 2,
                stream_idle_timeout_ms: 1_000,
            },
            limits: ApiLimits { max_body_bytes: 1 << 20, max_prompt_bytes: 100, max_tokens: 4_096 },
            max_concurrent_runs: 10,
            max_per_minute: 0,
            catalog: std::sync::Arc::default(),
        }
    }

    const LIMITS: BatchLimits = BatchLimits { max_items: 3 };

    fn rows(rows: &[&[(&str, &str)]]) -> Option<Vec<BTreeMap<String, String>>> {
        Some(rows.iter().map(|row| row.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).collect())
    }

    fn refused(request: SubmitBatch) -> String {
        plan(request, &policy(), LIMITS, ItemNames::Index).expect_err("refused").to_string()
    }

    #[test]
    fn a_template_is_filled_once_per_row_and_keeps_the_values() {
        let planned = plan(
            SubmitBatch {
                template: Some("Summarise {{ doc }} in {{n}} words; {{n}} at most.".into()),
                rows: rows(&[&[("doc", "A"), ("n", "5")], &[("doc", "B"), ("n", "7")]]),
                max_tokens: Some(64),
                ..SubmitBatch::default()
            },
            &policy(),
            LIMITS,
            ItemNames::Index,
        )
        .expect("planned");
        let prompts: Vec<&str> = planned.items.iter().map(|(prompt, _)| prompt.as_str()).collect();
        assert_eq!(prompts, ["Summarise A in 5 words; 5 at most.", "Summarise B in 7 words; 7 at most."]);
        assert_eq!(planned.items[1].1.as_ref().and_then(|v| v.get("doc")).map(String::as_str), Some("B"));
        assert_eq!(planned.max_tokens, 64);
        assert_eq!(planned.model_id, "anthropic.claude-3-haiku-20240307-v1:0", "the server's default");
    }

    #[test]
    fn a_row_missing_a_value_or_with_an_unknown_one_is_named() {
        let template = || Some("Hello {{name}} from {{place}}".to_owned());
        let missing = refused(SubmitBatch {
            template: template(),
            rows: rows(&[&[("name", "a"), ("place", "b")], &[("name", "c")]]),
            ..SubmitBatch::default()
        });
        assert_eq!(missing, "row 1: no value for `place`");
        let extra = refused(SubmitBatch {
            template: template(),
            rows: rows(&[&[("name", "a"), ("place", "b"), ("planet", "x")]]),
            ..SubmitBatch::default()
        });
        assert_eq!(extra, "row 0: `planet` is not a placeholder of the template");
    }

    #[test]
    fn an_item_the_run_checks_would_refuse_is_named_before_anything_runs() {
        let prompts = |list: &[&str]| Some(list.iter().map(|p| (*p).to_owned()).collect());
        assert_eq!(
            refused(SubmitBatch { prompts: prompts(&["ok", "  "]), ..SubmitBatch::default() }),
            "item 1: prompt must not be empty"
        );
        assert!(
            refused(SubmitBatch { prompts: prompts(&[&"x".repeat(101)]), ..SubmitBatch::default() })
                .starts_with("item 0: prompt is 101 bytes")
        );
        assert_eq!(
            refused(SubmitBatch { prompts: prompts(&["a", "b"]), max_tokens: Some(0), ..SubmitBatch::default() }),
            "item 0: max_tokens must be between 1 and 4096"
        );
        assert_eq!(
            refused(SubmitBatch { prompts: prompts(&["a", "b", "c", "d"]), ..SubmitBatch::default() }),
            "the batch has 4 items; the limit is 3 (--max-batch-items)"
        );
        assert_eq!(refused(SubmitBatch { prompts: prompts(&[]), ..SubmitBatch::default() }), "the batch has no items");
    }

    #[test]
    fn the_request_must_say_what_to_run_exactly_one_way() {
        assert_eq!(refused(SubmitBatch::default()), "give `prompts`, or a `template` and its `rows`");
        assert_eq!(
            refused(SubmitBatch { template: Some("{{a}}".into()), ..SubmitBatch::default() }),
            "a template needs `rows` of values"
        );
        assert_eq!(
            refused(SubmitBatch { template: Some("no holes".into()), rows: rows(&[&[]]), ..SubmitBatch::default() }),
            "the template has no `{{name}}` placeholder"
        );
        assert_eq!(
            refused(SubmitBatch { template: Some("{{a b}}".into()), rows: rows(&[&[]]), ..SubmitBatch::default() }),
            "`{{a b}}` is not a placeholder: names are letters, digits and _"
        );
    }
}
