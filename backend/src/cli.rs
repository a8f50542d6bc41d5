//! The subcommands, each a thin layer over the library.

pub mod batch;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use backend::app::{App, StartupError};
use backend::config::{EmulatorArgs, JournalExportArgs, RunArgs, ServeArgs};
use backend::emulator::Emulator;
use backend::journal::JournalError;
use backend::startup::{Application, shutdown_signal};
use backend::store::{PgStore, StoreError};
use backend::submission::MAX_TOKENS_LIMIT;
use common::{ApiLimits, BedrockBackend, EventKind, RunState, SubmitRun};

/// `backend serve`: the web app until Ctrl-C or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let static_dir = args.static_dir.clone();
    let token = args.auth_token.clone();
    let application = Application::build(args).await.context("cannot start the server")?;
    let info = application.app().bedrock();
    if info.backend == BedrockBackend::Emulator {
        tracing::warn!(endpoint = %info.endpoint, "no AWS configuration found: calling the built-in Bedrock emulator, not AWS");
    } else {
        let credentials = info.credentials.as_deref().unwrap_or("SDK default chain");
        tracing::info!(endpoint = %info.endpoint, region = %info.region, credentials, "calling Bedrock");
    }
    if !static_dir.join("index.html").is_file() {
        tracing::warn!(dir = %static_dir.display(), "the frontend is not built; only the API is served");
    }
    tracing::info!("listening on http://{}", application.addr());
    if let Some(token) = token {
        // Printed, not logged: the token opens the app, so it stays out of log files.
        println!("open http://{}/?token={token} once to sign this browser in", application.addr());
    }
    application.run_until_stopped(shutdown_signal()).await.context("server error")?;
    Ok(ExitCode::SUCCESS)
}

/// `backend run`: one run from the terminal, like the original `python flow.py`.
pub async fn run_once(args: RunArgs) -> anyhow::Result<ExitCode> {
    let prompt = match (&args.prompt, &args.prompt_file) {
        (Some(prompt), _) => prompt.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read the prompt from {}", path.display()))?
        }
        (None, None) => anyhow::bail!("give --prompt or --prompt-file"),
    };
    let limits =
        ApiLimits { max_body_bytes: usize::MAX, max_prompt_bytes: 10 * 1024 * 1024, max_tokens: MAX_TOKENS_LIMIT };
    let app = match App::build(&args.app, limits).await {
        Ok(app) => app,
        Err(error @ (StartupError::Store(StoreError::Locked(_)) | StartupError::Journal(JournalError::Locked(_)))) => {
            return Err(anyhow::Error::new(error).context(
                "cannot start: a server is using these files; stop it, or give this run its own --data-dir and --prompts-file",
            ));
        }
        Err(error) => return Err(anyhow::Error::new(error).context("cannot start")),
    };
    if app.bedrock().backend == BedrockBackend::Emulator {
        eprintln!("note: no AWS configuration found; using the built-in Bedrock emulator");
    }
    let request = SubmitRun { prompt, model_id: args.run_model_id, system: args.system, ..SubmitRun::default() };
    let run = app.submissions().submit(request, None).await.context("the run was not accepted")?;
    // Following from seq 0 replays whatever happened between acceptance and now.
    let mut feed = app.feed(Some((run.id, 0))).await.context("cannot follow the run")?;
    let mut stdout = std::io::stdout();
    let mut attempt = None;
    let code = loop {
        let Some(event) = feed.next().await.context("cannot read the run's events")? else {
            break ExitCode::FAILURE;
        };
        match &event.event.kind {
            EventKind::Delta { attempt: n, text } => {
                if attempt.is_some_and(|a| a != *n) {
                    eprintln!("\n--- attempt {n}: the response starts again ---");
                }
                attempt = Some(*n);
                let _ = write!(stdout, "{text}");
                let _ = stdout.flush();
            }
            EventKind::RunState { state, error } if state.is_terminal() => {
                println!();
                if let Some(error) = error {
                    eprintln!("run {} {state}: {error}", run.id);
                }
                break if *state == RunState::Completed { ExitCode::SUCCESS } else { ExitCode::FAILURE };
            }
            _ => {}
        }
    };
    app.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(code)
}

/// `backend emulator`: the Bedrock emulator alone, until Ctrl-C or SIGTERM.
pub async fn emulator(args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!("Bedrock emulator listening on http://{addr}");
    Emulator::new(args.emulator_config()).serve(listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `backend journal export`: the prompts table of a PostgreSQL store, as `prompts.txt`.
pub async fn journal_export(args: JournalExportArgs) -> anyhow::Result<ExitCode> {
    const PAGE: i64 = 1000;
    let store = PgStore::connect(&args.database_url, "journal-export".to_owned())
        .await
        .context("cannot open the PostgreSQL store")?;
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let (mut after, mut count) = (0, 0u64);
    loop {
        let page = store.prompts_page(after, PAGE).await.context("cannot read the prompts table")?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, row) in &page {
            out.write_all(&backend::journal::encode_record(row.run_id, &row.prompt).0)?;
            count += 1;
        }
    }
    out.flush()?;
    eprintln!("exported {count} prompts");
    Ok(ExitCode::SUCCESS)
}
