//! A store that keeps everything in memory, for unit tests that run under Tokio's paused
//! clock: SQLite's worker thread and its pool timeouts do not mix with virtual time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{Event, LogEntry, RunDetail, RunId, RunSummary};

use super::{Created, InterruptedRun, ModelUsage, NewRun, RunQuery, Store, StoreError, Stored};
use crate::wire::Published;

#[derive(Default)]
pub struct MemoryStore {
    /// Every event stored, in the order it was stored.
    events: Mutex<Vec<Published>>,
    /// While set, every write fails, as a full or broken disk would make it.
    failing: AtomicBool,
}

impl MemoryStore {
    /// Makes every following write fail (`true`) or succeed again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Every stored event as `(run, seq)`, in the order stored.
    pub fn stored(&self) -> Vec<(RunId, u64)> {
        self.events().iter().map(|p| (p.event.run_id, p.event.seq)).collect()
    }

    fn events(&self) -> std::sync::MutexGuard<'_, Vec<Published>> {
        self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn events_of(&self, id: RunId) -> Vec<Event> {
        self.events().iter().filter(|p| p.event.run_id == id).map(|p| p.event.as_ref().clone()).collect()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_run(&self, run: NewRun) -> Result<Created, StoreError> {
        self.events().push(run.created);
        Ok(Created::New)
    }

    async fn append_events(&self, events: &[Published], _sync: bool) -> Result<Stored, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let mut stored = self.events();
        for event in events {
            let duplicate =
                stored.iter().any(|e| e.event.run_id == event.event.run_id && e.event.seq == event.event.seq);
            if !duplicate {
                stored.push(Arc::clone(event));
            }
        }
        Ok(Stored::default())
    }

    async fn release(&self) {}

    async fn run_for_idempotency_key(&self, _key: &str) -> Result<Option<RunId>, StoreError> {
        Ok(None)
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunSummary>, StoreError> {
        let mut ids: Vec<RunId> = self.events().iter().filter(|p| p.event.seq == 1).map(|p| p.event.run_id).collect();
        ids.reverse();
        // Newest first; a cursor keeps the runs older (`before`) or newer (`after`) than itself.
        let position = |cursor: RunId| ids.iter().position(|id| *id == cursor).unwrap_or(ids.len());
        let start = query.before.map_or(0, |before| (position(before) + 1).min(ids.len()));
        let end = query.after.map_or(ids.len(), position).max(start);
        let window = ids[start..end].to_vec();
        let found = |run: &RunDetail| {
            let text = common::search_words(&format!("{} {}", run.prompt, run.response.as_deref().unwrap_or_default()));
            query.search.iter().flatten().all(|word| text.contains(word))
        };
        let details = window.into_iter().filter_map(|id| RunDetail::fold(&self.events_of(id)));
        let runs = details.filter(found).map(|detail| detail.summary());
        let matching: Vec<RunSummary> = runs.filter(|run| query.matches(run)).collect();
        let limit = query.limit as usize;
        Ok(match (query.before, query.after) {
            (None, Some(_)) => matching[matching.len().saturating_sub(limit)..].to_vec(),
            _ => matching.into_iter().take(limit).collect(),
        })
    }

    async fn usage_by_model(&self, query: &RunQuery) -> Result<Vec<ModelUsage>, StoreError> {
        let all = RunQuery { limit: u32::MAX, before: None, after: None, ..query.clone() };
        let mut by_model: std::collections::BTreeMap<String, ModelUsage> = std::collections::BTreeMap::new();
        for run in self.list_runs(&all).await? {
            let entry = by_model.entry(run.model_id.clone()).or_insert_with(|| ModelUsage {
                model_id: run.model_id.clone(),
                runs: 0,
                with_usage: 0,
                input_tokens: 0,
                output_tokens: 0,
            });
            entry.runs += 1;
            if let Some(usage) = run.usage {
                entry.with_usage += 1;
                entry.input_tokens += u64::from(usage.input_tokens);
                entry.output_tokens += u64::from(usage.output_tokens);
            }
        }
        Ok(by_model.into_values().collect())
    }

    async fn run_summary(&self, id: RunId) -> Result<Option<RunSummary>, StoreError> {
        Ok(RunDetail::fold(&self.events_of(id)).map(|d| d.summary()))
    }

    async fn replays(&self, id: RunId) -> Result<Vec<RunId>, StoreError> {
        let created =
            self.events().iter().filter(|p| p.event.seq == 1).map(|p| p.event.as_ref().clone()).collect::<Vec<_>>();
        Ok(created
            .iter()
            .filter_map(RunDetail::from_created)
            .filter(|run| run.replay_of == Some(id))
            .map(|run| run.id)
            .collect())
    }

    async fn run_events(&self, id: RunId, after_seq: u64) -> Result<Vec<Event>, StoreError> {
        Ok(self.events_of(id).into_iter().filter(|e| e.seq > after_seq).collect())
    }

    async fn run_logs(&self, id: RunId) -> Result<Vec<LogEntry>, StoreError> {
        Ok(self.events_of(id).iter().filter_map(|e| LogEntry::try_from(e).ok()).collect())
    }

    async fn interrupted_runs(&self) -> Result<Vec<InterruptedRun>, StoreError> {
        Ok(Vec::new())
    }
}
