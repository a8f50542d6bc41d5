//! A property test of the run state machine through the real server: random fault plans,
//! retry budgets and cancellations; every run ends in exactly one terminal state that never
//! changes, with gapless events and never more attempts than the policy allows.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use backend::emulator::faults::fails;
use common::{EventKind, FaultKind, FaultPlan, RunState, TaskName};
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

async fn check(app: &TestApp, case: &Case, outcomes: &Mutex<BTreeMap<String, u32>>) {
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
    // Anything after the terminal state would be a second ending.
    while let Some(event) = feed.next_within(Duration::from_millis(100)).await {
        events.push(event);
    }
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
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.run(run.id).await.state, final_state, "{case:?}: a terminal state never changes");
    let key = format!("{final_state}{}", if cancel_status == Some(202) { " (cancel accepted)" } else { "" });
    *outcomes.lock().unwrap().entry(key).or_default() += 1;
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
                    args.app.stream_idle_timeout_secs = 0.2;
                    args.app.emulator_tokens_per_sec = 400;
                })
                .await,
            );
        }
        apps
    });
    let outcomes = Mutex::new(BTreeMap::new());
    let cases_count = if crate::support::long() { 200 } else { 24 };
    let mut runner = TestRunner::new(Config { cases: cases_count, failure_persistence: None, ..Config::default() });
    runner
        .run(&cases(), |case| {
            runtime.block_on(check(&apps[case.retries as usize], &case, &outcomes));
            Ok(())
        })
        .unwrap();
    eprintln!("FIGURE state machine: {cases_count} cases; outcomes {:?}", outcomes.lock().unwrap());
    runtime.block_on(async {
        for app in apps {
            app.stop().await;
        }
    });
}
