//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
)

func TestMaxToolsConfig(t *testing.T) {
	getenv := func(string) (string, bool) { return "", false }
	for _, tt := range []struct {
		doc  string
		want int
	}{
		{"{}", 128},
		{"llm: {max_tools: 0}", 0},
		{"llm: {max_tools: 40}", 40},
	} {
		cfg, _, err := ParseConfig([]byte(tt.doc), getenv)
		if err != nil {
			t.Fatalf("ParseConfig(%s): %v", tt.doc, err)
		}
		if got := cfg.LLM.maxTools(); got != tt.want {
			t.Errorf("ParseConfig(%s): max_tools %d, want %d", tt.doc, got, tt.want)
		}
	}
	for _, doc := range []string{"llm: {max_tools: -1}", "llm: {max_tools: 1}", "llm: {max_tools: 2}"} {
		if _, _, err := ParseConfig([]byte(doc), getenv); err == nil || !strings.Contains(err.Error(), "llm.max_tools must be 0 (no limit) or at least 3") {
			t.Errorf("ParseConfig(%s): got %v, want llm.max_tools refused", doc, err)
		}
	}
	// The servers keep the file's order, YAML or JSON: it decides which
	// tools are sent when there are too many.
	for _, doc := range []string{
		"mcpServers:\n  zeta: {command: a}\n  alpha: {command: b}\n  mid: {command: c}\n",
		`{"mcpServers": {"zeta": {"command": "a"}, "alpha": {"command": "b"}, "mid": {"command": "c"}}}`,
	} {
		cfg, _, err := ParseConfig([]byte(doc), getenv)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range serverSpecs(cfg) {
			names = append(names, s.Config.Name)
		}
		if diff := cmp.Diff([]string{"zeta", "alpha", "mid"}, names); diff != "" {
			t.Errorf("server order of %s (-want +got):\n%s", doc, diff)
		}
	}
}

// TestServeMaxTools runs the service with two tasks-mcp servers (10 tools)
// and llm.max_tools 4: every model request carries at most 4 tools, the
// first 2 of the server configured first (2 places are kept for the
// built-in tools) and, once a result was truncated, read_tool_result; a call of a tool left out fails as a call of
// an unknown tool; the admin API and the log name the tools left out.
func TestServeMaxTools(t *testing.T) {
	model := llmtest.NewServer(llmtest.Sequence(
		// output_budget 10 truncates the result: read_tool_result is offered.
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "zeta__add_task", Arguments: `{"title":"buy milk for the whole week"}`}}},
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "alpha__list_tasks", Arguments: `{}`}}},
		llmtest.Reply{Text: "Done."},
	))
	defer model.Close()
	s := startServe(t, fmt.Sprintf(`
listen: 127.0.0.1:0
llm: {base_url: %q, model: scripted, max_tools: 4}
mcp_startup_wait: 20s
mcpServers:
  zeta: {command: %q, inject: {user_id: user_id}, output_budget: 10}
  alpha: {command: %q, inject: {user_id: user_id}}
`, model.URL, tasksBin, tasksBin), nil)

	const reason = "over llm.max_tools (4): not sent to the model"
	_, servers := adminServers(t, s.base, s.token, "GET", "")
	for name, want := range map[string][]string{
		"zeta":  {"delete_task", "list_tasks", "update_task"},
		"alpha": {"add_task", "complete_task", "delete_task", "list_tasks", "update_task"},
	} {
		var got []string
		for _, q := range servers[name].Quarantined {
			if q.Reason != reason {
				t.Errorf("%s/%s quarantined for %q, want %q", name, q.Tool, q.Reason, reason)
			}
			got = append(got, q.Tool)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET /api/admin/servers: %s's tools left out (-want +got):\n%s", name, diff)
		}
	}
	if diff := cmp.Diff([]string{"zeta__add_task", "zeta__complete_task"}, servers["zeta"].Tools); diff != "" {
		t.Errorf("GET /api/admin/servers: zeta's tools (-want +got):\n%s", diff)
	}

	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.base+"/api/dev/chat", strings.NewReader(`{"message":{"content":"buy milk"}}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var reply struct {
		Message   struct{ Content string }
		ToolCalls []struct{ Tool, Status, Error string } `json:"tool_calls"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil || resp.StatusCode != http.StatusOK || reply.Message.Content != "Done." || len(reply.ToolCalls) != 2 {
		t.Fatalf("chat: %d %s", resp.StatusCode, raw)
	}
	if c := reply.ToolCalls[0]; c.Tool != "add_task" || c.Status != "succeeded" {
		t.Errorf("the call of a tool sent: %+v", c)
	}
	if c := reply.ToolCalls[1]; c.Status != "failed" || c.Error != `unknown tool "alpha__list_tasks"` {
		t.Errorf("the call of a tool left out: %+v, want failed as an unknown tool", c)
	}

	reqs := model.Requests()
	if len(reqs) != 3 {
		t.Fatalf("the model got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		var names []string
		for _, tool := range r.Tools {
			names = append(names, tool.Function.Name)
		}
		slices.Sort(names)
		want := []string{"zeta__add_task", "zeta__complete_task"}
		if i > 0 {
			want = []string{"read_tool_result", "zeta__add_task", "zeta__complete_task"}
		}
		if len(names) > 4 {
			t.Errorf("model request %d carries %d tools, over llm.max_tools (4): %v", i, len(names), names)
		}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("model request %d: tools (-want +got):\n%s", i, diff)
		}
	}

	// The log says which tools are left out, and what to do about it (the
	// fleet logs it before serve listens).
	var last map[string]any
	for line := range strings.Lines(s.stderr.String()) {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil && strings.HasPrefix(fmt.Sprint(r["msg"]), "tools left out") {
			last = r
		}
	}
	if last == nil || last["level"] != "WARN" || last["left_out"] != float64(8) ||
		!strings.Contains(last["msg"].(string), "allowed_tools or excluded_tools") ||
		!slices.Contains(last["tools"].([]any), any("alpha/update_task")) || !slices.Contains(last["tools"].([]any), any("zeta/list_tasks")) {
		t.Errorf("no warning naming the 8 tools left out; last: %v\nstderr:\n%s", last, s.stderr.String())
	}
}
