-- Agents (issue 18): a conversation's current agent, the agent of a turn
-- and its handoffs, the agent whose model asked for a call and the call
-- of an agent used as a tool it ran inside. No index reads them but
-- tool_calls_parent (the calls of a sub-agent, read by their parent); a
-- constant default makes ADD COLUMN a catalog change, not a rewrite.
--
-- The status and message type checks are extended in place, whatever
-- other migrations added to them: this one adds its values to the list
-- the constraint holds now.

-- +goose Up
ALTER TABLE conversations ADD COLUMN agent text NOT NULL DEFAULT '';
ALTER TABLE turns
    ADD COLUMN agent text NOT NULL DEFAULT '',
    ADD COLUMN handoffs integer NOT NULL DEFAULT 0;
ALTER TABLE tool_calls
    ADD COLUMN agent text NOT NULL DEFAULT '',
    ADD COLUMN parent_id uuid;
CREATE INDEX tool_calls_parent ON tool_calls (parent_id) WHERE parent_id IS NOT NULL;

-- +goose StatementBegin
DO $$
DECLARE def text;
BEGIN
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
    WHERE conname = 'turns_status_check' AND conrelid = 'turns'::regclass;
    ALTER TABLE turns DROP CONSTRAINT turns_status_check;
    EXECUTE 'ALTER TABLE turns ADD CONSTRAINT turns_status_check '
        || replace(def, '''running''::text', '''running''::text, ''max_handoffs''::text, ''guardrail_tripped''::text');
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
    WHERE conname = 'messages_message_type_check' AND conrelid = 'messages'::regclass;
    ALTER TABLE messages DROP CONSTRAINT messages_message_type_check;
    EXECUTE 'ALTER TABLE messages ADD CONSTRAINT messages_message_type_check '
        || replace(replace(def, ' NOT VALID', ''), '''text''::character varying', '''text''::character varying, ''handoff''::character varying')
        || ' NOT VALID';
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE def text;
BEGIN
    DELETE FROM messages WHERE message_type = 'handoff';
    UPDATE turns SET status = 'failed' WHERE status IN ('max_handoffs', 'guardrail_tripped');
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
    WHERE conname = 'turns_status_check' AND conrelid = 'turns'::regclass;
    ALTER TABLE turns DROP CONSTRAINT turns_status_check;
    EXECUTE 'ALTER TABLE turns ADD CONSTRAINT turns_status_check '
        || replace(def, ', ''max_handoffs''::text, ''guardrail_tripped''::text', '');
    SELECT pg_get_constraintdef(oid) INTO def FROM pg_constraint
    WHERE conname = 'messages_message_type_check' AND conrelid = 'messages'::regclass;
    ALTER TABLE messages DROP CONSTRAINT messages_message_type_check;
    EXECUTE 'ALTER TABLE messages ADD CONSTRAINT messages_message_type_check '
        || replace(replace(def, ' NOT VALID', ''), ', (''handoff''::character varying)::text', '')
        || ' NOT VALID';
END $$;
-- +goose StatementEnd
DROP INDEX tool_calls_parent;
ALTER TABLE tool_calls DROP COLUMN agent, DROP COLUMN parent_id;
ALTER TABLE turns DROP COLUMN agent, DROP COLUMN handoffs;
ALTER TABLE conversations DROP COLUMN agent;
