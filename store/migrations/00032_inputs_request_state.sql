-- +goose Up
-- A modern server (MCP 2026-07-28) asks by answering tools/call with
-- input_required: its question is stored with the key it gave the question
-- in inputRequests and the requestState to echo when the call is made again
-- with the answer. Empty for a legacy server's open request.
ALTER TABLE inputs ADD COLUMN request_key text NOT NULL DEFAULT '',
    ADD COLUMN request_state text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE inputs DROP COLUMN request_key, DROP COLUMN request_state;
