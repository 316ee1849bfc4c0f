// Package mcptest starts the MCP test servers of our own that tests of
// several packages use: mcpclient/testdata/modernmcp, a go-sdk server that
// speaks only MCP 2026-07-28 (a module of its own, so that nothing the
// service builds links the go-sdk), and any test server that prints its URL
// on its first line of output.
package mcptest

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/switchboard-dev/switchboard/internal/nodetest"
)

var (
	modernOnce sync.Once
	modernBin  string
	modernErr  error
)

// ModernBin returns the path of the modernmcp binary, built once per test
// binary.
func ModernBin(t testing.TB) string {
	t.Helper()
	src := filepath.Join(nodetest.Root(t), "mcpclient", "testdata", "modernmcp")
	modernOnce.Do(func() {
		dir, err := os.MkdirTemp("", "modernmcp-")
		if err != nil {
			modernErr = err
			return
		}
		modernBin = filepath.Join(dir, "modernmcp")
		build := exec.Command("go", "build", "-o", modernBin, ".")
		build.Dir = src
		if out, err := build.CombinedOutput(); err != nil {
			modernErr = errors.New("build modernmcp: " + err.Error() + ": " + string(out))
		}
	})
	if modernErr != nil {
		t.Fatal(modernErr)
	}
	return modernBin
}

// StartModernHTTP starts modernmcp over streamable HTTP (with args) and
// returns its URL; it stops when the test ends.
func StartModernHTTP(t testing.TB, args ...string) string {
	t.Helper()
	return StartURL(t, ModernBin(t), append([]string{"-http", "127.0.0.1:0"}, args...)...)
}

// StartURL starts a test server that prints the URL it serves on its
// first line of output and returns that URL; the server is sent SIGTERM
// and waited for when the test ends.
func StartURL(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("%s %s did not say its URL: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return strings.TrimSpace(line)
}
