//! Helpers of the hardening suite that the shared `tests` library lacks: the database's
//! integrity check, raw HTTP for requests a well-behaved client refuses to send, submitting to
//! a server in another process, cheap randomness and percentiles. The `backend` binary as a
//! child process is `tests::BinaryServer`.

use std::path::Path;
use std::time::Duration;

use common::{RunId, RunSummary};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether the long soaks run (`HARDENING_LONG=1`).
pub fn long() -> bool {
    std::env::var("HARDENING_LONG").is_ok_and(|v| v == "1")
}

/// A small random number below `bound`, from the OS-seeded UUID generator (enough for delays).
pub fn random_below(bound: u64) -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes(bytes[..8].try_into().unwrap()) % bound.max(1)
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
