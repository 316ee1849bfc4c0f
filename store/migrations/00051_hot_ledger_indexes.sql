-- The ledger's indexes hold only columns that never change once a call
-- started (see 00050), so that its end is a HOT update:
--   - tool_calls_status goes: the status filter reads tool_call_outcomes
--     (ended calls, by status in the listing's order) or tool_calls_open
--     (running and awaiting ones: a few, read whole);
--   - tool_calls_started and tool_calls_server_tool lose the columns they
--     included for statistics (00011), which read tool_call_outcomes'
--     covering index instead;
--   - tool_calls_awaiting goes: a turn's start finds the calls awaiting an
--     approval in tool_calls_open, by conversation.
--
-- Built CONCURRENTLY, outside a transaction, as 00011 and 00015 are.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS tool_call_outcomes_started;
CREATE INDEX CONCURRENTLY tool_call_outcomes_started ON tool_call_outcomes (started_at DESC, id DESC)
    INCLUDE (server, tool, status, duration_ms);
DROP INDEX CONCURRENTLY IF EXISTS tool_call_outcomes_status;
CREATE INDEX CONCURRENTLY tool_call_outcomes_status ON tool_call_outcomes (status, started_at DESC, id DESC);

DROP INDEX CONCURRENTLY IF EXISTS tool_calls_open_awaiting;
CREATE INDEX CONCURRENTLY tool_calls_open_awaiting ON tool_calls_open (conversation_id) WHERE status = 'awaiting_approval';
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_awaiting;

DROP INDEX CONCURRENTLY IF EXISTS tool_calls_status;

DROP INDEX CONCURRENTLY IF EXISTS tool_calls_started_narrow;
CREATE INDEX CONCURRENTLY tool_calls_started_narrow ON tool_calls (started_at DESC, id DESC);
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_started;
ALTER INDEX tool_calls_started_narrow RENAME TO tool_calls_started;

DROP INDEX CONCURRENTLY IF EXISTS tool_calls_server_tool_narrow;
CREATE INDEX CONCURRENTLY tool_calls_server_tool_narrow ON tool_calls (server, tool, started_at DESC, id DESC);
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_server_tool;
ALTER INDEX tool_calls_server_tool_narrow RENAME TO tool_calls_server_tool;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_server_tool_covering;
CREATE INDEX CONCURRENTLY tool_calls_server_tool_covering ON tool_calls (server, tool, started_at DESC, id DESC)
    INCLUDE (status, duration_ms);
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_server_tool;
ALTER INDEX tool_calls_server_tool_covering RENAME TO tool_calls_server_tool;

DROP INDEX CONCURRENTLY IF EXISTS tool_calls_started_covering;
CREATE INDEX CONCURRENTLY tool_calls_started_covering ON tool_calls (started_at DESC, id DESC)
    INCLUDE (server, tool, status, duration_ms);
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_started;
ALTER INDEX tool_calls_started_covering RENAME TO tool_calls_started;

CREATE INDEX CONCURRENTLY IF NOT EXISTS tool_calls_status ON tool_calls (status, started_at DESC, id DESC);

CREATE INDEX CONCURRENTLY IF NOT EXISTS tool_calls_awaiting ON tool_calls (conversation_id) WHERE status = 'awaiting_approval';
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_open_awaiting;

DROP INDEX CONCURRENTLY IF EXISTS tool_call_outcomes_status;
DROP INDEX CONCURRENTLY IF EXISTS tool_call_outcomes_started;
