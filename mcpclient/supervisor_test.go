//go:build unix

package mcpclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-dev/switchboard"
)

// supervise starts a Supervisor and closes it when the test ends.
func supervise(t *testing.T, cfg Config, opts *Options) *Supervisor {
	t.Helper()
	s := Supervise(cfg, opts)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// started waits for s's first attempt and fails t unless it connected.
func started(t *testing.T, s *Supervisor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.Started(ctx); err != nil {
		t.Fatalf("Started: %v", err)
	}
}

// changes returns Options whose OnChange signals the returned channel.
func changes() (*Options, <-chan struct{}) {
	ch := make(chan struct{}, 1)
	return &Options{OnChange: func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}}, ch
}

// waitState waits, on s's change notifications, until cond holds for its
// status, and returns that status.
func waitState(t *testing.T, s *Supervisor, changed <-chan struct{}, d time.Duration, what string, cond func(Status) bool) Status {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		st := s.Status()
		if cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out after %s waiting for %s; status %+v", d, what, st)
		}
	}
}

func TestSupervisorRestartsKilledChild(t *testing.T) {
	// A grandchild shares the group: the restart must not leave it behind.
	cfg := helperConfig("raw")
	cfg.Command, cfg.Args = "sh", []string{"-c", `sleep 300 & echo "grandchild $!" >&2; exec "$0"`, os.Args[0]}
	opts, changed := changes()
	s := supervise(t, cfg, opts)
	started(t, s)
	first := s.Status()
	if first.State != switchboard.ServerReady || first.PID == 0 || first.Transport != "stdio" {
		t.Fatalf("status after start: %+v", first)
	}
	var grandchild int
	waitFor(t, 5*time.Second, "the grandchild's pid", func() bool {
		for _, l := range s.Status().Stderr {
			if m := regexp.MustCompile(`grandchild (\d+)`).FindStringSubmatch(l); m != nil {
				grandchild, _ = strconv.Atoi(m[1])
			}
		}
		return grandchild != 0
	})

	// kill -9 in the middle of a call.
	errc := make(chan error, 1)
	go func() {
		_, err := s.CallTool(t.Context(), "slow", nil)
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the slow call to arrive", func() bool {
		return slices.ContainsFunc(s.Status().Stderr, func(l string) bool { return strings.Contains(l, "helper: slow call") })
	})
	killed := time.Now()
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, switchboard.ErrUnavailable) || !strings.Contains(err.Error(), "killed") {
			t.Errorf("the call in flight: got %v, want ErrUnavailable saying the process was killed", err)
		}
		if took := time.Since(killed); took > time.Second {
			t.Errorf("the call in flight failed %s after the kill, want within 1s", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call in flight did not fail after the kill")
	}

	st := waitState(t, s, changed, 10*time.Second, "the server to be ready again", func(st Status) bool {
		return st.State == switchboard.ServerReady && st.PID != first.PID
	})
	t.Logf("restart latency after kill -9: %s", time.Since(killed).Round(time.Millisecond))
	if st.Restarts != 1 || !strings.Contains(st.LastError, "killed") {
		t.Errorf("status after the restart: restarts %d, last error %q; want 1 and the kill", st.Restarts, st.LastError)
	}
	if !slices.ContainsFunc(st.Stderr, func(l string) bool { return strings.HasPrefix(l, "switchboard: server process exited (killed") }) {
		t.Errorf("stderr tail %q: want our note of the exit", st.Stderr)
	}
	if res, err := s.CallTool(t.Context(), "echo", nil); err != nil || res.Text != "echo" {
		t.Errorf("call after the restart: got %+v, %v", res, err)
	}
	// The old group, the grandchild included, is gone, and nothing is a
	// zombie of ours.
	if !processGone(first.PID) || !processGone(grandchild) {
		t.Errorf("after the restart: child %d gone %v, grandchild %d gone %v; want both gone",
			first.PID, processGone(first.PID), grandchild, processGone(grandchild))
	}
	if groupAlive(first.PID) {
		t.Errorf("process group %d still has members", first.PID)
	}
}

func TestSupervisorWaitsForRestart(t *testing.T) {
	// A call made while the server is being restarted waits for it.
	opts, changed := changes()
	s := supervise(t, helperConfig("raw"), opts)
	started(t, s)
	pid := s.Status().PID
	syscall.Kill(pid, syscall.SIGKILL)
	waitState(t, s, changed, 5*time.Second, "the server to be seen down", func(st Status) bool { return st.PID != pid })
	res, err := s.CallTool(t.Context(), "echo", nil)
	if err != nil || res.Text != "echo" {
		t.Errorf("call during the restart: got %+v, %v, want the echo", res, err)
	}
}

func TestSupervisorResendsUnsentCall(t *testing.T) {
	// The child died while idle; the Conn knows (its exit was seen) but the
	// Supervisor has not replaced it yet: the call never reaches the dead
	// child, so it is sent on the next connection.
	c := dial(t, helperConfig("raw"), nil)
	syscall.Kill(c.PID(), syscall.SIGKILL)
	<-c.Done()
	_, err := c.CallTool(t.Context(), "echo", nil)
	if !neverSent(err) || !errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("call on a dead Conn: got %v, want an unsent ErrUnavailable", err)
	}

	s := supervise(t, helperConfig("raw"), nil)
	started(t, s)
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	// End the connection under the Supervisor: the call below finds it
	// ended (and is sent on the next one) or finds the next one already.
	conn.kill(withKind(switchboard.ErrUnavailable, errors.New("test: connection broken")))
	res, err := s.CallTool(t.Context(), "echo", nil)
	if err != nil || res.Text != "echo" {
		t.Errorf("call after the connection ended: got %+v, %v, want the echo", res, err)
	}
}

func TestSupervisorCrashLoop(t *testing.T) {
	tests := map[string]Config{
		"exits at start":         {Name: "boom", Command: "sh", Args: []string{"-c", "echo 'fatal: boom' >&2; exit 1"}},
		"exits after connecting": helperConfig("flaky"),
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			opts, changed := changes()
			opts.RestartBackoff, opts.CrashLoopAfter = 5*time.Millisecond, 3
			s := supervise(t, cfg, opts)
			start := time.Now()
			st := waitState(t, s, changed, 20*time.Second, "crashlooping", func(st Status) bool {
				return st.State == switchboard.ServerCrashLooping
			})
			t.Logf("crashlooping after %s, %d restarts; last error: %s", time.Since(start).Round(time.Millisecond), st.Restarts, st.LastError)
			if st.Restarts < 2 || st.LastError == "" || st.LastErrorAt.IsZero() {
				t.Errorf("status: %+v, want at least 2 restarts and the last error", st)
			}
			callStart := time.Now()
			_, err := s.CallTool(t.Context(), "echo", nil)
			if !errors.Is(err, switchboard.ErrUnavailable) || !strings.Contains(err.Error(), "crash-looping") {
				t.Errorf("call: got %v, want ErrUnavailable: crash-looping", err)
			}
			if took := time.Since(callStart); took > 100*time.Millisecond {
				t.Errorf("the call took %s to fail, want at once", took)
			}
		})
	}
}

func TestSupervisorBackoff(t *testing.T) {
	s := &Supervisor{opts: Options{RestartBackoff: 100 * time.Millisecond, MaxRestartBackoff: time.Second}}
	for _, tt := range []struct {
		failures int
		want     time.Duration
	}{{0, 0}, {1, 0}, {2, 100 * time.Millisecond}, {3, 200 * time.Millisecond}, {4, 400 * time.Millisecond}, {6, time.Second}, {80, time.Second}} {
		got := s.backoff(tt.failures)
		if got < tt.want*9/10 || got > tt.want*11/10 {
			t.Errorf("backoff(%d): got %s, want %s ±10%%", tt.failures, got, tt.want)
		}
	}
}

func TestSupervisorHealthyResetsBackoff(t *testing.T) {
	// With HealthyAfter tiny, each crash is a first failure: restarted at
	// once, never crashlooping.
	opts, changed := changes()
	opts.HealthyAfter, opts.CrashLoopAfter, opts.RestartBackoff = time.Nanosecond, 2, time.Hour
	s := supervise(t, helperConfig("raw"), opts)
	started(t, s)
	for i := range 3 {
		pid := s.Status().PID
		syscall.Kill(pid, syscall.SIGKILL)
		st := waitState(t, s, changed, 10*time.Second, "the restart", func(st Status) bool {
			return st.State == switchboard.ServerReady && st.PID != pid || st.State == switchboard.ServerCrashLooping
		})
		if st.State != switchboard.ServerReady || st.Restarts != i+1 {
			t.Fatalf("after kill %d: %+v, want ready with %d restarts", i+1, st, i+1)
		}
	}
}

func TestSupervisorHangingServer(t *testing.T) {
	cfg := helperConfig("mute")
	cfg.InitTimeout = 200 * time.Millisecond
	s := supervise(t, cfg, &Options{RestartBackoff: time.Hour})
	err := s.Started(t.Context())
	if !errors.Is(err, switchboard.ErrUpstreamTimeout) {
		t.Errorf("Started: got %v, want ErrUpstreamTimeout", err)
	}
	st := s.Status()
	if st.State != switchboard.ServerStarting || !strings.Contains(st.LastError, "no answer within 200ms") {
		t.Errorf("status: %+v, want starting with the timeout", st)
	}
	start := time.Now()
	if _, err := s.CallTool(t.Context(), "echo", nil); !errors.Is(err, switchboard.ErrUnavailable) || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("call: got %v, want ErrUnavailable: not connected", err)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("the call took %s to fail, want at once", took)
	}
	// Close ends the second attempt, running now, at once.
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if took := time.Since(start); took > closeTimeout {
		t.Errorf("Close took %s", took)
	}
}

func TestSupervisorToolsChanged(t *testing.T) {
	opts, changed := changes()
	s := supervise(t, helperConfig("raw"), opts)
	started(t, s)
	if _, err := s.CallTool(t.Context(), "changed", nil); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, changed, 5*time.Second, "the added tool", func(Status) bool {
		return slices.ContainsFunc(s.Tools(), func(tool Tool) bool { return tool.Name == "added" })
	})
}

func TestSupervisorRestartAndClose(t *testing.T) {
	opts, changed := changes()
	s := Supervise(helperConfig("raw"), opts)
	started(t, s)
	old := s.Status()

	// A call in flight when the configuration changes fails; the next one
	// runs on the new server.
	errc := make(chan error, 1)
	go func() {
		_, err := s.CallTool(t.Context(), "slow", nil)
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the slow call to arrive", func() bool {
		return slices.ContainsFunc(s.Status().Stderr, func(l string) bool { return strings.Contains(l, "helper: slow call") })
	})
	s.Restart(helperConfig("raw", "MCPCLIENT_TEST_SECRET", "second"))
	if err := <-errc; !errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("call in flight across Restart: got %v, want ErrUnavailable", err)
	}
	if !processGone(old.PID) || groupAlive(old.PID) {
		t.Errorf("the old process group %d is still there after Restart", old.PID)
	}
	res, err := s.CallTool(t.Context(), "env", nil)
	if err != nil || !strings.HasPrefix(res.Text, "second|") {
		t.Errorf("call after Restart: got %+v, %v, want the new environment", res, err)
	}
	st := waitState(t, s, changed, 5*time.Second, "ready", func(st Status) bool { return st.State == switchboard.ServerReady })
	if st.Restarts != 0 || st.PID == old.PID {
		t.Errorf("status after Restart: %+v", st)
	}

	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := s.Status(); st.State != switchboard.ServerStopped || st.PID != 0 || len(s.Tools()) != 0 {
		t.Errorf("status after Close: %+v, tools %d", st, len(s.Tools()))
	}
	if !processGone(st.PID) || groupAlive(st.PID) {
		t.Errorf("process group %d still there after Close", st.PID)
	}
	if _, err := s.CallTool(t.Context(), "echo", nil); !errors.Is(err, switchboard.ErrUnavailable) || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("call after Close: got %v, want ErrUnavailable: stopped", err)
	}
	s.Restart(helperConfig("raw")) // does nothing now
	if err := s.Close(); err != nil || s.Status().State != switchboard.ServerStopped {
		t.Errorf("second Close: %v, %s", err, s.Status().State)
	}
}

// restartableServer is an HTTP server whose MCP server can be replaced, as
// if the process behind the URL restarted and forgot every session.
type restartableServer struct {
	h    atomic.Pointer[http.Handler]
	make func() http.Handler
}

func (r *restartableServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	(*r.h.Load()).ServeHTTP(w, req)
}

func (r *restartableServer) restart() {
	h := r.make()
	r.h.Store(&h)
}

// tsStyleUnknownSession answers a request for an unknown session as the
// TypeScript SDK's example server does: 400, not the 404 of the spec.
func tsStyleUnknownSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code == http.StatusNotFound {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}`))
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

func TestSupervisorSessionLost(t *testing.T) {
	for name, wrap := range map[string]func(http.Handler) http.Handler{
		"404 as the spec says":        func(h http.Handler) http.Handler { return h },
		"400 like the TypeScript SDK": tsStyleUnknownSession,
	} {
		t.Run(name, func(t *testing.T) {
			var calls atomic.Int32
			rs := &restartableServer{make: func() http.Handler {
				s := newEchoServer()
				s.AddTool(mcp.NewTool("count"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return mcp.NewToolResultText(fmt.Sprint(calls.Add(1))), nil
				})
				return wrap(server.NewStreamableHTTPServer(s, server.WithStateful(true)))
			}}
			rs.restart()
			ts := httptest.NewServer(rs)
			t.Cleanup(ts.Close)
			opts, changed := changes()
			// Sessions are the legacy era's (the modern one has none).
			s := supervise(t, Config{Name: "remote", URL: ts.URL + "/mcp", Protocol: ProtocolLegacy}, opts)
			started(t, s)
			if _, err := s.CallTool(t.Context(), "count", nil); err != nil {
				t.Fatal(err)
			}
			rs.restart()
			// The new server does not know our session: the call never
			// ran, so it is sent again on a new session, once.
			res, err := s.CallTool(t.Context(), "count", nil)
			if err != nil || res.Text != "2" {
				t.Errorf("call after the server restarted: got %+v, %v, want it run once more (2)", res, err)
			}
			st := waitState(t, s, changed, 5*time.Second, "ready", func(st Status) bool { return st.State == switchboard.ServerReady })
			if st.Restarts != 1 || !strings.Contains(st.LastError, "ended our session") {
				t.Errorf("status: %+v, want 1 restart after the lost session", st)
			}
		})
	}
}

func TestToolTimeouts(t *testing.T) {
	cfg := helperConfig("raw")
	cfg.Timeout = time.Minute
	cfg.ToolTimeouts = map[string]time.Duration{"slow": 100 * time.Millisecond}
	c := dial(t, cfg, nil)
	start := time.Now()
	_, err := c.CallTool(t.Context(), "slow", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "within 100ms") {
		t.Errorf("got %v, want the tool's own 100ms timeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the call took %s", took)
	}
	for _, cfg := range []Config{{Name: "x"}, {Name: "x", Command: "true", ToolTimeouts: map[string]time.Duration{"t": -1}}} {
		if err := cfg.Validate(); !errors.Is(err, switchboard.ErrInvalid) {
			t.Errorf("Validate(%+v): got %v, want ErrInvalid", cfg, err)
		}
	}
	if err := cfg.Validate(); err != nil || cfg.Transport() != "stdio" {
		t.Errorf("Validate: %v, transport %q", err, cfg.Transport())
	}
}

func TestLineRingMarks(t *testing.T) {
	r := newLineRing(4)
	r.Write([]byte("a\nb\npart"))
	r.Note("switchboard: restarting")
	mark := r.Mark()
	if got := r.LinesSince(mark); len(got) != 0 {
		t.Errorf("LinesSince a fresh mark: got %q, want none", got)
	}
	r.Write([]byte("c\nd"))
	if diff := cmp.Diff([]string{"c", "d"}, r.LinesSince(mark)); diff != "" {
		t.Errorf("LinesSince (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"part", "switchboard: restarting", "c", "d"}, r.Lines()); diff != "" {
		t.Errorf("Lines (-want +got):\n%s", diff)
	}
	r.Write([]byte("\ne\nf\ng\nh\n"))
	if diff := cmp.Diff([]string{"e", "f", "g", "h"}, r.LinesSince(mark)); diff != "" {
		t.Errorf("LinesSince past the ring's size (-want +got):\n%s", diff)
	}
}
