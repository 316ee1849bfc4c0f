package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
)

// runningCall starts a turn of user's with one running call and returns
// the turn and the call.
func runningCall(t *testing.T, s Store, user string) (switchboard.TurnStart, switchboard.ToolCall) {
	t.Helper()
	ts := newTurn(t, s, user, "", "book me a table")
	u := switchboard.TurnUpdate{Turn: ts.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
		ToolCalls: []switchboard.RequestedCall{{ID: "call_1", Name: "everything__trigger-elicitation-request", Arguments: "{}"}}}},
		ToolCalls: []switchboard.ToolCall{{CallID: "call_1", Server: "everything", Tool: "trigger-elicitation-request", Status: switchboard.CallRunning, StartedAt: t0}}}
	save(t, s, &u)
	return ts, u.ToolCalls[0]
}

func formInput(ts switchboard.TurnStart, call switchboard.ToolCall) switchboard.Input {
	return switchboard.Input{UserID: ts.Turn.UserID, ConversationID: ts.Conversation.ID, TurnID: ts.Turn.ID, ToolCallID: call.ID,
		Server: "everything", Mode: switchboard.InputForm, Message: "Your name?",
		RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}}}`)}
}

// testInputs: a server's question is stored pending for its user only,
// answered exactly once, closed without an answer once, and an answer
// after its turn ended fails (the request that asked is gone).
func testInputs(t *testing.T, s Store) {
	ctx := t.Context()
	ts, call := runningCall(t, s, "alice")
	in := formInput(ts, call)
	if err := s.CreateInput(ctx, &in); err != nil {
		t.Fatalf("CreateInput: %v", err)
	}
	if in.ID == "" || in.Status != switchboard.InputPending || in.CreatedAt.IsZero() {
		t.Fatalf("the stored input: %+v; want an id, pending, a time", in)
	}
	stolen := formInput(ts, call)
	stolen.UserID = "bob"
	wantErr(t, "an input of bob's on alice's call", s.CreateInput(ctx, &stolen), switchboard.ErrNotFound)
	bad := formInput(ts, call)
	bad.Mode = "voice"
	wantErr(t, "an input of an unknown mode", s.CreateInput(ctx, &bad), switchboard.ErrInvalid)
	bad = formInput(ts, call)
	bad.Mode, bad.RequestedSchema = switchboard.InputURL, nil
	wantErr(t, "a url input without a url", s.CreateInput(ctx, &bad), switchboard.ErrInvalid)

	got, err := s.GetInput(ctx, "alice", in.ID)
	if err != nil || got.Message != "Your name?" || !cmp.Equal(got.RequestedSchema, in.RequestedSchema, jsonEqual) || got.ToolCallID != call.ID {
		t.Errorf("GetInput: %+v, %v", got, err)
	}
	// A modern server's question keeps its key and the state to echo.
	modern := formInput(ts, call)
	modern.RequestKey, modern.RequestState = "name", "opaque-state-1"
	if err := s.CreateInput(ctx, &modern); err != nil {
		t.Fatalf("CreateInput of a modern server's question: %v", err)
	}
	if got, err := s.GetInput(ctx, "alice", modern.ID); err != nil || got.RequestKey != "name" || got.RequestState != "opaque-state-1" {
		t.Errorf("GetInput of a modern server's question: key %q, state %q, %v; want name, opaque-state-1", got.RequestKey, got.RequestState, err)
	}
	if got, err := s.AnswerInput(ctx, "alice", modern.ID, switchboard.ActionDecline, nil); err != nil || got.Input.RequestState != "opaque-state-1" || got.Resumed {
		t.Errorf("AnswerInput of a modern server's question: state %q, resumed %t, %v; want opaque-state-1, a running turn not resumed", got.Input.RequestState, got.Resumed, err)
	}
	if got, _ := s.GetInput(ctx, "alice", in.ID); got.RequestKey != "" || got.RequestState != "" {
		t.Errorf("a legacy question: key %q, state %q; want none", got.RequestKey, got.RequestState)
	}
	if _, err := s.GetInput(ctx, "bob", in.ID); !switchboard.IsCode(err, switchboard.CodeInputNotFound) {
		t.Errorf("bob reading alice's input: got %v, want input_not_found", err)
	}
	if _, err := s.AnswerInput(ctx, "bob", in.ID, switchboard.ActionAccept, json.RawMessage(`{"name":"bob"}`)); !switchboard.IsCode(err, switchboard.CodeInputNotFound) {
		t.Errorf("bob answering alice's input: got %v, want input_not_found", err)
	}
	if l, err := s.ListInputs(ctx, "bob", ts.Conversation.ID, false); err != nil || len(l) != 0 {
		t.Errorf("bob listing alice's conversation's inputs: %+v, %v", l, err)
	}
	if l, err := s.ListInputs(ctx, "alice", ts.Conversation.ID, true); err != nil || len(l) != 1 || l[0].ID != in.ID {
		t.Errorf("alice's pending inputs: %+v, %v", l, err)
	}
	if _, err := s.AnswerInput(ctx, "alice", in.ID, "maybe", nil); !switchboard.IsCode(err, "invalid_action") {
		t.Errorf("an unknown action: got %v, want invalid_action", err)
	}

	got2, err := s.AnswerInput(ctx, "alice", in.ID, switchboard.ActionAccept, json.RawMessage(`{"name":"Alice"}`))
	answered := got2.Input
	if err != nil || answered.Status != switchboard.InputAnswered || answered.Action != "accept" || !cmp.Equal(answered.Content, json.RawMessage(`{"name":"Alice"}`), jsonEqual) || answered.AnsweredAt.IsZero() {
		t.Fatalf("AnswerInput: %+v, %v", answered, err)
	}
	if _, err := s.AnswerInput(ctx, "alice", in.ID, switchboard.ActionDecline, nil); !switchboard.IsCode(err, switchboard.CodeInputClosed) {
		t.Errorf("a second answer: got %v, want input_closed", err)
	}
	if c, err := s.CloseInput(ctx, in.ID, switchboard.InputFailed, "late"); err != nil || c.Status != switchboard.InputAnswered || c.Action != "accept" {
		t.Errorf("closing an answered input: %+v, %v; want it answered still", c, err)
	}
	if l, _ := s.ListInputs(ctx, "alice", ts.Conversation.ID, true); len(l) != 0 {
		t.Errorf("pending inputs after the answer: %+v, want none", l)
	}

	second := formInput(ts, call)
	if err := s.CreateInput(ctx, &second); err != nil {
		t.Fatal(err)
	}
	if c, err := s.CloseInput(ctx, second.ID, switchboard.InputCancelled, "a new message"); err != nil || c.Status != switchboard.InputCancelled || c.Reason != "a new message" {
		t.Errorf("CloseInput: %+v, %v", c, err)
	}
	if _, err := s.AnswerInput(ctx, "alice", second.ID, switchboard.ActionAccept, nil); !switchboard.IsCode(err, switchboard.CodeInputClosed) {
		t.Errorf("answering a cancelled input: got %v, want input_closed", err)
	}
	if _, err := s.CloseInput(ctx, second.ID, switchboard.InputAnswered, ""); err == nil {
		t.Errorf("closing as answered: got no error, want invalid")
	}

	// The turn ends while a question waits: the answer finds nobody.
	third := formInput(ts, call)
	if err := s.CreateInput(ctx, &third); err != nil {
		t.Fatal(err)
	}
	turn := ts.Turn
	turn.Status = switchboard.TurnFailed
	c := call
	c.Status = switchboard.CallFailed
	save(t, s, &switchboard.TurnUpdate{Turn: turn, ToolCalls: []switchboard.ToolCall{c}})
	if _, err := s.AnswerInput(ctx, "alice", third.ID, switchboard.ActionAccept, nil); !switchboard.IsCode(err, switchboard.CodeInputClosed) {
		t.Errorf("answering after the turn ended: got %v, want input_closed", err)
	}
	if got, _ := s.GetInput(ctx, "alice", third.ID); got.Status != switchboard.InputFailed {
		t.Errorf("the input answered after its turn ended: %s, want failed", got.Status)
	}

	if err := s.DeleteConversation(ctx, "alice", ts.Conversation.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetInput(ctx, "alice", in.ID); !switchboard.IsCode(err, switchboard.CodeInputNotFound) {
		t.Errorf("an input of a deleted conversation: got %v, want input_not_found", err)
	}
}

// testSamplings: a call's sampling rows are kept linked to it, only for
// the call's own user and turn, and go with its conversation.
func testSamplings(t *testing.T, s Store) {
	ctx := t.Context()
	ts, call := runningCall(t, s, "alice")
	row := switchboard.Sampling{UserID: "alice", ConversationID: ts.Conversation.ID, TurnID: ts.Turn.ID, ToolCallID: call.ID,
		Server: "everything", Kind: "sampling", Model: "scripted", Status: switchboard.SamplingSucceeded, MaxTokens: 100,
		PromptTokens: 12, CompletionTokens: 7, Duration: 1500 * time.Microsecond, StartedAt: t0, FinishedAt: t0.Add(2 * time.Millisecond)}
	if err := s.RecordSampling(ctx, &row); err != nil || row.ID == "" {
		t.Fatalf("RecordSampling: %v (id %q)", err, row.ID)
	}
	denied := row
	denied.ID, denied.Status, denied.Error, denied.StartedAt = "", switchboard.SamplingDenied, "the user did not approve", t0.Add(time.Second)
	if err := s.RecordSampling(ctx, &denied); err != nil {
		t.Fatal(err)
	}
	stolen := row
	stolen.ID, stolen.UserID = "", "bob"
	wantErr(t, "a sampling row of bob's on alice's call", s.RecordSampling(ctx, &stolen), switchboard.ErrNotFound)
	bad := row
	bad.ID, bad.Status = "", "maybe"
	wantErr(t, "an unknown status", s.RecordSampling(ctx, &bad), switchboard.ErrInvalid)
	got, err := s.ListSamplings(ctx, call.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]switchboard.Sampling{row, denied}, got); diff != "" {
		t.Errorf("ListSamplings (-want +got):\n%s", diff)
	}
	if err := s.DeleteConversation(ctx, "alice", ts.Conversation.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListSamplings(ctx, call.ID); len(got) != 0 {
		t.Errorf("the samplings of a deleted conversation: %+v, want none", got)
	}
}
