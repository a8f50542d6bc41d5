use common::{FaultKind, FaultPlan, RunDetail, RunState};
use tests::{spawn_app, spawn_app_in};

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
        assert_eq!(RunDetail::fold(&events).unwrap(), details_before[i], "the replay folds into the same run");
    }

    // The restarted server still accepts and runs new work on the same files.
    let fresh = app.submit("After the restart").await;
    app.wait_for_state(fresh.id, RunState::Completed).await;
    assert_eq!(app.runs().await.len(), 4);
    assert_eq!(app.dirs.journal().len(), 4);
}
