//go:build unix

package mcpclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// postRecorder is a reverse proxy in front of a legacy SSE server that
// records the messages the client posts (the stream's endpoint is
// relative, so the client posts through the proxy too).
type postRecorder struct {
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	posts []sentMessage
}

func (p *postRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		var m sentMessage
		json.Unmarshal(body, &m)
		p.mu.Lock()
		p.posts = append(p.posts, m)
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	p.proxy.ServeHTTP(w, r)
}

func (p *postRecorder) sent() []sentMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sentMessage(nil), p.posts...)
}

// TestEverythingSSELongCall: over legacy SSE, progress extends a call past
// its timeout and past init_timeout as it does over streamable HTTP (a 12 s
// operation in 6 steps with a 5 s timeout), and a call that times out tells
// the server with notifications/cancelled.
func TestEverythingSSELongCall(t *testing.T) {
	srv := startEverythingHTTP(t, "sse")
	target, _ := url.Parse(srv.URL())
	rec := &postRecorder{proxy: httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})}
	rec.proxy.FlushInterval = -1
	proxy := httptest.NewServer(rec)
	t.Cleanup(func() {
		proxy.CloseClientConnections()
		proxy.Close()
	})
	cfg := Config{Name: "everything", Type: "sse", URL: proxy.URL + "/sse", Timeout: 5 * time.Second, InitTimeout: 3 * time.Second}
	s := supervise(t, cfg, nil)
	started(t, s)

	start := time.Now()
	res, err := s.CallTool(t.Context(), "trigger-long-running-operation", json.RawMessage(`{"duration":12,"steps":6}`))
	if err != nil || !strings.Contains(res.Text, "completed") {
		t.Fatalf("a 12 s call in 6 steps with a 5 s timeout: got %+v, %v after %s; want it to finish", res, err, time.Since(start))
	}
	t.Logf("a 12 s call with a 5 s timeout finished in %s on its progress reports", time.Since(start).Round(time.Millisecond))

	s.Close()
	cfg.Timeout = 500 * time.Millisecond
	s = supervise(t, cfg, nil)
	started(t, s)
	_, err = s.CallTool(t.Context(), "trigger-long-running-operation", json.RawMessage(`{"duration":4,"steps":2}`))
	if !errors.Is(err, switchboard.ErrUpstreamTimeout) {
		t.Fatalf("a call without progress within its timeout: got %v, want a timeout", err)
	}
	waitFor(t, 5*time.Second, "notifications/cancelled to reach the server", func() bool {
		msgs := rec.sent()
		id := sentCall(msgs, "trigger-long-running-operation")
		for _, m := range msgs {
			if m.Method == "notifications/cancelled" && string(m.Params.RequestID) == id {
				return true
			}
		}
		return false
	})
}
