//! The log panel: the run's log lines live, following the tail unless the reader scrolled up.

use std::cell::Cell;
use std::rc::Rc;

use common::{LogEntry, LogLevel};
use yew::prelude::*;

use crate::browser::{self, target_value};

/// How close to the bottom (px) still counts as "at the end" when deciding to follow.
const FOLLOW_SLACK_PX: i32 = 24;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct LogProps {
    /// The visible lines, oldest first.
    pub lines: Vec<LogEntry>,
    /// Whether the stored lines have arrived.
    pub loaded: bool,
    /// Only marks the level select: `lines` come already filtered by it.
    pub min_level: LogLevel,
    /// Called when the reader picks another minimum level.
    pub on_level: Callback<LogLevel>,
}

/// The run's log lines with a level filter.
#[component]
pub fn LogPanel(props: &LogProps) -> Html {
    let list = use_node_ref();
    // Whether the view sticks to the newest line; a ref, because scrolling must not re-render.
    let follow = use_memo((), |_| Rc::new(Cell::new(true)));
    let unseen = use_state_eq(|| false);

    {
        let (list, follow, unseen) = (list.clone(), (*follow).clone(), unseen.clone());
        use_effect_with(props.lines.len(), move |_| {
            if let Some(element) = list.cast::<web_sys::Element>() {
                if follow.get() {
                    element.set_scroll_top(element.scroll_height());
                } else {
                    unseen.set(true);
                }
            }
        });
    }
    let onscroll = {
        let (list, follow, unseen) = (list.clone(), (*follow).clone(), unseen.clone());
        Callback::from(move |_: Event| {
            if let Some(element) = list.cast::<web_sys::Element>() {
                let at_end =
                    element.scroll_top() + element.client_height() >= element.scroll_height() - FOLLOW_SLACK_PX;
                follow.set(at_end);
                if at_end {
                    unseen.set(false);
                }
            }
        })
    };
    let onjump = {
        let (list, follow, unseen) = (list.clone(), (*follow).clone(), unseen.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(element) = list.cast::<web_sys::Element>() {
                element.set_scroll_top(element.scroll_height());
            }
            follow.set(true);
            unseen.set(false);
        })
    };
    let onlevel = {
        let on_level = props.on_level.clone();
        Callback::from(move |event: Event| {
            let chosen = target_value(&event);
            if let Some(level) = LogLevel::ALL.into_iter().find(|level| level.as_str() == chosen) {
                on_level.emit(level);
            }
        })
    };

    html! {
        <section class="panel logs" aria-labelledby="logs-heading">
            <div class="panel-head">
                <h2 id="logs-heading">{ "Logs" }</h2>
                <label for="log-level" class="inline-label">{ "Level" }</label>
                <select id="log-level" data-testid="log-level-filter" onchange={ onlevel }>
                    { for LogLevel::ALL.iter().map(|level| html! {
                        <option value={ level.as_str() } selected={ *level == props.min_level }>
                            { format!("{} and up", level.as_str()) }
                        </option>
                    }) }
                </select>
            </div>
            <ol id="log-list" data-testid="log-list" class="log-list" ref={ list } onscroll={ onscroll }
                tabindex="0" role="log" aria-label="Log lines">
                // Only keyed lines in here, so a new line is one insertion, not a re-render of all.
                { for props.lines.iter().map(log_line) }
            </ol>
            if props.lines.is_empty() {
                <p class="muted log-empty" data-testid="log-empty">
                    { if props.loaded { "No log lines yet." } else { "Loading log lines…" } }
                </p>
            }
            if *unseen {
                <button type="button" class="small jump" id="log-follow" data-testid="log-follow" onclick={ onjump }>
                    { "↓ New lines: jump to latest" }
                </button>
            }
        </section>
    }
}

fn log_line(line: &LogEntry) -> Html {
    let level = line.level.as_str();
    html! {
        <li key={ line.seq.to_string() } class={ format!("log-line level-{}", level.to_ascii_lowercase()) }
            data-testid="log-line" data-level={ level } data-seq={ line.seq.to_string() }>
            <time datetime={ line.ts.to_rfc3339() }>{ browser::local_clock(line.ts) }</time>
            <span class="log-level">{ level }</span>
            <span class="log-task">
                { line.task.map(|t| t.as_str()).unwrap_or("flow") }
                { line.attempt.map(|a| format!(" #{a}")).unwrap_or_default() }
            </span>
            <span class="log-message">{ line.message.clone() }</span>
        </li>
    }
}
