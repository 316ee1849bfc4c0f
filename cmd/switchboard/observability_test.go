package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// TestMetrics runs a turn with a tool call through the real service, scrapes
// /metrics and finds each series with its labels.
func TestMetrics(t *testing.T) {
	model := llmtest.NewServer(llmtest.Sequence(
		llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "tasks__add_task", Arguments: `{"title":"milk"}`}}, PromptTokens: 100, CompletionTokens: 10},
		llmtest.Reply{Text: "Added.", PromptTokens: 120, CompletionTokens: 5},
	))
	defer model.Close()
	s := startServe(t, fmt.Sprintf("listen: 127.0.0.1:0\ndatabase_url: %q\nllm: {base_url: %q, model: scripted}\nmcpServers:\n  tasks: {command: %q, inject: {user_id: user_id}}\n",
		storetest.PostgresURL(t), model.URL, tasksBin), nil)
	if code, body, err := chat(s.base, s.token, "add milk"); err != nil || code != 200 {
		t.Fatalf("chat: %d %s %v", code, body, err)
	}
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(raw)
	for _, want := range []string{
		`switchboard_http_request_duration_seconds_count{method="POST",route="/api/:user_id/chat",status="200"} 1`,
		`switchboard_turns_total{status="completed"} 1`,
		`switchboard_turn_duration_seconds_count{phase="model"} 1`,
		`switchboard_turn_duration_seconds_count{phase="tools"} 1`,
		`switchboard_turn_duration_seconds_count{phase="overhead"} 1`,
		`switchboard_tool_calls_total{server="tasks",status="succeeded",tool="add_task"} 1`,
		`switchboard_tool_call_duration_seconds_count{server="tasks",tool="add_task"} 1`,
		`switchboard_model_tokens_total{kind="prompt",model="scripted"} 220`,
		`switchboard_model_tokens_total{kind="completion",model="scripted"} 15`,
		`switchboard_mcp_server_state{server="tasks",state="ready"} 1`,
		`switchboard_mcp_server_state{server="tasks",state="crashlooping"} 0`,
		`switchboard_mcp_server_restarts_total{server="tasks"} 0`,
		`switchboard_mcp_server_tools{kind="exposed",server="tasks"} 5`,
		`switchboard_store_pool_connections{state="max"}`,
		`switchboard_store_pool_acquires_total`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Routes, not paths: no user id or conversation id becomes a label.
	if regexp.MustCompile(`route="/api/dev/`).MatchString(text) {
		t.Errorf("a path, not a route, became a label")
	}
}

// TestRetentionJob prunes old payloads on Postgres in batches, and only old
// ones.
func TestRetentionJob(t *testing.T) {
	pg, err := store.OpenPostgres(context.Background(), storetest.PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "x"}}
	if _, err := pg.BeginTurn(context.Background(), &ts); err != nil {
		t.Fatal(err)
	}
	var calls []switchboard.ToolCall
	for i, age := range []int{200, 150, 120, 100, 91, 89, 1} {
		at := time.Now().Add(-time.Duration(age) * 24 * time.Hour)
		calls = append(calls, switchboard.ToolCall{ID: switchboard.NewID(), Server: "s", Tool: fmt.Sprint("t", i), Arguments: json.RawMessage(`{"a":1}`),
			Result: "payload", Status: switchboard.CallSucceeded, Duration: time.Millisecond, StartedAt: at, FinishedAt: at})
	}
	ts.Turn.Status = switchboard.TurnCompleted
	if err := pg.SaveTurn(context.Background(), &switchboard.TurnUpdate{Turn: ts.Turn, ToolCalls: calls}); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	stop := retention(ctx, pg, RetentionConfig{Batch: 2, Interval: Duration(time.Hour)}, newLogger(&logs, nil))
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "pruned"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("retention never ran")
		}
	}
	cancel()
	stop()
	for i, c := range calls {
		got, err := pg.GetToolCall(context.Background(), "alice", c.ID)
		if err != nil {
			t.Fatal(err)
		}
		old := i < 5
		if got.PayloadPruned != old || old != (got.Result == "") {
			t.Errorf("call %d (old %v): pruned %v, result %q", i, old, got.PayloadPruned, got.Result)
		}
	}
	if !strings.Contains(logs.String(), `"rows":5`) {
		t.Errorf("log: %s", logs.String())
	}
}

// TestRetentionDeletesStaleOAuthStates: the retention job deletes the
// connect flows that expired over an hour ago, also when tool-call payloads
// are kept forever, and keeps the others.
func TestRetentionDeletesStaleOAuthStates(t *testing.T) {
	st := store.NewMemory()
	now := time.Now()
	expiries := map[string]time.Time{"stale": now.Add(-2 * time.Hour), "expired": now.Add(-30 * time.Minute), "live": now.Add(5 * time.Minute)}
	for id, exp := range expiries {
		err := st.PutOAuthState(context.Background(), switchboard.OAuthState{ID: id, UserID: "alice", Server: "github", KeyID: "k",
			Sealed: []byte("sealed"), ExpiresAt: exp})
		if err != nil {
			t.Fatal(err)
		}
	}
	var logs syncBuffer
	forever := Duration(0)
	stop := retention(context.Background(), st, RetentionConfig{ToolCallPayloads: &forever, Interval: Duration(time.Hour)}, newLogger(&logs, nil))
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "deleted expired oauth states"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("retention never deleted a state")
		}
	}
	stop()
	for id := range expiries {
		_, err := st.TakeOAuthState(context.Background(), id)
		if gone := errors.Is(err, switchboard.ErrNotFound); gone != (id == "stale") {
			t.Errorf("state %s after the retention job: got error %v, want it deleted only if stale", id, err)
		}
	}
	if !strings.Contains(logs.String(), `"rows":1`) {
		t.Errorf("log: got %s, want 1 row deleted", logs.String())
	}
}

// TestPooledDatabaseURL: database_url through a pooler (pgx exec mode, no
// session state) and database_direct_url for migrations.
func TestPooledDatabaseURL(t *testing.T) {
	direct := storetest.EmptyPostgresURL(t)
	model := llmtest.NewServer(llmtest.Sequence(llmtest.Reply{Text: "hi"}))
	defer model.Close()
	s := startServe(t, fmt.Sprintf("listen: 127.0.0.1:0\ndatabase_url: %q\ndatabase_direct_url: %q\nllm: {base_url: %q}\nmcpServers: {}\n",
		direct+"&default_query_exec_mode=exec", direct, model.URL), nil)
	if code, body, err := chat(s.base, s.token, "hello"); err != nil || code != 200 {
		t.Fatalf("chat: %d %s %v", code, body, err)
	}
}

// TestMetricsListen: with metrics_listen, /metrics is served there, and
// not on the public listener.
func TestMetricsListen(t *testing.T) {
	s := startServe(t, "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\n", nil)
	if resp, err := http.Get(s.base + "/metrics"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the main listener: got %v, %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	m := regexp.MustCompile(`"msg":"serving metrics","addr":"(http://[^"]+/metrics)"`).FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", s.stderr.String())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), "go_goroutines") {
		t.Errorf("metrics listener: got %d %.200s", resp.StatusCode, raw)
	}
}
