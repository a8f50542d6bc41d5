//! A batch across replicas: its items are spread over them, and the model's quota, which is the
//! account's, is learnt once and shared rather than assumed whole by each replica.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{BatchItem, BatchSummary, ItemState};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Pace, TestCluster};

const QUOTA: u64 = 30;
const ITEMS: usize = 40;

#[tokio::test]
async fn replicas_share_one_quota_learn_it_as_the_account_s_and_fail_no_item() {
    let cluster = TestCluster::start(2, Pace::QuotaPerMinute(QUOTA as u32), &[]).await;
    let prompts: Vec<String> = (0..ITEMS).map(|n| format!("Item {n} of a batch over its quota")).collect();
    let response =
        cluster.client.post(cluster.url(0, "/api/batches")).json(&json!({ "prompts": prompts })).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let batch: BatchSummary = response.json().await.unwrap();

    // The first minute lets 30 calls in; the other items wait for it to slide on.
    let started = Instant::now();
    let counts = loop {
        let summary: BatchSummary = get(&cluster, 0, &format!("/api/batches/{}", batch.id)).await;
        if summary.counts.finished() == summary.total {
            break summary.counts;
        }
        assert!(started.elapsed() < Duration::from_secs(240), "the batch never finished: {:?}", summary.counts);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let items: Vec<BatchItem> = get(&cluster, 0, &format!("/api/batches/{}/items?limit=100", batch.id)).await;
    if counts.completed != ITEMS as u64 {
        let mut why = Vec::new();
        for item in items.iter().filter(|item| item.state != ItemState::Completed) {
            let run = cluster.detail(0, item.run_id.expect("a finished item has its run")).await;
            why.push(format!("item {} (run {}, {:?}): {:?}", item.index, run.id, run.state, run.error));
        }
        panic!("{counts:?}: every item should complete:\n{}", why.join("\n"));
    }

    let mut runners = BTreeSet::new();
    for item in &items {
        runners.insert(cluster.owner(item.run_id.expect("a completed item has its run")).await);
    }
    assert_eq!(runners, BTreeSet::from([0, 1]), "the items ran on both replicas");

    // Each replica knows the account's quota, not its own share of the calls: one learnt it
    // from its throttles counting the other's calls, or adopted what the other learnt.
    for replica in 0..2 {
        let detail: Value = get(&cluster, replica, &format!("/api/batches/{}", batch.id)).await;
        let per_minute = detail["pace"]["per_minute"].as_u64();
        assert!(
            per_minute.is_some_and(|n| (QUOTA - 2..=QUOTA + 2).contains(&n)),
            "r{replica} paces at {per_minute:?} a minute; the quota is {QUOTA}"
        );
    }
    let status = cluster.bedrock.app.emulator().expect("the built-in emulator").status();
    println!(
        "quota {QUOTA}/min over 2 replicas, {ITEMS} items: {} of {} attempts throttled",
        status.throttled, status.calls
    );
    assert!(status.throttled < ITEMS as u64, "{} throttled attempts for {ITEMS} items", status.throttled);
}

async fn get<T: serde::de::DeserializeOwned>(cluster: &TestCluster, replica: usize, path: &str) -> T {
    let response = cluster.client.get(cluster.url(replica, path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {path} on r{replica}");
    response.json().await.unwrap()
}
