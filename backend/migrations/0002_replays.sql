-- The run a run was made from ("edit as a new run", "run again"), so a run can list its replays.
ALTER TABLE runs ADD COLUMN replay_of TEXT;

CREATE INDEX runs_by_replay_of ON runs (replay_of, seq) WHERE replay_of IS NOT NULL;
