-- A batch item's run names its batch, so the history can show and filter the runs of a batch.
ALTER TABLE runs ADD COLUMN batch_id TEXT;
CREATE INDEX runs_by_batch ON runs (batch_id, seq) WHERE batch_id IS NOT NULL;
