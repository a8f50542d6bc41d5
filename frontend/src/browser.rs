//! The few browser APIs the app needs (clock, local time, randomness, location, clipboard,
//! downloads, local storage, form values and files, focus), kept here so every other non-component module stays pure and testable
//! natively.

use chrono::{DateTime, Utc};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{HtmlElement, HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};

/// Milliseconds since the Unix epoch, from the browser's clock.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A time in the reader's own time zone and locale, e.g. `23/11/2026, 14:05:09`.
pub fn local_time(at: DateTime<Utc>) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(at.timestamp_millis() as f64));
    String::from(date.to_locale_string("default", &JsValue::UNDEFINED))
}

/// Minutes east of UTC of the reader's time zone at `at` (daylight saving moves it).
pub fn utc_offset_min(at: DateTime<Utc>) -> i64 {
    let date = js_sys::Date::new(&JsValue::from_f64(at.timestamp_millis() as f64));
    // JavaScript counts minutes west of UTC.
    -(date.get_timezone_offset() as i64)
}

/// Offers `text` as a UTF-8 text file named `name` to download, through a `data:` link that
/// is never on the page, so no server route is needed.
pub fn download_text(name: &str, text: &str) {
    let link = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("a").ok())
        .and_then(|e| e.dyn_into::<HtmlElement>().ok());
    if let Some(link) = link {
        let url = format!("data:text/plain;charset=utf-8,{}", js_sys::encode_uri_component(text));
        // Setting attributes on a fresh, detached element cannot fail in practice.
        let _ = link.set_attribute("href", &url);
        let _ = link.set_attribute("download", name);
        link.click();
    }
}

/// Whether the viewport matches a CSS media query such as `(min-width: 1100px)`.
pub fn media_matches(query: &str) -> bool {
    web_sys::window().and_then(|w| w.match_media(query).ok().flatten()).is_some_and(|list| list.matches())
}

/// A fresh random idempotency key (128 bits, hex).
pub fn idempotency_key() -> String {
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|window| window.crypto().ok())
        .is_some_and(|crypto| crypto.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        // Without Web Crypto a key only needs to be unlikely to repeat, not secret.
        for byte in &mut bytes {
            *byte = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The page's `location.protocol` and `location.host`, for same-origin WebSocket URLs.
pub fn page_origin() -> (String, String) {
    let location = web_sys::window().map(|window| window.location());
    let protocol = location.as_ref().and_then(|l| l.protocol().ok()).unwrap_or_else(|| "http:".into());
    let host = location.and_then(|l| l.host().ok()).unwrap_or_default();
    (protocol, host)
}

/// A random fraction in `0..1`, for reconnect jitter.
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// Copies text with the async Clipboard API; it is missing outside secure contexts.
pub async fn copy_text(text: &str) -> Result<(), String> {
    let navigator = web_sys::window().ok_or("no window")?.navigator();
    let clipboard = js_sys::Reflect::get(&navigator, &JsValue::from_str("clipboard"))
        .ok()
        .filter(|value| !value.is_undefined() && !value.is_null())
        .ok_or("Copying needs a secure (https or localhost) page; select the text instead.")?;
    let clipboard: web_sys::Clipboard = clipboard.unchecked_into();
    JsFuture::from(clipboard.write_text(text)).await.map(|_| ()).map_err(|_| "The browser refused to copy.".to_owned())
}

/// The current value of the input, textarea or select an event came from (empty otherwise).
pub fn target_value(event: &web_sys::Event) -> String {
    event.target().map(|target| value(&target)).unwrap_or_default()
}

/// The current value of the input, textarea or select with this id (empty when there is none),
/// for a form that reads its fields once, on submit, rather than on every keystroke.
pub fn field_value(id: &str) -> String {
    element(id).map(|element| value(&element)).unwrap_or_default()
}

fn element(id: &str) -> Option<web_sys::Element> {
    web_sys::window()?.document()?.get_element_by_id(id)
}

/// The first file chosen in (or dropped onto) the file input with this id.
pub fn chosen_file(id: &str) -> Option<web_sys::File> {
    element(id)?.dyn_into::<HtmlInputElement>().ok()?.files()?.get(0)
}

/// Puts the files of a drop into the file input with this id, as if they were picked there, so
/// picking and dropping reach the same place.
pub fn drop_files(event: &web_sys::DragEvent, id: &str) {
    let files = event.data_transfer().and_then(|transfer| transfer.files()).filter(|files| files.length() > 0);
    if let (Some(files), Some(input)) = (files, element(id).and_then(|e| e.dyn_into::<HtmlInputElement>().ok())) {
        input.set_files(Some(&files));
    }
}

fn value(target: &JsValue) -> String {
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
pub fn focus(id: &str) {
    if let Some(element) = element(id).and_then(|e| e.dyn_into::<HtmlElement>().ok()) {
        // Focus can fail on hidden elements; there is nothing better to do then.
        let _ = element.focus();
    }
}

/// The value stored under `key` in `localStorage`, if storage is available and holds one.
pub fn stored(key: &str) -> Option<String> {
    let storage = web_sys::window()?.local_storage().ok()??;
    storage.get_item(key).ok()?
}

/// Stores `value` under `key` in `localStorage`. Storage may be blocked (privacy settings) or
/// full; the app then only forgets settings, so the error is not worth a message.
pub fn store(key: &str, value: &str) {
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.set_item(key, value);
    }
}
