//! The model ids the form offers: the server's default first, then current Claude ids on
//! Bedrock. Only suggestions: the field takes any id, since Bedrock adds models and inference
//! profiles faster than this list changes.

/// Claude ids on Bedrock worth offering, newest first; inference profile ids (`us.`) are what
/// newer models need.
pub const KNOWN_MODELS: [&str; 6] = [
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic.claude-3-sonnet-20240229-v1:0",
];

/// The ids for the model field's `<datalist>`: the server's default, then [`KNOWN_MODELS`],
/// each once.
pub fn suggestions(server_default: Option<&str>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::with_capacity(KNOWN_MODELS.len() + 1);
    for id in server_default.into_iter().chain(KNOWN_MODELS) {
        let id = id.trim();
        if !id.is_empty() && !ids.iter().any(|have| have == id) {
            ids.push(id.to_owned());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_default_comes_first_and_nothing_twice() {
        let ids = suggestions(Some("custom.model-v1"));
        assert_eq!(ids[0], "custom.model-v1");
        assert_eq!(ids.len(), KNOWN_MODELS.len() + 1);
        let known = suggestions(Some("anthropic.claude-3-haiku-20240307-v1:0"));
        assert_eq!(known[0], "anthropic.claude-3-haiku-20240307-v1:0");
        assert_eq!(known.len(), KNOWN_MODELS.len());
        assert_eq!(suggestions(None).len(), KNOWN_MODELS.len());
        assert_eq!(suggestions(Some("  ")).len(), KNOWN_MODELS.len());
    }
}
