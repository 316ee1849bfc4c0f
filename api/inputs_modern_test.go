package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard/api"
	"github.com/switchboard-dev/switchboard/internal/mcptest"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/mcpclient"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
	"github.com/switchboard-dev/switchboard/tools"
)

// modernConn connects to the modern server at url (protocol auto finds
// the modern era over HTTP).
func modernConn(t *testing.T, url string) *mcpclient.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := mcpclient.Dial(ctx, mcpclient.Config{Name: "modern", URL: url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if p := conn.Protocol(); p.Era != mcpclient.EraModern {
		t.Fatalf("the connection speaks %+v, want the modern era", p)
	}
	return conn
}

// TestInputModernServer: a modern server (MCP 2026-07-28, go-sdk) asks
// alice's name by answering the call input_required; on both stores the
// turn stops awaiting_input with the question, stored with the server's
// key and requestState; bob cannot answer it, and his own question on the
// same server is his; content that does not fit is refused (400); the
// answer makes the call again with it (the server greets with what it
// got) and the reply is the turn's end; a second answer is refused; of
// two answers to bob's at once one wins and the server finishes his call
// once; a new message cancels a question, whose call is never made again.
func TestInputModernServer(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			conn := modernConn(t, mcptest.StartModernHTTP(t))
			svc := newServiceOver(t, open(t), []tools.Source{{Server: tools.Shared(conn)}},
				askingModel("modern__greet"), nil, nil, nil, api.Deps{})
			alice, bob := token(t, "alice"), token(t, "bob")

			var r inputReply
			resp := do(t, "POST", svc.url+"/api/alice/chat", alice, `{"message":{"content":"ask me"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
				t.Fatalf("ask: got %d %+v", resp.StatusCode, r)
			}
			in := r.PendingInputs[0]
			if in.Mode != "form" || in.Server != "modern" || in.Message != "What is your name?" ||
				!strings.Contains(string(in.RequestedSchema), `"name"`) || len(r.ToolCalls) != 1 || r.ToolCalls[0].ID != in.ToolCallID {
				t.Fatalf("the pending input: %+v (calls %+v)", in, r.ToolCalls)
			}
			stored, err := svc.store.GetInput(t.Context(), "alice", in.ID)
			if err != nil || stored.RequestKey != "name" || stored.RequestState != "greet:hello" {
				t.Errorf("the stored input: key %q, state %q, %v; want name, greet:hello", stored.RequestKey, stored.RequestState, err)
			}
			conv := r.ConversationID
			answer := svc.url + "/api/alice/conversations/" + conv + "/inputs/" + in.ID

			var b inputReply
			if resp := do(t, "POST", svc.url+"/api/bob/chat", bob, `{"message":{"content":"ask me too"}}`, &b); resp.StatusCode != 200 || b.Status != "awaiting_input" || len(b.PendingInputs) != 1 {
				t.Fatalf("bob asks: got %d %+v", resp.StatusCode, b)
			}
			var e chatReply
			if resp := do(t, "POST", strings.Replace(answer, "/alice/", "/bob/", 1), bob, `{"action":"accept","content":{"name":"Bob"}}`, &e); resp.StatusCode != 404 {
				t.Errorf("bob answers alice's input: got %d %+v, want 404", resp.StatusCode, e.Error)
			}
			if resp := do(t, "POST", svc.url+"/api/bob/conversations/"+b.ConversationID+"/inputs/"+in.ID, bob, `{"action":"accept","content":{"name":"Bob"}}`, &e); resp.StatusCode != 404 {
				t.Errorf("bob answers alice's input in his conversation: got %d %+v, want 404", resp.StatusCode, e.Error)
			}
			if resp := do(t, "POST", answer, alice, `{"action":"accept","content":{}}`, &e); resp.StatusCode != 400 || e.Error.Code != "invalid_input" {
				t.Errorf("content without the required name: got %d %+v, want 400 invalid_input", resp.StatusCode, e.Error)
			}
			r = inputReply{}
			resp = do(t, "POST", answer, alice, `{"action":"accept","content":{"name":"Alice"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "The tool said: hello, Alice" || len(r.PendingInputs) != 0 {
				t.Fatalf("accept: got %d %+v", resp.StatusCode, r)
			}
			if len(r.ToolCalls) != 1 || r.ToolCalls[0].Status != "succeeded" || r.ToolCalls[0].Result != "hello, Alice" {
				t.Errorf("the call after the answer: %+v, want one, succeeded with hello, Alice", r.ToolCalls)
			}
			if resp := do(t, "POST", answer, alice, `{"action":"decline"}`, &e); resp.StatusCode != 409 || e.Error.Code != "input_closed" {
				t.Errorf("answering twice: got %d %+v, want 409 input_closed", resp.StatusCode, e.Error)
			}

			// Bob's answered twice at once: one answer wins, the call is
			// made again once.
			type outcome struct {
				code int
				r    inputReply
			}
			outcomes := make(chan outcome, 2)
			for _, body := range []string{`{"action":"decline"}`, `{"action":"accept","content":{"name":"Bob"}}`} {
				go func() {
					var o outcome
					o.code = do(t, "POST", svc.url+"/api/bob/conversations/"+b.ConversationID+"/inputs/"+b.PendingInputs[0].ID, bob, body, &o.r).StatusCode
					outcomes <- o
				}()
			}
			first, second := <-outcomes, <-outcomes
			if first.code != 200 {
				first, second = second, first
			}
			if first.code != 200 || second.code != 409 || first.r.Status != "completed" ||
				first.r.Message.Content != "The tool said: no name (decline)" && first.r.Message.Content != "The tool said: hello, Bob" {
				t.Errorf("bob's two answers at once: got %d %+v and %d, want one 200 with the greeting and one 409", first.code, first.r, second.code)
			}
			greetings := func() string {
				res, err := conn.CallTool(t.Context(), "greetings", json.RawMessage(`{}`))
				if err != nil {
					t.Fatal(err)
				}
				return res.Text
			}
			if got := greetings(); got != "2" {
				t.Errorf("the server finished %s greetings, want 2 (alice's and bob's, each once)", got)
			}

			// A new message cancels a question that waits: the server
			// never gets an answer to it.
			r = inputReply{}
			do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"ask again"}}`, &r)
			if r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
				t.Fatalf("ask again: got %+v", r)
			}
			waiting, waitingTurn := r.PendingInputs[0].ID, r.TurnID
			r = inputReply{}
			resp = do(t, "POST", svc.url+"/api/alice/chat?conversation_id="+conv, alice, `{"message":{"content":"never mind"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "plain" {
				t.Fatalf("a new message while a question waits: got %d %+v", resp.StatusCode, r)
			}
			if resp := do(t, "POST", svc.url+"/api/alice/conversations/"+conv+"/inputs/"+waiting, alice, `{"action":"accept","content":{"name":"Alice"}}`, &e); resp.StatusCode != 409 || e.Error.Code != "input_closed" {
				t.Errorf("answering the question the new message cancelled: got %d %+v, want 409", resp.StatusCode, e.Error)
			}
			if turn, err := svc.store.GetTurn(t.Context(), "alice", waitingTurn); err != nil || turn.Status != "cancelled" {
				t.Errorf("the turn that waited: %+v, %v; want cancelled", turn, err)
			}
			if got := greetings(); got != "2" {
				t.Errorf("after the cancelled question the server finished %s greetings, want 2 still", got)
			}
		})
	}
}

// TestInputModernAcrossInstances: with two instances on one Postgres and
// one modern server, alice's question asked through instance a is
// answered through instance b; the call is made again with the answer and
// the turn ends with the server's greeting.
func TestInputModernAcrossInstances(t *testing.T) {
	url := storetest.PostgresURL(t)
	server := mcptest.StartModernHTTP(t)
	inst := func(name string) *service {
		pg, err := store.OpenPostgres(context.Background(), url, &store.Options{SkipMigrate: true, Instance: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pg.Close)
		svc := newServiceOver(t, pg, []tools.Source{{Server: tools.Shared(modernConn(t, server))}},
			askingModel("modern__greet"), &orchestrator.Options{InputPoll: time.Hour}, nil, nil, api.Deps{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			store.ListenInputs(ctx, url, slog.New(slog.DiscardHandler), svc.orch.InputAnswered)
		}()
		t.Cleanup(func() { cancel(); <-done })
		return svc
	}
	a, b := inst("host-a"), inst("host-b")
	alice := token(t, "alice")
	var r inputReply
	if resp := do(t, "POST", a.url+"/api/alice/chat", alice, `{"message":{"content":"ask me"}}`, &r); resp.StatusCode != 200 || r.Status != "awaiting_input" || len(r.PendingInputs) != 1 {
		t.Fatalf("ask on instance a: got %d %+v", resp.StatusCode, r)
	}
	answer := "/api/alice/conversations/" + r.ConversationID + "/inputs/" + r.PendingInputs[0].ID
	r = inputReply{}
	resp := do(t, "POST", b.url+answer, alice, `{"action":"accept","content":{"name":"Alice via b"}}`, &r)
	if resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "The tool said: hello, Alice via b" {
		t.Fatalf("the answer posted to instance b: got %d %+v", resp.StatusCode, r)
	}
}

// TestSamplingModernServer: a modern server asks the model in an
// input_required result (sampling/createMessage in inputRequests); with
// sampling allow, on both stores, the scripted model answers it, the call
// is made again with the answer, and the request is a ledger row of its
// own linked to alice's call.
func TestSamplingModernServer(t *testing.T) {
	for storeName, open := range stores(t) {
		t.Run(storeName, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := mcpclient.Dial(ctx, mcpclient.Config{Name: "modern", URL: mcptest.StartModernHTTP(t), Sampling: "allow", SamplingMaxTokens: 40}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			ask := askingModel("modern__haiku")
			model := func(n int, req *openai.ChatCompletionRequest) llmtest.Reply {
				if req.Messages[0].Role == openai.ChatMessageRoleSystem && strings.Contains(req.Messages[0].Content, "modernmcp") {
					return llmtest.Reply{Text: "a modern haiku", PromptTokens: 9, CompletionTokens: 4}
				}
				return ask(n, req)
			}
			st := open(t)
			svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(conn)}}, model, nil, nil, nil, api.Deps{})
			var r inputReply
			resp := do(t, "POST", svc.url+"/api/alice/chat", token(t, "alice"), `{"message":{"content":"ask for a haiku"}}`, &r)
			if resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "The tool said: sampled: a modern haiku" || len(r.ToolCalls) != 1 {
				t.Fatalf("haiku: got %d %+v", resp.StatusCode, r)
			}
			rows, err := st.ListSamplings(t.Context(), r.ToolCalls[0].ID)
			if err != nil || len(rows) != 1 || rows[0].Status != "succeeded" || rows[0].MaxTokens != 40 || rows[0].UserID != "alice" || rows[0].CompletionTokens != 4 {
				t.Errorf("the sampling row: %+v, %v; want one, succeeded, alice's, capped at 40", rows, err)
			}
		})
	}
}

// TestSamplingWithTools: a modern server lets the model use one of its
// own tools through sampling with tools (MCP 2025-11-25): for alice, whose
// agent is offered the server's echo, the model asks for echo, the server
// runs it and sends the result back, and the model's answer ends the call
// (two sampling rows); bob's agent is offered only the server's plan, so
// his request offering echo is refused (-32602, a denied row) and his call
// fails, naming the tool; a tool the server does not have is refused for
// alice too.
func TestSamplingWithTools(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := mcpclient.Dial(ctx, mcpclient.Config{Name: "modern", URL: mcptest.StartModernHTTP(t), Sampling: "allow"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var sampled []*openai.ChatCompletionRequest
	var mu sync.Mutex
	ask := askingModel("modern__plan")
	model := func(n int, req *openai.ChatCompletionRequest) llmtest.Reply {
		if req.Messages[0].Role != openai.ChatMessageRoleSystem || !strings.Contains(req.Messages[0].Content, "planning") {
			if last := req.Messages[len(req.Messages)-1]; last.Role == openai.ChatMessageRoleUser && strings.Contains(last.Content, "secret") {
				return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "modern__plan", Arguments: `{"tool":"secret"}`}}}
			}
			return ask(n, req)
		}
		mu.Lock()
		sampled = append(sampled, req)
		mu.Unlock()
		if last := req.Messages[len(req.Messages)-1]; last.Role == openai.ChatMessageRoleTool {
			return llmtest.Reply{Text: "done: " + last.Content}
		}
		return llmtest.Reply{ToolCalls: []llmtest.Call{{Name: "echo", Arguments: `{"text":"hi"}`}}}
	}
	agentModel := llmtest.NewServer(model)
	t.Cleanup(agentModel.Close)
	client := llm.New(llm.Config{BaseURL: agentModel.URL, APIKey: "k", MaxRetries: -1}, nil)
	opts := &orchestrator.Options{DefaultAgent: "full", Agents: []orchestrator.Agent{
		{Name: "full", Description: "Every tool.", Model: client},
		{Name: "narrow", Description: "The plan tool only.", Model: client, Tools: []string{"modern__plan"}},
	}}
	st := store.NewMemory()
	svc := newServiceOver(t, st, []tools.Source{{Server: tools.Shared(conn)}}, model, opts, nil, nil, api.Deps{})

	var r inputReply
	resp := do(t, "POST", svc.url+"/api/alice/chat", token(t, "alice"), `{"message":{"content":"ask for a plan"}}`, &r)
	if resp.StatusCode != 200 || r.Status != "completed" || r.Message.Content != "The tool said: planned: done: echo: hi" || len(r.ToolCalls) != 1 {
		t.Fatalf("alice's plan: got %d %+v", resp.StatusCode, r)
	}
	rows, err := st.ListSamplings(t.Context(), r.ToolCalls[0].ID)
	if err != nil || len(rows) != 2 || rows[0].Status != "succeeded" || rows[1].Status != "succeeded" {
		t.Errorf("alice's sampling rows: %+v, %v; want two, succeeded", rows, err)
	}
	mu.Lock()
	if len(sampled) != 2 || len(sampled[0].Tools) != 1 || sampled[0].Tools[0].Function.Name != "echo" ||
		sampled[1].Messages[len(sampled[1].Messages)-2].Role != openai.ChatMessageRoleAssistant ||
		len(sampled[1].Messages[len(sampled[1].Messages)-2].ToolCalls) != 1 {
		t.Errorf("the sampling requests the model got: %d, the first with tools %+v; want two, echo offered, the second with the tool use and result", len(sampled), sampled[0].Tools)
	}
	mu.Unlock()

	var b inputReply
	resp = do(t, "POST", svc.url+"/api/bob/chat?agent=narrow", token(t, "bob"), `{"message":{"content":"ask for a plan"}}`, &b)
	if resp.StatusCode != 200 || len(b.ToolCalls) != 1 || b.ToolCalls[0].Status != "failed" || !strings.Contains(b.ToolCalls[0].Error, `"echo" is not a tool of modern`) {
		t.Fatalf("bob's plan with an agent not offered echo: got %d %+v", resp.StatusCode, b)
	}
	if rows, _ := st.ListSamplings(t.Context(), b.ToolCalls[0].ID); len(rows) != 1 || rows[0].Status != "denied" || rows[0].UserID != "bob" {
		t.Errorf("bob's sampling rows: %+v; want one, denied, his", rows)
	}

	var s inputReply
	resp = do(t, "POST", svc.url+"/api/alice/chat", token(t, "alice"), `{"message":{"content":"plan with the secret tool"}}`, &s)
	if resp.StatusCode != 200 || len(s.ToolCalls) != 1 || s.ToolCalls[0].Status != "failed" || !strings.Contains(s.ToolCalls[0].Error, `"secret" is not a tool of modern`) {
		t.Errorf("a plan offering a tool the server does not have: got %d %+v", resp.StatusCode, s)
	}
}
