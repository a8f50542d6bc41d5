-- Full-text search over prompts and responses (`GET /api/runs?q=`): a row per run. The prompt
-- is written with the run, the response once the model's result is stored (the text of the
-- last attempt's deltas). The `simple` configuration: prompts are in any language, so words
-- are matched as written (lower-cased), not stemmed as English.
CREATE TABLE run_search (
    run_id   TEXT PRIMARY KEY,
    prompt   TEXT NOT NULL,
    response TEXT NOT NULL DEFAULT '',
    doc      tsvector GENERATED ALWAYS AS (to_tsvector('simple', prompt || ' ' || response)) STORED
);
CREATE INDEX run_search_doc ON run_search USING GIN (doc);

INSERT INTO run_search (run_id, prompt, response)
SELECT r.id,
       COALESCE((SELECT e.body::json ->> 'prompt' FROM events e WHERE e.run_id = r.id AND e.seq = 1), ''),
       COALESCE((SELECT string_agg(d.body::json ->> 'text', '' ORDER BY d.seq) FROM events d
                 WHERE d.run_id = r.id AND d.kind = 'delta'
                   AND (d.body::json ->> 'attempt')::int = (
                       SELECT MAX((m.body::json ->> 'attempt')::int) FROM events m
                       WHERE m.run_id = r.id AND m.kind = 'delta')), '')
FROM runs r;
