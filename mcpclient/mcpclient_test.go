//go:build unix

package mcpclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/switchboard-dev/switchboard"
)

// tasksBin is the tasks-mcp example server, built once by TestMain.
var tasksBin string

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode)
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "mcpclient-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tasksBin = filepath.Join(dir, "tasks-mcp")
	build := exec.Command("go", "build", "-o", tasksBin, "../cmd/tasks-mcp")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tasks-mcp:", err)
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

// helperConfig returns a Config that runs the test binary as a helper MCP
// server in mode.
func helperConfig(mode string, extraEnv ...string) Config {
	// Under -race the binary would sleep 1s on exit (atexit_sleep_ms).
	env := map[string]string{helperEnv: mode, "GORACE": "atexit_sleep_ms=0"}
	for i := 0; i+1 < len(extraEnv); i += 2 {
		env[extraEnv[i]] = extraEnv[i+1]
	}
	return Config{Name: "helper-" + mode, Command: os.Args[0], Env: env}
}

// dial dials cfg and closes the Conn when the test ends.
func dial(t *testing.T, cfg Config, opts *Options) *Conn {
	t.Helper()
	c, err := Dial(t.Context(), cfg, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// callJSON calls tool with args marshalled to JSON.
func callJSON(t *testing.T, c *Conn, tool string, args any) (*Result, error) {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	return c.CallTool(t.Context(), tool, b)
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

// stderrHas reports whether a line of c's stderr matches re, and returns
// its submatches.
func stderrHas(c *Conn, re *regexp.Regexp) []string {
	for _, l := range c.Stderr() {
		if m := re.FindStringSubmatch(l); m != nil {
			return m
		}
	}
	return nil
}

// processGone reports whether pid has exited (a zombie counts as exited:
// an orphan's reaping is init's business).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) != nil
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// startTasksHTTP starts tasks-mcp --http on a free port and returns its URL;
// the server stops when the test ends.
func startTasksHTTP(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(tasksBin, "--http", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		re := regexp.MustCompile(`url=(http://\S+/mcp)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-drained
		if err := cmd.Wait(); err != nil {
			t.Errorf("tasks-mcp --http exited with %v, want a clean exit on SIGTERM", err)
		}
	})
	select {
	case u := <-urls:
		return u
	case <-drained:
		t.Fatal("tasks-mcp --http exited before listening")
	case <-time.After(10 * time.Second):
		t.Fatal("tasks-mcp --http did not log its URL")
	}
	return ""
}

// taskFields is a task's structured content without created_at.
type taskFields struct {
	ID          int    `json:"id"`
	UserID      string `json:"user_id"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Completed   bool   `json:"completed"`
}

func TestTasksServer(t *testing.T) {
	for _, transport := range []string{"stdio", "http"} {
		t.Run(transport, func(t *testing.T) {
			cfg := Config{Name: "tasks", Command: tasksBin}
			if transport == "http" {
				cfg = Config{Name: "tasks", URL: startTasksHTTP(t)}
			}
			start := time.Now()
			c := dial(t, cfg, nil)
			took := time.Since(start)
			t.Logf("connect time over %s: %s", transport, took)
			// The pinned handshake: mcp-go's server/discover probe would
			// cost 5s against a server that ignores it.
			if took > time.Second {
				t.Errorf("Dial took %s, want well under the 5s discover timeout", took)
			}
			exerciseTasks(t, c)
		})
	}
}

// exerciseTasks calls every task tool through c.
func exerciseTasks(t *testing.T, c *Conn) {
	t.Helper()
	var names []string
	for _, tool := range c.Tools() {
		names = append(names, tool.Name)
		if !json.Valid(tool.InputSchema) || tool.Description == "" {
			t.Errorf("tool %s: got schema %s description %q, want both", tool.Name, tool.InputSchema, tool.Description)
		}
	}
	slices.Sort(names)
	if want := []string{"add_task", "complete_task", "delete_task", "list_tasks", "update_task"}; !slices.Equal(names, want) {
		t.Errorf("got tools %v, want %v", names, want)
	}
	for _, tool := range c.Tools() {
		if tool.Name == "list_tasks" && (tool.Annotations.ReadOnly == nil || !*tool.Annotations.ReadOnly) {
			t.Errorf("list_tasks: got readOnly %v, want true", tool.Annotations.ReadOnly)
		}
		if tool.Name == "delete_task" && (tool.Annotations.Destructive == nil || !*tool.Annotations.Destructive) {
			t.Errorf("delete_task: got destructive %v, want true", tool.Annotations.Destructive)
		}
	}

	steps := []struct {
		tool     string
		args     map[string]any
		wantText string
		wantErr  bool // a tool error result
		want     *taskFields
	}{
		{"add_task", map[string]any{"user_id": "ann", "title": "Buy milk", "description": "2 litres"}, "Created task 1: Buy milk", false,
			&taskFields{1, "ann", "Buy milk", "2 litres", false}},
		{"add_task", map[string]any{"user_id": "bo", "title": "Bo's task"}, "Created task 2: Bo's task", false,
			&taskFields{2, "bo", "Bo's task", "", false}},
		{"list_tasks", map[string]any{"user_id": "ann", "status": "pending"}, "1 task(s):\n[ ] 1. Buy milk — 2 litres", false, nil},
		{"complete_task", map[string]any{"user_id": "ann", "task_id": 1}, "Completed task 1: Buy milk", false,
			&taskFields{1, "ann", "Buy milk", "2 litres", true}},
		{"update_task", map[string]any{"user_id": "ann", "task_id": 1, "title": "Buy oat milk"}, "Updated task 1: Buy oat milk", false,
			&taskFields{1, "ann", "Buy oat milk", "2 litres", true}},
		{"add_task", map[string]any{"user_id": "ann", "title": ""}, "title must not be empty", true, nil},
		{"complete_task", map[string]any{"user_id": "ann", "task_id": 2}, "task 2 not found: the user has no task with this id (list_tasks shows the ids)", true, nil},
		{"delete_task", map[string]any{"user_id": "ann", "task_id": 2}, "task 2 not found: the user has no task with this id (list_tasks shows the ids)", true, nil},
		{"delete_task", map[string]any{"user_id": "ann", "task_id": 1}, "Deleted task 1: Buy oat milk", false,
			&taskFields{1, "ann", "Buy oat milk", "2 litres", true}},
		{"list_tasks", map[string]any{"user_id": "ann"}, "No tasks.", false, nil},
	}
	for i, s := range steps {
		res, err := callJSON(t, c, s.tool, s.args)
		if err != nil {
			t.Fatalf("step %d %s: got error %v, want a result", i, s.tool, err)
		}
		if res.Text != s.wantText || res.IsError != s.wantErr {
			t.Errorf("step %d %s: got %q isError %v, want %q %v", i, s.tool, res.Text, res.IsError, s.wantText, s.wantErr)
		}
		if s.want != nil {
			var got taskFields
			if err := json.Unmarshal(res.Structured, &got); err != nil {
				t.Fatalf("step %d %s: structured %s: %v", i, s.tool, res.Structured, err)
			}
			if diff := cmp.Diff(*s.want, got); diff != "" {
				t.Errorf("step %d %s: structured (-want +got):\n%s", i, s.tool, diff)
			}
		}
	}

	// The server rejecting a request is ErrInvalid; so are arguments that
	// are not an object, which are not even sent.
	_, err := c.CallTool(t.Context(), "no_such_tool", nil)
	if !errors.Is(err, switchboard.ErrInvalid) || errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("unknown tool: got %v, want ErrInvalid", err)
	}
	for _, args := range []string{`[1]`, `"x"`, `{"a":`} {
		if _, err := c.CallTool(t.Context(), "list_tasks", json.RawMessage(args)); !errors.Is(err, switchboard.ErrInvalid) {
			t.Errorf("arguments %s: got %v, want ErrInvalid", args, err)
		}
	}
	// The connection is still good.
	if res, err := callJSON(t, c, "list_tasks", map[string]any{"user_id": "bo"}); err != nil || res.IsError {
		t.Errorf("list_tasks after errors: got %+v, %v", res, err)
	}
}

func TestPinnedHandshake(t *testing.T) {
	// The helper exits if it is sent server/discover.
	start := time.Now()
	c := dial(t, helperConfig("raw"), nil)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Dial took %s, want well under the 5s discover timeout", took)
	}
	if stderrHas(c, regexp.MustCompile("server/discover")) != nil {
		t.Errorf("the server was sent server/discover; stderr: %q", c.Stderr())
	}
	if _, err := callJSON(t, c, "echo", map[string]any{}); err != nil {
		t.Errorf("call after the handshake: %v", err)
	}
}

func TestRawToolList(t *testing.T) {
	var logs bytes.Buffer
	c := dial(t, helperConfig("raw"), &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	yes := true
	want := []Tool{
		{Name: "echo", Title: "Echo it", Description: "Echoes its arguments.", InputSchema: json.RawMessage(helperEchoSchema),
			Annotations: Annotations{ReadOnly: &yes}},
		{Name: "weird_schema", Title: "Weird", InputSchema: json.RawMessage(`"not a schema"`), OutputSchema: json.RawMessage(`{"type":"object"}`)},
	}
	for _, name := range []string{"slow", "crash", "mixed", "fail", "changed", "bad_result", "env"} {
		want = append(want, Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)})
	}
	rawBytes := cmp.Comparer(func(a, b json.RawMessage) bool { return bytes.Equal(a, b) })
	if diff := cmp.Diff(want, c.Tools(), rawBytes); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
	// Two unreadable entries and a second "echo" were skipped, and logged.
	if n := strings.Count(logs.String(), "skipping"); n != 3 {
		t.Errorf("got %d skip warnings, want 3; logs:\n%s", n, logs.String())
	}
}

func TestToolsChangedStdio(t *testing.T) {
	var conn atomic.Pointer[Conn]
	changed := make(chan []Tool, 1)
	c := dial(t, helperConfig("raw"), &Options{OnToolsChanged: func() {
		// Over stdio a request made on the read loop would deadlock.
		tools, err := conn.Load().ListTools(t.Context())
		if err != nil {
			t.Errorf("ListTools in OnToolsChanged: %v", err)
		}
		changed <- tools
	}})
	conn.Store(c)
	if _, err := c.CallTool(t.Context(), "changed", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case tools := <-changed:
		if last := tools[len(tools)-1].Name; last != "added" {
			t.Errorf("last tool after list_changed: got %q, want %q", last, "added")
		}
		if got := c.Tools(); len(got) != len(tools) {
			t.Errorf("Tools after ListTools: got %d tools, want %d", len(got), len(tools))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnToolsChanged was not called")
	}
}

func TestCallResults(t *testing.T) {
	c := dial(t, helperConfig("raw"), nil)
	tests := []struct {
		tool    string
		want    *Result
		wantErr error
		errText string
	}{
		// Arguments go out compacted: encoding/json compacts a RawMessage.
		{tool: "echo", want: &Result{Text: "echo", Structured: json.RawMessage(`{"args":{"a":[1,2]}}`)}},
		{tool: "mixed", want: &Result{
			Text: "first\n[image image/png, 8 bytes]\n[audio audio/wav, 4 bytes]\n" +
				`[resource link file:///a.txt (a.txt) text/plain; read it with read_resource(server="helper-raw", uri="file:///a.txt")]` + "\n" +
				"[resource file:///b.txt]\ninside b\n[resource file:///c.bin application/octet-stream, 4 bytes]\n" +
				// A blob of a text type is text; one whose bytes are not
				// UTF-8 stays binary.
				"[resource file:///d.json]\n{\"d\":1}\n[resource file:///e.txt text/plain, 1 bytes]\n" +
				"[image image/png: the data is not valid base64]\nlast",
			Parts: []Part{
				{Kind: "image", MIMEType: "image/png", Data: []byte("\x89PNG\r\n\x1a\n")},
				{Kind: "audio", MIMEType: "audio/wav", Data: []byte("RIFF")},
				{Kind: "resource", MIMEType: "application/octet-stream", URI: "file:///c.bin", Data: []byte{0, 1, 2, 3}},
				{Kind: "resource", MIMEType: "text/plain", URI: "file:///e.txt", Data: []byte{0xff}},
			},
			Structured: json.RawMessage(`{"k": [1, 2], "s":"x"}`),
		}},
		{tool: "fail", want: &Result{Text: "it broke", IsError: true}},
		{tool: "nope", wantErr: switchboard.ErrInvalid, errText: "call nope on helper-raw: invalid params: unknown tool: nope"},
		{tool: "bad_result", wantErr: switchboard.ErrInvalid, errText: "content is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.tool, func(t *testing.T) {
			res, err := c.CallTool(t.Context(), tt.tool, json.RawMessage(`{"a":[1, 2]}`))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(fmt.Sprint(err), tt.errText) {
					t.Errorf("got %v, want an error wrapping %v with %q", err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, res, cmp.Comparer(func(a, b json.RawMessage) bool { return bytes.Equal(a, b) })); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCallCancelled(t *testing.T) {
	c := dial(t, helperConfig("raw"), nil)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.CallTool(ctx, "slow", nil)
		errc <- err
	}()
	var id string
	waitFor(t, 5*time.Second, "the slow call to arrive", func() bool {
		m := stderrHas(c, regexp.MustCompile(`helper: slow call (\S+)`))
		if m != nil {
			id = m[1]
		}
		return m != nil
	})
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("CallTool did not return after its ctx was cancelled")
	}
	// mcp-go tells the server (client.sendRequest -> cancelRequest).
	waitFor(t, 5*time.Second, "notifications/cancelled", func() bool {
		return stderrHas(c, regexp.MustCompile(`helper: cancelled `+regexp.QuoteMeta(id)+`$`)) != nil
	})
	if _, err := c.CallTool(t.Context(), "echo", nil); err != nil {
		t.Errorf("call after a cancelled one: %v", err)
	}
}

func TestCloseDuringCall(t *testing.T) {
	c, err := Dial(t.Context(), helperConfig("raw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.CallTool(t.Context(), "slow", nil)
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the slow call to arrive", func() bool {
		return stderrHas(c, regexp.MustCompile(`helper: slow call`)) != nil
	})
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, switchboard.ErrUnavailable) || !strings.Contains(err.Error(), "connection closed") {
			t.Errorf("call in flight: got %v, want ErrUnavailable: connection closed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call in flight did not end with Close")
	}
}

func TestCallTimeout(t *testing.T) {
	cfg := helperConfig("raw")
	cfg.Timeout = 200 * time.Millisecond
	c := dial(t, cfg, nil)
	start := time.Now()
	_, err := c.CallTool(t.Context(), "slow", nil)
	if !errors.Is(err, switchboard.ErrUpstreamTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want ErrUpstreamTimeout and DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("CallTool took %s with a 200ms Timeout", took)
	}
	waitFor(t, 5*time.Second, "notifications/cancelled", func() bool {
		return stderrHas(c, regexp.MustCompile(`helper: cancelled `)) != nil
	})

	// The caller's shorter deadline wins, and is the caller's error.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = c.CallTool(ctx, "slow", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, switchboard.ErrUpstreamTimeout) {
		t.Errorf("caller deadline: got %v, want DeadlineExceeded", err)
	}
}

func TestChildExitsMidSession(t *testing.T) {
	tests := map[string]func() Config{
		"direct": func() Config { return helperConfig("raw") },
		// A grandchild holds stdout open: the child's exit shows only to
		// the exit watcher, not as the end of stdout.
		"grandchild holds stdout": func() Config {
			cfg := helperConfig("raw")
			cfg.Command, cfg.Args = "sh", []string{"-c", `sleep 300 & exec "$0"`, os.Args[0]}
			return cfg
		},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			c := dial(t, cfg(), nil)
			start := time.Now()
			_, err := c.CallTool(t.Context(), "crash", nil)
			if !errors.Is(err, switchboard.ErrUnavailable) {
				t.Errorf("crash: got %v, want ErrUnavailable", err)
			}
			_, err = c.CallTool(t.Context(), "echo", nil)
			if !errors.Is(err, switchboard.ErrUnavailable) {
				t.Errorf("after the crash: got %v, want ErrUnavailable", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("calls took %s, want a prompt error, not a wait for the timeout", took)
			}
			t.Logf("error after the crash: %v", err)
			// The exit can be seen before os/exec has copied the last
			// stderr bytes (a grandchild keeps the pipe open): wait for them.
			re := regexp.MustCompile("helper: crashing")
			for deadline := time.Now().Add(5 * time.Second); stderrHas(c, re) == nil; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("stderr %q: want the child's last words", c.Stderr())
				}
			}
		})
	}
}

func TestDialContextDoesNotOwnChild(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	c, err := Dial(ctx, Config{Name: "tasks", Command: tasksBin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	// A child tied to ctx (exec.CommandContext) would be killed now, by a
	// goroutine of os/exec. There is nothing to wait for when all is well,
	// so give a wrong implementation a moment to do it.
	time.Sleep(100 * time.Millisecond)
	if stderrHas(c, regexp.MustCompile("stopped")) != nil {
		t.Errorf("the child stopped after Dial's ctx was cancelled")
	}
	res, err := callJSON(t, c, "list_tasks", map[string]any{"user_id": "u"})
	if err != nil || res.Text != "No tasks." {
		t.Errorf("after cancelling Dial's ctx: got %+v, %v, want a working connection", res, err)
	}
}

func TestCloseStopsProcessGroup(t *testing.T) {
	cfg := Config{Name: "tasks", Command: "sh", Args: []string{"-c", `sleep 300 & echo "grandchild $!" >&2; exec "$0"`, tasksBin}}
	c, err := Dial(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	waitFor(t, 5*time.Second, "the grandchild's pid", func() bool {
		if m := stderrHas(c, regexp.MustCompile(`grandchild (\d+)`)); m != nil {
			pid, _ = strconv.Atoi(m[1])
		}
		return pid != 0
	})
	if processGone(pid) {
		t.Fatalf("grandchild %d is not running before Close", pid)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	took := time.Since(start)
	t.Logf("Close took %s", took)
	if took > 5*time.Second {
		t.Errorf("Close took %s, want at most 5s", took)
	}
	// SIGKILL, if it came to that, is delivered asynchronously.
	waitFor(t, time.Second, fmt.Sprintf("grandchild %d to be gone", pid), func() bool { return processGone(pid) })
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.CallTool(t.Context(), "list_tasks", nil); !errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("call after Close: got %v, want ErrUnavailable", err)
	}
}

func TestCloseKillsStubbornChild(t *testing.T) {
	// The child ignores stdin EOF and SIGTERM: only SIGKILL stops it.
	c, err := Dial(t.Context(), helperConfig("stubborn"), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	took := time.Since(start)
	t.Logf("Close of a stubborn child took %s", took)
	if took < closeGrace+termWait || took > closeTimeout {
		t.Errorf("Close took %s, want between %s (SIGKILL) and %s", took, closeGrace+termWait, closeTimeout)
	}
	if stderrHas(c, regexp.MustCompile("helper: stdin ended")) == nil {
		t.Errorf("stderr %q: want the child to have seen stdin end first", c.Stderr())
	}
}

func TestStderrTail(t *testing.T) {
	c := dial(t, helperConfig("raw", helperStderrEnv, "150"), nil)
	waitFor(t, 5*time.Second, "stderr", func() bool {
		l := c.Stderr()
		return len(l) > 0 && l[len(l)-1] == "line 149"
	})
	var want []string
	for i := 50; i < 150; i++ {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	if diff := cmp.Diff(want, c.Stderr()); diff != "" {
		t.Errorf("Stderr (-want +got):\n%s", diff)
	}
}

func TestLineRing(t *testing.T) {
	r := newLineRing(3)
	for _, s := range []string{"a\nb", "b\r\n", "", "c\nd\ne", "e"} {
		r.Write([]byte(s))
	}
	if diff := cmp.Diff([]string{"c", "d", "ee"}, r.Lines()); diff != "" {
		t.Errorf("Lines (-want +got):\n%s", diff)
	}
	r.Write([]byte("\n" + strings.Repeat("x", 2*maxLineLen) + "\n"))
	got := r.Lines()
	if len(got) != 3 || got[1] != "ee" || len(got[2]) != maxLineLen {
		t.Errorf("after a long line: got %d lines, last %d bytes, want 3 lines, last cut to %d", len(got), len(got[len(got)-1]), maxLineLen)
	}
}

func TestEnvAndArgs(t *testing.T) {
	// Our own environment's secrets do not reach the child; PATH does.
	t.Setenv("SWITCHBOARD_CANARY", "canary-in-our-env")
	var logs bytes.Buffer
	cfg := helperConfig("raw", "MCPCLIENT_TEST_SECRET", "env-s3cret")
	cfg.Args = []string{"--token=arg-s3cret"}
	c := dial(t, cfg, &Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	res, err := c.CallTool(t.Context(), "env", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "env-s3cret|--token=arg-s3cret||" + os.Getenv("PATH"); res.Text != want {
		t.Errorf("the child saw %q, want %q", res.Text, want)
	}
	c.CallTool(t.Context(), "crash", nil)
	c.Close()
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("logs hold a secret:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "mcp server connected") {
		t.Errorf("logs:\n%s\nwant the connect line", logs.String())
	}
}

func TestDialErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		ctx     func(*testing.T) context.Context
		wantErr error
		errText string
	}{
		{name: "no command or url", cfg: Config{Name: "x"}, wantErr: switchboard.ErrInvalid},
		{name: "unknown type", cfg: Config{Name: "x", Type: "carrier-pigeon", URL: "http://x"}, wantErr: switchboard.ErrInvalid},
		{name: "stdio without command", cfg: Config{Name: "x", Type: "stdio", URL: "http://x"}, wantErr: switchboard.ErrInvalid},
		{name: "unparsable url", cfg: Config{Name: "x", URL: "http://host/%zz?key=s3cret"}, wantErr: switchboard.ErrInvalid, errText: "bad url"},
		{name: "bad url", cfg: Config{Name: "x", URL: "ftp://host/mcp?key=s3cret"}, wantErr: switchboard.ErrInvalid, errText: "ftp://host/mcp:"},
		{name: "bad env name", cfg: Config{Name: "x", Command: "true", Env: map[string]string{"A=B": "c"}}, wantErr: switchboard.ErrInvalid},
		{name: "command not found", cfg: Config{Name: "x", Command: "/nonexistent/mcp-server"}, wantErr: switchboard.ErrUnavailable},
		{name: "child exits at once", cfg: Config{Name: "x", Command: "sh", Args: []string{"-c", "echo 'fatal: no API key' >&2; exit 1"}},
			wantErr: switchboard.ErrUnavailable, errText: "stderr: fatal: no API key"},
		{name: "no answer to initialize", cfg: func() Config { c := helperConfig("mute"); c.InitTimeout = 300 * time.Millisecond; return c }(),
			wantErr: switchboard.ErrUpstreamTimeout, errText: "no answer within 300ms"},
		{name: "caller gives up", cfg: helperConfig("mute"),
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			wantErr: context.DeadlineExceeded},
		{name: "http nobody listening", cfg: Config{Name: "x", URL: "http://127.0.0.1:1/mcp?key=s3cret"}, wantErr: switchboard.ErrUnavailable},
		{name: "sse nobody listening", cfg: Config{Name: "x", Type: "sse", URL: "http://127.0.0.1:1/sse"}, wantErr: switchboard.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			}
			start := time.Now()
			c, err := Dial(ctx, tt.cfg, nil)
			if err == nil {
				c.Close()
				t.Fatal("Dial: got nil error")
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("got %v, want an error wrapping %v with %q", err, tt.wantErr, tt.errText)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q holds a secret", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Dial took %s to fail", took)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
