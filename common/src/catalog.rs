//! The model catalog (`GET /api/models`): the Claude models Bedrock offers, with their limits,
//! prices and lifecycle, and the arithmetic both sides need from it (which entry an id names,
//! whether it may still be called, what a call cost).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::Usage;

/// Prefixes of cross-region inference profile ids: `us.anthropic.…` routes `anthropic.…`.
pub const PROFILE_PREFIXES: [&str; 6] = ["us.", "eu.", "apac.", "global.", "jp.", "au."];

/// Where a model stands in Bedrock's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Lifecycle {
    /// Offered and maintained.
    Active,
    /// Still callable, with an end-of-life date set: time to move to its replacement.
    Legacy,
    /// No longer callable: Bedrock refuses every request.
    EndOfLife,
}

/// A model's lifecycle as published, with its dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LifecycleDates {
    pub status: Lifecycle,
    #[serde(default, deserialize_with = "crate::time::deserialize_date_option")]
    pub legacy_since: Option<NaiveDate>,
    #[serde(default, deserialize_with = "crate::time::deserialize_date_option")]
    pub end_of_life: Option<NaiveDate>,
    /// The model id the publisher recommends instead.
    pub replacement: Option<String>,
}

/// On-demand prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Price {
    pub input_per_million_usd: f64,
    pub output_per_million_usd: f64,
}

impl Price {
    /// The estimated cost of a call that used `usage`, in US dollars.
    pub fn cost(&self, usage: Usage) -> f64 {
        self.cost_of(u64::from(usage.input_tokens), u64::from(usage.output_tokens))
    }

    /// The estimated cost of so many input and output tokens (one call's, or many summed).
    pub fn cost_of(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_per_million_usd + output_tokens as f64 * self.output_per_million_usd)
            / 1_000_000.0
    }
}

/// A model as the catalog lists it: its ids, limits, price and lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogModel {
    /// The base model id, as Bedrock names it (`anthropic.claude-3-haiku-20240307-v1:0`).
    pub id: String,
    pub name: String,
    /// Cross-region inference profile ids that route to this model.
    #[serde(default)]
    pub inference_profiles: Vec<String>,
    /// On-demand calls must name an inference profile: the base id alone is refused.
    #[serde(default)]
    pub requires_profile: bool,
    pub context_window: Option<u32>,
    pub max_output_tokens: Option<u32>,
    pub price: Option<Price>,
    /// Where the price was read, when it is not Bedrock's own on-demand price.
    #[serde(default)]
    pub price_source: Option<String>,
    pub lifecycle: LifecycleDates,
    #[serde(default)]
    pub notes: Option<String>,
}

impl CatalogModel {
    /// The lifecycle status on `today`: a Legacy model whose end-of-life date has come is
    /// already refused by Bedrock, whatever the catalog file was last told.
    pub fn status_on(&self, today: NaiveDate) -> Lifecycle {
        match self.lifecycle.end_of_life {
            Some(end) if end <= today => Lifecycle::EndOfLife,
            _ => self.lifecycle.status,
        }
    }

    /// The profile to offer for an on-demand call, when the base id cannot be called alone:
    /// the US profile if there is one, else the first listed.
    pub fn preferred_profile(&self) -> Option<&str> {
        let profiles = &self.inference_profiles;
        profiles.iter().find(|p| p.starts_with("us.")).or(profiles.first()).map(String::as_str)
    }
}

/// A page the catalog's figures were read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogSource {
    pub title: String,
    pub url: String,
    #[serde(deserialize_with = "crate::time::deserialize_date")]
    pub read_on: NaiveDate,
    pub used_for: String,
}

/// The whole catalog, as the data file holds it and `GET /api/models` serves it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Catalog {
    #[serde(deserialize_with = "crate::time::deserialize_date")]
    pub read_on: NaiveDate,
    pub sources: Vec<CatalogSource>,
    pub models: Vec<CatalogModel>,
}

impl Catalog {
    /// The entry a model id names: its base id, one of its profiles, or a profile id the
    /// file does not list (`global.` + a known base id). `None` for an id the catalog does not
    /// know, which still works, unpriced.
    pub fn find(&self, id: &str) -> Option<&CatalogModel> {
        let exact = self.models.iter().find(|m| m.id == id || m.inference_profiles.iter().any(|p| p == id));
        exact.or_else(|| {
            let base = PROFILE_PREFIXES.iter().find_map(|prefix| id.strip_prefix(prefix))?;
            self.models.iter().find(|m| m.id == base)
        })
    }

    /// The estimated cost of a call to `model_id` that used `usage`; `None` when the model or
    /// its price is unknown.
    pub fn cost(&self, model_id: &str, usage: Usage) -> Option<f64> {
        Some(self.find(model_id)?.price?.cost(usage))
    }
}

/// Why a model id may not be used for a new run, checked before any call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub id: String,
    pub on: Option<NaiveDate>,
    pub replacement: Option<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "model `{}` reached its end of life on Bedrock", self.id)?;
        if let Some(on) = self.on {
            write!(f, " on {on}")?;
        }
        f.write_str(" and can no longer be called")?;
        match &self.replacement {
            Some(replacement) => write!(f, "; use `{replacement}` instead"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Refusal {}

impl Catalog {
    /// Whether a new run may use `model_id` on `today`: not once Bedrock's end-of-life date
    /// for it has come. Unknown ids may. A model that needs an inference profile is not
    /// refused by its base id, since the catalog's word on that is not always Bedrock's own:
    /// the model picker offers the profile instead.
    pub fn check(&self, model_id: &str, today: NaiveDate) -> Result<(), Refusal> {
        let Some(model) = self.find(model_id) else { return Ok(()) };
        if model.status_on(today) == Lifecycle::EndOfLife {
            let replacement = model.lifecycle.replacement.clone();
            return Err(Refusal { id: model_id.to_owned(), on: model.lifecycle.end_of_life, replacement });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().expect("date")
    }

    fn model(id: &str, status: Lifecycle, end_of_life: Option<&str>) -> CatalogModel {
        CatalogModel {
            id: id.into(),
            name: id.into(),
            inference_profiles: vec![format!("eu.{id}"), format!("us.{id}")],
            requires_profile: false,
            context_window: Some(200_000),
            max_output_tokens: Some(4096),
            price: Some(Price { input_per_million_usd: 3.0, output_per_million_usd: 15.0 }),
            price_source: None,
            lifecycle: LifecycleDates {
                status,
                legacy_since: None,
                end_of_life: end_of_life.map(date),
                replacement: Some("anthropic.new".into()),
            },
            notes: None,
        }
    }

    fn catalog(models: Vec<CatalogModel>) -> Catalog {
        Catalog { read_on: date("2026-12-02"), sources: Vec::new(), models }
    }

    #[test]
    fn cost_is_tokens_times_price_per_million() {
        let price = Price { input_per_million_usd: 3.0, output_per_million_usd: 15.0 };
        // 1,200 × $3/M = $0.0036; 350 × $15/M = $0.00525.
        let cost = price.cost(Usage { input_tokens: 1200, output_tokens: 350 });
        assert!((cost - 0.008_85).abs() < 1e-12, "{cost}");
    }

    #[test]
    fn a_model_is_found_by_its_id_a_listed_profile_or_any_region_prefix() {
        let catalog = catalog(vec![model("anthropic.a", Lifecycle::Active, None)]);
        for id in ["anthropic.a", "us.anthropic.a", "eu.anthropic.a", "global.anthropic.a", "apac.anthropic.a"] {
            assert_eq!(catalog.find(id).map(|m| m.id.as_str()), Some("anthropic.a"), "{id}");
        }
        assert!(catalog.find("anthropic.b").is_none());
        assert!(catalog.find("mars.anthropic.a").is_none());
        assert_eq!(catalog.cost("anthropic.b", Usage { input_tokens: 1, output_tokens: 1 }), None, "unknown: unpriced");
    }

    #[test]
    fn a_legacy_model_past_its_end_of_life_date_is_refused_with_its_replacement() {
        let catalog = catalog(vec![model("anthropic.old", Lifecycle::Legacy, Some("2026-06-01"))]);
        assert_eq!(catalog.check("anthropic.old", date("2026-05-31")), Ok(()), "the day before");
        let refusal = catalog.check("us.anthropic.old", date("2026-06-01")).expect_err("from that day on");
        assert_eq!(
            refusal.to_string(),
            "model `us.anthropic.old` reached its end of life on Bedrock on 2026-06-01 and can no longer be called; \
             use `anthropic.new` instead"
        );
    }

    #[test]
    fn a_profile_only_model_offers_its_us_profile_else_its_first() {
        let mut model = model("anthropic.p", Lifecycle::Active, None);
        assert_eq!(model.preferred_profile(), Some("us.anthropic.p"));
        model.inference_profiles.retain(|p| !p.starts_with("us."));
        assert_eq!(model.preferred_profile(), Some("eu.anthropic.p"));
    }
}
