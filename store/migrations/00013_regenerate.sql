-- A regenerated answer replaces the messages after the user's message in
-- the transcript and the history. They are kept, marked with the turn that
-- answered again, as are their turns and ledger rows. No foreign key: the
-- mark must outlive nothing but the conversation, whose deletion removes
-- both.

-- +goose Up
ALTER TABLE messages ADD COLUMN superseded_by UUID;

-- +goose Down
ALTER TABLE messages DROP COLUMN superseded_by;
