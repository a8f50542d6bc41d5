//! A field's own error message, placed right after the field it is about.

use yew::prelude::*;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct FieldErrorProps {
    /// The element id the field's `aria-describedby` points at.
    pub id: AttrValue,
    /// The message; nothing is rendered without one.
    pub message: Option<AttrValue>,
}

/// The message, announced when it appears; the field itself carries `aria-invalid`.
#[component]
pub fn FieldError(props: &FieldErrorProps) -> Html {
    match &props.message {
        Some(message) => html! {
            <p id={ props.id.clone() } class="field-error" data-testid="field-error" role="alert">{ message.clone() }</p>
        },
        None => Html::default(),
    }
}
