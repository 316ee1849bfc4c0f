-- Admins read tool-call stats over a time window, grouped by tool or by
-- server. Two indexes of 00001 are rebuilt to include the columns the
-- aggregate reads (status, duration), so that stats never read the ledger's
-- wide rows (arguments, results) and never scan it sequentially:
--   - tool_calls_started, the listing's order, includes server, tool, status
--     and duration: a window of any size is an index-only range scan;
--   - tool_calls_server_tool, already sorted by server and tool, includes
--     status and duration: stats over a window that covers most of the
--     ledger stream through it in group order, with nothing to sort.
-- Both keep their names and key columns, and still serve their filters.
--
-- Built CONCURRENTLY, outside a transaction, so that instances still serving
-- keep writing the ledger while a new one migrates. A build that died half
-- way leaves an invalid index, which the first DROP removes on the next try.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_started_covering;
CREATE INDEX CONCURRENTLY tool_calls_started_covering ON tool_calls (started_at DESC, id DESC)
    INCLUDE (server, tool, status, duration_ms);
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_started;
ALTER INDEX tool_calls_started_covering RENAME TO tool_calls_started;

DROP INDEX CONCURRENTLY IF EXISTS tool_calls_server_tool_covering;
CREATE INDEX CONCURRENTLY tool_calls_server_tool_covering ON tool_calls (server, tool, started_at DESC, id DESC)
    INCLUDE (status, duration_ms);
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_server_tool;
ALTER INDEX tool_calls_server_tool_covering RENAME TO tool_calls_server_tool;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_started_narrow;
CREATE INDEX CONCURRENTLY tool_calls_started_narrow ON tool_calls (started_at DESC, id DESC);
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_started;
ALTER INDEX tool_calls_started_narrow RENAME TO tool_calls_started;

DROP INDEX CONCURRENTLY IF EXISTS tool_calls_server_tool_narrow;
CREATE INDEX CONCURRENTLY tool_calls_server_tool_narrow ON tool_calls (server, tool, started_at DESC, id DESC);
DROP INDEX CONCURRENTLY IF EXISTS tool_calls_server_tool;
ALTER INDEX tool_calls_server_tool_narrow RENAME TO tool_calls_server_tool;
