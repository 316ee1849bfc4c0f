package tools_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// sessionRecorder counts the initialize requests a streamable HTTP server
// gets and records the session id of each tools/call.
type sessionRecorder struct {
	next        http.Handler
	mu          sync.Mutex
	initialized int
	calls       []string
}

func (r *sessionRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodPost {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct{ Method string }
		json.Unmarshal(body, &msg)
		r.mu.Lock()
		switch msg.Method {
		case "initialize":
			r.initialized++
		case "tools/call":
			r.calls = append(r.calls, req.Header.Get("Mcp-Session-Id"))
		}
		r.mu.Unlock()
	}
	r.next.ServeHTTP(w, req)
}

// TestSessionResumedByAnotherInstance: a user's streamable HTTP session
// that one instance started is taken up by another sharing its store,
// without a second initialize; after the server forgot it, a new one is
// started and kept.
func TestSessionResumedByAnotherInstance(t *testing.T) {
	srv := mcpserver.NewMCPServer("stateful", "1.0", mcpserver.WithToolCapabilities(true))
	srv.AddTool(mcp.NewTool("ping"), textTool("pong"))
	rec := &sessionRecorder{next: mcpserver.NewStreamableHTTPServer(srv)}
	ts := httptest.NewServer(rec)
	t.Cleanup(ts.Close) // after the fleets' cleanups, which close their streams
	st := store.NewMemory()
	// Sessions are the legacy era's (the modern one has none).
	spec := tools.ServerSpec{Scope: tools.ScopeUser, Config: mcpclient.Config{Name: "stateful", URL: ts.URL + "/mcp", Protocol: mcpclient.ProtocolLegacy}}
	instance := func() *tools.Fleet {
		f := newFleet(t, &tools.FleetOptions{StartupWait: 10 * time.Second, Sessions: st})
		if err := f.Start(t.Context(), []tools.ServerSpec{spec}); err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b := instance(), instance()
	listers := rec.initialized // each instance's catalog session
	mustRun(t, a.Current(), "alice", "", "stateful__ping", `{}`)
	kept, err := st.GetMCPSession(context.Background(), "stateful", "alice")
	if err != nil || kept.SessionID == "" {
		t.Fatalf("the session was not kept: %+v %v", kept, err)
	}
	mustRun(t, b.Current(), "alice", "", "stateful__ping", `{}`)
	rec.mu.Lock()
	inits, calls := rec.initialized-listers, append([]string(nil), rec.calls...)
	rec.mu.Unlock()
	if inits != 1 || len(calls) != 2 || calls[0] != kept.SessionID || calls[1] != kept.SessionID {
		t.Errorf("initializes %d, calls' sessions %v; want one initialize and both calls on %s", inits, calls, kept.SessionID)
	}

	// Another session id the server does not know: a new session starts.
	if err := st.PutMCPSession(context.Background(), switchboard.MCPSession{Server: "stateful", UserID: "bob", SessionID: "forgotten", ProtocolVersion: "2025-11-25"}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, b.Current(), "bob", "", "stateful__ping", `{}`)
	if got, _ := st.GetMCPSession(context.Background(), "stateful", "bob"); got.SessionID == "forgotten" || got.SessionID == "" {
		t.Errorf("bob's kept session after the server forgot it: %q", got.SessionID)
	}
}
