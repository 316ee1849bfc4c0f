package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/keyring"
)

// memStore is a Store in memory for these tests (the real ones are
// store.Memory and store.Postgres, tested by storetest).
type memStore struct {
	mu      sync.Mutex
	creds   map[[2]string]switchboard.Credential
	states  map[string]switchboard.OAuthState
	clients map[[2]string]switchboard.OAuthClient
}

func newMemStore() *memStore {
	return &memStore{creds: map[[2]string]switchboard.Credential{}, states: map[string]switchboard.OAuthState{},
		clients: map[[2]string]switchboard.OAuthClient{}}
}

func (s *memStore) GetCredential(_ context.Context, userID, server string) (switchboard.Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[[2]string{userID, server}]
	if !ok {
		return c, switchboard.ErrNotFound
	}
	return c, nil
}

func (s *memStore) PutCredential(_ context.Context, c switchboard.Credential) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[[2]string{c.UserID, c.Server}] = c
	return nil
}

func (s *memStore) UpdateCredential(_ context.Context, userID, server string, update func(*switchboard.Credential) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[[2]string{userID, server}]
	if !ok {
		return switchboard.ErrNotFound
	}
	if err := update(&c); err != nil {
		return err
	}
	s.creds[[2]string{userID, server}] = c
	return nil
}

func (s *memStore) DeleteCredential(_ context.Context, userID, server string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.creds[[2]string{userID, server}]; !ok {
		return switchboard.ErrNotFound
	}
	delete(s.creds, [2]string{userID, server})
	return nil
}

func (s *memStore) ListCredentials(_ context.Context, userID string) ([]switchboard.Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []switchboard.Credential
	for k, c := range s.creds {
		if userID == "" || k[0] == userID {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *memStore) PutOAuthState(_ context.Context, st switchboard.OAuthState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[st.ID] = st
	return nil
}

func (s *memStore) TakeOAuthState(_ context.Context, id string) (switchboard.OAuthState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[id]
	if !ok {
		return st, switchboard.ErrNotFound
	}
	delete(s.states, id)
	return st, nil
}

func (s *memStore) GetOAuthClient(_ context.Context, server, issuer string) (switchboard.OAuthClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[[2]string{server, issuer}]
	if !ok {
		return c, switchboard.ErrNotFound
	}
	return c, nil
}

func (s *memStore) PutOAuthClient(_ context.Context, c switchboard.OAuthClient) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[[2]string{c.Server, c.Issuer}] = c
	return nil
}

func (s *memStore) ListOAuthClients(context.Context) ([]switchboard.OAuthClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []switchboard.OAuthClient
	for _, c := range s.clients {
		out = append(out, c)
	}
	return out, nil
}

// authServer is an OAuth 2.1 authorization server and MCP resource for the
// tests: discovery, registration, authorization (it approves at once),
// tokens with PKCE, one-use refresh tokens, revocation.
type authServer struct {
	*httptest.Server
	mu          sync.Mutex
	registered  atomic.Int32
	refreshes   atomic.Int32
	revoked     []string
	codes       map[string]codeGrant
	refresh     map[string]string // refresh token -> user
	expiresIn   int
	refuse      atomic.Bool // refuse refreshes
	issOverride string
	seen        []url.Values // authorization requests
}

type codeGrant struct{ challenge, resource, client, user string }

func newAuthServer(t *testing.T) *authServer {
	a := &authServer{codes: map[string]codeGrant{}, refresh: map[string]string{}, expiresIn: 3600}
	mux := http.NewServeMux()
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"resource": a.URL + "/mcp", "authorization_servers": []string{a.URL}, "scopes_supported": []string{"mcp:tools"}})
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(ServerMetadata{Issuer: a.URL, AuthorizationEndpoint: a.URL + "/authorize", TokenEndpoint: a.URL + "/token",
			RegistrationEndpoint: a.URL + "/register", RevocationEndpoint: a.URL + "/revoke",
			CodeChallengeMethodsSupported: []string{"S256"}, IssParameterSupported: true})
	})
	mux.HandleFunc("POST /register", func(w http.ResponseWriter, r *http.Request) {
		n := a.registered.Add(1)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"client_id": fmt.Sprintf("client-%d", n), "token_endpoint_auth_method": "none"})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		a.mu.Lock()
		a.seen = append(a.seen, q)
		code := fmt.Sprintf("code-%d", len(a.seen))
		a.codes[code] = codeGrant{challenge: q.Get("code_challenge"), resource: q.Get("resource"), client: q.Get("client_id"), user: r.Header.Get("X-Test-User")}
		a.mu.Unlock()
		iss := a.URL
		if a.issOverride != "" {
			iss = a.issOverride
		}
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}, "iss": {iss}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		a.mu.Lock()
		defer a.mu.Unlock()
		fail := func(code string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":%q}`, code)
		}
		var user string
		switch r.Form.Get("grant_type") {
		case "authorization_code":
			g, ok := a.codes[r.Form.Get("code")]
			delete(a.codes, r.Form.Get("code"))
			sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
			if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge || r.Form.Get("resource") != g.resource || r.Form.Get("client_id") != g.client {
				fail("invalid_grant")
				return
			}
			user = r.Form.Get("code")
		case "refresh_token":
			a.refreshes.Add(1)
			u, ok := a.refresh[r.Form.Get("refresh_token")]
			delete(a.refresh, r.Form.Get("refresh_token")) // one use
			if !ok || a.refuse.Load() {
				fail("invalid_grant")
				return
			}
			user = u
		default:
			fail("unsupported_grant_type")
			return
		}
		access, refresh := "at-"+randomString()[:12], "rt-"+randomString()[:12]
		a.refresh[refresh] = user
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": access, "token_type": "Bearer", "refresh_token": refresh, "expires_in": a.expiresIn, "scope": "mcp:tools"})
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		a.mu.Lock()
		a.revoked = append(a.revoked, r.Form.Get("token"))
		a.mu.Unlock()
	})
	return a
}

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testRing is the key ring of the tests' Managers: instances share one.
var testRing = keyring.Generate()

func newManager(t *testing.T, st Store, a *authServer, clock *testClock) *Manager {
	t.Helper()
	m := New(st, testRing, &Options{PublicURL: "https://switchboard.example", Now: clock.Now})
	m.SetServers([]Server{{Name: "remote", URL: a.URL + "/mcp", Auth: Auth{Type: KindOAuth}},
		{Name: "linear", Auth: Auth{Type: KindUserSecret, Secrets: map[string]string{"LINEAR_TOKEN": "a Linear API key"}}}})
	return m
}

// signIn runs the browser's side of a connect flow: it opens the
// authorization URL and returns the callback's query.
func signIn(t *testing.T, authURL string) url.Values {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), "https://switchboard.example/oauth/callback?") {
		t.Fatalf("the authorization server sent the browser to %q", resp.Header.Get("Location"))
	}
	return loc.Query()
}

func TestConnectFlow(t *testing.T) {
	a := newAuthServer(t)
	clock := &testClock{now: time.Now()}
	st := newMemStore()
	m := newManager(t, st, a, clock)
	ctx := t.Context()

	if _, err := m.AccessToken(ctx, "alice", "remote"); !IsConnectionRequired(err) {
		t.Fatalf("before connecting: %v, want ErrConnectionRequired", err)
	}
	tokens := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		authURL, err := m.Authorize(ctx, user, "remote")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(authURL)
		q := u.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("resource") != a.URL+"/mcp" || q.Get("scope") != "mcp:tools" ||
			q.Get("redirect_uri") != "https://switchboard.example/oauth/callback" || q.Get("client_id") != "client-1" {
			t.Errorf("authorization request: %v", q)
		}
		gotUser, server, err := m.Callback(ctx, signIn(t, authURL))
		if err != nil || gotUser != user || server != "remote" {
			t.Fatalf("callback: %s %s %v", gotUser, server, err)
		}
		if tokens[user], err = m.AccessToken(ctx, user, "remote"); err != nil || !strings.HasPrefix(tokens[user], "at-") {
			t.Fatalf("%s's token: %q %v", user, tokens[user], err)
		}
	}
	if tokens["alice"] == tokens["bob"] {
		t.Error("alice and bob share a token")
	}
	if n := a.registered.Load(); n != 1 {
		t.Errorf("registered %d clients, want 1 for the server", n)
	}
	for _, c := range st.creds {
		if strings.Contains(string(c.Sealed), "at-") || strings.Contains(string(c.Sealed), "rt-") {
			t.Errorf("a stored credential shows its token")
		}
	}
	conns, _ := m.Connections(ctx, "alice")
	if len(conns) != 2 || !conns[1].Connected || conns[1].Server != "remote" || !slices.Equal(conns[1].Scopes, []string{"mcp:tools"}) || conns[0].Connected {
		t.Errorf("alice's connections: %+v", conns)
	}

	// Disconnect revokes the grant and forgets it.
	if err := m.Disconnect(ctx, "bob", "remote"); err != nil {
		t.Fatal(err)
	}
	if len(a.revoked) != 1 || !strings.HasPrefix(a.revoked[0], "rt-") {
		t.Errorf("revoked %v", a.revoked)
	}
	if _, err := m.AccessToken(ctx, "bob", "remote"); !IsConnectionRequired(err) {
		t.Errorf("bob after disconnecting: %v", err)
	}
}

func TestCallbackRefusesBadStates(t *testing.T) {
	a := newAuthServer(t)
	clock := &testClock{now: time.Now()}
	m := newManager(t, newMemStore(), a, clock)
	ctx := t.Context()
	code := func(err error) string { return switchboard.ErrorCode(err) }

	authURL, _ := m.Authorize(ctx, "alice", "remote")
	q := signIn(t, authURL)
	if _, _, err := m.Callback(ctx, q); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Callback(ctx, q); code(err) != "invalid_state" {
		t.Errorf("a replayed state: %v", err)
	}
	forged := url.Values{"state": {randomString()}, "code": {"x"}}
	if _, _, err := m.Callback(ctx, forged); code(err) != "invalid_state" {
		t.Errorf("a forged state: %v", err)
	}
	authURL, _ = m.Authorize(ctx, "alice", "remote")
	q = signIn(t, authURL)
	clock.Add(StateTTL + time.Second)
	if _, _, err := m.Callback(ctx, q); code(err) != "expired_state" {
		t.Errorf("an expired state: %v", err)
	}
	a.issOverride = "https://evil.example"
	authURL, _ = m.Authorize(ctx, "alice", "remote")
	if _, _, err := m.Callback(ctx, signIn(t, authURL)); code(err) != "issuer_mismatch" {
		t.Errorf("an iss mismatch: %v", err)
	}
	a.issOverride = ""
	authURL, _ = m.Authorize(ctx, "alice", "remote")
	q = signIn(t, authURL)
	q.Del("iss")
	if _, _, err := m.Callback(ctx, q); code(err) != "issuer_mismatch" {
		t.Errorf("no iss from a server that sends it: %v", err)
	}
	// A state names its user: bob's flow connects bob, whoever's browser
	// completes it.
	authURL, _ = m.Authorize(ctx, "bob", "remote")
	if user, _, err := m.Callback(ctx, signIn(t, authURL)); err != nil || user != "bob" {
		t.Errorf("bob's flow connected %q (%v)", user, err)
	}
}

func TestRefresh(t *testing.T) {
	a := newAuthServer(t)
	a.expiresIn = 120
	clock := &testClock{now: time.Now()}
	st := newMemStore()
	m := newManager(t, st, a, clock)
	ctx := t.Context()
	authURL, _ := m.Authorize(ctx, "alice", "remote")
	if _, _, err := m.Callback(ctx, signIn(t, authURL)); err != nil {
		t.Fatal(err)
	}
	first, _ := m.AccessToken(ctx, "alice", "remote")
	clock.Add(90 * time.Second) // within a minute of the expiry
	second, err := m.AccessToken(ctx, "alice", "remote")
	if err != nil || second == first || a.refreshes.Load() != 1 {
		t.Fatalf("refreshed: %q (was %q), %v, %d refreshes", second, first, err, a.refreshes.Load())
	}

	// Two instances forcing a refresh at once (a 401 each): one refresh,
	// both get its token; a one-use refresh token would fail the second.
	other := newManager(t, st, a, clock)
	var wg sync.WaitGroup
	got := make([]string, 2)
	errs := make([]error, 2)
	for i, mm := range []*Manager{m, other} {
		wg.Go(func() { got[i], errs[i] = mm.Rejected(ctx, "alice", "remote", second) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || got[0] != got[1] || got[0] == second {
		t.Errorf("concurrent refreshes: %q %q, %v %v", got[0], got[1], errs[0], errs[1])
	}

	a.refuse.Store(true)
	if _, err := m.Rejected(ctx, "alice", "remote", got[0]); !IsConnectionRequired(err) {
		t.Errorf("a refused refresh: %v, want ErrConnectionRequired", err)
	}
	if _, err := st.GetCredential(ctx, "alice", "remote"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("a refused grant is kept: %v", err)
	}
}

func TestUserSecrets(t *testing.T) {
	a := newAuthServer(t)
	m := newManager(t, newMemStore(), a, &testClock{now: time.Now()})
	ctx := t.Context()
	for _, bad := range []map[string]string{{}, {"LINEAR_TOKEN": " "}, {"LINEAR_TOKEN": "x", "OTHER": "y"}} {
		if err := m.ConnectSecrets(ctx, "alice", "linear", bad); !errors.Is(err, switchboard.ErrInvalid) {
			t.Errorf("ConnectSecrets(%v): %v", bad, err)
		}
	}
	if err := m.ConnectSecrets(ctx, "alice", "linear", map[string]string{"LINEAR_TOKEN": "lin_alice"}); err != nil {
		t.Fatal(err)
	}
	if s, err := m.Secrets(ctx, "alice", "linear"); err != nil || s["LINEAR_TOKEN"] != "lin_alice" {
		t.Errorf("alice's secrets: %v %v", s, err)
	}
	if _, err := m.Secrets(ctx, "bob", "linear"); !IsConnectionRequired(err) {
		t.Errorf("bob's: %v", err)
	}
	if _, err := m.Authorize(ctx, "alice", "linear"); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("an OAuth sign-in to a user_secret server: %v", err)
	}
}

func TestRotate(t *testing.T) {
	a := newAuthServer(t)
	st := newMemStore()
	clock := &testClock{now: time.Now()}
	key := func(b byte) string {
		return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune('a'+b)), 32)))
	}
	oldRing, _ := keyring.Parse("old:" + key(0))
	servers := []Server{{Name: "remote", URL: a.URL + "/mcp", Auth: Auth{Type: KindOAuth}},
		{Name: "linear", Auth: Auth{Type: KindUserSecret, Secrets: map[string]string{"LINEAR_TOKEN": "x"}}}}
	m := New(st, oldRing, &Options{PublicURL: "https://switchboard.example", Now: clock.Now})
	m.SetServers(servers)
	ctx := t.Context()
	authURL, _ := m.Authorize(ctx, "alice", "remote")
	if _, _, err := m.Callback(ctx, signIn(t, authURL)); err != nil {
		t.Fatal(err)
	}
	if err := m.ConnectSecrets(ctx, "alice", "linear", map[string]string{"LINEAR_TOKEN": "lin"}); err != nil {
		t.Fatal(err)
	}
	token, _ := m.AccessToken(ctx, "alice", "remote")

	bothRing, _ := keyring.Parse("new:" + key(1) + ",old:" + key(0))
	rotated := New(st, bothRing, &Options{PublicURL: "https://switchboard.example", Now: clock.Now})
	rotated.SetServers(servers)
	n, err := rotated.Rotate(ctx)
	if err != nil || n != 3 { // two credentials and the registered client
		t.Fatalf("Rotate: %d, %v; want 3 sealed again", n, err)
	}
	for _, c := range st.creds {
		if c.KeyID != "new" {
			t.Errorf("%s/%s still under %s", c.UserID, c.Server, c.KeyID)
		}
	}
	newRing, _ := keyring.Parse("new:" + key(1))
	after := New(st, newRing, &Options{PublicURL: "https://switchboard.example", Now: clock.Now})
	after.SetServers(servers)
	if got, err := after.AccessToken(ctx, "alice", "remote"); err != nil || got != token {
		t.Errorf("with the new key alone: %q %v", got, err)
	}
	if s, err := after.Secrets(ctx, "alice", "linear"); err != nil || s["LINEAR_TOKEN"] != "lin" {
		t.Errorf("secrets with the new key alone: %v %v", s, err)
	}
	if _, err := after.Authorize(ctx, "bob", "remote"); err != nil {
		t.Errorf("the registered client under the new key: %v", err)
	}
	if n := a.registered.Load(); n != 1 {
		t.Errorf("registered %d clients: the rotated one was not used", n)
	}
}
