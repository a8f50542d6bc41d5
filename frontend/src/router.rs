//! The app's URLs and a small router: `/`, `/history?…`, `/runs/{id}`, `/runs/{id}/edit`,
//! `/batches`, `/batches/{id}`, and "not found".
//!
//! A handful of routes do not need yew-router (with its history, query and matching crates it added
//! ~25 KB to the Wasm). [`Route::from_path`] and [`Route::path`] are pure; [`Router`] keeps the
//! current route in sync with the address bar (`pushState` on navigation, `popstate` on
//! back/forward) and hands it down through a context ([`use_route`], [`use_navigate`]), and
//! [`Link`] renders a real `<a href>` so opening in a new tab, copying the link and
//! middle-clicking all work.
//!
//! The router knows URLs, not pages: which page a [`Route`] shows is decided in `app.rs`, so
//! pages and widgets can import this module without it importing them back.

use gloo_events::EventListener;
use yew::prelude::*;

use crate::browser;
use crate::state::history_query::HistoryQuery;

/// Every client-side route; the backend serves `index.html` for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/`: the submit form and the latest runs.
    Home,
    /// `/history`: every run, filtered and paged as its query string says.
    History { query: HistoryQuery },
    /// `/runs/{id}`: one run, live; its URL can be shared and reloaded.
    Run {
        /// As it appears in the URL: not yet checked to be a run id (the page does that).
        id: String,
    },
    /// `/runs/{id}/edit`: the submit form holding that run's input, for a new run made from it.
    Edit {
        /// As it appears in the URL, like [`Route::Run`]'s.
        id: String,
    },
    /// `/batches`: the batches, and the form that submits one.
    Batches,
    /// `/batches/{id}`: one batch, live.
    Batch {
        /// As it appears in the URL, like [`Route::Run`]'s.
        id: String,
    },
    /// `/compare?runs=a,b`: two to four runs side by side.
    Compare {
        /// The query string as it is (the page reads the run ids from it).
        search: String,
    },
    /// Anything else.
    NotFound,
}

impl Route {
    /// The route for a URL's path and query string (`?…` or empty).
    pub fn from_location(path: &str, search: &str) -> Route {
        match Route::from_path(path) {
            Route::History { .. } => Route::History { query: HistoryQuery::from_search(search) },
            Route::Compare { .. } => Route::Compare { search: search.trim_start_matches('?').to_owned() },
            route => route,
        }
    }

    /// The route for a URL path (query and fragment already removed).
    pub fn from_path(path: &str) -> Route {
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() {
            return Route::Home;
        }
        if trimmed == "/history" {
            return Route::History { query: HistoryQuery::default() };
        }
        if trimmed == "/batches" {
            return Route::Batches;
        }
        if trimmed == "/compare" {
            return Route::Compare { search: String::new() };
        }
        if let Some(id) = trimmed.strip_prefix("/batches/") {
            return if id.is_empty() || id.contains('/') {
                Route::NotFound
            } else {
                Route::Batch { id: id.to_owned() }
            };
        }
        let Some(rest) = trimmed.strip_prefix("/runs/") else { return Route::NotFound };
        match rest.split_once('/') {
            None if !rest.is_empty() => Route::Run { id: rest.to_owned() },
            Some((id, "edit")) if !id.is_empty() => Route::Edit { id: id.to_owned() },
            _ => Route::NotFound,
        }
    }

    /// The document title for the route, so tabs and history entries can be told apart.
    pub fn title(&self) -> String {
        match self {
            Route::Home => "Prompt Runner".to_owned(),
            Route::History { .. } => "History · Prompt Runner".to_owned(),
            Route::Run { id } => format!("Run {} · Prompt Runner", id.chars().take(8).collect::<String>()),
            Route::Edit { id } => format!("Edit run {} · Prompt Runner", id.chars().take(8).collect::<String>()),
            Route::Batches => "Batches · Prompt Runner".to_owned(),
            Route::Batch { id } => format!("Batch {} · Prompt Runner", id.chars().take(8).collect::<String>()),
            Route::Compare { .. } => "Compare runs · Prompt Runner".to_owned(),
            Route::NotFound => "Not found · Prompt Runner".to_owned(),
        }
    }

    /// The path and query that [`Route::from_location`] maps back to this route (`NotFound`
    /// gets `/404`).
    pub fn path(&self) -> String {
        match self {
            Route::Home => "/".to_owned(),
            Route::History { query } => match query.to_search() {
                search if search.is_empty() => "/history".to_owned(),
                search => format!("/history?{search}"),
            },
            Route::Run { id } => format!("/runs/{id}"),
            Route::Edit { id } => format!("/runs/{id}/edit"),
            Route::Batches => "/batches".to_owned(),
            Route::Batch { id } => format!("/batches/{id}"),
            Route::Compare { search } => format!("/compare?{search}"),
            Route::NotFound => "/404".to_owned(),
        }
    }
}

/// Navigates to a route (adds a history entry).
pub type Navigate = Callback<Route>;

/// What a [`Router`] shares with everything inside it.
#[derive(Debug, Clone, PartialEq)]
struct RouterContext {
    route: Route,
    navigate: Navigate,
}

/// The current route from the nearest [`Router`]; outside one, the address bar's.
#[hook]
pub fn use_route() -> Route {
    use_context::<RouterContext>().map_or_else(current_route, |context| context.route)
}

/// The navigation callback from the nearest [`Router`]; a no-op outside one.
#[hook]
pub fn use_navigate() -> Navigate {
    use_context::<RouterContext>().map_or_else(|| Callback::from(|_| {}), |context| context.navigate)
}

fn current_route() -> Route {
    let Some(location) = web_sys::window().map(|w| w.location()) else { return Route::Home };
    Route::from_location(&location.pathname().unwrap_or_default(), &location.search().unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct RouterProps {
    /// The id of the element that takes keyboard focus after an in-app navigation (the main
    /// landmark), so screen readers start the new page at its content.
    #[prop_or_default]
    pub focus_on_navigate: Option<AttrValue>,
    /// Renders everything inside the router (header, banners, the page) for the current route:
    /// a callback rather than children, so the page switch needs no component of its own to
    /// read the route (each component type costs the Wasm its own lifecycle code).
    pub render: Callback<Route, Html>,
}

/// Owns the current route, renders it, and shares it (and a way to change it) with what it renders.
#[component]
pub fn Router(props: &RouterProps) -> Html {
    let route = use_state(current_route);
    {
        let route = route.clone();
        use_effect_with((), move |_| {
            // Back and forward buttons; dropping the listener (on unmount) removes it.
            let listener = web_sys::window()
                .map(|window| EventListener::new(&window, "popstate", move |_| route.set(current_route())));
            move || drop(listener)
        });
    }
    use_effect_with((*route).clone(), |route| {
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            document.set_title(&route.title());
        }
    });
    let navigate = {
        let route = route.clone();
        let focus_on_navigate = props.focus_on_navigate.clone();
        Callback::from(move |next: Route| {
            if let Some(window) = web_sys::window() {
                if let Ok(history) = window.history() {
                    // Failing to update the address bar still shows the page; nothing to add.
                    let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&next.path()));
                }
                window.scroll_to_with_x_and_y(0.0, 0.0);
            }
            route.set(next);
            if let Some(id) = &focus_on_navigate {
                browser::focus(id);
            }
        })
    };
    let context = RouterContext { route: (*route).clone(), navigate };
    html! {
        <ContextProvider<RouterContext> { context }>{ props.render.emit((*route).clone()) }</ContextProvider<RouterContext>>
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct LinkProps {
    pub to: Route,
    /// The `<a>`'s id, for a link a page is about.
    #[prop_or_default]
    pub id: Option<AttrValue>,
    /// Classes of the `<a>` itself: the link renders no wrapper.
    #[prop_or_default]
    pub classes: Classes,
    #[prop_or_default]
    pub children: Html,
}

/// An `<a href>` that navigates in-app on a plain click and behaves natively otherwise.
#[component]
pub fn Link(props: &LinkProps) -> Html {
    let navigate = use_navigate();
    let onclick = {
        let to = props.to.clone();
        Callback::from(move |event: MouseEvent| {
            // Modified or non-primary clicks open tabs and windows: leave those to the browser.
            if event.button() != 0 || event.ctrl_key() || event.meta_key() || event.shift_key() || event.alt_key() {
                return;
            }
            event.prevent_default();
            navigate.emit(to.clone());
        })
    };
    html! {
        <a id={ props.id.clone() } href={ props.to.path() } class={ props.classes.clone() } {onclick}>{ props.children.clone() }</a>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes_and_back() {
        assert_eq!(Route::from_path("/"), Route::Home);
        assert_eq!(Route::from_path(""), Route::Home);
        assert_eq!(Route::from_path("/runs/abc"), Route::Run { id: "abc".into() });
        assert_eq!(Route::from_path("/runs/abc/"), Route::Run { id: "abc".into() });
        assert_eq!(Route::from_path("/runs/"), Route::NotFound);
        assert_eq!(Route::from_path("/runs/a/b"), Route::NotFound);
        assert_eq!(Route::from_path("/runs/a/edit"), Route::Edit { id: "a".into() });
        assert_eq!(Route::from_path("/runs/a/edit/"), Route::Edit { id: "a".into() });
        assert_eq!(Route::from_path("/runs//edit"), Route::NotFound);
        assert_eq!(Route::from_path("/runs/a/edit/x"), Route::NotFound);
        assert_eq!(Route::from_path(&Route::Edit { id: "a".into() }.path()), Route::Edit { id: "a".into() });
        assert_eq!(Route::from_path("/elsewhere"), Route::NotFound);
        assert_eq!(Route::Run { id: "x".into() }.path(), "/runs/x");
        assert_eq!(Route::from_path(&Route::Home.path()), Route::Home);
    }

    #[test]
    fn batch_paths_map_to_routes_and_back() {
        assert_eq!(Route::from_path("/batches"), Route::Batches);
        assert_eq!(Route::from_path("/batches/"), Route::Batches);
        assert_eq!(Route::from_path("/batches/b1"), Route::Batch { id: "b1".into() });
        assert_eq!(Route::from_path("/batches/b1/"), Route::Batch { id: "b1".into() });
        assert_eq!(Route::from_path("/batches/b1/items"), Route::NotFound);
        assert_eq!(Route::from_path(&Route::Batches.path()), Route::Batches);
        assert_eq!(Route::Batch { id: "b1".into() }.path(), "/batches/b1");
    }

    #[test]
    fn the_history_route_carries_its_query_both_ways() {
        let plain = Route::History { query: HistoryQuery::default() };
        assert_eq!(Route::from_location("/history", ""), plain);
        assert_eq!(plain.path(), "/history");
        let failed = Route::from_location("/history/", "?state=Failed&model=x");
        assert_eq!(failed.path(), "/history?state=Failed&model=x");
        assert_eq!(Route::from_location("/runs/a", "?state=Failed"), Route::Run { id: "a".into() });
    }
}
