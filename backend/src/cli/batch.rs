//! `backend batch FILE`: submits a file of prompts to a running server and follows the batch
//! to its end with a progress line, as a person at a terminal or a script in CI would.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use backend::batch::file::Format;
use backend::config::{BatchArgs, BatchFileFormat};
use bytes::Bytes;
use common::{BatchSummary, ErrorBody, ModelPace};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// How often the batch is read while following it.
const POLL: Duration = Duration::from_secs(1);

pub async fn submit_and_follow(args: BatchArgs) -> anyhow::Result<ExitCode> {
    let server = Server::new(&args.server, args.auth_token.clone())?;
    let (format, bytes) = read_items(&args)?;
    let template = match (&args.template, &args.template_file) {
        (Some(template), _) => Some(template.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the template from {}", path.display()))?,
        ),
        (None, None) => None,
    };
    let query = settings_query(&args, template.as_deref());
    let (status, body) = server.send(Method::POST, &format!("/api/batches{query}"), Some((format, bytes))).await?;
    if status != StatusCode::ACCEPTED {
        bail!("the server refused the batch ({status}): {}", error_text(&body));
    }
    let batch: BatchSummary = serde_json::from_slice(&body).context("the server's answer is not a batch")?;
    eprintln!("batch {} accepted: {} items, model {}", batch.id, batch.total, batch.model_id);
    println!("{}", batch.id);
    if args.no_follow {
        return Ok(ExitCode::SUCCESS);
    }
    let batch = follow(&server, &batch).await?;
    if let Some(path) = &args.output {
        let csv = path.extension().is_some_and(|ext| ext.eq_ignore_ascii_case("csv"));
        let export = format!("/api/batches/{}/export?format={}", batch.id, if csv { "csv" } else { "jsonl" });
        let (status, body) = server.send(Method::GET, &export, None).await?;
        if status != StatusCode::OK {
            bail!("cannot export the results ({status}): {}", error_text(&body));
        }
        std::fs::write(path, &body).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    let counts = &batch.counts;
    if counts.completed == batch.total {
        eprintln!("all {} items completed", batch.total);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} of {} items completed; {} failed, {} crashed, {} cancelled",
            counts.completed, batch.total, counts.failed, counts.crashed, counts.cancelled
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The file's format (from `--format`, else its extension) and its bytes.
fn read_items(args: &BatchArgs) -> anyhow::Result<(Format, Vec<u8>)> {
    let stdin = args.file.as_os_str() == "-";
    let format = match args.format {
        Some(BatchFileFormat::Text) => Format::Text,
        Some(BatchFileFormat::Jsonl) => Format::JsonLines,
        Some(BatchFileFormat::Csv) => Format::Csv,
        None if stdin => Format::Text,
        None => Format::from_file_name(&args.file.to_string_lossy()),
    };
    let mut bytes = Vec::new();
    if stdin {
        std::io::stdin().read_to_end(&mut bytes).context("cannot read standard input")?;
    } else {
        bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    }
    Ok((format, bytes))
}

/// `?model_id=…&…` for the settings given, or nothing.
fn settings_query(args: &BatchArgs, template: Option<&str>) -> String {
    let max_tokens = args.max_tokens.map(|n| n.to_string());
    let temperature = args.temperature.map(|t| t.to_string());
    let pairs = [
        ("model_id", args.run_model_id.as_deref()),
        ("system", args.system.as_deref()),
        ("max_tokens", max_tokens.as_deref()),
        ("temperature", temperature.as_deref()),
        ("template", template),
    ];
    let encoded: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| {
            value.map(|value| {
                format!("{name}={}", percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC))
            })
        })
        .collect();
    if encoded.is_empty() { String::new() } else { format!("?{}", encoded.join("&")) }
}

/// A batch as `GET /api/batches/{id}` answers it.
#[derive(Deserialize)]
struct Detail {
    #[serde(flatten)]
    summary: BatchSummary,
    pace: ModelPace,
}

/// Reads the batch every [`POLL`] and prints its progress until nothing more will happen.
async fn follow(server: &Server, batch: &BatchSummary) -> anyhow::Result<BatchSummary> {
    let path = format!("/api/batches/{}", batch.id);
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let first_finished = batch.counts.finished();
    let mut last_line = String::new();
    loop {
        let (status, body) = server.send(Method::GET, &path, None).await?;
        if status != StatusCode::OK {
            bail!("cannot read the batch ({status}): {}", error_text(&body));
        }
        let detail: Detail = serde_json::from_slice(&body).context("the server's answer is not a batch")?;
        let line = progress_line(&detail, started.elapsed(), first_finished);
        if line != last_line {
            let mut stderr = std::io::stderr();
            if terminal {
                let _ = write!(stderr, "\r\x1b[2K{line}");
            } else {
                let _ = writeln!(stderr, "{line}");
            }
            let _ = stderr.flush();
            last_line = line;
        }
        let summary = detail.summary;
        let done = summary.counts.finished() == summary.total
            || (summary.cancelled && summary.counts.pending + summary.counts.running == 0);
        if done {
            if terminal {
                eprintln!();
            }
            return Ok(summary);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `412/2000 done · 3 failed · 8 running (limit 8, 2 throttled) · 6.1/s · about 5 min left`.
fn progress_line(detail: &Detail, elapsed: Duration, first_finished: u64) -> String {
    let summary = &detail.summary;
    let counts = &summary.counts;
    let mut line = format!("{}/{} done", counts.finished(), summary.total);
    let unsuccessful = counts.failed + counts.crashed;
    if unsuccessful > 0 {
        line.push_str(&format!(" · {unsuccessful} failed"));
    }
    if counts.cancelled > 0 {
        line.push_str(&format!(" · {} cancelled", counts.cancelled));
    }
    line.push_str(&format!(
        " · {} running (limit {}, {} throttled)",
        counts.running + counts.pending,
        detail.pace.limit,
        detail.pace.throttles
    ));
    let finished_here = counts.finished().saturating_sub(first_finished);
    let secs = elapsed.as_secs_f64();
    if finished_here > 0 && secs > 0.0 {
        let rate = finished_here as f64 / secs;
        let left = summary.total.saturating_sub(counts.finished()) as f64 / rate;
        line.push_str(&format!(" · {rate:.1}/s"));
        if left >= 1.0 {
            line.push_str(&format!(" · about {} left", human(Duration::from_secs_f64(left))));
        }
    }
    line
}

fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs.div_ceil(60)),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// The server's error message, or the body as text.
fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|body| body.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(500).collect())
}

/// A running server, over plain HTTP.
struct Server {
    base: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Server {
    fn new(base: &str, token: Option<String>) -> anyhow::Result<Server> {
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") {
            bail!("--server must be an http:// address (for a TLS server, use a tunnel to its plain port)");
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Server { base: base.to_owned(), token, client })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Format, Vec<u8>)>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some((format, bytes)) => {
                request.header(header::CONTENT_TYPE, format.media_type()).body(Full::new(Bytes::from(bytes)))
            }
            None => request.body(Full::new(Bytes::new())),
        }
        .context("cannot build the request")?;
        let response =
            self.client.request(request).await.with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = response.status();
        let body = response.into_body().collect().await.context("the server's answer broke off")?.to_bytes();
        Ok((status, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_would_say_them() {
        assert_eq!(human(Duration::from_secs(42)), "42 s");
        assert_eq!(human(Duration::from_secs(61)), "2 min");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 120)), "3 h 2 min");
    }
}
