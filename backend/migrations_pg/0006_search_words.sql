-- Index the words the API searches for: runs of letters and digits, as `q` is cut (the
-- `simple` parser alone keeps `example.com` or `3.14` whole, so `q=example` would miss them).
-- The indexed text is capped so a huge prompt or response cannot exceed tsvector's 1 MB limit.
DROP INDEX run_search_doc;
ALTER TABLE run_search DROP COLUMN doc;
ALTER TABLE run_search ADD COLUMN doc tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', left(regexp_replace(prompt || ' ' || response, '[^[:alnum:]]+', ' ', 'g'), 200000))
) STORED;
CREATE INDEX run_search_doc ON run_search USING GIN (doc);
