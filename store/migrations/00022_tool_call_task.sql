-- +goose Up
-- The MCP task a call ran as (issue 16): the server's id for it and the
-- last status the call saw. Empty for a call that ran as a plain request.
-- No index reads them, and a constant default makes ADD COLUMN a catalog
-- change, not a rewrite.
ALTER TABLE tool_calls
    ADD COLUMN task_id text NOT NULL DEFAULT '',
    ADD COLUMN task_status text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tool_calls DROP COLUMN task_id, DROP COLUMN task_status;
