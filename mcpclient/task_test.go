//go:build unix

package mcpclient

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
)

func TestCallAsTask(t *testing.T) {
	cfg := helperConfig("mcptasks")
	cfg.ToolTimeouts = map[string]time.Duration{"stuck": 300 * time.Millisecond}
	c := dial(t, cfg, nil)

	t.Run("to completion", func(t *testing.T) {
		res, err := c.CallTool(t.Context(), "research", []byte(`{"steps":3,"poll_ms":20}`))
		if err != nil {
			t.Fatalf("CallTool: %v", err)
		}
		if diff := cmp.Diff(&Task{ID: res.Task.ID, Status: "completed", StatusMessage: "done"}, res.Task); diff != "" || res.Text != "research done after 3 polls" || res.IsError {
			t.Errorf("got %q (error %v), task diff (-want +got):\n%s", res.Text, res.IsError, diff)
		}
		// Asked for as a task, with a ttl and the progress token the
		// server reports progress with.
		if !hasTaskLine(c.Stderr(), "task created "+res.Task.ID, `task={"ttl":`, "token=switchboard-") {
			t.Errorf("stderr %q: no task created with a ttl and a progress token", c.Stderr())
		}
	})

	t.Run("optional runs plain", func(t *testing.T) {
		res, err := c.CallTool(t.Context(), "maybe", nil)
		if err != nil || res.Text != "plain" || res.Task != nil {
			t.Errorf("got %+v, %v; want the plain result, no task", res, err)
		}
	})

	t.Run("failed", func(t *testing.T) {
		res, err := c.CallTool(t.Context(), "broken", nil)
		if err != nil {
			t.Fatalf("CallTool: %v", err)
		}
		if !res.IsError || res.Text != "the task failed: disk full" || res.Task.Status != "failed" {
			t.Errorf("got %+v (task %+v), want an error result saying why, task failed", res, res.Task)
		}
	})

	t.Run("input required: the result is fetched", func(t *testing.T) {
		res, err := c.CallTool(t.Context(), "asks", nil)
		if err != nil || res.Text != "answered by default" || res.Task.Status != "completed" {
			t.Errorf("got %+v, %v", res, err)
		}
	})

	t.Run("a status notification ends the wait", func(t *testing.T) {
		// Its pollInterval is an hour: without the notification the call
		// would poll only after half its timeout (30s).
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		res, err := c.CallTool(ctx, "pushy", nil)
		if err != nil || res.Task.Status != "completed" || res.Task.StatusMessage != "pushed" {
			t.Fatalf("got %+v, %v", res, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("took %s, want the notification to end it", took)
		}
	})

	t.Run("status changes extend the timeout", func(t *testing.T) {
		cfg := helperConfig("mcptasks")
		cfg.ToolTimeouts = map[string]time.Duration{"research": 300 * time.Millisecond}
		c := dial(t, cfg, nil)
		// 12 polls 50ms apart, each a new status: about 600ms in all,
		// twice the timeout, which each status change restarts.
		start := time.Now()
		res, err := c.CallTool(t.Context(), "research", []byte(`{"steps":12,"poll_ms":50}`))
		if err != nil {
			t.Fatalf("CallTool: %v", err)
		}
		if took := time.Since(start); res.Task.Status != "completed" || took < 300*time.Millisecond {
			t.Errorf("got %+v after %s, want completed after more than the timeout", res.Task, took)
		}
	})

	t.Run("progress extends the timeout, up to ProgressCap times", func(t *testing.T) {
		// The status never changes, but progress comes with each poll
		// (the call's progress token stays valid for its task's life):
		// the call goes on until 10 times its 300ms timeout.
		start := time.Now()
		_, err := c.CallTool(t.Context(), "stuck", []byte(`{"poll_ms":50,"progress":true}`))
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) || took < time.Second {
			t.Errorf("got %v after %s, want a timeout after about 3s", err, took)
		}
		if task, _ := TaskOf(err); task.Status != "cancelled" {
			t.Errorf("task of the error: %+v, want it cancelled", task)
		}
	})

	t.Run("timed out: cancelled at the server", func(t *testing.T) {
		start := time.Now()
		_, err := c.CallTool(t.Context(), "stuck", nil)
		if !errors.Is(err, switchboard.ErrUpstreamTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want a timeout", err)
		}
		task, ok := TaskOf(err)
		if !ok || task.Status != "cancelled" {
			t.Errorf("task of the error: %+v, %v; want cancelled, as tasks/cancel answered", task, ok)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("took %s; the polls of an unchanged status must not extend the 300ms timeout", took)
		}
		// The server answered tasks/cancel; its stderr line follows.
		waitFor(t, 5*time.Second, "tasks/cancel at the server", func() bool { return hasTaskLine(c.Stderr(), "tasks/cancel "+task.ID) })
	})

	t.Run("cancelled with its context", func(t *testing.T) {
		c := dial(t, helperConfig("mcptasks"), nil)
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := c.CallTool(ctx, "stuck", []byte(`{"poll_ms":20}`))
			errc <- err
		}()
		var id string
		waitFor(t, 5*time.Second, "the task to be polled", func() bool {
			m := stderrHas(c, regexp.MustCompile(`helper: tasks/get (\S+) 2$`))
			if m != nil {
				id = m[1]
			}
			return m != nil
		})
		cancel()
		var err error
		select {
		case err = <-errc:
		case <-time.After(5 * time.Second):
			t.Fatal("CallTool did not return after its ctx was cancelled")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
		if task, _ := TaskOf(err); task.ID != id || task.Status != "cancelled" {
			t.Errorf("task of the error: %+v, want %s cancelled", task, id)
		}
		waitFor(t, 5*time.Second, "tasks/cancel at the server", func() bool { return hasTaskLine(c.Stderr(), "tasks/cancel "+id) })
		// A poll (tasks/get) in flight may be cancelled so; the task's own
		// request never is.
		if hasTaskLine(c.Stderr(), "notifications/cancelled of tools/call") {
			t.Errorf("stderr %q: a task is cancelled with tasks/cancel only", c.Stderr())
		}
	})
}

func TestCallAsTaskCancelledBeforeItIsCreated(t *testing.T) {
	// The call's context ends while the server creates the task: the call
	// waits on a little (createGrace) for the task, to cancel it, since a
	// task is cancelled with tasks/cancel and never notifications/cancelled.
	c := dial(t, helperConfig("mcptasks"), nil)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.CallTool(ctx, "late", nil)
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the call to arrive", func() bool { return hasTaskLine(c.Stderr(), "late call arrived") })
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if task, _ := TaskOf(err); task.ID != "task-1" || task.Status != "cancelled" {
		t.Errorf("task of the error: %+v, want task-1 cancelled", task)
	}
	waitFor(t, 5*time.Second, "tasks/cancel at the server", func() bool { return hasTaskLine(c.Stderr(), "tasks/cancel task-1") })
	if hasTaskLine(c.Stderr(), "notifications/cancelled of tools/call") {
		t.Errorf("stderr %q: a task is cancelled with tasks/cancel only", c.Stderr())
	}
}

func TestCallAsTaskWithoutTheCapability(t *testing.T) {
	// A server that does not declare tasks.requests.tools.call: no tool of
	// its is called as a task, whatever it says, so a required one fails
	// as the server rejects it.
	c := dial(t, helperConfig("mcptasks-nocap"), nil)
	for _, tool := range c.Tools() {
		if tool.TaskCalls {
			t.Errorf("%s: TaskCalls set, want unset", tool.Name)
		}
	}
	_, err := c.CallTool(t.Context(), "research", nil)
	if !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("got %v, want the server's rejection", err)
	}
	if _, ok := TaskOf(err); ok {
		t.Errorf("a call not run as a task has a task: %v", err)
	}
}

func TestIcons(t *testing.T) {
	c := dial(t, helperConfig("mcptasks"), nil)
	want := []switchboard.Icon{
		{Src: "https://example.com/icon.png", MIMEType: "image/png", Sizes: []string{"48x48"}, Theme: "dark"},
		{Src: "data:image/png;base64,iVBORw0KGgo="},
	}
	if diff := cmp.Diff(want, c.Icons()); diff != "" {
		t.Errorf("server icons (-want +got):\n%s", diff)
	}
	var got []switchboard.Icon
	for _, tool := range c.Tools() {
		if tool.Name == "research" {
			got = tool.Icons
		}
	}
	if diff := cmp.Diff([]switchboard.Icon{{Src: "data:image/webp;base64,UklGRg=="}}, got); diff != "" {
		t.Errorf("research's icons (-want +got):\n%s", diff)
	}
}

func TestSafeIcons(t *testing.T) {
	long := "data:image/png;base64," + string(make([]byte, maxIconData))
	for src, want := range map[string]bool{
		"https://example.com/i.png":               true,
		"HTTPS://example.com/i.png":               true,
		"https://example.com/i.SVG":               false,
		"https://user:pw@example.com/i.png":       false,
		"https:///i.png":                          false,
		"http://example.com/i.png":                false,
		"javascript:alert(1)":                     false,
		"data:image/jpeg;base64,/9j/4AAQ":         true,
		"data:image/gif;base64,R0lGOD==":          true,
		"data:image/svg+xml;base64,PHN2Zz4=":      false,
		"data:text/html;base64,PGI+":              false,
		"data:image/png,<svg onload=alert(1)>":    false,
		"data:image/png;base64,iVBOR\"onerror=x":  false,
		long:                                      false,
		"//example.com/i.png":                     false,
		"file:///etc/passwd":                      false,
		"https://example.com/i.png\" onerror=\"x": true, // a URL like any other: never markup
	} {
		if got := safeIconSrc(src); got != want {
			t.Errorf("safeIconSrc(%.60q): got %v, want %v", src, got, want)
		}
	}
}
