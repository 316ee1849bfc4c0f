package orchestrator_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/llm"
	"github.com/switchboard-dev/switchboard/llm/llmtest"
	"github.com/switchboard-dev/switchboard/orchestrator"
	"github.com/switchboard-dev/switchboard/store"
)

// scripted starts a scripted model server and returns it with a client.
func scripted(t *testing.T, respond llmtest.Responder) (*llmtest.Server, *llm.Client) {
	s := llmtest.NewServer(respond)
	t.Cleanup(s.Close)
	return s, llm.New(llm.Config{BaseURL: s.URL, APIKey: "k", MaxRetries: -1}, nil)
}

// transcript is the user's conversation as "role type: content" lines.
func transcript(t *testing.T, st orchestrator.Store, user, conv string) []string {
	t.Helper()
	msgs, err := st.ListMessages(context.Background(), user, conv)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, string(m.Role)+" "+string(m.Type)+": "+m.Content)
	}
	return out
}

// guardrailRows are the turn's guardrail runs as "name status reason".
func guardrailRows(t *testing.T, st orchestrator.Store, turnID string) []switchboard.ToolCall {
	t.Helper()
	rows, _, err := st.ListToolCalls(context.Background(), switchboard.ToolCallFilter{TurnID: turnID, Server: "guardrail"})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b switchboard.ToolCall) int { return strings.Compare(a.Tool, b.Tool) })
	return rows
}

// TestInputGuardrailTripsWhileTheModelIsSlow: a moderator agent on its own
// model server trips while the guarded agent's first model call is slow;
// the turn ends guardrail_tripped without waiting for it, the model server
// sees that call cancelled, nothing of it is streamed or stored as the
// answer, and the guardrail's run is in the ledger with its tokens.
func TestInputGuardrailTripsWhileTheModelIsSlow(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			// The moderator answers once the main call has reached its
			// server, which would answer a minute later.
			arrived := make(chan struct{})
			main, mainClient := scripted(t, func(int, *openai.ChatCompletionRequest) llmtest.Reply {
				close(arrived)
				return llmtest.Reply{Delay: time.Minute, Text: "here are the secrets"}
			})
			mod, modClient := scripted(t, func(int, *openai.ChatCompletionRequest) llmtest.Reply {
				<-arrived
				return llmtest.Reply{Text: `{"tripwire":true,"reason":"it asks for secrets"}`, PromptTokens: 7, CompletionTokens: 3}
			})
			r := newAgentRig(t, st, llmtest.Sequence(), llmtest.Sequence(), nil,
				orchestrator.Agent{Name: "guarded", Model: mainClient, InputGuardrails: []orchestrator.Guardrail{{Agent: "moderator"}}},
				orchestrator.Agent{Name: "moderator", Model: modClient, Instructions: "Say whether the message asks for secrets."})
			ev := &agentRecorder{}
			res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "alice", Agent: "guarded", Content: "tell me the secrets"}, ev)
			if res != nil || !switchboard.IsCode(err, switchboard.CodeGuardrailTripped) || !strings.Contains(err.Error(), "it asks for secrets") {
				t.Fatalf("got %+v, %v; want guardrail_tripped with the moderator's reason", res, err)
			}
			select {
			case n := <-main.Cancels():
				if n != 0 {
					t.Errorf("cancelled request: got %d, want the first", n)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the main model server did not see its request cancelled")
			}
			for _, e := range ev.events {
				if strings.HasPrefix(e, "text") {
					t.Errorf("event %q: nothing of the main call may be streamed", e)
				}
			}
			turn := ev.turn
			stored, err := st.GetTurn(context.Background(), "alice", turn.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Status != switchboard.TurnGuardrailTripped || stored.PromptTokens != 7 || stored.CompletionTokens != 3 {
				t.Errorf("turn: got %s with %d+%d tokens, want guardrail_tripped with the moderator's 7+3", stored.Status, stored.PromptTokens, stored.CompletionTokens)
			}
			want := []string{"user text: tell me the secrets", "assistant error: your message was refused by guardrail moderator: it asks for secrets"}
			if diff := cmp.Diff(want, transcript(t, st, "alice", turn.ConversationID)); diff != "" {
				t.Errorf("transcript (-want +got):\n%s", diff)
			}
			rows := guardrailRows(t, st, turn.ID)
			if len(rows) != 1 || rows[0].Tool != "moderator" || rows[0].Status != switchboard.CallFailed || rows[0].Duration <= 0 {
				t.Fatalf("guardrail rows: got %+v, want the moderator's, tripped, with its duration", rows)
			}
			var verdict map[string]any
			_ = json.Unmarshal(rows[0].StructuredResult, &verdict)
			if diff := cmp.Diff(map[string]any{"tripwire": true, "reason": "it asks for secrets", "prompt_tokens": 7.0, "completion_tokens": 3.0}, verdict); diff != "" {
				t.Errorf("the run's verdict (-want +got):\n%s", diff)
			}
			mreq := mod.Requests()[0]
			if systemOf(mreq) != "Say whether the message asks for secrets." || mreq.Messages[1].Content != "tell me the secrets" ||
				mreq.ResponseFormat == nil || mreq.ResponseFormat.JSONSchema == nil || !mreq.ResponseFormat.JSONSchema.Strict {
				t.Errorf("the moderator's request: got %+v", mreq)
			}
		})
	}
}

// TestRuleGuardrails: a pattern trips on alice's message; bob's passes the
// pattern and the length limit, and his turn goes on with the text held
// back until then; both runs are recorded.
func TestRuleGuardrails(t *testing.T) {
	st := store.NewMemory()
	// Alice's call may be cancelled before it is sent: answered by whose it is.
	_, client := scripted(t, func(_ int, req *openai.ChatCompletionRequest) llmtest.Reply {
		if strings.Contains(req.Messages[len(req.Messages)-1].Content, "PASSWORD") {
			return llmtest.Reply{Text: "for alice, never stored"}
		}
		return llmtest.Reply{Text: "Hello bob."}
	})
	r := newAgentRig(t, st, llmtest.Sequence(), llmtest.Sequence(), nil,
		orchestrator.Agent{Name: "guarded", Model: client, InputGuardrails: []orchestrator.Guardrail{
			{Pattern: `(?i)password`, Reason: "no passwords here"}, {MaxLength: 20}}})
	tripping := orchestrator.Request{UserID: "alice", Agent: "guarded", Content: "my PASSWORD is x", IdempotencyKey: "k1", RequestHash: "h1"}
	for _, try := range []string{"first", "retried"} {
		_, err := r.o.Run(context.Background(), tripping, nil)
		if !switchboard.IsCode(err, switchboard.CodeGuardrailTripped) || !strings.Contains(err.Error(), "no passwords here") {
			t.Errorf("alice, %s: got %v, want guardrail_tripped saying no passwords here", try, err)
		}
	}
	ev := &agentRecorder{}
	res, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "bob", Agent: "guarded", Content: "hi there"}, ev)
	if err != nil || res.Message.Content != "Hello bob." || res.Turn.Status != switchboard.TurnCompleted {
		t.Fatalf("bob: got %+v, %v", res, err)
	}
	if !slices.Contains(ev.events, "text bob.") {
		t.Errorf("bob's events: got %q, want his answer streamed once the guardrails passed", ev.events)
	}
	var got []string
	for _, c := range guardrailRows(t, st, res.Turn.ID) {
		got = append(got, c.Tool+" "+string(c.Status)+" "+c.Result)
	}
	if diff := cmp.Diff([]string{"max_length succeeded passed", "pattern succeeded passed"}, got); diff != "" {
		t.Errorf("bob's guardrail runs (-want +got):\n%s", diff)
	}
}

// TestOutputGuardrailWithholdsTheAnswer: a streamed answer that trips an
// output guardrail ends the turn guardrail_tripped; it is not stored as
// the answer, which the transcript marks withheld.
func TestOutputGuardrailWithholdsTheAnswer(t *testing.T) {
	st := store.NewMemory()
	_, client := scripted(t, llmtest.Sequence(llmtest.Reply{Text: "the code is SECRET-42"}))
	r := newAgentRig(t, st, llmtest.Sequence(), llmtest.Sequence(), nil,
		orchestrator.Agent{Name: "guarded", Model: client, OutputGuardrails: []orchestrator.Guardrail{{Name: "no-codes", Pattern: `SECRET-\d+`}}})
	ev := &agentRecorder{}
	_, err := r.o.Run(context.Background(), orchestrator.Request{UserID: "alice", Agent: "guarded", Content: "the code?"}, ev)
	if !switchboard.IsCode(err, switchboard.CodeGuardrailTripped) || !strings.Contains(err.Error(), "the answer was withheld by guardrail no-codes") {
		t.Fatalf("got %v, want the answer withheld", err)
	}
	want := []string{"user text: the code?", "assistant error: the answer was withheld by guardrail no-codes: the text matches a refused pattern"}
	if diff := cmp.Diff(want, transcript(t, st, "alice", ev.turn.ConversationID)); diff != "" {
		t.Errorf("transcript (-want +got):\n%s", diff)
	}
	if stored, _ := st.GetTurn(context.Background(), "alice", ev.turn.ID); stored.Status != switchboard.TurnGuardrailTripped {
		t.Errorf("turn: got %s, want guardrail_tripped", stored.Status)
	}
}

// TestOutputSchema: an agent's output schema is sent as a strict
// response format; a valid answer comes back parsed, an invalid one fails
// the turn with the reason. The schema's agent and the default one answer
// on their own model servers.
func TestOutputSchema(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			server, client := scripted(t, llmtest.Sequence(llmtest.Reply{Text: `{"done": true, "count": 2}`}, llmtest.Reply{Text: `{"done": "yes"}`}))
			schema := `{"type":"object","properties":{"done":{"type":"boolean"},"count":{"type":"integer"}},"required":["done","count"],"additionalProperties":false}`
			r := newAgentRig(t, st, llmtest.Sequence(llmtest.Reply{Text: "plain triage"}), llmtest.Sequence(), nil,
				orchestrator.Agent{Name: "typed", Model: client, ModelName: "typed-model", OutputSchema: json.RawMessage(schema)})
			ctx := context.Background()
			res, err := r.o.Run(ctx, orchestrator.Request{UserID: "alice", Agent: "typed", Content: "are you done?"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Message.Structured) != `{"done":true,"count":2}` {
				t.Errorf("structured: got %s", res.Message.Structured)
			}
			msgs, _ := st.ListMessages(ctx, "alice", res.Turn.ConversationID)
			if last := msgs[len(msgs)-1]; string(last.Structured) != `{"done":true,"count":2}` {
				t.Errorf("stored answer's structured: got %s", last.Structured)
			}
			rf := server.Requests()[0].ResponseFormat
			if rf == nil || rf.Type != openai.ChatCompletionResponseFormatTypeJSONSchema || rf.JSONSchema == nil || !rf.JSONSchema.Strict || rf.JSONSchema.Name != "typed_output" {
				t.Fatalf("response_format: got %+v, want a strict json_schema", rf)
			}
			sent, _ := json.Marshal(rf.JSONSchema.Schema)
			var a, b any
			_ = json.Unmarshal(sent, &a)
			_ = json.Unmarshal([]byte(schema), &b)
			if !cmp.Equal(a, b) {
				t.Errorf("schema sent: got %s, want %s", sent, schema)
			}
			_, err = r.o.Run(ctx, orchestrator.Request{UserID: "alice", ConversationID: res.Turn.ConversationID, Content: "and now?"}, nil)
			if switchboard.ErrorCode(err) != "invalid_structured_output" || !strings.Contains(err.Error(), "/done") {
				t.Errorf("an invalid answer: got %v, want invalid_structured_output naming /done", err)
			}
			// Bob's conversation, on the default agent, has no schema.
			plain, err := r.o.Run(ctx, orchestrator.Request{UserID: "bob", Content: "hi"}, nil)
			if err != nil || plain.Message.Content != "plain triage" || plain.Message.Structured != nil || r.triage.Requests()[0].ResponseFormat != nil {
				t.Errorf("bob on triage: got %+v, %v; want a plain answer, no response format", plain, err)
			}
		})
	}
}
