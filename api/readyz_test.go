package api_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// servers is a fixed view of MCP servers, for /readyz.
type servers []switchboard.ServerStatus

func (s servers) Servers() []switchboard.ServerStatus { return s }
func (s servers) Reload(context.Context) error        { return nil }

// pinger is a store that is up or down.
type pinger struct{ err error }

func (p pinger) Ping(context.Context) error { return p.err }

func TestReadyz(t *testing.T) {
	authn, _ := auth.New(context.Background(), auth.Config{Secret: secret})
	tests := []struct {
		name    string
		store   error
		servers servers
		status  int
		checks  map[string]string
	}{
		{"all well", nil, servers{{Name: "tasks", Required: true, State: switchboard.ServerReady}, {Name: "extra", State: switchboard.ServerCrashLooping}},
			200, map[string]string{"store": "ok", "mcp:tasks": "ok"}},
		{"store down", errors.New("dial tcp 10.0.0.5:5432: connection refused"), nil, 503, map[string]string{"store": "unreachable"}},
		{"required server down", nil, servers{{Name: "tasks", Required: true, State: switchboard.ServerDegraded, LastError: "dial tcp 10.9.8.7:443: connection refused"}},
			503, map[string]string{"store": "ok", "mcp:tasks": "degraded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := store.NewMemory()
			h := api.NewHandler(api.Deps{Store: st, Tools: tools.NewRegistry(nil), Auth: authn, Servers: tt.servers, Ready: pinger{tt.store}}, nil)
			srv := httptest.NewServer(h)
			defer srv.Close()
			var body struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			resp := do(t, "GET", srv.URL+"/readyz", "", "", &body)
			if resp.StatusCode != tt.status {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tt.status)
			}
			for k, v := range tt.checks {
				if body.Checks[k] != v {
					t.Errorf("check %s: got %q, want %q (all: %v)", k, body.Checks[k], v, body.Checks)
				}
			}
			for k, v := range body.Checks {
				if strings.Contains(v, "10.") {
					t.Errorf("check %s = %q: the public body shows a detail that is for the admin API", k, v)
				}
			}
			if _, ok := body.Checks["mcp:extra"]; ok {
				t.Errorf("a server that is not required counts toward readiness")
			}
		})
	}
}
