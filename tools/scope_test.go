package tools_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

// runAs runs the exposed tool name as the user, in conversation conv.
func runAs(ctx context.Context, c *tools.Catalog, user, conv, name, args string) switchboard.ToolCall {
	call := c.Prepare(switchboard.RequestedCall{ID: "call", Name: name, Arguments: args}, tools.Caller{UserID: user, ConversationID: conv})
	c.Run(ctx, &call)
	return call
}

// mustRun is runAs, failing t unless the call succeeds.
func mustRun(t *testing.T, c *tools.Catalog, user, conv, name, args string) switchboard.ToolCall {
	t.Helper()
	call := runAs(t.Context(), c, user, conv, name, args)
	if call.Status != switchboard.CallSucceeded {
		t.Fatalf("%s as %s: %s %s: %s", name, user, call.Status, call.ErrorClass, call.Error)
	}
	return call
}

// startFleet starts a fleet of specs and waits for its catalog to list
// the tool.
func startFleet(t *testing.T, tool string, specs ...tools.ServerSpec) *tools.Fleet {
	t.Helper()
	f := newFleet(t, &tools.FleetOptions{StartupWait: 60 * time.Second})
	if err := f.Start(t.Context(), specs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, tool+" in the catalog", func() bool { _, ok := f.Current().Lookup(tool); return ok })
	return f
}

// memorySpec is @modelcontextprotocol/server-memory keeping its graph in
// dir, in a file named by path (which may hold placeholders).
func memorySpec(t *testing.T, scope tools.Scope, dir, path string) tools.ServerSpec {
	node := nodetest.Node(t)
	index := filepath.Join(nodetest.Module(t, "@modelcontextprotocol/server-memory"), "dist", "index.js")
	return tools.ServerSpec{Scope: scope, Config: mcpclient.Config{Name: "memory", Command: node, Args: []string{index},
		Env: map[string]string{"MEMORY_FILE_PATH": filepath.Join(dir, path)}, InitTimeout: 30 * time.Second}}
}

const aliceEntity = `{"entities":[{"name":"alice-secret-project","entityType":"project","observations":["launches in May"]}]}`

// TestScopeUserMemory: with server-memory and MEMORY_FILE_PATH holding
// ${user.id}, one user's graph is not another's, by the default scope as
// by scope user; with scope shared, it is (the sharing the README warns
// of). A user id that would leave the directory stays in it.
func TestScopeUserMemory(t *testing.T) {
	for _, scope := range []tools.Scope{"", tools.ScopeUser, tools.ScopeShared} {
		name := string(scope)
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := "graph-${user.id}.jsonl"
			if scope == tools.ScopeShared {
				path = "graph.jsonl" // ${user.id} has no value in a shared session
			}
			f := startFleet(t, "memory__read_graph", memorySpec(t, scope, dir, path))
			c := f.Current()
			mustRun(t, c, "alice", "", "memory__create_entities", aliceEntity)
			own := mustRun(t, c, "alice", "", "memory__read_graph", `{}`)
			other := mustRun(t, c, "bob", "", "memory__read_graph", `{}`)
			if !strings.Contains(own.Result, "alice-secret-project") {
				t.Fatalf("alice does not see her own entity: %s", own.Result)
			}
			shared := strings.Contains(other.Result, "alice-secret-project")
			if shared != (scope == tools.ScopeShared) {
				t.Errorf("scope %q: bob sees alice's entity: %v\n%s", scope, shared, other.Result)
			}
			if scope != tools.ScopeShared {
				if own.SessionScope != "user" || own.SessionKey != "alice" || own.SessionGeneration == 0 || other.SessionKey != "bob" {
					t.Errorf("ledger rows' sessions: %s/%s/%d and %s/%s", own.SessionScope, own.SessionKey, own.SessionGeneration, other.SessionScope, other.SessionKey)
				}
				// A user id made to leave the directory stays in it.
				mustRun(t, c, "../../evil/x", "", "memory__create_entities", aliceEntity)
				entries, _ := os.ReadDir(dir)
				var files []string
				for _, e := range entries {
					files = append(files, e.Name())
				}
				if _, err := os.Stat(filepath.Join(dir, "graph-%2E%2E%2F%2E%2E%2Fevil%2Fx.jsonl")); err != nil {
					t.Errorf("the escaped user's file is not in the directory: %v (files %v)", err, files)
				}
				if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(dir)), "evil")); err == nil {
					t.Errorf("a user id left the directory")
				}
			}
		})
	}
}

// TestScopeConversation: two conversations of one user do not share a
// session of a server of scope conversation.
func TestScopeConversation(t *testing.T) {
	dir := t.TempDir()
	f := startFleet(t, "memory__read_graph", memorySpec(t, tools.ScopeConversation, dir, "graph-${conversation.id}.jsonl"))
	c := f.Current()
	mustRun(t, c, "alice", "conv-1", "memory__create_entities", aliceEntity)
	first := mustRun(t, c, "alice", "conv-1", "memory__read_graph", `{}`)
	second := mustRun(t, c, "alice", "conv-2", "memory__read_graph", `{}`)
	if !strings.Contains(first.Result, "alice-secret-project") || strings.Contains(second.Result, "alice-secret-project") {
		t.Errorf("conversation 1 sees %q; conversation 2 sees %q", first.Result, second.Result)
	}
	if first.SessionScope != "conversation" || first.SessionKey != "conv-1" {
		t.Errorf("ledger row's session: %s/%s", first.SessionScope, first.SessionKey)
	}
	st := status(t, f, "memory")
	if st.Scope != "conversation" || len(st.Sessions) != 2 || st.Sessions[0].UserID != "alice" {
		t.Errorf("status: scope %s, sessions %+v", st.Scope, st.Sessions)
	}
	if n, err := f.ResetSessions("memory", "alice"); err != nil || n != 2 {
		t.Errorf("reset: %d, %v; want 2 closed", n, err)
	}
}

// TestScopeUserPlaywright: with @playwright/mcp (Debian's chromium,
// headless), user B's snapshot does not show the page user A opened; with
// scope shared it does.
func TestScopeUserPlaywright(t *testing.T) {
	chromium := nodetest.Chromium(t)
	node := nodetest.Node(t)
	cli := filepath.Join(nodetest.Module(t, "@playwright/mcp"), "cli.js")
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>Alice's page</title><h1>alice-only-heading</h1>`)
	}))
	defer page.Close()
	for _, scope := range []tools.Scope{tools.ScopeUser, tools.ScopeShared} {
		t.Run(string(scope), func(t *testing.T) {
			// Its snapshots go to .playwright-mcp under the working directory.
			spec := tools.ServerSpec{Scope: scope, Config: mcpclient.Config{Name: "browser", Command: node, Dir: t.TempDir(),
				Args:        []string{cli, "--headless", "--isolated", "--no-sandbox", "--executable-path", chromium},
				InitTimeout: 60 * time.Second, Timeout: 60 * time.Second}}
			f := startFleet(t, "browser__browser_navigate", spec)
			c := f.Current()
			mustRun(t, c, "alice", "", "browser__browser_navigate", fmt.Sprintf(`{"url":%q}`, page.URL))
			own := mustRun(t, c, "alice", "", "browser__browser_snapshot", `{}`)
			other := mustRun(t, c, "bob", "", "browser__browser_snapshot", `{}`)
			if !strings.Contains(own.Result, "alice-only-heading") {
				t.Fatalf("alice's snapshot lacks her page: %.500s", own.Result)
			}
			shared := strings.Contains(other.Result, "alice-only-heading")
			if shared != (scope == tools.ScopeShared) {
				t.Errorf("scope %s: bob's snapshot shows alice's page: %v\n%.500s", scope, shared, other.Result)
			}
		})
	}
}

// procStat returns a process's state and parent from /proc/pid/stat.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	fmt.Sscan(f[1], &ppid)
	return f[0], ppid, f[0] != "Z" && f[0] != "X"
}

// descendants returns the live processes below pid.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var p int
		if _, err := fmt.Sscan(e.Name(), &p); err != nil {
			continue
		}
		if _, pp, ok := procStat(p); ok {
			parent[p] = pp
		}
	}
	out := []int{}
	for p := range parent {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// alive returns those of pids that are still running.
func alive(pids []int) []int {
	var out []int
	for _, p := range pids {
		if _, _, ok := procStat(p); ok {
			out = append(out, p)
		}
	}
	return out
}

// sessionPIDs returns the pid of each open session of the server, by key.
func sessionPIDs(t *testing.T, f *tools.Fleet, server string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, s := range status(t, f, server).Sessions {
		out[s.Key] = s.PID
	}
	return out
}

// TestSessionsEvictedAndIsolated: at max_sessions the least recently used
// idle session is closed, its whole process group (chromium's processes
// under @playwright/mcp) gone from the process table; after idle_timeout
// the others go too; one user's process killed with SIGKILL is started
// again while another user's session keeps answering.
func TestSessionsEvictedAndIsolated(t *testing.T) {
	chromium := nodetest.Chromium(t)
	node := nodetest.Node(t)
	cli := filepath.Join(nodetest.Module(t, "@playwright/mcp"), "cli.js")
	spec := tools.ServerSpec{MaxSessions: 2, IdleTimeout: 20 * time.Second, Config: mcpclient.Config{Name: "browser", Command: node, Dir: t.TempDir(),
		Args: []string{cli, "--headless", "--isolated", "--no-sandbox", "--executable-path", chromium}, InitTimeout: 60 * time.Second, Timeout: 60 * time.Second}}
	f := startFleet(t, "browser__browser_navigate", spec)
	c := f.Current()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<h1>hello</h1>") }))
	defer page.Close()
	nav := fmt.Sprintf(`{"url":%q}`, page.URL)
	mustRun(t, c, "alice", "", "browser__browser_navigate", nav)
	mustRun(t, c, "bob", "", "browser__browser_navigate", nav)
	pids := sessionPIDs(t, f, "browser")
	aliceTree := descendants(pids["alice"])
	if len(aliceTree) < 2 {
		t.Fatalf("alice's session %d runs %v: want node and chromium", pids["alice"], aliceTree)
	}
	mustRun(t, c, "bob", "", "browser__browser_snapshot", `{}`) // alice is now the least recently used
	mustRun(t, c, "carol", "", "browser__browser_navigate", nav)
	waitFor(t, 15*time.Second, fmt.Sprintf("alice's processes %v to be gone", aliceTree), func() bool { return len(alive(aliceTree)) == 0 })
	if st := status(t, f, "browser"); len(st.Sessions) != 2 {
		t.Errorf("%d sessions open at the cap of 2", len(st.Sessions))
	}

	// kill -9 bob's node: it comes back, carol is untouched.
	pids = sessionPIDs(t, f, "browser")
	syscall.Kill(pids["bob"], syscall.SIGKILL)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 5 {
			if call := runAs(t.Context(), c, "carol", "", "browser__browser_snapshot", `{}`); call.Status != switchboard.CallSucceeded {
				t.Errorf("carol while bob restarts: %s %s", call.Status, call.Error)
			}
		}
	})
	wg.Wait()
	waitFor(t, 60*time.Second, "bob's session to answer again", func() bool {
		return runAs(t.Context(), c, "bob", "", "browser__browser_snapshot", `{}`).Status == switchboard.CallSucceeded
	})
	if got := sessionPIDs(t, f, "browser"); got["carol"] != pids["carol"] || got["bob"] == pids["bob"] {
		t.Errorf("pids before %v, after %v: want carol's kept and bob's new", pids, got)
	}

	var trees []int
	for _, pid := range sessionPIDs(t, f, "browser") {
		trees = append(trees, descendants(pid)...)
	}
	waitFor(t, 90*time.Second, "the idle sessions to close", func() bool { return len(status(t, f, "browser").Sessions) == 0 })
	waitFor(t, 10*time.Second, fmt.Sprintf("the idle sessions' processes %v to be gone", trees), func() bool { return len(alive(trees)) == 0 })
}

// TestTwoHundredUsersOverHTTP: 200 users call server-everything over
// streamable HTTP with scope user: 200 sessions, each call answered right.
func TestTwoHundredUsersOverHTTP(t *testing.T) {
	node := nodetest.Node(t)
	index := filepath.Join(nodetest.Module(t, "@modelcontextprotocol/server-everything"), "dist", "index.js")
	port := freePort(t)
	cmd := exec.Command(node, index, "streamableHttp")
	cmd.Env = append(os.Environ(), "PORT="+fmt.Sprint(port))
	stderr, _ := cmd.StderrPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go drain(stdout)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), fmt.Sprint(port)) {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("server-everything did not start")
	}
	spec := tools.ServerSpec{Scope: tools.ScopeUser, Config: mcpclient.Config{Name: "everything", URL: fmt.Sprintf("http://127.0.0.1:%d/mcp", port),
		Timeout: 60 * time.Second, InitTimeout: 60 * time.Second}}
	f := startFleet(t, "everything__echo", spec)
	c := f.Current()
	const users = 200
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for i := range users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			user := fmt.Sprintf("user-%03d", i)
			call := runAs(t.Context(), c, user, "", "everything__echo", fmt.Sprintf(`{"message":%q}`, user))
			if call.Status != switchboard.CallSucceeded || call.Result != "Echo: "+user || call.SessionKey != user {
				t.Errorf("%s: %s %q (session %s)", user, call.Status, call.Result, call.SessionKey)
			}
		})
	}
	wg.Wait()
	st := status(t, f, "everything")
	t.Logf("%d users, %d sessions, in %s", users, len(st.Sessions), time.Since(start).Round(time.Millisecond))
	if len(st.Sessions) != users {
		t.Errorf("%d sessions, want %d", len(st.Sessions), users)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func drain(r io.Reader) { io.Copy(io.Discard, r) }
