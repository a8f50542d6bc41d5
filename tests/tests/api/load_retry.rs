use backend::emulator::reply_for;
use common::{RunState, TaskName, TaskState};
use tests::{attempts, spawn_app_with, unique_prompt};

#[tokio::test]
async fn a_load_prompt_file_failure_is_retried_until_the_journal_is_back() {
    if tests::on_postgres() {
        return; // `prompts.txt` is the SQLite mode's journal; a cluster journals in a table.
    }
    // Long enough to put the file back between attempts, short enough for a test.
    let app = spawn_app_with(|args| args.app.load_retry_delay_secs = 1.0).await;
    let journal = app.dirs.prompts_file.clone();
    let moved = journal.with_extension("moved");
    // The writer keeps its descriptor, so the append lands in the moved file; the reader opens
    // the path and finds nothing.
    std::fs::rename(&journal, &moved).unwrap();
    let prompt = unique_prompt("Read me back after a hiccup");
    let run = app.submit(&prompt).await;

    let waiting = app
        .wait_for(run.id, "load_prompt_file awaiting its retry", |d| {
            d.tasks[0].state == TaskState::AwaitingRetry || d.state.is_terminal()
        })
        .await;
    std::fs::rename(&moved, &journal).unwrap();
    let first = &attempts(&waiting, TaskName::LoadPromptFile)[0];
    assert_eq!(first.state, TaskState::AwaitingRetry, "{waiting:#?}");
    assert_eq!(first.retryable, Some(true));
    assert!(first.error.is_some());
    assert_eq!(first.retry_delay_ms, Some(1000));

    let run = app.wait_for_state(run.id, RunState::Completed).await;
    let loads = attempts(&run, TaskName::LoadPromptFile);
    assert_eq!(loads.len(), 2, "{loads:#?}");
    assert_eq!(loads[1].state, TaskState::Completed);
    assert_eq!(run.response.as_deref(), Some(reply_for(&prompt).as_str()));
    let logs = app.logs(run.id).await;
    assert!(logs.iter().any(|l| l.task == Some(TaskName::LoadPromptFile) && l.attempt == Some(2)));
}

#[tokio::test]
async fn a_journal_that_stays_missing_fails_the_run_after_three_load_attempts() {
    if tests::on_postgres() {
        return; // `prompts.txt` is the SQLite mode's journal; a cluster journals in a table.
    }
    let app = spawn_app_with(|_| {}).await;
    std::fs::rename(&app.dirs.prompts_file, app.dirs.prompts_file.with_extension("gone")).unwrap();
    let run = app.submit("Nobody will find me").await;
    let run = app.wait_for_state(run.id, RunState::Failed).await;
    assert_eq!(attempts(&run, TaskName::LoadPromptFile).len(), 3);
    assert!(attempts(&run, TaskName::CallBedrock).is_empty(), "call_bedrock never starts");
    // A finished run leaves no task pending: the one that never ran says why.
    assert_eq!(run.tasks[1].state, TaskState::Failed);
    assert_eq!(run.tasks[1].not_run.as_deref(), Some("not run: load_prompt_file failed"));
}
