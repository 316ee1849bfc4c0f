package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
)

func testCreateAndContinue(t *testing.T, s Store) {
	ctx := t.Context()
	first := switchboard.TurnStart{
		Turn:        switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "Add a task to buy milk"},
	}
	history := begin(t, s, &first)
	c, turn, msg := first.Conversation, first.Turn, first.UserMessage
	for name, id := range map[string]string{"conversation": c.ID, "turn": turn.ID, "message": msg.ID} {
		if !switchboard.ValidID(id) {
			t.Errorf("%s id: got %q, want a UUID", name, id)
		}
	}
	if c.UserID != "alice" || c.Status != switchboard.ConversationActive || c.Title != "Add a task to buy milk" ||
		c.CreatedAt.IsZero() || !c.UpdatedAt.Equal(c.CreatedAt) {
		t.Errorf("new conversation: got %+v, want alice's, active, titled after the message, created = updated", c)
	}
	if turn.ConversationID != c.ID || turn.Status != switchboard.TurnRunning || turn.StartedAt.IsZero() {
		t.Errorf("new turn: got %+v, want running in conversation %s with a start time", turn, c.ID)
	}
	wantMsg := switchboard.Message{
		ID: msg.ID, ConversationID: c.ID, TurnID: turn.ID, Role: switchboard.RoleUser,
		Content: "Add a task to buy milk", Type: switchboard.MessageText, Timestamp: msg.Timestamp,
	}
	if diff := cmp.Diff([]switchboard.Message{wantMsg}, history); diff != "" {
		t.Errorf("history of a new conversation (-want +got):\n%s", diff)
	}
	got, err := s.GetConversation(ctx, "alice", c.ID)
	if err != nil {
		t.Fatalf("GetConversation: got error %v, want none", err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("GetConversation returned other than BeginTurn filled in (-want +got):\n%s", diff)
	}
	gotTurn, err := s.GetTurn(ctx, "alice", turn.ID)
	if err != nil {
		t.Fatalf("GetTurn: got error %v, want none", err)
	}
	if diff := cmp.Diff(turn, gotTurn); diff != "" {
		t.Errorf("GetTurn returned other than BeginTurn filled in (-want +got):\n%s", diff)
	}

	reply := switchboard.Message{Role: switchboard.RoleAssistant, Content: "Done."}
	update := switchboard.TurnUpdate{
		Turn:     switchboard.Turn{ID: turn.ID, Status: switchboard.TurnCompleted, FinishedAt: time.Now()},
		Messages: []switchboard.Message{reply},
	}
	save(t, s, &update)
	reply = update.Messages[0]
	if reply.ConversationID != c.ID || reply.TurnID != turn.ID || !switchboard.ValidID(reply.ID) || reply.Timestamp.IsZero() {
		t.Errorf("saved reply: got %+v, want an id, a time, conversation %s and turn %s", reply, c.ID, turn.ID)
	}

	second := switchboard.TurnStart{
		Conversation: switchboard.Conversation{ID: strings.ToUpper(c.ID)}, // ids are case-insensitive
		Turn:         switchboard.Turn{UserID: "alice"},
		UserMessage:  switchboard.Message{Content: "And eggs"},
	}
	history = begin(t, s, &second)
	if second.Conversation.ID != c.ID || second.Conversation.Title != c.Title || second.Conversation.UserID != "alice" {
		t.Errorf("continued conversation: got %+v, want %+v as stored", second.Conversation, c)
	}
	if second.Conversation.UpdatedAt.Before(c.UpdatedAt) {
		t.Errorf("continued conversation: got updated_at %v, want at least %v", second.Conversation.UpdatedAt, c.UpdatedAt)
	}
	want := []string{msg.ID, reply.ID, second.UserMessage.ID}
	if diff := cmp.Diff(want, messageIDs(history)); diff != "" {
		t.Errorf("history of the second turn (-want +got):\n%s", diff)
	}
	all, err := s.ListMessages(ctx, "alice", c.ID)
	if err != nil {
		t.Fatalf("ListMessages: got error %v, want none", err)
	}
	if diff := cmp.Diff(history, all); diff != "" {
		t.Errorf("ListMessages differs from the history window (-want +got):\n%s", diff)
	}
	list, err := s.ListConversations(ctx, "alice", 0)
	if err != nil {
		t.Fatalf("ListConversations: got error %v, want none", err)
	}
	if diff := cmp.Diff([]switchboard.Conversation{second.Conversation}, list); diff != "" {
		t.Errorf("ListConversations (-want +got):\n%s", diff)
	}
}

func testTitle(t *testing.T, s Store) {
	long := strings.Repeat("word ", 30)
	tests := []struct {
		name, title, content, want string
	}{
		{"short message", "", "  Plan\tmy   week ", "Plan my week"},
		{"long message", "", long, strings.TrimSpace(strings.Repeat("word ", 12)) + "…"},
		{"unbroken message", "", strings.Repeat("é", 70), strings.Repeat("é", 60) + "…"},
		{"given title", "Groceries", long, "Groceries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := switchboard.TurnStart{
				Conversation: switchboard.Conversation{Title: tt.title},
				Turn:         switchboard.Turn{UserID: "alice"},
				UserMessage:  switchboard.Message{Content: tt.content},
			}
			begin(t, s, &ts)
			c, err := s.GetConversation(t.Context(), "alice", ts.Conversation.ID)
			if err != nil {
				t.Fatalf("GetConversation: got error %v, want none", err)
			}
			if c.Title != tt.want {
				t.Errorf("title: got %q, want %q", c.Title, tt.want)
			}
		})
	}
}

func testConversationNotFound(t *testing.T, s Store) {
	ctx := t.Context()
	bobs := newTurn(t, s, "bob", "", "hello")
	tests := []struct{ name, id string }{
		{"another user's", bobs.Conversation.ID},
		{"malformed id", "not-a-uuid"},
		{"missing", switchboard.NewID()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			turnID := switchboard.NewID()
			ts := switchboard.TurnStart{
				Conversation: switchboard.Conversation{ID: tt.id},
				Turn:         switchboard.Turn{ID: turnID, UserID: "alice", IdempotencyKey: "k"},
				UserMessage:  switchboard.Message{Content: "hi"},
			}
			_, err := s.BeginTurn(ctx, &ts)
			wantErr(t, "BeginTurn", err, switchboard.ErrNotFound)
			_, err = s.GetTurn(ctx, "alice", turnID)
			wantErr(t, "GetTurn of the refused turn", err, switchboard.ErrNotFound)
			_, err = s.TurnByIdempotencyKey(ctx, "alice", "k")
			wantErr(t, "TurnByIdempotencyKey of the refused turn", err, switchboard.ErrNotFound)
		})
	}
	msgs, err := s.ListMessages(ctx, "bob", bobs.Conversation.ID)
	if err != nil || len(msgs) != 1 {
		t.Errorf("bob's messages: got %d, %v, want 1 and no error", len(msgs), err)
	}

	for _, id := range []string{"", "not-a-uuid", switchboard.NewID(), "00000000-0000-0000-0000-00000000000g"} {
		_, err := s.GetConversation(ctx, "alice", id)
		wantErr(t, fmt.Sprintf("GetConversation(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.UpdateConversation(ctx, "alice", switchboard.Conversation{ID: id, Title: "x"})
		wantErr(t, fmt.Sprintf("UpdateConversation(%q)", id), err, switchboard.ErrNotFound)
		err = s.DeleteConversation(ctx, "alice", id)
		wantErr(t, fmt.Sprintf("DeleteConversation(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.ListMessages(ctx, "alice", id)
		wantErr(t, fmt.Sprintf("ListMessages(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.ListTurns(ctx, "alice", id)
		wantErr(t, fmt.Sprintf("ListTurns(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.GetTurn(ctx, "alice", id)
		wantErr(t, fmt.Sprintf("GetTurn(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.GetToolCall(ctx, "alice", id)
		wantErr(t, fmt.Sprintf("GetToolCall(%q)", id), err, switchboard.ErrNotFound)
		err = s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id, Status: switchboard.TurnCompleted}})
		wantErr(t, fmt.Sprintf("SaveTurn(%q)", id), err, switchboard.ErrNotFound)
	}
}

func testHistoryWindow(t *testing.T, s Store) {
	first := newTurn(t, s, "alice", "", "m0")
	conv := first.Conversation.ID
	want := []string{first.UserMessage.ID}
	for i := 1; i < 5; i++ {
		u := switchboard.TurnUpdate{
			Turn:     switchboard.Turn{ID: first.Turn.ID, Status: switchboard.TurnRunning},
			Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: fmt.Sprint("m", i)}},
		}
		save(t, s, &u)
		want = append(want, u.Messages[0].ID)
	}
	tests := []struct {
		name  string
		limit int
		want  int // the number of latest messages, the new one included; 0 for all
	}{
		{"all", 0, 0},
		{"last three", 3, 3},
		{"only the new message", 1, 1},
		{"more than there are", 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := switchboard.TurnStart{
				Conversation: switchboard.Conversation{ID: conv},
				Turn:         switchboard.Turn{UserID: "alice"},
				UserMessage:  switchboard.Message{Content: "next"},
				HistoryLimit: tt.limit,
			}
			history := begin(t, s, &ts)
			// Room for the turn's next messages: the orchestrator appends
			// a step's request and results without copying the window.
			if cap(history)-len(history) < 8 {
				t.Errorf("history window: room for %d more messages, want 8", cap(history)-len(history))
			}
			all := append(slices.Clone(want), ts.UserMessage.ID)
			want = all // later cases see this turn's message too
			if tt.want > 0 {
				all = all[len(all)-tt.want:]
			}
			if diff := cmp.Diff(all, messageIDs(history)); diff != "" {
				t.Errorf("history window of %d (-want +got):\n%s", tt.limit, diff)
			}
		})
	}
}

// testSaveTurnUpsert records a call as started, then finishes it.
func testSaveTurnUpsert(t *testing.T, s Store) {
	ctx := t.Context()
	ts := newTurn(t, s, "alice", "", "list my tasks")
	started := switchboard.ToolCall{
		CallID: "call_1", Step: 1, Server: "tasks", Tool: "list_tasks", ExposedName: "tasks__list_tasks",
		Arguments: json.RawMessage(`{"user_id": "alice", "status": "open"}`),
		Status:    switchboard.CallRunning,
		UserID:    "mallory", ConversationID: switchboard.NewID(), // the turn's win
	}
	u := switchboard.TurnUpdate{
		Turn:      switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning, Steps: 1},
		ToolCalls: []switchboard.ToolCall{started},
	}
	save(t, s, &u)
	started = u.ToolCalls[0]
	if !switchboard.ValidID(started.ID) || started.StartedAt.IsZero() || started.UserID != "alice" ||
		started.ConversationID != ts.Conversation.ID || started.TurnID != ts.Turn.ID {
		t.Errorf("started call as filled in: got %+v, want an id, a start time, alice's turn %s", started, ts.Turn.ID)
	}
	if u.Turn.ConversationID != ts.Conversation.ID || u.Turn.UserID != "alice" {
		t.Errorf("turn as filled in: got conversation %q user %q, want %q alice", u.Turn.ConversationID, u.Turn.UserID, ts.Conversation.ID)
	}
	got, err := s.GetToolCall(ctx, "alice", started.ID)
	if err != nil {
		t.Fatalf("GetToolCall: got error %v, want none", err)
	}
	if diff := cmp.Diff(started, got, jsonEqual); diff != "" {
		t.Errorf("started call (-want +got):\n%s", diff)
	}

	finished := started
	finished.Status = switchboard.CallFailed
	finished.Result = "no such list"
	finished.StructuredResult = json.RawMessage(`{"error": {"code": 404}}`)
	finished.ErrorClass = switchboard.ErrorClassTool
	finished.Error = "tool returned isError"
	finished.Duration = 1234567891 * time.Nanosecond
	finished.ResultSize = 12
	finished.Truncated = true
	finished.SessionScope, finished.SessionKey, finished.SessionGeneration = "user", "alice", 42
	finished.TaskID, finished.TaskStatus = "786512e2-9e0d-44bd-8f29-789f320fe840", "completed"
	finished.FinishedAt = started.StartedAt.Add(finished.Duration)
	// Fields that only the insert writes.
	changed := finished
	changed.Step, changed.Server, changed.Arguments = 9, "other", json.RawMessage(`{}`)
	changed.StartedAt = time.Time{}
	timing := switchboard.TurnTiming{LLM: 1234567 * time.Nanosecond, Tools: 1234567891, Store: 1500, Overhead: 42 * time.Microsecond}
	u = switchboard.TurnUpdate{
		Turn: switchboard.Turn{
			ID: ts.Turn.ID, Status: switchboard.TurnFailed, Steps: 2, PromptTokens: 1200, CompletionTokens: 34,
			Timing: timing, Error: "gave up", FinishedAt: time.Now(),
		},
		ToolCalls: []switchboard.ToolCall{changed},
	}
	save(t, s, &u)
	if !u.ToolCalls[0].StartedAt.Equal(started.StartedAt) {
		t.Errorf("finished call's start as filled in: got %v, want the stored %v", u.ToolCalls[0].StartedAt, started.StartedAt)
	}
	got, err = s.GetToolCall(ctx, "alice", started.ID)
	if err != nil {
		t.Fatalf("GetToolCall: got error %v, want none", err)
	}
	finished.FinishedAt = finished.FinishedAt.Truncate(time.Microsecond)
	if diff := cmp.Diff(finished, got, jsonEqual); diff != "" {
		t.Errorf("finished call (-want +got):\n%s", diff)
	}

	turn, err := s.GetTurn(ctx, "alice", ts.Turn.ID)
	if err != nil {
		t.Fatalf("GetTurn: got error %v, want none", err)
	}
	want := ts.Turn
	want.Status, want.Steps, want.PromptTokens, want.CompletionTokens = switchboard.TurnFailed, 2, 1200, 34
	want.Timing, want.Error, want.FinishedAt = timing, "gave up", u.Turn.FinishedAt
	if diff := cmp.Diff(want, turn); diff != "" {
		t.Errorf("saved turn (-want +got):\n%s", diff)
	}

	other := newTurn(t, s, "alice", ts.Conversation.ID, "again")
	steal := switchboard.TurnUpdate{
		Turn:      switchboard.Turn{ID: other.Turn.ID, Status: switchboard.TurnRunning},
		ToolCalls: []switchboard.ToolCall{finished},
	}
	err = s.SaveTurn(ctx, &steal)
	wantErr(t, "SaveTurn with another turn's call id", err, switchboard.ErrConflict)
}

// testSaveTurnAtomic checks that a SaveTurn that fails stores nothing.
func testSaveTurnAtomic(t *testing.T, s Store) {
	ctx := t.Context()
	ts := newTurn(t, s, "alice", "", "hi")
	u := switchboard.TurnUpdate{
		Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnCompleted, Steps: 3},
		Messages: []switchboard.Message{
			{Role: switchboard.RoleAssistant, Content: "fine"},
			{ID: ts.UserMessage.ID, Role: switchboard.RoleAssistant, Content: "a taken id"},
		},
		ToolCalls: []switchboard.ToolCall{{Server: "s", Tool: "t", Status: switchboard.CallSucceeded}},
	}
	err := s.SaveTurn(ctx, &u)
	wantErr(t, "SaveTurn with a taken message id", err, switchboard.ErrConflict)
	turn, err := s.GetTurn(ctx, "alice", ts.Turn.ID)
	if err != nil || turn.Status != switchboard.TurnRunning || turn.Steps != 0 {
		t.Errorf("turn after a failed save: got %q with %d steps, %v, want running with 0", turn.Status, turn.Steps, err)
	}
	msgs, err := s.ListMessages(ctx, "alice", ts.Conversation.ID)
	if err != nil || len(msgs) != 1 {
		t.Errorf("messages after a failed save: got %d, %v, want 1", len(msgs), err)
	}
	calls, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{TurnID: ts.Turn.ID})
	if err != nil || len(calls) != 0 {
		t.Errorf("tool calls after a failed save: got %d, %v, want none", len(calls), err)
	}
	conv, err := s.GetConversation(ctx, "alice", ts.Conversation.ID)
	if err != nil || !conv.UpdatedAt.Equal(ts.Conversation.UpdatedAt) {
		t.Errorf("conversation after a failed save: got updated_at %v, %v, want %v", conv.UpdatedAt, err, ts.Conversation.UpdatedAt)
	}
}

func testIdempotencyKey(t *testing.T, s Store) {
	ctx := t.Context()
	first := switchboard.TurnStart{
		Turn:        switchboard.Turn{UserID: "alice", IdempotencyKey: "req-1"},
		UserMessage: switchboard.Message{Content: "hi"},
	}
	begin(t, s, &first)

	got, err := s.TurnByIdempotencyKey(ctx, "alice", "req-1")
	if err != nil {
		t.Fatalf("TurnByIdempotencyKey: got error %v, want none", err)
	}
	if diff := cmp.Diff(first.Turn, got); diff != "" {
		t.Errorf("TurnByIdempotencyKey (-want +got):\n%s", diff)
	}
	for _, tt := range []struct{ user, key string }{{"alice", "req-2"}, {"bob", "req-1"}, {"alice", ""}} {
		_, err := s.TurnByIdempotencyKey(ctx, tt.user, tt.key)
		wantErr(t, fmt.Sprintf("TurnByIdempotencyKey(%q, %q)", tt.user, tt.key), err, switchboard.ErrNotFound)
	}

	tests := []struct {
		name         string
		conversation string
	}{
		{"new conversation", ""},
		{"same conversation", first.Conversation.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			again := switchboard.TurnStart{
				Conversation: switchboard.Conversation{ID: tt.conversation},
				Turn:         switchboard.Turn{UserID: "alice", IdempotencyKey: "req-1"},
				UserMessage:  switchboard.Message{Content: "hi again"},
			}
			_, err := s.BeginTurn(ctx, &again)
			wantErr(t, "BeginTurn with a used key", err, switchboard.ErrConflict)
			if code := switchboard.ErrorCode(err); code != "idempotency_key_reused" {
				t.Errorf("error code: got %q, want %q", code, "idempotency_key_reused")
			}
			list, err := s.ListConversations(ctx, "alice", 0)
			if err != nil || len(list) != 1 || !list[0].UpdatedAt.Equal(first.Conversation.UpdatedAt) {
				t.Errorf("conversations after a refused turn: got %+v, %v, want only the first, not updated", list, err)
			}
			msgs, err := s.ListMessages(ctx, "alice", first.Conversation.ID)
			if err != nil || len(msgs) != 1 {
				t.Errorf("messages after a refused turn: got %d, %v, want 1", len(msgs), err)
			}
		})
	}

	bob := switchboard.TurnStart{
		Turn:        switchboard.Turn{UserID: "bob", IdempotencyKey: "req-1"},
		UserMessage: switchboard.Message{Content: "hi"},
	}
	begin(t, s, &bob) // keys are per user
	noKey := newTurn(t, s, "alice", first.Conversation.ID, "no key")
	newTurn(t, s, "alice", first.Conversation.ID, "no key either")
	if noKey.Turn.IdempotencyKey != "" {
		t.Errorf("turn without a key: got key %q, want none", noKey.Turn.IdempotencyKey)
	}
	dup := switchboard.TurnStart{
		Conversation: switchboard.Conversation{ID: first.Conversation.ID},
		Turn:         switchboard.Turn{ID: first.Turn.ID, UserID: "alice"},
		UserMessage:  switchboard.Message{Content: "same turn id"},
	}
	_, err = s.BeginTurn(ctx, &dup)
	wantErr(t, "BeginTurn with a taken turn id", err, switchboard.ErrConflict)
}

// testRequestHash: a turn keeps the hash of the request that started it.
func testRequestHash(t *testing.T, s Store) {
	ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice", IdempotencyKey: "k1", RequestHash: "h1"},
		UserMessage: switchboard.Message{Content: "x"}}
	begin(t, s, &ts)
	got, err := s.TurnByIdempotencyKey(t.Context(), "alice", "k1")
	if err != nil || got.RequestHash != "h1" || got.ID != ts.Turn.ID {
		t.Errorf("TurnByIdempotencyKey: got %+v, %v; want request hash h1", got, err)
	}
}

// testUpdatedAt checks when a conversation's updated_at moves: when a turn
// starts and when it leaves running, not at the steps in between.
func testUpdatedAt(t *testing.T, s Store) {
	ctx := t.Context()
	ts := newTurn(t, s, "alice", "", "hello")
	updated := func() time.Time {
		t.Helper()
		c, err := s.GetConversation(ctx, "alice", ts.Conversation.ID)
		if err != nil {
			t.Fatalf("GetConversation: got error %v, want none", err)
		}
		return c.UpdatedAt
	}
	started := updated()
	if !started.Equal(ts.Conversation.UpdatedAt) {
		t.Errorf("after BeginTurn: got updated_at %v, want the returned %v", started, ts.Conversation.UpdatedAt)
	}
	time.Sleep(2 * time.Millisecond) // timestamps are microseconds
	turn := ts.Turn
	turn.Steps = 1
	save(t, s, &switchboard.TurnUpdate{Turn: turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "step"}}})
	if got := updated(); !got.Equal(started) {
		t.Errorf("after a step of a running turn: got updated_at %v, want it unchanged at %v", got, started)
	}
	time.Sleep(2 * time.Millisecond)
	turn.Status, turn.FinishedAt = switchboard.TurnCompleted, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: turn})
	if got := updated(); !got.After(started) {
		t.Errorf("after the turn ended: got updated_at %v, want later than %v", got, started)
	}
}

func testListTurns(t *testing.T, s Store) {
	first := newTurn(t, s, "alice", "", "one")
	first.Turn.Status, first.Turn.FinishedAt = switchboard.TurnCompleted, t0
	save(t, s, &switchboard.TurnUpdate{Turn: first.Turn})
	second := newTurn(t, s, "alice", first.Conversation.ID, "two")
	newTurn(t, s, "alice", "", "elsewhere")
	got, err := s.ListTurns(t.Context(), "alice", first.Conversation.ID)
	if err != nil {
		t.Fatalf("ListTurns: got error %v, want none", err)
	}
	if diff := cmp.Diff([]switchboard.Turn{first.Turn, second.Turn}, got); diff != "" {
		t.Errorf("ListTurns (-want +got):\n%s", diff)
	}
	_, err = s.ListTurns(t.Context(), "alice", switchboard.NewID())
	wantErr(t, "ListTurns of a missing conversation", err, switchboard.ErrNotFound)
}

// testOneRunningTurn: a conversation runs one turn at a time.
func testOneRunningTurn(t *testing.T, s Store) {
	ctx := context.Background()
	first := newTurn(t, s, "alice", "", "one")
	conv := first.Conversation.ID
	second := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "two"}}
	_, err := s.BeginTurn(ctx, &second)
	if !errors.Is(err, switchboard.ErrConflict) || switchboard.ErrorCode(err) != "turn_running" {
		t.Fatalf("a second turn while one runs: got %v, want turn_running", err)
	}
	if msgs, _ := s.ListMessages(ctx, "alice", conv); len(msgs) != 1 {
		t.Errorf("the refused turn stored messages: got %d, want 1", len(msgs))
	}
	if requested, err := s.RenewTurn(ctx, first.Turn.ID); err != nil || requested {
		t.Errorf("renewing the running turn: got %v, %v, want no cancel requested", requested, err)
	}
	// A cancel requested by another instance: only the owner's, only of a
	// running turn; the renewal reports it.
	if _, _, err := s.RequestCancel(ctx, "bob", conv); switchboard.ErrorCode(err) != "no_running_turn" {
		t.Errorf("cancel of another user's turn: got %v, want no_running_turn", err)
	}
	if id, in, err := s.RequestCancel(ctx, "alice", conv); err != nil || id != first.Turn.ID || in != nil {
		t.Errorf("cancel of the running turn: got %q, %+v, %v, want %s flagged", id, in, err, first.Turn.ID)
	}
	if requested, err := s.RenewTurn(ctx, first.Turn.ID); err != nil || !requested {
		t.Errorf("renewing a turn whose cancel was requested: got %v, %v, want requested", requested, err)
	}
	step := first.Turn
	step.Steps = 1
	save(t, s, &switchboard.TurnUpdate{Turn: step})
	if requested, err := s.RenewTurn(ctx, first.Turn.ID); err != nil || !requested {
		t.Errorf("renewing after a step of a turn whose cancel was requested: got %v, %v, want requested still", requested, err)
	}
	// Awaiting approval frees the conversation.
	first.Turn.Status = switchboard.TurnAwaitingApproval
	save(t, s, &switchboard.TurnUpdate{Turn: first.Turn})
	if _, _, err := s.RequestCancel(ctx, "alice", conv); switchboard.ErrorCode(err) != "no_running_turn" {
		t.Errorf("cancel with no turn running: got %v, want no_running_turn", err)
	}
	if _, err := s.RenewTurn(ctx, first.Turn.ID); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("renewing a turn that is not running: got %v, want ErrNotFound", err)
	}
	second = switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "two"}}
	if _, err := s.BeginTurn(ctx, &second); err != nil {
		t.Fatalf("a turn after the first stopped: %v", err)
	}
	// The first cannot run again while the second runs.
	first.Turn.Status = switchboard.TurnRunning
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: first.Turn}); switchboard.ErrorCode(err) != "turn_running" {
		t.Errorf("resuming a turn while another runs: got %v, want turn_running", err)
	}
	// Other conversations are not held up.
	newTurn(t, s, "alice", "", "elsewhere")
}

// testCancelRequestEndsWithRunning: a cancel requested of a turn that then
// waits for an approval does not cancel it when it runs again.
func testCancelRequestEndsWithRunning(t *testing.T, s Store) {
	ctx := t.Context()
	ts := newTurn(t, s, "alice", "", "one")
	if _, _, err := s.RequestCancel(ctx, "alice", ts.Conversation.ID); err != nil {
		t.Fatalf("RequestCancel: got error %v, want none", err)
	}
	turn := ts.Turn
	turn.Status = switchboard.TurnAwaitingApproval
	save(t, s, &switchboard.TurnUpdate{Turn: turn})
	turn.Status = switchboard.TurnRunning
	save(t, s, &switchboard.TurnUpdate{Turn: turn})
	if requested, err := s.RenewTurn(ctx, turn.ID); err != nil || requested {
		t.Errorf("renewing the resumed turn: got %v, %v, want running with no cancel requested", requested, err)
	}
}

// testConcurrent runs turns from many goroutines, in one shared conversation
// and in conversations of their own.
func testConcurrent(t *testing.T, s Store) {
	const workers, turns = 8, 6
	shared := newTurn(t, s, "alice", "", "shared")
	endRunning(t, s, "alice", shared.Conversation.ID)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			own := ""
			for i := range turns {
				conversation := shared.Conversation.ID
				if i%2 == 1 {
					conversation = own
				}
				ts := switchboard.TurnStart{
					Conversation: switchboard.Conversation{ID: conversation},
					Turn:         switchboard.Turn{UserID: "alice", IdempotencyKey: fmt.Sprintf("w%d-%d", w, i)},
					UserMessage:  switchboard.Message{Content: fmt.Sprintf("worker %d turn %d", w, i)},
					HistoryLimit: 4,
				}
				// The shared conversation runs one turn at a time: wait for it.
				history, err := s.BeginTurn(t.Context(), &ts)
				for switchboard.ErrorCode(err) == "turn_running" {
					time.Sleep(time.Millisecond)
					history, err = s.BeginTurn(t.Context(), &ts)
				}
				if err != nil {
					t.Errorf("worker %d turn %d: BeginTurn: %v", w, i, err)
					return
				}
				if last := history[len(history)-1]; last.ID != ts.UserMessage.ID {
					t.Errorf("worker %d turn %d: got history ending with %s, want the new message %s", w, i, last.ID, ts.UserMessage.ID)
				}
				own = ts.Conversation.ID
				if i%2 == 0 {
					own = "" // the next odd turn starts a conversation
				}
				call := switchboard.ToolCall{Server: "s", Tool: "t", Status: switchboard.CallRunning}
				u := switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning, Steps: 1},
					ToolCalls: []switchboard.ToolCall{call}}
				if err := s.SaveTurn(t.Context(), &u); err != nil {
					t.Errorf("worker %d turn %d: SaveTurn: %v", w, i, err)
					return
				}
				call = u.ToolCalls[0]
				call.Status, call.Duration = switchboard.CallSucceeded, time.Millisecond
				u = switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnCompleted, Steps: 2},
					Messages:  []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "done " + ts.Turn.ID}},
					ToolCalls: []switchboard.ToolCall{call}}
				if err := s.SaveTurn(t.Context(), &u); err != nil {
					t.Errorf("worker %d turn %d: SaveTurn: %v", w, i, err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ctx := t.Context()
	msgs, err := s.ListMessages(ctx, "alice", shared.Conversation.ID)
	if err != nil {
		t.Fatalf("ListMessages: got error %v, want none", err)
	}
	if want := 1 + workers*(turns/2)*2; len(msgs) != want {
		t.Errorf("messages in the shared conversation: got %d, want %d", len(msgs), want)
	}
	// Each turn's user message comes before its answer.
	seen := map[string]bool{}
	for _, m := range msgs {
		switch m.Role {
		case switchboard.RoleUser:
			seen[m.TurnID] = true
		case switchboard.RoleAssistant:
			if !seen[m.TurnID] {
				t.Errorf("answer %s of turn %s comes before the turn's message", m.ID, m.TurnID)
			}
		}
	}
	calls, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{UserID: "alice", Limit: store.MaxPageSize})
	if err != nil {
		t.Fatalf("ListToolCalls: got error %v, want none", err)
	}
	if len(calls) != workers*turns {
		t.Errorf("tool calls: got %d, want %d", len(calls), workers*turns)
	}
	stats, err := s.ToolCallStats(ctx, switchboard.ToolCallFilter{}, store.GroupByServer)
	if err != nil || len(stats) != 1 || stats[0].Count != workers*turns || stats[0].Errors != 0 {
		t.Errorf("stats: got %+v, %v, want %d succeeded calls", stats, err, workers*turns)
	}
	convs, err := s.ListConversations(ctx, "alice", store.MaxPageSize)
	if err != nil || len(convs) != 1+workers*(turns/2) {
		t.Errorf("conversations: got %d, %v, want %d", len(convs), err, 1+workers*(turns/2))
	}
}
