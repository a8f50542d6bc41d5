use backend::emulator::reply_for;
use common::{FaultKind, FaultPlan, RunDetail, RunState};
use tests::{spawn_app, spawn_app_in};

use crate::expected::usage_for;

#[tokio::test]
async fn history_survives_a_restart_identically() {
    let app = spawn_app().await;
    let completed = app.submit("Remember me").await;
    app.wait_for_state(completed.id, RunState::Completed).await;
    app.inject(FaultPlan { kind: FaultKind::Validation, fail_first: 1, every_nth: 0 }).await;
    let failed = app.submit("Remember my failure").await;
    app.wait_for_state(failed.id, RunState::Failed).await;
    app.inject(FaultPlan { kind: FaultKind::Throttle, fail_first: 1, every_nth: 0 }).await;
    let retried = app.submit("Remember my retry").await;
    app.wait_for_state(retried.id, RunState::Completed).await;

    let ids = [completed.id, failed.id, retried.id];
    // The list is read from the store, which may trail the live detail by a moment.
    let list_before = tests::eventually("the list to show every run finished", || async {
        let runs = app.runs().await;
        runs.iter().all(|r| r.state.is_terminal()).then_some(runs)
    })
    .await;
    let mut details_before = Vec::new();
    let mut logs_before = Vec::new();
    for id in ids {
        details_before.push(app.run(id).await);
        logs_before.push(app.logs(id).await);
    }

    let dirs = app.stop().await;
    let app = spawn_app_in(dirs, |_| {}).await;

    // What each run must still say, known from the emulator rather than from the first server.
    for (id, prompt) in [(completed.id, "Remember me"), (retried.id, "Remember my retry")] {
        let run = app.run(id).await;
        assert_eq!(run.state, RunState::Completed, "run {id}");
        assert_eq!(run.response.as_deref(), Some(reply_for(prompt).as_str()), "run {id}: the emulator's reply");
        assert_eq!(run.usage, Some(usage_for(prompt)), "run {id}: the emulator's token counts");
    }
    let failed_run = app.run(failed.id).await;
    assert_eq!(failed_run.state, RunState::Failed);
    assert!(failed_run.error.is_some(), "the failure keeps its reason");
    assert_eq!(tests::attempts(&failed_run, common::TaskName::CallBedrock).len(), 1, "a validation error is final");
    assert_eq!(tests::attempts(&app.run(retried.id).await, common::TaskName::CallBedrock).len(), 2, "one retry");

    assert_eq!(app.runs().await, list_before, "the list is identical after the restart");
    for (i, id) in ids.into_iter().enumerate() {
        assert_eq!(app.run(id).await, details_before[i], "run {id} is identical after the restart");
        assert_eq!(app.logs(id).await, logs_before[i], "the logs of run {id} are identical");

        let mut feed = app.ws_follow(id, 0).await;
        let events = feed.until_finished(id).await;
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=details_before[i].last_seq).collect::<Vec<_>>()
        );
        let unpriced = tests::unpriced(details_before[i].clone());
        assert_eq!(RunDetail::fold(&events).unwrap(), unpriced, "the replay folds into the same run");
    }

    // The restarted server still accepts and runs new work on the same files.
    let fresh = app.submit("After the restart").await;
    app.wait_for_state(fresh.id, RunState::Completed).await;
    assert_eq!(app.runs().await.len(), 4);
    assert_eq!(app.dirs.journal().len(), 4);
}
