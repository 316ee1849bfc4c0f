-- transcript_version counts the edits and regenerates of a conversation,
-- the only writes that change messages already stored (they mark them
-- superseded). A turn's start caches the history window it reads, per
-- conversation, and reads only the newer messages next time, as long as
-- this version is the one it read at.

-- +goose Up
ALTER TABLE conversations ADD COLUMN transcript_version BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE conversations DROP COLUMN transcript_version;
