-- A turn's start cancels the conversation's calls that await an approval,
-- and its turn that awaits one (the user went on without deciding; they
-- can no longer run). These partial indexes hold only such turns and calls,
-- so that the check costs every turn next to nothing.
--
-- Built CONCURRENTLY, outside a transaction, so that instances still serving
-- keep writing while a new one migrates. A build that died half way leaves
-- an invalid index, which the DROP removes on the next try.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS turns_awaiting;
CREATE INDEX CONCURRENTLY turns_awaiting ON turns (conversation_id) WHERE status = 'awaiting_approval';
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_awaiting;
CREATE INDEX CONCURRENTLY tool_calls_awaiting ON tool_calls (conversation_id) WHERE status = 'awaiting_approval';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_awaiting;
DROP INDEX CONCURRENTLY IF EXISTS turns_awaiting;
