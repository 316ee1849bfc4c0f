-- Retention: tool-call payloads (arguments and results) older than a
-- configured age are removed in batches; the rows stay, with their
-- metadata, for statistics. The partial index finds the oldest unpruned rows
-- without scanning those already pruned.

-- +goose Up
ALTER TABLE tool_calls ADD COLUMN payload_pruned BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX tool_calls_unpruned ON tool_calls (started_at) WHERE NOT payload_pruned;

-- +goose Down
DROP INDEX tool_calls_unpruned;
ALTER TABLE tool_calls DROP COLUMN payload_pruned;
