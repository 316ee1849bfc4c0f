package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/store"
)

// Instances gives a test stores on one shared database, each as one
// instance of the service sees it.
type Instances interface {
	// Open returns a store on the shared data as the instance id sees it,
	// in a new boot: Open with the same id again is that instance started
	// again after its process died. The empty id is an instance with no
	// identity of its own.
	Open(t *testing.T, id string) Store
	// ExpireLeases makes the lease of every running turn run out, as if
	// its instance had stopped renewing it store.LeaseDuration ago.
	ExpireLeases(t *testing.T)
}

// RunInstances runs the contract of leases across instances and restarts:
// a running turn that no live instance holds (its lease ran out, or its
// instance started again) is failed with its calls by whoever finds it;
// and the lock of a credential's update holds across instances. open
// returns new, empty shared data for the subtest t; subtests run in
// parallel.
func RunInstances(t *testing.T, open func(t *testing.T) Instances) {
	tests := []struct {
		name string
		fn   func(t *testing.T, in Instances)
	}{
		{"ExpiredLeaseFailsTheTurnWithItsCalls", testExpiredLease},
		{"CancelOfAnOrphanedTurnFailsIt", testCancelOrphaned},
		{"RestartRecoversTheTurnsOfTheEarlierBoot", testRecoverTurns},
		{"RestartedInstanceKnowsItsEarlierBoot", testEarlierBoot},
		// asking.go: a modern server's question outlives its instance.
		{"AskingTurnOutlivesItsInstance", testAskingTurnOutlivesItsInstance},
		{"AnswerBeforeTheLeaseRanOut", testAnswerBeforeTheLeaseRanOut},
		{"AskingTurnCancelled", testAskingTurnCancelled},
		// credentials.go: a credential's lock is every instance's.
		{"UpdateCredentialAcrossInstances", testUpdateCredentialAcrossInstances},
		{"PutCredentialWaitsForAnUpdate", testPutWaitsForUpdate},
		{"CredentialLockWaitEndsWithContext", testLockWaitEndsWithContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// runningTurn begins a turn of alice in a new conversation through s, with
// calls stored as the loop stores them before they run: running, and
// awaiting an approval when approve is set, and one that finished.
func runningTurn(t *testing.T, s Store, approve bool) (switchboard.TurnStart, []switchboard.ToolCall) {
	t.Helper()
	ts := newTurn(t, s, "alice", "", "run the tools")
	start := time.Now().Add(-time.Second)
	calls := []switchboard.ToolCall{
		{ID: switchboard.NewID(), CallID: "c1", Step: 1, Server: "srv", Tool: "done", ExposedName: "srv__done", Status: switchboard.CallSucceeded,
			Result: "ok", StartedAt: start, FinishedAt: start.Add(time.Millisecond), Duration: time.Millisecond},
		{ID: switchboard.NewID(), CallID: "c2", Step: 1, Server: "srv", Tool: "slow", ExposedName: "srv__slow", Status: switchboard.CallRunning,
			StartedAt: start.Add(2 * time.Millisecond)},
	}
	if approve {
		calls = append(calls, switchboard.ToolCall{ID: switchboard.NewID(), CallID: "c3", Step: 1, Server: "srv", Tool: "rm", ExposedName: "srv__rm",
			Status: switchboard.CallAwaitingApproval, StartedAt: start.Add(3 * time.Millisecond)})
	}
	step := ts.Turn
	step.Steps = 1
	save(t, s, &switchboard.TurnUpdate{Turn: step, ToolCalls: calls})
	return ts, calls
}

// wantInterrupted checks that got is the failure of turn, closing its
// calls that were running (failed, interrupted) and awaiting an approval
// (cancelled), and that the store keeps them so.
func wantInterrupted(t *testing.T, s Store, what string, got *switchboard.Interrupted, turn switchboard.Turn, calls []switchboard.ToolCall) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got no interrupted turn, want %s", what, turn.ID)
	}
	if got.Turn.ID != turn.ID || got.Turn.ConversationID != turn.ConversationID || got.Turn.UserID != turn.UserID ||
		got.Turn.Status != switchboard.TurnFailed || got.Turn.Error == "" || got.Turn.FinishedAt.IsZero() {
		t.Errorf("%s: got turn %+v, want %s failed with an error and a finish", what, got.Turn, turn.ID)
	}
	stored, err := s.GetTurn(t.Context(), turn.UserID, turn.ID)
	if err != nil || stored.Status != switchboard.TurnFailed || stored.Error != got.Turn.Error || !stored.FinishedAt.Equal(got.Turn.FinishedAt) {
		t.Errorf("%s: stored turn %+v, %v, want it as reported: %+v", what, stored, err, got.Turn)
	}
	type closed struct {
		ID, TurnID, ConversationID, UserID, Server, Tool string
		Status                                           switchboard.ToolCallStatus
		ErrorClass                                       string
	}
	var want, reported []closed
	for _, c := range calls {
		cl := closed{ID: c.ID, TurnID: turn.ID, ConversationID: turn.ConversationID, UserID: turn.UserID, Server: c.Server, Tool: c.Tool}
		switch c.Status {
		case switchboard.CallRunning:
			cl.Status, cl.ErrorClass = switchboard.CallFailed, switchboard.ErrorClassInterrupted
		case switchboard.CallAwaitingApproval:
			cl.Status, cl.ErrorClass = switchboard.CallCancelled, switchboard.ErrorClassCancelled
		default:
			if s, err := s.GetToolCall(t.Context(), turn.UserID, c.ID); err != nil || s.Status != c.Status || !s.FinishedAt.Equal(stamp(c.FinishedAt)) {
				t.Errorf("%s: a call that had finished: got %+v, %v, want it unchanged", what, s, err)
			}
			continue
		}
		want = append(want, cl)
		stored, err := s.GetToolCall(t.Context(), turn.UserID, c.ID)
		if err != nil || stored.Status != cl.Status || stored.ErrorClass != cl.ErrorClass || stored.Error == "" ||
			!stored.FinishedAt.Equal(got.Turn.FinishedAt) {
			t.Errorf("%s: stored call %s: got %s, %q, %q, finished %v, %v; want %s, %s, a reason, finished with its turn (%v)",
				what, c.CallID, stored.Status, stored.ErrorClass, stored.Error, stored.FinishedAt, err, cl.Status, cl.ErrorClass, got.Turn.FinishedAt)
		}
	}
	for _, c := range got.Calls {
		reported = append(reported, closed{c.ID, c.TurnID, c.ConversationID, c.UserID, c.Server, c.Tool, c.Status, c.ErrorClass})
		if c.Error == "" || !c.FinishedAt.Equal(got.Turn.FinishedAt) {
			t.Errorf("%s: reported call %s: error %q, finished %v; want a reason, finished with its turn", what, c.CallID, c.Error, c.FinishedAt)
		}
	}
	if diff := cmp.Diff(want, reported); diff != "" {
		t.Errorf("%s: calls closed with the turn (-want +got):\n%s", what, diff)
	}
}

func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// testExpiredLease: a turn whose instance stopped renewing its lease holds
// its conversation until the lease runs out; then the next turn fails it
// and closes its calls, which the ledger's stats count as failures.
func testExpiredLease(t *testing.T, in Instances) {
	ctx := t.Context()
	a, b := in.Open(t, "a"), in.Open(t, "b")
	first, calls := runningTurn(t, a, true)
	conv := first.Conversation.ID
	next := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "next"}}
	if _, err := b.BeginTurn(ctx, &next); switchboard.ErrorCode(err) != "turn_running" {
		t.Fatalf("a turn while another instance's runs: got %v, want turn_running", err)
	}
	// A cancel through another instance is asked of the live one.
	if id, got, err := b.RequestCancel(ctx, "alice", conv); err != nil || id != first.Turn.ID || got != nil {
		t.Errorf("cancel of a live turn of another instance: got %q, %+v, %v, want it flagged", id, got, err)
	}
	if requested, err := a.RenewTurn(ctx, first.Turn.ID); err != nil || !requested {
		t.Errorf("the holder's renewal: got %v, %v, want the cancel requested", requested, err)
	}

	in.ExpireLeases(t)
	if _, err := b.BeginTurn(ctx, &next); err != nil {
		t.Fatalf("a turn after the lease ran out: got %v, want none", err)
	}
	wantInterrupted(t, b, "the next turn's start", next.Interrupted, first.Turn, calls)
	if _, err := a.RenewTurn(ctx, first.Turn.ID); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("renewing the failed turn: got %v, want ErrNotFound", err)
	}
	stats, err := b.ToolCallStats(ctx, switchboard.ToolCallFilter{ConversationID: conv}, store.GroupByServer)
	if err != nil || len(stats) != 1 || stats[0].Count != 3 || stats[0].Errors != 2 {
		t.Errorf("stats: got %+v, %v, want 3 calls, all finished, 2 of them failures", stats, err)
	}
	// The next start finds nothing more to fail.
	endRunning(t, b, "alice", conv)
	again := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "again"}}
	if _, err := b.BeginTurn(ctx, &again); err != nil || again.Interrupted != nil {
		t.Errorf("a turn after an ended one: got %+v, %v, want nothing interrupted", again.Interrupted, err)
	}
}

// testCancelOrphaned: a cancel of a turn that no live instance holds fails
// it at once, instead of asking nobody to stop it.
func testCancelOrphaned(t *testing.T, in Instances) {
	ctx := t.Context()
	a, b := in.Open(t, "a"), in.Open(t, "b")
	first, calls := runningTurn(t, a, false)
	conv := first.Conversation.ID
	in.ExpireLeases(t)
	if _, _, err := b.RequestCancel(ctx, "bob", conv); switchboard.ErrorCode(err) != "no_running_turn" {
		t.Errorf("cancel by another user: got %v, want no_running_turn", err)
	}
	if got, _ := b.GetTurn(ctx, "alice", first.Turn.ID); got.Status != switchboard.TurnRunning {
		t.Errorf("the turn after another user's cancel: got %s, want running still", got.Status)
	}
	id, got, err := b.RequestCancel(ctx, "alice", conv)
	if err != nil || id != first.Turn.ID {
		t.Fatalf("cancel of the orphaned turn: got %q, %v, want %s", id, err, first.Turn.ID)
	}
	wantInterrupted(t, b, "the cancel", got, first.Turn, calls)
	if _, _, err := b.RequestCancel(ctx, "alice", conv); switchboard.ErrorCode(err) != "no_running_turn" {
		t.Errorf("cancel again: got %v, want no_running_turn", err)
	}
	next := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: conv}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "next"}}
	if _, err := b.BeginTurn(ctx, &next); err != nil || next.Interrupted != nil {
		t.Errorf("the next turn: got %+v, %v, want it begun with nothing left to fail", next.Interrupted, err)
	}
}

// testRecoverTurns: an instance started again fails, at once, the turns
// its earlier boot left running, though their leases are live, and no
// other instance's.
func testRecoverTurns(t *testing.T, in Instances) {
	ctx := t.Context()
	a1, b := in.Open(t, "a"), in.Open(t, "b")
	one, oneCalls := runningTurn(t, a1, true)
	two, twoCalls := runningTurn(t, a1, false)
	other, _ := runningTurn(t, b, false)
	a2 := in.Open(t, "a")
	// Another instance cannot tell: the lease is live.
	next := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: one.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "next"}}
	if _, err := b.BeginTurn(ctx, &next); switchboard.ErrorCode(err) != "turn_running" {
		t.Fatalf("another instance's turn in the conversation: got %v, want turn_running", err)
	}
	got, err := a2.RecoverTurns(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("RecoverTurns: got %d turns, %v, want 2", len(got), err)
	}
	wantInterrupted(t, a2, "the first recovered", &got[0], one.Turn, oneCalls)
	wantInterrupted(t, a2, "the second recovered", &got[1], two.Turn, twoCalls)
	if requested, err := b.RenewTurn(ctx, other.Turn.ID); err != nil || requested {
		t.Errorf("the other instance's turn: got %v, %v, want it running", requested, err)
	}
	mine, _ := runningTurn(t, a2, false)
	if again, err := a2.RecoverTurns(ctx); err != nil || len(again) != 0 {
		t.Errorf("RecoverTurns again, with a turn of this boot running: got %+v, %v, want none", again, err)
	}
	if got, _ := a2.GetTurn(ctx, "alice", mine.Turn.ID); got.Status != switchboard.TurnRunning {
		t.Errorf("this boot's turn: got %s, want running", got.Status)
	}
	if none, err := in.Open(t, "").RecoverTurns(ctx); err != nil || len(none) != 0 {
		t.Errorf("RecoverTurns of an instance without an id: got %+v, %v, want none", none, err)
	}
	if _, err := b.BeginTurn(ctx, &next); err != nil || next.Interrupted != nil {
		t.Errorf("another instance's turn in the conversation after the recovery: got %+v, %v, want it begun", next.Interrupted, err)
	}
}

// testEarlierBoot: an instance started again knows the turns of its
// earlier boot for dead before it recovers them: a new turn of their
// conversation, a cancel or a decision through it fails them at once.
func testEarlierBoot(t *testing.T, in Instances) {
	ctx := context.Background()
	a1 := in.Open(t, "a")
	one, oneCalls := runningTurn(t, a1, false)
	two, twoCalls := runningTurn(t, a1, true)
	// A turn resumed by the decision of one of its calls, another waiting.
	three := newTurn(t, a1, "alice", "", "ask twice")
	decided := switchboard.ToolCall{ID: switchboard.NewID(), CallID: "d1", Server: "srv", Tool: "rm", Status: switchboard.CallAwaitingApproval, StartedAt: time.Now()}
	waiting := switchboard.ToolCall{ID: switchboard.NewID(), CallID: "d2", Server: "srv", Tool: "rm", Status: switchboard.CallAwaitingApproval, StartedAt: time.Now().Add(time.Millisecond)}
	paused := three.Turn
	paused.Status = switchboard.TurnAwaitingApproval
	save(t, a1, &switchboard.TurnUpdate{Turn: paused, ToolCalls: []switchboard.ToolCall{decided, waiting}})
	if _, err := a1.DecideToolCall(ctx, "alice", decided.ID, true); err != nil {
		t.Fatal(err)
	}

	a2 := in.Open(t, "a")
	next := switchboard.TurnStart{Conversation: switchboard.Conversation{ID: one.Conversation.ID}, Turn: switchboard.Turn{UserID: "alice"},
		UserMessage: switchboard.Message{Content: "next"}}
	if _, err := a2.BeginTurn(ctx, &next); err != nil {
		t.Fatalf("a turn after the earlier boot's, through the instance started again: got %v, want none", err)
	}
	wantInterrupted(t, a2, "the next turn's start", next.Interrupted, one.Turn, oneCalls)

	id, got, err := a2.RequestCancel(ctx, "alice", two.Conversation.ID)
	if err != nil || id != two.Turn.ID {
		t.Fatalf("cancel of the earlier boot's turn: got %q, %v, want %s", id, err, two.Turn.ID)
	}
	wantInterrupted(t, a2, "the cancel", got, two.Turn, twoCalls)

	if _, err := a2.DecideToolCall(ctx, "alice", waiting.ID, true); switchboard.ErrorCode(err) != "already_decided" {
		t.Errorf("deciding a call of the earlier boot's resumed turn: got %v, want already_decided (its turn failed)", err)
	}
	decided.Status = switchboard.CallRunning // as the decision left it
	stored, err := a2.GetTurn(ctx, "alice", three.Turn.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []switchboard.ToolCall{decided, waiting} {
		got, err := a2.GetToolCall(ctx, "alice", c.ID)
		want := map[switchboard.ToolCallStatus]switchboard.ToolCallStatus{switchboard.CallRunning: switchboard.CallFailed,
			switchboard.CallAwaitingApproval: switchboard.CallCancelled}[c.Status]
		if err != nil || got.Status != want || !got.FinishedAt.Equal(stored.FinishedAt) {
			t.Errorf("call %s of the resumed turn: got %s, finished %v, %v; want %s with its turn (%s at %v)",
				c.CallID, got.Status, got.FinishedAt, err, want, stored.Status, stored.FinishedAt)
		}
	}
	if stored.Status != switchboard.TurnFailed {
		t.Errorf("the resumed turn: got %s, want failed", stored.Status)
	}
}
