-- The last two foreign keys a turn checked: a turn's to its conversation
-- (checked by the start's insert) and a ledger row's to its turn (checked
-- by the insert that ends the call). Postgres checks each with a query of
-- its own for the row written; together they were ~11% of a turn's backend
-- CPU (BenchmarkTurnOnPostgres, BENCHMARKS.md eighth round).
--
-- turns_conversation_id_fkey: a turn is inserted in a transaction that
-- holds its conversation's row (a start locks or bumps it before the
-- insert, or inserts the conversation itself), and the insert reads the
-- conversation (insertTurn), so none is inserted into a conversation that
-- is gone or going.
--
-- tool_calls_turn_id_fkey: a ledger row is inserted by a statement that
-- updates its turn's row (a save, failOrphaned), or together with a
-- question or sampling request whose own keys to the turn and conversation
-- stay (materializeOpenCall), so its turn is locked or checked.
--
-- DeleteConversation locks the conversation's row (a writer that held it
-- has committed), then deletes its messages, its turns (a writer holding a
-- turn's row has committed; one that comes after finds no turn), its
-- ledger rows and it, in one transaction. Inputs, samplings and a call's
-- content keep their keys and cascades.
-- TestDeleteConversationLeavesNothing runs turns of two users against
-- deletes of their conversations.

-- +goose Up
ALTER TABLE tool_calls DROP CONSTRAINT IF EXISTS tool_calls_turn_id_fkey;
ALTER TABLE turns DROP CONSTRAINT IF EXISTS turns_conversation_id_fkey;

-- +goose Down
DELETE FROM turns t WHERE NOT EXISTS (SELECT FROM conversations c WHERE c.id = t.conversation_id);
DELETE FROM tool_calls x WHERE NOT EXISTS (SELECT FROM turns t WHERE t.id = x.turn_id);
-- NOT VALID, then VALIDATE: the check of the rows there does not block
-- writes to the tables.
ALTER TABLE turns ADD CONSTRAINT turns_conversation_id_fkey
    FOREIGN KEY (conversation_id) REFERENCES conversations(id) ON DELETE CASCADE NOT VALID;
ALTER TABLE tool_calls ADD CONSTRAINT tool_calls_turn_id_fkey
    FOREIGN KEY (turn_id) REFERENCES turns(id) ON DELETE CASCADE NOT VALID;
ALTER TABLE turns VALIDATE CONSTRAINT turns_conversation_id_fkey;
ALTER TABLE tool_calls VALIDATE CONSTRAINT tool_calls_turn_id_fkey;
