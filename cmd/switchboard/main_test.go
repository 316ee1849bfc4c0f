package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

var tasksBin string

func TestMain(m *testing.M) {
	if os.Getenv(hostileEnv) != "" {
		runHostile()
		os.Exit(0)
	}
	if os.Getenv(blockerEnv) != "" {
		runBlocker()
		os.Exit(0)
	}
	gin.SetMode(gin.TestMode)
	dir, err := os.MkdirTemp("", "switchboard-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tasksBin = filepath.Join(dir, "tasks-mcp")
	if out, err := exec.Command("go", "build", "-o", tasksBin, "../tasks-mcp").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build tasks-mcp: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// served is a `switchboard serve` running in this process.
type served struct {
	stdout, stderr *syncBuffer
	banner         string // the dev-mode banner, once printed
	base, token    string
	config         string // the config file, which a test may rewrite and reload
	stop           context.CancelFunc
	done           chan error
}

// startServe runs serve with the config text cfg in dev mode (no auth), and
// waits for its banner. cfg must say where to listen (127.0.0.1:0 for a
// free port): the default port may be taken by another process.
func startServe(t *testing.T, cfg string, env map[string]string) *served {
	t.Helper()
	if !regexp.MustCompile(`(?m)^listen:`).MatchString(cfg) {
		t.Fatal("startServe: the config has no listen: key; give listen: 127.0.0.1:0 (the default port 8080 may be taken)")
	}
	cfgFile := filepath.Join(t.TempDir(), "switchboard.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{stdout: &syncBuffer{}, stderr: &syncBuffer{}, stop: cancel, done: make(chan error, 1), config: cfgFile}
	go func() { s.done <- run(ctx, []string{"serve", "--config", cfgFile}, getenv, s.stdout, s.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	curlLine := regexp.MustCompile(`(?s)curl -s -X POST (http://[^/]+)/api/dev/chat .*?Bearer ([\w.-]+)'.*?\}\}'`)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-s.done:
			t.Fatalf("serve ended early: %v\nstderr:\n%s", err, s.stderr.String())
		default:
		}
		if m := curlLine.FindStringSubmatch(s.stdout.String()); m != nil {
			s.banner, s.base, s.token = m[0], m[1], m[2]
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner printed; stdout:\n%s\nstderr:\n%s", s.stdout.String(), s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shutdown cancels serve's context, as SIGTERM does, and waits for it.
func (s *served) shutdown(t *testing.T, within time.Duration) {
	t.Helper()
	s.stop()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		s.done <- nil // for the cleanup
	case <-time.After(within):
		t.Fatalf("serve did not stop within %s", within)
	}
}

// TestDevModeCurlWorksAsPrinted starts the real service in dev mode, runs the
// curl line it prints, and shuts it down.
func TestDevModeCurlWorksAsPrinted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"buy milk"}`}}},
		llmtest.Reply{Text: "Added buy milk."},
	))
	defer model.Close()
	s := startServe(t, fmt.Sprintf(`
listen: 0.0.0.0:0          # dev mode must force loopback
llm: {base_url: "${OPENAI_BASE_URL}", model: scripted}
mcpServers:
  tasks: {command: %q, inject: {user_id: user_id}}
`, tasksBin), map[string]string{"OPENAI_BASE_URL": model.URL})
	if !strings.HasPrefix(s.base, "http://127.0.0.1:") {
		t.Errorf("dev mode does not listen on loopback: %s", s.base)
	}
	// The login URL opens the chat page, signed in by the token in its
	// fragment (which browsers never send to the server).
	if !strings.Contains(s.stdout.String(), s.base+"/#token="+s.token) {
		t.Errorf("the banner has no login URL:\n%s", s.stdout.String())
	}
	if resp, err := http.Get(s.base + "/"); err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("the chat page: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	out, err := exec.Command("sh", "-c", s.banner).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"success":true`) || !strings.Contains(string(out), "Added buy milk.") || !strings.Contains(string(out), `"tool":"add_task"`) {
		t.Errorf("curl reply: got %s", out)
	}
	s.shutdown(t, 20*time.Second)
	if strings.Contains(s.stderr.String(), s.token) {
		t.Errorf("the token appears in the logs")
	}
	if !strings.Contains(s.stderr.String(), "in-memory store") {
		t.Errorf("no warning about the in-memory store in the logs")
	}
}

func TestSubcommands(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("auth: {jwt_secret: \"${S}\"}\nmcpServers:\n  tasks: {command: %q, inject: {user_id: user_id}}\n  gone: {command: /nonexistent/server, required: true}\n", tasksBin)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"S": strings.Repeat("s", 32)}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var out, errOut bytes.Buffer
	ctx := context.Background()

	if err := run(ctx, []string{"token", "--config", cfgFile, "--user", "alice"}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if strings.Count(strings.TrimSpace(out.String()), ".") != 2 {
		t.Errorf("token: got %q", out.String())
	}
	if err := run(ctx, []string{"token", "--config", cfgFile}, getenv, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--user") {
		t.Errorf("token without --user: got %v", err)
	}
	if err := run(ctx, []string{"token", "--user", "a", "--config", cfgFile}, func(string) (string, bool) { return "", false }, &out, &errOut); err == nil || !strings.Contains(err.Error(), "S is not set") {
		t.Errorf("token with a missing variable: got %v", err)
	}

	out.Reset()
	err := run(ctx, []string{"tools", "--config", cfgFile}, getenv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "required MCP server gone") {
		t.Errorf("tools with a required server down: got %v, want an error naming it", err)
	}
	// tasks-mcp over stdio: auto stays on the initialize it answers.
	for _, want := range []string{"tasks__add_task", "tasks__list_tasks", "read-only", "Not connected: gone",
		"SERVER  PROTOCOL", "tasks   2025-11-25  legacy  tasks-mcp", "tools"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tools output lacks %q:\n%s", want, out.String())
		}
	}

	if err := run(ctx, []string{"frobnicate"}, getenv, &out, &errOut); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: got %v", err)
	}
	if err := run(ctx, []string{"migrate", "--config", cfgFile}, getenv, &out, &errOut); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Errorf("migrate without a database: got %v", err)
	}
}

func TestMigrateCommand(t *testing.T) {
	url := storetest.EmptyPostgresURL(t)
	var out, errOut bytes.Buffer
	for i := 0; i < 2; i++ { // applying twice is a no-op
		if err := run(context.Background(), []string{"migrate", "--database-url", url}, func(string) (string, bool) { return "", false }, &out, &errOut); err != nil {
			t.Fatalf("migrate (run %d): %v\n%s", i+1, err, errOut.String())
		}
	}
	if !strings.Contains(errOut.String(), "migrations applied") {
		t.Errorf("migrate log: got %s", errOut.String())
	}
}

func TestHealthcheckCommand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := "listen: " + addr + "\nmcpServers: {}\n"
	var out, errOut bytes.Buffer
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	if err := run(context.Background(), []string{"healthcheck", "--config", cfgFile}, noEnv, &out, &errOut); err == nil {
		t.Error("healthcheck with nothing listening: got nil, want an error")
	}
	s := startServe(t, cfg, nil)
	if err := run(context.Background(), []string{"healthcheck", "--config", cfgFile}, noEnv, &out, &errOut); err != nil {
		t.Errorf("healthcheck of %s: %v", s.base, err)
	}
}

// TestServeFailsPromptlyWhenThePortIsTaken: a start-up error after the
// background jobs started (here the listen port in use) ends serve with
// that error at once, without waiting for a signal.
func TestServeFailsPromptlyWhenThePortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	// Retention is on by default: its job starts before the listener.
	if err := os.WriteFile(cfgFile, []byte("listen: "+taken.Addr().String()+"\nmcpServers: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfgFile}, func(string) (string, bool) { return "", false }, &stdout, &stderr)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "listen on "+taken.Addr().String()) {
			t.Errorf("serve with its port taken: got %v, want an error naming the address", err)
		}
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatalf("serve with its port taken did not return within 30s (it returned once cancelled)\nstderr:\n%s", stderr.String())
	}
}
