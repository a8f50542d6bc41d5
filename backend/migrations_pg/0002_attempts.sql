-- Each task's latest attempt number, kept current from `task_state` events, so a history row
-- can say how many retries its run needed without reading the run's events.
ALTER TABLE runs ADD COLUMN load_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN call_attempts BIGINT NOT NULL DEFAULT 0;

-- Runs stored before this migration: the same figures from their events.
UPDATE runs SET
    load_attempts = COALESCE((SELECT MAX((body::jsonb ->> 'attempt')::bigint) FROM events
        WHERE events.run_id = runs.id AND kind = 'task_state'
          AND body::jsonb ->> 'task' = 'load_prompt_file'), 0),
    call_attempts = COALESCE((SELECT MAX((body::jsonb ->> 'attempt')::bigint) FROM events
        WHERE events.run_id = runs.id AND kind = 'task_state'
          AND body::jsonb ->> 'task' = 'call_bedrock'), 0);
