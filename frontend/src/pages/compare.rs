//! The compare page (`/compare?runs=a,b,…`): two to four runs side by side, their settings and
//! figures in one table and their outputs in columns, each marked with its word-level
//! difference from the first (columns stack on a phone).

use std::rc::Rc;

use common::{RunDetail, TaskName};
use yew::prelude::*;

use crate::router::{Link, Route};
use crate::state::compare::{Piece, parse_runs, word_diff};
use crate::{api, format};

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct ComparePageProps {
    /// The URL's query string, as it is.
    pub search: AttrValue,
}

/// What the page has: the runs, once every one arrived, or why not.
#[derive(Debug, Clone, PartialEq)]
enum Compared {
    Loading,
    Ready(Rc<Vec<RunDetail>>),
    Failed(String),
}

#[component]
pub fn ComparePage(props: &ComparePageProps) -> Html {
    let ids = parse_runs(&props.search);
    let compared = use_state(|| Compared::Loading);
    {
        let compared = compared.clone();
        use_effect_with(ids.clone(), move |ids| {
            if let Ok(ids) = ids.clone() {
                wasm_bindgen_futures::spawn_local(async move {
                    let mut runs = Vec::with_capacity(ids.len());
                    for id in ids {
                        match api::run(id).await {
                            Ok(run) => runs.push(run),
                            Err(error) => return compared.set(Compared::Failed(format!("Run {id}: {error}"))),
                        }
                    }
                    compared.set(Compared::Ready(Rc::new(runs)));
                });
            }
        });
    }
    let body = match (&ids, &*compared) {
        (Err(message), _) | (Ok(_), Compared::Failed(message)) => html! {
            <p class="error-state" data-testid="compare-error" role="alert">{ message.clone() }</p>
        },
        (Ok(_), Compared::Loading) => html! { <p class="loading" aria-busy="true">{ "Loading the runs…" }</p> },
        (Ok(_), Compared::Ready(runs)) => html! {
            <>
                { settings_table(runs) }
                <div class="compare-outputs" id="compare-outputs">
                    { for runs.iter().enumerate().map(|(n, run)| output_column(n, run, &runs[0])) }
                </div>
            </>
        },
    };
    html! {
        <section class="panel compare" aria-labelledby="compare-heading">
            <h1 id="compare-heading">{ "Compare runs" }</h1>
            <p class="hint">{ "Each output is marked against the first: struck through what it lacks, highlighted what it adds." }</p>
            { body }
        </section>
    }
}

/// How one row of the settings table reads its cell off a run.
type Fact = Box<dyn Fn(&RunDetail) -> Option<String>>;

fn settings_table(runs: &[RunDetail]) -> Html {
    let cell = |value: Option<String>| value.unwrap_or_else(|| "—".to_owned());
    let first_byte = |run: &RunDetail| {
        let call = run.tasks.iter().find(|t| t.name == TaskName::CallBedrock)?;
        call.attempts.last()?.first_byte_ms.map(format::duration_ms)
    };
    let total = |run: &RunDetail| {
        Some(format::duration_ms((run.finished_at? - run.started_at?).num_milliseconds().try_into().ok()?))
    };
    let rows: [(&str, Fact); 9] = [
        ("Model", Box::new(|r: &RunDetail| Some(r.model_id.clone()))),
        ("Temperature", Box::new(|r: &RunDetail| r.temperature.map(format::temperature))),
        ("Max tokens", Box::new(|r: &RunDetail| Some(r.max_tokens.to_string()))),
        ("Tokens", Box::new(|r: &RunDetail| r.usage.map(|u| format::usage(&u)))),
        ("First token", Box::new(first_byte)),
        ("Total", Box::new(total)),
        ("Stop reason", Box::new(|r: &RunDetail| r.stop_reason.as_ref().map(format::stop_reason))),
        ("Est. cost", Box::new(|r: &RunDetail| r.cost_usd.map(format::dollars))),
        ("State", Box::new(|r: &RunDetail| Some(r.state.as_str().to_owned()))),
    ];
    html! {
        <table class="compare-table" id="compare-table">
            <thead><tr>
                <th scope="col">{ "" }</th>
                { for runs.iter().map(|run| html! {
                    <th scope="col"><Link to={ Route::Run { id: run.id.to_string() } }>
                        <code>{ format::short_id(&run.id.to_string()) }</code>
                    </Link></th>
                }) }
            </tr></thead>
            <tbody>
                { for rows.iter().map(|(name, value)| html! {
                    <tr><th scope="row">{ *name }</th>{ for runs.iter().map(|run| html! { <td>{ cell(value(run)) }</td> }) }</tr>
                }) }
            </tbody>
        </table>
    }
}

fn output_column(n: usize, run: &RunDetail, first: &RunDetail) -> Html {
    let text = run.response.clone().unwrap_or_default();
    let pieces =
        if n == 0 { vec![Piece::Same(text)] } else { word_diff(first.response.as_deref().unwrap_or_default(), &text) };
    html! {
        <article class="compare-output" data-testid="compare-output" data-run-id={ run.id.to_string() }>
            <h2>{ format!("Run {}", n + 1) }</h2>
            <pre class="compare-text">
                { for pieces.into_iter().map(|piece| match piece {
                    Piece::Same(text) => html! { { text } },
                    Piece::Removed(text) => html! { <del>{ text }</del> },
                    Piece::Added(text) => html! { <ins>{ text }</ins> },
                }) }
            </pre>
        </article>
    }
}
