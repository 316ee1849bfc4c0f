package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/credentials"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/keyring"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// oauthDemo is the TypeScript SDK's example server simpleStreamableHttp
// with --oauth-strict: an MCP server behind OAuth with a demo authorization
// server (dynamic registration, PKCE, resource-bound tokens, introspection)
// that approves every sign-in at once. It logs each request's
// authentication, token included, to stdout.
type oauthDemo struct {
	mcpURL, authURL string
	mu              sync.Mutex
	out             strings.Builder
}

func (d *oauthDemo) stdout() string { d.mu.Lock(); defer d.mu.Unlock(); return d.out.String() }

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startOAuthDemo(t *testing.T) *oauthDemo {
	t.Helper()
	return startOAuthExample(t, "simpleStreamableHttp", "--oauth", "--oauth-strict")
}

// startOAuthExample starts the TypeScript SDK's example server name
// (dist/esm/examples/server/name.js, with args) that serves MCP behind the
// SDK's demo authorization server, as startOAuthDemo does.
func startOAuthExample(t *testing.T, name string, args ...string) *oauthDemo {
	t.Helper()
	node := nodetest.Node(t)
	script := filepath.Join(nodetest.Module(t, "@modelcontextprotocol/sdk"), "dist", "esm", "examples", "server", name+".js")
	mcpPort, authPort := freePort(t), freePort(t)
	cmd := exec.Command(node, append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("MCP_PORT=%d", mcpPort), fmt.Sprintf("MCP_AUTH_PORT=%d", authPort))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &oauthDemo{mcpURL: fmt.Sprintf("http://localhost:%d/mcp", mcpPort), authURL: fmt.Sprintf("http://localhost:%d", authPort)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		mcp, as, told := false, false, false
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			mcp = mcp || strings.Contains(sc.Text(), "MCP Streamable HTTP Server listening")
			as = as || strings.Contains(sc.Text(), "OAuth Authorization Server listening")
			if mcp && as && !told {
				close(ready)
				told = true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("the OAuth demo server did not start:\n%s", d.stdout())
	}
	return d
}

// sessionTokens reads the demo's log: the access tokens each MCP session's
// requests carried. A request of a session logs its id, then its token; the
// initialize request logs its body, its token, then the session it made.
func sessionTokens(log string) map[string][]string {
	out := map[string][]string{}
	token := regexp.MustCompile(`^token: '([^']+)'`)
	var current, pending string
	for line := range strings.Lines(log) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Received MCP request for session: "):
			current = strings.TrimPrefix(line, "Received MCP request for session: ")
		case strings.HasPrefix(line, "Request body:"), strings.HasPrefix(line, "Authenticated SSE connection"):
			current = ""
		case strings.HasPrefix(line, "Session initialized with ID: "):
			if pending != "" {
				id := strings.TrimPrefix(line, "Session initialized with ID: ")
				out[id] = append(out[id], pending)
				pending = ""
			}
		default:
			if m := token.FindStringSubmatch(line); m != nil {
				if current != "" {
					out[current] = append(out[current], m[1])
				} else {
					pending = m[1]
				}
			}
		}
	}
	return out
}

// signInAsABrowser opens the authorization URL as a browser would, follows
// the authorization server's redirects to the service's callback, and
// returns the callback page.
func signInAsABrowser(t *testing.T, authURL, callbackPrefix string) (int, string) {
	t.Helper()
	resp, err := http.Get(authURL) // following the redirects, to the callback

	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(resp.Request.URL.String(), callbackPrefix) {
		t.Fatalf("the sign-in ended at %s, not the callback: %d %s", resp.Request.URL, resp.StatusCode, b)
	}
	return resp.StatusCode, string(b)
}

// TestOAuthConnectionsEndToEnd: two users sign in to an OAuth-protected MCP
// server we did not write, through the real flow; each one's calls carry
// their own token (as the server logs it), a user who has not connected is
// told to connect (JSON and stream), the callback refuses a used or forged
// state, the tokens are sealed in Postgres, and neither they nor the users'
// JWTs show up where they must not.
func TestOAuthConnectionsEndToEnd(t *testing.T) {
	demo := startOAuthDemo(t)
	model := llmtest.NewServer(func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == openai.ChatMessageRoleTool {
			return llmtest.Reply{Text: "tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "demo__greet", Arguments: fmt.Sprintf(`{"name":%q}`, last.Content)}}}
	})
	defer model.Close()
	dbURL := storetest.PostgresURL(t)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	const jwtSecret = "oauth-end-to-end-test-secret-0123456789"
	secretsKey := "test:" + "c3dpdGNoYm9hcmQtdGVzdC1rZXktMzItYnl0ZXMhISE="
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:%d
public_url: %s
secrets_key: %q
database_url: %q
llm: {base_url: %q, api_key: k}
auth: {jwt_secret: %q, admin_users: [root]}
mcpServers:
  demo: {url: %q, auth: {type: oauth}}
`, port, base, secretsKey, dbURL, model.URL, jwtSecret, demo.mcpURL)
	var stdout, stderr syncBuffer
	startWithSecret(t, cfg, &stdout, &stderr)
	jwts := map[string]string{}
	jwt := func(user string) string {
		if jwts[user] == "" {
			jwts[user], _ = auth.MintToken([]byte(jwtSecret), user, time.Hour, user == "root", "", "")
		}
		return jwts[user]
	}
	var replies []string
	call := func(method, path, user, body string) (int, string) {
		code, b := httpCall(t, method, base+path, jwt(user), body)
		replies = append(replies, b)
		return code, b
	}

	callbacks := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		code, body := call("POST", "/api/"+user+"/connections/demo", user, "")
		var r struct {
			AuthorizationURL string `json:"authorization_url"`
		}
		json.Unmarshal([]byte(body), &r)
		if code != 200 || !strings.HasPrefix(r.AuthorizationURL, demo.authURL+"/authorize?") {
			t.Fatalf("%s connects: %d %s\n%s", user, code, body, stderr.String())
		}
		u, _ := url.Parse(r.AuthorizationURL)
		if q := u.Query(); q.Get("resource") != demo.mcpURL || q.Get("code_challenge_method") != "S256" {
			t.Errorf("authorization request: %v", q)
		}
		status, page := signInAsABrowser(t, r.AuthorizationURL, base+"/oauth/callback")
		if status != 200 || !strings.Contains(page, "Connected demo") {
			t.Fatalf("%s's callback: %d %s\n%s", user, status, page, stderr.String())
		}
		callbacks[user] = r.AuthorizationURL
	}
	waitUntil(t, 30*time.Second, "the demo's tools in alice's catalog", func() bool {
		_, body := httpCall(t, "GET", base+"/api/alice/tools", jwt("alice"), "")
		return strings.Contains(body, "demo__greet")
	})

	// Each user's call carries their own token.
	ring, _ := keyring.Parse(secretsKey)
	pg, err := store.OpenPostgres(context.Background(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	creds := credentials.New(pg, ring, &credentials.Options{PublicURL: base})
	creds.SetServers([]credentials.Server{{Name: "demo", URL: demo.mcpURL, Auth: credentials.Auth{Type: credentials.KindOAuth}}})
	stored := map[string]string{}
	for _, user := range []string{"alice", "bob"} {
		code, body := call("POST", "/api/"+user+"/chat", user, fmt.Sprintf(`{"message":{"content":%q}}`, user))
		if code != 200 || !strings.Contains(body, "Hello, "+user+"!") {
			t.Fatalf("%s's chat: %d %s\n%s", user, code, body, stderr.String())
		}
		if stored[user], err = creds.AccessToken(context.Background(), user, "demo"); err != nil {
			t.Fatal(err)
		}
	}
	if stored["alice"] == stored["bob"] {
		t.Error("alice and bob have one token")
	}
	// Each MCP session the demo saw carried one user's tokens only (a
	// refused token is refreshed unseen, so a session may carry several,
	// all its user's): alice's and bob's sessions are apart.
	sessions := sessionTokens(demo.stdout())
	of := map[string]string{} // session -> user, by the token stored last
	for id, toks := range sessions {
		for user, tok := range stored {
			if slices.Contains(toks, tok) {
				if of[id] != "" {
					t.Errorf("session %s carried the tokens of %s and %s", id, of[id], user)
				}
				of[id] = user
			}
		}
	}
	for id, toks := range sessions {
		for other, otherToks := range sessions {
			if of[id] != of[other] && slices.ContainsFunc(toks, func(tok string) bool { return slices.Contains(otherToks, tok) }) {
				t.Errorf("sessions %s (%s) and %s (%s) carried one token", id, of[id], other, of[other])
			}
		}
	}
	for user := range stored {
		if !slices.Contains(slices.Collect(maps.Values(of)), user) {
			t.Errorf("no session of the demo carried %s's token; it logged:\n%s", user, demo.stdout())
		}
	}

	// carol has not connected: the call does not run, and she is told.
	code, body := call("POST", "/api/carol/chat", "carol", `{"message":{"content":"carol"}}`)
	var r struct {
		ToolCalls []struct {
			Status, Error string
		} `json:"tool_calls"`
		ConnectionsRequired []struct {
			Server           string `json:"server"`
			AuthorizationURL string `json:"authorization_url"`
		} `json:"connections_required"`
	}
	json.Unmarshal([]byte(body), &r)
	if code != 200 || len(r.ConnectionsRequired) != 1 || r.ConnectionsRequired[0].Server != "demo" ||
		!strings.HasPrefix(r.ConnectionsRequired[0].AuthorizationURL, demo.authURL+"/authorize?") ||
		len(r.ToolCalls) != 1 || r.ToolCalls[0].Status != "failed" || !strings.Contains(r.ToolCalls[0].Error, "connect demo") {
		t.Errorf("carol's chat: %d %s", code, body)
	}
	code, body = call("POST", "/api/carol/chat/stream", "carol", `{"message":{"content":"carol"}}`)
	if code != 200 || !strings.Contains(body, `"type":"data-connection-required"`) || !strings.Contains(body, `"authorizationUrl":"`+demo.authURL) {
		t.Errorf("carol's stream: %d %.2000s", code, body)
	}
	code, body = call("GET", "/api/carol/connections", "carol", "")
	if code != 200 || !strings.Contains(body, `"server":"demo"`) || strings.Contains(body, `"connected":true`) {
		t.Errorf("carol's connections: %d %s", code, body)
	}
	code, body = call("GET", "/api/alice/connections", "alice", "")
	if code != 200 || !strings.Contains(body, `"connected":true`) {
		t.Errorf("alice's connections: %d %s", code, body)
	}
	code, body = call("GET", "/api/admin/connections", "root", "")
	if code != 200 || strings.Count(body, `"server":"demo"`) != 2 {
		t.Errorf("admin connections: %d %s", code, body)
	}

	// The callback refuses a state used already and one never issued.
	used, _ := url.Parse(callbacks["alice"])
	for name, q := range map[string]string{
		"forged": url.Values{"state": {"not-a-state"}, "code": {"x"}}.Encode(),
		"used":   url.Values{"state": {used.Query().Get("state")}, "code": {"x"}}.Encode(),
	} {
		resp, err := http.Get(base + "/oauth/callback?" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "Not connected") {
			t.Errorf("a %s state: %d %s", name, resp.StatusCode, b)
		}
	}

	// Sealed at rest: the row holds neither token.
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), "SELECT sealed FROM credentials")
	n := 0
	for rows.Next() {
		var sealed []byte
		rows.Scan(&sealed)
		n++
		for _, tok := range stored {
			if strings.Contains(string(sealed), tok) {
				t.Error("a credential row holds its token in the clear")
			}
		}
	}
	if n != 2 {
		t.Errorf("%d credential rows, want 2", n)
	}

	// Disconnecting forgets the grant: the next call asks to connect.
	if code, body := call("DELETE", "/api/bob/connections/demo", "bob", ""); code != 200 {
		t.Errorf("bob disconnects: %d %s", code, body)
	}
	code, body = call("POST", "/api/bob/chat", "bob", `{"message":{"content":"bob"}}`)
	if code != 200 || !strings.Contains(body, "connections_required") {
		t.Errorf("bob after disconnecting: %d %s", code, body)
	}

	_, metrics := httpCall(t, "GET", base+"/metrics", "", "")
	logs := stderr.String() + stdout.String()
	for user, tok := range stored {
		for where, text := range map[string]string{"the logs": logs, "the metrics": metrics, "a reply": strings.Join(replies, "\n")} {
			if strings.Contains(text, tok) {
				t.Errorf("%s hold %s's access token", where, user)
			}
		}
	}
	for _, user := range []string{"alice", "bob", "carol"} {
		if strings.Contains(demo.stdout(), jwt(user)) || strings.Contains(demo.stdout(), jwtSecret) {
			t.Errorf("%s's Switchboard JWT reached the MCP server", user)
		}
	}
}
