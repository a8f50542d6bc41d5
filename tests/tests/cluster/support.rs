//! A cluster for one test: a fresh PostgreSQL database, one Bedrock (an in-process server whose
//! built-in emulator counts every call it answers), and replica processes of the real binary
//! sharing both.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Event, RunDetail, RunId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::PgPool;
use tests::postgres::fresh_database;
use tests::{BinaryServer, DEADLINE, EventFeed, TestApp, TestDirs, serve_flags, spawn_app_with};

/// The lease of the test replicas: a dead one's runs are taken over within about this.
pub const LEASE_SECS: &str = "2";

/// How the test's Bedrock answers.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Whole answers at once.
    Instant,
    /// Streamed at this many tokens per second, so a run is mid-stream for a while.
    TokensPerSec(u32),
    /// Whole answers at once, to at most this many requests a minute per model; the rest are
    /// throttled as Bedrock throttles calls over an account's quota.
    QuotaPerMinute(u32),
}

pub struct TestCluster {
    pub database_url: String,
    pub db: PgPool,
    /// The Bedrock every replica calls.
    pub bedrock: TestApp,
    /// Replica `n` has id `r{n}`; a killed one stays in place (its process gone).
    pub replicas: Vec<BinaryServer>,
    extra: Vec<(&'static str, String)>,
    dirs: TestDirs,
    pub client: reqwest::Client,
}

impl TestCluster {
    /// `count` replicas with the test flags plus `extra`.
    pub async fn start(count: usize, pace: Pace, extra: &[(&'static str, &str)]) -> TestCluster {
        let database_url = fresh_database().await;
        let bedrock = spawn_app_with(|args| match pace {
            Pace::Instant => {}
            Pace::TokensPerSec(rate) => args.app.emulator_tokens_per_sec = rate,
            Pace::QuotaPerMinute(rpm) => args.app.emulator_quota_rpm = rpm,
        })
        .await;
        let db = PgPool::connect(&database_url).await.unwrap();
        let mut cluster = TestCluster {
            database_url,
            db,
            bedrock,
            replicas: Vec::new(),
            extra: extra.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            dirs: TestDirs::new(),
            client: reqwest::Client::builder().timeout(DEADLINE).build().unwrap(),
        };
        for _ in 0..count {
            cluster.add_replica().await;
        }
        cluster
    }

    /// Starts one more replica, `r{n}`; returns its index.
    pub async fn add_replica(&mut self) -> usize {
        let n = self.replicas.len();
        let endpoint = self.bedrock.health().await["bedrock"]["endpoint"].as_str().unwrap().to_owned();
        let mut flags: BTreeMap<&'static str, String> = serve_flags(&self.dirs);
        flags.insert("--database-url", self.database_url.clone());
        flags.insert("--replica-id", format!("r{n}"));
        flags.insert("--bedrock", "aws".to_owned());
        flags.insert("--bedrock-endpoint", endpoint);
        flags.insert("--lease-secs", LEASE_SECS.to_owned());
        for (flag, value) in &self.extra {
            flags.insert(flag, value.clone());
        }
        let env = [
            ("AWS_ACCESS_KEY_ID", "AKIDCLUSTERTEST"),
            ("AWS_SECRET_ACCESS_KEY", "cluster-test"),
            ("AWS_REGION", "us-east-1"),
        ];
        self.replicas.push(BinaryServer::start(&flags, &env).await);
        n
    }

    pub fn url(&self, replica: usize, path: &str) -> String {
        self.replicas[replica].url(path)
    }

    /// Submits `prompt` through `replica`; the accepted run's id.
    pub async fn submit(&self, replica: usize, prompt: &str) -> RunId {
        let response = self.post_run(replica, &json!({ "prompt": prompt }), None).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", response.text().await.unwrap());
        response.json::<RunDetail>().await.unwrap().id
    }

    pub async fn post_run(&self, replica: usize, body: &Value, key: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url(replica, "/api/runs")).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    pub async fn detail(&self, replica: usize, id: RunId) -> RunDetail {
        let response = self.client.get(self.url(replica, &format!("/api/runs/{id}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET run {id} on r{replica}");
        response.json().await.unwrap()
    }

    pub async fn health(&self, replica: usize) -> (StatusCode, Value) {
        let response = self.client.get(self.url(replica, "/api/health")).send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Waits (up to `within`) until `replica` reports the run finished.
    pub async fn finished(&self, replica: usize, id: RunId, within: Duration) -> RunDetail {
        let started = Instant::now();
        loop {
            let detail = self.detail(replica, id).await;
            if detail.state.is_terminal() {
                return detail;
            }
            assert!(started.elapsed() < within, "run {id} not finished after {within:?}: {:?}", detail.state);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The replica index that owns the run now, from the database.
    pub async fn owner(&self, id: RunId) -> usize {
        let owner: String = sqlx::query_scalar("SELECT owner FROM runs WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&self.db)
            .await
            .unwrap();
        owner.trim_start_matches('r').parse().unwrap()
    }

    /// The run's stored events, in order, with the epoch of the owner that wrote each.
    pub async fn stored(&self, id: RunId) -> Vec<(Event, i64)> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT body, epoch FROM events WHERE run_id = $1 ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.db)
            .await
            .unwrap();
        rows.into_iter().map(|(body, epoch)| (serde_json::from_str(&body).unwrap(), epoch)).collect()
    }

    /// A WebSocket on `replica` following the run from after `after_seq`.
    pub async fn follow(&self, replica: usize, id: RunId, after_seq: u64) -> EventFeed {
        let port = self.replicas[replica].port;
        EventFeed::connect(&format!("ws://127.0.0.1:{port}/api/ws?run_id={id}&after_seq={after_seq}")).await
    }

    /// Model calls the Bedrock received.
    pub async fn bedrock_calls(&self) -> u64 {
        self.bedrock.app.emulator().expect("the built-in emulator").status().calls
    }
}

/// The `(seq, JSON)` of events, to compare what a client saw with what is stored.
pub fn wire(events: &[Event]) -> Vec<(u64, String)> {
    events.iter().map(|e| (e.seq, serde_json::to_string(e).unwrap())).collect()
}
