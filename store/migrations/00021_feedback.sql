-- +goose Up
-- A user's rating of a message (ChatKit's items.feedback, issue 19):
-- positive or negative, NULL when none. It is set after the message is
-- stored, so no index includes it; a column without a default makes ADD
-- COLUMN a catalog change, not a rewrite. Admins read it with the
-- transcript; the history window leaves it out.
ALTER TABLE messages ADD COLUMN feedback varchar(16);

-- +goose Down
ALTER TABLE messages DROP COLUMN feedback;
