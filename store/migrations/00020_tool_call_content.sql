-- +goose Up
-- The binary parts of tool results (images, audio, blobs; issue 16): their
-- listing (kind, type, size, hash) on the ledger row, their bytes in rows of
-- their own, read one at a time. Retention deletes the bytes and keeps the
-- listing.
ALTER TABLE tool_calls ADD COLUMN content jsonb;

CREATE TABLE tool_call_content (
    tool_call_id uuid NOT NULL REFERENCES tool_calls(id) ON DELETE CASCADE,
    idx integer NOT NULL CHECK (idx >= 0),
    kind text NOT NULL,
    mime_type text NOT NULL,
    uri text NOT NULL DEFAULT '',
    size integer NOT NULL CHECK (size >= 0),
    sha256 bytea NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (tool_call_id, idx)
);

-- +goose Down
DROP TABLE tool_call_content;
ALTER TABLE tool_calls DROP COLUMN content;
