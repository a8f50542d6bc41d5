//! Shared helpers of the end-to-end tests: the real server on port 0, talked to over HTTP and
//! WebSocket exactly as a browser would, with the built-in emulator behind the real SDK.
//!
//! [`spawn_app`] starts a server in its own temporary directory (database and `prompts.txt`)
//! with test-sized retry delays and an unpaced emulator; [`TestApp`] has one helper per
//! endpoint and waits that poll with a deadline instead of sleeping. [`EventFeed`] is a
//! WebSocket client. [`process`] is the one home of child processes: the real `backend` binary
//! ([`BinaryServer`], [`run_backend`]) for the tests that need a separate process, and the
//! output capture other tools' tests use.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // test code: a failed expectation is a panic

pub mod postgres;
pub mod process;

pub use process::{BinaryServer, backend_command, free_port, run_backend, serve_flags};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use backend::app::App;
use backend::config::{BedrockChoice, ServeArgs};
use backend::journal::ScannedRecord;
use backend::startup::Application;
use common::{AttemptView, Event, EventKind, FaultPlan, LogEntry, RunDetail, RunId, RunState, RunSummary, TaskName};
use futures_util::StreamExt;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request as ClientRequest;

/// How long any wait for the server may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often waits poll.
const POLL: Duration = Duration::from_millis(10);

/// Starts tracing once per test process: silent unless `TEST_LOG` names a filter (`TEST_LOG=debug`).
fn init_tracing() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| backend::telemetry::init(std::env::var("TEST_LOG").ok().as_deref()));
}

/// The files a server keeps: its database directory and its prompt journal. Cloning shares
/// the temporary directory, which is deleted when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct TestDirs {
    _root: Arc<tempfile::TempDir>,
    /// The SQLite directory.
    pub data_dir: PathBuf,
    /// The prompt journal.
    pub prompts_file: PathBuf,
    /// Where the (absent) frontend would be: the API alone is served.
    pub static_dir: PathBuf,
    /// A database of its own when the suite runs on PostgreSQL (`TEST_STORE=postgres`):
    /// servers on these dirs then store there, and a restart finds what they stored.
    pub database_url: Option<String>,
}

impl TestDirs {
    /// A fresh temporary directory.
    pub fn new() -> TestDirs {
        let root = tempfile::tempdir().unwrap();
        TestDirs {
            data_dir: root.path().join("data"),
            prompts_file: root.path().join("prompts.txt"),
            static_dir: root.path().join("no-dist"),
            database_url: on_postgres().then(postgres::fresh_database_blocking),
            _root: Arc::new(root),
        }
    }

    /// Every record of the prompt journal: `prompts.txt`, or the prompts table on PostgreSQL.
    pub fn journal(&self) -> Vec<ScannedRecord> {
        match &self.database_url {
            Some(url) => postgres::journal_blocking(url),
            None => read_journal(&self.prompts_file),
        }
    }
}

impl Default for TestDirs {
    fn default() -> Self {
        TestDirs::new()
    }
}

/// Whether this run of the suite stores on PostgreSQL (`TEST_STORE=postgres`) rather than on
/// SQLite. Tests of what only the SQLite mode has (the `prompts.txt` file, its locks, crash
/// recovery at restart, which a cluster does by takeover instead) say so and pass through.
pub fn on_postgres() -> bool {
    std::env::var("TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// Every record of a prompt journal file (empty when the file does not exist).
pub fn read_journal(path: &Path) -> Vec<ScannedRecord> {
    let bytes = std::fs::read(path).unwrap_or_default();
    backend::journal::scan(&bytes)
}

/// Serve settings for tests: port 0, the emulator whatever the machine's AWS setup, unpaced,
/// retry delays of 50 ms, no jitter, and a short shutdown grace.
pub fn test_args(dirs: &TestDirs) -> ServeArgs {
    let mut args = ServeArgs::defaults();
    args.addr = "127.0.0.1:0".parse().unwrap();
    args.static_dir.clone_from(&dirs.static_dir);
    args.shutdown_grace_secs = 1.0;
    let app = &mut args.app;
    app.database_url.clone_from(&dirs.database_url);
    app.data_dir.clone_from(&dirs.data_dir);
    app.prompts_file.clone_from(&dirs.prompts_file);
    app.bedrock = BedrockChoice::Emulator;
    app.bedrock_endpoint = None;
    app.retries = 2;
    app.load_retry_delay_secs = 0.05;
    app.bedrock_retry_delay_secs = 0.05;
    app.retry_jitter_secs = 0.0;
    app.stream_idle_timeout_secs = 2.0;
    app.first_byte_timeout_secs = 30.0;
    app.call_timeout_secs = 0.0;
    app.emulator_latency_ms = 0;
    app.emulator_tokens_per_sec = 0;
    args
}

/// A running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The bound port.
    pub port: u16,
    /// The server's core (emulator, hub, store, metrics).
    pub app: Arc<App>,
    /// An HTTP client.
    pub client: reqwest::Client,
    /// Its files.
    pub dirs: TestDirs,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// A server with the test settings in a fresh directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server with the test settings, adjusted by `configure`, in a fresh directory.
pub async fn spawn_app_with(configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    spawn_app_in(TestDirs::new(), configure).await
}

/// A server with the test settings, adjusted by `configure`, on existing files (a restart).
pub async fn spawn_app_in(dirs: TestDirs, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
    init_tracing();
    let mut args = test_args(&dirs);
    configure(&mut args);
    let application = Application::build(args).await.expect("the server starts");
    let port = application.port();
    let app = Arc::clone(application.app());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        app,
        client: reqwest::Client::builder().timeout(DEADLINE).build().unwrap(),
        dirs,
        stop: Some(stop),
        server: Some(server),
    }
}

/// Polls `check` until it returns `Some`, failing the test with `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(DEADLINE, what, check).await
}

/// [`eventually`] for what takes longer by design (a quota's minute to slide on).
pub async fn eventually_within<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// A JSON error response's status and message; fails unless the body is `{"error": "<non-empty>"}`.
pub async fn error_of(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.unwrap();
    assert!(content_type.starts_with("application/json"), "{status}: error body is not JSON ({content_type}): {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
    let message = body["error"].as_str().unwrap_or_else(|| panic!("{status}: no `error` string in {text}"));
    assert!(!message.trim().is_empty(), "{status}: empty error message");
    (status, message.to_owned())
}

/// The value of one series in a Prometheus text exposition (`name{labels}`); `None` when the
/// series is absent, which a test must tell apart from a series that counts 0.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The attempts of one task of a run.
pub fn attempts(detail: &RunDetail, task: TaskName) -> &[AttemptView] {
    &detail.tasks.iter().find(|t| t.name == task).unwrap().attempts
}

/// A prompt unique to this call, so runs of concurrent tests are told apart.
pub fn unique_prompt(what: &str) -> String {
    format!("{what} ({})", uuid::Uuid::new_v4())
}

/// A run's detail as its events alone fold into: the cost is not an event, the server works it
/// out from the usage and the model catalog as it answers.
pub fn unpriced(detail: RunDetail) -> RunDetail {
    RunDetail { cost_usd: None, ..detail }
}

impl TestApp {
    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Stops the server as Ctrl-C would and waits for `run_until_stopped` to return; hands back
    /// its files for a restart.
    pub async fn stop(mut self) -> TestDirs {
        self.stop_in_place().await;
        self.dirs.clone()
    }

    /// Stops the server, keeping this handle (its `app` stays readable).
    pub async fn stop_in_place(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(DEADLINE, server).await.expect("run_until_stopped returns");
            result.unwrap().expect("the server shuts down cleanly");
        }
    }

    /// A second server on the same files, after this one stopped.
    pub async fn restart(self) -> TestApp {
        let dirs = self.stop().await;
        spawn_app_in(dirs, |_| {}).await
    }

    // ----- POST /api/runs -----

    /// `POST /api/runs` with a JSON body.
    pub async fn post_run(&self, body: &Value) -> Response {
        self.client.post(self.url("/api/runs")).json(body).send().await.unwrap()
    }

    /// `POST /api/runs` with a JSON body and an `Idempotency-Key`.
    pub async fn post_run_with_key(&self, body: &Value, key: &str) -> Response {
        self.client.post(self.url("/api/runs")).header("Idempotency-Key", key).json(body).send().await.unwrap()
    }

    /// `POST` of raw bytes with the given content type.
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Response {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.unwrap()
    }

    /// Submits a run with the given body; fails unless it is accepted with 202.
    pub async fn submit_json(&self, body: &Value) -> RunDetail {
        let response = self.post_run(body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "submit answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a run ({e}): {text}"))
    }

    /// Submits a prompt; fails unless it is accepted with 202.
    pub async fn submit(&self, prompt: &str) -> RunDetail {
        self.submit_json(&serde_json::json!({ "prompt": prompt })).await
    }

    // ----- GET /api/runs, /api/runs/{id}, /api/runs/{id}/logs -----

    /// `GET /api/runs/{id}` with any id text.
    pub async fn get_run(&self, id: &str) -> Response {
        self.client.get(self.url(&format!("/api/runs/{id}"))).send().await.unwrap()
    }

    /// The run's detail; fails unless 200.
    pub async fn run(&self, id: RunId) -> RunDetail {
        let response = self.get_run(&id.to_string()).await;
        assert_eq!(response.status(), StatusCode::OK, "GET /api/runs/{id}");
        response.json().await.unwrap()
    }

    /// `GET /api/runs?{query}`.
    pub async fn list_runs(&self, query: &str) -> Response {
        self.client.get(self.url(&format!("/api/runs?{query}"))).send().await.unwrap()
    }

    /// Every run (up to 1000), newest first; fails unless 200.
    pub async fn runs(&self) -> Vec<RunSummary> {
        let response = self.list_runs("limit=1000").await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `GET /api/runs/{id}/logs`; fails unless 200.
    pub async fn logs(&self, id: RunId) -> Vec<LogEntry> {
        let response = self.client.get(self.url(&format!("/api/runs/{id}/logs"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET /api/runs/{id}/logs");
        response.json().await.unwrap()
    }

    // ----- POST /api/runs/{id}/cancel -----

    /// `POST /api/runs/{id}/cancel` with any id text.
    pub async fn cancel(&self, id: &str) -> Response {
        self.client.post(self.url(&format!("/api/runs/{id}/cancel"))).send().await.unwrap()
    }

    // ----- health, metrics, emulator faults -----

    /// `GET /api/health`.
    pub async fn health(&self) -> Value {
        let response = self.client.get(self.url("/api/health")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// `GET /metrics`, the Prometheus text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    /// `PUT /api/emulator/faults`: the emulator's next calls fail as `plan` says.
    pub async fn inject(&self, plan: FaultPlan) {
        let response = self.client.put(self.url("/api/emulator/faults")).json(&plan).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "PUT /api/emulator/faults");
    }

    /// `DELETE /api/emulator/faults`.
    pub async fn clear_faults(&self) {
        let response = self.client.delete(self.url("/api/emulator/faults")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "DELETE /api/emulator/faults");
    }

    // ----- waiting -----

    /// Polls the run's detail until `check` holds; fails after [`DEADLINE`].
    pub async fn wait_for(&self, id: RunId, what: &str, check: impl Fn(&RunDetail) -> bool) -> RunDetail {
        let started = Instant::now();
        loop {
            let detail = self.run(id).await;
            if check(&detail) {
                return detail;
            }
            if started.elapsed() > DEADLINE {
                panic!("timed out waiting for run {id}: {what}; last seen: {detail:#?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the run is in `state`; fails early if it ends in another terminal state.
    pub async fn wait_for_state(&self, id: RunId, state: RunState) -> RunDetail {
        let detail = self.wait_for(id, &format!("state {state}"), |d| d.state == state || d.state.is_terminal()).await;
        assert_eq!(detail.state, state, "run {id} ended {} ({:?}) instead", detail.state, detail.error);
        detail
    }

    /// Waits until the run reaches a terminal state.
    pub async fn wait_until_finished(&self, id: RunId) -> RunDetail {
        self.wait_for(id, "a terminal state", |d| d.state.is_terminal()).await
    }

    /// Waits until the run's `call_bedrock` task has streamed some response text.
    pub async fn wait_until_streaming(&self, id: RunId) -> RunDetail {
        self.wait_for(id, "response text streaming", |d| {
            d.state == RunState::Running && d.response.as_deref().is_some_and(|r| !r.is_empty())
        })
        .await
    }

    // ----- WebSocket -----

    /// `GET /api/ws?run_id=ID&after_seq=N`: the run's events after `after_seq`, then live.
    pub async fn ws_follow(&self, id: RunId, after_seq: u64) -> EventFeed {
        EventFeed::connect(&format!("ws://127.0.0.1:{}/api/ws?run_id={id}&after_seq={after_seq}", self.port)).await
    }

    /// `GET /api/ws`: every run's events from now on.
    pub async fn ws_all(&self) -> EventFeed {
        EventFeed::connect(&format!("ws://127.0.0.1:{}/api/ws", self.port)).await
    }

    /// Tries to open a WebSocket on `/api/ws?{query}`; the HTTP status and body when refused.
    pub async fn ws_refused(&self, query: &str) -> (u16, String) {
        let url = format!("ws://127.0.0.1:{}/api/ws?{query}", self.port);
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok(_) => panic!("{url} was upgraded, expected a refusal"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body =
                    response.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                (response.status().as_u16(), body)
            }
            Err(other) => panic!("{url}: {other}"),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A WebSocket client of `/api/ws` that decodes the events it receives.
pub struct EventFeed {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl EventFeed {
    /// Opens `ws://...` and fails unless the server upgrades it.
    pub async fn connect(url: &str) -> EventFeed {
        EventFeed::open(url.into_client_request().unwrap()).await
    }

    /// Opens the socket with a request of the caller's making (another port, an `Origin`);
    /// fails unless the server upgrades it.
    pub async fn open(request: ClientRequest) -> EventFeed {
        let uri = request.uri().clone();
        let (socket, response) =
            tokio_tungstenite::connect_async(request).await.unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert_eq!(response.status().as_u16(), 101, "{uri}");
        EventFeed { socket }
    }

    /// The next event, or `None` if none arrives within `within` or the socket closes.
    pub async fn next_within(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()??;
            match message.unwrap() {
                Message::Text(text) => {
                    return Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an event ({e}): {text}")));
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Whether the server ends the socket (close frame, EOF or reset) within `within`,
    /// skipping any events still arriving.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_) | Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The next event; fails after [`DEADLINE`].
    pub async fn next_event(&mut self) -> Event {
        self.next_within(DEADLINE).await.expect("an event before the deadline")
    }

    /// The events of run `id` up to and including its terminal `run_state` (others skipped).
    pub async fn until_finished(&mut self, id: RunId) -> Vec<Event> {
        self.try_until_finished(id).await.unwrap_or_else(|unfinished| {
            panic!("{} after {} event(s) of run {id}, before its end", unfinished.why, unfinished.events.len())
        })
    }

    /// Like [`EventFeed::until_finished`], but an [`Unfinished`] when the socket closes or fails,
    /// or no event arrives for [`DEADLINE`], for a caller that can say more about why.
    pub async fn try_until_finished(&mut self, id: RunId) -> Result<Vec<Event>, Unfinished> {
        let mut events = Vec::new();
        loop {
            let event = match self.try_next_within(DEADLINE).await {
                Ok(event) => event,
                Err(why) => return Err(Unfinished { events, why }),
            };
            if event.run_id != id {
                continue;
            }
            let terminal = matches!(&event.kind, EventKind::RunState { state, .. } if state.is_terminal());
            events.push(event);
            if terminal {
                return Ok(events);
            }
        }
    }

    /// The next event, or why there is none within `within`.
    async fn try_next_within(&mut self, within: Duration) -> Result<Event, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return Err(format!("no event came for {within:?}")),
                Ok(None) => return Err("the socket ended".to_owned()),
                Ok(Some(Err(e))) => return Err(format!("the socket failed ({e})")),
                Ok(Some(Ok(Message::Close(frame)))) => return Err(format!("the server closed the socket ({frame:?})")),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Ok(serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an event ({e}): {text}")));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// A run's events that stopped before its terminal `run_state`, and why.
#[derive(Debug)]
pub struct Unfinished {
    /// The run's events that did arrive.
    pub events: Vec<Event>,
    /// What ended them: the socket closed or failed, or went quiet.
    pub why: String,
}
