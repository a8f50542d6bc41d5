//! What the batch pages show: the list of batches, one batch's progress (bar, counts by state,
//! rate, ETA and the model's pace) and its items. Plain functions: the pages own the state.

use common::ItemState;
use yew::prelude::*;

use super::badge::state_badge;
use crate::api::{Batch, Item};
use crate::router::{Link, Route};
use crate::state::batch::{Rate, count, is_done, rate_text, status};
use crate::{browser, format};

/// The batches as a table, newest first as the server lists them.
pub fn batch_list(batches: &[Batch], now: f64) -> Html {
    if batches.is_empty() {
        return html! { <p class="empty-state" id="batches-empty">{ "No batches yet." }</p> };
    }
    html! {
        <table class="history-table batch-list" id="batch-list">
            { head(&["Batch", "Created", "Model", "Completed", "State"]) }
            <tbody>
                { for batches.iter().map(|batch| html! {
                    <tr key={ batch.id.to_string() } data-testid="batch-row" data-batch-id={ batch.id.to_string() }>
                        <td><Link to={ Route::Batch { id: batch.id.to_string() } }>
                            { format::short_id(&batch.id.to_string()) }
                        </Link></td>
                        <td title={ browser::local_time(batch.created_at) }>{ format::ago(batch.created_at, now) }</td>
                        <td class="model">{ batch.model_id.clone() }</td>
                        <td class="num">{ format!("{}/{}", batch.counts.completed, batch.total) }</td>
                        <td>{ status(batch) }</td>
                    </tr>
                }) }
            </tbody>
        </table>
    }
}

/// The bar, the count of each state that has items, the pace of completions and what the
/// model's scheduler allows now.
pub fn batch_progress(batch: &Batch, rate: &Rate) -> Html {
    let pace = &batch.pace;
    let counts = &batch.counts;
    let remaining = batch.total - counts.finished().min(batch.total);
    let eta = (!is_done(batch)).then(|| rate.eta_ms(remaining)).flatten();
    // One line of text rather than markup per fact: each `html!` element is code in the Wasm.
    let mut facts = vec![
        format!("{} of {} finished", counts.finished(), batch.total),
        rate.per_second().map_or_else(|| "measuring throughput…".to_owned(), rate_text),
    ];
    facts.extend(eta.map(|eta| format!("done in about {}", format::duration_ms(eta))));
    facts.push(format!("{} in flight of a limit of {} for {}", pace.in_flight, pace.limit, batch.model_id));
    facts.push(format!("{} throttled calls", pace.throttles));
    html! {
        <>
            <progress id="batch-progress" max={ batch.total.max(1).to_string() } value={ counts.finished().to_string() }
                      aria-label="Items finished">
            </progress>
            <ul class="batch-counts" id="batch-counts">
                { for ItemState::ALL.iter().map(|state| (state, count(counts, *state))).filter(|(_, n)| *n > 0).map(|(state, n)| html! {
                    <li data-testid="batch-count" data-state={ state.as_str() }>
                        { state_badge(state.as_str(), None, None) }<span class="count">{ n }</span>
                    </li>
                }) }
            </ul>
            <p class="hint" id="batch-pace">{ facts.join(" · ") }</p>
        </>
    }
}

fn head(names: &[&'static str]) -> Html {
    html! { <thead><tr>{ for names.iter().map(|name| html! { <th scope="col">{ *name }</th> }) }</tr></thead> }
}

/// The first items, each with its state and a link to its run once it has one.
pub fn batch_items(items: &[Item], total: u64) -> Html {
    html! {
        <>
            <table class="history-table batch-items" id="batch-items">
                { head(&["#", "State", "Prompt"]) }
                <tbody>
                    { for items.iter().map(|item| html! {
                        <tr key={ item.index } data-testid="batch-item" data-state={ item.state.as_str() }>
                            <td class="num">{ item.index + 1 }</td>
                            <td>{ state_badge(item.state.as_str(), None, None) }</td>
                            <td class="prompt-cell">
                                <span class="preview">{ item.prompt.clone() }</span>
                                if let Some(run) = item.run_id {
                                    <Link to={ Route::Run { id: run.to_string() } } classes="batch-link">{ "run" }</Link>
                                }
                            </td>
                        </tr>
                    }) }
                </tbody>
            </table>
            if (items.len() as u64) < total {
                <p class="hint">{ format!("The first {} of {total} items; the export has them all.", items.len()) }</p>
            }
        </>
    }
}
