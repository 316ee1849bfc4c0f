package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
)

// hostileEnv makes the test binary a hostile MCP server over stdio (see
// runHostile): TestMain runs it when the variable is set.
const hostileEnv = "SWITCHBOARD_TEST_HOSTILE"

// runHostile answers the handshake, lists two tools and, when they are
// called, sends what nothing should hold in memory: huge, a 50 MiB result
// (its id last, as the TypeScript SDK writes it); hugeline, a 300 MiB line
// that is not JSON.
func runHostile() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	reply := func(id json.RawMessage, result string) {
		fmt.Fprintf(out, `{"jsonrpc":"2.0","id":%s,"result":%s}`+"\n", id, result)
		out.Flush()
	}
	fill := func(b byte, n int) {
		chunk := []byte(strings.Repeat(string(b), 1<<16))
		for ; n > 0; n -= len(chunk) {
			out.Write(chunk[:min(n, len(chunk))])
		}
	}
	for in.Scan() {
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if json.Unmarshal(in.Bytes(), &msg) != nil {
			continue
		}
		switch msg.Method {
		case "initialize":
			reply(msg.ID, `{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"hostile","version":"1"}}`)
		case "tools/list":
			reply(msg.ID, `{"tools":[{"name":"huge","inputSchema":{"type":"object"}},{"name":"hugeline","inputSchema":{"type":"object"}}]}`)
		case "tools/call":
			switch msg.Params.Name {
			case "huge":
				out.WriteString(`{"result":{"content":[{"type":"text","text":"`)
				fill('x', 50<<20)
				fmt.Fprintf(out, `"}]},"jsonrpc":"2.0","id":%s}`+"\n", msg.ID)
			case "hugeline":
				fill('g', 300<<20)
				out.WriteString("\n")
			}
			out.Flush()
		default:
			if msg.ID != nil {
				fmt.Fprintf(out, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"no"}}`+"\n", msg.ID)
				out.Flush()
			}
		}
	}
}

// peakRSS returns a process's peak resident set size in bytes (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestBoundedMemoryAgainstAHostileServer: the service (a real process, built
// without the race detector, whose memory it multiplies) keeps its peak RSS
// under 150 MB while a server sends a 50 MiB result and a 300 MiB line; the
// calls fail (too_large, and the server restarted), the turn is answered.
func TestBoundedMemoryAgainstAHostileServer(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 350 MiB through the service")
	}
	bin := filepath.Join(t.TempDir(), "switchboard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "hostile__huge", Arguments: `{}`}}},
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "hostile__hugeline", Arguments: `{}`}}},
		llmtest.Reply{Text: "survived"},
	))
	defer model.Close()
	base, pid := startProcessPID(t, bin, fmt.Sprintf(`
llm: {base_url: %q, api_key: k}
auth: {jwt_secret: %q}
mcpServers:
  hostile: {command: %q, env: {%s: "1"}, timeout: 60s}
`, model.URL, testSecret, os.Args[0], hostileEnv))
	before := peakRSS(t, pid)
	token, _ := auth.MintToken([]byte(testSecret), "alice", time.Hour, false, "", "")
	req, _ := http.NewRequest("POST", base+"/api/alice/chat", strings.NewReader(`{"message":{"content":"go"}}`))
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Message   struct{ Content string }
		ToolCalls []struct {
			Tool, Status, Error string
		} `json:"tool_calls"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	took := time.Since(start)
	peak := peakRSS(t, pid)
	t.Logf("service peak RSS: %.1f MB before the turn, %.1f MB after a 50 MiB result and a 300 MiB line (turn took %s)",
		float64(before)/1e6, float64(peak)/1e6, took.Round(time.Millisecond))
	if resp.StatusCode != 200 || body.Message.Content != "survived" || len(body.ToolCalls) != 2 {
		t.Fatalf("got %d %+v", resp.StatusCode, body)
	}
	if c := body.ToolCalls[0]; c.Status != "failed" || !strings.Contains(c.Error, "max_result_bytes") {
		t.Errorf("huge: %+v, want failed over max_result_bytes", c)
	}
	if c := body.ToolCalls[1]; c.Status != "failed" {
		t.Errorf("hugeline: %+v, want failed", c)
	}
	if peak > 150e6 {
		t.Errorf("peak RSS %.1f MB, want under 150 MB", float64(peak)/1e6)
	}
}
