package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/tools"
)

// connServers reports one real MCP connection, as the admin console shows
// it.
type connServers struct{ conn *mcpclient.Conn }

func (s connServers) Servers() []switchboard.ServerStatus {
	var names []string
	for _, t := range s.conn.Tools() {
		names = append(names, s.conn.Name()+"__"+t.Name)
	}
	tail := s.conn.Stderr()
	if len(tail) == 0 {
		tail = []string{"(tasks-mcp wrote nothing to stderr)"}
	}
	return []switchboard.ServerStatus{{Name: s.conn.Name(), Transport: "stdio", State: switchboard.ServerReady,
		Tools: names, StderrTail: tail, ConnectedAt: time.Now().Add(-time.Minute), Protocol: s.conn.Protocol(),
		Quarantined: []switchboard.QuarantinedTool{{Server: "tasks", Tool: "bulk_import", Reason: "its input schema is not an object"}},
		// Icons: the console shows the PNGs, and not the SVG nor the
		// script URL (which mcpclient never lets through: the page checks
		// on its own).
		Icons: []switchboard.Icon{{Src: bluePNG}},
		ToolIcons: map[string][]switchboard.Icon{
			"tasks__add_task":    {{Src: "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="}, {Src: bluePNG, MIMEType: "image/png"}},
			"tasks__list_tasks":  {{Src: "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4="}},
			"tasks__delete_task": {{Src: "javascript:alert(1)"}},
		}}}
}

// bluePNG is a 1x1 blue PNG.
const bluePNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPj/HwADBwIAMCbHYQAAAABJRU5ErkJggg=="

func (s connServers) Reload(context.Context) error { return nil }

// TestBrowser drives the chat page and the admin console in Chromium over
// the real service: a scripted model, cmd/tasks-mcp over stdio, the memory
// store. Screenshots land in test-results/screenshots at the module root.
func TestBrowser(t *testing.T) {
	st := asAdminStore(t, store.NewMemory())
	conn := tasksServer(t, "stdio")
	svc := newAdminService(t, st, conn, connServers{conn}, llmtest.Sequence(
		// "Add a task to buy milk"
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"buy milk"}`}}},
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__list_tasks", Arguments: `{}`}}},
		llmtest.Reply{Text: "I added “buy milk” to your task list. It is your only task."},
		// "Delete it": waits for approval, then runs.
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":1}`}}},
		llmtest.Reply{Text: "Done: “buy milk” is deleted."},
		// "Mark task 42 as done": the tool fails.
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__complete_task", Arguments: `{"task_id":42}`}}},
		llmtest.Reply{Text: "There is no task 42, so I could not mark it as done."},
		// "Delete task 1", in a new conversation: waits, and is denied.
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__delete_task", Arguments: `{"task_id":1}`}}},
		llmtest.Reply{Text: "OK, I did not delete it."},
		// "Tell me a long story": slow, and stopped.
		llmtest.Reply{Delay: time.Minute, Text: "Once upon a time"},
		// The answer about task 42, regenerated.
		llmtest.Reply{Text: "Regenerated: task 42 does not exist."},
	), tools.ApprovalPolicy{All: tools.ApprovalDestructive})

	// Other users' calls of the last three hours, enough for two pages of
	// the admin log; alice's calls, made in the browser, come on top.
	var others []seedCall
	now := time.Now().UTC()
	tools := [][2]string{{"files", "read_file"}, {"files", "write_file"}, {"web", "search"}, {"web", "fetch"}}
	statuses := []switchboard.ToolCallStatus{switchboard.CallSucceeded, switchboard.CallSucceeded, switchboard.CallSucceeded,
		switchboard.CallFailed, switchboard.CallSucceeded, switchboard.CallTimedOut, switchboard.CallSucceeded}
	for i := range 57 {
		st := tools[i%len(tools)]
		others = append(others, seedCall{user: []string{"carol", "dave", "erin"}[i%3], server: st[0], tool: st[1],
			status: statuses[i%len(statuses)], at: now.Add(-time.Duration(57-i) * 3 * time.Minute),
			duration: time.Duration(5+(i*37)%400) * time.Millisecond})
	}
	seedLedger(t, st, others)

	var report struct {
		ConversationID string `json:"conversationId"`
	}
	nodetest.Browse(t, "api/testdata/browser.mjs", &report, "BASE="+svc.url, "TOKEN="+adminToken(t, "alice"), "USER_TOKEN="+token(t, "bob"))

	// What the browser did is in the ledger: the approved call ran.
	calls, _, err := st.ListToolCalls(context.Background(), switchboard.ToolCallFilter{ConversationID: report.ConversationID})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range calls {
		got = append(got, c.Tool+":"+string(c.Status))
	}
	want := "complete_task:failed delete_task:succeeded list_tasks:succeeded add_task:succeeded"
	if strings.Join(got, " ") != want {
		t.Errorf("ledger after the browser session: got %v, want %s", got, want)
	}
}
