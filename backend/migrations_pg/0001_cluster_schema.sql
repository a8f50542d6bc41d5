-- The PostgreSQL store, shared by every replica. Same shape as the SQLite schema, plus what
-- several replicas need: leases, run ownership with a fencing epoch, the prompt journal as a
-- table, and a shared submission window.

-- One row per replica process: its lease, by the database's clock, extended by its heartbeat.
CREATE TABLE replicas (
    id           TEXT        PRIMARY KEY,
    address      TEXT        NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until  TIMESTAMPTZ NOT NULL
);

CREATE TABLE runs (
    -- Creation order; history pages by it, newest first.
    seq              BIGSERIAL   PRIMARY KEY,
    id               TEXT        NOT NULL UNIQUE,
    state            TEXT        NOT NULL,
    created_at       TEXT        NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    model_id         TEXT        NOT NULL,
    prompt_preview   TEXT        NOT NULL,
    input_tokens     BIGINT,
    output_tokens    BIGINT,
    error            TEXT,
    last_seq         BIGINT      NOT NULL,
    idempotency_key  TEXT        UNIQUE,
    replay_of        TEXT,
    -- The replica executing the run, and the epoch of its ownership: every takeover bumps
    -- it, and an event write counts only with the current owner and epoch (fencing).
    owner            TEXT        NOT NULL,
    epoch            BIGINT      NOT NULL DEFAULT 1,
    cancel_requested BOOLEAN     NOT NULL DEFAULT false,
    -- By the database clock: what the tailers' backstop poll looks at.
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX runs_by_state ON runs (state, seq);
CREATE INDEX runs_by_replay_of ON runs (replay_of, seq) WHERE replay_of IS NOT NULL;
CREATE INDEX runs_in_flight ON runs (owner, seq) WHERE state IN ('Pending', 'Running');
CREATE INDEX runs_by_update ON runs (updated_at);

-- The prompt journal of record: written in the run's own transaction, read back by
-- `load_prompt_file`, which checks its length and checksum.
CREATE TABLE prompts (
    run_id  TEXT   PRIMARY KEY,
    prompt  TEXT   NOT NULL,
    bytes   BIGINT NOT NULL,
    crc32   BIGINT NOT NULL
);

-- Every event of every run, as sent on the WebSocket, with the owner epoch that wrote it.
CREATE TABLE events (
    run_id  TEXT   NOT NULL,
    seq     BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    body    TEXT   NOT NULL,
    epoch   BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- `--max-submissions-per-minute` across the cluster: the same token bucket a single server
-- keeps in memory (the limit at once, refilled evenly over a minute), in one row.
CREATE TABLE submission_bucket (
    id         SMALLINT         PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    counted_at TIMESTAMPTZ      NOT NULL
);
