-- Each task's latest attempt number, kept current from `task_state` events, so a history row
-- can say how many retries its run needed without reading the run's events.
ALTER TABLE runs ADD COLUMN load_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN call_attempts INTEGER NOT NULL DEFAULT 0;

-- Runs stored before this migration: the same figures from their events.
UPDATE runs SET
    load_attempts = COALESCE((SELECT MAX(json_extract(body, '$.attempt')) FROM events
        WHERE events.run_id = runs.id AND kind = 'task_state'
          AND json_extract(body, '$.task') = 'load_prompt_file'), 0),
    call_attempts = COALESCE((SELECT MAX(json_extract(body, '$.attempt')) FROM events
        WHERE events.run_id = runs.id AND kind = 'task_state'
          AND json_extract(body, '$.task') = 'call_bedrock'), 0);
