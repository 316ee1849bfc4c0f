package orchestrator_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

func TestTheModelReadsStructuredContentOnce(t *testing.T) {
	// A result's structured content reaches the model: once when the text
	// only repeats it (its JSON, pretty-printed), after the text when it
	// says more. (read_tool_result pages through the same text.)
	s := server.NewMCPServer("weather", "1.0")
	s.AddTool(mcp.NewTool("now", mcp.WithReadOnlyHintAnnotation(true)), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultStructured(map[string]any{"temperature": 21.5, "sky": "clear"}, "{\n  \"sky\": \"clear\",\n  \"temperature\": 21.5\n}"), nil
	})
	s.AddTool(mcp.NewTool("week", mcp.WithReadOnlyHintAnnotation(true)), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultStructured(map[string]any{"highs": []int{21, 23}}, "Warm all week."), nil
	})
	srv := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(srv.Close)
	conn, err := mcpclient.Dial(context.Background(), mcpclient.Config{Name: "weather", URL: srv.URL + "/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	catalog, err := tools.NewCatalog([]tools.Source{{Server: tools.Shared(conn), Policy: tools.Policy{Timeout: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	model := llmtest.NewServer(llmtest.Sequence(
		calls(call("n", "weather__now", `{}`), call("w", "weather__week", `{}`)),
		llmtest.Reply{Text: "done"},
	))
	t.Cleanup(model.Close)
	o := orchestrator.New(llm.New(llm.Config{BaseURL: model.URL, APIKey: "k", MaxRetries: -1}, nil), tools.NewRegistry(catalog), store.NewMemory(), nil)
	if _, err := o.Run(context.Background(), orchestrator.Request{UserID: "u", Content: "weather?"}, nil); err != nil {
		t.Fatal(err)
	}
	reqs := model.Requests()
	week := "Warm all week.\n\n[structured content]\n{\"highs\":[21,23]}"
	want := []string{"n={\n  \"sky\": \"clear\",\n  \"temperature\": 21.5\n}", "w=" + week}
	if diff := cmp.Diff(want, toolMessages(reqs[1])); diff != "" {
		t.Errorf("tool results the model read (-want +got):\n%s", diff)
	}
}
