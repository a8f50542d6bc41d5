//! `trunk serve` as a child process, configured with the repository's `[[proxy]]` entries
//! pointed at a test backend, and a client that talks to the backend through it as a page
//! served by Trunk would.
//!
//! Trunk serves a one-line stand-in page rather than the frontend: what is under test is the
//! forwarding, and building the real page (a debug Wasm build, a minute on a cold cache) is
//! `trunk build`'s job, which `cargo xtask frontend` exercises. Without a `Cargo.toml` beside
//! the page, Trunk builds no Rust at all: it is serving within a fraction of a second and never
//! runs cargo.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Event, RunDetail, RunId};
use reqwest::StatusCode;
use tests::process::{Captured, free_port};
use tests::{EventFeed, TestApp};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// How long `trunk serve` may take to build the stand-in page and answer, on a loaded machine.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Where `Trunk.toml`'s proxies send requests: the backend's default address, which the
/// README's development loop starts it on.
const DOCUMENTED_BACKEND: &str = "127.0.0.1:8080";
/// What the stand-in page says, so a test knows Trunk (and not a backend fallback) served it.
const PAGE_TEXT: &str = "stand-in page served by trunk serve for the dev-loop test";

/// The `trunk` program: on `PATH` (where `cargo xtask test` puts `~/.cargo/bin`), else in
/// `$CARGO_HOME/bin`. Fails, rather than skips, when it is not installed.
pub fn trunk_bin() -> PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|home| home.join("bin"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|dir| dir.join("trunk"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("trunk is not on PATH nor in $CARGO_HOME/bin: `cargo xtask setup` installs it (trunk 0.21.14)")
        })
}

/// The `[[proxy]]` tables of the repository's `Trunk.toml`, sending to `backend` (`HOST:PORT`)
/// instead of the documented address. Fails if there is none, if none proxies WebSockets, or if
/// one names another backend: the dev loop and this test would then disagree.
pub fn proxies_to(backend: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Trunk.toml");
    let config = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tables: Vec<String> = Vec::new();
    let mut in_proxy = false;
    for line in config.lines() {
        let header = line.trim_start();
        if header.starts_with('[') {
            in_proxy = header.starts_with("[[proxy]]");
            if in_proxy {
                tables.push(String::new());
            }
        }
        if let Some(table) = tables.last_mut().filter(|_| in_proxy) {
            writeln!(table, "{line}").unwrap();
        }
    }
    assert!(!tables.is_empty(), "{} has no [[proxy]] entries", path.display());
    assert!(
        tables.iter().any(|table| table.lines().any(|line| line.replace(' ', "") == "ws=true")),
        "{} proxies no WebSocket (`ws = true`): /api/ws would not reach the backend",
        path.display()
    );
    for table in &tables {
        assert!(
            table.contains(DOCUMENTED_BACKEND),
            "a proxy of {} does not go to {DOCUMENTED_BACKEND}:\n{table}",
            path.display()
        );
    }
    tables.iter().map(|table| table.replace(DOCUMENTED_BACKEND, backend)).collect::<Vec<_>>().join("\n")
}

/// The README's development loop: a backend that lets the dev server's pages in
/// (`--allowed-origin http://127.0.0.1:PORT`), and `trunk serve` on that port in front of it.
pub async fn start_dev_loop() -> (TestApp, TrunkServe) {
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let backend = tests::spawn_app_with(|args| args.allowed_origins = vec![origin]).await;
    let trunk = TrunkServe::start(&backend, port).await;
    (backend, trunk)
}

/// `trunk serve` forwarding to one test backend; stopped when dropped.
pub struct TrunkServe {
    /// `http://127.0.0.1:PORT` of Trunk's server, the origin of the pages it serves.
    pub address: String,
    client: reqwest::Client,
    process: Captured,
    _files: tempfile::TempDir,
}

impl TrunkServe {
    /// Starts `trunk serve` on `port` with `Trunk.toml`'s proxies pointed at `backend` and waits
    /// until it serves its page.
    pub async fn start(backend: &TestApp, port: u16) -> TrunkServe {
        let files = tempfile::tempdir().unwrap();
        let site = files.path().join("site");
        std::fs::create_dir(&site).unwrap();
        let page = site.join("index.html");
        std::fs::write(&page, format!("<!DOCTYPE html>\n<html><body>{PAGE_TEXT}</body></html>\n")).unwrap();
        // Only the proxies come from the repository's file; the rest is set on the command line.
        let config = files.path().join("Trunk.toml");
        std::fs::write(&config, proxies_to(&format!("127.0.0.1:{}", backend.port))).unwrap();

        let mut command = Command::new(trunk_bin());
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg(&page)
            .arg("--dist")
            .arg(files.path().join("dist"))
            .arg("--watch")
            .arg(&site)
            .args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--no-autoreload", "--disable-address-lookup"])
            .current_dir(files.path())
            // As `cargo xtask frontend` runs it: nothing downloaded, no version check (neither
            // GitHub nor crates.io's web API answers here).
            .env("TRUNK_OFFLINE", "true")
            .env("TRUNK_SKIP_VERSION_CHECK", "true")
            // Trunk 0.21.14 refuses to start when NO_COLOR is anything but `true`/`false`
            // (`NO_COLOR=1` is common); its output is not a terminal, so it has no colours anyway.
            .env_remove("NO_COLOR")
            // Trunk reads RUST_LOG as its log filter; its own default says what it proxies.
            .env_remove("RUST_LOG");
        // Trunk's HTTP proxy honours the system proxy: the backend is on this machine.
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            command.env_remove(name);
        }
        let mut process = Captured::spawn(format!("trunk serve (port {port})"), &mut command);

        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder().timeout(tests::DEADLINE).build().unwrap();
        let probe = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        process
            .wait_for("serving its page", START_DEADLINE, |_| {
                let request = probe.get(&address).send();
                async move {
                    let response = request.await.ok()?;
                    let text = response.text().await.ok()?;
                    text.contains(PAGE_TEXT).then_some(())
                }
            })
            .await;
        TrunkServe { address, client, process, _files: files }
    }

    /// Everything `trunk serve` logged so far.
    pub fn log(&self) -> String {
        self.process.output()
    }

    /// `POST /api/runs` through Trunk from its page's origin; fails unless accepted with 202.
    pub async fn submit(&self, prompt: &str) -> RunDetail {
        let response = self
            .client
            .post(format!("{}/api/runs", self.address))
            .header("Origin", &self.address)
            .json(&serde_json::json!({ "prompt": prompt }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "POST /api/runs through trunk serve: {text}\n{}", self.log());
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not a run ({e}): {text}"))
    }

    /// The run's events from the first through its terminal `run_state`, over
    /// `GET /api/ws?run_id=ID&after_seq=0` through Trunk from its page's origin; fails with
    /// Trunk's log if the feed ends or goes quiet first.
    pub async fn follow_until_finished(&self, id: RunId) -> Vec<Event> {
        let url = format!("{}/api/ws?run_id={id}&after_seq=0", self.address.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("Origin", HeaderValue::from_str(&self.address).unwrap());
        let mut feed = EventFeed::open(request).await;
        match feed.try_until_finished(id).await {
            Ok(events) => events,
            Err(unfinished) => {
                // Trunk logs why it dropped a socket just after dropping it: let that line arrive.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "the event feed through trunk serve stopped after {} event(s), before run {id} finished: {}; \
                     trunk serve logged:\n{}",
                    unfinished.events.len(),
                    unfinished.why,
                    self.log()
                )
            }
        }
    }
}
