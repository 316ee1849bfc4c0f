package tools_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/mcptest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

func TestFleetProtocols(t *testing.T) {
	// A modern-only server (go-sdk, HTTP, sessions per user) beside
	// tasks-mcp over stdio: each server's era and what it said of itself
	// in Servers; calls of two users on the modern one; its tools
	// list_changed (heard on subscriptions/listen) rebuilds the catalog.
	f := newFleet(t, nil)
	err := f.Start(t.Context(), []tools.ServerSpec{
		tasksSpec("tasks"),
		{Config: mcpclient.Config{Name: "modern", URL: mcptest.StartModernHTTP(t)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both servers' tools", func() bool {
		names := exposed(f.Current())
		return slices.Contains(names, "modern__grow") && slices.Contains(names, "tasks__list_tasks")
	})
	if p := status(t, f, "modern").Protocol; p.Era != mcpclient.EraModern || p.Version != "2026-07-28" || p.ServerName != "modernmcp" ||
		p.ServerVersion != "1.2.3" || !strings.Contains(string(p.Capabilities), `"tools"`) {
		t.Errorf("modern's protocol: %+v (capabilities %s), want modern 2026-07-28 of modernmcp 1.2.3", p, p.Capabilities)
	}
	if p := status(t, f, "tasks").Protocol; p.Era != mcpclient.EraLegacy || p.Version != "2025-11-25" || p.ServerName != "tasks-mcp" {
		t.Errorf("tasks' protocol: %+v, want legacy 2025-11-25 of tasks-mcp", p)
	}

	for _, user := range []string{"alice", "bob"} {
		call := f.Current().Prepare(switchboard.RequestedCall{ID: "c-" + user, Name: "modern__echo", Arguments: `{"text":"` + user + `"}`},
			tools.Caller{UserID: user})
		f.Current().Run(context.Background(), &call)
		if call.Status != switchboard.CallSucceeded || call.Result != "echo: "+user {
			t.Errorf("%s's echo: %s %q (%s), want echo: %s", user, call.Status, call.Result, call.Error, user)
		}
	}

	call := run(t.Context(), f.Current(), "modern__grow", `{}`)
	if call.Status != switchboard.CallSucceeded {
		t.Fatalf("grow: %s %s", call.Status, call.Error)
	}
	waitFor(t, 10*time.Second, "modern__extra in the catalog", func() bool {
		return slices.Contains(exposed(f.Current()), "modern__extra")
	})
}
