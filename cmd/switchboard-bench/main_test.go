package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the roles of the bench's children: the bench re-executes
// its own binary, here the test binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "-role=") {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchRuns runs the bench briefly on the memory store and checks its
// table: every turn completed, with three commits each.
func TestBenchRuns(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-store", "memory", "-scenarios", "open,closed,long", "-duration", "1s", "-warmup", "200ms",
		"-rate", "20", "-concurrency", "4", "-long", "40"}, &out, io.Discard)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	var rows []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "| memory |") {
			rows = append(rows, line)
		}
	}
	if len(rows) != 3 {
		t.Fatalf("got %d rows for the memory store, want 3:\n%s", len(rows), out.String())
	}
	for _, r := range rows {
		cells := strings.Split(r, " | ")
		if errs := cells[3]; errs != "0" {
			t.Errorf("row %q: %s errors, want 0", r, errs)
		}
		if !strings.Contains(r, " | 3.00 | ") {
			t.Errorf("row %q: want 3.00 commits per turn", r)
		}
	}
}
