//go:build unix

package mcpclient

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard"
)

// TestRemoteServerGoneIsNoticed: a streamable HTTP server that goes away
// while no call is in flight moves its Supervisor out of ready (it stayed
// ready, and /readyz said 200, until a call failed), and back when it
// returns on the same address.
func TestRemoteServerGoneIsNoticed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) *httptest.Server {
		ts := httptest.NewUnstartedServer(server.NewStreamableHTTPServer(newEchoServer()))
		ts.Listener.Close()
		ts.Listener = ln
		ts.Start()
		return ts
	}
	ts := serve(ln)
	s := Supervise(Config{Name: "echo", URL: "http://" + addr + "/mcp", HealthInterval: 100 * time.Millisecond},
		&Options{RestartBackoff: 50 * time.Millisecond, MaxRestartBackoff: 100 * time.Millisecond})
	t.Cleanup(func() { s.Close() })
	if err := s.Started(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	waitFor(t, 10*time.Second, "the server to be seen gone", func() bool {
		st := s.Status()
		return st.State == switchboard.ServerDegraded || st.State == switchboard.ServerCrashLooping
	})
	if st := s.Status(); !strings.Contains(st.LastError, "refused") && !strings.Contains(st.LastError, "health check") {
		t.Errorf("last error %q does not say why", st.LastError)
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	ts = serve(ln)
	t.Cleanup(ts.Close)
	waitFor(t, 10*time.Second, "the server to be ready again", func() bool { return s.Status().State == switchboard.ServerReady })
}

// TestPingErrorIsAnAnswer: a server that answers ping with a JSON-RPC error
// (method not found) is there: it stays ready.
func TestPingErrorIsAnAnswer(t *testing.T) {
	inner := server.NewStreamableHTTPServer(newEchoServer())
	pings := make(chan struct{}, 100)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			var msg struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
			}
			json.Unmarshal(body, &msg)
			if msg.Method == "ping" {
				pings <- struct{}{}
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"error":{"code":-32601,"message":"no ping here"}}`))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	// Ping is the legacy era's (the modern one has none).
	c := dial(t, Config{Name: "echo", URL: ts.URL + "/mcp", HealthInterval: 50 * time.Millisecond, Protocol: ProtocolLegacy}, nil)
	for range 3 {
		select {
		case <-pings:
		case <-time.After(10 * time.Second):
			t.Fatal("no ping")
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("the connection ended: %v", err)
	}
}
