//go:build unix

package tools_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/internal/nodetest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/tools"
)

// TestRootsEverything: server-everything's get-roots-list returns the
// roots configured for the caller's session, ${user.id} expanded (alice's
// are not bob's); a reload that changes only the roots tells the open
// sessions (notifications/roots/list_changed, after which the server asks
// again) instead of restarting them.
func TestRootsEverything(t *testing.T) {
	dir := nodetest.Module(t, "@modelcontextprotocol/server-everything")
	spec := tools.ServerSpec{Scope: tools.ScopeUser, Config: mcpclient.Config{Name: "everything", Command: nodetest.Node(t),
		Args: []string{filepath.Join(dir, "dist", "index.js"), "stdio"}, InitTimeout: 30 * time.Second,
		Roots: []mcpclient.Root{{URI: "file:///data/${user.id}", Name: "home of ${user.id}"}}}}
	f := startFleet(t, "everything__get-roots-list", spec)
	roots := func(user string) string {
		return mustRun(t, f.Current(), user, "c-"+user, "everything__get-roots-list", `{}`).Result
	}
	for user, other := range map[string]string{"alice": "bob", "bob": "alice"} {
		got := roots(user)
		if !strings.Contains(got, "URI: file:///data/"+user) || !strings.Contains(got, "home of "+user) || strings.Contains(got, other) {
			t.Errorf("%s's roots: %q, want %s's only", user, got, user)
		}
	}
	before := sessionPIDs(t, f, "everything")

	spec.Config.Roots = []mcpclient.Root{{URI: "file:///v2/${user.id}", Name: "new home"}}
	if err := f.Apply(t.Context(), []tools.ServerSpec{spec}); err != nil {
		t.Fatal(err)
	}
	// Each session's server asks again when its notification arrives: on
	// its own time, so wait for each.
	for _, user := range []string{"alice", "bob"} {
		waitFor(t, 20*time.Second, user+"'s session to have the new roots", func() bool {
			return strings.Contains(roots(user), "URI: file:///v2/"+user)
		})
		if got := roots(user); !strings.Contains(got, "URI: file:///v2/"+user) || strings.Contains(got, "/data/") {
			t.Errorf("%s's roots after the reload: %q, want the new ones only", user, got)
		}
	}
	after := sessionPIDs(t, f, "everything")
	for key, pid := range before {
		if after[key] != pid {
			t.Errorf("session %s: pid %d before the reload, %d after; want it kept", key, pid, after[key])
		}
	}
}

// TestRootsFilesystem: server-filesystem started without directories works
// in the roots of the caller's session: alice reads her files, not bob's.
func TestRootsFilesystem(t *testing.T) {
	bin := nodetest.Bin(t, "mcp-server-filesystem")
	base := t.TempDir()
	for _, user := range []string{"alice", "bob"} {
		os.MkdirAll(filepath.Join(base, user), 0o700)
		if err := os.WriteFile(filepath.Join(base, user, "note.txt"), []byte(user+"'s note"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	spec := tools.ServerSpec{Scope: tools.ScopeUser, Config: mcpclient.Config{Name: "fs", Command: bin, InitTimeout: 30 * time.Second,
		Roots: []mcpclient.Root{{URI: "file://" + base + "/${user.id}", Name: "files"}}}}
	f := startFleet(t, "fs__read_text_file", spec)
	read := func(user, owner string) (string, bool) {
		call := runAs(t.Context(), f.Current(), user, "c-"+user, "fs__read_text_file", `{"path":"`+filepath.Join(base, owner, "note.txt")+`"}`)
		return call.Result, call.Status == "succeeded"
	}
	if got, ok := read("alice", "alice"); !ok || !strings.Contains(got, "alice's note") {
		t.Errorf("alice reading her note: %q, %v; want it", got, ok)
	}
	if got, ok := read("alice", "bob"); ok || strings.Contains(got, "bob's note") {
		t.Errorf("alice reading bob's note: %q, %v; want it refused", got, ok)
	}
	if got, ok := read("bob", "bob"); !ok || !strings.Contains(got, "bob's note") {
		t.Errorf("bob reading his note: %q, %v; want it", got, ok)
	}
}
