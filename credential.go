package switchboard

import "time"

// Credential is one user's credential for one MCP server: an OAuth grant
// or secrets the user gave. What is secret is sealed (Sealed, under the key
// KeyID) before it reaches the store; the rest is for listing.
type Credential struct {
	UserID string
	Server string
	// Kind is "oauth" or "user_secret".
	Kind   string
	KeyID  string
	Sealed []byte
	// Scopes and ExpiresAt describe an OAuth grant (ExpiresAt is its
	// access token's; zero when it does not say).
	Scopes     []string
	ExpiresAt  time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	LastUsedAt time.Time
}

// OAuthState is a connect flow waiting for its callback: good once, until
// ExpiresAt. ID is the hash of the state parameter (the state itself is
// never stored); Sealed holds the PKCE verifier and the flow's
// authorization server and client.
type OAuthState struct {
	ID        string
	UserID    string
	Server    string
	KeyID     string
	Sealed    []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// OAuthClient is a client Switchboard registered at an authorization server
// for one MCP server (RFC 7591), once, for every user; Sealed holds its
// secret.
type OAuthClient struct {
	Server    string
	Issuer    string
	ClientID  string
	KeyID     string
	Sealed    []byte
	CreatedAt time.Time
}

// Connection is what a user sees of their credential for a server that
// needs one: never a token or a secret.
type Connection struct {
	Server string
	// Type is "oauth" or "user_secret".
	Type string
	// Secrets are the names of a user_secret server's values and what each
	// is for.
	Secrets    map[string]string
	Connected  bool
	Scopes     []string
	ExpiresAt  time.Time
	CreatedAt  time.Time
	LastUsedAt time.Time
	// UserID is set in admin listings.
	UserID string
}
