-- A conversation's unsuperseded messages (the history window, the
-- transcript, what an edit or a regenerate looks for) are read through
-- messages_conversation_seq, the mark a filter: superseded messages are
-- the few a user answered again, and a read stops at the window's bound.
-- messages_transcript, their partial index, cost every message (four a
-- turn) an index entry that no read needs: 00013's concern, a plan on a
-- table without statistics that read and sorted a conversation's every
-- message, is gone with the window's LIMIT and bound on seq, which
-- messages_conversation_seq serves backward (TestHistoryPlanWithoutStatistics).
--
-- NO TRANSACTION: the index is dropped CONCURRENTLY, so that instances
-- still serving keep writing messages.

-- +goose NO TRANSACTION
-- +goose Up
DROP INDEX CONCURRENTLY IF EXISTS messages_transcript;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_transcript ON messages (conversation_id, seq) WHERE superseded_by IS NULL;
