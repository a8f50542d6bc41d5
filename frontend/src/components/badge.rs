//! A state badge: the state's name, coloured by what it means.

use yew::prelude::*;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct StateBadgeProps {
    /// The state's wire name (`Running`, `AwaitingRetry`, ...).
    pub state: AttrValue,
    /// An element id, for the one badge a page is about.
    #[prop_or_default]
    pub id: Option<AttrValue>,
    /// Only on the badges the browser tests look for.
    #[prop_or_default]
    pub testid: Option<AttrValue>,
}

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

/// Shows a run or task state; `data-state` keeps the exact wire name for tests and styling.
#[component]
pub fn StateBadge(props: &StateBadgeProps) -> Html {
    let class = format!("badge badge-{}", props.state.to_ascii_lowercase());
    html! {
        <span id={ props.id.clone() } data-testid={ props.testid.clone() } class={ class }
              data-state={ props.state.clone() }>
            { label(&props.state) }
        </span>
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
