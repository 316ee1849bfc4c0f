//go:build unix

package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard"
)

// newEchoServer returns an in-process mcp-go server with one tool, echo,
// that answers with its arguments as structured content.
func newEchoServer() *server.MCPServer {
	s := server.NewMCPServer("echo-server", "1.0", server.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echoes."), mcp.WithString("x")), echoTool)
	return s
}

func echoTool(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	return mcp.NewToolResultStructured(req.GetArguments(), "echo"), nil
}

// headerRecorder records the headers of every request it passes on.
type headerRecorder struct {
	next http.Handler
	mu   sync.Mutex
	seen []http.Header
	reqs []string
}

func (h *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Clone())
	h.reqs = append(h.reqs, r.Method)
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

// check fails t unless every request carried the configured headers and no
// header outside the transport's own.
func (h *headerRecorder) check(t *testing.T, configured map[string]string) {
	t.Helper()
	allowed := map[string]bool{
		"Accept": true, "Accept-Encoding": true, "Cache-Control": true, "Connection": true,
		"Content-Length": true, "Content-Type": true, "User-Agent": true, "Last-Event-Id": true,
		"Mcp-Session-Id": true, "Mcp-Protocol-Version": true,
		// The modern era's (mcp-go's server speaks it: protocol auto
		// settles there over HTTP).
		"Mcp-Method": true, "Mcp-Name": true,
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		t.Fatal("the server saw no request")
	}
	for i, hdr := range h.seen {
		for k, v := range configured {
			if got := hdr.Get(k); got != v {
				t.Errorf("request %d (%s): got %s %q, want %q", i, h.reqs[i], k, got, v)
			}
		}
		for k := range hdr {
			if _, ok := configured[k]; !ok && !allowed[k] {
				t.Errorf("request %d (%s): unexpected header %s", i, h.reqs[i], k)
			}
		}
	}
}

func TestRemote(t *testing.T) {
	secret := map[string]string{"X-Api-Key": "hdr-s3cret", "Authorization": "Bearer tok-s3cret"}
	tests := []struct {
		typ     string
		handler func(*server.MCPServer) http.Handler
		path    string
	}{
		{"sse", func(s *server.MCPServer) http.Handler { return server.NewSSEServer(s) }, "/sse"},
		{"http", func(s *server.MCPServer) http.Handler { return server.NewStreamableHTTPServer(s) }, "/mcp"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			mcpServer := newEchoServer()
			rec := &headerRecorder{next: tt.handler(mcpServer)}
			ts := httptest.NewServer(rec)
			defer ts.Close()

			var logs syncBuffer
			var conn atomic.Pointer[Conn]
			changed := make(chan []string, 1)
			opts := &Options{
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				OnToolsChanged: func() {
					// A request made here would stall if this ran on the
					// connection's read loop.
					tools, err := conn.Load().ListTools(t.Context())
					if err != nil && conn.Load().Err() == nil {
						t.Errorf("ListTools in OnToolsChanged: %v", err)
					}
					if err != nil {
						// A modern connection may be told twice of one
						// change (see Conn.listen): the second may race
						// with Close.
						return
					}
					var names []string
					for _, tool := range tools {
						names = append(names, tool.Name)
					}
					slices.Sort(names)
					select {
					case changed <- names:
					default:
					}
				},
			}
			start := time.Now()
			c, err := Dial(t.Context(), Config{Name: "echo", Type: tt.typ, URL: ts.URL + tt.path, Headers: secret}, opts)
			if err != nil {
				t.Fatal(err)
			}
			conn.Store(c)
			t.Logf("connect time over %s: %s", tt.typ, time.Since(start))
			if c.Stderr() != nil {
				t.Errorf("Stderr of a remote server: got %q, want nil", c.Stderr())
			}

			res, err := c.CallTool(t.Context(), "echo", json.RawMessage(`{"x":"hi"}`))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&Result{Text: "echo", Structured: json.RawMessage(`{"x":"hi"}`)}, res); diff != "" {
				t.Errorf("echo (-want +got):\n%s", diff)
			}
			if _, err := c.CallTool(t.Context(), "nope", nil); !errors.Is(err, switchboard.ErrInvalid) {
				t.Errorf("unknown tool: got %v, want ErrInvalid", err)
			}

			mcpServer.AddTool(mcp.NewTool("added"), echoTool)
			select {
			case names := <-changed:
				if want := []string{"added", "echo"}; !slices.Equal(names, want) {
					t.Errorf("tools after list_changed: got %v, want %v", names, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("OnToolsChanged was not called")
			}

			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if _, err := c.CallTool(t.Context(), "echo", nil); !errors.Is(err, switchboard.ErrUnavailable) {
				t.Errorf("call after Close: got %v, want ErrUnavailable", err)
			}
			rec.check(t, secret)
			if strings.Contains(logs.String(), "s3cret") {
				t.Errorf("logs hold a header value:\n%s", logs.String())
			}
		})
	}
}

// TestSSELost checks that a dropped SSE stream fails calls at once. Which
// notices first is a race: the stream's reader (connection lost) or the
// health check the dropped stream triggers, whose ping the server refuses
// for the session it closed (health check failed); either ends the
// connection as unavailable.
func TestSSELost(t *testing.T) {
	sse := server.NewSSEServer(newEchoServer())
	ts := httptest.NewServer(sse)
	t.Cleanup(ts.Close) // after the Conn's Close, registered later
	c := dial(t, Config{Name: "echo", Type: "sse", URL: ts.URL + "/sse"}, nil)

	sse.CloseSessions()
	waitFor(t, 5*time.Second, "the connection to be lost", func() bool { return c.ctx.Err() != nil })
	start := time.Now()
	_, err := c.CallTool(t.Context(), "echo", nil)
	if !errors.Is(err, switchboard.ErrUnavailable) ||
		!strings.Contains(err.Error(), "connection lost") && !strings.Contains(err.Error(), "health check failed") {
		t.Errorf("got %v, want ErrUnavailable: connection lost (or health check failed)", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the failing call took %s", took)
	}
}

// TestHTTPServerGone checks calls to a streamable HTTP server that went away.
func TestHTTPServerGone(t *testing.T) {
	ts := httptest.NewServer(server.NewStreamableHTTPServer(newEchoServer()))
	c := dial(t, Config{Name: "echo", URL: ts.URL + "/mcp"}, nil)
	ts.Close() // no stream of ours is open: streamable HTTP without OnToolsChanged
	_, err := c.CallTool(t.Context(), "echo", nil)
	if !errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
}

// TestRemoteTimeout checks that a remote tool that does not answer in time
// is a timeout, whichever timer fires first: the transport's (SSE sets one
// to our deadline) or our context's.
func TestRemoteTimeout(t *testing.T) {
	for _, typ := range []string{"sse", "http"} {
		t.Run(typ, func(t *testing.T) {
			release := make(chan struct{})
			s := newEchoServer()
			s.AddTool(mcp.NewTool("slow"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				select {
				case <-ctx.Done():
				case <-release:
				}
				return mcp.NewToolResultText("late"), nil
			})
			var h http.Handler = server.NewStreamableHTTPServer(s)
			path := "/mcp"
			if typ == "sse" {
				h, path = server.NewSSEServer(s), "/sse"
			}
			ts := httptest.NewServer(h)
			// Cleanups run last first: the Conn closes (ending its streams),
			// then the slow handler is released, then the server closes.
			t.Cleanup(ts.Close)
			t.Cleanup(func() { close(release) })
			c := dial(t, Config{Name: "slow", Type: typ, URL: ts.URL + path, Timeout: 200 * time.Millisecond}, nil)
			start := time.Now()
			_, err := c.CallTool(t.Context(), "slow", nil)
			if !errors.Is(err, switchboard.ErrUpstreamTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v, want ErrUpstreamTimeout and DeadlineExceeded", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("CallTool took %s with a 200ms Timeout", took)
			}
		})
	}
}
