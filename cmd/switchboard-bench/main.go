// Command switchboard-bench measures what Switchboard itself costs per turn:
// everything but the model and the tools.
//
// It runs the service as a child process (this binary, re-executed in its
// service role, wired from the same packages as cmd/switchboard), a scripted
// OpenAI-compatible model server (llm/llmtest, in this process) and an MCP
// echo server (over stdio: this binary again, a child of the service; or
// over streamable HTTP, in this process). It then drives chat turns at a
// fixed arrival rate (open loop: latency counts from each turn's scheduled
// send time, so a slow service cannot hide its latency by slowing the load
// down) and at fixed concurrency (closed loop), and prints one table:
// turns/s, latency, the service's overhead (turn wall time minus model and
// tool time, from its Server-Timing header), store round trips and commits
// per turn, the service's peak RSS and its goroutines before and after.
//
// Usage:
//
//	go run ./cmd/switchboard-bench [flags]
//
// Every child dies with the bench: each runs in its own process group, is
// signalled when the bench ends, and is killed by the kernel if the bench
// itself is killed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "switchboard-bench:", err)
		os.Exit(1)
	}
}

// Roles of this binary: the bench itself, or one of the processes it runs.
const (
	roleService   = "service"    // the service under test
	roleEchoStdio = "echo-stdio" // the MCP echo server over stdio
)

// run dispatches on the role: a child started by the bench is told its role
// in its first argument.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "-role=" + roleService:
			return runService(ctx, args[1:], stdout, stderr)
		case "-role=" + roleEchoStdio:
			return runEchoStdio(ctx)
		}
	}
	return runBench(ctx, args, stdout, stderr)
}
