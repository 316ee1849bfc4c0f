package store

import (
	"slices"
	"sync"

	"github.com/switchboard-dev/switchboard"
)

// maxTrackedTurns bounds the turns an openTracker keeps. A turn leaves it
// at its end, or when its lease's renewal finds it ended elsewhere.
var maxTrackedTurns = 100_000

// openTracker keeps, for each turn this store runs, its calls still open on
// the turn's row (open_calls, migration 00057) as they were saved, so that
// the save that writes such a call's ledger row writes it as it started,
// and a turn's end the calls it left open, from what Go knows: the
// statement reads nothing back from the turn's row.
//
// Only the instance that runs a turn writes its open calls: a turn that
// goes on elsewhere (an answer or an approval continues it) had its open
// calls closed when it stopped running (failOrphaned), or has none (a turn
// awaiting approval ended its step). So the tracker is exact for its own
// turns. Once it has dropped entries (lost, past maxTrackedTurns), a turn
// it does not know may have open calls: its saves read them from the row
// (saveShape.open, saveShape.leftover).
type openTracker struct {
	mu    sync.Mutex
	turns map[string][]switchboard.ToolCall
	lost  bool
}

// saved records that a save of turn committed: a step's (not ended)
// running calls are open, its other calls no longer; after the turn's end
// none is. A save that failed changes nothing: its running calls were not
// written, and their tools do not run.
func (o *openTracker) saved(turn string, calls []switchboard.ToolCall, ended bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	open, known := o.turns[turn]
	if ended {
		delete(o.turns, turn)
		return
	}
	for _, c := range calls {
		i := slices.IndexFunc(open, func(o switchboard.ToolCall) bool { return o.ID == c.ID })
		switch {
		case c.Status != switchboard.CallRunning && i >= 0:
			open = slices.Delete(open, i, i+1)
		case c.Status != switchboard.CallRunning:
		case i >= 0:
			c.Arguments = slices.Clone(c.Arguments)
			open[i] = c
		default:
			c.Arguments = slices.Clone(c.Arguments)
			open = append(open, c)
		}
	}
	if len(open) == 0 {
		delete(o.turns, turn)
		return
	}
	if o.turns == nil {
		o.turns = make(map[string][]switchboard.ToolCall)
	}
	if !known && len(o.turns) >= maxTrackedTurns {
		clear(o.turns)
		o.lost = true
	}
	o.turns[turn] = open
}

// forget drops turn: it ended elsewhere.
func (o *openTracker) forget(turn string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.turns, turn)
}

// rows returns the ledger rows a save of turn writes of rows (the save's
// calls that are not left open): each call open on the turn's row with
// what only its first write records (its start) as it started, and for an
// end (ended) the open calls it does not write, as they are. known is
// false when the turn may have open calls the tracker does not know.
func (o *openTracker) rows(turn string, rows []switchboard.ToolCall, saved []switchboard.ToolCall, ended bool) (out []switchboard.ToolCall, known bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	open, ok := o.turns[turn]
	if !ok {
		return rows, !o.lost
	}
	out = make([]switchboard.ToolCall, len(rows), len(rows)+len(open))
	for i, c := range rows {
		if j := slices.IndexFunc(open, func(o switchboard.ToolCall) bool { return o.ID == c.ID }); j >= 0 {
			s := open[j]
			c.CallID, c.Step, c.Server, c.Tool, c.ExposedName = s.CallID, s.Step, s.Server, s.Tool, s.ExposedName
			c.Arguments, c.StartedAt, c.Agent, c.ParentID = s.Arguments, s.StartedAt, s.Agent, s.ParentID
		}
		out[i] = c
	}
	if ended {
		for _, c := range open {
			if !slices.ContainsFunc(saved, func(s switchboard.ToolCall) bool { return s.ID == c.ID }) {
				out = append(out, c)
			}
		}
	}
	return out, true
}
