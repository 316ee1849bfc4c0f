package api_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
	"github.com/switchboard-dev/switchboard/tools"
)

// instance is one Switchboard instance over a shared Postgres: its own
// store pool, stdio server, orchestrator and HTTP server, and the listener
// of answers to questions (as serve runs it).
func instance(t *testing.T, url, name string) *service {
	t.Helper()
	pg, err := store.OpenPostgres(context.Background(), url, &store.Options{SkipMigrate: true, Instance: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	conn := everythingConn(t, mcpclient.Config{})
	// Only the notification can bring the answer in time: the store is
	// not looked at again within the test.
	svc := newServiceOver(t, pg, []tools.Source{{Server: tools.Shared(conn)}},
		askingModel("everything__trigger-elicitation-request"), &orchestrator.Options{InputPoll: time.Hour}, nil, nil, api.Deps{})
	orch := svc.orch
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		store.ListenInputs(ctx, url, slog.New(slog.DiscardHandler), orch.InputAnswered)
	}()
	cancels := make(chan struct{})
	go func() {
		defer close(cancels)
		store.ListenCancels(ctx, url, slog.New(slog.DiscardHandler), func(id string) { orch.CancelTurn(id) })
	}()
	t.Cleanup(func() { cancel(); <-done; <-cancels })
	return svc
}

// TestInputAcrossInstances: with two instances on one Postgres, a
// question asked on the instance that runs alice's call (and holds the
// server's open request) is answered through the other: the answer
// reaches the call, which goes on, and the other instance replies with the
// turn's end.
func TestInputAcrossInstances(t *testing.T) {
	url := storetest.PostgresURL(t)
	a, b := instance(t, url, "host-a"), instance(t, url, "host-b")
	alice := token(t, "alice")
	var r inputReply
	if resp := do(t, "POST", a.url+"/api/alice/chat", alice, `{"message":{"content":"ask me"}}`, &r); resp.StatusCode != 200 || r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
		t.Fatalf("ask on instance a: got %d %+v", resp.StatusCode, r)
	}
	answer := "/api/alice/conversations/" + r.ConversationID + "/inputs/" + r.PendingInputs[0].ID
	r = inputReply{}
	resp := do(t, "POST", b.url+answer, alice, `{"action":"accept","content":{"name":"Alice via b"}}`, &r)
	if resp.StatusCode != 200 || r.Status != "completed" || !strings.Contains(r.Message.Content, "Name: Alice via b") {
		t.Fatalf("the answer posted to instance b: got %d %+v", resp.StatusCode, r)
	}
	if len(a.model.Requests()) != 2 || len(b.model.Requests()) != 0 {
		t.Errorf("model requests: a %d, b %d; want the turn to have gone on on a only", len(a.model.Requests()), len(b.model.Requests()))
	}
}

// TestNewMessageOnAnotherInstanceCancelsTheQuestion: a question waits
// on instance a; alice's new message reaches instance b, whose turn finds
// a's running (the store's one-running-turn rule), cancels it, and answers
// once it ended. The question is closed; bob's message to b is his own.
func TestNewMessageOnAnotherInstanceCancelsTheQuestion(t *testing.T) {
	url := storetest.PostgresURL(t)
	a, b := instance(t, url, "host-a"), instance(t, url, "host-b")
	alice, bob := token(t, "alice"), token(t, "bob")
	var r inputReply
	if resp := do(t, "POST", a.url+"/api/alice/chat", alice, `{"message":{"content":"ask me"}}`, &r); resp.StatusCode != 200 || r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
		t.Fatalf("ask on instance a: got %d %+v", resp.StatusCode, r)
	}
	conv, asked, question := r.ConversationID, r.TurnID, r.PendingInputs[0].ID
	var e chatReply
	if resp := do(t, "POST", b.url+"/api/bob/chat?conversation_id="+conv, bob, `{"message":{"content":"hello"}}`, &e); resp.StatusCode != 404 {
		t.Errorf("bob writes to alice's conversation through b: got %d %+v, want 404", resp.StatusCode, e.Error)
	}
	r = inputReply{}
	if resp := do(t, "POST", b.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"never mind"}}`, &r); resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "plain" {
		t.Fatalf("a new message through instance b: got %d %+v", resp.StatusCode, r)
	}
	if got, err := a.store.GetTurn(t.Context(), "alice", asked); err != nil || got.Status != "cancelled" {
		t.Errorf("the asking turn: %+v, %v; want cancelled", got, err)
	}
	if resp := do(t, "POST", a.url+"/api/alice/conversations/"+conv+"/inputs/"+question, alice, `{"action":"accept","content":{"name":"Alice"}}`, &e); resp.StatusCode != 409 {
		t.Errorf("answering the cancelled question: got %d %+v, want 409", resp.StatusCode, e.Error)
	}
}

// TestInputAfterTheConnectionDied: a question whose server's connection
// died fails its call cleanly (the model is told, the turn ends), and an
// answer after that is refused.
func TestInputAfterTheConnectionDied(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			conn := everythingConn(t, mcpclient.Config{})
			svc := newServiceOver(t, open(t), []tools.Source{{Server: tools.Shared(conn)}},
				askingModel("everything__trigger-elicitation-request"), nil, nil, nil, api.Deps{})
			alice := token(t, "alice")
			var r inputReply
			do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"ask me"}}`, &r)
			if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
				t.Fatalf("ask: got %+v", r)
			}
			conn.Close()
			var turn string
			waitUntil(t, "the turn to end once the connection died", func() bool {
				got, err := svc.store.GetTurn(t.Context(), "alice", r.TurnID)
				turn = string(got.Status)
				return err == nil && got.Status != "running"
			})
			calls, _, _ := svc.store.ListToolCalls(t.Context(), toolCallFilter(r.TurnID))
			if turn != "completed" || len(calls) != 1 || calls[0].Status != "failed" {
				t.Errorf("after the connection died: turn %s, calls %+v; want the call failed and the turn completed", turn, calls)
			}
			var e chatReply
			if resp := do(t, "POST", svc.url+"/api/alice/conversations/"+r.ConversationID+"/inputs/"+r.PendingInputs[0].ID, alice,
				`{"action":"accept","content":{"name":"Alice"}}`, &e); resp.StatusCode != 409 || e.Error.Code != "input_closed" {
				t.Errorf("an answer after the connection died: got %d %+v, want 409 input_closed", resp.StatusCode, e.Error)
			}
		})
	}
}

// waitUntil polls cond until it holds, for at most 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func toolCallFilter(turnID string) switchboard.ToolCallFilter {
	return switchboard.ToolCallFilter{TurnID: turnID, Limit: 10}
}

// TestInputTimeout: a question nobody answers within the server's
// elicitation_timeout closes as expired, the server is answered cancel and
// the turn goes on to its end; the answer after that is refused.
func TestInputTimeout(t *testing.T) {
	conn := everythingConn(t, mcpclient.Config{AskTimeout: 300 * time.Millisecond})
	st := store.NewMemory()
	svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(conn)}},
		askingModel("everything__trigger-elicitation-request"), nil, nil, nil, api.Deps{})
	alice := token(t, "alice")
	var r inputReply
	do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"ask me"}}`, &r)
	if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
		t.Fatalf("ask: got %+v", r)
	}
	waitUntil(t, "the turn to end after the timeout", func() bool {
		got, err := st.GetTurn(t.Context(), "alice", r.TurnID)
		return err == nil && got.Status == "completed"
	})
	in, err := st.GetInput(t.Context(), "alice", r.PendingInputs[0].ID)
	if err != nil || in.Status != "expired" {
		t.Errorf("the unanswered input: %+v, %v; want expired", in, err)
	}
	calls, _, _ := st.ListToolCalls(t.Context(), toolCallFilter(r.TurnID))
	if len(calls) != 1 || !strings.Contains(calls[0].Result, "cancelled the elicitation") {
		t.Errorf("the call: %+v; want the server told cancel", calls)
	}
	var e chatReply
	if resp := do(t, "POST", svc.url+"/api/alice/conversations/"+r.ConversationID+"/inputs/"+in.ID, alice, `{"action":"decline"}`, &e); resp.StatusCode != 409 {
		t.Errorf("an answer after the timeout: got %d %+v, want 409", resp.StatusCode, e.Error)
	}
}
