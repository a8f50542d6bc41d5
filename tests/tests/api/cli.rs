use std::process::Output;

use backend::emulator::reply_for;
use backend::journal::ScannedRecord;
use tests::{TestDirs, backend_command, run_backend};

/// `backend run ARGS` with the emulator forced and the given files; waits for it to exit.
async fn backend_run(dirs: &TestDirs, args: &[&str]) -> Output {
    let mut command = backend_command(["run"]);
    command
        .args(args)
        .arg("--data-dir")
        .arg(&dirs.data_dir)
        .arg("--prompts-file")
        .arg(&dirs.prompts_file)
        .args(["--emulator-tokens-per-sec", "0", "--emulator-latency-ms", "0"])
        .args(["--load-retry-delay-secs", "0.05", "--bedrock-retry-delay-secs", "0.05"])
        .env("APP_BEDROCK", "emulator")
        .env("RUST_LOG", "warn");
    if let Some(url) = &dirs.database_url {
        command.args(["--database-url", url]);
    }
    run_backend(&mut command).await
}

#[tokio::test]
async fn backend_run_prints_the_emulated_reply_and_exits_zero() {
    let dirs = TestDirs::new();
    let prompt = "Why do flows retry?";
    let output = backend_run(&dirs, &["--prompt", prompt]).await;
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{:?}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.strip_suffix('\n'), Some(reply_for(prompt).as_str()));
    let records = dirs.journal();
    assert!(
        records.iter().any(|r| matches!(r, ScannedRecord::Intact { prompt: p, .. } if p == prompt)),
        "the prompt went through the journal: {records:#?}"
    );
}

#[tokio::test]
async fn backend_run_reads_the_prompt_from_a_file() {
    let dirs = TestDirs::new();
    let file = dirs.data_dir.with_file_name("my-prompt.txt");
    let prompt = "A prompt\nover two lines\n";
    std::fs::write(&file, prompt).unwrap();
    let output = backend_run(&dirs, &["--prompt-file", file.to_str().unwrap()]).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8(output.stdout).unwrap().strip_suffix('\n'), Some(reply_for(prompt).as_str()));
}

#[tokio::test]
async fn backend_run_exits_non_zero_when_bedrock_rejects_the_call() {
    let dirs = TestDirs::new();
    let output = backend_run(&dirs, &["--prompt", "hello", "--model-id", "bogus.model"]).await;
    assert!(!output.status.success(), "exit status {:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Failed"), "the failure is reported: {stderr}");
}

#[tokio::test]
async fn backend_run_refuses_an_empty_prompt() {
    let dirs = TestDirs::new();
    let output = backend_run(&dirs, &["--prompt", "   "]).await;
    assert!(!output.status.success());
    assert!(dirs.journal().is_empty());
}
