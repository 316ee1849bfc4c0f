-- Clients such as the AI SDK's useChat name a new conversation with an id of
-- their own. It is kept per user, so that it never collides with, or reveals,
-- another user's conversation.

-- +goose Up
ALTER TABLE conversations ADD COLUMN external_id VARCHAR(255);
CREATE UNIQUE INDEX conversations_user_external ON conversations (user_id, external_id)
    WHERE external_id IS NOT NULL;

-- +goose Down
DROP INDEX conversations_user_external;
ALTER TABLE conversations DROP COLUMN external_id;
