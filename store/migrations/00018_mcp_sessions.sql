-- +goose Up
-- The streamable HTTP session of each user of each server of scope user
-- (issue 14), so that another instance takes it up instead of starting
-- another. A session id is a handle the server gave, not a credential of
-- ours.
CREATE TABLE mcp_sessions (
    server varchar(255) NOT NULL,
    user_id varchar(255) NOT NULL,
    session_id text NOT NULL,
    protocol_version text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (server, user_id)
);

-- +goose Down
DROP TABLE mcp_sessions;
