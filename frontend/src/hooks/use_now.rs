//! A clock that re-renders its component while something on screen counts time.

use gloo_timers::callback::Interval;
use yew::prelude::*;

use crate::browser;

/// Returns the time in milliseconds, refreshed every `period_ms` while `active` is true.
///
/// A countdown uses 250 ms so its whole seconds never visibly skip; lists use a slower tick.
#[hook]
pub fn use_now(active: bool, period_ms: u32) -> f64 {
    let now = use_state(browser::now_ms);
    {
        let now = now.clone();
        use_effect_with((active, period_ms), move |&(active, period_ms)| {
            // Dropping the interval (on cleanup) clears it, so an idle page does not tick.
            let interval = active.then(|| {
                now.set(browser::now_ms());
                Interval::new(period_ms, move || now.set(browser::now_ms()))
            });
            move || drop(interval)
        });
    }
    *now
}
