//! The model catalog the server prices runs with and checks models against: the data file
//! built into the binary (`backend/catalog/models.json`, with its sources), or one the operator
//! names with `--model-catalog`.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use common::Catalog;

/// Read at build time, so a binary always has a catalog even with no file beside it.
const BUILT_IN: &str = include_str!("../catalog/models.json");

/// Why a catalog file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read the model catalog {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the model catalog {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the model catalog {path} names `{replacement}` as the replacement of `{model}`, which it does not list")]
    UnknownReplacement { path: PathBuf, model: String, replacement: String },
}

/// The operator's catalog at `path`, or the built-in one.
pub fn load(path: Option<&Path>) -> Result<Catalog, CatalogError> {
    let (text, path) = match path {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| CatalogError::Read { path: path.to_owned(), source })?;
            (std::borrow::Cow::Owned(text), path.to_owned())
        }
        None => (std::borrow::Cow::Borrowed(BUILT_IN), PathBuf::from("(built in)")),
    };
    let catalog: Catalog =
        serde_json::from_str(&text).map_err(|source| CatalogError::Parse { path: path.clone(), source })?;
    for model in &catalog.models {
        if let Some(replacement) = &model.lifecycle.replacement
            && catalog.find(replacement).is_none()
        {
            let (model, replacement) = (model.id.clone(), replacement.clone());
            return Err(CatalogError::UnknownReplacement { path, model, replacement });
        }
    }
    Ok(catalog)
}

/// The catalog as served on `today`: each model's status is the one that holds that day, so a
/// Legacy model whose end-of-life date has passed shows as such.
pub fn as_of(catalog: &Catalog, today: NaiveDate) -> Catalog {
    let mut served = catalog.clone();
    for model in &mut served.models {
        model.lifecycle.status = model.status_on(today);
    }
    served
}

/// Today in UTC, the calendar lifecycle dates are read in.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

#[cfg(test)]
mod tests {
    use common::Lifecycle;

    use super::*;

    #[test]
    fn the_built_in_catalog_loads_and_cites_its_sources() {
        let catalog = load(None).expect("built-in catalog");
        assert!(!catalog.sources.is_empty(), "every figure comes from a cited page");
        assert!(catalog.sources.iter().all(|s| s.url.starts_with("https://")));
        assert!(catalog.models.len() >= 10, "Claude 3 to 4.5 at least");
    }

    #[test]
    fn a_catalog_file_naming_an_unlisted_replacement_is_refused() {
        let dir = std::env::temp_dir().join(format!("catalog-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("models.json");
        let file = serde_json::json!({
            "read_on": "2026-12-02",
            "sources": [],
            "models": [{
                "id": "anthropic.old", "name": "Old", "context_window": null, "max_output_tokens": null,
                "price": null,
                "lifecycle": { "status": "Legacy", "legacy_since": null, "end_of_life": null, "replacement": "anthropic.gone" }
            }]
        });
        std::fs::write(&path, file.to_string()).expect("write");
        let error = load(Some(&path)).expect_err("refused");
        assert!(matches!(error, CatalogError::UnknownReplacement { .. }), "{error}");
    }

    #[test]
    fn the_served_catalog_shows_a_legacy_model_as_end_of_life_from_its_date_on() {
        let catalog: Catalog = serde_json::from_value(serde_json::json!({
            "read_on": "2026-12-02",
            "sources": [],
            "models": [{
                "id": "anthropic.fading", "name": "Fading", "context_window": null, "max_output_tokens": null,
                "price": null,
                "lifecycle": { "status": "Legacy", "legacy_since": null, "end_of_life": "2027-03-01", "replacement": null }
            }]
        }))
        .expect("catalog");
        let status = |day: &str| {
            let served = as_of(&catalog, day.parse().expect("date"));
            served.find("anthropic.fading").map(|m| m.lifecycle.status)
        };
        assert_eq!(status("2027-02-28"), Some(Lifecycle::Legacy), "the day before");
        assert_eq!(status("2027-03-01"), Some(Lifecycle::EndOfLife), "from that day on");
    }
}
