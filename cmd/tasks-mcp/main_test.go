package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// TestRunStdio speaks raw JSON-RPC to run over pipes and checks that it
// answers on stdout only and returns nil when stdin ends.
func TestRunStdio(t *testing.T) {
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), nil, stdinR, stdoutW, &stderr)
		stdoutW.Close()
	}()

	lines := bufio.NewScanner(stdoutR)
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(stdinW, s+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() map[string]any {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("stdout ended: %v", lines.Err())
		}
		var m map[string]any
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatalf("stdout line %q is not JSON: %v", lines.Text(), err)
		}
		return m
	}

	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if got := recv(); got["id"] != float64(1) || got["result"] == nil {
		t.Fatalf("initialize: got %v, want a result for id 1", got)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add_task","arguments":{"user_id":"u","title":"t"}}}`)
	got := recv()
	want := map[string]any{"content": []any{map[string]any{"type": "text", "text": "Created task 1: t"}}}
	if diff := cmp.Diff(want, got["result"], ignoreCreatedAt, cmpIgnoreKey("structuredContent")); diff != "" {
		t.Errorf("add_task result (-want +got):\n%s", diff)
	}

	stdinW.Close() // EOF ends the server
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: got %v, want nil on stdin EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after stdin EOF")
	}
	if rest, _ := io.ReadAll(stdoutR); len(rest) > 0 {
		t.Errorf("got extra stdout %q", rest)
	}
	if !strings.Contains(stderr.String(), "serving MCP on stdio") {
		t.Errorf("stderr %q: want the start-up log line", stderr.String())
	}
}

// TestRunHTTP starts run with --http on a free port, calls a tool over
// streamable HTTP and checks that cancelling ctx stops it cleanly.
func TestRunHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--http", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, stderr) }()

	url := waitForURL(t, stderr, done)
	c, err := client.NewStreamableHttpClient(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var init mcp.InitializeRequest
	init.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "t", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	var req mcp.CallToolRequest
	req.Params.Name = "add_task"
	req.Params.Arguments = map[string]any{"user_id": "u", "title": "over http"}
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Content[0].(mcp.TextContent).Text; got != "Created task 1: over http" || res.IsError {
		t.Errorf("add_task: got %q isError %v, want a created task", got, res.IsError)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close client: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: got %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunBadFlags(t *testing.T) {
	var stderr lockedBuffer
	if err := run(t.Context(), []string{"--nope"}, strings.NewReader(""), io.Discard, &stderr); err == nil {
		t.Error("run --nope: got nil error, want one")
	}
	if err := run(t.Context(), []string{"extra"}, strings.NewReader(""), io.Discard, &stderr); err == nil {
		t.Error("run extra: got nil error, want one")
	}
}

var urlRE = regexp.MustCompile(`url=(http://\S+/mcp)`)

// waitForURL waits until run logs the URL it serves.
func waitForURL(t *testing.T, stderr *lockedBuffer, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := urlRE.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("run returned %v before listening; stderr:\n%s", err, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("no URL logged; stderr:\n%s", stderr.String())
	return ""
}

// lockedBuffer is a strings.Builder safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func cmpIgnoreKey(key string) cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool {
		mi, ok := p.Last().(cmp.MapIndex)
		return ok && mi.Key().String() == key
	}, cmp.Ignore())
}
