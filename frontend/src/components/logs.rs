//! The log panel: the run's log lines live, following the tail unless the reader scrolled up,
//! filtered by level and text, and downloadable as a text file.
//!
//! The list is deliberately not a live region: a screen reader announcing every line drowns out
//! what matters; the response panel announces the end of the run instead.

use std::cell::Cell;
use std::rc::Rc;

use common::{LogEntry, LogLevel};
use yew::prelude::*;

use crate::browser::{self, target_value};
use crate::format;

/// How close to the bottom (px) still counts as "at the end" when deciding to follow.
const FOLLOW_SLACK_PX: i32 = 24;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct LogProps {
    /// The visible lines, oldest first.
    pub lines: Vec<LogEntry>,
    /// Why `lines` is empty ("No WARN lines."), when it is.
    pub empty: Option<AttrValue>,
    /// Only marks the level select: `lines` come already filtered by it.
    pub min_level: LogLevel,
    /// Called when the reader picks another minimum level.
    pub on_level: Callback<LogLevel>,
    /// Called with the search box's text as the reader types.
    pub on_query: Callback<String>,
    /// The downloaded file's name.
    pub file_name: AttrValue,
}

/// The run's log lines with a level filter, a search box and a download button.
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

    let onquery = props.on_query.reform(|event: InputEvent| target_value(&event));
    let ondownload = {
        let (lines, name) = (props.lines.clone(), props.file_name.clone());
        Callback::from(move |_: MouseEvent| browser::download_text(&name, &format::log_file(&lines)))
    };

    html! {
        <section class="panel logs" aria-labelledby="logs-heading">
            <div class="panel-head">
                <h2 id="logs-heading">{ "Logs" }</h2>
                <input type="search" id="log-search" data-testid="log-search" class="log-search"
                       placeholder="Search logs" aria-label="Search logs" oninput={ onquery } />
                <label for="log-level" class="inline-label">{ "Level" }</label>
                <select id="log-level" data-testid="log-level-filter" onchange={ onlevel }>
                    { for LogLevel::ALL.iter().map(|level| html! {
                        <option value={ level.as_str() } selected={ *level == props.min_level }>
                            { format!("{} and up", level.as_str()) }
                        </option>
                    }) }
                </select>
                <button type="button" id="download-logs" data-testid="download-logs" class="small"
                        disabled={ props.lines.is_empty() } onclick={ ondownload }>{ "Download logs" }</button>
            </div>
            <ol id="log-list" data-testid="log-list" class="log-list" ref={ list } onscroll={ onscroll }
                tabindex="0" aria-label="Log lines">
                // Only keyed lines in here, so a new line is one insertion, not a re-render of all.
                { for props.lines.iter().map(log_line) }
            </ol>
            if let Some(empty) = &props.empty {
                <p class="muted log-empty" data-testid="log-empty">{ empty.clone() }</p>
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
            <time datetime={ format::rfc3339(line.ts) }>{ format::clock_ms(line.ts, browser::utc_offset_min(line.ts)) }</time>
            <span class="log-level">{ level }</span>
            <span class="log-task">
                { line.task.map(|t| t.as_str()).unwrap_or("flow") }
                { line.attempt.map(|a| format!(" #{a}")).unwrap_or_default() }
            </span>
            <span class="log-message">{ line.message.clone() }</span>
        </li>
    }
}
