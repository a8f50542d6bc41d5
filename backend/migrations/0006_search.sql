-- Full-text search over prompts and responses (`GET /api/runs?q=`): a row per run, its rowid
-- the run's seq. The prompt is written with the run, the response once the model's result is
-- stored (the text of the last attempt's deltas).
CREATE VIRTUAL TABLE run_search USING fts5(prompt, response, tokenize = 'unicode61 remove_diacritics 2');

-- The runs stored before: their prompts and the responses their deltas spell.
INSERT INTO run_search (rowid, prompt, response)
SELECT r.seq,
       COALESCE((SELECT json_extract(e.body, '$.prompt') FROM events e WHERE e.run_id = r.id AND e.seq = 1), ''),
       COALESCE((SELECT group_concat(t, '') FROM (
           SELECT json_extract(d.body, '$.text') AS t FROM events d
           WHERE d.run_id = r.id AND d.kind = 'delta'
             AND json_extract(d.body, '$.attempt') = (
                 SELECT MAX(json_extract(m.body, '$.attempt')) FROM events m WHERE m.run_id = r.id AND m.kind = 'delta')
           ORDER BY d.seq)), '')
FROM runs r;
