-- A turn's start cancels the conversation's turn that awaits an approval
-- (the user went on without deciding; its calls can no longer run). This
-- partial index holds only such turns, so that the check costs every turn
-- next to nothing.
--
-- Built CONCURRENTLY, outside a transaction, so that instances still serving
-- keep writing turns while a new one migrates. A build that died half way
-- leaves an invalid index, which the DROP removes on the next try.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS turns_awaiting;
CREATE INDEX CONCURRENTLY turns_awaiting ON turns (conversation_id) WHERE status = 'awaiting_approval';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS turns_awaiting;
