//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-dev/switchboard/mcpclient"
)

// serverJSON is one server of GET /api/admin/servers.
type serverJSON struct {
	Name        string   `json:"name"`
	State       string   `json:"state"`
	Tools       []string `json:"tools"`
	Restarts    int      `json:"restarts"`
	LastError   string   `json:"last_error"`
	Required    bool     `json:"required"`
	Quarantined []struct {
		Tool, Reason string
	} `json:"quarantined"`
}

// adminServers calls method on /api/admin/servers{path} and returns the
// servers by name.
func adminServers(t *testing.T, base, token, method, path string) (int, map[string]serverJSON) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, base+"/api/admin/servers"+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Servers []serverJSON `json:"servers"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	out := map[string]serverJSON{}
	for _, s := range body.Servers {
		out[s.Name] = s
	}
	return resp.StatusCode, out
}

// pidsOf returns the pids of live processes whose command line is args.
func pidsOf(args ...string) []int {
	want := strings.Join(args, "\x00") + "\x00"
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && string(b) == want {
			if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
				s := string(stat)
				if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] != "Z" {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

func TestServeSupervisesAndReloads(t *testing.T) {
	// Runs last: serve, its servers and their goroutines are gone.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
	// A server that never answers initialize, told apart by its argument.
	hangArg := strconv.Itoa(100000 + os.Getpid()%100000)
	cfgFile := filepath.Join(t.TempDir(), "switchboard.yaml")
	write := func(servers string) {
		t.Helper()
		cfg := "listen: 127.0.0.1:0\nllm: {base_url: http://127.0.0.1:1/v1, model: none}\nmcp_startup_wait: 300ms\nmcpServers:\n" + servers
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tasks := fmt.Sprintf("  tasks: {command: %q, inject: {user_id: user_id}}\n", tasksBin)
	write(tasks + fmt.Sprintf("  hanging: {command: sleep, args: [%q], init_timeout: 1m}\n", hangArg))

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfgFile}, func(string) (string, bool) { return "", false }, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not stop")
		}
		if pids := pidsOf("sleep", hangArg); len(pids) > 0 {
			t.Errorf("after serve stopped, the hanging server is still running: %v", pids)
		}
	})
	banner := regexp.MustCompile(`Token:\s+(\S+)[\s\S]*?curl -s -X POST (http://[^/]+)/`)
	var base, token string
	waitFor := func(d time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			select {
			case err := <-done:
				t.Fatalf("serve ended: %v\nstderr:\n%s", err, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s\nstderr:\n%s", d, what, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(30*time.Second, "the banner", func() bool {
		m := banner.FindStringSubmatch(stdout.String())
		if m != nil {
			token, base = m[1], m[2]
		}
		return m != nil
	})
	t.Logf("serve listening %s after start, with a server that never answers initialize (mcp_startup_wait 300ms)", time.Since(start).Round(time.Millisecond))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("start-up took %s with one hanging server", took)
	}

	// tasks may take longer than the 300ms start-up wait on a loaded
	// machine: it joins when ready.
	var code int
	var servers map[string]serverJSON
	// Its tools join the catalog when it is rebuilt, just after the state
	// changes.
	waitFor(20*time.Second, "tasks to be ready, its tools in the catalog", func() bool {
		code, servers = adminServers(t, base, token, "GET", "")
		return servers["tasks"].State == "ready" && len(servers["tasks"].Tools) > 0
	})
	if code != http.StatusOK || len(servers["tasks"].Tools) != 5 || servers["hanging"].State != "starting" {
		t.Fatalf("GET /api/admin/servers: %d %+v", code, servers)
	}
	if pids := pidsOf("sleep", hangArg); len(pids) != 1 {
		t.Fatalf("the hanging server: pids %v, want one", pids)
	}

	// SIGHUP: hanging removed, tasks changed, more added.
	write(fmt.Sprintf("  tasks: {command: %q, env: {X: \"1\"}, inject: {user_id: user_id}}\n  more: {command: %q, allowed_tools: [list_tasks]}\n", tasksBin, tasksBin))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(20*time.Second, "the reload", func() bool {
		_, servers = adminServers(t, base, token, "GET", "")
		_, hanging := servers["hanging"]
		return !hanging && servers["more"].State == "ready" && len(servers["more"].Tools) > 0
	})
	if tools := servers["more"].Tools; len(tools) != 1 || tools[0] != "more__list_tasks" {
		t.Errorf("more: tools %v, want only more__list_tasks", tools)
	}
	// Stopping it takes up to about 5s (stdin EOF, SIGTERM, SIGKILL).
	waitFor(6*time.Second, "the removed server's process to end", func() bool { return len(pidsOf("sleep", hangArg)) == 0 })

	// POST /api/admin/servers/reload, with a configuration that cannot be
	// applied: 400, nothing changes.
	write(fmt.Sprintf("  my.srv: {command: %q}\n  my_srv: {command: %q}\n", tasksBin, tasksBin))
	code, _ = adminServers(t, base, token, "POST", "/reload")
	if code != http.StatusBadRequest {
		t.Errorf("reload of an invalid configuration: %d, want 400", code)
	}
	write(tasks)
	code, servers = adminServers(t, base, token, "POST", "/reload")
	if _, more := servers["more"]; code != http.StatusOK || more {
		t.Errorf("reload: %d %+v, want tasks alone", code, servers)
	}
	waitFor(20*time.Second, "tasks, restarted, to be ready", func() bool {
		_, servers = adminServers(t, base, token, "GET", "")
		return servers["tasks"].State == "ready"
	})
}

func TestServerConfigKeys(t *testing.T) {
	getenv := func(string) (string, bool) { return "", false }
	cfg, _, err := ParseConfig([]byte(`
mcp_startup_wait: 0
mcpServers:
  slow:
    url: http://127.0.0.1:9/mcp
    timeout: 30s
    init_timeout: 5s
    tool_timeouts: {report: 5m, quick: 2}
    required: true
    roots: [{uri: "file:///srv/${user.id}", name: home}]
    sampling: approve
    sampling_max_tokens: 200
    elicitation_timeout: 2m
`), getenv)
	if err != nil {
		t.Fatal(err)
	}
	specs := serverSpecs(cfg)
	if len(specs) != 1 {
		t.Fatalf("specs: %+v", specs)
	}
	c := specs[0].Config
	if c.Timeout != 30*time.Second || c.InitTimeout != 5*time.Second || c.ToolTimeouts["report"] != 5*time.Minute ||
		c.ToolTimeouts["quick"] != 2*time.Second || !specs[0].Required {
		t.Errorf("spec: %+v", specs[0])
	}
	if len(c.Roots) != 1 || c.Roots[0] != (mcpclient.Root{URI: "file:///srv/${user.id}", Name: "home"}) || c.Sampling != "approve" ||
		c.SamplingMaxTokens != 200 || c.AskTimeout != 2*time.Minute {
		t.Errorf("roots, sampling and elicitation: %+v", c)
	}
	if startupWait(cfg) >= 0 {
		t.Errorf("mcp_startup_wait 0: got %s, want no wait", startupWait(cfg))
	}
	if cfg, _, _ := ParseConfig([]byte(`{}`), getenv); startupWait(cfg) != defaultStartupWait {
		t.Errorf("default startup wait: %s", startupWait(cfg))
	}

	for _, tt := range []struct{ doc, want string }{
		{"mcpServers: {my.srv: {command: a}, my_srv: {command: b}}", `servers "my.srv" and "my_srv" both expose their tools as my_srv__*`},
		{"mcpServers: {s: {command: a, tool_timeouts: {t: 0}}}", "tool_timeouts.t: a timeout must be positive"},
		{"mcpServers: {s: {command: a, tool_timeouts: {t: -1s}}}", "cannot be negative"},
		{"mcpServers: {s: {command: a, sampling: sometimes}}", `sampling "sometimes": want deny, allow or approve`},
		{"mcpServers: {s: {command: a, roots: [{uri: /srv}]}}", "a root is a file:// URI"},
		{"mcpServers: {s: {command: a, scope: shared, roots: [{uri: \"file:///srv/${user.id}\"}]}}", "${user.id} has no value in a session of scope shared"},
	} {
		if _, _, err := ParseConfig([]byte(tt.doc), getenv); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%s): got %v, want %q", tt.doc, err, tt.want)
		}
	}
}
