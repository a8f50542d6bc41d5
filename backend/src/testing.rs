//! Test support shared by the unit tests of several modules: a server's parts wired on the
//! in-memory store, a model that never answers, and a run's first event.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{Event, EventKind, RunId};
use uuid::Uuid;

use crate::bedrock::{CallError, ModelClient, ModelReply, ModelRequest, TextSink};
use crate::events::Hub;
use crate::flow::{FlowSettings, RetryPolicy, Runner};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::runs::Runs;
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::wire::{Published, stamp};

/// A model that never answers, so every run that reaches it stays in flight.
pub struct NeverAnswers;

#[async_trait]
impl ModelClient for NeverAnswers {
    async fn call(&self, _: &ModelRequest, _: &mut dyn TextSink) -> Result<ModelReply, CallError> {
        std::future::pending().await
    }
}

/// A run's `run_created` event.
pub fn created(run_id: RunId) -> Published {
    let kind = EventKind::RunCreated {
        prompt: "p".into(),
        model_id: "m".into(),
        system: None,
        max_tokens: 1,
        temperature: None,
        max_attempts: 1,
        replay_of: None,
        batch_id: None,
    };
    stamp(Arc::new(Event { run_id, seq: 1, ts: chrono::Utc::now(), kind }))
}

/// The parts of a server, on the in-memory store and a model that never answers.
pub struct World {
    pub store: Arc<MemoryStore>,
    pub hub: Arc<Hub>,
    pub journal: Journal,
    pub runs: Arc<Runs>,
}

impl World {
    pub fn new() -> World {
        let store = Arc::new(MemoryStore::default());
        let hub = Hub::new(Arc::clone(&store) as Arc<dyn Store>);
        let path = std::env::temp_dir().join(format!("world-{}", Uuid::now_v7())).join("prompts.txt");
        let journal = Journal::open(&path).expect("journal in the temp dir");
        let retry = RetryPolicy { retries: 0, delay: Duration::ZERO, jitter: Duration::ZERO };
        let settings = FlowSettings { load: retry, bedrock: retry, max_concurrent_calls: 100 };
        let model = Arc::new(NeverAnswers);
        let runner = Runner::new(Arc::clone(&hub), journal.clone(), model, settings, Arc::new(Metrics::default()));
        let catalog = Arc::new(crate::catalog::load(None).expect("built-in catalog"));
        let runs = Arc::new(Runs::new(Arc::clone(&store) as Arc<dyn Store>, Arc::clone(&hub), runner, catalog));
        World { store, hub, journal, runs }
    }

    /// Stores a new run's first event and registers it with the hub, as a submission does.
    pub async fn new_run(&self) -> RunId {
        let id = RunId(Uuid::now_v7());
        let created = created(id);
        self.store.append_events(std::slice::from_ref(&created), true).await.expect("memory store");
        self.hub.register(created);
        id
    }
}
