//! The server under test: the release `backend` binary in its own process, so its memory and
//! start-up are measured as a user would see them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running `backend serve`.
pub struct Server {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its address, `127.0.0.1:PORT`.
    pub addr: String,
    /// How long from `spawn` until `/api/health` answered.
    pub started_in: Duration,
}

/// Picks a free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Starts `backend serve` with `flags`, its data in `data_dir`, and waits for `/api/health`.
    pub async fn start(binary: &Path, data_dir: &Path, flags: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Server> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(["--addr", &addr])
            .arg("--data-dir")
            .arg(data_dir.join("data"))
            .arg("--prompts-file")
            .arg(data_dir.join("prompts.txt"))
            .args(["--static-dir", "/nonexistent"])
            .args(flags)
            .env("RUST_LOG", "warn")
            .env_remove("AWS_PROFILE")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let started = Instant::now();
        let child = command.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
        let url = format!("http://{addr}");
        let mut server = Server { child, url, addr, started_in: Duration::ZERO };
        server.started_in = server.wait_healthy(started).await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self, started: Instant) -> anyhow::Result<Duration> {
        let client = reqwest::Client::new();
        let health = format!("{}/api/health", self.url);
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(response) = client.get(&health).send().await
                && response.status().is_success()
            {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited during start-up: {status}");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        bail!("the server did not answer /api/health within 30 s")
    }

    fn status_field(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line =
            status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field} in /proc status"))?;
        let kb: u64 = line.split_whitespace().nth(1).context("malformed status line")?.parse()?;
        Ok(kb * 1024)
    }

    /// Resident memory now, in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        self.status_field("VmRSS:")
    }

    /// Peak resident memory so far, in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        self.status_field("VmHWM:")
    }

    /// Stops the server (SIGKILL: the figures are taken, shutdown is tested elsewhere).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh scratch directory under the target dir.
pub fn scratch(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("prompt-pipeline-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Megabytes, for the report.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}
