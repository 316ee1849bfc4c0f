-- +goose Up
-- Per-user credentials (issue 15): each user's OAuth grant or secrets for
-- each MCP server that acts as the signed-in person, the connect flows
-- waiting for their callback, and the clients registered once per server
-- and authorization server (RFC 7591). What is secret arrives sealed: the
-- sealed columns hold ciphertext as the keyring made it, with the id of its
-- key beside it, so that a rotation finds what an older key sealed; the
-- store never sees plaintext. The rest is in the clear, for listing.
CREATE TABLE credentials (
    user_id varchar(255) NOT NULL,
    server varchar(255) NOT NULL,
    kind varchar(50) NOT NULL,
    key_id varchar(255) NOT NULL,
    sealed bytea NOT NULL,
    scopes text[] NOT NULL DEFAULT '{}',
    expires_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    last_used_at timestamptz,
    PRIMARY KEY (user_id, server)
);

-- A flow's id is the hash of its state parameter: the state itself, which
-- the browser carries, is never stored. A callback deletes its flow; the
-- index finds those that never came back, for the retention job.
CREATE TABLE oauth_states (
    id varchar(255) PRIMARY KEY,
    user_id varchar(255) NOT NULL,
    server varchar(255) NOT NULL,
    key_id varchar(255) NOT NULL,
    sealed bytea NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX oauth_states_expires_at ON oauth_states (expires_at);

-- An issuer is a URL, and a client id may be one (a Client ID Metadata
-- Document): text.
CREATE TABLE oauth_clients (
    server varchar(255) NOT NULL,
    issuer text NOT NULL,
    client_id text NOT NULL,
    key_id varchar(255) NOT NULL,
    sealed bytea NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (server, issuer)
);

-- +goose Down
DROP TABLE oauth_clients;
DROP TABLE oauth_states;
DROP TABLE credentials;
