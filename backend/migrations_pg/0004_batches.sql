-- Batches, as in the SQLite schema: one row per batch with the settings of all its items, one
-- row per item. An item is `Queued` until a scheduler starts its run (then `Started`, and its
-- state is its run's), or `Cancelled` if the batch was cancelled first. Any replica's
-- scheduler may start a queued item: the run's idempotency key makes the first one win.
CREATE TABLE batches (
    seq          BIGSERIAL        PRIMARY KEY,
    id           TEXT             NOT NULL UNIQUE,
    created_at   TEXT             NOT NULL,
    model_id     TEXT             NOT NULL,
    system       TEXT,
    max_tokens   BIGINT           NOT NULL,
    temperature  DOUBLE PRECISION,
    total        BIGINT           NOT NULL,
    cancelled    BIGINT           NOT NULL DEFAULT 0
);

CREATE TABLE batch_items (
    batch_seq  BIGINT NOT NULL REFERENCES batches (seq),
    idx        BIGINT NOT NULL,
    prompt     TEXT   NOT NULL,
    variables  TEXT,
    state      TEXT   NOT NULL DEFAULT 'Queued',
    run_id     TEXT,
    round      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_seq, idx)
);

CREATE INDEX batch_items_queued ON batch_items (batch_seq, idx) WHERE state = 'Queued';
