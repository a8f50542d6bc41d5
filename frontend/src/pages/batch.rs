//! The batch page (`/batches/:id`): progress, pace and items of one batch, live, with cancel,
//! "Retry failed" and the exports.
//!
//! Live without folding every event: the page follows every run's events and only notes that
//! one of its batch's runs changed (its `RunCreated` carries the batch id; its later states are
//! known by run id), then fetches the batch and its first items again at most every
//! [`REFRESH_CHECK_MS`]. A batch of thousands ends hundreds of runs a second; refetching a
//! summary the server counts is cheaper than applying them all here.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::str::FromStr;

use common::{BatchId, EventKind, RunId};
use futures_util::future::abortable;
use gloo_timers::future::TimeoutFuture;
use yew::prelude::*;

use super::not_found::not_found;
use crate::api::{self, ApiError, Batch, Item, StreamTarget};
use crate::components::{batch_items, batch_progress, connection_indicator};
use crate::hooks::{StreamMessage, use_event_stream};
use crate::state::batch::{REFRESH_CHECK_MS, Rate, is_done, refresh_due, retryable, status};
use crate::state::{Load, LoadError};
use crate::{browser, format};

/// The items the page lists; the export holds them all.
const ITEMS_SHOWN: u32 = 100;

/// `/batches/:id`; an id that is not a batch id is "not found" without asking the server.
pub fn batch_page(id: &str) -> Html {
    match BatchId::from_str(id) {
        Ok(id) => html! { <LiveBatch key={ id.to_string() } { id } /> },
        Err(_) => not_found("That is not a batch id."),
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
struct LiveBatchProps {
    id: BatchId,
}

/// One fetch of the batch, with the rate measured over all fetches so far.
#[derive(Debug, PartialEq)]
struct Shown {
    batch: Batch,
    items: Vec<Item>,
    rate: Rate,
    /// What the batch's runs used and cost so far (`None` if that could not be read).
    totals: Option<common::RunTotals>,
}

/// What the socket's callback tells the fetch loop, which both outlive any one render.
#[derive(Default)]
struct Live {
    /// Something about the batch changed since the last fetch.
    dirty: Cell<bool>,
    /// The batch had finished at the last fetch: no more fallback polling.
    done: Cell<bool>,
    /// Its runs seen so far, whose later events mean the batch changed. A list, not a set: it
    /// holds the page's first items and runs created while it watches, and a hash set would
    /// bring its own hashing code into the Wasm.
    runs: RefCell<Vec<RunId>>,
}

impl Live {
    fn follow(&self, run: RunId) {
        let mut runs = self.runs.borrow_mut();
        if !runs.contains(&run) {
            runs.push(run);
        }
    }
}

async fn fetch(id: BatchId) -> Result<(Batch, Vec<Item>, Option<common::RunTotals>), ApiError> {
    let batch = api::batch(id).await?;
    let items = api::batch_items(id, 0, ITEMS_SHOWN).await?;
    let totals = api::run_totals(&format!("batch={id}")).await.ok();
    Ok((batch, items, totals))
}

#[component]
fn LiveBatch(props: &LiveBatchProps) -> Html {
    let id = props.id;
    let view = use_state(|| Load::<Rc<Shown>, LoadError>::Loading);
    let action_error = use_state(|| None::<String>);
    let live = use_memo((), |_| Rc::new(Live::default()));

    {
        let (view, live) = (view.clone(), (*live).clone());
        use_effect_with(id, move |&id| {
            let (task, handle) = abortable(async move {
                let (mut rate, mut last_fetch, mut loaded) = (Rate::default(), f64::NEG_INFINITY, false);
                loop {
                    if refresh_due(live.dirty.replace(false), browser::now_ms() - last_fetch, live.done.get()) {
                        last_fetch = browser::now_ms();
                        match fetch(id).await {
                            Ok((batch, items, totals)) => {
                                rate = rate.observe(browser::now_ms(), &batch.counts);
                                live.done.set(is_done(&batch));
                                items.iter().filter_map(|item| item.run_id).for_each(|run| live.follow(run));
                                loaded = true;
                                view.set(Load::Ready(Rc::new(Shown { batch, items, rate, totals })));
                            }
                            // Once shown, a failed refresh keeps the last picture: the next
                            // event or poll tries again.
                            Err(error) if !loaded => {
                                let error = LoadError::from(error);
                                let missing = error == LoadError::NotFound;
                                view.set(Load::Failed(error));
                                if missing {
                                    return;
                                }
                            }
                            Err(_) => {}
                        }
                    }
                    TimeoutFuture::new(REFRESH_CHECK_MS).await;
                }
            });
            // `Err(Aborted)` is the normal end: the page went away.
            wasm_bindgen_futures::spawn_local(async move {
                let _ = task.await;
            });
            move || handle.abort()
        });
    }

    let on_message = {
        let live = (*live).clone();
        Callback::from(move |message: StreamMessage| {
            let ours = match message {
                // Events missed while the socket was down are caught up by fetching.
                StreamMessage::Opened { .. } => true,
                StreamMessage::Event(event) => {
                    let ours = match event.kind {
                        EventKind::RunCreated { batch_id, .. } => batch_id == Some(id),
                        EventKind::RunState { .. } => live.runs.borrow().contains(&event.run_id),
                        _ => false,
                    };
                    if ours {
                        live.follow(event.run_id);
                    }
                    ours
                }
            };
            if ours {
                live.dirty.set(true);
            }
        })
    };
    let connection = use_event_stream(Some(StreamTarget::AllRuns), on_message);

    let shown = match &*view {
        Load::Loading => return html! { <p class="loading" aria-busy="true">{ "Loading the batch…" }</p> },
        Load::Failed(LoadError::NotFound) => return not_found("There is no batch with this id."),
        // The fetch loop asks again after `FALLBACK_POLL_MS`; its next answer replaces this.
        Load::Failed(LoadError::Other(error)) => {
            return html! { <p class="form-error" role="alert">{ format!("Could not load the batch: {error}") }</p> };
        }
        Load::Ready(shown) => shown.clone(),
    };
    let batch = &shown.batch;
    let act = |retry: bool| {
        let (live, action_error) = ((*live).clone(), action_error.clone());
        Callback::from(move |_: MouseEvent| {
            let (live, action_error) = (live.clone(), action_error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let answer = if retry { api::retry_batch(id).await } else { api::cancel_batch(id).await };
                action_error.set(answer.err().map(|error| error.to_string()));
                live.dirty.set(true);
            });
        })
    };
    let failed = retryable(&batch.counts);
    html! {
        <div class="batch-page">
            <section class="panel" aria-labelledby="batch-heading">
                <div class="panel-head">
                    <h1 id="batch-heading">{ "Batch " }{ format::short_id(&id.to_string()) }</h1>
                    <span class="summary-value" id="batch-status">{ status(batch) }</span>
                    { connection_indicator(connection.state) }
                </div>
                { batch_progress(batch, &shown.rate) }
                if let Some(totals) = &shown.totals {
                    <p class="hint" id="batch-totals" data-testid="batch-totals">{ format::totals(totals) }</p>
                }
                <div class="form-actions">
                    <button type="button" id="batch-cancel" onclick={ act(false) } disabled={ batch.cancelled || is_done(batch) }>
                        { "Cancel" }
                    </button>
                    <button type="button" id="batch-retry" onclick={ act(true) } disabled={ failed == 0 }>
                        { if failed == 0 { "Retry failed".to_owned() } else { format!("Retry failed ({failed})") } }
                    </button>
                    { for ["jsonl", "csv"].into_iter().map(|kind| html! {
                        <a class="button" id={ format!("batch-export-{kind}") } href={ api::batch_export_url(id, kind) }>
                            { format!("Export {}", kind.to_ascii_uppercase()) }
                        </a>
                    }) }
                </div>
                if let Some(error) = &*action_error {
                    <p class="form-error" role="alert">{ error.clone() }</p>
                }
            </section>
            <section class="panel" aria-labelledby="items-heading">
                <h2 id="items-heading">{ "Items" }</h2>
                { batch_items(&shown.items, batch.total) }
            </section>
        </div>
    }
}
