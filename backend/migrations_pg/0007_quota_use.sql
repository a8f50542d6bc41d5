-- Each replica's use of each model's quota, published by its batch scheduler about once a
-- second: the quota is the account's, so every replica counts the others' calls against it
-- and adopts a budget another one learnt.
CREATE TABLE quota_use (
    replica     TEXT        NOT NULL,
    model_id    TEXT        NOT NULL,
    -- Calls the replica got in (attempts not throttled) within its last minute.
    admitted    BIGINT      NOT NULL,
    -- The attempts a minute it learnt the quota allows; NULL until it met the quota.
    per_minute  FLOAT8,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, model_id)
);
