package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// blockerEnv, set in a child's environment, makes the test binary a stdio
// MCP server with one tool, wait, whose calls never answer: they last until
// the server's stdin ends, when it exits. It writes a file named after its
// pid into $BLOCKER_DIR when it starts ("started-PID") and when a call
// arrives ("called-PID").
//
// It exits on stdin EOF by itself: the service's death must not depend on
// it for its children to go (mcpclient's Pdeathsig does that for servers
// that ignore EOF), but this test is about the ledger and the leases.
const blockerEnv = "SWITCHBOARD_TEST_BLOCKER"

func runBlocker() {
	dir := os.Getenv("BLOCKER_DIR")
	mark := func(what string) {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d", what, os.Getpid())), nil, 0o600)
	}
	mark("started")
	out := bufio.NewWriter(os.Stdout)
	reply := func(id json.RawMessage, result string) {
		fmt.Fprintf(out, `{"jsonrpc":"2.0","id":%s,"result":%s}`+"\n", id, result)
		out.Flush()
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"params"`
		}
		if json.Unmarshal(in.Bytes(), &msg) != nil || msg.ID == nil {
			continue // notifications
		}
		switch msg.Method {
		case "initialize":
			v, _ := json.Marshal(msg.Params.ProtocolVersion)
			reply(msg.ID, `{"protocolVersion":`+string(v)+`,"capabilities":{"tools":{}},"serverInfo":{"name":"blocker","version":"1"}}`)
		case "tools/list":
			reply(msg.ID, `{"tools":[{"name":"wait","description":"Waits.","inputSchema":{"type":"object","properties":{}},"annotations":{"readOnlyHint":true}}]}`)
		case "tools/call":
			mark("called") // and never answer
		case "ping":
			reply(msg.ID, `{}`)
		default:
			fmt.Fprintf(out, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}`+"\n", msg.ID)
			out.Flush()
		}
	}
}

// service is a switchboard process that a test may kill.
type service struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	base string
	done chan struct{} // closed once the process was waited for
}

// startService runs the switchboard binary with the config file cfgFile,
// whose listen address is addr, and waits until it is ready. The process
// is stopped when the test ends, unless the test killed it.
func startService(t *testing.T, bin, cfgFile, addr string) *service {
	t.Helper()
	s := &service{logs: &syncBuffer{}, base: "http://" + addr, done: make(chan struct{})}
	s.cmd = exec.Command(bin, "serve", "--config", cfgFile)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			t.Errorf("switchboard at %s did not stop on SIGINT", addr)
		}
		if t.Failed() {
			t.Logf("logs of switchboard pid %d:\n%s", s.cmd.Process.Pid, s.logs.String())
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, err := http.Get(s.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("switchboard at %s exited before it was ready:\n%s", addr, s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchboard at %s never became ready:\n%s", addr, s.logs.String())
		}
	}
}

// kill sends SIGKILL, as `kill -9` does, and waits for the process to end.
func (s *service) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// chatReply is one answer of the chat route.
type chatReply struct {
	code   int
	header http.Header
	body   string
	chatResult
}

// chatIn posts a message to a conversation of alice (a new one if conv is
// empty), giving up after 30 s.
func chatIn(base, token, conv, content string) (chatReply, error) {
	return chatWithin(30*time.Second, base, token, conv, content)
}

// chatWithin is chatIn giving up after timeout (0: never).
func chatWithin(timeout time.Duration, base, token, conv, content string) (chatReply, error) {
	body, _ := json.Marshal(map[string]any{"message": map[string]string{"content": content}, "conversation_id": conv})
	req, _ := http.NewRequest("POST", base+"/api/alice/chat", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Timeout: timeout}
	resp, err := client.Do(req)
	if err != nil {
		return chatReply{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := chatReply{code: resp.StatusCode, header: resp.Header, body: string(raw)}
	_ = json.Unmarshal(raw, &r.chatResult)
	return r, nil
}

// proc is a process as /proc tells it: enough to know it again.
type proc struct {
	pid, ppid, pgrp int
	state           string
	start           uint64 // clock ticks since boot: with pid, names one process
	cmdline         string
}

func readProc(pid int) (proc, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return proc{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return proc{}, false
	}
	p := proc{pid: pid, state: f[0]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgrp, _ = strconv.Atoi(f[2])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	p.cmdline = strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " ")
	return p, true
}

func allProcs() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if p, ok := readProc(pid); ok {
				out = append(out, p)
			}
		}
	}
	return out
}

// descendants returns the processes below pid: its children, theirs, and
// every process in the process group of one of them (a stdio server runs in
// a group of its own, which its own children share).
func descendants(pid int) []proc {
	procs := allProcs()
	below := map[int]bool{pid: true}
	groups := map[int]bool{}
	for grew := true; grew; {
		grew = false
		for _, p := range procs {
			if !below[p.pid] && (below[p.ppid] || groups[p.pgrp]) {
				below[p.pid], grew = true, true
				if p.ppid == pid {
					groups[p.pgrp] = true
				}
			}
		}
	}
	var out []proc
	for _, p := range procs {
		if p.pid != pid && below[p.pid] {
			out = append(out, p)
		}
	}
	return out
}

// alive returns those of procs that still run: a zombie has exited (its
// reaper is whoever adopted it, not the service).
func alive(procs []proc) []proc {
	var out []proc
	for _, p := range procs {
		if now, ok := readProc(p.pid); ok && now.start == p.start && now.state != "Z" {
			out = append(out, now)
		}
	}
	return out
}

// crashConfig is the configuration of a service on database url with the
// blocker MCP server, whose files go to dir.
func crashConfig(addr, url, modelURL, dir string) string {
	return fmt.Sprintf(`listen: %s
database_url: %q
auth: {jwt_secret: %q}
llm: {base_url: %q}
limits: {turn_wait: 1s}
mcpServers:
  blocker:
    command: %q
    env: {%s: "1", BLOCKER_DIR: %q, GORACE: "atexit_sleep_ms=0"}
    required: true
`, addr, url, testSecret, modelURL, os.Args[0], blockerEnv, dir)
}

// blockingModel asks for the blocker's tool when told "block", and answers
// other messages with "re: " and their text.
func blockingModel() *llmtest.Server {
	return llmtest.NewServer(func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		switch {
		case last.Role == openai.ChatMessageRoleUser && last.Content == "block":
			return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "blocker__wait", Arguments: `{}`}}}
		case last.Role == openai.ChatMessageRoleTool:
			return llmtest.Reply{Text: "the tool answered"}
		}
		return llmtest.Reply{Text: "re: " + last.Content}
	})
}

// blockTurn sends "block" in conversation conv of s and waits until the
// call it asks for is running: stored as running, and received by the
// blocker.
func blockTurn(t *testing.T, s *service, token, conv, url, dir string) {
	t.Helper()
	// Answered by no one: the service dies under it. No timeout: a client
	// that gives up cancels the turn.
	go func() { _, _ = chatWithin(0, s.base, token, conv, "block") }()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		// A running call is on its turn's row (open_calls) until it ends
		// (migration 00057), or a ledger row if something referred to it.
		var running int
		if err := conn.QueryRow(t.Context(), `
SELECT (SELECT count(*) FROM tool_calls WHERE conversation_id = $1 AND status = 'running')
    + (SELECT count(*) FROM turns, jsonb_each(open_calls) WHERE conversation_id = $1 AND status = 'running')`, conv).Scan(&running); err != nil {
			t.Fatal(err)
		}
		called, _ := filepath.Glob(filepath.Join(dir, "called-*"))
		if running == 1 && len(called) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tool call never ran: %d running, called %v\n%s", running, called, s.logs.String())
		}
	}
}

// checkInterrupted checks that the turns of conv are the given statuses, in
// order, and that the conversation's calls are closed as interrupted.
func checkInterrupted(t *testing.T, pg *store.Postgres, conv string, want []switchboard.TurnStatus) {
	t.Helper()
	turns, err := pg.ListTurns(t.Context(), "alice", conv)
	if err != nil {
		t.Fatal(err)
	}
	var got []switchboard.TurnStatus
	for _, tr := range turns {
		got = append(got, tr.Status)
		if tr.Status == switchboard.TurnFailed {
			if tr.FinishedAt.IsZero() || !strings.Contains(tr.Error, "interrupted") {
				t.Errorf("the interrupted turn: got finished at %v, error %q; want finished, interrupted", tr.FinishedAt, tr.Error)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("turns: got %v, want %v", got, want)
	}
	calls, _, err := pg.ListToolCalls(t.Context(), switchboard.ToolCallFilter{ConversationID: conv})
	if err != nil || len(calls) != 1 {
		t.Fatalf("calls: got %+v, %v, want the one call", calls, err)
	}
	c := calls[0]
	t.Logf("the interrupted call: status %s, error class %s, error %q, finished %s after it started",
		c.Status, c.ErrorClass, c.Error, c.FinishedAt.Sub(c.StartedAt).Round(time.Millisecond))
	if c.Status != switchboard.CallFailed || c.ErrorClass != switchboard.ErrorClassInterrupted || c.FinishedAt.IsZero() || c.Error == "" {
		t.Errorf("the interrupted call: got status %s, class %q, error %q, finished %v; want failed, %s, a reason, a finish",
			c.Status, c.ErrorClass, c.Error, c.FinishedAt, switchboard.ErrorClassInterrupted)
	}
	stats, err := pg.ToolCallStats(t.Context(), switchboard.ToolCallFilter{ConversationID: conv}, store.GroupByTool)
	if err != nil || len(stats) != 1 || stats[0].Count != 1 || stats[0].Errors != 1 || stats[0].ErrorRate != 1 {
		t.Errorf("stats: got %+v, %v; want one call, failed", stats, err)
	}
}

// waitGone waits until none of procs runs, and fails the test naming
// those that still do after 10 s.
func waitGone(t *testing.T, procs []proc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(alive(procs)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range alive(procs) {
		t.Errorf("orphaned: pid %d (ppid %d, state %s): %s", p.pid, p.ppid, p.state, p.cmdline)
	}
}

// TestCrashRecovery: the service is killed with SIGKILL while a turn's tool
// call runs, and started again on the same database. The next message of
// that conversation is answered at once (the restarted instance knows the
// leases of its previous life and fails their turns as it starts), the
// turn and its call are closed in the ledger (failed, interrupted), and the
// children of the killed service are gone. Before that, a message that
// waited for the running turn longer than limits.turn_wait was answered
// 409 turn_running with Retry-After.
func TestCrashRecovery(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the process table from /proc")
	}
	url := storetest.PostgresURL(t)
	model := blockingModel()
	defer model.Close()
	bin := buildSwitchboard(t)
	dir, addr := t.TempDir(), freeAddr(t)
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte(crashConfig(addr, url, model.URL, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	token, err := auth.MintToken([]byte(testSecret), "alice", time.Hour, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	first := startService(t, bin, cfgFile, addr)
	hello, err := chatIn(first.base, token, "", "hello")
	if err != nil || hello.code != 200 {
		t.Fatalf("first message: %+v, %v", hello, err)
	}
	conv := hello.ConversationID
	blockTurn(t, first, token, conv, url, dir)

	start := time.Now()
	waited, err := chatIn(first.base, token, conv, "while it runs")
	t.Logf("a message while the turn runs: %d after %s, Retry-After %q", waited.code, time.Since(start).Round(time.Millisecond), waited.header.Get("Retry-After"))
	if err != nil || waited.code != http.StatusConflict || !strings.Contains(waited.body, `"turn_running"`) || waited.header.Get("Retry-After") == "" {
		t.Errorf("a message while a turn runs, past limits.turn_wait: got %d %s %v (Retry-After %q), want 409 turn_running with Retry-After",
			waited.code, waited.body, err, waited.header.Get("Retry-After"))
	}

	children := descendants(first.cmd.Process.Pid)
	if len(children) == 0 {
		t.Fatal("the service has no children: where is the blocker?")
	}
	first.kill(t)
	restarted := time.Now()
	second := startService(t, bin, cfgFile, addr)
	ready := time.Since(restarted)
	pg, err := store.OpenPostgres(t.Context(), url, &store.Options{SkipMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	// Failed as it started, before any message came.
	checkInterrupted(t, pg, conv, []switchboard.TurnStatus{switchboard.TurnCompleted, switchboard.TurnFailed})
	start = time.Now()
	after, err := chatIn(second.base, token, conv, "after the restart")
	answered := time.Since(start)
	t.Logf("restart: ready %s after exec; the next message of the conversation answered %s after that (%s after exec)",
		ready.Round(time.Millisecond), answered.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	if err != nil || after.code != 200 || after.Message.Content != "re: after the restart" {
		t.Fatalf("the next message after the restart: got %d %s %v, want 200", after.code, after.body, err)
	}
	if answered > 10*time.Second { // promised: 2 s; the dead lease would hold it up to 60 s
		t.Errorf("the next message after the restart took %s, want it answered at once", answered)
	}

	checkInterrupted(t, pg, conv, []switchboard.TurnStatus{switchboard.TurnCompleted, switchboard.TurnFailed, switchboard.TurnCompleted})
	waitGone(t, children)
	t.Logf("the killed service had %d children; none is left", len(children))
}

// TestCancelOfOrphanedTurn: the service running a turn is killed and does
// not come back; another instance on the same database cannot tell at
// first (the lease is live, so a cancel is only asked), but once the lease
// has run out a cancel fails the turn at once, its call with it, and the
// conversation takes messages again.
func TestCancelOfOrphanedTurn(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the process table from /proc")
	}
	url := storetest.PostgresURL(t)
	model := blockingModel()
	defer model.Close()
	bin := buildSwitchboard(t)
	dir := t.TempDir()
	token, err := auth.MintToken([]byte(testSecret), "alice", time.Hour, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	start := func(addr string) *service {
		cfgFile := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(cfgFile, []byte(crashConfig(addr, url, model.URL, dir)), 0o600); err != nil {
			t.Fatal(err)
		}
		return startService(t, bin, cfgFile, addr)
	}
	a := start(freeAddr(t))
	hello, err := chatIn(a.base, token, "", "hello")
	if err != nil || hello.code != 200 {
		t.Fatalf("first message: %+v, %v", hello, err)
	}
	conv := hello.ConversationID
	blockTurn(t, a, token, conv, url, dir)
	children := descendants(a.cmd.Process.Pid)
	a.kill(t)
	b := start(freeAddr(t)) // another instance: it does not know a is dead

	cancel := func() (int, string) {
		req, _ := http.NewRequest("POST", b.base+"/api/alice/conversations/"+conv+"/cancel", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, body := cancel(); code != 200 || !strings.Contains(body, `"cancelling"`) {
		t.Errorf("cancel under a live lease: got %d %s, want 200 cancelling", code, body)
	}
	// The lease runs out (60 s after a's last write): as if that time had
	// passed.
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `UPDATE turns SET lease_until = now() - interval '1 second' WHERE conversation_id = $1 AND status = 'running'`, conv); err != nil {
		t.Fatal(err)
	}
	code, body := cancel()
	t.Logf("cancel of the orphaned turn: %d %s", code, body)
	if code != 200 || !strings.Contains(body, `"status":"failed"`) {
		t.Errorf("cancel of a turn whose lease ran out: got %d %s, want 200 with the turn failed", code, body)
	}
	if code, body := cancel(); code != http.StatusConflict || !strings.Contains(body, "no_running_turn") {
		t.Errorf("cancel again: got %d %s, want 409 no_running_turn", code, body)
	}
	s := time.Now()
	next, err := chatIn(b.base, token, conv, "next")
	if err != nil || next.code != 200 {
		t.Errorf("the next message: got %d %s %v, want 200", next.code, next.body, err)
	}
	t.Logf("the next message answered in %s", time.Since(s).Round(time.Millisecond))

	pg, err := store.OpenPostgres(t.Context(), url, &store.Options{SkipMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	checkInterrupted(t, pg, conv, []switchboard.TurnStatus{switchboard.TurnCompleted, switchboard.TurnFailed, switchboard.TurnCompleted})
	waitGone(t, children)
}
