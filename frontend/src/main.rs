//! The browser entry point: mounts [`frontend::App`] on the page body.

fn main() {
    yew::Renderer::<frontend::App>::new().render();
}
