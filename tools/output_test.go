//go:build unix

package tools_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

func TestOutputSchema(t *testing.T) {
	// A server whose tools declare output schemas: their structured results
	// are checked against them; a result that breaks its schema, or lacks
	// the structured content it promised, is an error for the model. A
	// schema that does not compile leaves its tool offered, unchecked.
	const weather = `{"type":"object","properties":{"temperature":{"type":"number"}},"required":["temperature"]}`
	s := mcpserver.NewMCPServer("weather", "1.0")
	structured := func(v any) mcpserver.ToolHandlerFunc {
		return func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultStructuredOnly(v), nil
		}
	}
	s.AddTool(mcp.NewTool("good", mcp.WithRawOutputSchema(json.RawMessage(weather))), structured(map[string]any{"temperature": 21.5}))
	s.AddTool(mcp.NewTool("wrong", mcp.WithRawOutputSchema(json.RawMessage(weather))), structured(map[string]any{"temperature": "hot"}))
	s.AddTool(mcp.NewTool("missing", mcp.WithRawOutputSchema(json.RawMessage(weather))), textTool("21.5 degrees"))
	s.AddTool(mcp.NewTool("failing", mcp.WithRawOutputSchema(json.RawMessage(weather))),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultError("no sensor"), nil
		})
	s.AddTool(mcp.NewTool("loose", mcp.WithRawOutputSchema(json.RawMessage(`{"type":12}`))), structured(map[string]any{"anything": true}))
	s.AddTool(mcp.NewTool("sneaky", mcp.WithRawOutputSchema(json.RawMessage(`{"$ref":"file:///etc/passwd"}`))), structured(map[string]any{"x": 1}))
	s.AddTool(mcp.NewTool("plain"), textTool("no schema, no check"))

	conn, err := mcpclient.Dial(t.Context(), mcpclient.Config{Name: "weather", URL: mcpHTTP(t, s)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := tools.NewCatalog([]tools.Source{{Server: tools.Shared(conn)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Entries()) != 7 || len(c.Quarantined()) != 0 {
		t.Fatalf("exposed %v, quarantined %+v; want every tool offered", exposed(c), c.Quarantined())
	}
	unvalidated := map[string]string{}
	for _, q := range c.Unvalidated() {
		unvalidated[q.Tool] = q.Reason
	}
	if len(unvalidated) != 2 || !strings.Contains(unvalidated["loose"], "not a valid JSON Schema") ||
		!strings.Contains(unvalidated["sneaky"], "only references within the schema are followed") {
		t.Errorf("unvalidated: %+v; want loose and sneaky, saying why", unvalidated)
	}

	tests := []struct {
		tool, status, class, resultHas string
	}{
		{"good", string(switchboard.CallSucceeded), "", `{"temperature":21.5}`},
		{"wrong", string(switchboard.CallFailed), switchboard.ErrorClassInvalidResult, "at '/temperature': got string, want number"},
		{"missing", string(switchboard.CallFailed), switchboard.ErrorClassInvalidResult, "has no structured content"},
		{"failing", string(switchboard.CallFailed), switchboard.ErrorClassTool, "no sensor"},
		{"loose", string(switchboard.CallSucceeded), "", `"anything":true`},
		{"sneaky", string(switchboard.CallSucceeded), "", `"x":1`},
		{"plain", string(switchboard.CallSucceeded), "", "no schema, no check"},
	}
	for _, tt := range tests {
		t.Run(tt.tool, func(t *testing.T) {
			call := run(t.Context(), c, "weather__"+tt.tool, `{}`)
			if string(call.Status) != tt.status || call.ErrorClass != tt.class || !strings.Contains(call.Result, tt.resultHas) {
				t.Errorf("got %s %q, result %q; want %s %q, result with %q", call.Status, call.ErrorClass, call.Result, tt.status, tt.class, tt.resultHas)
			}
			if tt.class == switchboard.ErrorClassInvalidResult && (!strings.HasPrefix(call.Result, "error: ") || call.Error == "") {
				t.Errorf("an invalid result: got result %q, error %q; want the error for the model", call.Result, call.Error)
			}
		})
	}
}

func TestResultText(t *testing.T) {
	ok := switchboard.CallSucceeded
	tests := []struct {
		name, text, structured string
		status                 switchboard.ToolCallStatus
		want                   string
	}{
		{"text only", "hello", "", ok, "hello"},
		{"structured only", "", `{"a":1}`, ok, `{"a":1}`},
		{"text is its JSON", `{"a":1,"b":[true,null]}`, `{"b":[true,null],"a":1}`, ok, `{"a":1,"b":[true,null]}`},
		{"text is its JSON, pretty-printed", "{\n  \"a\": 1.50\n}", `{"a":1.50}`, ok, "{\n  \"a\": 1.50\n}"},
		{"wraps the text", "line 1\nline 2\n", `{"content":"line 1\nline 2\n"}`, ok, "line 1\nline 2\n"},
		{"wraps the content parts", "[image image/png, 3 bytes]", `{"content":[{"type":"image","data":"AAAA","mimeType":"image/png"}]}`, ok, "[image image/png, 3 bytes]"},
		{"says more than the text", "Created task 1", `{"id":1,"title":"milk"}`, ok,
			"Created task 1\n\n[structured content]\n{\"id\":1,\"title\":\"milk\"}"},
		{"another number", `{"a":1}`, `{"a":2}`, ok, "{\"a\":1}\n\n[structured content]\n{\"a\":2}"},
		{"text parts not in the text", "other", `{"content":[{"type":"text","text":"hidden"}]}`, ok,
			"other\n\n[structured content]\n{\"content\":[{\"type\":\"text\",\"text\":\"hidden\"}]}"},
		{"failed: the error", "error: bad", `{"a":1}`, switchboard.CallFailed, "error: bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := switchboard.ToolCall{Status: tt.status, Result: tt.text}
			if tt.structured != "" {
				c.StructuredResult = json.RawMessage(tt.structured)
			}
			if got := tools.ResultText(c); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServersThatRepeatTheirStructuredContent(t *testing.T) {
	// server-filesystem sends a file's text twice: as text, and as
	// structuredContent {"content": text}; server-everything's
	// get-structured-content sends its JSON as text. Both results match
	// their output schemas, and the model reads each once.
	root := t.TempDir()
	const file = "tide tables\nhigh water 06:12\n"
	if err := os.WriteFile(filepath.Join(root, "tides.txt"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := nodetest.Module(t, "@modelcontextprotocol/server-everything")
	f := newFleet(t, nil)
	err := f.Start(t.Context(), []tools.ServerSpec{
		{Config: mcpclient.Config{Name: "fs", Command: nodetest.Bin(t, "mcp-server-filesystem"), Args: []string{root}}, Scope: tools.ScopeShared},
		{Config: mcpclient.Config{Name: "everything", Command: nodetest.Node(t), Args: []string{filepath.Join(dir, "dist", "index.js"), "stdio"}}, Scope: tools.ScopeShared},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both servers' tools", func() bool {
		_, fs := f.Current().Lookup("fs__read_text_file")
		_, everything := f.Current().Lookup("everything__get-structured-content")
		return fs && everything
	})
	c := f.Current()
	if u := c.Unvalidated(); len(u) != 0 {
		t.Errorf("unvalidated: %+v; want every output schema compiled", u)
	}
	call := run(t.Context(), c, "fs__read_text_file", `{"path":`+quote(filepath.Join(root, "tides.txt"))+`}`)
	if call.Status != switchboard.CallSucceeded || string(call.StructuredResult) == "" {
		t.Fatalf("read_text_file: %+v", call)
	}
	if got := tools.ResultText(call); got != file {
		t.Errorf("the model reads %q, want the file once: %q", got, file)
	}
	call = run(t.Context(), c, "everything__get-structured-content", `{"location":"Chicago"}`)
	if call.Status != switchboard.CallSucceeded || !strings.Contains(string(call.StructuredResult), "temperature") {
		t.Fatalf("get-structured-content: %+v", call)
	}
	if got := tools.ResultText(call); got != call.Result || strings.Count(got, "temperature") != 1 {
		t.Errorf("the model reads %q, want the weather once", got)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestIconsReachTheCatalog(t *testing.T) {
	// The icons a server declares for itself and its tools reach the tools
	// route (Infos) and the admin's servers (Servers); those a page must
	// not show (SVG, other schemes) do not.
	png := mcp.Icon{Src: "data:image/png;base64,iVBORw0KGgo=", MIMEType: "image/png", Sizes: []string{"16x16"}}
	s := mcpserver.NewMCPServer("iconic", "1.0", mcpserver.WithIcons(
		mcp.Icon{Src: "https://example.com/logo.png", Theme: mcp.IconThemeLight},
		mcp.Icon{Src: "https://example.com/logo.svg"},
		mcp.Icon{Src: "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="}))
	s.AddTool(mcp.NewTool("drawn", mcp.WithToolIcons(png, mcp.Icon{Src: "javascript:alert(1)"})), textTool("ok"))
	s.AddTool(mcp.NewTool("bare"), textTool("ok"))
	url := mcpHTTP(t, s) // closed after the Fleet
	f := newFleet(t, nil)
	if err := f.Start(t.Context(), []tools.ServerSpec{{Config: mcpclient.Config{Name: "iconic", URL: url}, Scope: tools.ScopeShared}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the tools", func() bool { return len(f.Current().Entries()) == 2 })
	want := []switchboard.Icon{{Src: png.Src, MIMEType: "image/png", Sizes: []string{"16x16"}}}
	for _, info := range f.Tools() {
		var w []switchboard.Icon
		if info.Tool == "drawn" {
			w = want
		}
		if diff := cmp.Diff(w, info.Icons); diff != "" {
			t.Errorf("%s's icons (-want +got):\n%s", info.Name, diff)
		}
	}
	st := status(t, f, "iconic")
	if diff := cmp.Diff([]switchboard.Icon{{Src: "https://example.com/logo.png", Theme: "light"}}, st.Icons); diff != "" {
		t.Errorf("the server's icons (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string][]switchboard.Icon{"iconic__drawn": want}, st.ToolIcons); diff != "" {
		t.Errorf("its tools' icons (-want +got):\n%s", diff)
	}
}
