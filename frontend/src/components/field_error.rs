//! A field's own error message, placed right after the field it is about.

use yew::prelude::*;

/// The message, announced when it appears, under `id` (what the field's `aria-describedby`
/// points at); nothing without a message. The field itself carries `aria-invalid`.
pub fn field_error(id: &'static str, message: Option<AttrValue>) -> Html {
    match message {
        Some(message) => html! {
            <p { id } class="field-error" data-testid="field-error" role="alert">{ message }</p>
        },
        None => Html::default(),
    }
}
