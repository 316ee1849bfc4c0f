package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
)

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
		c, err := s.GetToolCall(ctx, "alice", id)
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
	old, err := s.GetTurn(ctx, "alice", ts.Turn.ID)
	if err != nil || old.Status != switchboard.TurnCancelled || old.Error != got.Error {
		t.Errorf("the turn that awaited approval: got %s %q, %v, want cancelled with the call's reason", old.Status, old.Error, err)
	}
	if _, err := s.DecideToolCall(ctx, "alice", calls[0].ID, true); switchboard.ErrorCode(err) != "already_decided" {
		t.Errorf("approving the cancelled call: got %v, want already_decided", err)
	}
	if c := status(otherCalls[0].ID); c.Status != switchboard.CallAwaitingApproval {
		t.Errorf("the call awaiting approval in another conversation: got %s, want it still awaiting", c.Status)
	}

	// Two calls await; the first is approved and runs, and the turn fails
	// before the second is decided.
	ts, calls = await("delete two things", 2)
	if _, err := s.DecideToolCall(ctx, "alice", calls[0].ID, true); err != nil {
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
	if tr, err := s.GetTurn(ctx, "alice", ts.Turn.ID); err != nil || tr.Status != switchboard.TurnFailed {
		t.Errorf("the turn that failed: got %s, %v, want it left failed", tr.Status, err)
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
			got, err := s.DecideToolCall(ctx, "alice", a.ID, true)
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
	if got, _ := s.GetToolCall(ctx, "alice", a.ID); got.Status != switchboard.CallRunning {
		t.Errorf("approved call: got status %s, want running", got.Status)
	}
	// The decision resumed the turn: it holds its conversation again, and a
	// cancel asked of another instance reaches it.
	if got, err := s.GetTurn(ctx, "alice", ts.Turn.ID); err != nil || got.Status != switchboard.TurnRunning {
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
	if _, err := s.DecideToolCall(ctx, "alice", b.ID, false); switchboard.ErrorCode(err) != "turn_running" {
		t.Errorf("deciding a call of a running turn: got %v, want turn_running", err)
	}
	if err := s.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: waiting}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DecideToolCall(ctx, "alice", b.ID, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetToolCall(ctx, "alice", b.ID); got.Status != switchboard.CallDenied {
		t.Errorf("denied call: got status %s, want denied", got.Status)
	}
	if _, err := s.DecideToolCall(ctx, "alice", switchboard.NewID(), true); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("unknown call: got %v, want ErrNotFound", err)
	}
	// A call left waiting by a turn that ended can no longer run.
	ended := newTurn(t, s, "alice", "", "delete it all")
	c := pending()
	ended.Turn.Status = switchboard.TurnAwaitingApproval
	save(t, s, &switchboard.TurnUpdate{Turn: ended.Turn, ToolCalls: []switchboard.ToolCall{c}})
	ended.Turn.Status, ended.Turn.FinishedAt = switchboard.TurnFailed, time.Now()
	save(t, s, &switchboard.TurnUpdate{Turn: ended.Turn})
	if _, err := s.DecideToolCall(ctx, "alice", c.ID, true); switchboard.ErrorCode(err) != "already_decided" {
		t.Errorf("a call of a turn that ended: got %v, want already_decided", err)
	}
	if _, err := s.DecideToolCall(ctx, "alice", "nope", true); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("malformed id: got %v, want ErrNotFound", err)
	}
}
