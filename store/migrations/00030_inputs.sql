-- +goose Up
-- Questions MCP servers ask users in the middle of a tool call (issue 17:
-- elicitation): one row per question, answered at most once. The turn's
-- row stays running while a legacy server's request is open on the
-- instance that holds the turn; pending rows are read by conversation (the
-- transcript, a new message cancelling them) and by id (the answer).
CREATE TABLE inputs (
    id uuid PRIMARY KEY,
    user_id varchar(255) NOT NULL,
    conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    turn_id uuid NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    tool_call_id uuid NOT NULL REFERENCES tool_calls(id) ON DELETE CASCADE,
    server text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('form', 'url')),
    message text NOT NULL,
    requested_schema jsonb,
    url text NOT NULL DEFAULT '',
    elicitation_id text NOT NULL DEFAULT '',
    status text NOT NULL CHECK (status IN ('pending', 'answered', 'completed', 'cancelled', 'expired', 'failed')),
    action text NOT NULL DEFAULT '',
    content jsonb,
    reason text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    answered_at timestamptz
);
CREATE INDEX inputs_conversation ON inputs (conversation_id, created_at);

-- +goose Down
DROP TABLE inputs;
