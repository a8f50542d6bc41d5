use backend::emulator::reply_for;
use common::{Event, EventKind, RunDetail, RunId, RunState};
use tests::{spawn_app, spawn_app_with, unique_prompt};

use crate::expected::{reported_usage, streamed_text, usage_for};

/// Asserts the events are exactly `from..=from+n-1` of one run, in order.
fn assert_contiguous(events: &[Event], id: RunId, from: u64) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (from..from + events.len() as u64).collect();
    assert_eq!(seqs, expected, "sequence numbers have gaps or duplicates");
    assert!(events.iter().all(|e| e.run_id == id));
}

fn assert_ends_completed(events: &[Event]) {
    match &events.last().unwrap().kind {
        EventKind::RunState { state, .. } => assert_eq!(*state, RunState::Completed),
        other => panic!("the last event is {other:?}"),
    }
}

/// Asserts a run's whole event sequence carries the emulator's known answer to `prompt`: read
/// off the raw events, and as the fold (the page's and the server's one picture) makes it.
fn assert_answers(events: &[Event], prompt: &str) {
    assert_eq!(streamed_text(events), reply_for(prompt), "the deltas spell the emulator's reply");
    assert_eq!(reported_usage(events), Some(usage_for(prompt)), "the emulator's token counts");
    let folded = RunDetail::fold(events).unwrap();
    assert_eq!(folded.prompt, prompt);
    assert_eq!(folded.response.as_deref(), Some(reply_for(prompt).as_str()), "the folded response");
    assert_eq!(folded.usage, Some(usage_for(prompt)), "the folded usage");
}

#[tokio::test]
async fn a_websocket_client_sees_the_full_ordered_event_sequence_of_a_run() {
    let app = spawn_app_with(|args| args.app.emulator_tokens_per_sec = 200).await;
    let prompt = unique_prompt("Stream every event");
    let run = app.submit(&prompt).await;
    let mut feed = app.ws_follow(run.id, 0).await;

    let events = feed.until_finished(run.id).await;
    assert_contiguous(&events, run.id, 1);
    assert!(matches!(events[0].kind, EventKind::RunCreated { .. }), "{:?}", events[0]);
    assert_ends_completed(&events);
    for kind in ["run_state", "task_state", "log", "delta", "model_result"] {
        let json: Vec<serde_json::Value> = events.iter().map(|e| serde_json::from_str(&e.to_json()).unwrap()).collect();
        assert!(json.iter().any(|j| j["type"] == kind), "no {kind} event");
    }

    assert_answers(&events, &prompt);
    let rest = app.run(run.id).await;
    assert_eq!(rest.last_seq, events.last().unwrap().seq);
    assert_eq!(rest.response.as_deref(), Some(reply_for(&prompt).as_str()), "REST has the emulator's reply");
    assert_eq!(rest.usage, Some(usage_for(&prompt)), "REST has the emulator's token counts");
    assert_eq!(RunDetail::fold(&events).unwrap(), tests::unpriced(rest), "the events fold into the REST detail");
}

#[tokio::test]
async fn reconnecting_mid_run_with_after_seq_yields_exactly_the_events_after_it() {
    // Paced so the run is still streaming when the second client connects.
    let app = spawn_app_with(|args| args.app.emulator_tokens_per_sec = 50).await;
    let prompt = unique_prompt("Reconnect halfway");
    let run = app.submit(&prompt).await;
    let mut from_start = app.ws_follow(run.id, 0).await;
    let midway = app.wait_until_streaming(run.id).await;
    let after = midway.last_seq;

    let mut resumed = app.ws_follow(run.id, after).await;
    let tail = resumed.until_finished(run.id).await;
    let all = from_start.until_finished(run.id).await;

    assert_eq!(tail.first().unwrap().seq, after + 1, "resumes right after {after}");
    assert_contiguous(&tail, run.id, after + 1);
    assert_contiguous(&all, run.id, 1);
    assert_eq!(tail.as_slice(), &all[after as usize..], "the same events as the client that never left");
    assert_ends_completed(&tail);
    assert_answers(&all, &prompt);
    assert!(reply_for(&prompt).starts_with(midway.response.as_deref().unwrap()), "midway: a prefix of the reply");
    assert_eq!(RunDetail::fold(&all).unwrap(), tests::unpriced(app.run(run.id).await));
    // A page that rebuilds from REST plus the resumed tail gets the same, known answer.
    let mut rebuilt = midway.clone();
    for event in &tail {
        rebuilt.apply(event);
    }
    assert_eq!(rebuilt.response.as_deref(), Some(reply_for(&prompt).as_str()), "REST midway + the tail");
    assert_eq!(rebuilt.usage, Some(usage_for(&prompt)));
    assert_eq!(tests::unpriced(rebuilt), tests::unpriced(app.run(run.id).await));
}

#[tokio::test]
async fn the_all_runs_feed_sees_the_events_of_a_run_submitted_after_connecting() {
    let app = spawn_app().await;
    let mut feed = app.ws_all().await;
    // The server subscribes the socket just after the upgrade answer: make sure it is listening
    // by seeing a warm-up run's last event before submitting the run under test.
    'warm: for _ in 0..10 {
        let warmup = app.submit("warm-up").await;
        while let Some(event) = feed.next_within(std::time::Duration::from_secs(1)).await {
            if event.run_id == warmup.id
                && matches!(event.kind, EventKind::RunState { state, .. } if state.is_terminal())
            {
                break 'warm;
            }
        }
    }

    let prompt = unique_prompt("Broadcast me");
    let run = app.submit(&prompt).await;
    let events = feed.until_finished(run.id).await;
    assert_contiguous(&events, run.id, 1);
    assert!(matches!(events[0].kind, EventKind::RunCreated { .. }));
    assert_ends_completed(&events);
    assert_answers(&events, &prompt);
    assert_eq!(RunDetail::fold(&events).unwrap(), tests::unpriced(app.run(run.id).await));
}

#[tokio::test]
async fn a_finished_run_is_replayed_from_any_after_seq_and_then_the_socket_stays_quiet() {
    let app = spawn_app().await;
    let run = app.submit("Replay me").await;
    let done = app.wait_until_finished(run.id).await;

    let mut feed = app.ws_follow(run.id, 2).await;
    // Read up to the terminal event with the generous deadline; only then look for extras, so a
    // slow machine can miss nothing that is there and never fails for being slow.
    let events = feed.until_finished(run.id).await;
    assert_contiguous(&events, run.id, 3);
    assert_eq!(events.last().unwrap().seq, done.last_seq, "the replay ends with the stored terminal event");
    assert!(feed.next_within(std::time::Duration::from_millis(300)).await.is_none(), "nothing after the end");

    let mut at_end = app.ws_follow(run.id, done.last_seq).await;
    assert!(at_end.next_within(std::time::Duration::from_millis(200)).await.is_none());
}
