// Package nodetest finds the programs that tests use as real peers: Node.js,
// the npm packages installed at the module root by `npm ci` (third-party MCP
// servers, the AI SDK, playwright-core) and Debian's Chromium. When one is
// missing a test skips with a message saying how to install it, except under
// CI (CI=true), where it fails.
package nodetest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// missing skips t, or fails it under CI.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

var (
	rootOnce sync.Once
	root     string
)

// Root returns the module root: the nearest directory above the working
// directory that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	if root == "" {
		t.Fatal("nodetest: no go.mod above the working directory")
	}
	return root
}

// Node returns the path of the node binary.
func Node(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node is not installed: install Node.js to run this test")
	}
	return p
}

// Module returns the directory of an npm package installed at the module
// root, e.g. Module(t, "@modelcontextprotocol/server-everything").
func Module(t testing.TB, name string) string {
	t.Helper()
	Node(t)
	dir := filepath.Join(Root(t), "node_modules", filepath.FromSlash(name))
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
		missing(t, "npm package %s is not installed: run `npm ci` at the module root", name)
	}
	return dir
}

// Bin returns the path of an npm package's program in node_modules/.bin.
func Bin(t testing.TB, name string) string {
	t.Helper()
	Node(t)
	p := filepath.Join(Root(t), "node_modules", ".bin", name)
	if _, err := os.Stat(p); err != nil {
		missing(t, "%s is not installed: run `npm ci` at the module root", name)
	}
	return p
}

// Chromium returns the path of Debian's Chromium.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM_PATH"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	missing(t, "chromium is not installed: apt-get install chromium (or set CHROMIUM_PATH)")
	return ""
}

// Browse runs a browser test's script (a path from the module root, which
// uses pages.mjs) with Node, Chromium and playwright-core, env added to the
// environment, and decodes the report it prints into report (which may be
// nil). It fails t if the script fails, and reports the errors the pages
// logged (script errors, CSP violations, failed requests). Screenshots go
// to test-results/screenshots at the module root.
func Browse(t testing.TB, script string, report any, env ...string) {
	t.Helper()
	Module(t, "playwright-core")
	chromium, node, root := Chromium(t), Node(t), Root(t)
	shots := filepath.Join(root, "test-results", "screenshots")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(root, filepath.FromSlash(script)))
	cmd.Env = append(append(os.Environ(), "CHROMIUM="+chromium, "SHOTS="+shots), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("%s:\n%s", script, stderr.String())
	var common struct {
		Steps         []string `json:"steps"`
		Screenshots   []string `json:"screenshots"`
		ConsoleErrors []string `json:"consoleErrors"`
		Error         string   `json:"error"`
	}
	if jerr := json.Unmarshal(out, &common); jerr != nil {
		t.Fatalf("%s: %v; its output is not its report (%v):\n%s", script, err, jerr, out)
	}
	if err != nil || common.Error != "" {
		t.Fatalf("%s failed after %d steps (%v): %s", script, len(common.Steps), err, common.Error)
	}
	if len(common.ConsoleErrors) > 0 {
		t.Errorf("the pages logged errors (script errors, CSP violations, failed requests):\n%s", strings.Join(common.ConsoleErrors, "\n"))
	}
	t.Logf("screenshots:\n%s", strings.Join(common.Screenshots, "\n"))
	if report != nil {
		if err := json.Unmarshal(out, report); err != nil {
			t.Fatalf("%s: its report: %v", script, err)
		}
	}
}
