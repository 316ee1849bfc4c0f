package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// TestLargeResultsArePreviewed: a 300 KB result reaches the chat's JSON,
// the stream's parts and the admin detail as a 64 KiB preview marked
// truncated with its full size; the admin API serves it whole.
func TestLargeResultsArePreviewed(t *testing.T) {
	const size = 300_000
	ms := server.NewMCPServer("big", "1.0")
	ms.AddTool(mcp.NewTool("big"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(strings.Repeat("é", size/2)), nil // two bytes each
	})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(ms))
	t.Cleanup(ts.Close)
	conn, err := mcpclient.Dial(t.Context(), mcpclient.Config{Name: "big", URL: ts.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	st := store.NewMemory()
	script := []llmtest.Reply{
		{ToolCalls: []llmtest.Call{{Name: "big__big", Arguments: `{}`}}}, {Text: "done"},
		{ToolCalls: []llmtest.Call{{Name: "big__big", Arguments: `{}`}}}, {Text: "done again"},
	}
	svc := newServiceWithDeps(t, st, conn, llmtest.Sequence(script...), nil, nil, []string{"root"}, api.Deps{Admin: st}, tools.ApprovalPolicy{})
	alice := token(t, "alice")

	var r struct {
		ToolCalls []struct {
			ID              string `json:"id"`
			Result          string `json:"result"`
			ResultTruncated bool   `json:"result_truncated"`
			ResultSize      int    `json:"result_size"`
		} `json:"tool_calls"`
	}
	resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"big"}}`, &r)
	if resp.StatusCode != 200 || len(r.ToolCalls) != 1 {
		t.Fatalf("chat: %d %+v", resp.StatusCode, r)
	}
	tc := r.ToolCalls[0]
	if len(tc.Result) > 64<<10 || len(tc.Result) < 60<<10 || !tc.ResultTruncated || tc.ResultSize != size {
		t.Errorf("chat's tool call: %d bytes, truncated %v, size %d; want a 64 KiB preview of %d", len(tc.Result), tc.ResultTruncated, tc.ResultSize, size)
	}

	parts := streamParts(t, svc.url+"/api/alice/chat/stream", alice, `{"message":{"content":"big again"}}`)
	out := parts.find("tool-output-available")
	if out == nil {
		t.Fatalf("parts: %v", parts.types())
	}
	o := out["output"].(map[string]any)
	if res := o["result"].(string); len(res) > 64<<10 || o["result_truncated"] != true || o["result_size"] != float64(size) {
		t.Errorf("stream's tool output: %d bytes, %v, %v", len(res), o["result_truncated"], o["result_size"])
	}

	root := adminToken(t, "root")
	var d struct {
		ToolCall struct {
			Result          string `json:"result"`
			ResultTruncated bool   `json:"result_truncated"`
			ResultSize      int    `json:"result_size"`
		} `json:"tool_call"`
	}
	do(t, "GET", svc.url+"/api/admin/tool-calls/"+tc.ID, root, "", &d)
	if len(d.ToolCall.Result) > 64<<10 || !d.ToolCall.ResultTruncated || d.ToolCall.ResultSize != size {
		t.Errorf("admin detail: %d bytes, %v, %d", len(d.ToolCall.Result), d.ToolCall.ResultTruncated, d.ToolCall.ResultSize)
	}
	req, _ := http.NewRequest("GET", svc.url+"/api/admin/tool-calls/"+tc.ID+"/result", nil)
	req.Header.Set("Authorization", "Bearer "+root)
	full, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(full.Body)
	full.Body.Close()
	if full.StatusCode != 200 || len(body) != size || full.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("the whole result: %d, %d bytes", full.StatusCode, len(body))
	}
	req.Header.Set("Authorization", "Bearer "+alice)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 403 {
		t.Errorf("a user reads the admin result route: %d", resp.StatusCode)
	}
}
