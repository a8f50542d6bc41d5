//! Prometheus metrics: counters and histograms kept in memory, rendered by `GET /metrics`.
//!
//! A small hand-rolled registry: the set of series is fixed and small, one short lock per
//! update is far below the cost of the work being counted, and it keeps a metrics crate and
//! its exporter stack out of the build.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Catalog, ModelPace, RunState, TaskName};

use crate::bedrock::{CallError, ModelReply};

/// Most distinct model ids labelled; later ones count under `model="other"`, so a client
/// that sends many made-up ids cannot grow the registry (and every scrape) without bound.
const MAX_MODEL_LABELS: usize = 64;
/// The HTTP methods labelled by name; anything else counts as `method="other"`.
const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Bucket upper bounds, in seconds, for latency histograms.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, String), u64>,
    gauges: BTreeMap<&'static str, i64>,
    labelled_gauges: BTreeMap<(&'static str, String), i64>,
    histograms: BTreeMap<(&'static str, String), Histogram>,
    /// Model ids given a label of their own so far.
    models: std::collections::BTreeSet<String>,
    /// [`COST`] by model label.
    costs: BTreeMap<String, f64>,
}

impl Registry {
    /// The label for `model_id`: itself while fewer than [`MAX_MODEL_LABELS`] are known.
    fn model_label(&mut self, model_id: &str) -> String {
        if self.models.contains(model_id) {
            return escape(model_id);
        }
        if self.models.len() < MAX_MODEL_LABELS {
            self.models.insert(model_id.to_owned());
            return escape(model_id);
        }
        "other".to_owned()
    }
}

/// The one counter of dollars, not of events: a float.
const COST: &str = "app_cost_usd_total";

/// Help texts and types, in exposition order.
const FAMILIES: [(&str, &str, &str); 20] = [
    ("app_runs_finished_total", "counter", "Runs that reached a terminal state, by state."),
    ("app_runs_in_flight", "gauge", "Runs executing now."),
    (
        "app_runs_in_memory",
        "gauge",
        "Runs whose events the server holds in memory: in flight, or finished within the last 10 s.",
    ),
    ("app_task_attempts_total", "counter", "Task attempts, by task and outcome (ok or the error kind)."),
    ("app_task_retries_total", "counter", "Retries scheduled, by task."),
    ("app_bedrock_first_byte_seconds", "histogram", "Time from sending a Bedrock request to its response headers."),
    ("app_bedrock_call_seconds", "histogram", "Duration of Bedrock calls, successful or not."),
    ("app_bedrock_errors_total", "counter", "Failed Bedrock calls, by error kind."),
    ("app_tokens_total", "counter", "Tokens reported by Bedrock, by model and direction."),
    (COST, "counter", "Estimated cost of Bedrock calls in US dollars at the model catalog's prices, by model."),
    ("app_ws_clients", "gauge", "WebSocket clients connected."),
    ("app_ws_events_lagged_total", "counter", "Broadcast events skipped by WebSocket clients that fell behind."),
    ("app_ws_events_resynced_total", "counter", "Events re-sent from memory to WebSocket clients that fell behind."),
    ("app_http_requests_total", "counter", "HTTP requests, by route template, method and status."),
    ("app_http_request_duration_seconds", "histogram", "HTTP request durations, by route template."),
    ("app_batch_items_started_total", "counter", "Batch items this server started as runs."),
    ("app_batch_items_ended_total", "counter", "Batch items whose run ended here, by state."),
    ("app_batch_concurrency_limit", "gauge", "The adaptive limit on batch calls in flight, by model."),
    ("app_batch_calls_in_flight", "gauge", "Batch runs in flight, by model."),
    ("app_batch_throttles_total", "counter", "Throttled batch call attempts, by model."),
];

#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Prices calls for [`COST`]; without one, no cost is counted.
    catalog: Option<Arc<Catalog>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics that count the cost of calls at `catalog`'s prices.
    pub fn priced(catalog: Arc<Catalog>) -> Metrics {
        Metrics { catalog: Some(catalog), ..Metrics::default() }
    }

    fn with(&self, update: impl FnOnce(&mut Registry)) {
        let mut registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        update(&mut registry);
    }

    fn add(&self, name: &'static str, labels: String, by: u64) {
        self.with(|r| *r.counters.entry((name, labels)).or_default() += by);
    }

    fn observe(&self, name: &'static str, labels: String, value: Duration) {
        self.with(|r| r.histograms.entry((name, labels)).or_default().observe(value.as_secs_f64()));
    }

    fn gauge(&self, name: &'static str, delta: i64) {
        self.with(|r| *r.gauges.entry(name).or_default() += delta);
    }

    pub fn run_started(&self) {
        self.gauge("app_runs_in_flight", 1);
    }

    /// A run reached its terminal state.
    pub fn run_finished(&self, state: RunState) {
        self.gauge("app_runs_in_flight", -1);
        self.add("app_runs_finished_total", format!("state=\"{state}\""), 1);
    }

    /// A task attempt ended, successfully (`None`) or with an error kind.
    pub fn attempt_finished(&self, task: TaskName, error_kind: Option<&str>) {
        let outcome = error_kind.unwrap_or("ok");
        self.add("app_task_attempts_total", format!("task=\"{task}\",outcome=\"{outcome}\""), 1);
    }

    pub fn retry_scheduled(&self, task: TaskName) {
        self.add("app_task_retries_total", format!("task=\"{task}\""), 1);
    }

    pub fn model_answered(&self, model_id: &str, reply: &ModelReply) {
        if let Some(ms) = reply.trace.first_byte_ms {
            self.observe("app_bedrock_first_byte_seconds", String::new(), Duration::from_millis(ms));
        }
        if let Some(ms) = reply.trace.total_ms {
            self.observe("app_bedrock_call_seconds", String::new(), Duration::from_millis(ms));
        }
        if let Some(usage) = reply.usage {
            let cost = self.catalog.as_ref().and_then(|catalog| catalog.cost(model_id, usage));
            self.with(|r| {
                let model = r.model_label(model_id);
                if let Some(cost) = cost {
                    *r.costs.entry(format!("model=\"{model}\"")).or_default() += cost;
                }
                for (direction, tokens) in [("input", usage.input_tokens), ("output", usage.output_tokens)] {
                    let labels = format!("model=\"{model}\",direction=\"{direction}\"");
                    *r.counters.entry(("app_tokens_total", labels)).or_default() += u64::from(tokens);
                }
            });
        }
    }

    pub fn model_failed(&self, error: &CallError) {
        if let Some(ms) = error.trace.total_ms {
            self.observe("app_bedrock_call_seconds", String::new(), Duration::from_millis(ms));
        }
        self.add("app_bedrock_errors_total", format!("kind=\"{}\"", error.kind), 1);
    }

    /// A WebSocket client connected (`1`) or left (`-1`).
    pub fn ws_client(&self, delta: i64) {
        self.gauge("app_ws_clients", delta);
    }

    /// A client fell `lagged` broadcast events behind and was re-sent `resynced` of its own.
    pub fn ws_lagged(&self, lagged: u64, resynced: u64) {
        self.add("app_ws_events_lagged_total", String::new(), lagged);
        self.add("app_ws_events_resynced_total", String::new(), resynced);
    }

    /// Sets how many runs the hub holds in memory (read when metrics are scraped).
    pub fn runs_in_memory(&self, runs: usize) {
        self.with(|r| {
            r.gauges.insert("app_runs_in_memory", i64::try_from(runs).unwrap_or(i64::MAX));
        });
    }

    /// `route` is the matched route template (or a fixed name for unmatched paths), so it is bounded.
    pub fn http_request(&self, route: &str, method: &str, status: u16, duration: Duration) {
        let route = escape(route);
        let method = KNOWN_METHODS.into_iter().find(|known| *known == method).unwrap_or("other");
        self.add("app_http_requests_total", format!("route=\"{route}\",method=\"{method}\",status=\"{status}\""), 1);
        self.observe("app_http_request_duration_seconds", format!("route=\"{route}\""), duration);
    }

    /// The Prometheus text exposition of every series.
    /// Batch items started and ended since the server started, as the scheduler counts them
    /// (read at each scrape, so they replace what was set before).
    pub fn batch_items(&self, started: u64, ended: &BTreeMap<&'static str, u64>) {
        self.with(|r| {
            r.counters.insert(("app_batch_items_started_total", String::new()), started);
            for (state, ended) in ended {
                r.counters.insert(("app_batch_items_ended_total", format!("state=\"{state}\"")), *ended);
            }
        });
    }

    /// How a model's batch calls are paced now, as the scheduler reports it at each scrape.
    pub fn batch_pace(&self, model_id: &str, pace: ModelPace) {
        self.with(|r| {
            let label = format!("model=\"{}\"", r.model_label(model_id));
            let limit = i64::try_from(pace.limit).unwrap_or(i64::MAX);
            let in_flight = i64::try_from(pace.in_flight).unwrap_or(i64::MAX);
            r.labelled_gauges.insert(("app_batch_concurrency_limit", label.clone()), limit);
            r.labelled_gauges.insert(("app_batch_calls_in_flight", label.clone()), in_flight);
            r.counters.insert(("app_batch_throttles_total", label), pace.throttles);
        });
    }

    pub fn render(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::with_capacity(4096);
        for (family, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            if family == COST {
                for (labels, usd) in &registry.costs {
                    let _ = writeln!(out, "{family}{} {usd}", braces(labels));
                }
                continue;
            }
            match kind {
                "gauge" => {
                    let mut labelled = registry.labelled_gauges.range((family, String::new())..).peekable();
                    if labelled.peek().is_none_or(|((name, _), _)| *name != family) {
                        let _ = writeln!(out, "{family} {}", registry.gauges.get(family).copied().unwrap_or(0));
                    }
                    for ((name, labels), value) in labelled {
                        if *name != family {
                            break;
                        }
                        let _ = writeln!(out, "{family}{} {value}", braces(labels));
                    }
                }
                "counter" => {
                    for ((name, labels), value) in registry.counters.range((family, String::new())..) {
                        if *name != family {
                            break;
                        }
                        let _ = writeln!(out, "{family}{} {value}", braces(labels));
                    }
                }
                _ => {
                    for ((name, labels), histogram) in registry.histograms.range((family, String::new())..) {
                        if *name != family {
                            break;
                        }
                        let sep = if labels.is_empty() { "" } else { "," };
                        for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                            let _ = writeln!(out, "{family}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
                        }
                        let _ = writeln!(out, "{family}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", histogram.count);
                        let _ = writeln!(out, "{family}_sum{} {}", braces(labels), histogram.sum);
                        let _ = writeln!(out, "{family}_count{} {}", braces(labels), histogram.count);
                    }
                }
            }
        }
        out
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() { String::new() } else { format!("{{{labels}}}") }
}

/// Escapes a label value as the exposition format requires.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_exposition_format() {
        let metrics = Metrics::default();
        metrics.run_started();
        metrics.run_finished(RunState::Completed);
        metrics.http_request("/api/runs", "POST", 202, Duration::from_millis(3));
        let text = metrics.render();
        assert!(text.contains("app_runs_finished_total{state=\"Completed\"} 1"), "{text}");
        assert!(text.contains("app_runs_in_flight 0"), "{text}");
        assert!(
            text.contains("app_http_request_duration_seconds_bucket{route=\"/api/runs\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("app_http_request_duration_seconds_bucket{route=\"/api/runs\",le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(text.contains("app_http_request_duration_seconds_count{route=\"/api/runs\"} 1"), "{text}");
    }

    #[test]
    fn the_cost_of_calls_is_counted_per_model_at_the_catalogs_prices() {
        let catalog: Catalog = serde_json::from_value(serde_json::json!({
            "read_on": "2026-12-02",
            "sources": [],
            "models": [{
                "id": "anthropic.m", "name": "M", "context_window": null, "max_output_tokens": null,
                "price": { "input_per_million_usd": 3.0, "output_per_million_usd": 15.0 },
                "lifecycle": { "status": "Active", "legacy_since": null, "end_of_life": null, "replacement": null }
            }]
        }))
        .expect("catalog");
        let metrics = Metrics::priced(Arc::new(catalog));
        let reply = ModelReply {
            text: String::new(),
            usage: Some(common::Usage { input_tokens: 1_000_000, output_tokens: 200_000 }),
            stop_reason: None,
            latency_ms: None,
            trace: crate::bedrock::CallTrace::default(),
        };
        metrics.model_answered("us.anthropic.m", &reply);
        metrics.model_answered("us.anthropic.m", &reply);
        metrics.model_answered("anthropic.unpriced", &reply);
        let text = metrics.render();
        // Each call: 1 M input tokens at $3/M plus 0.2 M output tokens at $15/M = $6.
        assert!(text.contains("app_cost_usd_total{model=\"us.anthropic.m\"} 12\n"), "{text}");
        assert!(!text.contains("app_cost_usd_total{model=\"anthropic.unpriced\"}"), "{text}");
    }

    #[test]
    fn made_up_methods_and_model_ids_cannot_grow_the_series_without_bound() {
        let metrics = Metrics::default();
        for n in 0..1000 {
            metrics.http_request("/api/runs", &format!("M{n}"), 405, Duration::from_millis(1));
        }
        let reply = |input| ModelReply {
            text: String::new(),
            usage: Some(common::Usage { input_tokens: input, output_tokens: 1 }),
            stop_reason: None,
            latency_ms: None,
            trace: crate::bedrock::CallTrace::default(),
        };
        for n in 0..1000 {
            metrics.model_answered(&format!("model-{n}"), &reply(2));
        }
        let text = metrics.render();
        assert!(
            text.contains("app_http_requests_total{route=\"/api/runs\",method=\"other\",status=\"405\"} 1000"),
            "{text}"
        );
        let token_series = text.lines().filter(|l| l.starts_with("app_tokens_total{")).count();
        // 64 models with a label of their own, plus "other", each with input and output.
        assert_eq!(token_series, (64 + 1) * 2);
        // The 936 ids beyond the first 64 each reported 2 input tokens.
        assert!(text.contains("app_tokens_total{model=\"other\",direction=\"input\"} 1872"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
