package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
)

// TestReloadOfAnInvalidFileChangesNoPolicy: a reload of a file that the
// fleet refuses (a server with an ftp:// URL) leaves require_approval as it
// was; a valid one applies it.
func TestReloadOfAnInvalidFileChangesNoPolicy(t *testing.T) {
	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"one"}`}}},
		llmtest.Reply{Text: "Added one."},
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"two"}`}}},
	))
	defer model.Close()
	config := func(approval, extra string) string {
		return fmt.Sprintf("listen: 127.0.0.1:0\nllm: {base_url: %q, model: scripted}\nmcp_startup_wait: 20s\nmcpServers:\n"+
			"  tasks: {command: %q, inject: {user_id: user_id}, require_approval: %s}\n%s", model.URL, tasksBin, approval, extra)
	}
	s := startServe(t, config("false", ""), nil)
	reload := func(cfg string) int {
		t.Helper()
		if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _ := adminServers(t, s.base, s.token, "POST", "/reload")
		return code
	}
	status := func(content string) string {
		t.Helper()
		code, body, err := chat(s.base, s.token, content)
		var reply struct{ Status string }
		if err != nil || code != http.StatusOK || json.Unmarshal([]byte(body), &reply) != nil {
			t.Fatalf("chat: %d %s %v", code, body, err)
		}
		return reply.Status
	}

	if code := reload(config("true", "  bad: {url: \"ftp://127.0.0.1/mcp\"}\n")); code != http.StatusBadRequest {
		t.Fatalf("reload of a file with an ftp:// server: got %d, want 400", code)
	}
	if got := status("add one"); got != "completed" {
		t.Errorf("after a refused reload that asked for approval, a call: got turn status %s, want completed (no approval asked)", got)
	}
	if code := reload(config("true", "")); code != http.StatusOK {
		t.Fatalf("reload of a valid file: got %d, want 200", code)
	}
	if got := status("add two"); got != "awaiting_approval" {
		t.Errorf("after a reload that asks for approval, a call: got turn status %s, want awaiting_approval", got)
	}
}
