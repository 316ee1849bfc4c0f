// Package storetest tests implementations of Switchboard's store contract,
// and provides throw-away Postgres databases to tests.
//
// Run is the contract suite that store.Memory and store.Postgres both pass;
// PostgresURL gives a test its own migrated database. Both are meant for
// tests, and live in a non-test file so that other packages' tests can use
// them.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
)

// Store is the contract that store.Memory and store.Postgres implement.
type Store interface {
	BeginTurn(ctx context.Context, s *switchboard.TurnStart) ([]switchboard.Message, error)
	SaveTurn(ctx context.Context, u *switchboard.TurnUpdate) error

	GetConversation(ctx context.Context, id string) (switchboard.Conversation, error)
	ListConversations(ctx context.Context, userID string, limit int) ([]switchboard.Conversation, error)
	UpdateConversation(ctx context.Context, c switchboard.Conversation) (switchboard.Conversation, error)
	DeleteConversation(ctx context.Context, id string) error
	ListMessages(ctx context.Context, conversationID string) ([]switchboard.Message, error)
	ListAllMessages(ctx context.Context, conversationID string) ([]switchboard.Message, error)
	ConversationByExternalID(ctx context.Context, userID, externalID string) (switchboard.Conversation, error)
	DecideToolCall(ctx context.Context, id string, approve bool) (switchboard.ToolCall, error)
	RenewTurn(ctx context.Context, id string) (bool, error)
	RequestCancel(ctx context.Context, userID, conversationID string) (string, *switchboard.Interrupted, error)
	RecoverTurns(ctx context.Context) ([]switchboard.Interrupted, error)
	PruneToolCallPayloads(ctx context.Context, before time.Time, batch int) (int, error)

	GetTurn(ctx context.Context, id string) (switchboard.Turn, error)
	ListTurns(ctx context.Context, conversationID string) ([]switchboard.Turn, error)
	TurnByIdempotencyKey(ctx context.Context, userID, key string) (switchboard.Turn, error)

	GetToolCall(ctx context.Context, id string) (switchboard.ToolCall, error)
	ListToolCalls(ctx context.Context, f switchboard.ToolCallFilter) ([]switchboard.ToolCall, string, error)
	ToolCallStats(ctx context.Context, f switchboard.ToolCallFilter, groupBy string) ([]switchboard.ToolCallStats, error)
}

// Run runs the contract suite. open returns a new, empty store for the
// subtest t; subtests run in parallel, each on its own store.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Store)
	}{
		{"CreateAndContinue", testCreateAndContinue},
		{"Title", testTitle},
		{"ConversationNotFound", testConversationNotFound},
		{"Invalid", testInvalid},
		{"HistoryWindow", testHistoryWindow},
		{"MessagesRoundTrip", testMessagesRoundTrip},
		{"Sanitize", testSanitize},
		{"SaveTurnUpsert", testSaveTurnUpsert},
		{"SaveTurnAtomic", testSaveTurnAtomic},
		{"IdempotencyKey", testIdempotencyKey},
		{"Conversations", testConversations},
		{"UpdatedAtMovesAtTurnBoundaries", testUpdatedAt},
		{"Regenerate", testRegenerate},
		{"CancelRequestEndsWithRunning", testCancelRequestEndsWithRunning},
		{"RegenerateCancelsWaitingApprovals", testRegenerateCancelsWaitingApprovals},
		{"NewTurnCancelsWaitingApprovals", testNewTurnCancelsWaitingApprovals},
		{"RegenerateNamesTheLastWhenTheCountIsOff", testRegenerateLast},
		{"Edit", testEdit},
		{"ListTurns", testListTurns},
		{"Pagination", testPagination},
		{"PageSize", testPageSize},
		{"Filters", testFilters},
		{"Stats", testStats},
		{"DeleteCascades", testDeleteCascades},
		{"Canceled", testCanceled},
		{"Concurrent", testConcurrent},
		{"ExternalID", testExternalID},
		{"DecideToolCall", testDecideToolCall},
		{"OneRunningTurn", testOneRunningTurn},
		{"RequestHash", testRequestHash},
		{"PruneToolCallPayloads", testPrune},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// jsonEqual compares JSON by value: Postgres reorders object keys.
var jsonEqual = cmp.Comparer(func(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return cmp.Equal(va, vb)
})

// t0 is a fixed time for rows whose order tests check.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

// begin begins a turn. A conversation runs one turn at a time, so a turn
// the test left running in the conversation is ended first.
func begin(t *testing.T, s Store, ts *switchboard.TurnStart) []switchboard.Message {
	t.Helper()
	history, err := s.BeginTurn(t.Context(), ts)
	if switchboard.ErrorCode(err) == "turn_running" {
		endRunning(t, s, ts.Conversation.ID)
		history, err = s.BeginTurn(t.Context(), ts)
	}
	if err != nil {
		t.Fatalf("BeginTurn: got error %v, want none", err)
	}
	return history
}

// endRunning completes the running turns of a conversation.
func endRunning(t *testing.T, s Store, conversation string) {
	t.Helper()
	turns, err := s.ListTurns(t.Context(), conversation)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range turns {
		if tr.Status == switchboard.TurnRunning {
			tr.Status, tr.FinishedAt = switchboard.TurnCompleted, time.Now()
			save(t, s, &switchboard.TurnUpdate{Turn: tr})
		}
	}
}

// newTurn begins a turn of user in conversation (a new one if empty).
func newTurn(t *testing.T, s Store, user, conversation, content string) switchboard.TurnStart {
	t.Helper()
	ts := switchboard.TurnStart{
		Conversation: switchboard.Conversation{ID: conversation},
		Turn:         switchboard.Turn{UserID: user},
		UserMessage:  switchboard.Message{Content: content},
	}
	begin(t, s, &ts)
	return ts
}

func save(t *testing.T, s Store, u *switchboard.TurnUpdate) {
	t.Helper()
	if err := s.SaveTurn(t.Context(), u); err != nil {
		t.Fatalf("SaveTurn: got error %v, want none", err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func messageIDs(msgs []switchboard.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func callIDs(calls []switchboard.ToolCall) []string {
	ids := make([]string, len(calls))
	for i, c := range calls {
		ids[i] = c.ID
	}
	return ids
}

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
	got, err := s.GetConversation(ctx, c.ID)
	if err != nil {
		t.Fatalf("GetConversation: got error %v, want none", err)
	}
	if diff := cmp.Diff(c, got); diff != "" {
		t.Errorf("GetConversation returned other than BeginTurn filled in (-want +got):\n%s", diff)
	}
	gotTurn, err := s.GetTurn(ctx, turn.ID)
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
	all, err := s.ListMessages(ctx, c.ID)
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
			c, err := s.GetConversation(t.Context(), ts.Conversation.ID)
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
			_, err = s.GetTurn(ctx, turnID)
			wantErr(t, "GetTurn of the refused turn", err, switchboard.ErrNotFound)
			_, err = s.TurnByIdempotencyKey(ctx, "alice", "k")
			wantErr(t, "TurnByIdempotencyKey of the refused turn", err, switchboard.ErrNotFound)
		})
	}
	msgs, err := s.ListMessages(ctx, bobs.Conversation.ID)
	if err != nil || len(msgs) != 1 {
		t.Errorf("bob's messages: got %d, %v, want 1 and no error", len(msgs), err)
	}

	for _, id := range []string{"", "not-a-uuid", switchboard.NewID(), "00000000-0000-0000-0000-00000000000g"} {
		_, err := s.GetConversation(ctx, id)
		wantErr(t, fmt.Sprintf("GetConversation(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.UpdateConversation(ctx, switchboard.Conversation{ID: id, Title: "x"})
		wantErr(t, fmt.Sprintf("UpdateConversation(%q)", id), err, switchboard.ErrNotFound)
		err = s.DeleteConversation(ctx, id)
		wantErr(t, fmt.Sprintf("DeleteConversation(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.ListMessages(ctx, id)
		wantErr(t, fmt.Sprintf("ListMessages(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.ListTurns(ctx, id)
		wantErr(t, fmt.Sprintf("ListTurns(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.GetTurn(ctx, id)
		wantErr(t, fmt.Sprintf("GetTurn(%q)", id), err, switchboard.ErrNotFound)
		_, err = s.GetToolCall(ctx, id)
		wantErr(t, fmt.Sprintf("GetToolCall(%q)", id), err, switchboard.ErrNotFound)
		err = s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: id, Status: switchboard.TurnCompleted}})
		wantErr(t, fmt.Sprintf("SaveTurn(%q)", id), err, switchboard.ErrNotFound)
	}
}

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
	got, err := s.GetTurn(ctx, id)
	if err != nil || got.Status != switchboard.TurnRunning {
		t.Errorf("turn after invalid updates: got status %q, %v, want running", got.Status, err)
	}
	_, err = s.UpdateConversation(ctx, switchboard.Conversation{ID: existing.Conversation.ID, Title: strings.Repeat("t", 256)})
	wantErr(t, "UpdateConversation with a long title", err, switchboard.ErrInvalid)
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
	got, err := s.ListMessages(t.Context(), ts.Conversation.ID)
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
	call, err := s.GetToolCall(t.Context(), u.ToolCalls[0].ID)
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
	msgs, err := s.ListMessages(t.Context(), ts.Conversation.ID)
	if err != nil {
		t.Fatalf("ListMessages: got error %v, want none", err)
	}
	if diff := cmp.Diff(append([]switchboard.Message{ts.UserMessage}, u.Messages...), msgs); diff != "" {
		t.Errorf("cleaned messages (-want +got):\n%s", diff)
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
	got, err := s.GetToolCall(ctx, started.ID)
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
	got, err = s.GetToolCall(ctx, started.ID)
	if err != nil {
		t.Fatalf("GetToolCall: got error %v, want none", err)
	}
	finished.FinishedAt = finished.FinishedAt.Truncate(time.Microsecond)
	if diff := cmp.Diff(finished, got, jsonEqual); diff != "" {
		t.Errorf("finished call (-want +got):\n%s", diff)
	}

	turn, err := s.GetTurn(ctx, ts.Turn.ID)
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
	turn, err := s.GetTurn(ctx, ts.Turn.ID)
	if err != nil || turn.Status != switchboard.TurnRunning || turn.Steps != 0 {
		t.Errorf("turn after a failed save: got %q with %d steps, %v, want running with 0", turn.Status, turn.Steps, err)
	}
	msgs, err := s.ListMessages(ctx, ts.Conversation.ID)
	if err != nil || len(msgs) != 1 {
		t.Errorf("messages after a failed save: got %d, %v, want 1", len(msgs), err)
	}
	calls, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{TurnID: ts.Turn.ID})
	if err != nil || len(calls) != 0 {
		t.Errorf("tool calls after a failed save: got %d, %v, want none", len(calls), err)
	}
	conv, err := s.GetConversation(ctx, ts.Conversation.ID)
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
			msgs, err := s.ListMessages(ctx, first.Conversation.ID)
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

func testConversations(t *testing.T, s Store) {
	ctx := t.Context()
	var convs []switchboard.Conversation
	for i := range 4 {
		ts := newTurn(t, s, "alice", "", fmt.Sprint("conversation ", i))
		convs = append(convs, ts.Conversation)
	}
	newTurn(t, s, "bob", "", "not alice's")
	// Continuing the oldest makes it the most recent.
	touched := newTurn(t, s, "alice", convs[0].ID, "back to the first")
	convs[0] = touched.Conversation
	want := []switchboard.Conversation{convs[0], convs[3], convs[2], convs[1]}
	slices.SortStableFunc(want, func(a, b switchboard.Conversation) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	for _, limit := range []int{0, 2} {
		got, err := s.ListConversations(ctx, "alice", limit)
		if err != nil {
			t.Fatalf("ListConversations: got error %v, want none", err)
		}
		w := want
		if limit > 0 {
			w = want[:limit]
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("ListConversations limit %d (-want +got):\n%s", limit, diff)
		}
	}
	got, err := s.ListConversations(ctx, "nobody", 0)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("conversations of a user without any: got %#v, %v, want an empty list", got, err)
	}

	c := convs[1]
	updated, err := s.UpdateConversation(ctx, switchboard.Conversation{ID: c.ID, Title: "Renamed", Status: "archived", UserID: "mallory"})
	if err != nil {
		t.Fatalf("UpdateConversation: got error %v, want none", err)
	}
	if updated.Title != "Renamed" || updated.Status != "archived" || updated.UserID != "alice" ||
		!updated.CreatedAt.Equal(c.CreatedAt) || updated.UpdatedAt.Before(c.UpdatedAt) {
		t.Errorf("updated conversation: got %+v, want renamed, archived, alice's, created %v", updated, c.CreatedAt)
	}
	kept, err := s.UpdateConversation(ctx, switchboard.Conversation{ID: c.ID, Title: ""})
	if err != nil || kept.Status != "archived" || kept.Title != "" {
		t.Errorf("update without status: got %+v, %v, want the status kept and the title cleared", kept, err)
	}
	stored, err := s.GetConversation(ctx, c.ID)
	if err != nil {
		t.Fatalf("GetConversation: got error %v, want none", err)
	}
	if diff := cmp.Diff(kept, stored); diff != "" {
		t.Errorf("stored conversation differs from the update's result (-want +got):\n%s", diff)
	}
}

// testUpdatedAt checks when a conversation's updated_at moves: when a turn
// starts and when it leaves running, not at the steps in between.
func testUpdatedAt(t *testing.T, s Store) {
	ctx := t.Context()
	ts := newTurn(t, s, "alice", "", "hello")
	updated := func() time.Time {
		t.Helper()
		c, err := s.GetConversation(ctx, ts.Conversation.ID)
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

// testRegenerate answers a user message again: the messages after it leave
// the transcript and the history; turns and ledger rows stay.
func testRegenerate(t *testing.T, s Store) {
	ctx := t.Context()
	transcript := func(conv string) []string {
		t.Helper()
		msgs, err := s.ListMessages(ctx, conv)
		if err != nil {
			t.Fatalf("ListMessages: got error %v, want none", err)
		}
		return messageContents(msgs)
	}
	answer := func(ts switchboard.TurnStart, text string, calls ...switchboard.ToolCall) {
		t.Helper()
		turn := ts.Turn
		turn.Status, turn.FinishedAt = switchboard.TurnCompleted, time.Now()
		save(t, s, &switchboard.TurnUpdate{Turn: turn, ToolCalls: calls,
			Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: text}}})
	}
	first := newTurn(t, s, "alice", "", "one")
	conv := first.Conversation.ID
	answer(first, "answer one", switchboard.ToolCall{Server: "tasks", Tool: "add_task", Status: switchboard.CallSucceeded, StartedAt: t0})
	second := newTurn(t, s, "alice", conv, "two")
	answer(second, "answer two")
	regenerate := func(n int, content string) (switchboard.TurnStart, []switchboard.Message, error) {
		ts := switchboard.TurnStart{
			Conversation: switchboard.Conversation{ID: conv},
			Turn:         switchboard.Turn{UserID: "alice"},
			UserMessage:  switchboard.Message{Content: content},
			Regenerate:   n,
		}
		history, err := s.BeginTurn(ctx, &ts)
		return ts, history, err
	}

	for _, tc := range []struct {
		n       int
		content string
		code    string
	}{
		{3, "three", "nothing_to_regenerate"},
		{2, "changed", "regenerate_mismatch"},
		{1, "two?", "regenerate_mismatch"},
	} {
		_, _, err := regenerate(tc.n, tc.content)
		if !errors.Is(err, switchboard.ErrConflict) || switchboard.ErrorCode(err) != tc.code {
			t.Errorf("regenerate %d %q: got error %v, want a conflict %s", tc.n, tc.content, err, tc.code)
		}
	}
	if got, want := transcript(conv), []string{"one", "answer one", "two", "answer two"}; !slices.Equal(got, want) {
		t.Errorf("transcript after refused regenerates: got %q, want %q", got, want)
	}
	if turns, err := s.ListTurns(ctx, conv); err != nil || len(turns) != 2 {
		t.Errorf("turns after refused regenerates: got %d, %v, want 2: nothing stored", len(turns), err)
	}

	// A client that counts one user message more (one we refused) names
	// the last one.
	again, history, err := regenerate(3, "two")
	if err != nil {
		t.Fatalf("regenerate the last answer: got error %v, want none", err)
	}
	if got := messageContents(history); !slices.Equal(got, []string{"one", "answer one", "two"}) {
		t.Errorf("history of the regenerating turn: got %q, want it to end with the message answered again", got)
	}
	answer(again, "answer two, again")
	if got, want := transcript(conv), []string{"one", "answer one", "two", "answer two, again"}; !slices.Equal(got, want) {
		t.Errorf("transcript after regenerating: got %q, want %q", got, want)
	}

	again, history, err = regenerate(1, "one")
	if err != nil {
		t.Fatalf("regenerate the first answer: got error %v, want none", err)
	}
	if got := messageContents(history); !slices.Equal(got, []string{"one"}) {
		t.Errorf("history when answering the first message again: got %q, want [one]", got)
	}
	answer(again, "answer one, again")
	if got, want := transcript(conv), []string{"one", "answer one, again"}; !slices.Equal(got, want) {
		t.Errorf("transcript after regenerating the first answer: got %q, want %q", got, want)
	}
	turns, err := s.ListTurns(ctx, conv)
	if err != nil || len(turns) != 4 {
		t.Errorf("turns: got %d, %v, want all 4 kept", len(turns), err)
	}
	all, err := s.ListAllMessages(ctx, conv)
	if err != nil {
		t.Fatalf("ListAllMessages: got error %v, want none", err)
	}
	var marked []string
	for _, m := range all {
		by := "-"
		if m.SupersededBy != "" {
			by = "turn " + strconv.Itoa(slices.IndexFunc(turns, func(tr switchboard.Turn) bool { return tr.ID == m.SupersededBy })+1)
		}
		marked = append(marked, m.Content+" ("+by+")")
	}
	want := []string{"one (-)", "answer one (turn 4)", "two (turn 4)", "answer two (turn 3)", "answer two, again (turn 4)", "answer one, again (-)"}
	if !slices.Equal(marked, want) {
		t.Errorf("every message, in order, with the turn that superseded it: got %q, want %q", marked, want)
	}
	calls, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{ConversationID: conv})
	if err != nil || len(calls) != 1 {
		t.Errorf("ledger rows of the superseded answer: got %d, %v, want 1 kept", len(calls), err)
	}

	if _, _, err := regenerate(1, "one"); err != nil {
		t.Fatalf("regenerate once more: got error %v, want none", err)
	}
	if _, _, err := regenerate(1, "one"); switchboard.ErrorCode(err) != "turn_running" {
		t.Errorf("regenerate while the last regenerating turn runs: got error %v, want turn_running", err)
	}
	ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "one"}, Regenerate: 1}
	_, err = s.BeginTurn(ctx, &ts)
	wantErr(t, "regenerate in a new conversation", err, switchboard.ErrNotFound)
	if err := s.DeleteConversation(ctx, conv); err != nil {
		t.Errorf("delete a conversation with superseded messages: got error %v, want none", err)
	}
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

// testRegenerateCancelsWaitingApprovals: a call awaiting approval in an
// answer that a regenerate replaces is cancelled, with its turn: approving
// it later must not continue a replaced answer.
func testRegenerateCancelsWaitingApprovals(t *testing.T, s Store) {
	ctx := t.Context()
	ts := newTurn(t, s, "alice", "", "delete everything")
	turn := ts.Turn
	turn.Status = switchboard.TurnAwaitingApproval
	call := switchboard.ToolCall{Server: "files", Tool: "delete_all", Status: switchboard.CallAwaitingApproval, StartedAt: t0}
	u := switchboard.TurnUpdate{Turn: turn, ToolCalls: []switchboard.ToolCall{call},
		Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
			ToolCalls: []switchboard.RequestedCall{{ID: "call_1", Name: "files__delete_all", Arguments: "{}"}}}}}
	save(t, s, &u)
	again := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: ts.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "delete everything"}, Regenerate: 1}
	if _, err := s.BeginTurn(ctx, &again); err != nil {
		t.Fatalf("regenerate: got error %v, want none", err)
	}
	got, err := s.GetToolCall(ctx, u.ToolCalls[0].ID)
	if err != nil || got.Status != switchboard.CallCancelled || got.Error == "" || got.FinishedAt.IsZero() {
		t.Errorf("the call that awaited approval: got %s %q finished %v, %v; want cancelled, with a reason", got.Status, got.Error, got.FinishedAt, err)
	}
	old, err := s.GetTurn(ctx, ts.Turn.ID)
	if err != nil || old.Status != switchboard.TurnCancelled {
		t.Errorf("the turn that awaited approval: got %s, %v, want cancelled", old.Status, err)
	}
	if _, err := s.DecideToolCall(ctx, u.ToolCalls[0].ID, true); switchboard.ErrorCode(err) != "already_decided" {
		t.Errorf("approving the cancelled call: got %v, want already_decided", err)
	}
}

// testNewTurnCancelsWaitingApprovals: calls awaiting approval when the
// user sends a new message instead of deciding are cancelled, with the turn
// that awaits them — also those of a turn that a decision resumed and that
// ended with them undecided; a call already run, or awaiting in another
// conversation, is left alone, and another user's message changes nothing.
func testNewTurnCancelsWaitingApprovals(t *testing.T, s Store) {
	ctx := t.Context()
	await := func(content string, n int) (switchboard.TurnStart, []switchboard.ToolCall) {
		ts := newTurn(t, s, "alice", "", content)
		turn := ts.Turn
		turn.Status = switchboard.TurnAwaitingApproval
		u := switchboard.TurnUpdate{Turn: turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall}}}
		for i := range n {
			id := fmt.Sprint("call_", i)
			u.Messages[0].ToolCalls = append(u.Messages[0].ToolCalls, switchboard.RequestedCall{ID: id, Name: "files__delete", Arguments: "{}"})
			u.ToolCalls = append(u.ToolCalls, switchboard.ToolCall{CallID: id, Server: "files", Tool: "delete", Status: switchboard.CallAwaitingApproval, StartedAt: t0})
		}
		save(t, s, &u)
		return ts, u.ToolCalls
	}
	status := func(id string) switchboard.ToolCall {
		t.Helper()
		c, err := s.GetToolCall(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	ts, calls := await("delete everything", 1)
	_, otherCalls := await("delete everything, elsewhere", 1)
	intruder := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: ts.Conversation.ID}, Turn: switchboard.Turn{UserID: "mallory"},
		UserMessage: switchboard.Message{Content: "go on"}}
	if _, err := s.BeginTurn(ctx, &intruder); !errors.Is(err, switchboard.ErrNotFound) {
		t.Fatalf("another user's message in the conversation: got %v, want not found", err)
	}
	if c := status(calls[0].ID); c.Status != switchboard.CallAwaitingApproval {
		t.Fatalf("after another user's message: the call is %s, want still awaiting approval", c.Status)
	}
	went := newTurn(t, s, "alice", ts.Conversation.ID, "no, keep it all")
	got := status(calls[0].ID)
	if got.Status != switchboard.CallCancelled || got.ErrorClass != switchboard.ErrorClassCancelled || !strings.Contains(got.Error, "went on") || got.FinishedAt.IsZero() {
		t.Errorf("the call that awaited approval: got %s (%s) %q finished %v; want cancelled, with a reason", got.Status, got.ErrorClass, got.Error, got.FinishedAt)
	}
	// The start tells which calls it cancelled, as stored (for metrics and
	// logs).
	if len(went.Cancelled) != 1 || went.Cancelled[0].ID != got.ID || went.Cancelled[0].TurnID != ts.Turn.ID ||
		went.Cancelled[0].Server != "files" || went.Cancelled[0].Tool != "delete" || went.Cancelled[0].Status != switchboard.CallCancelled ||
		went.Cancelled[0].ConversationID != ts.Conversation.ID || went.Cancelled[0].UserID != "alice" {
		t.Errorf("the start's Cancelled: got %+v, want the call it cancelled", went.Cancelled)
	}
	old, err := s.GetTurn(ctx, ts.Turn.ID)
	if err != nil || old.Status != switchboard.TurnCancelled || old.Error != got.Error {
		t.Errorf("the turn that awaited approval: got %s %q, %v, want cancelled with the call's reason", old.Status, old.Error, err)
	}
	if _, err := s.DecideToolCall(ctx, calls[0].ID, true); switchboard.ErrorCode(err) != "already_decided" {
		t.Errorf("approving the cancelled call: got %v, want already_decided", err)
	}
	if c := status(otherCalls[0].ID); c.Status != switchboard.CallAwaitingApproval {
		t.Errorf("the call awaiting approval in another conversation: got %s, want it still awaiting", c.Status)
	}

	// Two calls await; the first is approved and runs, and the turn fails
	// before the second is decided.
	ts, calls = await("delete two things", 2)
	if _, err := s.DecideToolCall(ctx, calls[0].ID, true); err != nil {
		t.Fatal(err)
	}
	turn := ts.Turn
	turn.Status, turn.Error, turn.FinishedAt = switchboard.TurnFailed, "the model failed", time.Now()
	ran := calls[0]
	ran.Status, ran.Result, ran.FinishedAt = switchboard.CallSucceeded, "deleted", time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: turn, ToolCalls: []switchboard.ToolCall{ran}})
	went = newTurn(t, s, "alice", ts.Conversation.ID, "what happened?")
	if c := status(calls[1].ID); c.Status != switchboard.CallCancelled || !strings.Contains(c.Error, "went on") {
		t.Errorf("the undecided call of a turn that failed: got %s %q, want cancelled", c.Status, c.Error)
	}
	if len(went.Cancelled) != 1 || went.Cancelled[0].ID != calls[1].ID {
		t.Errorf("the start's Cancelled: got %+v, want only the undecided call", went.Cancelled)
	}
	if again := newTurn(t, s, "alice", ts.Conversation.ID, "and now?"); len(again.Cancelled) != 0 {
		t.Errorf("a start with nothing awaiting: Cancelled %+v, want none", again.Cancelled)
	}
	if c := status(calls[0].ID); c.Status != switchboard.CallSucceeded {
		t.Errorf("the call that ran: got %s, want it left succeeded", c.Status)
	}
	if tr, err := s.GetTurn(ctx, ts.Turn.ID); err != nil || tr.Status != switchboard.TurnFailed {
		t.Errorf("the turn that failed: got %s, %v, want it left failed", tr.Status, err)
	}
}

// testRegenerateLast: when the n-th user message is not the one resent but
// the last is, the last is answered again.
func testRegenerateLast(t *testing.T, s Store) {
	ctx := t.Context()
	first := newTurn(t, s, "alice", "", "one")
	first.Turn.Status, first.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: first.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "a1"}}})
	second := newTurn(t, s, "alice", first.Conversation.ID, "two")
	second.Turn.Status, second.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: second.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "a2"}}})
	again := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: first.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "two"}, Regenerate: 1}
	history, err := s.BeginTurn(ctx, &again)
	if err != nil {
		t.Fatalf("regenerate: got error %v, want none", err)
	}
	if got := messageContents(history); !slices.Equal(got, []string{"one", "a1", "two"}) {
		t.Errorf("history: got %q, want it to end with the last user message", got)
	}
}

// testEdit replaces a user message: it and what follows leave the
// transcript (kept), the edit is stored after them.
func testEdit(t *testing.T, s Store) {
	ctx := t.Context()
	first := newTurn(t, s, "alice", "", "one")
	conv := first.Conversation.ID
	first.Turn.Status, first.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: first.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "a1"}}})
	second := newTurn(t, s, "alice", conv, "two")
	second.Turn.Status = switchboard.TurnAwaitingApproval
	waiting := switchboard.TurnUpdate{Turn: second.Turn,
		ToolCalls: []switchboard.ToolCall{{Server: "fs", Tool: "rm", Status: switchboard.CallAwaitingApproval, StartedAt: t0}},
		Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
			ToolCalls: []switchboard.RequestedCall{{ID: "c1", Name: "fs__rm", Arguments: "{}"}}}}}
	save(t, s, &waiting)
	call := waiting.ToolCalls[0]
	edit := func(n int, content string) []switchboard.Message {
		t.Helper()
		ts := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv}, Turn: switchboard.Turn{UserID: "alice"},
			UserMessage: switchboard.Message{Content: content}, Edit: n}
		history, err := s.BeginTurn(ctx, &ts)
		if err != nil {
			t.Fatalf("edit %d: got error %v, want none", n, err)
		}
		ts.Turn.Status, ts.Turn.FinishedAt = switchboard.TurnCompleted, time.Now()
		save(t, s, &switchboard.TurnUpdate{Turn: ts.Turn, Messages: []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "re " + content}}})
		return history
	}
	if got := messageContents(edit(2, "two, edited")); !slices.Equal(got, []string{"one", "a1", "two, edited"}) {
		t.Errorf("history of the edit: got %q", got)
	}
	if msgs, _ := s.ListMessages(ctx, conv); !slices.Equal(messageContents(msgs), []string{"one", "a1", "two, edited", "re two, edited"}) {
		t.Errorf("transcript after the edit: got %q", messageContents(msgs))
	}
	if got, err := s.GetToolCall(ctx, call.ID); err != nil || got.Status != switchboard.CallCancelled {
		t.Errorf("the call that awaited approval in the edited part: got %s, %v, want cancelled", got.Status, err)
	}
	// Past the last user message: a new message.
	if got := messageContents(edit(5, "three")); !slices.Equal(got, []string{"one", "a1", "two, edited", "re two, edited", "three"}) {
		t.Errorf("history of an edit of a message never stored: got %q", got)
	}
	all, err := s.ListAllMessages(ctx, conv)
	if err != nil || len(all) != 8 {
		t.Errorf("every message: got %d, %v, want 8 (2 superseded)", len(all), err)
	}

	// Another user's conversation: not found, and nothing of it touched.
	bobs := newTurn(t, s, "bob", "", "bob's")
	bobs.Turn.Status = switchboard.TurnAwaitingApproval
	bobWaits := switchboard.TurnUpdate{Turn: bobs.Turn,
		ToolCalls: []switchboard.ToolCall{{Server: "fs", Tool: "rm", Status: switchboard.CallAwaitingApproval, StartedAt: t0}}}
	save(t, s, &bobWaits)
	alices := newTurn(t, s, "alice", "", "alice's")
	for _, ts := range []switchboard.TurnStart{
		{Conversation: switchboard.Conversation{ID: bobs.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
			UserMessage: switchboard.Message{Content: "mine now"}, Edit: 1},
		{Conversation: switchboard.Conversation{ID: bobs.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
			UserMessage: switchboard.Message{Content: "bob's"}, Regenerate: 1},
		// With the id of a turn of hers that exists.
		{Conversation: switchboard.Conversation{ID: bobs.Conversation.ID}, Turn: switchboard.Turn{ID: alices.Turn.ID, UserID: "alice"},
			UserMessage: switchboard.Message{Content: "mine now"}, Edit: 1},
	} {
		_, err := s.BeginTurn(ctx, &ts)
		wantErr(t, "an edit or regenerate in another user's conversation", err, switchboard.ErrNotFound)
	}
	if msgs, err := s.ListMessages(ctx, bobs.Conversation.ID); err != nil || !slices.Equal(messageContents(msgs), []string{"bob's"}) {
		t.Errorf("bob's transcript after alice's edit: got %q, %v, want it untouched", messageContents(msgs), err)
	}
	if got, err := s.GetToolCall(ctx, bobWaits.ToolCalls[0].ID); err != nil || got.Status != switchboard.CallAwaitingApproval {
		t.Errorf("bob's call awaiting approval after alice's edit: got %s, %v, want still waiting", got.Status, err)
	}
	if msgs, err := s.ListMessages(ctx, alices.Conversation.ID); err != nil || !slices.Equal(messageContents(msgs), []string{"alice's"}) {
		t.Errorf("alice's own conversation after her refused edit: got %q, %v, want it untouched", messageContents(msgs), err)
	}
}

func messageContents(msgs []switchboard.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Content)
	}
	return out
}

func testListTurns(t *testing.T, s Store) {
	first := newTurn(t, s, "alice", "", "one")
	first.Turn.Status, first.Turn.FinishedAt = switchboard.TurnCompleted, t0
	save(t, s, &switchboard.TurnUpdate{Turn: first.Turn})
	second := newTurn(t, s, "alice", first.Conversation.ID, "two")
	newTurn(t, s, "alice", "", "elsewhere")
	got, err := s.ListTurns(t.Context(), first.Conversation.ID)
	if err != nil {
		t.Fatalf("ListTurns: got error %v, want none", err)
	}
	if diff := cmp.Diff([]switchboard.Turn{first.Turn, second.Turn}, got); diff != "" {
		t.Errorf("ListTurns (-want +got):\n%s", diff)
	}
	_, err = s.ListTurns(t.Context(), switchboard.NewID())
	wantErr(t, "ListTurns of a missing conversation", err, switchboard.ErrNotFound)
}

// addCalls stores calls in a new turn of user and returns them as stored.
func addCalls(t *testing.T, s Store, user string, calls []switchboard.ToolCall) []switchboard.ToolCall {
	t.Helper()
	ts := newTurn(t, s, user, "", "use tools")
	u := switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnCompleted}, ToolCalls: calls}
	save(t, s, &u)
	return u.ToolCalls
}

// newest sorts calls as listings return them.
func newest(calls []switchboard.ToolCall) []switchboard.ToolCall {
	calls = slices.Clone(calls)
	slices.SortFunc(calls, func(a, b switchboard.ToolCall) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	return calls
}

func testPagination(t *testing.T, s Store) {
	ctx := t.Context()
	var calls []switchboard.ToolCall
	for i := range 25 {
		// Three calls share each start time: the id breaks ties.
		calls = append(calls, switchboard.ToolCall{
			Server: "s", Tool: "t", Status: switchboard.CallSucceeded, StartedAt: t0.Add(time.Duration(i/3) * time.Second),
		})
	}
	existing := newest(addCalls(t, s, "alice", calls))

	var got []switchboard.ToolCall
	f := switchboard.ToolCallFilter{UserID: "alice", Limit: 10}
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("pagination does not end")
		}
		rows, next, err := s.ListToolCalls(ctx, f)
		if err != nil {
			t.Fatalf("ListToolCalls page %d: got error %v, want none", page, err)
		}
		got = append(got, rows...)
		if page == 0 {
			// Rows stored between pages: newer ones are not on later pages,
			// an older one is.
			var more []switchboard.ToolCall
			for i := range 5 {
				more = append(more, switchboard.ToolCall{Server: "s", Tool: "t", Status: switchboard.CallRunning,
					StartedAt: t0.Add(time.Hour + time.Duration(i))})
			}
			more = append(more, switchboard.ToolCall{Server: "s", Tool: "t", Status: switchboard.CallRunning, StartedAt: t0.Add(-time.Hour)})
			more = addCalls(t, s, "alice", more)
			existing = append(existing, more[len(more)-1])
		}
		if next == "" {
			if len(rows) == 0 && page > 0 {
				t.Errorf("page %d: got an empty last page, want the previous page to end the listing", page)
			}
			break
		}
		if len(rows) != 10 {
			t.Errorf("page %d: got %d rows and a next cursor, want 10", page, len(rows))
		}
		f.After = next
	}
	if diff := cmp.Diff(callIDs(existing), callIDs(got)); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}

	for _, cursor := range []string{"garbage!", "bm9wZQ", "MTIzLG5vdC1hLXV1aWQ"} {
		_, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{After: cursor})
		wantErr(t, fmt.Sprintf("ListToolCalls after %q", cursor), err, switchboard.ErrInvalid)
	}
}

func testPageSize(t *testing.T, s Store) {
	calls := make([]switchboard.ToolCall, store.MaxPageSize+1)
	for i := range calls {
		calls[i] = switchboard.ToolCall{Server: "s", Tool: "t", Status: switchboard.CallSucceeded, StartedAt: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	calls = newest(addCalls(t, s, "alice", calls))
	tests := []struct {
		name     string
		limit    int
		want     int
		wantNext bool
	}{
		{"default", 0, store.DefaultPageSize, true},
		{"small", 3, 3, true},
		{"capped", 10000, store.MaxPageSize, true},
		{"negative", -1, store.DefaultPageSize, true},
	}
	for _, tt := range tests {
		rows, next, err := s.ListToolCalls(t.Context(), switchboard.ToolCallFilter{Limit: tt.limit})
		if err != nil {
			t.Fatalf("ListToolCalls limit %d: got error %v, want none", tt.limit, err)
		}
		if len(rows) != tt.want || (next != "") != tt.wantNext {
			t.Errorf("%s page: got %d rows, next %q, want %d rows and a next cursor: %v", tt.name, len(rows), next, tt.want, tt.wantNext)
		}
		if tt.limit == 10000 {
			last, next, err := s.ListToolCalls(t.Context(), switchboard.ToolCallFilter{Limit: tt.limit, After: next})
			if err != nil || len(last) != 1 || next != "" || last[0].ID != calls[len(calls)-1].ID {
				t.Errorf("last page: got %d rows, next %q, %v, want the oldest row alone", len(last), next, err)
			}
		}
	}
}

func testFilters(t *testing.T, s Store) {
	ctx := t.Context()
	type spec struct {
		server, tool string
		status       switchboard.ToolCallStatus
	}
	mk := func(specs []spec, offset int) []switchboard.ToolCall {
		var calls []switchboard.ToolCall
		for i, sp := range specs {
			calls = append(calls, switchboard.ToolCall{Server: sp.server, Tool: sp.tool, Status: sp.status,
				StartedAt: t0.Add(time.Duration(offset+i) * time.Minute)})
		}
		return calls
	}
	alice := addCalls(t, s, "alice", mk([]spec{
		{"files", "read", switchboard.CallSucceeded},
		{"files", "write", switchboard.CallFailed},
		{"web", "search", switchboard.CallSucceeded},
		{"web", "read", switchboard.CallTimedOut},
	}, 0))
	alice2 := addCalls(t, s, "alice", mk([]spec{
		{"files", "read", switchboard.CallRunning},
		{"web", "search", switchboard.CallDenied},
	}, 4))
	bob := addCalls(t, s, "bob", mk([]spec{
		{"files", "read", switchboard.CallSucceeded},
		{"files", "write", switchboard.CallSucceeded},
	}, 6))
	all := slices.Concat(alice, alice2, bob)

	tests := []struct {
		name string
		f    switchboard.ToolCallFilter
		want func(c switchboard.ToolCall) bool
	}{
		{"none", switchboard.ToolCallFilter{}, func(c switchboard.ToolCall) bool { return true }},
		{"user", switchboard.ToolCallFilter{UserID: "bob"}, func(c switchboard.ToolCall) bool { return c.UserID == "bob" }},
		{"conversation", switchboard.ToolCallFilter{ConversationID: strings.ToUpper(alice2[0].ConversationID)},
			func(c switchboard.ToolCall) bool { return c.ConversationID == alice2[0].ConversationID }},
		{"turn", switchboard.ToolCallFilter{TurnID: alice[0].TurnID}, func(c switchboard.ToolCall) bool { return c.TurnID == alice[0].TurnID }},
		{"server", switchboard.ToolCallFilter{Server: "web"}, func(c switchboard.ToolCall) bool { return c.Server == "web" }},
		{"tool", switchboard.ToolCallFilter{Tool: "read"}, func(c switchboard.ToolCall) bool { return c.Tool == "read" }},
		{"server and tool", switchboard.ToolCallFilter{Server: "files", Tool: "read"},
			func(c switchboard.ToolCall) bool { return c.Server == "files" && c.Tool == "read" }},
		{"status", switchboard.ToolCallFilter{Status: switchboard.CallSucceeded},
			func(c switchboard.ToolCall) bool { return c.Status == switchboard.CallSucceeded }},
		{"since", switchboard.ToolCallFilter{Since: t0.Add(3 * time.Minute)},
			func(c switchboard.ToolCall) bool { return !c.StartedAt.Before(t0.Add(3 * time.Minute)) }},
		{"until", switchboard.ToolCallFilter{Until: t0.Add(3 * time.Minute)},
			func(c switchboard.ToolCall) bool { return c.StartedAt.Before(t0.Add(3 * time.Minute)) }},
		{"time range", switchboard.ToolCallFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(6 * time.Minute)},
			func(c switchboard.ToolCall) bool {
				return !c.StartedAt.Before(t0.Add(2*time.Minute)) && c.StartedAt.Before(t0.Add(6*time.Minute))
			}},
		{"user, server and status", switchboard.ToolCallFilter{UserID: "alice", Server: "files", Status: switchboard.CallRunning},
			func(c switchboard.ToolCall) bool {
				return c.UserID == "alice" && c.Server == "files" && c.Status == switchboard.CallRunning
			}},
		{"nothing matches", switchboard.ToolCallFilter{UserID: "carol"}, func(c switchboard.ToolCall) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := []switchboard.ToolCall{}
			for _, c := range all {
				if tt.want(c) {
					want = append(want, c)
				}
			}
			got, next, err := s.ListToolCalls(ctx, tt.f)
			if err != nil {
				t.Fatalf("ListToolCalls: got error %v, want none", err)
			}
			if next != "" || got == nil {
				t.Errorf("got next %q and list %v, want one non-nil page", next, got)
			}
			if diff := cmp.Diff(newest(want), got, jsonEqual); diff != "" {
				t.Errorf("ListToolCalls(%+v) (-want +got):\n%s", tt.f, diff)
			}
		})
	}
	for _, f := range []switchboard.ToolCallFilter{
		{Status: "weird"},
		{ConversationID: "not-a-uuid"},
		{TurnID: "not-a-uuid"},
	} {
		_, _, err := s.ListToolCalls(ctx, f)
		wantErr(t, fmt.Sprintf("ListToolCalls(%+v)", f), err, switchboard.ErrInvalid)
		_, err = s.ToolCallStats(ctx, f, store.GroupByTool)
		wantErr(t, fmt.Sprintf("ToolCallStats(%+v)", f), err, switchboard.ErrInvalid)
	}
}

func testStats(t *testing.T, s Store) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	call := func(server, tool string, status switchboard.ToolCallStatus, d time.Duration) switchboard.ToolCall {
		return switchboard.ToolCall{Server: server, Tool: tool, Status: status, Duration: d}
	}
	addCalls(t, s, "alice", []switchboard.ToolCall{
		call("files", "read", switchboard.CallSucceeded, ms(30)),
		call("files", "read", switchboard.CallSucceeded, ms(10)),
		call("files", "read", switchboard.CallFailed, ms(50)),
		call("files", "read", switchboard.CallSucceeded, ms(40)),
		call("files", "read", switchboard.CallSucceeded, ms(20)),
		call("files", "read", switchboard.CallRunning, 0),
		call("files", "write", switchboard.CallTimedOut, ms(7)),
		call("web", "search", switchboard.CallSucceeded, ms(300)),
		call("Web", "search", switchboard.CallSucceeded, ms(1)),
	})
	addCalls(t, s, "bob", []switchboard.ToolCall{
		call("web", "search", switchboard.CallSucceeded, ms(100)),
		call("web", "fetch", switchboard.CallRunning, 0),
		// Not run yet: counted, but neither an error nor a latency.
		call("web", "fetch", switchboard.CallAwaitingApproval, 0),
	})
	tests := []struct {
		name    string
		f       switchboard.ToolCallFilter
		groupBy string
		want    []switchboard.ToolCallStats
	}{
		{"by tool", switchboard.ToolCallFilter{}, store.GroupByTool, []switchboard.ToolCallStats{
			// Byte order: "Web" sorts before "files".
			{Group: "search", Server: "Web", Count: 1, P50: ms(1), P95: ms(1)},
			{Group: "read", Server: "files", Count: 6, Errors: 1, ErrorRate: 0.2, P50: ms(30), P95: ms(48)},
			{Group: "write", Server: "files", Count: 1, Errors: 1, ErrorRate: 1, P50: ms(7), P95: ms(7)},
			{Group: "fetch", Server: "web", Count: 2},
			{Group: "search", Server: "web", Count: 2, P50: ms(200), P95: ms(290)},
		}},
		{"by server", switchboard.ToolCallFilter{}, store.GroupByServer, []switchboard.ToolCallStats{
			{Group: "Web", Server: "Web", Count: 1, P50: ms(1), P95: ms(1)},
			{Group: "files", Server: "files", Count: 7, Errors: 2, ErrorRate: 2.0 / 6, P50: ms(25), P95: ms(47.5)},
			{Group: "web", Server: "web", Count: 4, P50: ms(200), P95: ms(290)},
		}},
		{"filtered", switchboard.ToolCallFilter{UserID: "alice", Status: switchboard.CallSucceeded, After: "ignored", Limit: 1},
			store.GroupByServer, []switchboard.ToolCallStats{
				{Group: "Web", Server: "Web", Count: 1, P50: ms(1), P95: ms(1)},
				{Group: "files", Server: "files", Count: 4, P50: ms(25), P95: ms(38.5)},
				{Group: "web", Server: "web", Count: 1, P50: ms(300), P95: ms(300)},
			}},
		{"nothing matches", switchboard.ToolCallFilter{UserID: "carol"}, store.GroupByTool, []switchboard.ToolCallStats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ToolCallStats(t.Context(), tt.f, tt.groupBy)
			if err != nil {
				t.Fatalf("ToolCallStats: got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("ToolCallStats(%+v, %q) (-want +got):\n%s", tt.f, tt.groupBy, diff)
			}
			if got == nil {
				t.Errorf("ToolCallStats: got nil, want a non-nil list")
			}
		})
	}
	_, err := s.ToolCallStats(t.Context(), switchboard.ToolCallFilter{}, "user")
	wantErr(t, `ToolCallStats grouped by "user"`, err, switchboard.ErrInvalid)
}

func testDeleteCascades(t *testing.T, s Store) {
	ctx := t.Context()
	doomed := switchboard.TurnStart{
		Turn:        switchboard.Turn{UserID: "alice", IdempotencyKey: "k"},
		UserMessage: switchboard.Message{Content: "forget me"},
	}
	begin(t, s, &doomed)
	u := switchboard.TurnUpdate{
		Turn:      switchboard.Turn{ID: doomed.Turn.ID, Status: switchboard.TurnCompleted},
		Messages:  []switchboard.Message{{Role: switchboard.RoleAssistant, Content: "ok"}},
		ToolCalls: []switchboard.ToolCall{{Server: "s", Tool: "t", Status: switchboard.CallSucceeded}},
	}
	save(t, s, &u)
	kept := addCalls(t, s, "alice", []switchboard.ToolCall{{Server: "s", Tool: "t", Status: switchboard.CallSucceeded}})

	if err := s.DeleteConversation(ctx, doomed.Conversation.ID); err != nil {
		t.Fatalf("DeleteConversation: got error %v, want none", err)
	}
	_, err := s.GetConversation(ctx, doomed.Conversation.ID)
	wantErr(t, "GetConversation after delete", err, switchboard.ErrNotFound)
	_, err = s.ListMessages(ctx, doomed.Conversation.ID)
	wantErr(t, "ListMessages after delete", err, switchboard.ErrNotFound)
	_, err = s.GetTurn(ctx, doomed.Turn.ID)
	wantErr(t, "GetTurn after delete", err, switchboard.ErrNotFound)
	_, err = s.TurnByIdempotencyKey(ctx, "alice", "k")
	wantErr(t, "TurnByIdempotencyKey after delete", err, switchboard.ErrNotFound)
	_, err = s.GetToolCall(ctx, u.ToolCalls[0].ID)
	wantErr(t, "GetToolCall after delete", err, switchboard.ErrNotFound)
	err = s.DeleteConversation(ctx, doomed.Conversation.ID)
	wantErr(t, "DeleteConversation twice", err, switchboard.ErrNotFound)

	calls, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{UserID: "alice"})
	if err != nil {
		t.Fatalf("ListToolCalls: got error %v, want none", err)
	}
	if diff := cmp.Diff(callIDs(kept), callIDs(calls)); diff != "" {
		t.Errorf("tool calls left (-want +got):\n%s", diff)
	}
	// The key is free again.
	again := switchboard.TurnStart{
		Turn:        switchboard.Turn{UserID: "alice", IdempotencyKey: "k"},
		UserMessage: switchboard.Message{Content: "remember me"},
	}
	begin(t, s, &again)
}

func testCanceled(t *testing.T, s Store) {
	ts := newTurn(t, s, "alice", "", "hi")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.GetConversation(ctx, ts.Conversation.ID)
	wantErr(t, "GetConversation with a canceled context", err, context.Canceled)
	_, err = s.BeginTurn(ctx, &switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}})
	wantErr(t, "BeginTurn with a canceled context", err, context.Canceled)
	if errors.Is(err, switchboard.ErrUnavailable) {
		t.Errorf("BeginTurn with a canceled context: got %v, want an error that is not ErrUnavailable", err)
	}
	ctx, cancel = context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	_, err = s.ListMessages(ctx, ts.Conversation.ID)
	wantErr(t, "ListMessages past the deadline", err, context.DeadlineExceeded)
	wantErr(t, "ListMessages past the deadline", err, switchboard.ErrUnavailable)
}

// testConcurrent runs turns from many goroutines, in one shared conversation
// and in conversations of their own.
func testConcurrent(t *testing.T, s Store) {
	const workers, turns = 8, 6
	shared := newTurn(t, s, "alice", "", "shared")
	endRunning(t, s, shared.Conversation.ID)
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
	msgs, err := s.ListMessages(ctx, shared.Conversation.ID)
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

// testExternalID: a client's own conversation id is kept per user.
func testExternalID(t *testing.T, s Store) {
	ctx := context.Background()
	begin := func(user, ext string) (switchboard.TurnStart, error) {
		ts := switchboard.TurnStart{
			Conversation: switchboard.Conversation{ExternalID: ext},
			Turn:         switchboard.Turn{UserID: user},
			UserMessage:  switchboard.Message{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: "hi"},
		}
		_, err := s.BeginTurn(ctx, &ts)
		return ts, err
	}
	a, err := begin("alice", "chat-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.ConversationByExternalID(ctx, "alice", "chat-1")
	if err != nil || got.ID != a.Conversation.ID || got.ExternalID != "chat-1" {
		t.Fatalf("by external id: got %+v, %v; want %s", got, err, a.Conversation.ID)
	}
	if _, err := s.ConversationByExternalID(ctx, "bob", "chat-1"); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("another user's external id: got %v, want ErrNotFound", err)
	}
	if _, err := begin("alice", "chat-1"); !errors.Is(err, switchboard.ErrConflict) || switchboard.ErrorCode(err) != "conversation_exists" {
		t.Errorf("creating chat-1 twice: got %v, want ErrConflict", err)
	}
	b, err := begin("bob", "chat-1") // the same client id, another user: another conversation
	if err != nil || b.Conversation.ID == a.Conversation.ID {
		t.Errorf("bob's chat-1: got %+v, %v", b.Conversation, err)
	}
	if c, err := s.GetConversation(ctx, a.Conversation.ID); err != nil || c.ExternalID != "chat-1" {
		t.Errorf("GetConversation: got %+v, %v, want external id chat-1", c, err)
	}
}

// testDecideToolCall: a call awaiting approval is decided once, atomically.
func testDecideToolCall(t *testing.T, s Store) {
	ctx := context.Background()
	ts := newTurn(t, s, "alice", "", "delete everything")
	pending := func() switchboard.ToolCall {
		return switchboard.ToolCall{ID: switchboard.NewID(), CallID: "c", Server: "fs", Tool: "rm", ExposedName: "fs__rm",
			Arguments: json.RawMessage(`{"path":"/"}`), Status: switchboard.CallAwaitingApproval, StartedAt: time.Now()}
	}
	a, b := pending(), pending()
	waiting := ts.Turn
	waiting.Status = switchboard.TurnAwaitingApproval
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: waiting, ToolCalls: []switchboard.ToolCall{a, b}}); err != nil {
		t.Fatal(err)
	}
	// Many deciders at once: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := s.DecideToolCall(ctx, a.ID, true)
			switch {
			case err == nil:
				wins.Add(1)
				if got.Status != switchboard.CallAwaitingApproval || string(got.Arguments) != `{"path": "/"}` && string(got.Arguments) != `{"path":"/"}` {
					t.Errorf("decided call as it was: got %+v", got)
				}
			case !errors.Is(err, switchboard.ErrConflict) || switchboard.ErrorCode(err) != "already_decided":
				t.Errorf("losing decider: got %v, want already_decided", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("winners: got %d, want 1", wins.Load())
	}
	if got, _ := s.GetToolCall(ctx, a.ID); got.Status != switchboard.CallRunning {
		t.Errorf("approved call: got status %s, want running", got.Status)
	}
	// The decision resumed the turn: it holds its conversation again, and a
	// cancel asked of another instance reaches it.
	if got, err := s.GetTurn(ctx, ts.Turn.ID); err != nil || got.Status != switchboard.TurnRunning {
		t.Errorf("turn after the decision: got %s, %v, want running", got.Status, err)
	}
	if _, _, err := s.RequestCancel(ctx, "alice", ts.Conversation.ID); err != nil {
		t.Errorf("cancel of the resumed turn: got %v, want none", err)
	}
	other := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: ts.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "and now?"}}
	if _, err := s.BeginTurn(ctx, &other); switchboard.ErrorCode(err) != "turn_running" {
		t.Errorf("a new turn while the resumed one runs: got %v, want turn_running", err)
	}
	// b still waits, but its turn runs: deciding it waits for the turn.
	if _, err := s.DecideToolCall(ctx, b.ID, false); switchboard.ErrorCode(err) != "turn_running" {
		t.Errorf("deciding a call of a running turn: got %v, want turn_running", err)
	}
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: waiting}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecideToolCall(ctx, b.ID, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetToolCall(ctx, b.ID); got.Status != switchboard.CallDenied {
		t.Errorf("denied call: got status %s, want denied", got.Status)
	}
	if _, err := s.DecideToolCall(ctx, switchboard.NewID(), true); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("unknown call: got %v, want ErrNotFound", err)
	}
	// A call left waiting by a turn that ended can no longer run.
	ended := newTurn(t, s, "alice", "", "delete it all")
	c := pending()
	ended.Turn.Status = switchboard.TurnAwaitingApproval
	save(t, s, &switchboard.TurnUpdate{Turn: ended.Turn, ToolCalls: []switchboard.ToolCall{c}})
	ended.Turn.Status, ended.Turn.FinishedAt = switchboard.TurnFailed, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: ended.Turn})
	if _, err := s.DecideToolCall(ctx, c.ID, true); switchboard.ErrorCode(err) != "already_decided" {
		t.Errorf("a call of a turn that ended: got %v, want already_decided", err)
	}
	if _, err := s.DecideToolCall(ctx, "nope", true); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("malformed id: got %v, want ErrNotFound", err)
	}
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
	if msgs, _ := s.ListMessages(ctx, conv); len(msgs) != 1 {
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

// testPrune: retention removes old payloads in batches, oldest first, and
// keeps the rows' metadata.
func testPrune(t *testing.T, s Store) {
	ctx := t.Context()
	now := time.Now()
	call := func(age time.Duration) switchboard.ToolCall {
		return switchboard.ToolCall{ID: switchboard.NewID(), Server: "s", Tool: "t", Arguments: json.RawMessage(`{"q":"secret"}`),
			Result: "payload", StructuredResult: json.RawMessage(`{"r":1}`), Status: switchboard.CallSucceeded,
			Duration: 5 * time.Millisecond, ResultSize: 7, StartedAt: now.Add(-age), FinishedAt: now.Add(-age)}
	}
	calls := addCalls(t, s, "alice", []switchboard.ToolCall{call(100 * 24 * time.Hour), call(95 * 24 * time.Hour), call(10 * 24 * time.Hour)})
	cutoff := now.Add(-90 * 24 * time.Hour)
	for i, want := range []int{1, 1, 0} {
		n, err := s.PruneToolCallPayloads(ctx, cutoff, 1)
		if err != nil || n != want {
			t.Fatalf("batch %d: pruned %d, %v; want %d", i+1, n, err, want)
		}
	}
	for i, c := range calls {
		got, err := s.GetToolCall(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		old := i < 2
		if got.PayloadPruned != old || old && (got.Arguments != nil || got.Result != "" || got.StructuredResult != nil) ||
			!old && got.Result != "payload" {
			t.Errorf("call %d (old %v): got %+v", i, old, got)
		}
		if got.Status != switchboard.CallSucceeded || got.Duration != 5*time.Millisecond || got.ResultSize != 7 {
			t.Errorf("call %d lost its metadata: %+v", i, got)
		}
	}
	if _, err := s.PruneToolCallPayloads(ctx, cutoff, 0); !errors.Is(err, switchboard.ErrInvalid) {
		t.Errorf("batch 0: got %v, want ErrInvalid", err)
	}
}
