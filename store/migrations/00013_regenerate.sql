-- A regenerated answer replaces the messages after the user's message in
-- the transcript and the history. They are kept, marked with the turn that
-- answered again, as are their turns and ledger rows. No foreign key: the
-- mark must outlive nothing but the conversation, whose deletion removes
-- both.
--
-- The history window and the transcript read the unmarked messages through
-- a partial index of their own: with the mark as a filter on
-- messages_conversation_seq, a table without statistics yet (a new
-- database) gets a plan that reads and sorts a conversation's every message
-- at each turn (measured: 3x the buffers, 2.5x the time at 50 messages).
--
-- The index is built CONCURRENTLY, outside a transaction, so that instances
-- still serving keep writing messages while a new one migrates; a build that
-- died half way leaves an invalid index, which the DROP removes on the next
-- try.

-- +goose NO TRANSACTION
-- +goose Up
ALTER TABLE messages ADD COLUMN IF NOT EXISTS superseded_by UUID;
DROP INDEX CONCURRENTLY IF EXISTS messages_transcript;
CREATE INDEX CONCURRENTLY messages_transcript ON messages (conversation_id, seq) WHERE superseded_by IS NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS messages_transcript;
ALTER TABLE messages DROP COLUMN IF EXISTS superseded_by;
