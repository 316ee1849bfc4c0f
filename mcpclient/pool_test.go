//go:build unix

package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// envPool returns a Pool over the helper server whose sessions' env carry
// their key (the helper's env tool echoes it).
func envPool(t *testing.T, opts *PoolOptions) *Pool {
	t.Helper()
	p := NewPool("helper", func(key string) (Config, error) {
		return helperConfig("raw", "MCPCLIENT_TEST_SECRET", "key="+key), nil
	}, opts)
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// sessionPID calls the env tool on key's session and returns what it
// echoes of the key, and the session's process.
func sessionPID(t *testing.T, p *Pool, key string) (echoed string, pid int) {
	t.Helper()
	res, err := p.CallTool(t.Context(), key, SessionLabels{UserID: key}, "env", nil)
	if err != nil {
		t.Fatalf("call on %s: %v", key, err)
	}
	echoed, _, _ = strings.Cut(res.Text, "|")
	for _, s := range p.Sessions() {
		if s.Key == key {
			pid = s.PID
		}
	}
	return echoed, pid
}

// TestPoolSessionsAreTheirOwn: each key gets a process of its own,
// configured for it; calls of one key reuse its session.
func TestPoolSessionsAreTheirOwn(t *testing.T) {
	var started atomic.Int64
	p := envPool(t, &PoolOptions{OnEvent: func(_ string, ev SessionEvent) {
		if ev == SessionStarted {
			started.Add(1)
		}
	}})
	a, pidA := sessionPID(t, p, "alice")
	b, pidB := sessionPID(t, p, "bob")
	if a != "key=alice" || b != "key=bob" {
		t.Errorf("sessions echo %q and %q, want their own keys", a, b)
	}
	if pidA == 0 || pidA == pidB {
		t.Errorf("pids %d and %d, want two processes", pidA, pidB)
	}
	if _, again := sessionPID(t, p, "alice"); again != pidA {
		t.Errorf("alice's second call ran on %d, want her session %d", again, pidA)
	}
	if n := started.Load(); n != 2 {
		t.Errorf("started events: %d, want 2", n)
	}
}

// TestPoolEvictsAtTheCap: at MaxSessions the least recently used idle
// session is closed, its process group gone, for a new one.
func TestPoolEvictsAtTheCap(t *testing.T) {
	p := envPool(t, &PoolOptions{MaxSessions: 2})
	_, pidA := sessionPID(t, p, "a")
	_, pidB := sessionPID(t, p, "b")
	sessionPID(t, p, "a") // b is now the least recently used
	_, pidC := sessionPID(t, p, "c")
	if p.Len() != 2 {
		t.Errorf("%d sessions open, want 2", p.Len())
	}
	waitFor(t, 10*time.Second, "b's process to be gone", func() bool { return processGone(pidB) })
	if processGone(pidA) || processGone(pidC) {
		t.Errorf("a (%d) or c (%d) is gone", pidA, pidC)
	}
}

// TestPoolBusy: when every session is in use at the cap, a call waits
// within its context, then fails with ErrBusy; it gets the place a session
// frees.
func TestPoolBusy(t *testing.T) {
	p := envPool(t, &PoolOptions{MaxSessions: 1})
	sessionPID(t, p, "a")
	slowCtx, stopSlow := context.WithCancel(t.Context())
	slowDone := make(chan error, 1)
	go func() {
		_, err := p.CallTool(slowCtx, "a", SessionLabels{}, "slow", nil)
		slowDone <- err
	}()
	waitFor(t, 5*time.Second, "the slow call to be in flight", func() bool {
		s := p.Sessions()
		return len(s) == 1 && s[0].InFlight == 1
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err := p.CallTool(ctx, "b", SessionLabels{}, "env", nil)
	cancel()
	if !errors.Is(err, ErrBusy) || !errors.Is(err, switchboard.ErrUnavailable) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := p.CallTool(t.Context(), "b", SessionLabels{}, "env", nil)
		waiting <- err
	}()
	stopSlow()
	<-slowDone
	select {
	case err := <-waiting:
		if err != nil {
			t.Fatalf("the waiting call: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting call did not get the freed place")
	}
}

// TestPoolIdleTimeout: a session unused for IdleTimeout is closed, its
// process gone; the next call starts it again.
func TestPoolIdleTimeout(t *testing.T) {
	p := envPool(t, &PoolOptions{IdleTimeout: 300 * time.Millisecond})
	_, pid := sessionPID(t, p, "a")
	waitFor(t, 10*time.Second, "the idle session to close", func() bool { return p.Len() == 0 })
	waitFor(t, 5*time.Second, "its process to be gone", func() bool { return processGone(pid) })
	if _, again := sessionPID(t, p, "a"); again == pid || again == 0 {
		t.Errorf("the session came back on pid %d (was %d)", again, pid)
	}
}

// TestPoolCrashIsolation: one session's process killed with SIGKILL is
// restarted with a new generation, while another session keeps answering
// on its own.
func TestPoolCrashIsolation(t *testing.T) {
	var crashed sync.WaitGroup
	crashed.Add(1)
	var once sync.Once
	p := envPool(t, &PoolOptions{OnEvent: func(_ string, ev SessionEvent) {
		if ev == SessionCrashed {
			once.Do(crashed.Done)
		}
	}})
	first, err := p.CallTool(t.Context(), "a", SessionLabels{}, "env", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, pidA := sessionPID(t, p, "a")
	_, pidB := sessionPID(t, p, "b")
	if err := syscall.Kill(pidA, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	crashed.Wait()
	for range 20 {
		if _, err := p.CallTool(t.Context(), "b", SessionLabels{}, "env", nil); err != nil {
			t.Fatalf("b while a restarts: %v", err)
		}
	}
	res, err := p.CallTool(t.Context(), "a", SessionLabels{}, "env", nil)
	if err != nil {
		t.Fatalf("a after its restart: %v", err)
	}
	if res.Generation == first.Generation || res.Generation == 0 {
		t.Errorf("generation %d after a restart, was %d", res.Generation, first.Generation)
	}
	if _, again := sessionPID(t, p, "b"); again != pidB {
		t.Errorf("b moved from %d to %d", pidB, again)
	}
}

// TestPoolConfigError: a session whose Config cannot be made fails its
// call with that error and opens nothing.
func TestPoolConfigError(t *testing.T) {
	p := NewPool("x", func(key string) (Config, error) {
		return Config{}, fmt.Errorf("no config for %s: %w", key, switchboard.ErrInvalid)
	}, nil)
	defer p.Close()
	_, err := p.CallTool(t.Context(), "k", SessionLabels{}, "t", json.RawMessage(`{}`))
	if !errors.Is(err, switchboard.ErrInvalid) || p.Len() != 0 {
		t.Errorf("got %v with %d sessions", err, p.Len())
	}
}
