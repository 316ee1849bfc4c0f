//go:build unix

package tools_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

// sent is a JSON-RPC message Switchboard sent a server, as tee copied it.
type sent struct {
	Method string `json:"method"`
	Params struct {
		Name   string          `json:"name"`
		Task   json.RawMessage `json:"task"`
		TaskID string          `json:"taskId"`
	} `json:"params"`
}

// sentTo reads what tee copied of a server's stdin to log.
func sentTo(log string) []sent {
	b, _ := os.ReadFile(log)
	var out []sent
	for line := range strings.Lines(string(b)) {
		var m sent
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestFleetEverythingTasks(t *testing.T) {
	// server-everything's simulate-research-query can only run as a task.
	// Through the catalog it runs to completion, its ledger row naming the
	// task; one cancelled mid-way is cancelled at the server: tasks/cancel
	// reaches its stdin, and it answers that the task is cancelled.
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	dir := nodetest.Module(t, "@modelcontextprotocol/server-everything")
	node, index := nodetest.Node(t), filepath.Join(dir, "dist", "index.js")
	log := filepath.Join(t.TempDir(), "sent.jsonl")
	f := newFleet(t, nil)
	err := f.Start(t.Context(), []tools.ServerSpec{{Config: mcpclient.Config{Name: "everything", Command: "bash",
		Args: []string{"-c", `log=$0; shift; exec "$@" < <(exec tee "$log")`, log, node, index, "stdio"}}, Scope: tools.ScopeShared}})
	if err != nil {
		t.Fatal(err)
	}
	const name = "everything__simulate-research-query"
	waitFor(t, 10*time.Second, "simulate-research-query in the catalog", func() bool {
		_, ok := f.Current().Lookup(name)
		return ok
	})
	c := f.Current()

	call := run(t.Context(), c, name, `{"topic":"tides"}`)
	if call.Status != switchboard.CallSucceeded || call.TaskID == "" || call.TaskStatus != "completed" ||
		!strings.Contains(call.Result, "# Research Report: tides") {
		t.Fatalf("got %s (%s) task %q %q, result %.200q; want a completed task with its report",
			call.Status, call.Error, call.TaskID, call.TaskStatus, call.Result)
	}
	msgs := sentTo(log)
	asTask := slices.ContainsFunc(msgs, func(m sent) bool {
		return m.Method == "tools/call" && m.Params.Name == "simulate-research-query" && len(m.Params.Task) > 0
	})
	polled := slices.ContainsFunc(msgs, func(m sent) bool { return m.Method == "tasks/get" && m.Params.TaskID == call.TaskID })
	fetched := slices.ContainsFunc(msgs, func(m sent) bool { return m.Method == "tasks/result" && m.Params.TaskID == call.TaskID })
	if !asTask || !polled || !fetched {
		t.Errorf("sent: a task-augmented tools/call %v, tasks/get %v, tasks/result %v; want all three", asTask, polled, fetched)
	}
	t.Logf("task %s completed in %s", call.TaskID, call.Duration.Round(time.Millisecond))

	// Cancelled mid-way, as a turn cancelled while the task works.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan switchboard.ToolCall, 1)
	go func() { done <- run(ctx, c, name, `{"topic":"eels"}`) }()
	var second string
	waitFor(t, 10*time.Second, "the second task to be polled", func() bool {
		for _, m := range sentTo(log) {
			if m.Method == "tasks/get" && m.Params.TaskID != call.TaskID {
				second = m.Params.TaskID
			}
		}
		return second != ""
	})
	cancel()
	var cancelled switchboard.ToolCall
	select {
	case cancelled = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled call did not end")
	}
	if cancelled.Status != switchboard.CallCancelled || cancelled.TaskID != second || cancelled.TaskStatus != "cancelled" {
		t.Errorf("cancelled call: %s task %q %q; want cancelled, task %s cancelled (the server's answer to tasks/cancel)",
			cancelled.Status, cancelled.TaskID, cancelled.TaskStatus, second)
	}
	if !slices.ContainsFunc(sentTo(log), func(m sent) bool { return m.Method == "tasks/cancel" && m.Params.TaskID == second }) {
		t.Errorf("no tasks/cancel of %s reached the server", second)
	}
}
