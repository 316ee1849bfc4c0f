// Package credentials keeps each user's credentials for the MCP servers that
// act as the signed-in person: OAuth 2.1 grants made through the connect
// flow of the MCP authorization spec (see oauth.go), and secrets the user
// gives (a personal token). Everything secret is sealed by a keyring before
// the store sees it, bound to the user and the server it belongs to; the
// store keeps the rest (scopes, expiry, when it was made and last used) in
// the clear, for listing.
//
// A grant made through one instance is used by all: the store is shared,
// and a refresh runs under the store's lock on the credential, so that two
// instances refreshing one token at once keep a working one.
package credentials

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/keyring"
)

// Kinds of server auth.
const (
	KindOAuth      = "oauth"
	KindUserSecret = "user_secret"
)

// StateTTL is how long a connect flow's state is good for.
const StateTTL = 10 * time.Minute

// Auth is how the users of one server authenticate to it.
type Auth struct {
	// Type is KindOAuth or KindUserSecret.
	Type string
	// Scopes are asked for (OAuth); none means the resource's
	// scopes_supported.
	Scopes []string
	// ClientID and ClientSecret are a client registered by the operator;
	// ClientMetadataURL a Client ID Metadata Document the operator serves.
	// None: Switchboard's own metadata document under its public URL when
	// the authorization server takes one, else dynamic registration.
	ClientID, ClientSecret, ClientMetadataURL string
	// Secrets are the names of a user_secret server's values, with what
	// each is for (shown to the user).
	Secrets map[string]string
}

// Server is one configured server with per-user credentials.
type Server struct {
	Name string
	// URL is the MCP server's (OAuth); empty for a stdio server.
	URL  string
	Auth Auth
}

// Store keeps credentials, flows and registered clients.
// store.Memory and store.Postgres implement it.
type Store interface {
	// GetCredential returns the user's credential for the server;
	// ErrNotFound if there is none.
	GetCredential(ctx context.Context, userID, server string) (switchboard.Credential, error)
	// PutCredential creates or replaces it.
	PutCredential(ctx context.Context, c switchboard.Credential) error
	// UpdateCredential runs update on the user's credential for the server
	// under a lock all instances share (Postgres: the row, FOR UPDATE), and
	// stores what update leaves in it, unless update fails. ErrNotFound if
	// there is none.
	UpdateCredential(ctx context.Context, userID, server string, update func(*switchboard.Credential) error) error
	// DeleteCredential removes it; ErrNotFound if there was none.
	DeleteCredential(ctx context.Context, userID, server string) error
	// ListCredentials lists a user's credentials, or everyone's for "".
	ListCredentials(ctx context.Context, userID string) ([]switchboard.Credential, error)
	// PutOAuthState stores a connect flow's state.
	PutOAuthState(ctx context.Context, s switchboard.OAuthState) error
	// TakeOAuthState returns the flow whose state hashes to id and deletes
	// it, at once: a state is good once. ErrNotFound if there is none.
	TakeOAuthState(ctx context.Context, id string) (switchboard.OAuthState, error)
	// GetOAuthClient returns the client registered for the server with the
	// issuer; ErrNotFound if there is none. PutOAuthClient stores one.
	GetOAuthClient(ctx context.Context, server, issuer string) (switchboard.OAuthClient, error)
	PutOAuthClient(ctx context.Context, c switchboard.OAuthClient) error
	// ListOAuthClients lists every registered client (for a key rotation).
	ListOAuthClients(ctx context.Context) ([]switchboard.OAuthClient, error)
}

// Options tune a Manager; nil means defaults.
type Options struct {
	// PublicURL is Switchboard's own URL as browsers reach it: the
	// callback is PublicURL + "/oauth/callback", and Switchboard's client
	// metadata documents are served under it. Required for OAuth servers.
	PublicURL string
	// HTTPClient does the OAuth requests; nil means one with a 30s timeout.
	HTTPClient *http.Client
	// ClientName names Switchboard at the authorization servers.
	ClientName string
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager connects users to servers and gives their sessions credentials.
// Its methods are safe for concurrent use.
type Manager struct {
	store   Store
	ring    *keyring.Ring
	oauth   *OAuth
	opts    Options
	log     *slog.Logger
	servers atomic.Pointer[map[string]Server]

	mu          sync.Mutex
	discoveries map[string]Discovery   // by server URL, for the life of the process
	stepUps     map[[2]string][]string // scopes a server asked a user for (403 insufficient_scope)
}

// New returns a Manager over store, sealing with ring.
func New(store Store, ring *keyring.Ring, opts *Options) *Manager {
	m := &Manager{store: store, ring: ring, discoveries: map[string]Discovery{}, stepUps: map[[2]string][]string{}}
	if opts != nil {
		m.opts = *opts
	}
	if m.opts.Now == nil {
		m.opts.Now = time.Now
	}
	if m.opts.ClientName == "" {
		m.opts.ClientName = "Switchboard"
	}
	m.log = m.opts.Logger
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	client := m.opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	m.oauth = &OAuth{client: client, now: m.opts.Now}
	m.SetServers(nil)
	return m
}

// OAuth is the OAuth client of the Manager (see oauth.go).
type OAuth struct {
	client *http.Client
	now    func() time.Time
}

// SetServers makes servers the ones that need credentials (on start and on
// a reload).
func (m *Manager) SetServers(servers []Server) {
	byName := make(map[string]Server, len(servers))
	for _, s := range servers {
		byName[s.Name] = s
	}
	m.servers.Store(&byName)
}

func (m *Manager) server(name string) (Server, error) {
	s, ok := (*m.servers.Load())[name]
	if !ok {
		return Server{}, switchboard.Errorf(switchboard.ErrNotFound, "server_not_found", "no server %s takes credentials", name)
	}
	return s, nil
}

// connectionRequired is the error of a session of a server the user has
// not connected (or whose grant the authorization server no longer
// honours): a *switchboard.Error of kind ErrForbidden with code
// switchboard.CodeConnectionRequired.
func connectionRequired(server, why string) error {
	return switchboard.Errorf(switchboard.ErrForbidden, switchboard.CodeConnectionRequired,
		"connect %s first: %s", server, why)
}

// IsConnectionRequired reports whether err says the user must connect a
// server first.
func IsConnectionRequired(err error) bool {
	return switchboard.IsCode(err, switchboard.CodeConnectionRequired)
}

// aad binds a sealed value to its user and server.
func aad(userID, server string) []byte { return []byte(userID + "\x00" + server) }

// sealedToken is what an OAuth credential seals: the tokens, and where to
// refresh them.
type sealedToken struct {
	Token
	TokenEndpoint      string `json:"token_endpoint"`
	RevocationEndpoint string `json:"revocation_endpoint,omitempty"`
	Resource           string `json:"resource"`
	Client             Client `json:"client"`
}

func (m *Manager) seal(c *switchboard.Credential, v any) {
	b, _ := json.Marshal(v)
	c.KeyID, c.Sealed = m.ring.Seal(b, aad(c.UserID, c.Server))
}

func (m *Manager) open(c switchboard.Credential, v any) error {
	b, err := m.ring.Open(c.KeyID, c.Sealed, aad(c.UserID, c.Server))
	if err != nil {
		return fmt.Errorf("credential of %s for %s: %w", c.UserID, c.Server, err)
	}
	return json.Unmarshal(b, v)
}

// Connections lists the servers that need the user's credentials, with the
// user's connection to each (never a token).
func (m *Manager) Connections(ctx context.Context, userID string) ([]switchboard.Connection, error) {
	creds, err := m.store.ListCredentials(ctx, userID)
	if err != nil {
		return nil, err
	}
	byServer := map[string]switchboard.Credential{}
	for _, c := range creds {
		byServer[c.Server] = c
	}
	servers := *m.servers.Load()
	out := []switchboard.Connection{}
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		s := servers[name]
		conn := switchboard.Connection{Server: name, Type: s.Auth.Type, Secrets: s.Auth.Secrets}
		if c, ok := byServer[name]; ok {
			conn.Connected, conn.Scopes, conn.ExpiresAt, conn.CreatedAt, conn.LastUsedAt = true, c.Scopes, c.ExpiresAt, c.CreatedAt, c.LastUsedAt
		}
		out = append(out, conn)
	}
	return out, nil
}

// ConnectSecrets stores the user's secrets for a user_secret server: every
// secret it names must be given, and nothing else. The error wraps
// switchboard.ErrInvalid for a wrong set, ErrNotFound for an unknown server.
func (m *Manager) ConnectSecrets(ctx context.Context, userID, server string, secrets map[string]string) error {
	s, err := m.server(server)
	if err != nil {
		return err
	}
	if s.Auth.Type != KindUserSecret {
		return switchboard.Errorf(switchboard.ErrInvalid, "not_user_secret", "server %s connects with OAuth: post no secrets", server)
	}
	for name := range s.Auth.Secrets {
		if strings.TrimSpace(secrets[name]) == "" {
			return switchboard.Errorf(switchboard.ErrInvalid, "missing_secret", "server %s needs the secret %s (%s)", server, name, s.Auth.Secrets[name])
		}
	}
	for name, v := range secrets {
		if _, ok := s.Auth.Secrets[name]; !ok {
			return switchboard.Errorf(switchboard.ErrInvalid, "unknown_secret", "server %s takes no secret %q", server, name)
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return switchboard.Errorf(switchboard.ErrInvalid, "invalid_secret", "the secret %s holds a control character (a line break?)", name)
		}
	}
	now := m.opts.Now().UTC()
	c := switchboard.Credential{UserID: userID, Server: server, Kind: KindUserSecret, CreatedAt: now, UpdatedAt: now}
	m.seal(&c, secrets)
	return m.store.PutCredential(ctx, c)
}

// Secrets returns the user's secrets for a user_secret server, or an error
// that IsConnectionRequired when the user has given none.
func (m *Manager) Secrets(ctx context.Context, userID, server string) (map[string]string, error) {
	c, err := m.store.GetCredential(ctx, userID, server)
	if errors.Is(err, switchboard.ErrNotFound) {
		return nil, connectionRequired(server, "the user has given no secrets")
	}
	if err != nil {
		return nil, err
	}
	var secrets map[string]string
	if err := m.open(c, &secrets); err != nil {
		return nil, err
	}
	m.touch(ctx, c)
	return secrets, nil
}

// redirectURI is the OAuth callback.
func (m *Manager) redirectURI() string {
	return strings.TrimSuffix(m.opts.PublicURL, "/") + "/oauth/callback"
}

// discover returns the discovery of a server's authorization, cached for
// the life of the process; challenge is a 401's WWW-Authenticate, if any.
func (m *Manager) discover(ctx context.Context, s Server, challenge string) (Discovery, error) {
	m.mu.Lock()
	d, ok := m.discoveries[s.URL]
	m.mu.Unlock()
	if ok && challenge == "" {
		return d, nil
	}
	d, err := m.oauth.Discover(ctx, s.URL, challenge)
	if err != nil {
		return Discovery{}, fmt.Errorf("server %s: %w", s.Name, err)
	}
	m.mu.Lock()
	m.discoveries[s.URL] = d
	m.mu.Unlock()
	return d, nil
}

// client returns the OAuth client for the server at its authorization
// server: the operator's, Switchboard's metadata document when the server
// takes one, else one registered once and kept in the store.
func (m *Manager) client(ctx context.Context, s Server, d Discovery) (Client, error) {
	switch {
	case s.Auth.ClientID != "":
		method := "none"
		if s.Auth.ClientSecret != "" {
			method = "client_secret_basic"
			if len(d.Server.TokenEndpointAuthMethodsSupported) > 0 && !slices.Contains(d.Server.TokenEndpointAuthMethodsSupported, method) {
				method = "client_secret_post"
			}
		}
		return Client{ID: s.Auth.ClientID, Secret: s.Auth.ClientSecret, AuthMethod: method, Issuer: d.Server.Issuer}, nil
	case s.Auth.ClientMetadataURL != "":
		return Client{ID: s.Auth.ClientMetadataURL, AuthMethod: "none", Issuer: d.Server.Issuer}, nil
	case d.Server.ClientIDMetadataDocumentSupported && strings.HasPrefix(m.opts.PublicURL, "https://"):
		return Client{ID: m.ClientMetadataURL(s.Name), AuthMethod: "none", Issuer: d.Server.Issuer}, nil
	}
	stored, err := m.store.GetOAuthClient(ctx, s.Name, d.Server.Issuer)
	if err == nil {
		var c Client
		if err := json.Unmarshal(m.openClient(stored), &c); err == nil && c.ID != "" {
			return c, nil
		}
	} else if !errors.Is(err, switchboard.ErrNotFound) {
		return Client{}, err
	}
	c, err := m.oauth.Register(ctx, d.Server, m.opts.ClientName, m.redirectURI())
	if err != nil {
		return Client{}, fmt.Errorf("server %s: %w", s.Name, err)
	}
	rec := switchboard.OAuthClient{Server: s.Name, Issuer: d.Server.Issuer, ClientID: c.ID, CreatedAt: m.opts.Now().UTC()}
	b, _ := json.Marshal(c)
	rec.KeyID, rec.Sealed = m.ring.Seal(b, aad("client", s.Name+"\x00"+d.Server.Issuer))
	if err := m.store.PutOAuthClient(ctx, rec); err != nil {
		return Client{}, err
	}
	m.log.Info("registered an oauth client", "server", s.Name, "issuer", d.Server.Issuer)
	return c, nil
}

func (m *Manager) openClient(rec switchboard.OAuthClient) []byte {
	b, err := m.ring.Open(rec.KeyID, rec.Sealed, aad("client", rec.Server+"\x00"+rec.Issuer))
	if err != nil {
		return nil
	}
	return b
}

// ClientMetadataURL is the Client ID Metadata Document Switchboard serves
// for a server: its client id at authorization servers that take one.
func (m *Manager) ClientMetadataURL(server string) string {
	return strings.TrimSuffix(m.opts.PublicURL, "/") + "/oauth/clients/" + url.PathEscape(server) + ".json"
}

// ClientMetadata returns the Client ID Metadata Document of a server's
// client (served at ClientMetadataURL); ErrNotFound for a server without
// OAuth.
func (m *Manager) ClientMetadata(server string) ([]byte, error) {
	s, err := m.server(server)
	if err != nil || s.Auth.Type != KindOAuth {
		return nil, switchboard.Errorf(switchboard.ErrNotFound, "server_not_found", "no server %s connects with OAuth", server)
	}
	return json.Marshal(map[string]any{
		"client_id":                  m.ClientMetadataURL(server),
		"client_name":                m.opts.ClientName,
		"client_uri":                 m.opts.PublicURL,
		"redirect_uris":              []string{m.redirectURI()},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
}

// stateID is what the store keeps of a state: its hash.
func stateID(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// sealedFlow is what a flow's state seals: the PKCE verifier and the
// authorization server the code comes from.
type sealedFlow struct {
	Verifier  string         `json:"verifier"`
	Discovery Discovery      `json:"discovery"`
	Client    Client         `json:"client"`
	Scopes    []string       `json:"scopes,omitempty"`
	Server    ServerMetadata `json:"-"`
}

// Authorize starts a connect flow for the user and an OAuth server and
// returns the authorization URL to open. moreScopes are added to the
// server's (a step-up after 403 insufficient_scope).
func (m *Manager) Authorize(ctx context.Context, userID, server string, moreScopes ...string) (string, error) {
	s, err := m.server(server)
	if err != nil {
		return "", err
	}
	if s.Auth.Type != KindOAuth {
		return "", switchboard.Errorf(switchboard.ErrInvalid, "not_oauth", "server %s takes secrets, not an OAuth sign-in: post them", server)
	}
	if m.opts.PublicURL == "" {
		return "", switchboard.Errorf(switchboard.ErrUnavailable, "no_public_url", "public_url is not configured: the OAuth callback has no address")
	}
	d, err := m.discover(ctx, s, "")
	if err != nil {
		return "", switchboard.Errorf(switchboard.ErrUpstream, "oauth_discovery_failed", "%v", err)
	}
	c, err := m.client(ctx, s, d)
	if err != nil {
		return "", switchboard.Errorf(switchboard.ErrUpstream, "oauth_registration_failed", "%v", err)
	}
	scopes := s.Auth.Scopes
	if len(scopes) == 0 {
		scopes = d.Scopes
	}
	m.mu.Lock()
	stepUp := m.stepUps[[2]string{userID, server}]
	m.mu.Unlock()
	scopes = union(union(scopes, stepUp), moreScopes)
	verifier, challenge := PKCE()
	state := randomString()
	now := m.opts.Now().UTC()
	flow := sealedFlow{Verifier: verifier, Discovery: d, Client: c, Scopes: scopes}
	b, _ := json.Marshal(flow)
	id := stateID(state)
	st := switchboard.OAuthState{ID: id, UserID: userID, Server: server, CreatedAt: now, ExpiresAt: now.Add(StateTTL)}
	st.KeyID, st.Sealed = m.ring.Seal(b, aad(userID, server+"\x00"+id))
	if err := m.store.PutOAuthState(ctx, st); err != nil {
		return "", err
	}
	return AuthorizationURL(d, c, m.redirectURI(), state, challenge, scopes), nil
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func randomString() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Callback completes a connect flow from the callback's query: the state
// is taken (it is good once, for StateTTL, and names the user and server),
// the iss parameter checked (RFC 9207), the code exchanged with the flow's
// PKCE verifier, and the grant stored sealed. It returns the user and the
// server. The error wraps switchboard.ErrInvalid for a state that is
// unknown, used, expired or forged, an iss that does not match, or an error
// the authorization server sent; its message is for the page that closes
// the flow.
func (m *Manager) Callback(ctx context.Context, q url.Values) (userID, server string, err error) {
	for _, name := range []string{"state", "code", "iss", "error"} {
		if len(q[name]) > 1 {
			return "", "", switchboard.Errorf(switchboard.ErrInvalid, "invalid_callback", "the callback repeats %s", name)
		}
	}
	state := q.Get("state")
	if state == "" {
		return "", "", switchboard.Errorf(switchboard.ErrInvalid, "invalid_state", "the callback has no state")
	}
	id := stateID(state)
	st, err := m.store.TakeOAuthState(ctx, id)
	if errors.Is(err, switchboard.ErrNotFound) {
		return "", "", switchboard.Errorf(switchboard.ErrInvalid, "invalid_state", "this sign-in link is not known or was used already: start again")
	}
	if err != nil {
		return "", "", err
	}
	if m.opts.Now().After(st.ExpiresAt) {
		return "", "", switchboard.Errorf(switchboard.ErrInvalid, "expired_state", "this sign-in link expired (after %s): start again", StateTTL)
	}
	raw, err := m.ring.Open(st.KeyID, st.Sealed, aad(st.UserID, st.Server+"\x00"+id))
	if err != nil {
		return "", "", switchboard.Errorf(switchboard.ErrInvalid, "invalid_state", "this sign-in link does not open")
	}
	var flow sealedFlow
	if err := json.Unmarshal(raw, &flow); err != nil {
		return "", "", err
	}
	if err := CheckIssuer(flow.Discovery.Server, q.Get("iss")); err != nil {
		return "", "", switchboard.Errorf(switchboard.ErrInvalid, "issuer_mismatch", "%v", err)
	}
	if e := q.Get("error"); e != "" {
		return "", "", switchboard.Errorf(switchboard.ErrInvalid, "authorization_refused", "the authorization server answered %s: %s", truncate(e, 100), truncate(q.Get("error_description"), 200))
	}
	if q.Get("code") == "" {
		return "", "", switchboard.Errorf(switchboard.ErrInvalid, "invalid_callback", "the callback has no code")
	}
	t, err := m.oauth.Exchange(ctx, flow.Discovery, flow.Client, m.redirectURI(), q.Get("code"), flow.Verifier)
	if err != nil {
		return "", "", switchboard.Errorf(switchboard.ErrUpstream, "token_exchange_failed", "%v", err)
	}
	if err := m.storeGrant(ctx, st.UserID, st.Server, flow, t); err != nil {
		return "", "", err
	}
	m.log.Info("oauth connection made", "user_id", st.UserID, "server", st.Server)
	return st.UserID, st.Server, nil
}

func (m *Manager) storeGrant(ctx context.Context, userID, server string, flow sealedFlow, t Token) error {
	now := m.opts.Now().UTC()
	c := switchboard.Credential{UserID: userID, Server: server, Kind: KindOAuth, ExpiresAt: t.ExpiresAt,
		CreatedAt: now, UpdatedAt: now, Scopes: strings.Fields(t.Scope)}
	if len(c.Scopes) == 0 {
		c.Scopes = flow.Scopes
	}
	m.seal(&c, sealedToken{Token: t, TokenEndpoint: flow.Discovery.Server.TokenEndpoint,
		RevocationEndpoint: flow.Discovery.Server.RevocationEndpoint, Resource: flow.Discovery.Resource, Client: flow.Client})
	return m.store.PutCredential(ctx, c)
}

// AccessToken returns the user's current access token for an OAuth server,
// refreshed first when it expires within a minute. The error says the user must
// connect (IsConnectionRequired) when the user has no grant or the authorization
// server refused its refresh (the grant is then forgotten).
func (m *Manager) AccessToken(ctx context.Context, userID, server string) (string, error) {
	t, err := m.currentToken(ctx, userID, server)
	if err != nil {
		return "", err
	}
	if !t.expiresSoon(m.opts.Now()) {
		return t.AccessToken, nil
	}
	return m.refresh(ctx, userID, server, t.AccessToken)
}

// Rejected returns a token for a server that answered 401 to rejected: the
// current one if another call (on any instance) refreshed it meanwhile,
// else a refreshed one; errors as AccessToken's.
func (m *Manager) Rejected(ctx context.Context, userID, server, rejected string) (string, error) {
	t, err := m.currentToken(ctx, userID, server)
	if err != nil {
		return "", err
	}
	if t.AccessToken != rejected && !t.expiresSoon(m.opts.Now()) {
		return t.AccessToken, nil
	}
	return m.refresh(ctx, userID, server, rejected)
}

func (m *Manager) currentToken(ctx context.Context, userID, server string) (sealedToken, error) {
	c, err := m.store.GetCredential(ctx, userID, server)
	if errors.Is(err, switchboard.ErrNotFound) {
		return sealedToken{}, connectionRequired(server, "the user has not signed in")
	}
	if err != nil {
		return sealedToken{}, err
	}
	var t sealedToken
	if err := m.open(c, &t); err != nil {
		return sealedToken{}, err
	}
	m.touch(ctx, c)
	return t, nil
}

// refresh refreshes the grant whose access token stale is no good, under
// the store's lock on the credential: what another instance refreshed
// meanwhile is used, not refreshed again (a refresh token may be good
// once).
func (m *Manager) refresh(ctx context.Context, userID, server, stale string) (string, error) {
	var fresh string
	refused := false
	err := m.store.UpdateCredential(ctx, userID, server, func(c *switchboard.Credential) error {
		var cur sealedToken
		if err := m.open(*c, &cur); err != nil {
			return err
		}
		if cur.AccessToken != stale && !cur.expiresSoon(m.opts.Now()) {
			fresh = cur.AccessToken // another instance refreshed it
			return nil
		}
		nt, err := m.oauth.Refresh(ctx, cur.TokenEndpoint, cur.Resource, cur.Client, cur.Token)
		if err != nil {
			refused = errors.Is(err, ErrGrantRefused)
			return err
		}
		cur.Token = nt
		c.ExpiresAt, c.UpdatedAt = nt.ExpiresAt, m.opts.Now().UTC()
		if sc := strings.Fields(nt.Scope); len(sc) > 0 {
			c.Scopes = sc
		}
		m.seal(c, cur)
		fresh = nt.AccessToken
		return nil
	})
	switch {
	case refused:
		m.log.Info("oauth refresh refused: the user must connect again", "user_id", userID, "server", server)
		if err := m.store.DeleteCredential(ctx, userID, server); err != nil && !errors.Is(err, switchboard.ErrNotFound) {
			return "", err
		}
		return "", connectionRequired(server, "the authorization server no longer honours the sign-in")
	case errors.Is(err, switchboard.ErrNotFound):
		return "", connectionRequired(server, "the user has not signed in")
	case err != nil:
		return "", fmt.Errorf("refresh the token of %s for %s: %w", userID, server, err)
	}
	return fresh, nil
}

// Disconnect forgets the user's credential for the server, revoking an
// OAuth grant at its authorization server first when that offers
// revocation (a revocation that fails is logged: the grant is forgotten
// anyway). ErrNotFound if there was none.
func (m *Manager) Disconnect(ctx context.Context, userID, server string) error {
	c, err := m.store.GetCredential(ctx, userID, server)
	if err != nil {
		return err
	}
	if c.Kind == KindOAuth {
		var t sealedToken
		if err := m.open(c, &t); err == nil {
			if err := m.oauth.Revoke(ctx, t.RevocationEndpoint, t.Client, t.Token); err != nil {
				m.log.Warn("oauth revocation failed; the grant is forgotten anyway", "server", server, "err", err)
			}
		}
	}
	return m.store.DeleteCredential(ctx, userID, server)
}

// Discover runs discovery for a server, from a 401's challenge: a session
// that met one tells the Manager, so that the next sign-in uses what the
// server said.
func (m *Manager) Discover(ctx context.Context, server, challenge string) error {
	s, err := m.server(server)
	if err != nil {
		return err
	}
	_, err = m.discover(ctx, s, challenge)
	return err
}

// Rotate seals again under the ring's current key every credential and
// registered client that an older key sealed, and returns how many it
// sealed again. Flows waiting for their callback are left: they expire
// within StateTTL. A value no key of the ring opens stops it with an error
// (wrapping keyring.ErrUnknownKey when its key is not in the ring).
func (m *Manager) Rotate(ctx context.Context) (int, error) {
	n := 0
	creds, err := m.store.ListCredentials(ctx, "")
	if err != nil {
		return 0, err
	}
	for _, c := range creds {
		if c.KeyID == m.ring.Current() {
			continue
		}
		err := m.store.UpdateCredential(ctx, c.UserID, c.Server, func(c *switchboard.Credential) error {
			if c.KeyID == m.ring.Current() {
				return nil
			}
			plain, err := m.ring.Open(c.KeyID, c.Sealed, aad(c.UserID, c.Server))
			if err != nil {
				return fmt.Errorf("credential of %s for %s: %w", c.UserID, c.Server, err)
			}
			c.KeyID, c.Sealed = m.ring.Seal(plain, aad(c.UserID, c.Server))
			return nil
		})
		if err != nil && !errors.Is(err, switchboard.ErrNotFound) {
			return n, err
		}
		n++
	}
	clients, err := m.store.ListOAuthClients(ctx)
	if err != nil {
		return n, err
	}
	for _, c := range clients {
		if c.KeyID == m.ring.Current() {
			continue
		}
		a := aad("client", c.Server+"\x00"+c.Issuer)
		plain, err := m.ring.Open(c.KeyID, c.Sealed, a)
		if err != nil {
			return n, fmt.Errorf("client of %s at %s: %w", c.Server, c.Issuer, err)
		}
		c.KeyID, c.Sealed = m.ring.Seal(plain, a)
		if err := m.store.PutOAuthClient(ctx, c); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// InsufficientScope is told that the server answered 403 insufficient_scope
// to the user's token (a step-up): the scopes its challenge names are asked
// for at the user's next sign-in, and the call fails saying the user must
// connect again.
func (m *Manager) InsufficientScope(_ context.Context, userID, server, challenge string) error {
	scopes := strings.Fields(authParam(challenge, "scope"))
	m.mu.Lock()
	m.stepUps[[2]string{userID, server}] = union(m.stepUps[[2]string{userID, server}], scopes)
	m.mu.Unlock()
	why := "the server needs more access than was granted"
	if len(scopes) > 0 {
		why += " (" + strings.Join(scopes, " ") + ")"
	}
	return connectionRequired(server, why)
}

// AllConnections lists every user's connections, for admins: never a token.
func (m *Manager) AllConnections(ctx context.Context) ([]switchboard.Connection, error) {
	creds, err := m.store.ListCredentials(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]switchboard.Connection, len(creds))
	for i, c := range creds {
		out[i] = switchboard.Connection{UserID: c.UserID, Server: c.Server, Type: c.Kind, Connected: true, Scopes: c.Scopes,
			ExpiresAt: c.ExpiresAt, CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt}
	}
	return out, nil
}

// touchEvery is how often a credential's last use is written: not at every
// call.
const touchEvery = time.Minute

// touch records that a session used c, at most once per touchEvery.
func (m *Manager) touch(ctx context.Context, c switchboard.Credential) {
	now := m.opts.Now().UTC()
	if now.Sub(c.LastUsedAt) < touchEvery {
		return
	}
	err := m.store.UpdateCredential(ctx, c.UserID, c.Server, func(c *switchboard.Credential) error {
		c.LastUsedAt = now
		return nil
	})
	if err != nil && !errors.Is(err, switchboard.ErrNotFound) {
		m.log.Warn("recording a credential's use", "server", c.Server, "err", err)
	}
}
