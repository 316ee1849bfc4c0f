package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
)

func testInvalid(t *testing.T, s Store) {
	ctx := t.Context()
	existing := newTurn(t, s, "alice", "", "hi")
	tests := []struct {
		name string
		ts   switchboard.TurnStart
	}{
		{"no user", switchboard.TurnStart{UserMessage: switchboard.Message{Content: "hi"}}},
		{"user id too long", switchboard.TurnStart{Turn: switchboard.Turn{UserID: strings.Repeat("u", 256)}}},
		{"negative history", switchboard.TurnStart{Turn: switchboard.Turn{UserID: "a"}, HistoryLimit: -1}},
		{"malformed turn id", switchboard.TurnStart{Turn: switchboard.Turn{UserID: "a", ID: "t1"}}},
		{"malformed message id", switchboard.TurnStart{Turn: switchboard.Turn{UserID: "a"}, UserMessage: switchboard.Message{ID: "m1"}}},
		{"unknown role", switchboard.TurnStart{Turn: switchboard.Turn{UserID: "a"}, UserMessage: switchboard.Message{Role: "robot"}}},
		{"unknown type", switchboard.TurnStart{Turn: switchboard.Turn{UserID: "a"}, UserMessage: switchboard.Message{Type: "image"}}},
		{"title too long", switchboard.TurnStart{Conversation: switchboard.Conversation{Title: strings.Repeat("t", 256)}, Turn: switchboard.Turn{UserID: "a"}}},
	}
	for _, tt := range tests {
		_, err := s.BeginTurn(ctx, &tt.ts)
		wantErr(t, "BeginTurn with "+tt.name, err, switchboard.ErrInvalid)
	}
	if _, err := s.BeginTurn(ctx, nil); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("BeginTurn(nil): got error %v, want %v", err, switchboard.ErrInvalid)
	}
	list, err := s.ListConversations(ctx, "a", 0)
	if err != nil || len(list) != 0 {
		t.Errorf("conversations after invalid turns: got %d, %v, want none", len(list), err)
	}

	id := existing.Turn.ID
	running := switchboard.ToolCall{Server: "s", Tool: "t", Status: switchboard.CallRunning}
	updates := []struct {
		name string
		u    switchboard.TurnUpdate
	}{
		{"no status", switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id}}},
		{"unknown status", switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id, Status: "done"}}},
		{"message without role", switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id, Status: switchboard.TurnRunning},
			Messages: []switchboard.Message{{Content: "x"}}}},
		{"call without status", switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id, Status: switchboard.TurnRunning},
			ToolCalls: []switchboard.ToolCall{{Server: "s", Tool: "t"}}}},
		{"call with malformed id", switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id, Status: switchboard.TurnRunning},
			ToolCalls: []switchboard.ToolCall{func() switchboard.ToolCall { c := running; c.ID = "c1"; return c }()}}},
		{"arguments not JSON", switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id, Status: switchboard.TurnRunning},
			ToolCalls: []switchboard.ToolCall{func() switchboard.ToolCall { c := running; c.Arguments = json.RawMessage(`{"a":`); return c }()}}},
		{"structured result not JSON", switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id, Status: switchboard.TurnRunning},
			ToolCalls: []switchboard.ToolCall{func() switchboard.ToolCall { c := running; c.StructuredResult = json.RawMessage(`nope`); return c }()}}},
		{"tool name too long", switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id, Status: switchboard.TurnRunning},
			ToolCalls: []switchboard.ToolCall{func() switchboard.ToolCall { c := running; c.Tool = strings.Repeat("t", 256); return c }()}}},
	}
	for _, tt := range updates {
		err := s.SaveTurn(ctx, &tt.u)
		wantErr(t, "SaveTurn with "+tt.name, err, switchboard.ErrInvalid)
	}
	if err := s.SaveTurn(ctx, nil); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("SaveTurn(nil): got error %v, want %v", err, switchboard.ErrInvalid)
	}
	got, err := s.GetTurn(ctx, "alice", id)
	if err != nil || got.Status != switchboard.TurnRunning {
		t.Errorf("turn after invalid updates: got status %q, %v, want running", got.Status, err)
	}
	_, err = s.UpdateConversation(ctx, "alice", switchboard.Conversation{ID: existing.Conversation.ID, Title: strings.Repeat("t", 256)})
	wantErr(t, "UpdateConversation with a long title", err, switchboard.ErrInvalid)
}

// testMessagesRoundTrip stores messages of every type and role and reads
// them back.
func testMessagesRoundTrip(t *testing.T, s Store) {
	ts := newTurn(t, s, "alice", "", "What is on my list?")
	explicitTime := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))
	explicitID := strings.ToUpper(switchboard.NewID())
	u := switchboard.TurnUpdate{
		Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning, Steps: 2},
		Messages: []switchboard.Message{
			{Role: switchboard.RoleSystem, Content: "You manage tasks."},
			{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall, ToolCalls: []switchboard.RequestedCall{
				{ID: "call_1", Name: "tasks_list", Arguments: `{"status": "open"}`},
				{ID: "call_2", Name: "tasks_count", Arguments: `{}`},
			}},
			{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: "call_1", ToolName: "tasks_list",
				Content: `[{"title":"milk"}]`},
			{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult, ToolCallID: "call_2", ToolName: "tasks_count",
				Content: "tool error: boom"},
			{ID: explicitID, Role: switchboard.RoleAssistant, Content: "You need milk.", Timestamp: explicitTime},
			{Role: switchboard.RoleAssistant, Type: switchboard.MessageError, Content: "the model timed out"},
			{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall, ToolCalls: []switchboard.RequestedCall{}},
		},
	}
	save(t, s, &u)
	want := append([]switchboard.Message{ts.UserMessage}, u.Messages...)
	for i := range want[1:] {
		m := &want[i+1]
		if m.ConversationID != ts.Conversation.ID || m.TurnID != ts.Turn.ID || !switchboard.ValidID(m.ID) || m.Timestamp.IsZero() {
			t.Errorf("message %d as filled in: got %+v, want an id, a time, the turn's conversation and turn", i+1, *m)
		}
	}
	if m := want[5]; m.ID != strings.ToLower(explicitID) || !m.Timestamp.Equal(explicitTime.Truncate(time.Microsecond)) {
		t.Errorf("message with id and time: got %s at %v, want %s at %v", m.ID, m.Timestamp, strings.ToLower(explicitID), explicitTime.Truncate(time.Microsecond))
	}
	if want[1].Type != switchboard.MessageText {
		t.Errorf("message without a type: got %q, want %q", want[1].Type, switchboard.MessageText)
	}
	if want[7].ToolCalls != nil {
		t.Errorf("empty tool calls: got %#v, want nil", want[7].ToolCalls)
	}
	got, err := s.ListMessages(t.Context(), "alice", ts.Conversation.ID)
	if err != nil {
		t.Fatalf("ListMessages: got error %v, want none", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListMessages (-want +got):\n%s", diff)
	}
}

func testSanitize(t *testing.T, s Store) {
	ts := switchboard.TurnStart{
		Turn:        switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "nul\x00 and bad \xff utf-8"},
	}
	begin(t, s, &ts)
	if want := "nul\uFFFD and bad \uFFFD utf-8"; ts.UserMessage.Content != want {
		t.Errorf("cleaned content: got %q, want %q", ts.UserMessage.Content, want)
	}
	u := switchboard.TurnUpdate{
		Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning},
		Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
			ToolCalls: []switchboard.RequestedCall{{ID: "c\x00", Name: "n", Arguments: "{\"a\":\"\x00\"}"}}}},
		ToolCalls: []switchboard.ToolCall{{
			Server: "s", Tool: "t", Status: switchboard.CallSucceeded,
			Arguments:        json.RawMessage(`{"text": "a\u0000b", "k\u0000": [1, "\ud800"]}`),
			StructuredResult: json.RawMessage(" [ 1 , 2 ] "),
			Result:           "out\x00put",
		}},
	}
	save(t, s, &u)
	call, err := s.GetToolCall(t.Context(), "alice", u.ToolCalls[0].ID)
	if err != nil {
		t.Fatalf("GetToolCall: got error %v, want none", err)
	}
	want := u.ToolCalls[0]
	want.Arguments = json.RawMessage(`{"text": "a\ufffdb", "k\ufffd": [1, "\ufffd"]}`)
	want.StructuredResult = json.RawMessage(`[1,2]`)
	want.Result = "out\uFFFDput"
	if diff := cmp.Diff(want, call, jsonEqual); diff != "" {
		t.Errorf("cleaned tool call (-want +got):\n%s", diff)
	}
	if string(call.StructuredResult) != "[1,2]" {
		t.Errorf("structured result: got %s, want compact [1,2]", call.StructuredResult)
	}
	msgs, err := s.ListMessages(t.Context(), "alice", ts.Conversation.ID)
	if err != nil {
		t.Fatalf("ListMessages: got error %v, want none", err)
	}
	if diff := cmp.Diff(append([]switchboard.Message{ts.UserMessage}, u.Messages...), msgs); diff != "" {
		t.Errorf("cleaned messages (-want +got):\n%s", diff)
	}
}

func testCanceled(t *testing.T, s Store) {
	ts := newTurn(t, s, "alice", "", "hi")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.GetConversation(ctx, "alice", ts.Conversation.ID)
	wantErr(t, "GetConversation with a canceled context", err, context.Canceled)
	_, err = s.BeginTurn(ctx, &switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}})
	wantErr(t, "BeginTurn with a canceled context", err, context.Canceled)
	if errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("BeginTurn with a canceled context: got %v, want an error that is not ErrUnavailable", err)
	}
	ctx, cancel = context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = s.ListMessages(ctx, "alice", ts.Conversation.ID)
	wantErr(t, "ListMessages past the deadline", err, context.DeadlineExceeded)
	wantErr(t, "ListMessages past the deadline", err, switchboard.ErrUnavailable)
}
