//! Helpers the API suite's `tests` library lacks: the real `backend` binary as a child process
//! (flags, signals, output capture, memory), the database's integrity check, raw HTTP for
//! requests a well-behaved client refuses to send, cheap randomness and percentiles.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{RunId, RunSummary};
use sqlx::Connection;
use tests::TestDirs;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Whether the long soaks run (`HARDENING_LONG=1`).
pub fn long() -> bool {
    std::env::var("HARDENING_LONG").is_ok_and(|v| v == "1")
}

/// A small random number below `bound`, from the OS-seeded UUID generator (enough for delays).
pub fn random_below(bound: u64) -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes(bytes[..8].try_into().unwrap()) % bound.max(1)
}

/// The `backend serve` flags of a test server on `dirs`: port 0, the emulator unpaced, test
/// retry delays. [`BinaryServer::start`] takes them as a map so a test can override any.
pub fn serve_flags(dirs: &TestDirs) -> BTreeMap<&'static str, String> {
    let path = |p: &Path| p.display().to_string();
    BTreeMap::from([
        ("--addr", "127.0.0.1:0".to_owned()),
        ("--data-dir", path(&dirs.data_dir)),
        ("--prompts-file", path(&dirs.prompts_file)),
        ("--static-dir", path(&dirs.static_dir)),
        ("--bedrock", "emulator".to_owned()),
        ("--emulator-latency-ms", "0".to_owned()),
        ("--emulator-tokens-per-sec", "0".to_owned()),
        ("--retries", "2".to_owned()),
        ("--load-retry-delay-secs", "0.05".to_owned()),
        ("--bedrock-retry-delay-secs", "0.05".to_owned()),
        ("--shutdown-grace-secs", "1".to_owned()),
    ])
}

/// The real `backend` binary running as a child process, its output captured.
pub struct BinaryServer {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT` as the process logged it.
    pub address: String,
    /// The bound port.
    pub port: u16,
    output: Arc<Mutex<String>>,
}

impl BinaryServer {
    /// `backend serve` with `flags` and extra environment; waits until it listens.
    pub async fn start(flags: &BTreeMap<&'static str, String>, env: &[(&str, &str)]) -> BinaryServer {
        let mut args = vec!["serve".to_owned()];
        for (flag, value) in flags {
            args.push((*flag).to_owned());
            args.push(value.clone());
        }
        Self::spawn(&args, env, "listening on http://").await
    }

    /// `backend emulator --addr 127.0.0.1:0` plus `extra` flags; waits until it listens.
    pub async fn emulator(extra: &[&str]) -> BinaryServer {
        let mut args = vec!["emulator".to_owned(), "--addr".to_owned(), "127.0.0.1:0".to_owned()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::spawn(&args, &[], "emulator listening on http://").await
    }

    async fn spawn(args: &[String], env: &[(&str, &str)], marker: &str) -> BinaryServer {
        let mut command = Command::new(tests::backend_bin());
        command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        // The machine's AWS setup must not leak in: a test that wants credentials sets them.
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "APP_AUTH_TOKEN"]
        {
            command.env_remove(name);
        }
        command.env("RUST_LOG", "info").env("NO_COLOR", "1");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the backend binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().unwrap(), Arc::clone(&output));
        capture(child.stderr.take().unwrap(), Arc::clone(&output));
        let started = Instant::now();
        let address = loop {
            if let Some(address) = find_address(&output.lock().unwrap(), marker) {
                break address;
            }
            if let Ok(Some(status)) = child.try_wait() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                panic!("backend {args:?} exited ({status}) before listening:\n{}", output.lock().unwrap());
            }
            assert!(started.elapsed() < tests::DEADLINE, "backend {args:?} did not listen in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let port = address.rsplit(':').next().unwrap().parse().unwrap();
        BinaryServer { child, address, port, output }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with `kill(1)`: the crate forbids `unsafe`.
    pub fn signal(&self, name: &str) {
        let status =
            std::process::Command::new("kill").args(["-s", name, &self.pid().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// SIGKILL, then waits for the process to be gone.
    pub async fn kill9(&mut self) {
        self.child.kill().await.expect("SIGKILL is delivered");
    }

    /// The exit status if the process ends within `within`.
    pub async fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(within, self.child.wait()).await.ok().map(|status| status.unwrap())
    }

    /// The resident set size of the process in KiB (`VmRSS` in `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

fn capture(stream: impl AsyncRead + Unpin + Send + 'static, output: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut output = output.lock().unwrap();
            output.push_str(&line);
            output.push('\n');
        }
    });
}

fn find_address(output: &str, marker: &str) -> Option<String> {
    let at = output.find(marker)?;
    let rest = &output[at + marker.len() - "http://".len()..];
    let address: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '\u{1b}').collect();
    address.rsplit(':').next()?.parse::<u16>().ok()?;
    Some(address)
}

/// `PRAGMA integrity_check` of `<data_dir>/runs.db`: `"ok"` when the database is sound.
pub async fn integrity_check(data_dir: &Path) -> String {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(data_dir.join("runs.db"));
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await.expect("runs.db opens");
    let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check").fetch_all(&mut connection).await.unwrap();
    let _ = connection.close().await;
    rows.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("; ")
}

/// Every run of a server, paging through `GET /api/runs` with `before=`.
pub async fn all_runs(client: &reqwest::Client, address: &str) -> Vec<RunSummary> {
    let mut runs: Vec<RunSummary> = Vec::new();
    loop {
        let mut url = format!("{address}/api/runs?limit=500");
        if let Some(last) = runs.last() {
            url.push_str(&format!("&before={}", last.id));
        }
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        let page: Vec<RunSummary> = response.json().await.unwrap();
        let done = page.len() < 500;
        runs.extend(page);
        if done {
            return runs;
        }
    }
}

/// Sends `request` as raw bytes and returns whatever comes back before the server closes or
/// goes quiet for two seconds (`None` if the connection was refused or reset at once).
pub async fn raw_http(port: u16, request: &[u8]) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    // The server may answer and close before reading everything: a failed write is an answer too.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// The status code of a raw HTTP answer.
pub fn raw_status(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The `p`th percentile (0–100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let index = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
    samples[index]
}

/// Submits `prompt` to a server at `address`; the run id when it answered 202.
pub async fn try_submit(client: &reqwest::Client, address: &str, prompt: &str) -> Option<RunId> {
    let response =
        client.post(format!("{address}/api/runs")).json(&serde_json::json!({ "prompt": prompt })).send().await.ok()?;
    if response.status() != 202 {
        return None;
    }
    let run: common::RunDetail = response.json().await.ok()?;
    Some(run.id)
}
