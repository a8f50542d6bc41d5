//! A property test of the run state machine through the real server: random fault plans,
//! retry budgets and cancellations; every run ends in exactly one terminal state that never
//! changes and that nothing follows (`EventKind::ends_run`: no event of the run comes after
//! it, neither to a client nor in the store), with gapless events and never more attempts than
//! the policy allows.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use backend::emulator::faults::fails;
use common::{Event, EventKind, FaultKind, FaultPlan, RunId, RunState, TaskName};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tests::{TestApp, attempts, spawn_app_with, unique_prompt};

#[derive(Debug, Clone)]
struct Case {
    plan: Option<FaultPlan>,
    retries: u32,
    cancel_after_ms: Option<u64>,
}

fn cases() -> impl Strategy<Value = Case> {
    let kind = prop::sample::select(FaultKind::ALL.to_vec());
    let plan = prop::option::weighted(0.8, (kind, 0u32..4, 0u32..3))
        .prop_map(|p| p.map(|(kind, fail_first, every_nth)| FaultPlan { kind, fail_first, every_nth }));
    let cancel = prop::option::weighted(0.3, 0u64..120);
    (plan, 0u32..4, cancel).prop_map(|(plan, retries, cancel_after_ms)| Case { plan, retries, cancel_after_ms })
}

/// What the policy says happens without cancellation: the final state and the call attempts.
fn expected(plan: Option<FaultPlan>, max_attempts: u32) -> (RunState, u32) {
    for call in 1..=max_attempts {
        match plan {
            Some(plan) if fails(plan, u64::from(call)) => {
                if plan.kind == FaultKind::Validation {
                    return (RunState::Failed, call);
                }
            }
            _ => return (RunState::Completed, call),
        }
    }
    (RunState::Failed, max_attempts)
}

/// A run's end as the property saw it, re-checked once every case has run.
struct Ended {
    app: usize,
    id: RunId,
    state: RunState,
    seq: u64,
}

/// Fails unless the run's terminal `run_state` is its last event: after a run's end, no event
/// at all is allowed (a late log line, delta or `task_state` would contradict the ending).
fn assert_nothing_after_the_end(case: &Case, events: &[Event]) {
    let end = events.iter().position(|e| e.kind.ends_run()).expect("a terminal event");
    let after: Vec<&EventKind> = events[end + 1..].iter().map(|e| &e.kind).collect();
    assert!(after.is_empty(), "{case:?}: events after the run's end (seq {}): {after:#?}", events[end].seq);
}

/// Fails unless what the server stored for the run also ends at its terminal event: the REST
/// detail folds every stored event, so its `last_seq` is the last one's, and no log line is
/// numbered after the end.
async fn assert_stored_end(app: &TestApp, what: &str, id: RunId, state: RunState, end_seq: u64) {
    let detail = app.run(id).await;
    assert_eq!(detail.state, state, "{what}: a terminal state never changes");
    assert_eq!(detail.last_seq, end_seq, "{what}: the stored events go on after the run's end (seq {end_seq})");
    let late: Vec<_> = app.logs(id).await.into_iter().filter(|l| l.seq > end_seq).collect();
    assert!(late.is_empty(), "{what}: log lines after the run's end: {late:#?}");
}

async fn check(app: &TestApp, case: &Case, outcomes: &Mutex<BTreeMap<String, u32>>) -> (RunId, RunState, u64) {
    let max_attempts = case.retries + 1;
    app.app.emulator().expect("the test app runs on the emulator").set_faults(case.plan);
    let run = app.submit(&unique_prompt("property")).await;
    let mut feed = app.ws_follow(run.id, 0).await;
    let mut cancel_status = None;
    if let Some(ms) = case.cancel_after_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        cancel_status = Some(app.cancel(&run.id.to_string()).await.status().as_u16());
    }
    let mut events = feed.until_finished(run.id).await;
    // Whatever else the socket still carries joins the sequence under test. No fixed window can
    // prove absence: the stored history is checked again after every other case has run.
    while let Some(event) = feed.next_within(Duration::from_millis(100)).await {
        events.push(event);
    }
    assert_nothing_after_the_end(case, &events);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{case:?}: seq gapless from 1");
    let terminals: Vec<RunState> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RunState { state, .. } if state.is_terminal() => Some(*state),
            _ => None,
        })
        .collect();
    assert_eq!(terminals.len(), 1, "{case:?}: exactly one terminal state: {terminals:?}");
    let final_state = terminals[0];

    let detail = app.run(run.id).await;
    assert_eq!(detail.state, final_state, "{case:?}");
    assert_eq!(detail.last_seq, *seqs.last().unwrap(), "{case:?}");
    for task in &detail.tasks {
        assert!(task.attempts.len() as u32 <= max_attempts, "{case:?}: {} made {}", task.name, task.attempts.len());
    }
    let calls = attempts(&detail, TaskName::CallBedrock).len() as u32;
    let (state, want_calls) = expected(case.plan, max_attempts);
    match cancel_status {
        None | Some(409) => {
            assert_eq!((final_state, calls), (state, want_calls), "{case:?}: {detail:#?}");
        }
        Some(202) => {
            assert!(final_state == RunState::Cancelled || final_state == state, "{case:?}: {final_state}");
            assert!(calls <= want_calls, "{case:?}");
        }
        Some(other) => panic!("{case:?}: cancel answered {other}"),
    }
    let end_seq = *seqs.last().unwrap();
    assert_stored_end(app, &format!("{case:?}"), run.id, final_state, end_seq).await;
    let key = format!("{final_state}{}", if cancel_status == Some(202) { " (cancel accepted)" } else { "" });
    *outcomes.lock().unwrap().entry(key).or_default() += 1;
    (run.id, final_state, end_seq)
}

#[test]
fn random_faults_retries_and_cancels_always_end_in_one_terminal_state_within_the_policy() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // One server per retry budget, reused across cases (the budget is server configuration).
    let apps: Vec<TestApp> = runtime.block_on(async {
        let mut apps = Vec::new();
        for retries in 0..4 {
            apps.push(
                spawn_app_with(|args| {
                    args.app.retries = retries;
                    args.app.load_retry_delay_secs = 0.01;
                    args.app.bedrock_retry_delay_secs = 0.01;
                    // Long enough that a loaded machine never mistakes a healthy stream for a
                    // stall (which would add an attempt the policy did not predict); a `Stall`
                    // fault costs at most this per attempt.
                    args.app.stream_idle_timeout_secs = 2.0;
                    args.app.emulator_tokens_per_sec = 400;
                })
                .await,
            );
        }
        apps
    });
    let outcomes = Mutex::new(BTreeMap::new());
    let ended = Mutex::new(Vec::new());
    let cases_count = if crate::support::long() { 200 } else { 24 };
    let mut runner = TestRunner::new(Config { cases: cases_count, failure_persistence: None, ..Config::default() });
    runner
        .run(&cases(), |case| {
            let app = case.retries as usize;
            let (id, state, seq) = runtime.block_on(check(&apps[app], &case, &outcomes));
            ended.lock().unwrap().push(Ended { app, id, state, seq });
            Ok(())
        })
        .unwrap();
    // Every later case gave each run's leftovers (a retry timer, a cancelled stream) time to
    // show: its stored history must still end where its client saw it end.
    let ended = ended.into_inner().unwrap();
    runtime.block_on(async {
        for run in &ended {
            assert_stored_end(&apps[run.app], &format!("run {} at the end", run.id), run.id, run.state, run.seq).await;
        }
    });
    eprintln!(
        "FIGURE state machine: {cases_count} cases ({} runs re-checked at the end); outcomes {:?}",
        ended.len(),
        outcomes.lock().unwrap()
    );
    runtime.block_on(async {
        for app in apps {
            app.stop().await;
        }
    });
}
