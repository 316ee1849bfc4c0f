-- A call's ledger row is written once, when the call ends (issue 20: the
-- write-once ledger). While it runs, the call lives on its turn's row:
-- open_calls maps the ids of the turn's running calls to their ledger rows
-- as JSON (jsonb_populate_record of tool_calls reads one back). The step
-- that starts calls writes them there in the update of the turn it makes
-- anyway, which stays heap-only (HOT): open_calls is in no index, and must
-- stay so (TestOpenCallsStayHOT). The save that ends a call inserts its
-- ledger row and takes it out of open_calls; readers of the ledger read
-- both (ledgerRows in store/postgres_ledger.go).
--
-- A running call becomes a ledger row early when a row of another table
-- must refer to it: a server's question (inputs) or sampling request
-- (samplings). A turn that is failed or stored awaiting input (an instance
-- stopped) gets its open calls' rows, failed as interrupted.
--
-- Adding a nullable column without a default rewrites nothing.

-- +goose Up
ALTER TABLE turns ADD COLUMN IF NOT EXISTS open_calls jsonb;

-- +goose Down
INSERT INTO tool_calls (id, call_id, user_id, conversation_id, turn_id, step, server, tool, exposed_name, arguments,
    status, started_at, session_scope, session_key, session_generation, agent, parent_id)
SELECT r.id, COALESCE(r.call_id, ''), t.user_id, t.conversation_id, t.id, COALESCE(r.step, 0), r.server, r.tool,
    COALESCE(r.exposed_name, ''), r.arguments, 'running', r.started_at, COALESCE(r.session_scope, ''),
    COALESCE(r.session_key, ''), COALESCE(r.session_generation, 0), COALESCE(r.agent, ''), r.parent_id
FROM turns t, jsonb_each(t.open_calls) e, jsonb_populate_record(NULL::tool_calls, e.value) r
WHERE t.open_calls IS NOT NULL
ON CONFLICT DO NOTHING;
ALTER TABLE turns DROP COLUMN IF EXISTS open_calls;
