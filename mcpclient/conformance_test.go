//go:build unix

package mcpclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/internal/nodetest"
)

// These tests run MCP servers we did not write, from npm: the reference
// "everything" server over stdio, legacy SSE and streamable HTTP, and the
// reference filesystem server over stdio.

const everythingPkg = "@modelcontextprotocol/server-everything"

// everythingStdio returns a Config that runs the everything server over
// stdio.
func everythingStdio(t testing.TB) Config {
	t.Helper()
	dir := nodetest.Module(t, everythingPkg)
	return Config{Name: "everything", Command: nodetest.Node(t), Args: []string{filepath.Join(dir, "dist", "index.js"), "stdio"}}
}

// nodeServer is the everything server run over HTTP, in its own process
// group, on a fixed port so that it can be restarted at the same URL.
type nodeServer struct {
	t         testing.TB
	transport string // sse or streamableHttp
	port      int
	cmd       *exec.Cmd
	exited    chan struct{}
}

// startEverythingHTTP starts the everything server over transport ("sse" or
// "streamableHttp") and returns it once it listens; it stops when the test
// ends.
func startEverythingHTTP(t testing.TB, transport string) *nodeServer {
	t.Helper()
	nodetest.Module(t, everythingPkg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &nodeServer{t: t, transport: transport, port: port}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// URL returns the server's MCP endpoint.
func (s *nodeServer) URL() string {
	if s.transport == "sse" {
		return fmt.Sprintf("http://127.0.0.1:%d/sse", s.port)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/mcp", s.port)
}

func (s *nodeServer) start() {
	t := s.t
	t.Helper()
	dir := nodetest.Module(t, everythingPkg)
	cmd := exec.Command(nodetest.Node(t), filepath.Join(dir, "dist", "index.js"), s.transport)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", s.port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	listening := make(chan struct{})
	go func() {
		defer close(s.exited)
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(fmt.Sprintf(`port %d`, s.port))
		for sc.Scan() {
			if re.MatchString(sc.Text()) {
				close(listening)
			}
		}
		cmd.Wait()
	}()
	select {
	case <-listening:
	case <-s.exited:
		t.Fatalf("everything %s exited before listening on port %d", s.transport, s.port)
	case <-time.After(20 * time.Second):
		t.Fatalf("everything %s did not listen within 20s", s.transport)
	}
}

// stop kills the server's process group and waits for it.
func (s *nodeServer) stop() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// restart stops the server and starts it again at the same URL: it has
// forgotten every session.
func (s *nodeServer) restart() {
	s.stop()
	s.start()
}

func isTrue(b *bool) bool { return b != nil && *b }

func names(tools []Tool) []string {
	var out []string
	for _, t := range tools {
		out = append(out, t.Name)
	}
	return out
}

func toolNamed(tools []Tool, name string) (Tool, bool) {
	i := slices.IndexFunc(tools, func(t Tool) bool { return t.Name == name })
	if i < 0 {
		return Tool{}, false
	}
	return tools[i], true
}

// everythingOver returns the config of server-everything over transport
// (stdio, sse or http), started for the test when remote.
func everythingOver(t *testing.T, transport string) Config {
	switch transport {
	case "sse":
		return Config{Name: "everything", Type: "sse", URL: startEverythingHTTP(t, "sse").URL()}
	case "http":
		return Config{Name: "everything", URL: startEverythingHTTP(t, "streamableHttp").URL()}
	}
	return everythingStdio(t)
}

func TestEverything(t *testing.T) {
	for _, transport := range []string{"stdio", "sse", "http"} {
		t.Run(transport, func(t *testing.T) {
			cfg := everythingOver(t, transport)
			cfg.ToolTimeouts = map[string]time.Duration{"trigger-long-running-operation": 300 * time.Millisecond}
			start := time.Now()
			s := supervise(t, cfg, nil)
			started(t, s)
			t.Logf("connected over %s in %s", transport, time.Since(start).Round(time.Millisecond))
			exerciseEverything(t, s)
		})
	}
}

func TestEverythingTaskOverHTTP(t *testing.T) {
	// simulate-research-query can only run as a task: over streamable
	// HTTP it is created, followed through its stages and its report
	// fetched. (Over stdio: tools.TestFleetEverythingTasks.)
	s := supervise(t, everythingOver(t, "http"), nil)
	started(t, s)
	waitFor(t, 10*time.Second, "simulate-research-query to be listed", func() bool {
		_, ok := toolNamed(s.Tools(), "simulate-research-query")
		return ok
	})
	if tool, _ := toolNamed(s.Tools(), "simulate-research-query"); tool.TaskSupport != "required" || !tool.TaskCalls {
		t.Fatalf("simulate-research-query: %+v, want a task-only tool of a server that takes tasks", tool)
	}
	res, err := s.CallTool(t.Context(), "simulate-research-query", json.RawMessage(`{"topic":"tides"}`))
	if err != nil {
		t.Fatalf("CallTool: %v", err)
	}
	if res.Task == nil || res.Task.ID == "" || res.Task.Status != "completed" || res.IsError || !strings.Contains(res.Text, "# Research Report: tides") {
		t.Errorf("got task %+v, result %.200q (error %v); want a completed task with its report", res.Task, res.Text, res.IsError)
	}
}

// exerciseEverything lists and calls the everything server's tools.
func exerciseEverything(t *testing.T, s *Supervisor) {
	t.Helper()
	tools := s.Tools()
	for _, want := range []string{"echo", "get-sum", "get-tiny-image", "get-structured-content", "trigger-long-running-operation"} {
		if _, ok := toolNamed(tools, want); !ok {
			t.Errorf("tools %v lack %s", names(tools), want)
		}
	}
	if echo, _ := toolNamed(tools, "echo"); !isTrue(echo.Annotations.ReadOnly) || !strings.Contains(string(echo.InputSchema), `"$schema"`) {
		t.Errorf("echo: annotations %+v, schema %s; want read-only and the schema as sent", echo.Annotations, echo.InputSchema)
	}

	call := func(tool string, args any) (*Result, error) {
		t.Helper()
		b, _ := json.Marshal(args)
		return s.CallTool(t.Context(), tool, b)
	}
	if res, err := call("echo", map[string]any{"message": "hello"}); err != nil || res.Text != "Echo: hello" || res.IsError {
		t.Errorf("echo: got %+v, %v", res, err)
	}
	if res, err := call("get-sum", map[string]any{"a": 2, "b": 3.5}); err != nil || !strings.Contains(res.Text, "5.5") {
		t.Errorf("get-sum: got %+v, %v", res, err)
	}
	if res, err := call("get-tiny-image", nil); err != nil || !regexp.MustCompile(`\[image image/png, \d+ bytes\]`).MatchString(res.Text) ||
		len(res.Parts) != 1 || !bytes.HasPrefix(res.Parts[0].Data, []byte("\x89PNG\r\n\x1a\n")) || res.Parts[0].MIMEType != "image/png" {
		t.Errorf("get-tiny-image: got %+v, %v; want an image summary and the PNG's bytes", res, err)
	}

	// Resources: links name the tool that reads them; a blob of a text
	// type is read as text.
	if !s.HasResources() {
		t.Error("HasResources: false, want true (everything declares resources)")
	}
	links, err := call("get-resource-links", map[string]any{"count": 2})
	blobURI := "demo://resource/dynamic/blob/1"
	if err != nil || !strings.Contains(links.Text, fmt.Sprintf(`read it with read_resource(server="everything", uri=%q)`, blobURI)) {
		t.Errorf("get-resource-links: got %+v, %v; want links with the read_resource hint", links, err)
	}
	if res, err := s.ReadResource(t.Context(), blobURI); err != nil || !strings.Contains(res.Text, "Resource 1: This is a base64 blob") || len(res.Parts) != 0 {
		t.Errorf("read %s: got %+v, %v; want the blob's text", blobURI, res, err)
	}
	if res, err := s.ReadResource(t.Context(), "demo://resource/nowhere"); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("read an unknown resource: got %+v, %v; want ErrInvalid", res, err)
	}
	if res, err := call("get-structured-content", map[string]any{"location": "Chicago"}); err != nil || !json.Valid(res.Structured) || !strings.Contains(string(res.Structured), "temperature") {
		t.Errorf("get-structured-content: got %+v, %v; want structured content", res, err)
	}
	// Tool errors are results, for the model.
	if res, err := call("get-sum", map[string]any{"a": "two", "b": 3}); err != nil || !res.IsError || !strings.Contains(res.Text, "Input validation error") {
		t.Errorf("get-sum with a string: got %+v, %v; want an error result", res, err)
	}
	if res, err := call("no-such-tool", nil); err != nil || !res.IsError || !strings.Contains(res.Text, "not found") {
		t.Errorf("unknown tool: got %+v, %v; want an error result", res, err)
	}

	// The tool's own timeout (300ms) cuts a 5s operation short; the
	// connection is fine afterwards.
	start := time.Now()
	_, err = call("trigger-long-running-operation", map[string]any{"duration": 5, "steps": 5})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, switchboard.ErrUpstreamTimeout) {
		t.Errorf("long operation: got %v, want a timeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the long operation took %s with a 300ms timeout", took)
	}
	if res, err := call("echo", map[string]any{"message": "after"}); err != nil || res.Text != "Echo: after" {
		t.Errorf("echo after the timeout: got %+v, %v", res, err)
	}
}

// recorded runs cfg's server with what we send it copied to a file, by a
// tee process in its group; the server's process replaces bash, so the
// Conn's PID is the server's own. It returns the config and a function that
// reads the messages sent so far.
func recorded(t *testing.T, cfg Config) (Config, func() []sentMessage) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	log := filepath.Join(t.TempDir(), "sent.jsonl")
	cfg.Args = append([]string{"-c", `log=$0; shift; exec "$@" < <(exec tee "$log")`, log, cfg.Command}, cfg.Args...)
	cfg.Command = "bash"
	return cfg, func() []sentMessage {
		b, _ := os.ReadFile(log)
		var out []sentMessage
		for _, line := range strings.Split(string(b), "\n") {
			var msg sentMessage
			if json.Unmarshal([]byte(line), &msg) == nil {
				out = append(out, msg)
			}
		}
		return out
	}
}

// sentMessage is a JSON-RPC message we sent.
type sentMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		Name      string          `json:"name"`
		RequestID json.RawMessage `json:"requestId"`
	} `json:"params"`
}

// sentCall returns the id of the last tools/call of tool in msgs.
func sentCall(msgs []sentMessage, tool string) string {
	id := ""
	for _, m := range msgs {
		if m.Method == "tools/call" && m.Params.Name == tool {
			id = string(m.ID)
		}
	}
	return id
}

func TestEverythingStdioCancellation(t *testing.T) {
	// The timed-out call must be followed by notifications/cancelled naming
	// it, on the server's stdin.
	cfg, sent := recorded(t, everythingStdio(t))
	cfg.ToolTimeouts = map[string]time.Duration{"trigger-long-running-operation": 300 * time.Millisecond}
	s := supervise(t, cfg, nil)
	started(t, s)
	_, err := s.CallTool(t.Context(), "trigger-long-running-operation", json.RawMessage(`{"duration":5,"steps":5}`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a timeout", err)
	}
	waitFor(t, 5*time.Second, "notifications/cancelled to reach the server", func() bool {
		msgs := sent()
		id := sentCall(msgs, "trigger-long-running-operation")
		return id != "" && slices.ContainsFunc(msgs, func(m sentMessage) bool {
			return m.Method == "notifications/cancelled" && string(m.Params.RequestID) == id
		})
	})
}

func TestEverythingKilledMidCall(t *testing.T) {
	cfg, sent := recorded(t, everythingStdio(t))
	opts, changed := changes()
	s := supervise(t, cfg, opts)
	started(t, s)
	first := s.Status()
	errc := make(chan error, 1)
	go func() {
		_, err := s.CallTool(t.Context(), "trigger-long-running-operation", json.RawMessage(`{"duration":30,"steps":3}`))
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the call to reach the server", func() bool {
		return sentCall(sent(), "trigger-long-running-operation") != ""
	})
	killed := time.Now()
	syscall.Kill(first.PID, syscall.SIGKILL)
	select {
	case err := <-errc:
		if !errors.Is(err, switchboard.ErrUnavailable) {
			t.Errorf("the call in flight: got %v, want ErrUnavailable", err)
		}
		took := time.Since(killed)
		t.Logf("the call in flight failed %s after kill -9: %v", took.Round(time.Millisecond), err)
		if took > time.Second {
			t.Errorf("the call in flight failed %s after the kill, want within 1s", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call in flight did not fail after the kill")
	}
	st := waitState(t, s, changed, 20*time.Second, "the server to be ready again", func(st Status) bool {
		return st.State == switchboard.ServerReady && st.PID != first.PID
	})
	t.Logf("everything (node) ready again %s after kill -9", time.Since(killed).Round(time.Millisecond))
	if res, err := s.CallTool(t.Context(), "echo", json.RawMessage(`{"message":"back"}`)); err != nil || res.Text != "Echo: back" {
		t.Errorf("call after the restart: got %+v, %v", res, err)
	}
	if st.Restarts != 1 || !processGone(first.PID) || groupAlive(first.PID) {
		t.Errorf("after the restart: %d restarts, old process gone %v, group alive %v", st.Restarts, processGone(first.PID), groupAlive(first.PID))
	}
}

func TestEverythingRemoteRestart(t *testing.T) {
	for _, transport := range []string{"sse", "streamableHttp"} {
		t.Run(transport, func(t *testing.T) {
			srv := startEverythingHTTP(t, transport)
			typ := "http"
			if transport == "sse" {
				typ = "sse"
			}
			// Retry often and without calling it a crash loop: a node
			// restart slowed by load can take seconds, and a crash-looping
			// server's calls fail at once, which is not what this tests.
			opts, changed := changes()
			opts.RestartBackoff, opts.MaxRestartBackoff, opts.CrashLoopAfter = 50*time.Millisecond, 200*time.Millisecond, 1000
			s := supervise(t, Config{Name: "everything", Type: typ, URL: srv.URL()}, opts)
			started(t, s)
			if res, err := s.CallTool(t.Context(), "echo", json.RawMessage(`{"message":"one"}`)); err != nil || res.Text != "Echo: one" {
				t.Fatalf("first call: got %+v, %v", res, err)
			}
			srv.restart()
			// The user does not notice: the second call succeeds.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			res, err := s.CallTool(ctx, "echo", json.RawMessage(`{"message":"two"}`))
			if err != nil || res.Text != "Echo: two" {
				t.Fatalf("call after the server restarted: got %+v, %v", res, err)
			}
			t.Logf("call after the restart took %s", time.Since(start).Round(time.Millisecond))
			st := waitState(t, s, changed, 5*time.Second, "ready", func(st Status) bool { return st.State == switchboard.ServerReady })
			if st.Restarts < 1 {
				t.Errorf("status %+v: want a reconnection counted", st)
			}
			t.Logf("status after the restart: restarts %d, last error %q", st.Restarts, st.LastError)
		})
	}
}

func TestFilesystem(t *testing.T) {
	bin := nodetest.Bin(t, "mcp-server-filesystem")
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := supervise(t, Config{Name: "fs", Command: bin, Args: []string{root}}, nil)
	started(t, s)
	tools := s.Tools()
	read, ok1 := toolNamed(tools, "read_text_file")
	write, ok2 := toolNamed(tools, "write_file")
	if !ok1 || !ok2 || !isTrue(read.Annotations.ReadOnly) || !isTrue(write.Annotations.Destructive) {
		t.Fatalf("tools %v: want read_text_file (read-only) and write_file (destructive)", names(tools))
	}
	call := func(tool string, args map[string]any) *Result {
		t.Helper()
		b, _ := json.Marshal(args)
		res, err := s.CallTool(t.Context(), tool, b)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return res
	}
	if res := call("read_text_file", map[string]any{"path": filepath.Join(root, "hello.txt")}); res.IsError || res.Text != "hello from a file\n" {
		t.Errorf("read_text_file: got %+v", res)
	}
	if res := call("write_file", map[string]any{"path": filepath.Join(root, "new.txt"), "content": "written"}); res.IsError {
		t.Errorf("write_file: got %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(root, "new.txt")); err != nil || string(b) != "written" {
		t.Errorf("the written file: %q, %v", b, err)
	}
	if res := call("list_directory", map[string]any{"path": root}); !strings.Contains(res.Text, "[FILE] hello.txt") || !strings.Contains(res.Text, "[FILE] new.txt") {
		t.Errorf("list_directory: got %+v", res)
	}
	if res := call("read_text_file", map[string]any{"path": "/etc/passwd"}); !res.IsError || !strings.Contains(res.Text, "Access denied") {
		t.Errorf("reading outside the root: got %+v, want an error result", res)
	}
}

// TestEverythingProgress: progress reports keep a long call alive past its
// timeout; without them it times out.
func TestEverythingProgress(t *testing.T) {
	for _, transport := range []string{"stdio", "sse", "http"} {
		t.Run(transport, func(t *testing.T) {
			cfg := everythingOver(t, transport)
			cfg.ToolTimeouts = map[string]time.Duration{"trigger-long-running-operation": 400 * time.Millisecond}
			s := supervise(t, cfg, nil)
			started(t, s)
			// 1.2s in 12 steps: a progress report every 100ms, well within 400ms.
			start := time.Now()
			var (
				mu      sync.Mutex
				reports []switchboard.ToolProgress
			)
			ctx := WithProgress(t.Context(), func(p switchboard.ToolProgress) {
				mu.Lock()
				reports = append(reports, p)
				mu.Unlock()
			})
			res, err := s.CallTool(ctx, "trigger-long-running-operation", json.RawMessage(`{"duration":1.2,"steps":12}`))
			if err != nil || !strings.Contains(res.Text, "completed") {
				t.Fatalf("a call that reports progress: got %+v, %v after %s; want it to finish", res, err, time.Since(start))
			}
			// The caller saw each report, in order: progress 1..12 of 12.
			mu.Lock()
			got := slices.Clone(reports)
			mu.Unlock()
			if len(got) != 12 {
				t.Fatalf("progress reports: got %d (%+v), want 12", len(got), got)
			}
			for i, p := range got {
				if p.Progress != float64(i+1) || p.Total != 12 {
					t.Errorf("report %d: got %+v, want progress %d of 12", i, p, i+1)
				}
			}
			t.Logf("a 1.2s call with a 400ms timeout finished in %s on its progress reports", time.Since(start).Round(time.Millisecond))
			// 2s in 2 steps: the first report comes after 1s, past the timeout.
			_, err = s.CallTool(t.Context(), "trigger-long-running-operation", json.RawMessage(`{"duration":2,"steps":2}`))
			if !errors.Is(err, switchboard.ErrUpstreamTimeout) || !strings.Contains(err.Error(), "progress") {
				t.Errorf("a call without progress in time: got %v, want a timeout", err)
			}
		})
	}
}
