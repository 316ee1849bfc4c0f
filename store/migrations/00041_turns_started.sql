-- The admins' statistics by agent (issue 18) read the turns of a time
-- range. started_at never changes after a turn's insert, so the index
-- costs one entry per turn and no finishing update rewrites it.

-- +goose NO TRANSACTION
-- +goose Up
-- An interrupted CREATE INDEX CONCURRENTLY leaves an invalid index, which
-- the DROP removes on the next try.
DROP INDEX CONCURRENTLY IF EXISTS turns_started;
CREATE INDEX CONCURRENTLY turns_started ON turns (started_at);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS turns_started;
