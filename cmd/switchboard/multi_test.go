package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

const testSecret = "multi-instance-test-secret-0123456789"

// startProcess runs the switchboard binary with cfg on a free port and
// waits until it is ready.
func startProcess(t *testing.T, bin, cfg string) string {
	t.Helper()
	base, _ := startProcessPID(t, bin, cfg)
	return base
}

// startProcessPID is startProcess, and also returns the process id.
func startProcessPID(t *testing.T, bin, cfg string) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("listen: "+addr+"\n"+cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd := exec.Command(bin, "serve", "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("switchboard at %s exited: %v\n%s", addr, err, logs.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("switchboard at %s did not stop on SIGINT", addr)
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base, cmd.Process.Pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchboard at %s never became ready:\n%s", addr, logs.String())
		}
	}
}

func buildSwitchboard(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchboard")
	if out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

type chatResult struct {
	ConversationID string `json:"conversation_id"`
	TurnID         string `json:"turn_id"`
	Message        struct{ Content string }
}

func postChat(base, token, conv, content string) (int, chatResult, error) {
	body, _ := json.Marshal(map[string]any{"message": map[string]string{"content": content}, "conversation_id": conv})
	req, _ := http.NewRequest("POST", base+"/api/alice/chat", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, chatResult{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r chatResult
	_ = json.Unmarshal(raw, &r)
	return resp.StatusCode, r, nil
}

// TestTwoInstancesOneConversation: two switchboard processes on one
// Postgres, 50 concurrent messages to one conversation across both: every
// turn is stored whole and the transcript never interleaves.
func TestTwoInstancesOneConversation(t *testing.T) {
	url := storetest.PostgresURL(t)
	var inModel, overlap atomic.Int32
	model := llmtest.NewServer(func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		if inModel.Add(1) > 1 {
			overlap.Add(1)
		}
		defer inModel.Add(-1)
		time.Sleep(5 * time.Millisecond) // a turn that takes a moment, for overlaps to show
		return llmtest.Reply{Text: "re: " + req.Messages[len(req.Messages)-1].Content}
	})
	defer model.Close()
	bin := buildSwitchboard(t)
	// The last of the 50 waits for the 49 before it: on a slow machine,
	// longer than limits.turn_wait's default, and this test is about
	// their order.
	cfg := fmt.Sprintf("database_url: %q\nauth: {jwt_secret: %q}\nllm: {base_url: %q}\nlimits: {turn_wait: 60s}\nmcpServers: {}\n", url, testSecret, model.URL)
	a, b := startProcess(t, bin, cfg), startProcess(t, bin, cfg)
	token, err := auth.MintToken([]byte(testSecret), "alice", time.Hour, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	code, first, err := postChat(a, token, "", "first")
	if err != nil || code != 200 {
		t.Fatalf("first message: %d %v", code, err)
	}
	const n = 50
	var wg sync.WaitGroup
	codes := make([]int, n)
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			base := a
			if i%2 == 1 {
				base = b
			}
			code, r, err := postChat(base, token, first.ConversationID, fmt.Sprintf("m%02d", i))
			if err != nil {
				t.Error(err)
			}
			codes[i] = code
			if code == 200 && r.Message.Content != fmt.Sprintf("re: m%02d", i) {
				t.Errorf("message %d: answered %q", i, r.Message.Content)
			}
		})
	}
	wg.Wait()
	t.Logf("50 concurrent turns on one conversation across two instances: %s", time.Since(start).Round(time.Millisecond))
	for i, c := range codes {
		if c != 200 {
			t.Errorf("message %d: got %d, want 200", i, c)
		}
	}
	if overlap.Load() != 0 {
		t.Errorf("the model saw %d requests of the conversation overlap: turns were not serialised", overlap.Load())
	}
	pg, err := store.OpenPostgres(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	msgs, err := pg.ListMessages(context.Background(), "alice", first.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2*(n+1) {
		t.Fatalf("messages: got %d, want %d", len(msgs), 2*(n+1))
	}
	for i := 0; i < len(msgs); i += 2 {
		q, r := msgs[i], msgs[i+1]
		if q.Role != switchboard.RoleUser || r.Role != switchboard.RoleAssistant || q.TurnID != r.TurnID || r.Content != "re: "+q.Content {
			t.Fatalf("transcript interleaved at %d: %q (%s) then %q (%s)", i, q.Content, q.TurnID, r.Content, r.TurnID)
		}
	}
	turns, _ := pg.ListTurns(context.Background(), "alice", first.ConversationID)
	for _, tr := range turns {
		if tr.Status != switchboard.TurnCompleted {
			t.Errorf("turn %s: %s", tr.ID, tr.Status)
		}
	}
}

// TestCancelReachesTheInstanceRunningTheTurn: two switchboard processes on
// one Postgres; a turn runs on one, and the cancel route of the other stops
// it (NOTIFY to the instance running it): the model request is aborted and
// the turn is stored cancelled.
func TestCancelReachesTheInstanceRunningTheTurn(t *testing.T) {
	url := storetest.PostgresURL(t)
	asked := make(chan struct{}, 1)
	release := make(chan struct{})
	model := llmtest.NewServer(func(i int, req *openai.ChatCompletionRequest) llmtest.Reply {
		if req.Messages[len(req.Messages)-1].Content == "wait" {
			asked <- struct{}{}
			select { // until the test ends: only a cancel ends the turn
			case <-release:
			case <-time.After(time.Minute):
			}
		}
		return llmtest.Reply{Text: "done"}
	})
	defer model.Close()
	defer close(release) // first: the aborted request's handler still waits
	bin := buildSwitchboard(t)
	cfg := fmt.Sprintf("database_url: %q\nauth: {jwt_secret: %q}\nllm: {base_url: %q}\nmcpServers: {}\n", url, testSecret, model.URL)
	a, b := startProcess(t, bin, cfg), startProcess(t, bin, cfg)
	token, err := auth.MintToken([]byte(testSecret), "alice", time.Hour, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	// Readiness does not wait for the cancel listeners: wait for both here,
	// or a cancel could go out before anyone listens (and reach the turn
	// only at its lease renewal, 20 s on).
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var listening int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'switchboard cancel listener' AND query LIKE 'LISTEN%'`).Scan(&listening); err != nil {
			t.Fatal(err)
		}
		if listening == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cancel listeners: %d of 2 after 30 s", listening)
		}
	}
	code, first, err := postChat(a, token, "", "hello")
	if err != nil || code != 200 {
		t.Fatalf("first message: %d %v", code, err)
	}
	cancel := func(base string) (int, string) {
		req, _ := http.NewRequest("POST", base+"/api/alice/conversations/"+first.ConversationID+"/cancel", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, body := cancel(b); code != http.StatusConflict || !strings.Contains(body, "no_running_turn") {
		t.Errorf("cancel with no turn running: got %d %s, want 409 no_running_turn", code, body)
	}

	type answer struct {
		code int
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		code, _, err := postChat(a, token, first.ConversationID, "wait")
		answered <- answer{code, err}
	}()
	select {
	case <-asked:
	case <-time.After(30 * time.Second):
		t.Fatal("the turn never reached the model")
	}
	start := time.Now()
	if code, body := cancel(b); code != http.StatusOK {
		t.Fatalf("cancel on the other instance: got %d %s, want 200", code, body)
	}
	select {
	case got := <-answered:
		if got.err != nil || got.code != http.StatusConflict {
			t.Errorf("the cancelled request: got %d %v, want 409 turn_cancelled", got.code, got.err)
		}
		t.Logf("cancel on one instance to the answer of the other: %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the turn running on the first instance was not cancelled")
	}
	pg, err := store.OpenPostgres(context.Background(), url, &store.Options{SkipMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	turns, err := pg.ListTurns(context.Background(), "alice", first.ConversationID)
	if err != nil || len(turns) != 2 || turns[1].Status != switchboard.TurnCancelled {
		t.Errorf("turns: got %+v, %v, want the second cancelled", turns, err)
	}
}
