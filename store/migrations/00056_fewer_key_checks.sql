-- Two foreign keys that a turn checked six times: Postgres checks a key with
-- a query of its own for every row written (a turn: four messages, one
-- ledger row), about 65 µs of a turn's backend CPU with the turn's key to
-- its conversation (BENCHMARKS.md, fifth round).
--
-- tool_calls_conversation_id_fkey: a ledger row's turn key already ties it
-- to a conversation (the row takes its conversation from its turn's row in
-- the statement that writes it) and goes with it: a conversation's delete
-- cascades to its turns, and a turn's to its calls.
--
-- messages_conversation_id_fkey: a message is written in a transaction that
-- holds its conversation's row (a turn's start bumps or locks it, or
-- inserts the turn, whose key to the conversation stays and locks it; a
-- save locks or bumps it first, in the statement that writes the
-- messages), so none is written into a conversation that is gone or going.
-- DeleteConversation deletes the conversation's messages itself, after it
-- locked the conversation's row (a writer that held it has committed, and
-- the next statement sees what it wrote), in the same transaction.
-- TestDeleteConversationLeavesNothing runs turns of two users against
-- deletes of their conversations.

-- +goose Up
ALTER TABLE tool_calls DROP CONSTRAINT IF EXISTS tool_calls_conversation_id_fkey;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_conversation_id_fkey;

-- +goose Down
DELETE FROM messages m WHERE NOT EXISTS (SELECT FROM conversations c WHERE c.id = m.conversation_id);
ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_fkey
    FOREIGN KEY (conversation_id) REFERENCES conversations(id) ON DELETE CASCADE;
ALTER TABLE tool_calls ADD CONSTRAINT tool_calls_conversation_id_fkey
    FOREIGN KEY (conversation_id) REFERENCES conversations(id) ON DELETE CASCADE;
