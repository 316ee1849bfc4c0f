-- +goose Up
-- The server session a call ran on (issue 14): its scope (shared, user,
-- conversation), its key (the user or conversation id; empty when shared)
-- and the generation of its connection. No index reads them, so a call's
-- finishing update stays a heap-only update where it was one; a constant
-- default makes ADD COLUMN a catalog change, not a rewrite.
ALTER TABLE tool_calls
    ADD COLUMN session_scope text NOT NULL DEFAULT '',
    ADD COLUMN session_key text NOT NULL DEFAULT '',
    ADD COLUMN session_generation bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE tool_calls DROP COLUMN session_scope, DROP COLUMN session_key, DROP COLUMN session_generation;
