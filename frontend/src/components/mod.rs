//! The widgets, one per file; pages (`home`, `run_page`, `not_found`) compose the rest.

mod badge;
mod banner;
mod connection;
mod fault_panel;
mod header;
mod history;
mod home;
mod logs;
mod not_found;
mod response;
mod run_page;
mod submit_form;
mod timeline;

pub use badge::StateBadge;
pub use banner::EmulatorBanner;
pub use connection::ConnectionIndicator;
pub use fault_panel::FaultPanel;
pub use header::AppHeader;
pub use history::HistoryPanel;
pub use home::HomePage;
pub use logs::LogPanel;
pub use not_found::NotFound;
pub use response::ResponsePanel;
pub use run_page::RunPage;
pub use submit_form::SubmitForm;
pub use timeline::TaskTimeline;

use wasm_bindgen::JsCast;
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};

/// The current value of the input, textarea or select an event came from.
fn target_value(event: &yew::Event) -> String {
    let Some(target) = event.target() else { return String::new() };
    if let Some(input) = target.dyn_ref::<HtmlInputElement>() {
        input.value()
    } else if let Some(area) = target.dyn_ref::<HtmlTextAreaElement>() {
        area.value()
    } else if let Some(select) = target.dyn_ref::<HtmlSelectElement>() {
        select.value()
    } else {
        String::new()
    }
}

/// Moves keyboard focus to the element with this id, if it exists.
pub(crate) fn focus(id: &str) {
    if let Some(element) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id))
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
    {
        // Focus can fail on hidden elements; there is nothing better to do then.
        let _ = element.focus();
    }
}
