package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
)

// memoryModel scripts the model for server-memory: "remember X" creates
// entity X, "recall" reads the graph; then it answers with the last tool
// result.
func memoryModel(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
	last := req.Messages[len(req.Messages)-1]
	switch {
	case last.Role == openai.ChatMessageRoleTool:
		return llmtest.Reply{Text: "tool said: " + last.Content}
	case strings.HasPrefix(last.Content, "remember "):
		e := strings.TrimPrefix(last.Content, "remember ")
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "memory__create_entities",
			Arguments: fmt.Sprintf(`{"entities":[{"name":%q,"entityType":"note","observations":["x"]}]}`, e)}}}
	case last.Content == "recall":
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "memory__read_graph", Arguments: `{}`}}}
	}
	return llmtest.Reply{Text: "?"}
}

// TestPerUserSessionsThroughTheService: two users of one service with
// server-memory (scope user by default, its file per user): each recalls
// only their own entities; the admin API lists both sessions; a user's
// reset closes only theirs, an admin closes the other's, a user cannot
// reset another's.
func TestPerUserSessionsThroughTheService(t *testing.T) {
	node := nodetest.Node(t)
	index := filepath.Join(nodetest.Module(t, "@modelcontextprotocol/server-memory"), "dist", "index.js")
	model := llmtest.NewServer(memoryModel)
	defer model.Close()
	const secret = "per-user-sessions-test-secret-0123456789"
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
llm: {base_url: %q, api_key: k}
auth: {jwt_secret: %q, admin_users: [root]}
mcp_startup_wait: 30s
mcpServers:
  memory:
    command: %q
    args: [%q]
    env: {MEMORY_FILE_PATH: "%s/${user.id}.jsonl"}
    init_timeout: 30s
`, model.URL, secret, node, index, dir)
	var stdout, stderr syncBuffer
	s := startWithSecret(t, cfg, &stdout, &stderr)
	token := func(user string, admin bool) string {
		tok, err := auth.MintToken([]byte(secret), user, time.Hour, admin, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	call := func(method, path, tok, body string) (int, string) { return httpCall(t, method, s+path, tok, body) }
	chat := func(user, content string) string {
		code, body := call("POST", "/api/"+user+"/chat", token(user, false), fmt.Sprintf(`{"message":{"content":%q}}`, content))
		if code != 200 {
			t.Fatalf("%s: %s: %d %s\n%s", user, content, code, body, stderr.String())
		}
		var r struct{ Message struct{ Content string } }
		json.Unmarshal([]byte(body), &r)
		return r.Message.Content
	}
	chat("alice", "remember alice-entity")
	chat("bob", "remember bob-entity")
	if got := chat("alice", "recall"); !strings.Contains(got, "alice-entity") || strings.Contains(got, "bob-entity") {
		t.Errorf("alice recalls %q", got)
	}
	if got := chat("bob", "recall"); !strings.Contains(got, "bob-entity") || strings.Contains(got, "alice-entity") {
		t.Errorf("bob recalls %q", got)
	}

	root := token("root", false)
	sessions := func() map[string]string {
		code, body := call("GET", "/api/admin/servers", root, "")
		var r struct {
			Servers []struct {
				Name, Scope  string
				SessionsOpen int `json:"sessions_open"`
				Sessions     []struct{ Key, State string }
			}
		}
		json.Unmarshal([]byte(body), &r)
		out := map[string]string{}
		for _, srv := range r.Servers {
			if srv.Name != "memory" || srv.Scope != "user" || srv.SessionsOpen != len(srv.Sessions) || code != 200 {
				t.Fatalf("servers: %d %s", code, body)
			}
			for _, ss := range srv.Sessions {
				out[ss.Key] = ss.State
			}
		}
		return out
	}
	if got := sessions(); len(got) != 2 || got["alice"] != "ready" || got["bob"] != "ready" {
		t.Fatalf("sessions: %v", got)
	}
	if code, body := call("POST", "/api/alice/servers/memory/reset", token("bob", false), ""); code != 403 {
		t.Errorf("bob resets alice's session: %d %s", code, body)
	}
	if code, body := call("POST", "/api/alice/servers/memory/reset", token("alice", false), ""); code != 200 || !strings.Contains(body, `"sessions_closed":1`) {
		t.Errorf("alice's reset: %d %s", code, body)
	}
	if got := sessions(); len(got) != 1 || got["bob"] == "" {
		t.Errorf("after alice's reset: %v", got)
	}
	if code, body := call("DELETE", "/api/admin/servers/memory/sessions/bob", token("bob", false), ""); code != 403 {
		t.Errorf("a user closes a session through the admin API: %d %s", code, body)
	}
	if code, body := call("DELETE", "/api/admin/servers/memory/sessions/bob", root, ""); code != 200 {
		t.Errorf("admin closes bob's session: %d %s", code, body)
	}
	if code, _ := call("DELETE", "/api/admin/servers/memory/sessions/bob", root, ""); code != 404 {
		t.Errorf("closing it again: %d, want 404", code)
	}
	if got := sessions(); len(got) != 0 {
		t.Errorf("after the admin's close: %v", got)
	}
	// The state is the server's, in the user's file: a new session of
	// alice's still recalls her entity.
	if got := chat("alice", "recall"); !strings.Contains(got, "alice-entity") {
		t.Errorf("alice after her reset recalls %q", got)
	}
	if code, body := call("GET", "/metrics", root, ""); code != 200 || !strings.Contains(body, `switchboard_mcp_session_events_total{event="started",server="memory"} 3`) ||
		!strings.Contains(body, `switchboard_mcp_sessions{server="memory"} 1`) {
		t.Errorf("metrics: %d\n%s", code, grepLines(body, "session"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// startWithSecret runs serve with cfg (which configures auth) and returns
// its base URL once it listens.
func startWithSecret(t *testing.T, cfg string, stdout, stderr *syncBuffer) string {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfgFile}, func(string) (string, bool) { return "", false }, stdout, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return waitForListen(t, stderr, done)
}

// httpCall sends a JSON request with a bearer token and returns the status
// and the body.
func httpCall(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
