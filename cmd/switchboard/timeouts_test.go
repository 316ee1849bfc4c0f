package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
)

func TestHTTPConfig(t *testing.T) {
	getenv := func(string) (string, bool) { return "", false }
	for _, tt := range []struct {
		doc  string
		want httpTimeouts
	}{
		{"{}", httpTimeouts{readHeader: 10 * time.Second, read: 30 * time.Second, write: 30 * time.Second, idle: 60 * time.Second}},
		{"http: {read_header_timeout: 2s, read_timeout: 1m, write_timeout: 90s, idle_timeout: 5}",
			httpTimeouts{readHeader: 2 * time.Second, read: time.Minute, write: 90 * time.Second, idle: 5 * time.Second}},
	} {
		cfg, _, err := ParseConfig([]byte(tt.doc), getenv)
		if err != nil {
			t.Fatalf("ParseConfig(%s): %v", tt.doc, err)
		}
		if diff := cmp.Diff(tt.want, cfg.HTTP.timeouts(), cmp.AllowUnexported(httpTimeouts{})); diff != "" {
			t.Errorf("ParseConfig(%s): timeouts (-want +got):\n%s", tt.doc, diff)
		}
	}
	for doc, want := range map[string]string{
		"http: {read_header_timeout: 1m}":                   "http.read_header_timeout (1m0s) must not be longer than http.read_timeout (30s)",
		"http: {write_timeout: -1s}":                        "cannot be negative",
		"http: {idle: 5s}":                                  "field idle not found",
		"http: {read_timeout: 1s, read_header_timeout: 2s}": "must not be longer than http.read_timeout (1s)",
	} {
		if _, _, err := ParseConfig([]byte(doc), getenv); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%s): got %v, want an error with %q", doc, err, want)
		}
	}
}

// TestHTTPTimeouts runs the service with short timeouts over a real
// listener: a request that stalls in its headers or its body, with or
// without a token, and an idle keep-alive connection are closed; a JSON
// reply and a stream whose turn outlasts write_timeout and read_timeout
// arrive whole. The bounds are generous: what matters is that the
// connection ends, not when exactly.
func TestHTTPTimeouts(t *testing.T) {
	// The turn waits 2s for the model: longer than every timeout.
	model := llmtest.NewServer(func(int, *openai.ChatCompletionRequest) llmtest.Reply {
		return llmtest.Reply{Delay: 2 * time.Second, Text: "slow but whole"}
	})
	defer model.Close()
	s := startServe(t, fmt.Sprintf(`
listen: 127.0.0.1:0
http: {read_header_timeout: 500ms, read_timeout: 1s, write_timeout: 1s, idle_timeout: 1s}
llm: {base_url: %q, model: scripted}
mcpServers: {}
`, model.URL), nil)
	addr := strings.TrimPrefix(s.base, "http://")
	const bound = 20 * time.Second // far past every timeout: reaching it means none applied

	// closed sends raw on a new connection, then reads until the server
	// closes it, and returns what it read.
	closed := func(t *testing.T, raw string) string {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, raw); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(bound))
		got, err := io.ReadAll(conn)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the connection is still open %s later; read so far: %q", bound, got)
		}
		t.Logf("closed by the server after %s", time.Since(start).Round(time.Millisecond))
		return string(got)
	}
	body := "Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n{"
	t.Run("headers that stall", func(t *testing.T) {
		closed(t, "POST /api/dev/chat HTTP/1.1\r\nHost: x\r\nContent-Ty")
	})
	t.Run("a body that stalls, no token", func(t *testing.T) {
		if got := closed(t, "POST /api/dev/chat HTTP/1.1\r\nHost: x\r\n"+body); !strings.HasPrefix(got, "HTTP/1.1 401 ") {
			t.Errorf("reply: got %q, want a 401", got)
		}
	})
	t.Run("a body that stalls, with a token", func(t *testing.T) {
		if got := closed(t, "POST /api/dev/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+s.token+"\r\n"+body); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
			t.Errorf("reply: got %q, want a 400", got)
		}
	})
	t.Run("300 bodies that stall", func(t *testing.T) {
		// The reproduction: 300 connections declare a 200 kB body and send
		// one byte. Each is closed, and the service's goroutines go back
		// to what they were.
		before := runtime.NumGoroutine()
		conns := make([]net.Conn, 300)
		for i := range conns {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, "POST /api/dev/chat HTTP/1.1\r\nHost: x\r\n"+body); err != nil {
				t.Fatal(err)
			}
			conns[i] = conn
		}
		during := runtime.NumGoroutine()
		var wg sync.WaitGroup
		open := make(chan int, len(conns))
		for i, conn := range conns {
			wg.Go(func() {
				_ = conn.SetReadDeadline(time.Now().Add(bound))
				if _, err := io.Copy(io.Discard, conn); errors.Is(err, os.ErrDeadlineExceeded) {
					open <- i
				}
			})
		}
		wg.Wait()
		if len(open) > 0 {
			t.Fatalf("%d of %d connections still open %s later", len(open), len(conns), bound)
		}
		deadline := time.Now().Add(bound)
		for runtime.NumGoroutine() > before+20 {
			if time.Now().After(deadline) {
				t.Fatalf("goroutines: %d before the connections, %d %s after they were closed", before, runtime.NumGoroutine(), bound)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("goroutines: %d before, %d while the connections stalled, %d once they were closed", before, during, runtime.NumGoroutine())
	})
	t.Run("an idle keep-alive connection", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for i := range 2 { // the timeout starts again after each request
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatalf("request %d: %v", i+1, err)
			}
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatalf("request %d: %v", i+1, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Close {
				t.Fatalf("request %d: %d (close %v), want 200 on a kept-alive connection", i+1, resp.StatusCode, resp.Close)
			}
		}
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(bound))
		if n, err := r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("idle connection: got %d bytes, %v; want it closed by the server", n, err)
		}
		t.Logf("idle connection closed after %s", time.Since(start).Round(time.Millisecond))
	})
	t.Run("a JSON reply after write_timeout", func(t *testing.T) {
		start := time.Now()
		code, body, err := chat(s.base, s.token, "take your time")
		if err != nil || code != 200 || !strings.Contains(body, "slow but whole") {
			t.Fatalf("chat: %d %s %v, want 200 with the answer", code, body, err)
		}
		if took := time.Since(start); took < 2*time.Second {
			t.Fatalf("the turn took %s, not longer than write_timeout: the test shows nothing", took)
		}
	})
	t.Run("a stream longer than write_timeout", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", s.base+"/api/dev/chat/stream", strings.NewReader(`{"message":{"content":"stream it"}}`))
		req.Header.Set("Authorization", "Bearer "+s.token)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(raw), `"delta":"whole"`) ||
			!strings.Contains(string(raw), `"type":"finish"`) || !strings.HasSuffix(string(raw), "data: [DONE]\n\n") {
			t.Fatalf("stream: %d, %v\n%s\nwant the whole stream, [DONE] last", resp.StatusCode, err, raw)
		}
		if took := time.Since(start); took < 2*time.Second {
			t.Fatalf("the stream took %s, not longer than write_timeout: the test shows nothing", took)
		}
	})
}
