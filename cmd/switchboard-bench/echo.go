package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// echoTool is the one tool of the echo server, as the model calls it: the
// server is configured as "echo", so its tool is exposed as echo__echo.
const echoTool = "echo__echo"

// newEchoServer returns an MCP server with one tool, echo, that answers
// with its text argument: a tool that costs next to nothing, so that what a
// turn costs beyond it is the service's.
func newEchoServer() *server.MCPServer {
	s := server.NewMCPServer("switchboard-bench-echo", "1.0.0", server.WithToolCapabilities(false))
	s.AddTool(mcp.NewTool("echo",
		mcp.WithDescription("Answers with its text."),
		mcp.WithString("text", mcp.Required(), mcp.Description("The text to answer with.")),
		mcp.WithReadOnlyHintAnnotation(true),
	), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText(req.GetString("text", "")), nil
	})
	return s
}

// runEchoStdio serves the echo tool over stdio until stdin ends: the
// service starts it as its stdio MCP server.
func runEchoStdio(ctx context.Context) error {
	// Die with the service even if it is killed without closing our stdin.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	err := server.NewStdioServer(newEchoServer()).Listen(ctx, os.Stdin, os.Stdout)
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("echo over stdio: %w", err)
	}
	return nil
}

// echoHTTP is the echo tool served over streamable HTTP in the bench's
// process.
type echoHTTP struct {
	URL string
	srv *http.Server
	mcp *server.StreamableHTTPServer
}

func startEchoHTTP() (*echoHTTP, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("echo over http: %w", err)
	}
	e := &echoHTTP{URL: "http://" + ln.Addr().String() + "/mcp", mcp: server.NewStreamableHTTPServer(newEchoServer())}
	mux := http.NewServeMux()
	mux.Handle("/mcp", e.mcp)
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

func (e *echoHTTP) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	e.mcp.CloseSessions(ctx)
	_ = e.srv.Shutdown(ctx)
}
