//! The browser side of the end-to-end tests: the site (the real server serving the built
//! frontend), a chromedriver child process per browser, a headless Chromium session driven
//! through it, and page helpers named after what a person sees.
//!
//! Every wait polls with a deadline ([`DEADLINE`]); nothing sleeps a fixed time. A browser
//! starts once chromedriver reports itself ready, and a session that a cold Chromium fails to
//! give is asked for again with backoff, within [`SESSION_DEADLINE`]. Reads of the page go
//! through one `execute` call each, so a node Yew replaces between two WebDriver commands can
//! never fail a read as a stale element.

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backend::config::AppArgs;
use common::{RunId, RunState};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tests::TestApp;

/// How long any wait for the page may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often waits poll the page.
const POLL: Duration = Duration::from_millis(40);

/// Debian's Chromium and its WebDriver (same major version; `cargo xtask setup` checks it).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium flags for a root user in a container: headless, no sandbox, and nothing that
/// reaches the internet (without the networking flags it tries to, and stalls).
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// The built frontend: `APP_DIST_DIR` (exported by `cargo xtask test`), else `<repo>/dist`.
/// Fails, rather than skips, when it has not been built.
pub fn dist_dir() -> PathBuf {
    let dir = std::env::var_os("APP_DIST_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist"), PathBuf::from);
    assert!(
        dir.join("index.html").is_file(),
        "no built frontend at {}: run `cargo xtask frontend --release` first (or point APP_DIST_DIR at a dist/)",
        dir.display()
    );
    dir
}

/// The real server serving `dist/`, with the emulator streaming `tokens_per_sec` chunks a second
/// (0 = all at once) and 2 s between `call_bedrock` attempts, long enough to watch a countdown.
pub async fn spawn_site(tokens_per_sec: u32) -> TestApp {
    spawn_site_with(tokens_per_sec, |_| {}).await
}

/// [`spawn_site`], with its flow settings (retry delay, stream idle timeout...) adjusted by
/// `configure`.
pub async fn spawn_site_with(tokens_per_sec: u32, configure: impl FnOnce(&mut AppArgs)) -> TestApp {
    let dist = dist_dir();
    tests::spawn_app_with(move |args| {
        args.static_dir = dist;
        let app = &mut args.app;
        app.bedrock_retry_delay_secs = 2.0;
        app.emulator_latency_ms = 0;
        app.emulator_tokens_per_sec = tokens_per_sec;
        configure(app);
    })
    .await
}

/// What a reader sees of the emulator's Markdown reply: no `**`, no list markers, whitespace
/// collapsed (as [`words`] collapses the page's text).
pub fn rendered_words(markdown: &str) -> String {
    let lines: Vec<&str> = markdown.lines().map(|line| line.strip_prefix("- ").unwrap_or(line)).collect();
    words(&lines.join("\n").replace("**", ""))
}

/// `text` with every run of whitespace made one space.
pub fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How long getting a Chromium session may take in all: chromedriver becoming ready, then
/// session attempts with backoff. A cold Chromium on a fresh, loaded 2-core machine (coverage
/// instrumentation, two browser tests at once) has been seen to miss a first attempt; this
/// leaves room for several slow ones.
const SESSION_DEADLINE: Duration = Duration::from_secs(60);
/// The pause after the first failed session attempt; it doubles up to [`MAX_SESSION_BACKOFF`].
const FIRST_SESSION_BACKOFF: Duration = Duration::from_millis(250);
/// The longest pause between two session attempts.
const MAX_SESSION_BACKOFF: Duration = Duration::from_secs(4);
/// How long one `GET /status` may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// A chromedriver child process on a free port; asked to quit (closing its browsers) on drop.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        // chromedriver has no "pick a port and tell me" mode.
        let port = tests::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}): `cargo xtask setup` installs it"));
        Chromedriver { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Why chromedriver cannot be used any more, if it has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("chromedriver exited ({status})")),
            Ok(None) => None,
            Err(e) => Some(format!("chromedriver cannot be waited for: {e}")),
        }
    }

    /// Polls `GET /status` until chromedriver says it is ready for new sessions (it listens a
    /// moment before it is), or `deadline` passes; the last problem seen when it does not.
    async fn wait_until_ready(&mut self, deadline: Instant) -> Result<(), String> {
        let client = reqwest::Client::builder().timeout(STATUS_TIMEOUT).build().unwrap();
        let status_url = format!("{}/status", self.url());
        loop {
            let problem = match client.get(&status_url).send().await {
                Ok(response) => match response.json::<Value>().await {
                    Ok(status) if status["value"]["ready"] == true => return Ok(()),
                    Ok(status) => format!("not ready for new sessions: {status}"),
                    Err(e) => format!("GET /status answered no JSON: {}", error_chain(&e)),
                },
                Err(e) => format!("GET /status failed: {}", error_chain(&e)),
            };
            if let Some(exited) = self.exited() {
                return Err(exited);
            }
            if Instant::now() >= deadline {
                return Err(problem);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A Chromium session with a fresh profile, retried with backoff until [`SESSION_DEADLINE`]
    /// (counted from `started`) passes. A failed attempt may leave a Chromium holding its
    /// profile, so each attempt gets a new one; the session's profile is returned with it.
    async fn new_session(&mut self, started: Instant) -> (Client, tempfile::TempDir) {
        let deadline = started + SESSION_DEADLINE;
        if let Err(problem) = self.wait_until_ready(deadline).await {
            self.no_session(started, 0, &format!("chromedriver never became ready: {problem}"));
        }
        let mut backoff = FIRST_SESSION_BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let profile = tempfile::tempdir().unwrap();
            let builder = session_builder(profile.path());
            let attempt = tokio::time::timeout_at(deadline.into(), builder.connect(&self.url())).await;
            let last = match attempt {
                Ok(Ok(client)) => return (client, profile),
                Ok(Err(e)) => error_chain(&e),
                Err(_) => "the attempt was still waiting at the deadline".to_owned(),
            };
            if let Some(exited) = self.exited() {
                self.no_session(started, attempts, &format!("{last}; then {exited}"));
            }
            if Instant::now() + backoff >= deadline {
                self.no_session(started, attempts, &last);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_SESSION_BACKOFF);
        }
    }

    /// Fails the test: no session, and why.
    fn no_session(&self, started: Instant, attempts: u32, last_error: &str) -> ! {
        panic!(
            "no Chromium session from chromedriver ({CHROMEDRIVER} on port {}, browser {CHROMIUM}) after {attempts} \
             session attempt(s) in {:.1?} (the limit is {SESSION_DEADLINE:?}); last error: {last_error}",
            self.port,
            started.elapsed()
        )
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // `/shutdown` makes chromedriver quit its browsers too; a plain kill would orphan a
        // Chromium left open by a test that panicked before closing its session.
        if let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
            let _ = write!(stream, "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session request for headless Chromium with its profile in `profile`.
fn session_builder(profile: &Path) -> ClientBuilder<HttpConnector> {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|&a| a.to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), json!({ "binary": CHROMIUM, "args": args }));
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(capabilities);
    builder
}

/// An error and its causes, `outer: inner: ...`, skipping a cause its parent already printed.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A headless Chromium session on a site, with its own chromedriver and fresh profile.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// `http://127.0.0.1:PORT` of the site.
    base: String,
    // Dropped after the client: quitting chromedriver closes any session still open.
    _driver: Chromedriver,
    _profile: tempfile::TempDir,
}

/// What the run page shows, read in one go.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The state badge's `data-state` (`None` before the run is loaded).
    pub state: Option<String>,
    /// The response area's visible text.
    pub response: String,
    /// The response area's `data-streaming`.
    pub streaming: bool,
}

impl RunView {
    /// Whether the badge shows `state`.
    pub fn is(&self, state: RunState) -> bool {
        self.state.as_deref() == Some(state.as_str())
    }

    /// Whether the run is running and some of its answer is on screen.
    pub fn is_streaming_text(&self) -> bool {
        self.is(RunState::Running) && self.streaming && !self.response.trim().is_empty()
    }

    fn is_terminal(&self) -> bool {
        self.state.as_deref().and_then(|s| s.parse::<RunState>().ok()).is_some_and(RunState::is_terminal)
    }
}

const RUN_VIEW_JS: &str = r"
    const badge = document.querySelector('#run-state');
    const response = document.querySelector('#response');
    return {
        state: badge ? badge.dataset.state : null,
        response: response ? response.innerText : '',
        streaming: response ? response.dataset.streaming === 'true' : false,
    };
";

impl Browser {
    /// Starts chromedriver and a Chromium session pointed at `site`; fails with what went wrong
    /// if there is no session within [`SESSION_DEADLINE`].
    pub async fn open(site: &TestApp) -> Browser {
        Browser::open_at(&site.address).await
    }

    /// [`Browser::open`] on a site at `base` (`http://127.0.0.1:PORT`), such as a load balancer.
    pub async fn open_at(base: &str) -> Browser {
        let started = Instant::now();
        let mut driver = Chromedriver::start();
        let (client, profile) = driver.new_session(started).await;
        Browser { client, base: base.to_owned(), _driver: driver, _profile: profile }
    }

    /// Ends the session (Chromium quits); chromedriver quits when the value is dropped.
    pub async fn close(self) {
        let Browser { client, _driver, _profile, .. } = self;
        let _ = client.close().await;
    }

    /// Loads `path` of the site and waits for its `load` event.
    pub async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    /// Reloads the page.
    pub async fn reload(&self) {
        self.client.refresh().await.unwrap();
    }

    /// The home page, once the app knows the backend (the emulator banner is up), so input typed
    /// next is not reset by the form's defaults arriving.
    pub async fn open_home(&self) {
        self.goto("/").await;
        self.find("#emulator-banner").await;
    }

    /// The run's page.
    pub async fn open_run(&self, id: RunId) {
        self.goto(&format!("/runs/{id}")).await;
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(DEADLINE)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page within {DEADLINE:?}: {e}"))
    }

    /// Every element matching `css` now (no waiting).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its result.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The visible text of the first element matching `css` ("" when there is none).
    pub async fn text_of(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';";
        self.eval(script, vec![json!(css)]).await.as_str().unwrap_or_default().to_owned()
    }

    /// The `value` of the first input matching `css` ("" when there is none).
    pub async fn value_of(&self, css: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.value : '';";
        self.eval(script, vec![json!(css)]).await.as_str().unwrap_or_default().to_owned()
    }

    /// The id of the element that has keyboard focus ("" for none, or one without an id).
    pub async fn focused_id(&self) -> String {
        let script = "const e = document.activeElement; return e && e.id ? e.id : '';";
        self.eval(script, vec![]).await.as_str().unwrap_or_default().to_owned()
    }

    /// Polls the text of `css` until `check` holds; fails with the last text after [`DEADLINE`].
    pub async fn wait_for_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text_of(css).await;
            if check(&text) {
                return text;
            }
            assert!(started.elapsed() < DEADLINE, "timed out waiting on `{css}`; it shows {text:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls the page's path until `check` holds; fails with the last path after [`DEADLINE`].
    pub async fn wait_for_path(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let path = self.path().await;
            if check(&path) {
                return path;
            }
            assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}; the page is at {path}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// The page's path.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Types `prompt`, clicks Run, waits for the new run's page and returns its id.
    pub async fn submit_prompt(&self, prompt: &str) -> RunId {
        self.find("#prompt").await.send_keys(prompt).await.unwrap();
        self.click("#submit").await;
        let started = Instant::now();
        loop {
            if let Some(id) = self.path().await.strip_prefix("/runs/") {
                return id.parse().unwrap_or_else(|e| panic!("not a run id in the URL ({e}): {id}"));
            }
            let error = self.text_of("#form-error, [data-testid=field-error]").await;
            assert!(error.is_empty(), "the form refused {prompt:?}: {error}");
            assert!(started.elapsed() < DEADLINE, "submitting {prompt:?} did not open the run page");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the element matching `css`, waiting for it first.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// What the run page shows now.
    pub async fn run_view(&self) -> RunView {
        let value = self.eval(RUN_VIEW_JS, vec![]).await;
        RunView {
            state: value["state"].as_str().map(str::to_owned),
            response: value["response"].as_str().unwrap_or_default().to_owned(),
            streaming: value["streaming"].as_bool().unwrap_or(false),
        }
    }

    /// Polls the run page until `check` holds; fails with the last view after [`DEADLINE`].
    pub async fn wait_for_run(&self, what: &str, check: impl Fn(&RunView) -> bool) -> RunView {
        let started = Instant::now();
        loop {
            let view = self.run_view().await;
            if check(&view) {
                return view;
            }
            assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}; the page shows {view:#?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the badge shows `state`; fails early if the run ends in another state.
    pub async fn wait_for_run_state(&self, state: RunState) -> RunView {
        let view =
            self.wait_for_run(&format!("the run badge to show {state}"), |v| v.is(state) || v.is_terminal()).await;
        assert!(view.is(state), "the run ended {:?} instead of {state}: {view:#?}", view.state);
        view
    }

    /// Sends a Chrome DevTools Protocol command through chromedriver, for what WebDriver cannot
    /// do (a phone's viewport, the dark colour scheme, a download folder); returns its result.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let session = self.client.session_id().await.unwrap().expect("the browser has a session");
        let url = format!("{}/session/{session}/goog/cdp/execute", self._driver.url());
        let response = reqwest::Client::new()
            .post(url)
            .json(&json!({ "cmd": cmd, "params": params }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {}", error_chain(&e)));
        let body: Value = response.json().await.unwrap_or_else(|e| panic!("CDP {cmd} answered no JSON: {e}"));
        assert!(body["value"].get("error").is_none(), "CDP {cmd} failed: {body}");
        body["value"].clone()
    }

    /// Saves a PNG of the window to `tests/screenshots/{name}.png` for a person to look at.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}
