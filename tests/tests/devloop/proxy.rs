//! What a page under `trunk serve` needs from Trunk's proxy: its REST calls and its live event
//! feed reach the backend.

use backend::emulator::reply_for;
use common::{RunDetail, RunState};
use tests::unique_prompt;

use crate::trunk::start_dev_loop;

#[tokio::test]
async fn a_run_submitted_through_trunk_serve_streams_its_events_through_trunk_serve_to_the_end() {
    let (backend, trunk) = start_dev_loop().await;
    let prompt = unique_prompt("Stream me through the dev server");

    let run = trunk.submit(&prompt).await;
    let events = trunk.follow_until_finished(run.id).await;

    let seen = RunDetail::fold(&events).unwrap();
    assert_eq!(seen.state, RunState::Completed, "{seen:#?}");
    assert_eq!(seen.response.as_deref(), Some(reply_for(&prompt).as_str()), "the emulator's reply, streamed whole");
    assert_eq!(seen, tests::unpriced(backend.run(run.id).await), "the run as the backend itself tells it");
}
