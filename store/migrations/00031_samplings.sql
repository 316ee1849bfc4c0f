-- +goose Up
-- Servers' requests to sample the model during a tool call (issue 17:
-- sampling), a ledger row each, linked to the call: read by call (the
-- admin's view of a call) and counted in the metrics.
CREATE TABLE samplings (
    id uuid PRIMARY KEY,
    user_id varchar(255) NOT NULL,
    conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    turn_id uuid NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    tool_call_id uuid NOT NULL REFERENCES tool_calls(id) ON DELETE CASCADE,
    server text NOT NULL,
    kind text NOT NULL,
    model text NOT NULL DEFAULT '',
    status text NOT NULL CHECK (status IN ('succeeded', 'failed', 'denied')),
    error text NOT NULL DEFAULT '',
    max_tokens integer NOT NULL DEFAULT 0,
    prompt_tokens integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    duration_ms double precision NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL
);
CREATE INDEX samplings_tool_call ON samplings (tool_call_id, started_at);

-- +goose Down
DROP TABLE samplings;
