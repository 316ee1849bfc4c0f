package tools_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

// fakeCredentials hands out tokens and secrets per user, and records what
// a session asked for.
type fakeCredentials struct {
	mu       sync.Mutex
	tokens   map[string]string // user -> current token
	next     map[string]string // user -> the token a 401 refreshes to ("" refuses)
	secrets  map[string]map[string]string
	rejected []string
}

func (f *fakeCredentials) Secrets(_ context.Context, user, server string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.secrets[user]; ok {
		return s, nil
	}
	return nil, switchboard.Errorf(switchboard.ErrForbidden, switchboard.CodeConnectionRequired, "connect %s first", server)
}

func (f *fakeCredentials) AccessToken(_ context.Context, user, server string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tokens[user]; ok {
		return t, nil
	}
	return "", switchboard.Errorf(switchboard.ErrForbidden, switchboard.CodeConnectionRequired, "connect %s first", server)
}

func (f *fakeCredentials) Rejected(_ context.Context, user, server, rejected string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejected = append(f.rejected, rejected)
	if n := f.next[user]; n != "" {
		f.tokens[user] = n
		return n, nil
	}
	delete(f.tokens, user)
	return "", switchboard.Errorf(switchboard.ErrForbidden, switchboard.CodeConnectionRequired, "connect %s again", server)
}

func (f *fakeCredentials) InsufficientScope(_ context.Context, _, server, challenge string) error {
	return switchboard.Errorf(switchboard.ErrForbidden, switchboard.CodeConnectionRequired, "connect %s with more scope (%s)", server, challenge)
}

// bearerServer is an MCP server that takes only the tokens in valid, and
// records the token of each tools/call.
type bearerServer struct {
	mu    sync.Mutex
	valid map[string]bool
	calls []string
	next  http.Handler
}

func (b *bearerServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	b.mu.Lock()
	ok := b.valid[tok]
	b.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", resource_metadata="http://example/.well-known/oauth-protected-resource"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct{ Method string }
		if json.Unmarshal(body, &msg) == nil && msg.Method == "tools/call" {
			b.mu.Lock()
			b.calls = append(b.calls, tok)
			b.mu.Unlock()
		}
	}
	b.next.ServeHTTP(w, r)
}

// TestOAuthSessions: a server with per-user OAuth credentials gets each
// user's own bearer token, its catalog comes from users' sessions, a 401 is
// refreshed once and unseen, and a refresh that fails, or a user who never
// connected, fails the call with class connection_required.
func TestOAuthSessions(t *testing.T) {
	srv := mcpserver.NewMCPServer("protected", "1.0", mcpserver.WithToolCapabilities(true))
	srv.AddTool(mcp.NewTool("whoami"), textTool("ok"))
	bs := &bearerServer{valid: map[string]bool{"alice-1": true, "bob-1": true}, next: mcpserver.NewStreamableHTTPServer(srv)}
	ts := httptest.NewServer(bs)
	t.Cleanup(ts.Close)
	creds := &fakeCredentials{tokens: map[string]string{"alice": "alice-1", "bob": "bob-1"}, next: map[string]string{"alice": "alice-2"}}
	f := newFleet(t, &tools.FleetOptions{StartupWait: 10 * time.Second, Credentials: creds})
	spec := tools.ServerSpec{Credentials: tools.CredentialsOAuth, Config: mcpclient.Config{Name: "protected", URL: ts.URL + "/mcp"}}
	if err := f.Start(t.Context(), []tools.ServerSpec{spec}); err != nil {
		t.Fatal(err)
	}
	if st := status(t, f, "protected"); st.State != switchboard.ServerStarting || st.Scope != "user" || len(st.Tools) != 0 {
		t.Errorf("before any user: %+v", st)
	}
	// Nobody's session listed the tools: a user who connected starts one.
	if err := f.StartSession("protected", "alice"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the catalog to list alice's session's tools", func() bool { _, ok := f.Current().Lookup("protected__whoami"); return ok })
	c := f.Current()
	mustRun(t, c, "alice", "", "protected__whoami", `{}`)
	mustRun(t, c, "bob", "", "protected__whoami", `{}`)
	bs.mu.Lock()
	got := append([]string(nil), bs.calls...)
	bs.mu.Unlock()
	if len(got) != 2 || got[0] != "alice-1" || got[1] != "bob-1" {
		t.Errorf("tokens of the calls: %v", got)
	}

	// alice's token is revoked at the server: a 401, a refresh, the call
	// goes through unseen.
	bs.mu.Lock()
	delete(bs.valid, "alice-1")
	bs.valid["alice-2"] = true
	bs.mu.Unlock()
	mustRun(t, c, "alice", "", "protected__whoami", `{}`)
	if len(creds.rejected) != 1 || creds.rejected[0] != "alice-1" {
		t.Errorf("rejected tokens: %v", creds.rejected)
	}
	// bob's refresh fails: connection required.
	bs.mu.Lock()
	delete(bs.valid, "bob-1")
	bs.mu.Unlock()
	if call := runAs(t.Context(), c, "bob", "", "protected__whoami", `{}`); call.Status != switchboard.CallFailed || call.ErrorClass != switchboard.ErrorClassConnectionRequired {
		t.Errorf("bob after a refused refresh: %s %s %s", call.Status, call.ErrorClass, call.Error)
	}
	// carol never connected.
	if call := runAs(t.Context(), c, "carol", "", "protected__whoami", `{}`); call.ErrorClass != switchboard.ErrorClassConnectionRequired || !strings.Contains(call.Error, "connect protected") {
		t.Errorf("carol: %s %s %s", call.Status, call.ErrorClass, call.Error)
	}
}

// TestUserSecretSessions: a user_secret server's header takes each user's
// own secret, which reaches only that user's calls; a user who gave none
// is told to connect.
func TestUserSecretSessions(t *testing.T) {
	srv := mcpserver.NewMCPServer("linear", "1.0", mcpserver.WithToolCapabilities(true))
	srv.AddTool(mcp.NewTool("issues"), textTool("ok"))
	bs := &bearerServer{valid: map[string]bool{"lin_alice": true, "lin_bob": true, "": true}, next: mcpserver.NewStreamableHTTPServer(srv)}
	ts := httptest.NewServer(bs)
	t.Cleanup(ts.Close)
	creds := &fakeCredentials{secrets: map[string]map[string]string{"alice": {"LINEAR_TOKEN": "lin_alice"}, "bob": {"LINEAR_TOKEN": "lin_bob"}}}
	f := newFleet(t, &tools.FleetOptions{StartupWait: 10 * time.Second, Credentials: creds})
	spec := tools.ServerSpec{Credentials: tools.CredentialsUserSecret, Secrets: []string{"LINEAR_TOKEN"},
		Config: mcpclient.Config{Name: "linear", URL: ts.URL + "/mcp", Headers: map[string]string{"Authorization": "Bearer ${user.LINEAR_TOKEN}"}}}
	if err := f.Start(t.Context(), []tools.ServerSpec{spec}); err != nil {
		t.Fatal(err)
	}
	f.StartSession("linear", "alice")
	waitFor(t, 10*time.Second, "linear's tools", func() bool { _, ok := f.Current().Lookup("linear__issues"); return ok })
	c := f.Current()
	mustRun(t, c, "bob", "", "linear__issues", `{}`)
	mustRun(t, c, "alice", "", "linear__issues", `{}`)
	bs.mu.Lock()
	got := append([]string(nil), bs.calls...)
	bs.mu.Unlock()
	if len(got) != 2 || got[0] != "lin_bob" || got[1] != "lin_alice" {
		t.Errorf("secrets of the calls: %v", got)
	}
	if call := runAs(t.Context(), c, "carol", "", "linear__issues", `{}`); call.ErrorClass != switchboard.ErrorClassConnectionRequired {
		t.Errorf("carol: %s %s %s", call.Status, call.ErrorClass, call.Error)
	}
	// A placeholder of a secret the server does not name is refused.
	bad := spec
	bad.Config.Headers = map[string]string{"X-Key": "${user.OTHER}"}
	if err := tools.ValidateSpecs([]tools.ServerSpec{bad}); err == nil || !strings.Contains(err.Error(), "${user.OTHER}") {
		t.Errorf("an unknown secret placeholder: %v", err)
	}
}
