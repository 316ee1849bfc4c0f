package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/internal/mcptest"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
)

// TestServeProtocolEras runs the service with servers of both eras, every
// one with protocol auto: the go-sdk server limited to MCP 2026-07-28 over
// streamable HTTP, the TypeScript SDK v2 server that refuses initialize over
// stdio, and tasks-mcp over stdio (legacy there). A turn calls a tool of
// each modern one; the admin API says what each connection speaks.
func TestServeProtocolEras(t *testing.T) {
	modernURL := mcptest.StartModernHTTP(t)
	nodetest.Module(t, "@modelcontextprotocol/server")
	script, err := filepath.Abs(filepath.Join("..", "..", "mcpclient", "testdata", "tsmodern.mjs"))
	if err != nil {
		t.Fatal(err)
	}

	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{
			{Name: "gosdk__echo", Arguments: `{"text":"over http"}`},
			{Name: "ts__echo", Arguments: `{"text":"over stdio"}`},
		}},
		llmtest.Reply{Text: "Both answered."},
	))
	defer model.Close()
	s := startServe(t, fmt.Sprintf(`
listen: 127.0.0.1:0
llm: {base_url: %q, model: scripted}
mcp_startup_wait: 30s
mcpServers:
  gosdk: {url: %q, scope: shared}
  ts: {command: %q, args: [%q], scope: shared}
  tasks: {command: %q, inject: {user_id: user_id}}
`, model.URL, modernURL, nodetest.Node(t), script, tasksBin), nil)

	req, _ := http.NewRequestWithContext(t.Context(), "POST", s.base+"/api/dev/chat", strings.NewReader(`{"message":{"content":"echo"}}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct {
		Message   struct{ Content string }
		ToolCalls []struct {
			Server, Tool, Status string
			Result               any
		} `json:"tool_calls"`
	}
	json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	got := map[string]string{}
	for _, c := range reply.ToolCalls {
		got[c.Server] = c.Status + " " + fmt.Sprint(c.Result)
	}
	if reply.Message.Content != "Both answered." || got["gosdk"] != "succeeded echo: over http" || got["ts"] != "succeeded echo: over stdio" {
		t.Errorf("the turn: %q with calls %v, want both echoes succeeded", reply.Message.Content, got)
	}

	req, _ = http.NewRequestWithContext(t.Context(), "GET", s.base+"/api/admin/servers", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Servers []struct {
			Name     string
			Protocol struct {
				Era, Version string
				ServerName   string `json:"server_name"`
			}
		}
	}
	json.NewDecoder(resp.Body).Decode(&body)
	protocols := map[string]string{}
	for _, sv := range body.Servers {
		protocols[sv.Name] = sv.Protocol.Era + " " + sv.Protocol.Version + " " + sv.Protocol.ServerName
	}
	for name, want := range map[string]string{
		"gosdk": "modern 2026-07-28 modernmcp",
		"ts":    "modern 2026-07-28 tsmodern",
		"tasks": "legacy 2025-11-25 tasks-mcp",
	} {
		if protocols[name] != want {
			t.Errorf("GET /api/admin/servers: %s speaks %q, want %q", name, protocols[name], want)
		}
	}
}
