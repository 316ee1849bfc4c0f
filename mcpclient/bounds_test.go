//go:build unix

package mcpclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard"
)

// TestStdioTooLarge: an answer over max_result_bytes fails its call at once
// with ErrTooLarge, and the connection goes on; a line over the bound that
// answers nothing we can tell ends the connection instead of leaving the
// call waiting.
func TestStdioTooLarge(t *testing.T) {
	cfg := helperConfig("raw")
	cfg.MaxMessageBytes = 1 << 20
	c := dial(t, cfg, nil)

	start := time.Now()
	_, err := callJSON(t, c, "huge", map[string]int{"bytes": 20 << 20})
	if !errors.Is(err, switchboard.ErrTooLarge) {
		t.Fatalf("huge call: got %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "max_result_bytes (1048576 bytes)") {
		t.Errorf("error %q does not name the bound", err)
	}
	t.Logf("a 20 MiB answer failed in %s", time.Since(start).Round(time.Millisecond))
	if res, err := callJSON(t, c, "huge", map[string]int{"bytes": 1000}); err != nil || len(res.Text) != 1000 {
		t.Fatalf("a small answer after it: %v, %d bytes", err, len(res.Text))
	}
	if res, err := callJSON(t, c, "echo", map[string]string{"x": "a"}); err != nil || res.Text != "echo" {
		t.Fatalf("echo after it: %v %+v", err, res)
	}

	_, err = callJSON(t, c, "garbage", map[string]int{"bytes": 5 << 20})
	if !errors.Is(err, switchboard.ErrUnavailable) {
		t.Fatalf("garbage call: got %v, want ErrUnavailable", err)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end after a line over the bound that answers nothing")
	}
}

// TestStdioTooDeep: an answer nested deeper than Go's JSON decoder follows
// fails at once as malformed (it used to be dropped, the call timing out);
// a tool list with one schema that deep keeps its other tools.
func TestStdioTooDeep(t *testing.T) {
	c := dial(t, helperConfig("deeplist"), nil)
	var names []string
	for _, tool := range c.Tools() {
		names = append(names, tool.Name)
	}
	if len(names) < 3 || names[0] != "deep" {
		t.Fatalf("tools %v: want deep and the helper's others", names)
	}
	if s := string(c.Tools()[0].InputSchema); !strings.Contains(s, "nested deeper than 512 levels was removed") {
		t.Errorf("the deep schema was not cut: %.200s", s)
	}

	start := time.Now()
	_, err := callJSON(t, c, "deep", map[string]int{"levels": 11000})
	if !errors.Is(err, ErrMalformed) || !errors.Is(err, switchboard.ErrInvalid) {
		t.Fatalf("deep call: got %v, want ErrMalformed", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the deep call took %s: it should fail at once", d)
	}
	if res, err := callJSON(t, c, "deep", map[string]int{"levels": 20}); err != nil || res.IsError {
		t.Fatalf("a call nested 20 deep: %v %+v", err, res)
	}
}

// TestHTTPTooLarge: over streamable HTTP (a JSON body and an event stream)
// and legacy SSE, an answer over the bound fails its call with
// ErrTooLarge, and the next call works.
func TestHTTPTooLarge(t *testing.T) {
	huge := func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(strings.Repeat("h", req.GetInt("bytes", 0))), nil
	}
	newServer := func() *server.MCPServer {
		s := server.NewMCPServer("huge-server", "1.0", server.WithToolCapabilities(true))
		s.AddTool(mcp.NewTool("huge", mcp.WithNumber("bytes")), huge)
		return s
	}
	for _, tt := range []struct {
		name string
		cfg  func(t *testing.T) Config
	}{
		{"streamable json", func(t *testing.T) Config {
			srv := httptest.NewServer(server.NewStreamableHTTPServer(newServer()))
			t.Cleanup(srv.Close)
			return Config{Name: "huge", URL: srv.URL}
		}},
		{"streamable sse", func(t *testing.T) Config {
			srv := httptest.NewServer(sseAnswers(server.NewStreamableHTTPServer(newServer())))
			t.Cleanup(srv.Close)
			return Config{Name: "huge", URL: srv.URL}
		}},
		{"legacy sse", func(t *testing.T) Config {
			var sse *server.SSEServer
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sse.ServeHTTP(w, r) }))
			t.Cleanup(srv.Close)
			sse = server.NewSSEServer(newServer(), server.WithBaseURL(srv.URL))
			return Config{Name: "huge", URL: srv.URL + "/sse", Type: "sse"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg(t)
			cfg.MaxMessageBytes = 1 << 20
			c := dial(t, cfg, nil)
			_, err := callJSON(t, c, "huge", map[string]int{"bytes": 5 << 20})
			if !errors.Is(err, switchboard.ErrTooLarge) {
				t.Fatalf("huge call: got %v, want ErrTooLarge", err)
			}
			res, err := callJSON(t, c, "huge", map[string]int{"bytes": 100})
			if err != nil || len(res.Text) != 100 {
				t.Fatalf("a small call after it: %v %+v", err, res)
			}
		})
	}
}

// sseAnswers makes a streamable HTTP server answer POSTs as event streams,
// as servers that stream progress do.
func sseAnswers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Del("Content-Length")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "event: message\ndata: %s\n\n", strings.TrimSpace(rec.Body.String()))
	})
}
