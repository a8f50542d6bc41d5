-- A batch item's run names its batch, so the history can show and filter the runs of a batch.
ALTER TABLE runs ADD COLUMN batch_id TEXT;
CREATE INDEX runs_by_batch ON runs (batch_id, seq) WHERE batch_id IS NOT NULL;
-- How many times the item was queued again after its run failed ("retry the failed items"):
-- each round's run has its own idempotency key, so a retry never finds the failed run again.
ALTER TABLE batch_items ADD COLUMN round INTEGER NOT NULL DEFAULT 0;
