-- A tool call that needs a person's approval waits in the ledger, not run,
-- until it is approved (and runs) or denied.

-- +goose Up
ALTER TABLE tool_calls DROP CONSTRAINT tool_calls_status_check;
ALTER TABLE tool_calls ADD CONSTRAINT tool_calls_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'denied', 'awaiting_approval'));

-- +goose Down
ALTER TABLE tool_calls DROP CONSTRAINT tool_calls_status_check;
ALTER TABLE tool_calls ADD CONSTRAINT tool_calls_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'denied'));
