-- The first schema of Switchboard: the seed's conversations and messages,
-- the turns of the agent loop, and the tool-call ledger.
--
-- conversations and messages keep the seed quickstart's names, columns and
-- defaults, and are created only if missing, so that a database made with the
-- seed's CREATE TABLE statements is adopted with its data.

-- +goose Up
CREATE TABLE IF NOT EXISTS conversations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id VARCHAR(255) NOT NULL,
    title VARCHAR(255),
    status VARCHAR(50) DEFAULT 'active',
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

-- A user's conversations, most recently active first.
CREATE INDEX conversations_user_updated ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS messages (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id UUID REFERENCES conversations(id),
    role VARCHAR(20) NOT NULL,
    content TEXT NOT NULL,
    message_type VARCHAR(50) DEFAULT 'text',
    timestamp TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    metadata JSONB
);

-- The seed's foreign key does not cascade; deleting a conversation must
-- delete its transcript.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_conversation_id_fkey;
ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_fkey
    FOREIGN KEY (conversation_id) REFERENCES conversations(id) ON DELETE CASCADE;

-- NOT VALID: rows adopted from the seed are not rechecked, new rows are.
ALTER TABLE messages ADD CONSTRAINT messages_role_check
    CHECK (role IN ('user', 'assistant', 'tool', 'system')) NOT VALID;
ALTER TABLE messages ADD CONSTRAINT messages_message_type_check
    CHECK (message_type IN ('text', 'tool_call', 'tool_result', 'error')) NOT VALID;

CREATE TABLE turns (
    id UUID PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id VARCHAR(255) NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'completed', 'failed', 'max_steps', 'cancelled', 'awaiting_approval')),
    idempotency_key VARCHAR(255),
    steps BIGINT NOT NULL DEFAULT 0,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    -- Durations in milliseconds; a double keeps nanoseconds exact for
    -- durations of up to several days.
    llm_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    tools_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    store_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    overhead_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE
);

CREATE UNIQUE INDEX turns_user_idempotency_key ON turns (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX turns_conversation ON turns (conversation_id, started_at, id);

-- seq orders a transcript: timestamps of messages stored together can tie.
ALTER TABLE messages
    ADD COLUMN turn_id UUID REFERENCES turns(id) ON DELETE CASCADE,
    ADD COLUMN tool_call_id TEXT,
    ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;

CREATE INDEX messages_conversation_seq ON messages (conversation_id, seq);
CREATE INDEX messages_turn ON messages (turn_id);

-- The ledger: one row per tool call, written when the call starts and
-- updated when it ends.
CREATE TABLE tool_calls (
    id UUID PRIMARY KEY,
    call_id TEXT NOT NULL DEFAULT '',
    user_id VARCHAR(255) NOT NULL,
    conversation_id UUID NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    turn_id UUID NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    step BIGINT NOT NULL DEFAULT 0,
    server VARCHAR(255) NOT NULL,
    tool VARCHAR(255) NOT NULL,
    exposed_name VARCHAR(255) NOT NULL DEFAULT '',
    arguments JSONB,
    result TEXT NOT NULL DEFAULT '',
    structured_result JSONB,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'denied')),
    error_class TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    duration_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    result_size BIGINT NOT NULL DEFAULT 0,
    truncated BOOLEAN NOT NULL DEFAULT false,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE
);

-- Admin filters, each in the keyset order of the listing (started_at DESC,
-- id DESC), so that a page is an index range scan at any depth.
CREATE INDEX tool_calls_started ON tool_calls (started_at DESC, id DESC);
CREATE INDEX tool_calls_user ON tool_calls (user_id, started_at DESC, id DESC);
CREATE INDEX tool_calls_conversation ON tool_calls (conversation_id, started_at DESC, id DESC);
-- A turn holds few calls, so this index serves the turn filter (sorting a
-- handful of rows) and is the arbiter of SaveTurn's upsert: a call id taken
-- by another turn's call violates the primary key instead of being updated.
CREATE UNIQUE INDEX tool_calls_turn ON tool_calls (turn_id, id);
CREATE INDEX tool_calls_server ON tool_calls (server, started_at DESC, id DESC);
CREATE INDEX tool_calls_server_tool ON tool_calls (server, tool, started_at DESC, id DESC);
CREATE INDEX tool_calls_tool ON tool_calls (tool, started_at DESC, id DESC);
CREATE INDEX tool_calls_status ON tool_calls (status, started_at DESC, id DESC);

-- +goose Down
-- Down leaves conversations and messages as the seed defines them.
DROP TABLE tool_calls;
DROP INDEX messages_turn;
DROP INDEX messages_conversation_seq;
ALTER TABLE messages
    DROP COLUMN seq,
    DROP COLUMN tool_call_id,
    DROP COLUMN turn_id;
DROP TABLE turns;
ALTER TABLE messages DROP CONSTRAINT messages_message_type_check;
ALTER TABLE messages DROP CONSTRAINT messages_role_check;
ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey;
ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_fkey
    FOREIGN KEY (conversation_id) REFERENCES conversations(id);
DROP INDEX conversations_user_updated;
