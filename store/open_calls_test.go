package store

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// TestOpenTracker follows two users' turns through their saves: a step's
// running calls are open until a save writes them, and a save writes an
// open call as it started; an end writes the open calls it does not name;
// a tracker that dropped its entries knows no turn it does not hold.
func TestOpenTracker(t *testing.T) {
	start := time.Date(2026, 12, 8, 1, 2, 3, 0, time.UTC)
	call := func(id string, status switchboard.ToolCallStatus) switchboard.ToolCall {
		return switchboard.ToolCall{ID: id, Status: status, Step: 1, Server: "echo", StartedAt: start}
	}
	ids := func(calls []switchboard.ToolCall) []string {
		var out []string
		for _, c := range calls {
			out = append(out, c.ID)
		}
		return out
	}
	var o openTracker
	alice, bob := "turn-alice", "turn-bob"
	if rows, known := o.rows(alice, nil, nil, true); len(rows) != 0 || !known {
		t.Fatalf("a turn with no saves: rows %v, known %v", rows, known)
	}
	step := []switchboard.ToolCall{call("a1", switchboard.CallRunning), call("a2", switchboard.CallAwaitingApproval)}
	o.saved(alice, step, false)
	o.saved(bob, []switchboard.ToolCall{call("b1", switchboard.CallRunning), call("b2", switchboard.CallRunning)}, false)

	// Alice's next step writes a1 finished, with another start that is not
	// its own, and starts a3.
	done := call("a1", switchboard.CallSucceeded)
	done.Step, done.Server, done.StartedAt = 9, "other", start.Add(time.Hour)
	next := []switchboard.ToolCall{done, call("a3", switchboard.CallRunning)}
	rows, known := o.rows(alice, []switchboard.ToolCall{done}, next, false)
	if !known || len(rows) != 1 || rows[0].Step != 1 || rows[0].Server != "echo" || !rows[0].StartedAt.Equal(start) ||
		rows[0].Status != switchboard.CallSucceeded {
		t.Errorf("alice's second step writes %+v, %v; want a1 succeeded, as it started", rows, known)
	}
	o.saved(alice, next, false)
	if got := ids(o.turns[alice]); !slices.Equal(got, []string{"a3"}) {
		t.Errorf("alice's open calls after her second step: %v, want [a3]", got)
	}
	end := []switchboard.ToolCall{call("a3", switchboard.CallSucceeded)}
	if rows, _ := o.rows(alice, end, end, true); !slices.Equal(ids(rows), []string{"a3"}) {
		t.Errorf("alice's end writes %v, want [a3]", ids(rows))
	}
	end = []switchboard.ToolCall{call("b1", switchboard.CallSucceeded)}
	if rows, _ := o.rows(bob, end, end, true); !slices.Equal(ids(rows), []string{"b1", "b2"}) ||
		rows[1].Status != switchboard.CallRunning {
		t.Errorf("bob's end names b1 only: writes %v, want b1 and b2 (running)", rows)
	}
	o.saved(alice, nil, true)
	o.forget(bob)
	if len(o.turns) != 0 {
		t.Errorf("after alice's end and bob's forgetting: %v", o.turns)
	}

	defer func(n int) { maxTrackedTurns = n }(maxTrackedTurns)
	maxTrackedTurns = 2
	for _, turn := range []string{"t1", "t2", "t3"} {
		o.saved(turn, []switchboard.ToolCall{call(turn+"-c", switchboard.CallRunning)}, false)
	}
	_, known1 := o.rows("t1", nil, nil, true)
	rows3, known3 := o.rows("t3", nil, nil, true)
	if len(o.turns) != 1 || !o.lost || known1 || !known3 || len(rows3) != 1 {
		t.Errorf("past the bound: %v, lost %v; t1 known %v, t3 known %v with %v; want t3 only, t1 unknown", o.turns, o.lost, known1, known3, rows3)
	}
}
