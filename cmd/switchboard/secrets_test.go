package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// TestSecretsStayOutOfLogsAndTheUsersTokenStaysHome: canary secrets in the
// config, the environment and configured headers never appear in the logs,
// and the user's JWT never reaches an MCP server.
func TestSecretsStayOutOfLogsAndTheUsersTokenStaysHome(t *testing.T) {
	canaries := map[string]string{
		"OPENAI_API_KEY": "sk-canary-api-key-4f1e",
		"JWT_SECRET_KEY": "canary-jwt-secret-7a3c-0123456789abcdef",
		"REMOTE_KEY":     "canary-header-value-9b2d",
		"STDIO_SECRET":   "canary-env-value-5e8a",
		"DB_PASSWORD":    "canary-db-password-1c7f",
	}
	// A remote MCP server that records the headers it receives.
	var mu sync.Mutex
	var seen []http.Header
	ms := server.NewMCPServer("remote", "1.0.0")
	ms.AddTool(mcp.NewTool("echo", mcp.WithString("text")), func(_ context.Context, r mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(r.GetString("text", "")), nil
	})
	mcpHandler := server.NewStreamableHTTPServer(ms)
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		mcpHandler.ServeHTTP(w, r)
	}))
	defer remote.Close()

	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "remote__echo", Arguments: `{"text":"hi"}`}, {Name: "tasks__list_tasks", Arguments: `{}`}}},
		llmtest.Reply{Text: "done"},
	))
	defer model.Close()

	dbURL := strings.Replace(storetest.PostgresURL(t), "postgres@", "postgres:${DB_PASSWORD}@", 1)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
database_url: %q
llm: {base_url: %q, api_key: "${OPENAI_API_KEY}"}
auth: {jwt_secret: "${JWT_SECRET_KEY}"}
mcpServers:
  remote: {url: %q, headers: {X-Api-Key: "${REMOTE_KEY}"}}
  tasks: {command: %q, env: {SECRET: "${STDIO_SECRET}"}, inject: {user_id: user_id}}
`, dbURL, model.URL, remote.URL+"/mcp", tasksBin)
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfgFile := t.TempDir() + "/c.yaml"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) (string, bool) { v, ok := canaries[k]; return v, ok }
	go func() { done <- run(ctx, []string{"serve", "--config", cfgFile}, getenv, &stdout, &stderr) }()
	base := waitForListen(t, &stderr, done)

	userJWT, _ := auth.MintToken([]byte(canaries["JWT_SECRET_KEY"]), "alice", time.Hour, false, "", "")
	send := func(auth, body string) int {
		req, _ := http.NewRequest("POST", base+"/api/alice/chat", strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send("Bearer "+userJWT, `{"message":{"content":"go"}}`); code != 200 {
		t.Fatalf("chat: got %d\n%s", code, stderr.String())
	}
	forged := userJWT[:len(userJWT)-4] + "AAAA"
	if code := send("Bearer "+forged, `{"message":{"content":"go"}}`); code != 401 {
		t.Errorf("forged token: got %d", code)
	}
	send("Bearer "+canaries["JWT_SECRET_KEY"], `{}`) // a secret pasted as a token
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	logs := stdout.String() + stderr.String()
	for name, v := range canaries {
		if strings.Contains(logs, v) {
			t.Errorf("the logs hold %s", name)
		}
	}
	for _, tok := range []string{userJWT, forged} {
		if strings.Contains(logs, tok) || strings.Contains(logs, tok[strings.LastIndex(tok, ".")+1:]) {
			t.Errorf("the logs hold a bearer token")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("the remote MCP server saw no request")
	}
	for _, h := range seen {
		if got := h.Get("X-Api-Key"); got != canaries["REMOTE_KEY"] {
			t.Errorf("remote server got X-Api-Key %q, want the configured value", got)
		}
		for name, vals := range h {
			for _, v := range vals {
				if strings.Contains(v, userJWT) || strings.Contains(v, canaries["JWT_SECRET_KEY"]) {
					t.Errorf("the user's token or our secret reached the MCP server in %s", name)
				}
			}
		}
	}
	// One line per request and per tool call, with ids: the logs join up.
	var sawRequest, sawCall, sawTurn bool
	for _, line := range strings.Split(logs, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch l["msg"] {
		case "request":
			if l["route"] == "/api/:user_id/chat" && l["status"] == float64(200) {
				sawRequest = l["request_id"] != nil && l["turn_id"] != nil && l["conversation_id"] != nil && l["user_id"] == "alice"
			}
		case "tool call":
			sawCall = l["request_id"] != nil && l["turn_id"] != nil && l["call_id"] != nil && l["status"] != nil && l["duration"] != nil
		case "turn":
			sawTurn = l["turn_id"] != nil && l["status"] == "completed"
		}
	}
	if !sawRequest || !sawCall || !sawTurn {
		t.Errorf("log lines with ids: request %v, tool call %v, turn %v\n%s", sawRequest, sawCall, sawTurn, logs)
	}
}

// waitForListen reads the address of the listening line from the logs.
func waitForListen(t *testing.T, stderr *syncBuffer, done chan error) string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, stderr.String())
		default:
		}
		logs := stderr.String()
		if i := strings.Index(logs, `"addr":"http://`); i >= 0 {
			rest := logs[i+len(`"addr":"`):]
			return rest[:strings.IndexByte(rest, '"')]
		}
	}
	t.Fatalf("never listened:\n%s", stderr.String())
	return ""
}

// TestSecretsScrubbedWhicheverLibraryWroteThem: secrets that reach text by
// ways our own code does not control are hidden too: mcp-go's logger
// writing a server URL with its query, a model server echoing our
// Authorization header in its error, a stdio server printing its env to
// stderr (shown to admins). Checked in the logs, the chat's error reply
// and the admin API.
func TestSecretsScrubbedWhicheverLibraryWroteThem(t *testing.T) {
	canaries := map[string]string{
		"OPENAI_API_KEY": "sk-canary-echoed-key-3d9a",
		"JWT_SECRET_KEY": "canary-jwt-secret-2b7e-0123456789abcdef",
		"DOWN_KEY":       "canary-url-query-6c1f",
		"ENV_CANARY":     "canary-printed-env-8e4b",
	}
	// A model server that echoes the request's Authorization header in
	// its error, as some proxies do.
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":"invalid request; headers were: Authorization: %s","type":"invalid_request_error"}}`, r.Header.Get("Authorization"))
	}))
	defer model.Close()
	// A remote server that is down, its key in the URL's query.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()

	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
llm: {base_url: %q, api_key: "${OPENAI_API_KEY}"}
auth: {jwt_secret: "${JWT_SECRET_KEY}"}
mcp_startup_wait: 1s
mcpServers:
  down: {url: "http://%s/mcp?api_key=${DOWN_KEY}", init_timeout: 200ms}
  printer: {command: sh, args: [-c, 'echo "starting with X=$X" >&2; exec %s'], env: {X: "${ENV_CANARY}"}}
`, model.URL, down, tasksBin)
	cfgFile := t.TempDir() + "/c.yaml"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	getenv := func(k string) (string, bool) { v, ok := canaries[k]; return v, ok }
	go func() { done <- run(ctx, []string{"serve", "--config", cfgFile}, getenv, &stdout, &stderr) }()
	base := waitForListen(t, &stderr, done)

	userJWT, _ := auth.MintToken([]byte(canaries["JWT_SECRET_KEY"]), "alice", time.Hour, false, "", "")
	adminJWT, _ := auth.MintToken([]byte(canaries["JWT_SECRET_KEY"]), "root", time.Hour, true, "", "")
	get := func(method, path, token, body string) (int, string) {
		return httpCall(t, method, base+path, token, body)
	}
	var replies []string
	code, body := get("POST", "/api/alice/chat", userJWT, `{"message":{"content":"hi"}}`)
	if code != http.StatusBadGateway || !strings.Contains(body, "[REDACTED]") {
		t.Errorf("chat: got %d %s, want 502 with the echoed key hidden", code, body)
	}
	replies = append(replies, body)
	// The printer's stderr and the down server's error reach the admin API.
	waitUntil(t, 10*time.Second, "the printer's stderr", func() bool {
		_, body := get("GET", "/api/admin/servers", adminJWT, "")
		return strings.Contains(body, "starting with X=")
	})
	time.Sleep(1500 * time.Millisecond) // let the down server's retries log a few lines
	_, body = get("GET", "/api/admin/servers", adminJWT, "")
	replies = append(replies, body)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	logs := stdout.String() + stderr.String()
	if !strings.Contains(logs, "model call failed") || !strings.Contains(logs, down) {
		t.Fatalf("the logs lack the lines this test is about:\n%s", logs)
	}
	for name, v := range canaries {
		if strings.Contains(logs, v) {
			t.Errorf("the logs hold %s:\n%s", name, logs)
		}
		for _, r := range replies {
			if strings.Contains(r, v) {
				t.Errorf("a reply holds %s: %s", name, r)
			}
		}
	}
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
	}
}
