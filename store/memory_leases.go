package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// A running turn holds its conversation under a lease, as in Postgres
// (postgres_leases.go): Memory.running keeps one per conversation, naming
// its holder, and a lease that no live instance holds is failed by
// whoever finds it.

// lease is a running turn's hold on its conversation.
type lease struct {
	turn            string
	until           time.Time
	cancelRequested bool
	instance, boot  string // the holder
}

// orphaned reports whether no live instance holds the lease l of a running
// turn: it ran out, or it names an earlier boot of m's instance.
func (m *Memory) orphaned(l lease, now time.Time) bool {
	return !now.Before(l.until) || m.instance != "" && l.instance == m.instance && l.boot != m.boot
}

// leaseTaken returns errTurnRunning if another turn than turn runs in
// conversation under a lease a live instance holds. Callers hold m.mu.
func (m *Memory) leaseTaken(conversation, turn string, now time.Time) error {
	if l, ok := m.running[conversation]; ok && l.turn != turn {
		if old := m.turns[l.turn]; old != nil && old.Status == switchboard.TurnRunning && !m.orphaned(l, now) {
			return errTurnRunning()
		}
	}
	return nil
}

// takeLease makes turn the running turn of conversation, failing a turn
// that no live instance holds (which it returns), or returns
// errTurnRunning. Callers hold m.mu.
func (m *Memory) takeLease(conversation, turn string, now time.Time) (*switchboard.Interrupted, error) {
	if err := m.leaseTaken(conversation, turn, now); err != nil {
		return nil, err
	}
	var interrupted *switchboard.Interrupted
	if l, ok := m.running[conversation]; ok && l.turn != turn {
		if old := m.turns[l.turn]; old != nil && old.Status == switchboard.TurnRunning {
			interrupted = m.interrupt(old, now)
		}
	}
	l := m.running[conversation]
	if l.turn != turn {
		l = lease{turn: turn} // a new holder: no cancel asked of it yet
	}
	l.until = now.Add(LeaseDuration)
	l.instance, l.boot = m.instance, m.boot
	m.running[conversation] = l
	return interrupted, nil
}

// interrupt closes a running turn that no live instance holds, as
// Postgres's failOrphaned does: stored awaiting_input, its asking calls
// left running, when it has some (askingCalls), else failed; its other
// calls close (see switchboard.Interrupted), with their pending questions,
// and its conversation is freed. Callers hold m.mu.
func (m *Memory) interrupt(t *switchboard.Turn, now time.Time) *switchboard.Interrupted {
	now = stamp(now)
	asking := m.askingCalls(t)
	if len(asking) > 0 {
		m.changeTurn(t, func() { t.Status, t.Error, t.FinishedAt = switchboard.TurnAwaitingInput, "", time.Time{} })
		m.waiting[t.ConversationID] = t.ID
	} else {
		m.changeTurn(t, func() { t.Status, t.Error, t.FinishedAt = switchboard.TurnFailed, interruptedNote, now })
	}
	if m.running[t.ConversationID].turn == t.ID {
		delete(m.running, t.ConversationID)
	}
	for _, q := range m.inputsOf(t) {
		if q.Status == switchboard.InputPending && !asking[q.ToolCallID] {
			m.changeInput(q, func() { q.Status, q.Reason, q.AnsweredAt = switchboard.InputFailed, inputGoneNote, now })
		}
	}
	in := &switchboard.Interrupted{Turn: *t}
	for _, c := range m.callsOf(t.ConversationID) {
		if c.TurnID != t.ID || asking[c.ID] {
			continue
		}
		before := storedCallSize(c)
		switch c.Status {
		case switchboard.CallRunning:
			c.Status, c.ErrorClass, c.Error = switchboard.CallFailed, switchboard.ErrorClassInterrupted, callInterruptedNote
		case switchboard.CallAwaitingApproval:
			c.Status, c.ErrorClass, c.Error = switchboard.CallCancelled, switchboard.ErrorClassCancelled, notRunNote
		default:
			continue
		}
		c.FinishedAt = now
		m.grow(c.ConversationID, storedCallSize(c)-before)
		nc := cloneCall(*c)
		nc.Arguments, nc.Result, nc.StructuredResult = nil, "", nil // as Postgres returns them
		in.Calls = append(in.Calls, nc)
	}
	slices.SortFunc(in.Calls, func(a, b switchboard.ToolCall) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return in
}

// askingCalls returns the ids of the asking calls of turn t: running
// calls, not inside an agent used as a tool, whose modern server's
// question waits for an answer, or was answered and the answer not yet
// taken (see Postgres's askingCalls). Callers hold m.mu.
func (m *Memory) askingCalls(t *switchboard.Turn) map[string]bool {
	var out map[string]bool
	for _, q := range m.inputsOf(t) {
		if q.RequestKey == "" || !(q.Status == switchboard.InputPending || q.Status == switchboard.InputAnswered && q.TakenAt.IsZero()) {
			continue
		}
		if c := m.calls[q.ToolCallID]; c != nil && c.Status == switchboard.CallRunning && c.ParentID == "" {
			if out == nil {
				out = map[string]bool{}
			}
			out[c.ID] = true
		}
	}
	return out
}

// inputsOf returns the stored inputs of turn t. Callers hold m.mu.
func (m *Memory) inputsOf(t *switchboard.Turn) []*switchboard.Input {
	u := m.usage[t.ConversationID]
	if u == nil {
		return nil
	}
	var out []*switchboard.Input
	for _, id := range u.inputs {
		if q := m.inputs[id]; q != nil && q.TurnID == t.ID {
			out = append(out, q)
		}
	}
	return out
}

// cancelAsking cancels turn t, which awaits input, with its running calls
// and pending questions, for reason note, and returns it as interrupted.
// Callers hold m.mu.
func (m *Memory) cancelAsking(t *switchboard.Turn, note string, now time.Time) *switchboard.Interrupted {
	now = stamp(now)
	m.changeTurn(t, func() { t.Status, t.Error, t.FinishedAt = switchboard.TurnCancelled, note, now })
	if m.waiting[t.ConversationID] == t.ID {
		delete(m.waiting, t.ConversationID)
	}
	for _, q := range m.inputsOf(t) {
		if q.Status == switchboard.InputPending {
			m.changeInput(q, func() { q.Status, q.Reason, q.AnsweredAt = switchboard.InputCancelled, note, now })
		}
	}
	in := &switchboard.Interrupted{Turn: *t}
	for _, c := range m.callsOf(t.ConversationID) {
		if c.TurnID == t.ID && (c.Status == switchboard.CallRunning || c.Status == switchboard.CallAwaitingApproval) {
			m.changeCall(c, func() {
				c.Status, c.ErrorClass, c.Error, c.FinishedAt = switchboard.CallCancelled, switchboard.ErrorClassCancelled, note, now
			})
			nc := cloneCall(*c)
			nc.Arguments, nc.Result, nc.StructuredResult = nil, "", nil
			in.Calls = append(in.Calls, nc)
		}
	}
	slices.SortFunc(in.Calls, func(a, b switchboard.ToolCall) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return in
}

// claim makes turn t, which awaits input, the running turn of its
// conversation again, held by m's instance. Callers hold m.mu.
func (m *Memory) claim(t *switchboard.Turn, now time.Time) {
	m.changeTurn(t, func() { t.Status = switchboard.TurnRunning })
	if m.waiting[t.ConversationID] == t.ID {
		delete(m.waiting, t.ConversationID)
	}
	m.running[t.ConversationID] = lease{turn: t.ID, until: now.Add(LeaseDuration), instance: m.instance, boot: m.boot}
}

// orphanOf closes the running turn t if no live instance holds it
// (interrupt), and returns it as interrupted then. Callers hold m.mu.
func (m *Memory) orphanOf(t *switchboard.Turn, now time.Time) *switchboard.Interrupted {
	if l, ok := m.running[t.ConversationID]; ok && l.turn == t.ID && t.Status == switchboard.TurnRunning && m.orphaned(l, now) {
		return m.interrupt(t, now)
	}
	return nil
}

// AdoptTurn implements [Store.AdoptTurn].
func (m *Memory) AdoptTurn(ctx context.Context, userID, turnID string) (bool, *switchboard.Interrupted, error) {
	if err := ctxErr(ctx); err != nil {
		return false, nil, fmt.Errorf("adopt turn %s: %w", turnID, err)
	}
	key, _ := lookupID(turnID)
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.turns[key]
	if t == nil || t.UserID != userID {
		return false, nil, fmt.Errorf("adopt turn %s: %w", turnID, switchboard.ErrNotFound)
	}
	now := time.Now()
	interrupted := m.orphanOf(t, now)
	if t.Status != switchboard.TurnAwaitingInput {
		return false, interrupted, nil
	}
	for _, q := range m.inputsOf(t) {
		if q.RequestKey != "" && q.Status == switchboard.InputAnswered && q.TakenAt.IsZero() {
			m.claim(t, now)
			return true, interrupted, nil
		}
	}
	return false, interrupted, nil
}

// RecoverTurns implements [Store.RecoverTurns]. A Memory of its own (NewMemory) has no instance: it does nothing.
func (m *Memory) RecoverTurns(ctx context.Context) ([]switchboard.Interrupted, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("recover turns: %w", err)
	}
	if m.instance == "" {
		return nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var dead []*switchboard.Turn
	for _, l := range m.running {
		if t := m.turns[l.turn]; t != nil && t.Status == switchboard.TurnRunning && l.instance == m.instance && l.boot != m.boot {
			dead = append(dead, t)
		}
	}
	slices.SortFunc(dead, func(a, b *switchboard.Turn) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	now := time.Now()
	var out []switchboard.Interrupted
	for _, t := range dead {
		out = append(out, *m.interrupt(t, now))
	}
	return out, nil
}

// RenewTurn implements [Store.RenewTurn].
func (m *Memory) RenewTurn(ctx context.Context, id string) (cancelRequested bool, err error) {
	if err := ctxErr(ctx); err != nil {
		return false, fmt.Errorf("renew turn %s: %w", id, err)
	}
	key, _ := lookupID(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.turns[key]
	if !ok || t.Status != switchboard.TurnRunning || m.running[t.ConversationID].turn != t.ID {
		return false, fmt.Errorf("renew turn %s: %w", id, switchboard.ErrNotFound)
	}
	l := m.running[t.ConversationID]
	l.until = time.Now().Add(LeaseDuration)
	m.running[t.ConversationID] = l
	return l.cancelRequested, nil
}

// RequestCancel implements [Store.RequestCancel].
func (m *Memory) RequestCancel(ctx context.Context, userID, conversationID string) (string, *switchboard.Interrupted, error) {
	if err := ctxErr(ctx); err != nil {
		return "", nil, fmt.Errorf("request cancel in %s: %w", conversationID, err)
	}
	key, _ := lookupID(conversationID)
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.running[key]
	t := m.turns[l.turn]
	now := time.Now()
	if ok && t != nil && t.UserID == userID && t.Status == switchboard.TurnRunning && m.orphaned(l, now) {
		if in := m.interrupt(t, now); t.Status != switchboard.TurnAwaitingInput {
			return t.ID, in, nil
		}
	}
	if w := m.turns[m.waiting[key]]; w != nil && w.UserID == userID && w.Status == switchboard.TurnAwaitingInput {
		// Nobody runs a turn awaiting input: the cancel closes it.
		return w.ID, m.cancelAsking(w, askingCancelledNote, now), nil
	}
	if !ok || t == nil || t.UserID != userID || t.Status != switchboard.TurnRunning {
		return "", nil, fmt.Errorf("request cancel in %s: %w", conversationID, errNoRunningTurn(conversationID))
	}
	l.cancelRequested = true
	m.running[key] = l
	return l.turn, nil, nil
}
