-- A message is written with its turn (selected from the turn's row) and
-- goes with its conversation: turns are deleted only by their
-- conversation's cascade, which deletes its messages too (through
-- messages_conversation_seq). The foreign key from messages to turns and
-- its index, messages_turn, served only a turn's own delete, which never
-- happens alone; they cost every message an index entry and a key-share
-- lock of its turn's row (four per turn). The key to conversations stays:
-- a message cannot outlive its conversation, nor be written into one being
-- deleted.
--
-- NO TRANSACTION: the index is dropped CONCURRENTLY, so that instances
-- still serving keep writing messages.

-- +goose NO TRANSACTION
-- +goose Up
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_turn_id_fkey;
DROP INDEX CONCURRENTLY IF EXISTS messages_turn;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_turn ON messages (turn_id);
ALTER TABLE messages ADD CONSTRAINT messages_turn_id_fkey
    FOREIGN KEY (turn_id) REFERENCES turns(id) ON DELETE CASCADE NOT VALID;
