-- Runs: one row per accepted run, kept current from its events for fast history queries.
CREATE TABLE runs (
    -- Creation order; history pages by it (newest first) without sorting timestamps.
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    state            TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    model_id         TEXT    NOT NULL,
    prompt_preview   TEXT    NOT NULL,
    journal_offset   INTEGER NOT NULL,
    journal_len      INTEGER NOT NULL,
    journal_crc32    INTEGER NOT NULL,
    input_tokens     INTEGER,
    output_tokens    INTEGER,
    error            TEXT,
    last_seq         INTEGER NOT NULL,
    idempotency_key  TEXT UNIQUE
);

CREATE INDEX runs_by_state ON runs (state, seq);

-- Every event of every run, as sent on the WebSocket; the source of truth for run details,
-- logs and replay after a reconnect or a restart.
CREATE TABLE events (
    run_id  TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    body    TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
