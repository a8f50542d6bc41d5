//! WCAG 2.1 AA contrast of both themes, measured in the browser from computed colours: 4.5:1 for
//! (small) text, 3:1 for the focus ring against what surrounds it (success criteria 1.4.3 and
//! 1.4.11). The thresholds come from WCAG, not from the stylesheet.

use common::RunState;
use serde_json::{Value, json};

use crate::harness::{Browser, spawn_site};

/// WCAG's minimum for normal-size text.
const TEXT: f64 = 4.5;
/// WCAG's minimum for user-interface components such as a focus indicator.
const NON_TEXT: f64 = 3.0;

/// Every state a badge can show (run and task states).
const STATES: [&str; 7] = ["Pending", "Running", "AwaitingRetry", "Completed", "Failed", "Cancelled", "Crashed"];

/// Adds samples of what a single run cannot show at once: a badge of every state beside the
/// run's own, and a log line of every level inside the log list (on its own background).
const ADD_SAMPLES: &str = "
    const head = document.querySelector('.run-title');
    for (const state of arguments[0]) {
        const b = document.createElement('span');
        b.className = 'badge badge-' + state.toLowerCase(); b.dataset.sample = 'badge ' + state; b.textContent = state;
        head.appendChild(b);
    }
    const list = document.querySelector('#log-list');
    for (const level of ['ERROR', 'WARN', 'INFO', 'DEBUG']) {
        const li = document.createElement('li');
        li.className = 'log-line level-' + level.toLowerCase();
        li.innerHTML = '<time>12:00:00.000</time><span class=\"log-level\">' + level + '</span>';
        li.querySelector('.log-level').dataset.sample = 'log level ' + level;
        list.appendChild(li);
    }
";

/// Each sample's text colour against the background it is drawn on, and the focus ring's colour
/// against the background around the focused element, as WCAG contrast ratios.
const MEASURE: &str = "
    const parse = c => {
        const n = c.match(/[\\d.]+/g).map(Number);
        // `color(srgb r g b / a)` (what color-mix computes to) is in 0..1; `rgb()` in 0..255.
        const [r, g, b] = c.startsWith('color(') ? n.slice(0, 3).map(v => v * 255) : n.slice(0, 3);
        return { r, g, b, a: n.length > 3 ? n[3] : 1 };
    };
    const over = (top, under) => ({
        r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
        b: top.b * top.a + under.b * (1 - top.a), a: 1,
    });
    const background = el => {
        const layers = [];
        for (let e = el; e; e = e.parentElement) {
            const c = parse(getComputedStyle(e).backgroundColor);
            if (c.a > 0) layers.push(c);
            if (c.a === 1) break;
        }
        return layers.reduceRight((under, top) => over(top, under), { r: 255, g: 255, b: 255, a: 1 });
    };
    const lum = c => {
        const ch = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
    };
    const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
    const text = (what, el) => {
        if (!el) return { what, missing: true };
        const bg = background(el);
        return { what, ratio: ratio(over(parse(getComputedStyle(el).color), bg), bg) };
    };
    const out = [
        text('body text', document.querySelector('#run-heading')),
        text('muted text', document.querySelector('.run-facts dt')),
        text('link', document.querySelector('.app-header nav a')),
        text('primary button', document.querySelector('#rerun')),
        text('button', document.querySelector('#copy-response')),
        text('link button', document.querySelector('#edit-run')),
        text('log time', document.querySelector('.log-line time')),
        text('log text', document.querySelector('.log-message')),
        ...[...document.querySelectorAll('[data-sample]')].map(e => text(e.dataset.sample, e)),
    ];
    const focused = document.querySelector('#edit-run');
    focused.focus();
    const style = getComputedStyle(focused);
    out.push({
        what: 'focus ring', visible: focused.matches(':focus-visible') && style.outlineStyle !== 'none',
        ratio: ratio(parse(style.outlineColor), background(focused.parentElement)), ring: true,
    });
    focused.blur();
    out.push({ what: 'page background', bg: getComputedStyle(document.body).backgroundColor });
    return out;
";

/// Fails with every sample below its threshold in `theme`.
fn assert_contrast(theme: &str, measured: &Value) {
    let samples = measured.as_array().unwrap();
    let mut failures = Vec::new();
    for sample in samples.iter().filter(|s| s.get("ratio").is_some() || s.get("missing").is_some()) {
        let what = sample["what"].as_str().unwrap();
        assert!(sample.get("missing").is_none(), "{theme}: no {what} on the page to measure");
        let (ratio, ring) = (sample["ratio"].as_f64().unwrap(), sample.get("ring").is_some());
        if ring {
            assert_eq!(sample["visible"], json!(true), "{theme}: the focus ring is drawn");
        }
        let needed = if ring { NON_TEXT } else { TEXT };
        if ratio < needed {
            failures.push(format!("{what}: {ratio:.2}:1 (needs {needed}:1)"));
        }
    }
    assert!(failures.is_empty(), "{theme} theme below WCAG AA:\n{}", failures.join("\n"));
    let measured_badges =
        samples.iter().filter(|s| s["what"].as_str().is_some_and(|w| w.starts_with("badge "))).count();
    assert_eq!(measured_badges, STATES.len(), "{theme}: every badge state was measured");
}

#[tokio::test]
async fn text_badges_links_buttons_and_the_focus_ring_meet_wcag_aa_contrast_in_light_and_dark_themes() {
    let site = spawn_site(0).await;
    let browser = Browser::open(&site).await;
    browser.open_home().await;
    browser.submit_prompt("Measure my colours").await;
    browser.wait_for_run_state(RunState::Completed).await;
    browser.find("[data-testid=log-line]").await;

    let scheme = |value: &str| json!({ "features": [{ "name": "prefers-color-scheme", "value": value }] });
    browser.cdp("Emulation.setEmulatedMedia", scheme("dark")).await;
    let dark_bg = browser.eval("return getComputedStyle(document.body).backgroundColor;", vec![]).await;
    assert_eq!(dark_bg, json!("rgb(17, 20, 24)"), "the dark theme is in effect");
    browser.screenshot("dark-mode").await;

    browser.eval(ADD_SAMPLES, vec![json!(STATES)]).await;
    // A keystroke makes the page's last input the keyboard's, so a focused element shows its
    // ring (`:focus-visible`) as it would for a keyboard user.
    browser.eval("document.querySelector('#rerun').focus();", vec![]).await;
    browser.client.active_element().await.unwrap().send_keys("\u{e004}").await.unwrap();
    let dark = browser.eval(MEASURE, vec![]).await;
    browser.cdp("Emulation.setEmulatedMedia", scheme("light")).await;
    let light = browser.eval(MEASURE, vec![]).await;
    assert_eq!(light.as_array().unwrap().last().unwrap()["bg"], json!("rgb(245, 246, 248)"), "the light theme is back");
    assert_contrast("light", &light);
    assert_contrast("dark", &dark);
    browser.close().await;
}
