//! Child processes of the tests, and the one place the real `backend` binary is started.
//!
//! [`backend_bin`] finds (or builds) the binary. [`BinaryServer`] runs `backend serve` or
//! `backend emulator` until dropped, for the tests that need what only a separate process has
//! (signals, `kill -9`, its exit status, its memory, its log); [`run_backend`] runs a one-shot
//! command such as `backend run` to its exit. Both start the binary through [`backend_command`],
//! so every test sees the same environment: no AWS credentials from the machine, no colours.
//! [`Captured`] is the general child process with its output kept, which other tools' tests
//! (Trunk's dev server) use too.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::{DEADLINE, TestDirs};

/// How often a wait for a child process looks again.
const POLL: Duration = Duration::from_millis(5);

/// Environment variables of the machine that must not reach the backend: a test that wants
/// credentials or a token sets them itself.
/// `DATABASE_URL` among them: a test server stores in SQLite unless the test says otherwise.
const SCRUBBED_ENV: [&str; 7] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "APP_AUTH_TOKEN",
    "DATABASE_URL",
    "APP_REPLICA_ID",
];

/// The `backend` binary: `BACKEND_BIN` if set, else built once (a no-op when up to date) into
/// this test's target directory, so it always matches the library under test.
///
/// Cargo sets `CARGO_BIN_EXE_backend` only for the integration tests of the `backend` package
/// itself, not for this crate's, hence the build.
pub fn backend_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("BACKEND_BIN") {
            return PathBuf::from(path);
        }
        // current_exe is <target>/debug/deps/api-HASH: the binary lives in <target>/debug.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.ancestors().find(|dir| dir.join("deps").is_dir()).unwrap().to_path_buf();
        let bin = profile_dir.join(format!("backend{}", std::env::consts::EXE_SUFFIX));
        let target_dir = profile_dir.parent().unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "-p", "backend", "--bin", "backend", "--target-dir"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build -p backend failed");
        assert!(bin.is_file(), "no backend binary at {}", bin.display());
        bin
    })
    .clone()
}

/// `backend ARGS` with the test environment: the machine's AWS setup and access token removed,
/// `RUST_LOG=info`, no colours, killed when dropped. Add flags and variables before spawning.
pub fn backend_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(backend_bin());
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for name in SCRUBBED_ENV {
        command.env_remove(name);
    }
    command.env("RUST_LOG", "info").env("NO_COLOR", "1");
    command
}

/// Runs `command` (from [`backend_command`]) to its exit, collecting its output; fails the test
/// if it is still running after [`DEADLINE`].
pub async fn run_backend(command: &mut Command) -> Output {
    let output = command.stdout(Stdio::piped()).stderr(Stdio::piped()).output();
    tokio::time::timeout(DEADLINE, output)
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not exit within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{command:?} did not start: {e}"))
}

/// Whether the tests run as root (PostgreSQL's own tools refuse to).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A port that was free a moment ago, for programs that cannot bind port 0 and report the
/// port (chromedriver, `trunk serve`). Another process could take it in between; on a test
/// machine none does.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A child process whose stdout and stderr are kept (interleaved, line by line) for assertions
/// and failure messages; killed when dropped.
pub struct Captured {
    child: Child,
    /// What the process is, for failure messages (`backend ["serve", ...]`).
    label: String,
    output: Arc<Mutex<String>>,
}

impl Captured {
    /// Spawns `command` with its output captured; `label` names it in failure messages.
    pub fn spawn(label: impl Into<String>, command: &mut Command) -> Captured {
        let label = label.into();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{label} did not start: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().unwrap(), Arc::clone(&output));
        capture(child.stderr.take().unwrap(), Arc::clone(&output));
        Captured { child, label, output }
    }

    /// Polls `check` with the output so far until it returns `Some`; fails the test, showing the
    /// output, if the process exits first or `within` passes.
    pub async fn wait_for<T, F, Fut>(&mut self, what: &str, within: Duration, mut check: F) -> T
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(value) = check(self.output()).await {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the capture tasks read the last lines, which usually say why.
                tokio::time::sleep(Duration::from_millis(50)).await;
                panic!("{} exited ({status}) before {what}:\n{}", self.label, self.output());
            }
            assert!(
                started.elapsed() < within,
                "{} did not get to {what} within {within:?}:\n{}",
                self.label,
                self.output()
            );
            tokio::time::sleep(POLL).await;
        }
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
    .into_iter()
    .chain(dirs.database_url.clone().map(|url| ("--database-url", url)))
    .collect()
}

/// The real `backend` binary serving on a port it chose, as a child process.
pub struct BinaryServer {
    /// The process, its output captured.
    pub process: Captured,
    /// `http://127.0.0.1:PORT` as the process logged it.
    pub address: String,
    /// The bound port.
    pub port: u16,
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
        let mut command = backend_command(args);
        command.envs(env.iter().copied());
        let mut process = Captured::spawn(format!("backend {args:?}"), &mut command);
        let address =
            process.wait_for("listening", DEADLINE, |output| std::future::ready(find_address(&output, marker))).await;
        let port = address.rsplit(':').next().unwrap().parse().unwrap();
        BinaryServer { process, address, port }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        self.process.signal(name);
    }

    /// SIGKILL, then waits for the process to be gone: no shutdown code runs.
    pub async fn kill9(&mut self) {
        self.process.kill9().await;
    }

    /// The exit status if the process ends within `within`.
    pub async fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        self.process.exited_within(within).await
    }

    /// The resident set size of the process in KiB (`VmRSS` in `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The most the process has held resident since it started, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// The `http://HOST:PORT` that follows `marker` in a log, once the line is complete.
fn find_address(output: &str, marker: &str) -> Option<String> {
    let at = output.find(marker)?;
    let rest = &output[at + marker.len() - "http://".len()..];
    let address: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '\u{1b}').collect();
    address.rsplit(':').next()?.parse::<u16>().ok()?;
    Some(address)
}
