use backend::emulator::reply_for;
use common::RunState;
use futures_util::future::join_all;
use tests::spawn_app;

#[tokio::test]
async fn fifty_concurrent_submissions_each_get_the_answer_to_their_own_prompt() {
    let app = spawn_app().await;
    let prompts: Vec<String> = (0..50).map(|i| format!("Concurrent prompt number {i}: {}", "x".repeat(i))).collect();

    let runs = join_all(prompts.iter().map(|p| app.submit(p))).await;
    let ids: std::collections::HashSet<_> = runs.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 50, "every submission is its own run");

    let finished = join_all(runs.iter().map(|r| app.wait_until_finished(r.id))).await;
    for (prompt, run) in prompts.iter().zip(&finished) {
        assert_eq!(run.state, RunState::Completed, "{:?}", run.error);
        assert_eq!(&run.prompt, prompt);
        assert_eq!(run.response.as_deref(), Some(reply_for(prompt).as_str()), "run {} answered another prompt", run.id);
    }
    assert_eq!(app.runs().await.len(), 50);
    let journal = app.dirs.journal();
    assert_eq!(journal.len(), 50);
    assert!(journal.iter().all(|r| matches!(r, backend::journal::ScannedRecord::Intact { .. })));
}
