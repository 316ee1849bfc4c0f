package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient returns an initialized in-process client of a server over st.
func newClient(t *testing.T, st *store) *client.Client {
	t.Helper()
	c, err := client.NewInProcessClientWithOptions(newServer(st), client.WithProtocolVersion(mcp.LATEST_LEGACY_PROTOCOL_VERSION))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var init mcp.InitializeRequest
	init.Params.ProtocolVersion = mcp.LATEST_LEGACY_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "test", Version: "1"}
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	return c
}

// call calls tool with args and returns the result's text, its structured
// content decoded into a generic value, and isError.
func call(t *testing.T, c *client.Client, tool string, args map[string]any) (text string, structured any, isError bool) {
	t.Helper()
	var req mcp.CallToolRequest
	req.Params.Name = tool
	req.Params.Arguments = args
	res, err := c.CallTool(t.Context(), req)
	if err != nil {
		t.Fatalf("%s(%v): protocol error %v, want a result", tool, args, err)
	}
	var parts []string
	for _, p := range res.Content {
		if tc, ok := p.(mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	if len(res.RawStructuredContent) > 0 {
		if err := json.Unmarshal(res.RawStructuredContent, &structured); err != nil {
			t.Fatal(err)
		}
	} else if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &structured)
	}
	return strings.Join(parts, "\n"), structured, res.IsError
}

// task is the structured form of a task, created_at left out.
func task(id int, user, title, desc string, done bool) map[string]any {
	return map[string]any{"id": float64(id), "user_id": user, "title": title, "description": desc, "completed": done}
}

// ignoreCreatedAt drops created_at from comparisons; its format is checked
// separately.
var ignoreCreatedAt = cmpopts.IgnoreMapEntries(func(k string, _ any) bool { return k == "created_at" })

func TestTaskTools(t *testing.T) {
	c := newClient(t, must(openStore("")))

	steps := []struct {
		tool       string
		args       map[string]any
		wantText   string
		wantStruct any
		wantError  bool
	}{
		{"add_task", map[string]any{"user_id": "alice", "title": "Buy milk"},
			"Created task 1: Buy milk", task(1, "alice", "Buy milk", "", false), false},
		{"add_task", map[string]any{"user_id": "bob", "title": "  Call mom ", "description": "Sunday"},
			"Created task 2: Call mom", task(2, "bob", "Call mom", "Sunday", false), false},
		{"add_task", map[string]any{"user_id": "alice", "title": "Write report", "description": "Q3"},
			"Created task 3: Write report", task(3, "alice", "Write report", "Q3", false), false},
		{"list_tasks", map[string]any{"user_id": "alice"},
			"2 task(s):\n[ ] 1. Buy milk\n[ ] 3. Write report — Q3",
			map[string]any{"status": "all", "count": float64(2), "tasks": []any{task(1, "alice", "Buy milk", "", false), task(3, "alice", "Write report", "Q3", false)}}, false},
		{"complete_task", map[string]any{"user_id": "alice", "task_id": 1},
			"Completed task 1: Buy milk", task(1, "alice", "Buy milk", "", true), false},
		{"complete_task", map[string]any{"user_id": "alice", "task_id": "1"}, // idempotent; a quoted id works
			"Completed task 1: Buy milk", task(1, "alice", "Buy milk", "", true), false},
		{"list_tasks", map[string]any{"user_id": "alice", "status": "pending"},
			"1 task(s):\n[ ] 3. Write report — Q3",
			map[string]any{"status": "pending", "count": float64(1), "tasks": []any{task(3, "alice", "Write report", "Q3", false)}}, false},
		{"list_tasks", map[string]any{"user_id": "alice", "status": "completed"},
			"1 task(s):\n[x] 1. Buy milk",
			map[string]any{"status": "completed", "count": float64(1), "tasks": []any{task(1, "alice", "Buy milk", "", true)}}, false},
		{"update_task", map[string]any{"user_id": "alice", "task_id": 3, "title": "Write Q3 report"},
			"Updated task 3: Write Q3 report", task(3, "alice", "Write Q3 report", "Q3", false), false},
		{"update_task", map[string]any{"user_id": "alice", "task_id": 3, "description": ""},
			"Updated task 3: Write Q3 report", task(3, "alice", "Write Q3 report", "", false), false},
		// Another user's task is indistinguishable from a missing one.
		{"complete_task", map[string]any{"user_id": "alice", "task_id": 2},
			"task 2 not found: the user has no task with this id (list_tasks shows the ids)", nil, true},
		{"update_task", map[string]any{"user_id": "alice", "task_id": 2, "title": "mine now"},
			"task 2 not found: the user has no task with this id (list_tasks shows the ids)", nil, true},
		{"delete_task", map[string]any{"user_id": "alice", "task_id": 2},
			"task 2 not found: the user has no task with this id (list_tasks shows the ids)", nil, true},
		{"delete_task", map[string]any{"user_id": "alice", "task_id": 99},
			"task 99 not found: the user has no task with this id (list_tasks shows the ids)", nil, true},
		{"delete_task", map[string]any{"user_id": "alice", "task_id": 1},
			"Deleted task 1: Buy milk", task(1, "alice", "Buy milk", "", true), false},
		{"list_tasks", map[string]any{"user_id": "alice", "status": "completed"},
			"No completed tasks.", map[string]any{"status": "completed", "count": float64(0), "tasks": []any{}}, false},
		{"list_tasks", map[string]any{"user_id": "bob"},
			"1 task(s):\n[ ] 2. Call mom — Sunday",
			map[string]any{"status": "all", "count": float64(1), "tasks": []any{task(2, "bob", "Call mom", "Sunday", false)}}, false},
		{"list_tasks", map[string]any{"user_id": "carol"},
			"No tasks.", map[string]any{"status": "all", "count": float64(0), "tasks": []any{}}, false},
	}
	for i, s := range steps {
		text, structured, isError := call(t, c, s.tool, s.args)
		if text != s.wantText || isError != s.wantError {
			t.Errorf("step %d %s(%v): got text %q isError %v, want %q %v", i, s.tool, s.args, text, isError, s.wantText, s.wantError)
		}
		if diff := cmp.Diff(s.wantStruct, structured, ignoreCreatedAt); diff != "" {
			t.Errorf("step %d %s(%v): structured content (-want +got):\n%s", i, s.tool, s.args, diff)
		}
		if m, ok := structured.(map[string]any); ok && s.tool != "list_tasks" {
			if _, err := time.Parse(time.RFC3339, m["created_at"].(string)); err != nil {
				t.Errorf("step %d: created_at %v: %v", i, m["created_at"], err)
			}
		}
	}
}

func TestTaskToolErrors(t *testing.T) {
	c := newClient(t, must(openStore("")))
	call(t, c, "add_task", map[string]any{"user_id": "alice", "title": "one"})

	tests := []struct {
		name string
		tool string
		args map[string]any
		want string
	}{
		{"empty title", "add_task", map[string]any{"user_id": "alice", "title": "   "}, "title must not be empty"},
		{"missing title", "add_task", map[string]any{"user_id": "alice"}, "title is required"},
		{"long title", "add_task", map[string]any{"user_id": "alice", "title": strings.Repeat("x", 201)}, "title is 201 characters long, the limit is 200"},
		{"title not a string", "add_task", map[string]any{"user_id": "alice", "title": 7}, "title must be a string"},
		{"missing user", "add_task", map[string]any{"title": "x"}, "user_id is required"},
		{"empty user", "list_tasks", map[string]any{"user_id": ""}, "user_id must not be empty"},
		{"bad status", "list_tasks", map[string]any{"user_id": "alice", "status": "done"}, `status must be one of "all", "pending" or "completed", not "done"`},
		{"missing task id", "complete_task", map[string]any{"user_id": "alice"}, "task_id is required"},
		{"fractional task id", "complete_task", map[string]any{"user_id": "alice", "task_id": 1.5}, "task_id must be a positive whole number, not 1.5"},
		{"nothing to update", "update_task", map[string]any{"user_id": "alice", "task_id": 1}, "nothing to update: give a title, a description or both"},
		{"update to empty title", "update_task", map[string]any{"user_id": "alice", "task_id": 1, "title": ""}, "title must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, structured, isError := call(t, c, tt.tool, tt.args)
			if !isError || text != tt.want || structured != nil {
				t.Errorf("got %q isError %v structured %v, want error result %q", text, isError, structured, tt.want)
			}
		})
	}
	// A failed update leaves the task unchanged.
	_, got, _ := call(t, c, "list_tasks", map[string]any{"user_id": "alice"})
	want := map[string]any{"status": "all", "count": float64(1), "tasks": []any{task(1, "alice", "one", "", false)}}
	if diff := cmp.Diff(want, got, ignoreCreatedAt); diff != "" {
		t.Errorf("tasks after failed calls (-want +got):\n%s", diff)
	}
}

func TestToolAnnotations(t *testing.T) {
	c := newClient(t, must(openStore("")))
	res, err := c.ListTools(t.Context(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	type hints struct{ ReadOnly, Destructive, Idempotent, OpenWorld bool }
	got := map[string]hints{}
	for _, tool := range res.Tools {
		if tool.Description == "" || tool.Title == "" {
			t.Errorf("%s: got title %q description %q, want both", tool.Name, tool.Title, tool.Description)
		}
		if !strings.Contains(string(must(json.Marshal(tool.InputSchema))), `"user_id"`) {
			t.Errorf("%s: input schema has no user_id", tool.Name)
		}
		a := tool.Annotations
		got[tool.Name] = hints{*a.ReadOnlyHint, *a.DestructiveHint, *a.IdempotentHint, *a.OpenWorldHint}
	}
	want := map[string]hints{
		"add_task":      {},
		"list_tasks":    {ReadOnly: true, Idempotent: true},
		"complete_task": {Idempotent: true},
		"update_task":   {Idempotent: true},
		"delete_task":   {Destructive: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}

func TestStorePersists(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tasks.json")
	st := must(openStore(path))
	a := must(st.add("alice", "one", ""))
	b := must(st.add("alice", "two", ""))
	must(st.update("alice", a.ID, func(t *Task) error { t.Completed = true; return nil }))
	must(st.remove("alice", b.ID))

	st2 := must(openStore(path))
	got := must(st2.list("alice", statusAll))
	a.Completed = true
	if diff := cmp.Diff([]Task{a}, got); diff != "" {
		t.Errorf("reopened store (-want +got):\n%s", diff)
	}
	// Ids are not reused after a restart, even the deleted one's.
	if c := must(st2.add("alice", "three", "")); c.ID != 3 {
		t.Errorf("got id %d after reopening, want 3", c.ID)
	}
	entries := must(os.ReadDir(dir))
	if len(entries) != 1 {
		t.Errorf("got %d files in the data dir, want only tasks.json (no temporary files left)", len(entries))
	}
}

func TestStoreBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasks.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(path); err == nil {
		t.Error("openStore on a corrupt file: got nil error, want one")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
