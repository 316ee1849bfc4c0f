package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
)

// turnWriter is what fillTurn writes to: either store.
type turnWriter interface {
	BeginTurn(context.Context, *switchboard.TurnStart) ([]switchboard.Message, error)
	SaveTurn(context.Context, *switchboard.TurnUpdate) error
}

// fillTurn stores one finished turn like the bench's in conversation (a new one
// when empty) of user: the user's message, the model's call of a tool, the
// call started and finished with a result carrying binary content of
// payload bytes, the result and the answer. It returns the conversation's
// id and the call's.
func fillTurn(t testing.TB, s turnWriter, user, conversation string, payload int) (string, string) {
	t.Helper()
	conv, call, err := storeTurn(context.Background(), s, user, conversation, payload)
	if err != nil {
		t.Fatal(err)
	}
	return conv, call
}

// storeTurn is fillTurn returning its first error instead of failing the
// test: for turns that may lose a race (to a delete, say).
func storeTurn(ctx context.Context, s turnWriter, user, conversation string, payload int) (string, string, error) {
	ts := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conversation},
		Turn: switchboard.Turn{UserID: user}, UserMessage: switchboard.Message{Content: "please echo hello " + user},
		HistoryLimit: 50} // the orchestrator's default window
	if _, err := s.BeginTurn(ctx, &ts); err != nil {
		return "", "", fmt.Errorf("BeginTurn: %w", err)
	}
	turn := switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning, Steps: 1}
	call := switchboard.ToolCall{ID: switchboard.NewID(), CallID: "call_1", Server: "echo", Tool: "echo", ExposedName: "echo",
		Arguments: []byte(`{"text":"hello"}`), Status: switchboard.CallRunning, StartedAt: time.Now()}
	request := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall,
		ToolCalls: []switchboard.RequestedCall{{ID: "call_1", Name: "echo", Arguments: `{"text":"hello"}`}}, Timestamp: time.Now()}
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: turn, Messages: []switchboard.Message{request},
		ToolCalls: []switchboard.ToolCall{call}}); err != nil {
		return "", "", fmt.Errorf("SaveTurn: %w", err)
	}
	call.Status, call.Result, call.FinishedAt, call.Duration = switchboard.CallSucceeded, "hello", time.Now(), time.Millisecond
	if payload > 0 {
		call.Content = []switchboard.ContentPart{{ToolCallID: call.ID, Kind: switchboard.ContentImage, MIMEType: "image/png",
			Size: payload, SHA256: strings.Repeat("0", 64), Data: bytes.Repeat([]byte{7}, payload)}}
	}
	result := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleTool, Type: switchboard.MessageToolResult,
		Content: "hello", ToolCallID: "call_1", ToolName: "echo", Timestamp: time.Now()}
	answer := switchboard.Message{ID: switchboard.NewID(), Role: switchboard.RoleAssistant, Type: switchboard.MessageText,
		Content: "Done: the echo answered.", Timestamp: time.Now()}
	turn.Status, turn.Steps, turn.FinishedAt = switchboard.TurnCompleted, 2, time.Now()
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: turn, Messages: []switchboard.Message{result, answer},
		ToolCalls: []switchboard.ToolCall{call}}); err != nil {
		return "", "", fmt.Errorf("SaveTurn: %w", err)
	}
	return ts.Conversation.ID, call.ID, nil
}

// logRecorder keeps the messages logged to it.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// TestMemoryBound fills a bounded store three times past its bound with
// two users' conversations, each turn carrying binary content: the store
// stays within its bound, the least recently used conversations go whole
// (their turns and calls with them, for both users), a conversation with a
// turn running stays however old, one read lately stays, and the evictions
// are logged.
func TestMemoryBound(t *testing.T) {
	const max = 4 << 20
	logs := &logRecorder{}
	s := store.OpenMemory(&store.MemoryOptions{MaxBytes: max, Logger: slog.New(logs)})
	ctx := t.Context()
	users := []string{"alice", "bob"}

	// alice's first conversation has a turn running: it must stay.
	running := switchboard.TurnStart{Turn: switchboard.Turn{UserID: "alice"}, UserMessage: switchboard.Message{Content: "still running"}}
	if _, err := s.BeginTurn(ctx, &running); err != nil {
		t.Fatal(err)
	}
	// bob's first conversation is read all along: it must stay.
	read, _ := fillTurn(t, s, "bob", "", 10_000)
	type conv struct{ user, id, call string }
	var convs []conv
	for i := 0; s.Evicted() == 0 || i < 3*max/(20_000); i++ {
		user := users[i%2]
		id, call := fillTurn(t, s, user, "", 20_000)
		// A second turn in the same conversation.
		_, call = fillTurn(t, s, user, id, 0)
		convs = append(convs, conv{user, id, call})
		if _, err := s.GetConversation(ctx, "bob", read); err != nil {
			t.Fatalf("turn %d: bob's conversation read all along: %v", i, err)
		}
		if got := s.Bytes(); got > max {
			t.Fatalf("turn %d: Bytes() = %d, over the bound %d", i, got, max)
		}
		if i > 10_000 {
			t.Fatalf("nothing evicted after %d conversations (%d bytes)", i, s.Bytes())
		}
	}
	checkAccounting(t, s)

	if _, err := s.GetConversation(ctx, "alice", running.Conversation.ID); err != nil {
		t.Errorf("the conversation with a turn running: %v, want it kept", err)
	}
	if tr, err := s.GetTurn(ctx, "alice", running.Turn.ID); err != nil || tr.Status != switchboard.TurnRunning {
		t.Errorf("its turn: %+v, %v; want it running", tr, err)
	}
	for _, c := range convs[:4] { // the oldest, two of each user
		if _, err := s.GetConversation(ctx, c.user, c.id); !errors.Is(err, switchboard.ErrNotFound) {
			t.Errorf("%s's conversation %s among the oldest: got %v, want ErrNotFound", c.user, c.id, err)
		}
		if _, err := s.GetToolCall(ctx, c.user, c.call); !errors.Is(err, switchboard.ErrNotFound) {
			t.Errorf("its tool call: got %v, want ErrNotFound", err)
		}
		if page, _, err := s.ListToolCalls(ctx, switchboard.ToolCallFilter{ConversationID: c.id}); err != nil || len(page) != 0 {
			t.Errorf("its ledger: got %d calls, %v; want none", len(page), err)
		}
	}
	for _, c := range convs[len(convs)-2:] { // the newest of each user
		msgs, err := s.ListMessages(ctx, c.user, c.id)
		if err != nil || len(msgs) != 8 {
			t.Errorf("%s's newest conversation: got %d messages, %v; want 8", c.user, len(msgs), err)
		}
		if got, err := s.GetToolCall(ctx, c.user, c.call); err != nil || got.Status != switchboard.CallSucceeded {
			t.Errorf("its tool call: %+v, %v", got, err)
		}
	}
	// Both users lost conversations, and both kept some.
	for _, u := range users {
		list, err := s.ListConversations(ctx, u, store.MaxPageSize)
		if err != nil {
			t.Fatal(err)
		}
		own := 0
		for _, c := range convs {
			if c.user == u {
				own++
			}
		}
		if len(list) == 0 || len(list) >= own {
			t.Errorf("%s: %d conversations kept of %d (and the one kept), want some but not all", u, len(list), own)
		}
	}
	logs.mu.Lock()
	logged := strings.Join(logs.msgs, "\n")
	logs.mu.Unlock()
	if !strings.Contains(logged, "evicted") {
		t.Errorf("logs: %q, want the evictions logged", logged)
	}

	// The turn running ends: its conversation may go now that it is the
	// least recently used.
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: running.Turn.ID,
		Status: switchboard.TurnCompleted, FinishedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	for range max / 20_000 {
		fillTurn(t, s, "bob", "", 20_000)
	}
	if _, err := s.GetConversation(ctx, "alice", running.Conversation.ID); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("the conversation whose turn ended, least recently used: got %v, want it evicted", err)
	}
	checkAccounting(t, s)
}

// TestMemoryBoundHoldsTheHeap fills a bounded store with small turns (the
// bench's: no binary content, so that the records' overheads are most of
// it) and compares the heap it holds with its bound: the count must not
// leave out what the records cost in memory.
func TestMemoryBoundHoldsTheHeap(t *testing.T) {
	const max = 32 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := store.OpenMemory(&store.MemoryOptions{MaxBytes: max})
	for i := 0; s.Evicted() < 1000; i++ {
		id, _ := fillTurn(t, s, fmt.Sprintf("user-%d", i%2), "", 0)
		fillTurn(t, s, fmt.Sprintf("user-%d", i%2), id, 0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("bound %d bytes, counted %d, heap held %d (%.2f of the count)", max, s.Bytes(), held, float64(held)/float64(s.Bytes()))
	if held > s.Bytes()*11/10 {
		t.Errorf("the store holds %d bytes of heap, more than 1.1 times the %d it counts", held, s.Bytes())
	}
	if held < s.Bytes()/2 {
		t.Errorf("the store holds %d bytes of heap, less than half the %d it counts: the count is too high", held, s.Bytes())
	}
	runtime.KeepAlive(s)
}

// TestMemorySizesCountEveryField sets each string, byte slice and slice
// field of the records the memory store keeps, one at a time, and checks
// that the store's count of the record grows by at least its length: a
// field added later and not counted fails here.
func TestMemorySizesCountEveryField(t *testing.T) {
	for _, v := range []any{switchboard.Conversation{}, switchboard.Message{}, switchboard.Turn{}, switchboard.ToolCall{}, switchboard.Input{},
		switchboard.Sampling{}} {
		typ := reflect.TypeOf(v)
		t.Run(typ.Name(), func(t *testing.T) {
			zero := store.RecordSize(v)
			for i := range typ.NumField() {
				f := typ.Field(i)
				rv := reflect.New(typ).Elem()
				want := fill(rv.Field(i))
				if want == 0 {
					continue
				}
				if got := store.RecordSize(rv.Interface()) - zero; got < want {
					t.Errorf("%s.%s of %d bytes: the count grows by %d", typ.Name(), f.Name, want, got)
				}
			}
		})
	}
}

// fill sets v, a string, a slice of bytes or a slice of structs, to a value
// of 100 bytes (a slice of structs: one element, each of its fields so
// filled) and returns the bytes it set; other kinds it leaves alone.
func fill(v reflect.Value) int64 {
	switch {
	case v.Kind() == reflect.String:
		v.SetString(strings.Repeat("x", 100))
		return 100
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		v.SetBytes(bytes.Repeat([]byte{'x'}, 100))
		return 100
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		e := reflect.New(v.Type().Elem()).Elem()
		var n int64
		for i := range e.NumField() {
			n += fill(e.Field(i))
		}
		v.Set(reflect.Append(v, e))
		return n
	}
	return 0
}

// TestMemoryBoundCountsInputs checks the count of a conversation as a
// server's question of its call is stored, answered and closed, and a
// sampling request of a call recorded, and that an eviction takes the
// question with the conversation.
func TestMemoryBoundCountsInputs(t *testing.T) {
	ctx := t.Context()
	s := store.OpenMemory(&store.MemoryOptions{MaxBytes: 1 << 20})
	ask := func(user string) (switchboard.Input, int64) {
		ts := switchboard.TurnStart{Turn: switchboard.Turn{UserID: user}, UserMessage: switchboard.Message{Content: "ask me"}}
		if _, err := s.BeginTurn(ctx, &ts); err != nil {
			t.Fatal(err)
		}
		call := switchboard.ToolCall{ID: switchboard.NewID(), CallID: "c1", Server: "everything", Tool: "elicit",
			Status: switchboard.CallRunning, StartedAt: time.Now()}
		if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: ts.Turn.ID, Status: switchboard.TurnRunning},
			ToolCalls: []switchboard.ToolCall{call}}); err != nil {
			t.Fatal(err)
		}
		before := s.Bytes()
		in := switchboard.Input{UserID: user, ConversationID: ts.Conversation.ID, TurnID: ts.Turn.ID, ToolCallID: call.ID,
			Server: "everything", Mode: switchboard.InputForm, Message: strings.Repeat("Your name? ", 100),
			RequestedSchema: []byte(`{"type":"object","properties":{"name":{"type":"string"}}}`)}
		if err := s.CreateInput(ctx, &in); err != nil {
			t.Fatal(err)
		}
		return in, before
	}
	alice, before := ask("alice")
	if got := s.Bytes() - before; got < 1100 {
		t.Errorf("a question of 1,100 bytes of text counts %d bytes", got)
	}
	checkAccounting(t, s)
	grown := s.Bytes()
	if _, err := s.AnswerInput(ctx, "alice", alice.ID, switchboard.ActionAccept, []byte(`{"name":"`+strings.Repeat("a", 500)+`"}`)); err != nil {
		t.Fatal(err)
	}
	if got := s.Bytes() - grown; got < 500 {
		t.Errorf("an answer of 500 bytes counts %d bytes", got)
	}
	checkAccounting(t, s)
	bob, _ := ask("bob")
	if _, err := s.CloseInput(ctx, bob.ID, switchboard.InputCancelled, "the turn went on"); err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, s)
	grown = s.Bytes()
	if err := s.RecordSampling(ctx, &switchboard.Sampling{UserID: "bob", ConversationID: bob.ConversationID, TurnID: bob.TurnID,
		ToolCallID: bob.ToolCallID, Server: "everything", Kind: "sampling", Model: "m",
		Status: switchboard.SamplingFailed, Error: strings.Repeat("the model failed ", 30)}); err != nil {
		t.Fatal(err)
	}
	if got := s.Bytes() - grown; got < 500 {
		t.Errorf("a sampling row of 500 bytes of text counts %d bytes", got)
	}
	checkAccounting(t, s)

	// alice's turn ends; filling the store evicts her conversation, and
	// her question with it.
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: switchboard.Turn{ID: alice.TurnID, Status: switchboard.TurnCompleted,
		FinishedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		fillTurn(t, s, "bob", "", 20_000)
	}
	if _, err := s.GetInput(ctx, "alice", alice.ID); err == nil {
		t.Error("alice's question outlived her evicted conversation")
	}
	checkAccounting(t, s)
}
