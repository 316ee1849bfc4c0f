package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// askingTurn begins a turn of alice's through s with three running calls:
// one whose modern server asked a question (stored with its key, state and
// round), one whose legacy server asked one (open on the connection), and
// one that asked nothing. It returns the turn, the calls in that order,
// and the two questions.
func askingTurn(t *testing.T, s Store) (switchboard.TurnStart, []switchboard.ToolCall, switchboard.Input, switchboard.Input) {
	t.Helper()
	ts := newTurn(t, s, "alice", "", "book a table")
	start := time.Now().Add(-time.Second)
	calls := []switchboard.ToolCall{
		{ID: switchboard.NewID(), CallID: "m1", Step: 1, Server: "modern", Tool: "book", ExposedName: "modern__book", Status: switchboard.CallRunning, StartedAt: start},
		{ID: switchboard.NewID(), CallID: "l1", Step: 1, Server: "legacy", Tool: "ask", ExposedName: "legacy__ask", Status: switchboard.CallRunning, StartedAt: start.Add(time.Millisecond)},
		{ID: switchboard.NewID(), CallID: "p1", Step: 1, Server: "srv", Tool: "slow", ExposedName: "srv__slow", Status: switchboard.CallRunning, StartedAt: start.Add(2 * time.Millisecond)},
	}
	step := ts.Turn
	step.Steps = 1
	save(t, s, &switchboard.TurnUpdate{Turn: step, ToolCalls: calls})
	modern := formInput(ts, calls[0])
	modern.Server, modern.RequestKey, modern.RequestState = "modern", "party", "state-1"
	modern.InputRequests = json.RawMessage(`{"party":{"method":"elicitation/create","params":{"message":"How many?"}}}`)
	legacy := formInput(ts, calls[1])
	legacy.Server = "legacy"
	for _, in := range []*switchboard.Input{&modern, &legacy} {
		if err := s.CreateInput(t.Context(), in); err != nil {
			t.Fatalf("CreateInput: %v", err)
		}
	}
	return ts, calls, modern, legacy
}

// wantAwaitingInput checks that got is turn stored awaiting_input (now as
// now) with its modern server's call left running, the other calls failed as
// interrupted, and the legacy server's question failed (nobody holds its
// request any more).
func wantAwaitingInput(t *testing.T, s Store, what string, got *switchboard.Interrupted, turn switchboard.Turn, calls []switchboard.ToolCall, legacy switchboard.Input, now switchboard.TurnStatus) {
	t.Helper()
	ctx := t.Context()
	if got == nil || got.Turn.ID != turn.ID || got.Turn.Status != switchboard.TurnAwaitingInput || got.Turn.Error != "" || !got.Turn.FinishedAt.IsZero() {
		t.Fatalf("%s: got %+v, want turn %s awaiting_input, no error, not finished", what, got, turn.ID)
	}
	if stored, err := s.GetTurn(ctx, "alice", turn.ID); err != nil || stored.Status != now {
		t.Errorf("%s: the stored turn: %s, %v; want %s", what, stored.Status, err, now)
	}
	closed := map[string]bool{}
	for _, c := range got.Calls {
		closed[c.ID] = true
		if c.Status != switchboard.CallFailed || c.ErrorClass != switchboard.ErrorClassInterrupted {
			t.Errorf("%s: closed call %s: %s, %s; want failed, interrupted", what, c.CallID, c.Status, c.ErrorClass)
		}
	}
	if closed[calls[0].ID] || !closed[calls[1].ID] || !closed[calls[2].ID] || len(got.Calls) != 2 {
		t.Errorf("%s: closed calls %v; want the legacy server's and the one that asked nothing, not the modern server's", what, closed)
	}
	if c, err := s.GetToolCall(ctx, "alice", calls[0].ID); err != nil || c.Status != switchboard.CallRunning {
		t.Errorf("%s: the modern server's call: %s, %v; want running", what, c.Status, err)
	}
	if q, err := s.GetInput(ctx, "alice", legacy.ID); err != nil || q.Status != switchboard.InputFailed {
		t.Errorf("%s: the legacy server's question: %s, %v; want failed", what, q.Status, err)
	}
}

// testAskingTurnOutlivesItsInstance: a turn whose instance stopped while a
// modern server's question waited is stored awaiting_input, not failed,
// by whoever finds it (a restart here); an answer from any instance takes
// it over exactly once, for its own user only, and the answer is taken
// once.
func testAskingTurnOutlivesItsInstance(t *testing.T, in Instances) {
	ctx := t.Context()
	a1, b := in.Open(t, "a"), in.Open(t, "b")
	ts, calls, modern, legacy := askingTurn(t, a1)
	a2 := in.Open(t, "a")
	got, err := a2.RecoverTurns(ctx)
	if err != nil || len(got) != 1 {
		t.Fatalf("RecoverTurns: %d turns, %v; want 1", len(got), err)
	}
	wantAwaitingInput(t, a2, "recovered", &got[0], ts.Turn, calls, legacy, switchboard.TurnAwaitingInput)
	if q, err := a2.GetInput(ctx, "alice", modern.ID); err != nil || q.Status != switchboard.InputPending || string(q.InputRequests) == "" {
		t.Errorf("the modern server's question: %+v, %v; want pending with its round", q, err)
	}
	if _, err := b.AnswerInput(ctx, "bob", modern.ID, switchboard.ActionAccept, json.RawMessage(`{"name":"bob"}`)); !switchboard.IsCode(err, switchboard.CodeInputNotFound) {
		t.Errorf("bob answering alice's question: %v, want input_not_found", err)
	}
	if adopted, _, err := b.AdoptTurn(ctx, "bob", ts.Turn.ID); adopted || err == nil {
		t.Errorf("bob adopting alice's turn: %t, %v; want not found", adopted, err)
	}
	if adopted, _, err := b.AdoptTurn(ctx, "alice", ts.Turn.ID); adopted || err != nil {
		t.Errorf("adopting a turn whose question waits unanswered: %t, %v; want not adopted: the answer takes it", adopted, err)
	}
	ans, err := b.AnswerInput(ctx, "alice", modern.ID, switchboard.ActionAccept, json.RawMessage(`{"name":"Alice"}`))
	if err != nil || !ans.Resumed || ans.Input.Status != switchboard.InputAnswered || ans.Input.RequestState != "state-1" {
		t.Fatalf("answering the turn awaiting input: %+v, %v; want answered and resumed", ans, err)
	}
	if cur, err := b.GetTurn(ctx, "alice", ts.Turn.ID); err != nil || cur.Status != switchboard.TurnRunning {
		t.Errorf("the resumed turn: %s, %v; want running", cur.Status, err)
	}
	if _, err := b.RenewTurn(ctx, ts.Turn.ID); err != nil {
		t.Errorf("the answering instance renewing the turn it took: %v", err)
	}
	next := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: ts.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "next"}}
	if _, err := a2.BeginTurn(ctx, &next); switchboard.ErrorCode(err) != switchboard.CodeTurnRunning {
		t.Errorf("a new turn while the answer's instance runs the turn: %v, want turn_running", err)
	}
	if _, err := a2.AnswerInput(ctx, "alice", modern.ID, switchboard.ActionDecline, nil); !switchboard.IsCode(err, switchboard.CodeInputClosed) {
		t.Errorf("a second answer: %v, want input_closed", err)
	}
	if err := b.TakeInput(ctx, modern.ID); err != nil {
		t.Errorf("taking the answer: %v", err)
	}
	if err := a2.TakeInput(ctx, modern.ID); !switchboard.IsCode(err, switchboard.CodeInputClosed) {
		t.Errorf("taking the answer twice: %v, want input_closed", err)
	}
	if q, _ := b.GetInput(ctx, "alice", modern.ID); q.TakenAt.IsZero() {
		t.Errorf("the taken answer has no TakenAt")
	}
}

// testAnswerBeforeTheLeaseRanOut: an answer given while the dead
// instance's lease still ran is stored (nobody can tell yet); once the
// lease ran out, AdoptTurn stores the turn awaiting_input and takes it
// over, because its answer waits to be sent.
func testAnswerBeforeTheLeaseRanOut(t *testing.T, in Instances) {
	ctx := t.Context()
	a, b := in.Open(t, "a"), in.Open(t, "b")
	ts, calls, modern, legacy := askingTurn(t, a)
	ans, err := b.AnswerInput(ctx, "alice", modern.ID, switchboard.ActionAccept, json.RawMessage(`{"name":"Alice"}`))
	if err != nil || ans.Resumed {
		t.Fatalf("answering while the lease runs: %+v, %v; want answered for the instance that holds it", ans, err)
	}
	if adopted, _, err := b.AdoptTurn(ctx, "alice", ts.Turn.ID); adopted || err != nil {
		t.Errorf("adopting a turn a live lease holds: %t, %v; want not adopted", adopted, err)
	}
	in.ExpireLeases(t)
	adopted, interrupted, err := b.AdoptTurn(ctx, "alice", ts.Turn.ID)
	if err != nil || !adopted {
		t.Fatalf("adopting the orphaned turn with an answer to send: %t, %v; want adopted", adopted, err)
	}
	wantAwaitingInput(t, b, "adopted", interrupted, ts.Turn, calls, legacy, switchboard.TurnRunning)
	if again, _, err := a.AdoptTurn(ctx, "alice", ts.Turn.ID); again || err != nil {
		t.Errorf("adopting it again: %t, %v; want not adopted: another instance holds it", again, err)
	}

	// A legacy server's question only: the look fails the orphaned turn
	// (the request that asked died with its instance).
	lt, _, _, lq := askingTurn(t, a)
	if _, err := b.AnswerInput(ctx, "alice", lq.ID, switchboard.ActionAccept, json.RawMessage(`{"name":"Alice"}`)); err != nil {
		t.Fatalf("answering the legacy question under a live lease: %v", err)
	}
	modernQ, _ := b.ListInputs(ctx, "alice", lt.Conversation.ID, true)
	for _, q := range modernQ {
		if _, err := b.CloseInput(ctx, q.ID, switchboard.InputCancelled, "test: legacy only"); err != nil {
			t.Fatal(err)
		}
	}
	in.ExpireLeases(t)
	adopted, interrupted, err = b.AdoptTurn(ctx, "alice", lt.Turn.ID)
	if err != nil || adopted || interrupted == nil || interrupted.Turn.Status != switchboard.TurnFailed {
		t.Errorf("the look at an orphaned turn of a legacy server's question: %t, %+v, %v; want it failed, not adopted", adopted, interrupted, err)
	}
}

// testAskingTurnCancelled: a turn awaiting input is cancelled at once by a
// cancel and by the conversation's next turn, with its call and question.
func testAskingTurnCancelled(t *testing.T, in Instances) {
	ctx := t.Context()
	a, b := in.Open(t, "a"), in.Open(t, "b")
	// Cancelled: the lease runs out, the cancel finds it orphaned.
	ts, calls, modern, _ := askingTurn(t, a)
	in.ExpireLeases(t)
	if _, _, err := b.RequestCancel(ctx, "bob", ts.Conversation.ID); switchboard.ErrorCode(err) != switchboard.CodeNoRunningTurn {
		t.Errorf("bob cancelling in alice's conversation: %v, want no_running_turn", err)
	}
	id, cancelled, err := b.RequestCancel(ctx, "alice", ts.Conversation.ID)
	if err != nil || id != ts.Turn.ID || cancelled == nil || cancelled.Turn.Status != switchboard.TurnCancelled {
		t.Fatalf("cancelling the turn awaiting input: %s, %+v, %v; want it cancelled", id, cancelled, err)
	}
	if len(cancelled.Calls) != 1 || cancelled.Calls[0].ID != calls[0].ID || cancelled.Calls[0].Status != switchboard.CallCancelled {
		t.Errorf("the calls the cancel closed: %+v; want the modern server's, cancelled", cancelled.Calls)
	}
	if q, _ := b.GetInput(ctx, "alice", modern.ID); q.Status != switchboard.InputCancelled {
		t.Errorf("the question of the cancelled turn: %s, want cancelled", q.Status)
	}
	if _, _, err := b.RequestCancel(ctx, "alice", ts.Conversation.ID); switchboard.ErrorCode(err) != switchboard.CodeNoRunningTurn {
		t.Errorf("cancelling again: %v, want no_running_turn", err)
	}

	// The next turn: the restart stored it awaiting input first.
	ts2, calls2, modern2, _ := askingTurn(t, a)
	if got, err := in.Open(t, "a").RecoverTurns(ctx); err != nil || len(got) != 1 || got[0].Turn.Status != switchboard.TurnAwaitingInput {
		t.Fatalf("RecoverTurns: %+v, %v; want the turn awaiting input", got, err)
	}
	next := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: ts2.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "never mind"}}
	if _, err := b.BeginTurn(ctx, &next); err != nil {
		t.Fatalf("the next turn: %v", err)
	}
	if len(next.Cancelled) != 1 || next.Cancelled[0].ID != calls2[0].ID {
		t.Errorf("the calls the next turn cancelled: %+v; want the modern server's", next.Cancelled)
	}
	if old, _ := b.GetTurn(ctx, "alice", ts2.Turn.ID); old.Status != switchboard.TurnCancelled {
		t.Errorf("the turn awaiting input after the next began: %s, want cancelled", old.Status)
	}
	if q, _ := b.GetInput(ctx, "alice", modern2.ID); q.Status != switchboard.InputCancelled {
		t.Errorf("its question: %s, want cancelled", q.Status)
	}
	if _, err := b.AnswerInput(ctx, "alice", modern2.ID, switchboard.ActionAccept, nil); !switchboard.IsCode(err, switchboard.CodeInputClosed) {
		t.Errorf("answering it after: %v, want input_closed", err)
	}
}
