//! The model catalog as the page uses it: the ids the model field offers (the server's default
//! first, then every model Bedrock still serves, by the id a call needs) and what the page says
//! about a model id (Legacy, past its end of life, or not in the catalog). The field takes any
//! id: the catalog only suggests and warns.

use std::rc::Rc;

use common::{Catalog, CatalogModel, Lifecycle, Usage};

/// The server's catalog (`GET /api/models`), shared with every page through a context; `None`
/// until it arrives (or when it could not be read: the page then offers the default alone).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogState(pub Option<Rc<Catalog>>);

impl CatalogState {
    /// The estimated cost of a call to `model_id` that used `usage`, when the catalog prices it.
    pub fn cost(&self, model_id: &str, usage: Usage) -> Option<f64> {
        self.0.as_ref()?.cost(model_id, usage)
    }
}

/// The id to offer for a model: its inference profile when calls need one.
fn offered_id(model: &CatalogModel) -> &str {
    match (model.requires_profile, model.preferred_profile()) {
        (true, Some(profile)) => profile,
        _ => &model.id,
    }
}

/// The ids for the model field's `<datalist>`: the server's default, then the catalog's models
/// that can still be called, newest first, each once.
pub fn suggestions(server_default: Option<&str>, catalog: &CatalogState) -> Vec<String> {
    let callable =
        catalog.0.iter().flat_map(|c| c.models.iter()).filter(|m| m.lifecycle.status != Lifecycle::EndOfLife);
    let mut ids: Vec<String> = Vec::new();
    for id in server_default.into_iter().chain(callable.map(offered_id)) {
        let id = id.trim();
        if !id.is_empty() && !ids.iter().any(|have| have == id) {
            ids.push(id.to_owned());
        }
    }
    ids
}

/// What the page says about a model id, when there is something to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Still served, with an end of life set or coming: move to the replacement.
    Legacy { name: String, end_of_life: Option<String>, replacement: Option<String> },
    /// No longer served: a run with it is refused.
    EndOfLife { name: String, replacement: Option<String> },
    /// Not in the catalog: it may work, but nothing is known of its lifecycle or price.
    Unknown,
}

impl Notice {
    /// What to say about `model_id`, by the catalog; nothing before the catalog arrived.
    pub fn for_model(catalog: &CatalogState, model_id: &str) -> Option<Notice> {
        let catalog = catalog.0.as_ref()?;
        let Some(model) = catalog.find(model_id.trim()) else {
            return (!model_id.trim().is_empty()).then_some(Notice::Unknown);
        };
        let (name, replacement) = (model.name.clone(), model.lifecycle.replacement.clone());
        match model.lifecycle.status {
            Lifecycle::Active => None,
            Lifecycle::Legacy => Some(Notice::Legacy {
                name,
                end_of_life: model.lifecycle.end_of_life.map(common::time::date_text),
                replacement,
            }),
            Lifecycle::EndOfLife => Some(Notice::EndOfLife { name, replacement }),
        }
    }

    /// The notice in words.
    pub fn text(&self) -> String {
        let instead = |replacement: &Option<String>| match replacement {
            Some(id) => format!(" Recommended replacement: {id}."),
            None => String::new(),
        };
        match self {
            Notice::Legacy { name, end_of_life, replacement } => {
                let until = match end_of_life {
                    Some(date) => format!(" until its end of life on {date}"),
                    None => String::new(),
                };
                format!(
                    "{name} is a Legacy model on Bedrock: still served{until}, but no longer updated.{}",
                    instead(replacement)
                )
            }
            Notice::EndOfLife { name, replacement } => {
                format!("{name} reached its end of life on Bedrock: runs with it are refused.{}", instead(replacement))
            }
            Notice::Unknown => "Not in the model catalog: it may work, but its lifecycle and price are unknown.".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> CatalogState {
        let catalog: Catalog = serde_json::from_value(serde_json::json!({
            "read_on": "2026-12-02",
            "sources": [],
            "models": [
                { "id": "anthropic.new", "name": "New", "inference_profiles": ["eu.anthropic.new", "us.anthropic.new"],
                  "requires_profile": true, "context_window": null, "max_output_tokens": null, "price": null,
                  "lifecycle": { "status": "Active", "legacy_since": null, "end_of_life": null, "replacement": null } },
                { "id": "anthropic.old", "name": "Old", "context_window": null, "max_output_tokens": null, "price": null,
                  "lifecycle": { "status": "Legacy", "legacy_since": null, "end_of_life": "2027-01-31", "replacement": "anthropic.new" } },
                { "id": "anthropic.gone", "name": "Gone", "context_window": null, "max_output_tokens": null, "price": null,
                  "lifecycle": { "status": "EndOfLife", "legacy_since": null, "end_of_life": null, "replacement": null } }
            ]
        }))
        .expect("catalog");
        CatalogState(Some(Rc::new(catalog)))
    }

    #[test]
    fn the_default_comes_first_then_callable_models_by_the_id_a_call_needs() {
        assert_eq!(
            suggestions(Some("custom.model-v1"), &catalog()),
            ["custom.model-v1", "us.anthropic.new", "anthropic.old"]
        );
        assert_eq!(
            suggestions(Some("anthropic.old"), &catalog()),
            ["anthropic.old", "us.anthropic.new"],
            "nothing twice"
        );
        assert_eq!(suggestions(Some("  "), &CatalogState::default()), Vec::<String>::new());
    }

    #[test]
    fn legacy_end_of_life_and_unknown_models_get_a_notice_active_ones_none() {
        let catalog = catalog();
        assert_eq!(Notice::for_model(&catalog, "eu.anthropic.new"), None);
        assert_eq!(
            Notice::for_model(&catalog, "anthropic.old").map(|n| n.text()).as_deref(),
            Some(
                "Old is a Legacy model on Bedrock: still served until its end of life on 2027-01-31, but no longer \
                  updated. Recommended replacement: anthropic.new."
            )
        );
        assert_eq!(
            Notice::for_model(&catalog, "anthropic.gone").map(|n| n.text()).as_deref(),
            Some("Gone reached its end of life on Bedrock: runs with it are refused.")
        );
        assert_eq!(Notice::for_model(&catalog, "my.custom-model"), Some(Notice::Unknown));
        assert_eq!(Notice::for_model(&CatalogState::default(), "anthropic.old"), None, "no catalog, nothing said");
    }
}
