// Command tasks-mcp is an example MCP server: a per-user to-do list with the
// tools add_task, list_tasks, complete_task, delete_task and update_task.
// Every tool takes the user_id of the user whose tasks it acts on.
//
// It speaks MCP over stdio by default, or streamable HTTP at /mcp with
// --http ADDR. Tasks live in memory, or in a JSON file with --data FILE.
// It logs to stderr only: in stdio mode stdout carries the protocol.
//
// Usage:
//
//	tasks-mcp [--data FILE] [--http ADDR]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

// shutdownTimeout bounds the graceful stop of the HTTP server.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tasks-mcp:", err)
		os.Exit(1)
	}
}

// run serves the task tools until stdin ends (stdio), or ctx is cancelled.
// A cancelled ctx is a clean exit, not an error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tasks-mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataFile := fs.String("data", "", "persist tasks as JSON in `FILE` (default: memory only)")
	httpAddr := fs.String("http", "", "serve streamable HTTP at http://`ADDR`/mcp instead of stdio")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	st, err := openStore(*dataFile)
	if err != nil {
		return err
	}
	s := newServer(st)
	if *httpAddr != "" {
		return serveHTTP(ctx, s, *httpAddr, logger)
	}

	logger.Info("serving MCP on stdio", "data", *dataFile)
	ss := server.NewStdioServer(s)
	ss.SetErrorLogger(log.New(stderr, "tasks-mcp: ", log.LstdFlags))
	err = ss.Listen(ctx, stdin, stdout)
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("serve stdio: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// serveHTTP serves s as streamable HTTP at /mcp on addr until ctx ends, then
// shuts down gracefully.
func serveHTTP(ctx context.Context, s *server.MCPServer, addr string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := server.NewStreamableHTTPServer(s, server.WithStreamableHTTPLogger(logger))
	mux := http.NewServeMux()
	mux.Handle("/mcp", hs)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	// Tests and operators read the address from this line (ADDR may end in :0).
	logger.Info("serving MCP over streamable HTTP", "url", "http://"+ln.Addr().String()+"/mcp")

	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Close the MCP sessions first: their long-lived GET streams would hold
	// http.Server.Shutdown until its deadline.
	hs.CloseSessions(sctx)
	err = srv.Shutdown(sctx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Info("stopped")
	return nil
}
