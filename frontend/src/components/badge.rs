//! A state badge: the state's name, coloured by what it means.
//!
//! A plain function rather than a component, like the other widgets without hooks: each
//! component type costs the Wasm its own copy of Yew's lifecycle code (about 250 bytes gzipped).

use yew::prelude::*;

/// Words for a state name: `AwaitingRetry` reads as "Awaiting retry".
fn label(state: &str) -> String {
    let mut out = String::with_capacity(state.len() + 2);
    for (i, c) in state.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            out.push(' ');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Shows a run, task or item state by its wire name (`Running`, `AwaitingRetry`, ...);
/// `data-state` keeps that name for tests and styling. `id` is for the one badge a page is
/// about, `testid` only for the badges the browser tests look for.
pub fn state_badge(state: &'static str, id: Option<&'static str>, testid: Option<&'static str>) -> Html {
    let class = format!("badge badge-{}", state.to_ascii_lowercase());
    html! {
        <span { id } data-testid={ testid } { class } data-state={ state }>{ label(state) }</span>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn camel_case_states_read_as_words() {
        assert_eq!(super::label("AwaitingRetry"), "Awaiting retry");
        assert_eq!(super::label("Completed"), "Completed");
    }
}
