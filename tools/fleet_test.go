//go:build unix

package tools_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"go.uber.org/goleak"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

// tasksBin is the tasks-mcp example server, built once by TestMain.
var tasksBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tools-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tasksBin = filepath.Join(dir, "tasks-mcp")
	if out, err := exec.Command("go", "build", "-o", tasksBin, "../cmd/tasks-mcp").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build tasks-mcp: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// tasksSpec returns a spec for tasks-mcp over stdio, user_id injected.
func tasksSpec(name string, env ...string) tools.ServerSpec {
	cfg := mcpclient.Config{Name: name, Command: tasksBin}
	if len(env) > 0 {
		cfg.Env = map[string]string{env[0]: env[1]}
	}
	return tools.ServerSpec{Config: cfg, Policy: tools.Policy{Inject: map[string]string{"user_id": tools.InjectUserID}}}
}

// newFleet returns a Fleet closed when the test ends.
func newFleet(t *testing.T, opts *tools.FleetOptions) *tools.Fleet {
	t.Helper()
	f := tools.NewFleet(opts)
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// status returns the named server's status.
func status(t *testing.T, f *tools.Fleet, name string) switchboard.ServerStatus {
	t.Helper()
	for _, s := range f.Servers() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no server %s in %+v", name, f.Servers())
	return switchboard.ServerStatus{}
}

// pid returns the pid of a running stdio server's child.
func pid(t *testing.T, f *tools.Fleet, name string) int {
	t.Helper()
	sup := f.Supervisor(name)
	if sup == nil {
		t.Fatalf("server %s is not running", name)
	}
	return sup.Status().PID
}

// groupGone reports whether no live (non-zombie) process is left in
// process group pgid.
func groupGone(pgid int) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return false
		}
	}
	return true
}

// run prepares and runs a call on catalog c as the model would ask it.
func run(ctx context.Context, c *tools.Catalog, name, args string) switchboard.ToolCall {
	call := c.Prepare(switchboard.RequestedCall{ID: "call", Name: name, Arguments: args}, tools.Caller{UserID: "alice"})
	c.Run(ctx, &call)
	return call
}

func exposed(c *tools.Catalog) []string {
	var out []string
	for _, e := range c.Entries() {
		out = append(out, e.ExposedName)
	}
	return out
}

// mcpHTTP serves an in-process mcp-go server over streamable HTTP.
func mcpHTTP(t *testing.T, s *mcpserver.MCPServer) string {
	t.Helper()
	ts := httptest.NewServer(mcpserver.NewStreamableHTTPServer(s))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

func textTool(text string) mcpserver.ToolHandlerFunc {
	return func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(text), nil
	}
}

func TestFleetStartupIsNotHeldUp(t *testing.T) {
	broken := mcpserver.NewMCPServer("broken", "1.0", mcpserver.WithToolCapabilities(true))
	broken.AddTool(mcp.NewTool("fine"), textTool("fine"))
	broken.AddTool(mcp.NewToolWithRawSchema("bad", "takes a date", json.RawMessage(`{"type":"object","properties":{"when":{"type":"date"}}}`)), textTool("never"))

	specs := []tools.ServerSpec{
		tasksSpec("tasks"),
		// Never answers initialize: holds nobody up.
		{Config: mcpclient.Config{Name: "hanging", Command: "sleep", Args: []string{"300"}, InitTimeout: time.Minute}},
		{Config: mcpclient.Config{Name: "missing", Command: "/nonexistent/mcp-server"}},
		{Config: mcpclient.Config{Name: "broken", URL: mcpHTTP(t, broken)}},
		{Config: mcpclient.Config{Name: "off", Command: "/nonexistent/too"}, Disabled: true},
	}
	f := newFleet(t, &tools.FleetOptions{StartupWait: 500 * time.Millisecond})
	start := time.Now()
	if err := f.Start(t.Context(), specs); err != nil {
		t.Fatalf("Start: %v", err)
	}
	took := time.Since(start)
	t.Logf("start-up with one hanging server (StartupWait 500ms, its init_timeout 1m): %s", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("Start took %s, want about StartupWait (500ms)", took)
	}

	c := f.Current()
	for _, want := range []string{"tasks__add_task", "tasks__list_tasks", "broken__fine"} {
		if _, ok := c.Lookup(want); !ok {
			t.Errorf("catalog %v lacks %s", exposed(c), want)
		}
	}
	if call := run(t.Context(), c, "tasks__add_task", `{"title":"milk"}`); call.Status != switchboard.CallSucceeded {
		t.Errorf("tasks call: %+v", call)
	}
	if call := run(t.Context(), c, "broken__fine", `{}`); call.Status != switchboard.CallSucceeded || call.Result != "fine" {
		t.Errorf("the broken server's good tool: %+v", call)
	}

	got := map[string]switchboard.ServerStatus{}
	for _, s := range f.Servers() {
		got[s.Name] = s
	}
	if s := got["hanging"]; s.State != switchboard.ServerStarting || len(s.Tools) != 0 {
		t.Errorf("hanging: %+v, want starting", s)
	}
	if s := got["missing"]; s.State == switchboard.ServerReady || !strings.Contains(s.LastError, "no such file") {
		t.Errorf("missing: %+v, want not ready, saying why", s)
	}
	if s := got["off"]; s.State != switchboard.ServerStopped {
		t.Errorf("disabled: %+v, want stopped", s)
	}
	b := got["broken"]
	if b.State != switchboard.ServerReady || !slices.Equal(b.Tools, []string{"broken__fine"}) || len(b.Quarantined) != 1 ||
		b.Quarantined[0].Tool != "bad" || !strings.Contains(b.Quarantined[0].Reason, `"date"`) {
		t.Errorf("broken: %+v, want fine exposed and bad quarantined for its type", b)
	}
	if s := got["tasks"]; s.State != switchboard.ServerReady || s.Transport != "stdio" || s.ConnectedAt.IsZero() || len(s.Tools) != 5 {
		t.Errorf("tasks: %+v", s)
	}

	// With no wait at all, Start returns at once.
	g := newFleet(t, &tools.FleetOptions{StartupWait: -1})
	start = time.Now()
	if err := g.Start(t.Context(), specs[:2]); err != nil {
		t.Fatal(err)
	}
	t.Logf("start-up with StartupWait < 0: %s", time.Since(start).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "tasks to join the catalog", func() bool {
		_, ok := g.Current().Lookup("tasks__add_task")
		return ok
	})
}

func TestFleetRequired(t *testing.T) {
	specs := []tools.ServerSpec{
		tasksSpec("tasks"),
		{Config: mcpclient.Config{Name: "gone", Command: "/nonexistent/mcp-server"}, Required: true},
		{Config: mcpclient.Config{Name: "mute", Command: "sleep", Args: []string{"300"}, InitTimeout: 200 * time.Millisecond}, Required: true},
	}
	f := newFleet(t, nil)
	err := f.Start(t.Context(), specs)
	if err == nil || !strings.Contains(err.Error(), "required MCP server gone") || !strings.Contains(err.Error(), "required MCP server mute") ||
		!errors.Is(err, switchboard.ErrUpstreamTimeout) {
		t.Errorf("Start: got %v, want both required servers named", err)
	}
}

func TestFleetReload(t *testing.T) {
	var (
		mu    sync.Mutex
		specs = []tools.ServerSpec{tasksSpec("keep"), tasksSpec("change"), tasksSpec("remove"), tasksSpec("policy")}
	)
	load := func(context.Context) ([]tools.ServerSpec, error) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(specs), nil
	}
	f := newFleet(t, &tools.FleetOptions{Load: load, StartupWait: 10 * time.Second})
	if err := f.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := map[string]int{}
	for _, n := range []string{"keep", "change", "remove", "policy"} {
		before[n] = pid(t, f, n)
	}
	old := f.Current() // a turn in flight holds this one

	mu.Lock()
	policy := tasksSpec("policy")
	policy.Policy.AllowedTools = []string{"list_tasks"}
	policy.Policy.RequireApproval = tools.ApprovalPolicy{All: tools.ApprovalAlways}
	specs = []tools.ServerSpec{tasksSpec("keep"), tasksSpec("change", "TASKS_CHANGED", "1"), policy, tasksSpec("add")}
	mu.Unlock()
	start := time.Now()
	if err := f.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("reload (1 added, 1 removed, 1 restarted, 1 policy change) took %s", time.Since(start).Round(time.Millisecond))

	if got := pid(t, f, "keep"); got != before["keep"] {
		t.Errorf("unchanged server restarted: pid %d -> %d", before["keep"], got)
	}
	if got := pid(t, f, "policy"); got != before["policy"] {
		t.Errorf("server whose policy alone changed restarted: pid %d -> %d", before["policy"], got)
	}
	if got := pid(t, f, "change"); got == before["change"] || got == 0 {
		t.Errorf("changed server: pid %d -> %d, want a new process", before["change"], got)
	}
	for _, n := range []string{"change", "remove"} {
		if !groupGone(before[n]) {
			t.Errorf("the old process group of %s (%d) is still there", n, before[n])
		}
	}
	if f.Supervisor("remove") != nil || pid(t, f, "add") == 0 {
		t.Errorf("remove still running, or add not running")
	}
	names := make([]string, 0)
	for _, s := range f.Servers() {
		names = append(names, s.Name+":"+string(s.State))
	}
	if want := []string{"add:ready", "change:ready", "keep:ready", "policy:ready"}; !slices.Equal(names, want) {
		t.Errorf("servers after reload: %v, want %v", names, want)
	}
	cur := f.Current()
	if _, ok := cur.Lookup("remove__list_tasks"); ok {
		t.Errorf("the removed server's tools are still in the catalog")
	}
	if _, ok := cur.Lookup("policy__add_task"); ok {
		t.Errorf("policy__add_task is exposed; allowed_tools says list_tasks only")
	}
	// The loop's policies come with the catalog: the new one asks for
	// approval, the one a running turn holds does not.
	if e, ok := cur.Lookup("policy__list_tasks"); !ok || !e.RequiresApproval() {
		t.Errorf("policy__list_tasks in the new catalog: %v, want it to require approval", ok)
	}
	if e, ok := old.Lookup("policy__list_tasks"); !ok || e.RequiresApproval() {
		t.Errorf("policy__list_tasks in the catalog of before: %v, want no approval", ok)
	}
	if _, ok := cur.Lookup("add__add_task"); !ok {
		t.Errorf("the added server's tools are not in the catalog: %v", exposed(cur))
	}

	// The turn that started before the reload keeps its catalog: the
	// removed server's calls fail cleanly, the others work.
	if call := run(t.Context(), old, "remove__list_tasks", `{}`); call.Status != switchboard.CallFailed ||
		call.ErrorClass != switchboard.ErrorClassTransport || !strings.Contains(call.Error, "stopped") {
		t.Errorf("old catalog, removed server: %+v, want a clean failure", call)
	}
	for _, name := range []string{"keep__list_tasks", "change__list_tasks"} {
		if call := run(t.Context(), old, name, `{}`); call.Status != switchboard.CallSucceeded {
			t.Errorf("old catalog, %s: %+v", name, call)
		}
	}

	// An invalid configuration changes nothing.
	mu.Lock()
	specs = []tools.ServerSpec{tasksSpec("my.srv"), tasksSpec("my_srv")}
	mu.Unlock()
	err := f.Reload(t.Context())
	if !errors.Is(err, switchboard.ErrInvalid) || !strings.Contains(switchboard.ErrorMessage(err), `"my.srv" and "my_srv"`) {
		t.Errorf("invalid reload: got %v, want ErrInvalid naming both servers", err)
	}
	if got := pid(t, f, "keep"); got != before["keep"] {
		t.Errorf("an invalid reload touched keep")
	}
	if e, ok := f.Current().Lookup("policy__list_tasks"); !ok || !e.RequiresApproval() {
		t.Errorf("an invalid reload changed a policy: policy__list_tasks %v", ok)
	}

	// Closing stops everything, process groups included.
	pids := []int{pid(t, f, "keep"), pid(t, f, "change"), pid(t, f, "policy"), pid(t, f, "add")}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if !groupGone(p) {
			t.Errorf("process group %d still there after Close", p)
		}
	}
	for _, s := range f.Servers() {
		if s.State != switchboard.ServerStopped {
			t.Errorf("after Close: %s is %s", s.Name, s.State)
		}
	}
}

func TestFleetToolsChanged(t *testing.T) {
	s := mcpserver.NewMCPServer("dynamic", "1.0", mcpserver.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("first"), textTool("1"))
	url := mcpHTTP(t, s) // before the Fleet: cleanups run last first, and the server waits for our streams
	f := newFleet(t, nil)
	if err := f.Start(t.Context(), []tools.ServerSpec{{Config: mcpclient.Config{Name: "dyn", URL: url}}}); err != nil {
		t.Fatal(err)
	}
	before := f.Current()
	s.AddTool(mcp.NewTool("second"), textTool("2"))
	waitFor(t, 5*time.Second, "the new tool in the catalog", func() bool {
		_, ok := f.Current().Lookup("dyn__second")
		return ok
	})
	if _, ok := before.Lookup("dyn__second"); ok {
		t.Errorf("an earlier catalog changed: catalogs must be snapshots")
	}
	if call := run(t.Context(), f.Current(), "dyn__second", `{}`); call.Status != switchboard.CallSucceeded || call.Result != "2" {
		t.Errorf("the new tool: %+v", call)
	}
	s.DeleteTools("first")
	waitFor(t, 5*time.Second, "the removed tool to leave the catalog", func() bool {
		_, ok := f.Current().Lookup("dyn__first")
		return !ok
	})
}

func TestFleetEverything(t *testing.T) {
	// A real server: its task-only tool is offered (TestFleetEverythingTasks
	// runs it), a call past its tool's own timeout is recorded timed_out,
	// and kill -9 in the middle of a call fails that call within 1s; the
	// server comes back and the next call succeeds.
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	dir := nodetest.Module(t, "@modelcontextprotocol/server-everything")
	node, index := nodetest.Node(t), filepath.Join(dir, "dist", "index.js")
	sent := filepath.Join(t.TempDir(), "sent.jsonl")
	specs := []tools.ServerSpec{
		{Config: mcpclient.Config{Name: "everything", Command: node, Args: []string{index, "stdio"},
			ToolTimeouts: map[string]time.Duration{"trigger-long-running-operation": 300 * time.Millisecond}}},
		// The same server, with what we send it copied by tee, to know when
		// a call has reached it; bash execs node, so its pid is node's.
		// Shared: the test kills the one process its calls run on.
		{Config: mcpclient.Config{Name: "slow", Command: "bash",
			Args: []string{"-c", `log=$0; shift; exec "$@" < <(exec tee "$log")`, sent, node, index, "stdio"}}, Scope: tools.ScopeShared},
	}
	f := newFleet(t, nil)
	if err := f.Start(t.Context(), specs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the task-only tool to be listed and offered, and slow's tools", func() bool {
		_, ok := f.Current().Lookup("everything__simulate-research-query")
		_, slow := f.Current().Lookup("slow__trigger-long-running-operation")
		return ok && slow
	})
	if q := status(t, f, "everything").Quarantined; len(q) != 0 {
		t.Errorf("quarantined: %+v, want none", q)
	}
	c := f.Current()
	e, ok := c.Lookup("everything__echo")
	if !ok || !e.Annotations.IsReadOnly() || strings.Contains(string(e.Definition.Parameters), "$schema") {
		t.Errorf("echo: %+v; want read-only, without $schema", e)
	}
	if call := run(t.Context(), c, "everything__get-sum", `{"a":1,"b":2}`); call.Status != switchboard.CallSucceeded || !strings.Contains(call.Result, "3") {
		t.Errorf("get-sum: %+v", call)
	}
	if call := run(t.Context(), c, "everything__get-sum", `{"a":"x","b":2}`); call.Status != switchboard.CallFailed || call.ErrorClass != switchboard.ErrorClassTool {
		t.Errorf("get-sum with a string: %+v, want a tool error", call)
	}
	call := run(t.Context(), c, "everything__trigger-long-running-operation", `{"duration":5,"steps":5}`)
	if call.Status != switchboard.CallTimedOut || !strings.Contains(call.Error, "300ms") {
		t.Errorf("long operation: %+v, want timed_out after its own 300ms", call)
	}

	// kill -9 in the middle of a call.
	old := pid(t, f, "slow")
	done := make(chan switchboard.ToolCall, 1)
	go func() {
		done <- run(t.Context(), c, "slow__trigger-long-running-operation", `{"duration":30,"steps":3}`)
	}()
	waitFor(t, 10*time.Second, "the call to reach the server", func() bool {
		b, _ := os.ReadFile(sent)
		return strings.Contains(string(b), `"name":"trigger-long-running-operation"`)
	})
	syscall.Kill(old, syscall.SIGKILL)
	killed := time.Now()
	select {
	case call := <-done:
		if call.Status != switchboard.CallFailed || call.ErrorClass != switchboard.ErrorClassTransport || !strings.Contains(call.Error, "killed") {
			t.Errorf("the call in flight: %+v, want failed, transport, saying the server was killed", call)
		}
		took := time.Since(killed)
		t.Logf("ledger row of the call in flight, %s after kill -9: status %s, class %s, error %q", took.Round(time.Millisecond), call.Status, call.ErrorClass, call.Error)
		if took > time.Second {
			t.Errorf("the call in flight ended %s after the kill, want within 1s", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call in flight did not end after the kill")
	}
	waitFor(t, 20*time.Second, "slow to be back", func() bool {
		sup := f.Supervisor("slow")
		return sup != nil && sup.Status().State == switchboard.ServerReady && sup.Status().PID != old
	})
	t.Logf("server-everything back %s after kill -9", time.Since(killed).Round(time.Millisecond))
	if call := run(t.Context(), c, "slow__echo", `{"message":"again"}`); call.Status != switchboard.CallSucceeded || call.Result != "Echo: again" {
		t.Errorf("call after the restart, on the catalog of before: %+v", call)
	}
	if !groupGone(old) {
		t.Errorf("the killed server's group %d is still there (tee included)", old)
	}
	if st := status(t, f, "slow"); st.Restarts != 1 || !strings.Contains(st.LastError, "killed") || st.State != switchboard.ServerReady {
		t.Errorf("status: %+v", st)
	}
}

// logBuffer collects a logger's JSON records; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the records whose message starts with prefix.
func (b *logBuffer) records(t *testing.T, prefix string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if msg, _ := r["msg"].(string); strings.HasPrefix(msg, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func TestFleetMaxTools(t *testing.T) {
	// Two tasks-mcp servers of 5 tools each, zeta given first; 5 tools per
	// model request, one place of which is kept for the loop's built-in
	// tool: the catalog offers zeta's first 4 tools, in the server's order.
	var (
		mu    sync.Mutex
		specs = []tools.ServerSpec{tasksSpec("zeta"), tasksSpec("alpha")}
	)
	load := func(context.Context) ([]tools.ServerSpec, error) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(specs), nil
	}
	logs := &logBuffer{}
	f := newFleet(t, &tools.FleetOptions{Load: load, StartupWait: 10 * time.Second, MaxTools: 5, ReservedTools: 1,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err := f.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	const reason = "over llm.max_tools (5): not sent to the model"
	defs := func() []string {
		var out []string
		for _, d := range f.Current().Definitions() {
			out = append(out, d.Name)
		}
		return out
	}
	// reported returns the tools named by the last warning about tools
	// left out, and how many such warnings there were.
	reported := func() ([]string, int) {
		recs := logs.records(t, "tools left out")
		if len(recs) == 0 {
			return nil, 0
		}
		last := recs[len(recs)-1]
		if last["level"] != "WARN" || !strings.Contains(last["msg"].(string), "allowed_tools or excluded_tools") {
			t.Errorf("the report of the tools left out: %v, want a warning pointing at allowed_tools and excluded_tools", last)
		}
		var names []string
		for _, n := range last["tools"].([]any) {
			names = append(names, n.(string))
		}
		return names, len(recs)
	}
	quarantined := func(server string) []string {
		var out []string
		for _, q := range status(t, f, server).Quarantined {
			out = append(out, q.Tool+": "+q.Reason)
		}
		return out
	}
	// mcp-go lists a server's tools by name.
	zetaLeft, alphaLeft := []string{"update_task: " + reason}, []string{
		"add_task: " + reason, "complete_task: " + reason, "delete_task: " + reason, "list_tasks: " + reason, "update_task: " + reason}
	if diff := cmp.Diff([]string{"zeta__add_task", "zeta__complete_task", "zeta__delete_task", "zeta__list_tasks"}, defs()); diff != "" {
		t.Errorf("definitions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(zetaLeft, quarantined("zeta")); diff != "" {
		t.Errorf("zeta's tools left out (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(alphaLeft, quarantined("alpha")); diff != "" {
		t.Errorf("alpha's tools left out (-want +got):\n%s", diff)
	}
	if st := status(t, f, "alpha"); st.State != switchboard.ServerReady || len(st.Tools) != 0 {
		t.Errorf("alpha: %+v, want ready with no tool sent", st)
	}
	want := []string{"zeta/update_task", "alpha/add_task", "alpha/complete_task", "alpha/delete_task", "alpha/list_tasks", "alpha/update_task"}
	names, warnings := reported()
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("the warning's tools (-want +got):\n%s", diff)
	}
	// A model that asks for a tool left out hears of an unknown tool.
	if call := run(t.Context(), f.Current(), "alpha__list_tasks", `{}`); call.Status != switchboard.CallFailed ||
		call.ErrorClass != switchboard.ErrorClassInvalid || call.Error != `unknown tool "alpha__list_tasks"` {
		t.Errorf("call of a tool left out: %+v, want an unknown tool", call)
	}
	if call := run(t.Context(), f.Current(), "zeta__list_tasks", `{}`); call.Status != switchboard.CallSucceeded {
		t.Errorf("call of a tool sent: %+v", call)
	}

	// Every reload says it again, even when nothing changed.
	if err := f.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if names, n := reported(); n != warnings+1 || !slices.Equal(names, want) {
		t.Errorf("after a reload: %d warnings naming %v, want %d naming %v", n, names, warnings+1, want)
	}

	// The configuration's order decides, not the names.
	mu.Lock()
	specs = []tools.ServerSpec{tasksSpec("alpha"), tasksSpec("zeta")}
	mu.Unlock()
	if err := f.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alpha__add_task", "alpha__complete_task", "alpha__delete_task", "alpha__list_tasks"}, defs()); diff != "" {
		t.Errorf("alpha first: definitions (-want +got):\n%s", diff)
	}
	if names, _ := reported(); len(names) != 6 || names[0] != "alpha/update_task" || names[1] != "zeta/add_task" {
		t.Errorf("alpha first: the warning names %v", names)
	}

	// Within the cap again (allowed_tools): every tool is sent, and the
	// log says so.
	mu.Lock()
	specs[0].Policy.AllowedTools, specs[1].Policy.AllowedTools = []string{"list_tasks", "add_task"}, []string{"list_tasks"}
	mu.Unlock()
	if err := f.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"alpha__add_task", "alpha__list_tasks", "zeta__list_tasks"}, defs()); diff != "" {
		t.Errorf("within the cap: definitions (-want +got):\n%s", diff)
	}
	if q := quarantined("alpha"); len(q) != 0 {
		t.Errorf("within the cap: alpha reports %v", q)
	}
	if recs := logs.records(t, "every tool is sent to the model again"); len(recs) != 1 {
		t.Errorf("within the cap: %d records saying every tool is sent, want 1", len(recs))
	}

	// 0: no cap.
	g := newFleet(t, &tools.FleetOptions{StartupWait: 10 * time.Second, MaxTools: 0, ReservedTools: 1})
	if err := g.Start(t.Context(), []tools.ServerSpec{tasksSpec("zeta"), tasksSpec("alpha")}); err != nil {
		t.Fatal(err)
	}
	if n, q := len(g.Current().Definitions()), g.Current().Quarantined(); n != 10 || len(q) != 0 {
		t.Errorf("no cap: %d definitions and %v quarantined, want all 10 sent", n, q)
	}
}
