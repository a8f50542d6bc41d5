-- Batches: one row per batch with the settings of all its items, and one row per item. An
-- item is `Queued` until the scheduler starts its run (then `Started`, and its state is its
-- run's), or `Cancelled` if the batch was cancelled first. Items not started cost a row, no
-- memory.
CREATE TABLE batches (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    created_at   TEXT    NOT NULL,
    model_id     TEXT    NOT NULL,
    system       TEXT,
    max_tokens   INTEGER NOT NULL,
    temperature  REAL,
    total        INTEGER NOT NULL,
    cancelled    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE batch_items (
    batch_seq  INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    prompt     TEXT    NOT NULL,
    variables  TEXT,
    state      TEXT    NOT NULL DEFAULT 'Queued',
    run_id     TEXT,
    PRIMARY KEY (batch_seq, idx)
) WITHOUT ROWID;

-- What the scheduler reads: the queue, oldest batch and first item first.
CREATE INDEX batch_items_queued ON batch_items (batch_seq, idx) WHERE state = 'Queued';
