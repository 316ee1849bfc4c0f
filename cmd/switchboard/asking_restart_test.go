package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/auth"
	"github.com/switchboard-dev/switchboard/internal/mcptest"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// askedReply is what the chat and answer routes reply, as far as these
// tests read it.
type askedReply struct {
	ConversationID string `json:"conversation_id"`
	TurnID         string `json:"turn_id"`
	Status         string `json:"status"`
	Message        struct{ Content string }
	PendingInputs  []struct {
		ID         string `json:"id"`
		ToolCallID string `json:"tool_call_id"`
		Message    string `json:"message"`
	} `json:"pending_inputs"`
	Error struct{ Code string } `json:"error"`
}

// post sends body to base+path as user (a token of testSecret's) and
// decodes the reply.
func post(t *testing.T, base, path, user, body string) (int, askedReply) {
	t.Helper()
	token, err := auth.MintToken([]byte(testSecret), user, time.Hour, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r askedReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("POST %s: %d %s: %v", path, resp.StatusCode, raw, err)
	}
	return resp.StatusCode, r
}

// greetings asks the modern server how many of its greet calls finished
// with an answer.
func greetings(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := mcpclient.Dial(ctx, mcpclient.Config{Name: "modern", URL: url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := conn.CallTool(ctx, "greetings", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	return res.Text
}

// greetConfig writes the config of a service listening on addr, on the
// database url, with the modern server at server and a model that asks
// for its greet tool and then says what the tool said.
func greetConfig(t *testing.T, addr, url, server string) string {
	t.Helper()
	model := llmtest.NewServer(func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == openai.ChatMessageRoleTool {
			return llmtest.Reply{Text: "The tool said: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "modern__greet", Arguments: `{}`}}}
	})
	t.Cleanup(model.Close)
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	cfg := fmt.Sprintf(`listen: %s
database_url: %q
auth: {jwt_secret: %q}
llm: {base_url: %q}
mcpServers:
  modern: {url: %q}
`, addr, url, testSecret, model.URL, server)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgFile
}

// TestModernQuestionSurvivesAKill: a modern server (MCP 2026-07-28, the
// go-sdk over streamable HTTP) asks alice's name and bob's in the middle of
// their calls; the service is killed with SIGKILL and started again on the
// same database. The restarted instance keeps both turns awaiting input
// (not failed); bob cannot answer alice's question; alice's answer makes
// her call again with it and the stored requestState (the server greets
// her) and her turn goes on to the model's answer, exactly once: a second
// answer is refused and the server counts one greeting. Bob's question
// still waits, and his answer continues his call the same way.
func TestModernQuestionSurvivesAKill(t *testing.T) {
	url, server, bin := storetest.PostgresURL(t), mcptest.StartModernHTTP(t), buildSwitchboard(t)
	addr := freeAddr(t)
	cfgFile := greetConfig(t, addr, url, server)
	first := startService(t, bin, cfgFile, addr)
	asked := map[string]askedReply{}
	for _, user := range []string{"alice", "bob"} {
		code, r := post(t, first.base, "/api/"+user+"/chat", user, `{"message":{"content":"greet me"}}`)
		if code != 200 || r.Status != "awaiting_input" || len(r.PendingInputs) != 1 || r.PendingInputs[0].Message != "What is your name?" {
			t.Fatalf("%s asks to be greeted: %d %+v", user, code, r)
		}
		asked[user] = r
	}
	first.kill(t)
	second := startService(t, bin, cfgFile, addr)

	pg, err := store.OpenPostgres(t.Context(), url, &store.Options{SkipMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for user, r := range asked {
		if turn, err := pg.GetTurn(t.Context(), user, r.TurnID); err != nil || turn.Status != switchboard.TurnAwaitingInput {
			t.Errorf("%s's turn after the restart: %s, %v; want awaiting_input", user, turn.Status, err)
		}
		if c, err := pg.GetToolCall(t.Context(), user, r.PendingInputs[0].ToolCallID); err != nil || c.Status != switchboard.CallRunning {
			t.Errorf("%s's call after the restart: %s, %v; want running (it goes on with the answer)", user, c.Status, err)
		}
	}

	a, b := asked["alice"], asked["bob"]
	aliceAnswer := "/api/alice/conversations/" + a.ConversationID + "/inputs/" + a.PendingInputs[0].ID
	if code, r := post(t, second.base, "/api/bob/conversations/"+b.ConversationID+"/inputs/"+a.PendingInputs[0].ID, "bob", `{"action":"accept","content":{"name":"Bob"}}`); code != 404 {
		t.Errorf("bob answers alice's question: %d %+v, want 404", code, r)
	}
	start := time.Now()
	code, r := post(t, second.base, aliceAnswer, "alice", `{"action":"accept","content":{"name":"Alice"}}`)
	t.Logf("alice's answer after the restart: %d in %s", code, time.Since(start).Round(time.Millisecond))
	if code != 200 || r.Status != "completed" || r.Message.Content != "The tool said: hello, Alice" {
		t.Fatalf("alice's answer after the restart: %d %+v, want the turn completed with the greeting", code, r)
	}
	if code, r := post(t, second.base, aliceAnswer, "alice", `{"action":"decline"}`); code != 409 || r.Error.Code != "input_closed" {
		t.Errorf("answering twice: %d %+v, want 409 input_closed", code, r)
	}
	if n := greetings(t, server); n != "1" {
		t.Errorf("greetings after alice's answer: %s, want 1 (her call made again once)", n)
	}
	if turn, _ := pg.GetTurn(t.Context(), "bob", b.TurnID); turn.Status != switchboard.TurnAwaitingInput {
		t.Errorf("bob's turn after alice's answer: %s, want awaiting_input still", turn.Status)
	}
	code, r = post(t, second.base, "/api/bob/conversations/"+b.ConversationID+"/inputs/"+b.PendingInputs[0].ID, "bob", `{"action":"accept","content":{"name":"Bob"}}`)
	if code != 200 || r.Status != "completed" || r.Message.Content != "The tool said: hello, Bob" {
		t.Fatalf("bob's answer: %d %+v", code, r)
	}
	if n := greetings(t, server); n != "2" {
		t.Errorf("greetings after both answers: %s, want 2", n)
	}
	for user, r := range asked {
		c, err := pg.GetToolCall(t.Context(), user, r.PendingInputs[0].ToolCallID)
		if err != nil || c.Status != switchboard.CallSucceeded || !strings.Contains(c.Result, "hello") {
			t.Errorf("%s's call in the ledger: %s %q, %v; want succeeded with the greeting", user, c.Status, c.Result, err)
		}
	}
}

// TestModernAnswerBeforeTheLeaseRanOut: the instance running alice's turn
// is killed while her modern server's question waits, and does not come
// back; another instance takes her answer at once (nobody can tell yet
// that the lease is dead), and once the lease has run out it takes the
// turn over and continues it with that answer, once; bob's turn on the
// other instance is not touched.
func TestModernAnswerBeforeTheLeaseRanOut(t *testing.T) {
	url, server, bin := storetest.PostgresURL(t), mcptest.StartModernHTTP(t), buildSwitchboard(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startService(t, bin, greetConfig(t, addrA, url, server), addrA)
	b := startService(t, bin, greetConfig(t, addrB, url, server), addrB)
	code, asked := post(t, a.base, "/api/alice/chat", "alice", `{"message":{"content":"greet me"}}`)
	if code != 200 || asked.Status != "awaiting_input" || len(asked.PendingInputs) != 1 {
		t.Fatalf("alice asks on the first instance: %d %+v", code, asked)
	}
	code, bobs := post(t, b.base, "/api/bob/chat", "bob", `{"message":{"content":"greet me"}}`)
	if code != 200 || bobs.Status != "awaiting_input" {
		t.Fatalf("bob asks on the second instance: %d %+v", code, bobs)
	}
	a.kill(t)

	type answer struct {
		code int
		r    askedReply
	}
	answered := make(chan answer, 1)
	go func() {
		code, r := post(t, b.base, "/api/alice/conversations/"+asked.ConversationID+"/inputs/"+asked.PendingInputs[0].ID, "alice",
			`{"action":"accept","content":{"name":"Alice"}}`)
		answered <- answer{code, r}
	}()
	pg, err := store.OpenPostgres(t.Context(), url, &store.Options{SkipMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	// The answer is stored while the dead lease runs (60 s): then the
	// lease runs out, sooner here.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if in, err := pg.GetInput(t.Context(), "alice", asked.PendingInputs[0].ID); err == nil && in.Status == switchboard.InputAnswered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's answer was never stored")
		}
	}
	select {
	case got := <-answered:
		t.Fatalf("the answer was replied before the lease ran out: %d %+v", got.code, got.r)
	case <-time.After(time.Second):
	}
	expired := time.Now()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `UPDATE turns SET lease_until = now() - interval '1 second' WHERE id = $1`, asked.TurnID); err != nil {
		t.Fatal(err)
	}
	got := <-answered
	t.Logf("the answer's reply came %s after the lease ran out", time.Since(expired).Round(time.Millisecond))
	if got.code != 200 || got.r.Status != "completed" || got.r.Message.Content != "The tool said: hello, Alice" {
		t.Fatalf("alice's answer: %d %+v, want the turn completed with the greeting", got.code, got.r)
	}
	if n := greetings(t, server); n != "1" {
		t.Errorf("greetings: %s, want 1", n)
	}
	if turn, _ := pg.GetTurn(t.Context(), "bob", bobs.TurnID); turn.Status != switchboard.TurnRunning {
		t.Errorf("bob's turn on the live instance: %s, want running (awaiting his answer)", turn.Status)
	}
}
