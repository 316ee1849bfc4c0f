// Package nodetest finds the programs that tests use as real peers: Node.js,
// the npm packages installed at the module root by `npm ci` (third-party MCP
// servers, the AI SDK, playwright-core) and Debian's Chromium. When one is
// missing a test skips with a message saying how to install it, except under
// CI (CI=true), where it fails.
package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
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
