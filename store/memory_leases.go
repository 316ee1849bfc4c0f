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

// interrupt fails a running turn that no live instance holds, with its
// calls (see switchboard.Interrupted), and frees its conversation. Callers
// hold m.mu.
func (m *Memory) interrupt(t *switchboard.Turn, now time.Time) *switchboard.Interrupted {
	now = stamp(now)
	m.changeTurn(t, func() { t.Status, t.Error, t.FinishedAt = switchboard.TurnFailed, interruptedNote, now })
	if m.running[t.ConversationID].turn == t.ID {
		delete(m.running, t.ConversationID)
	}
	in := &switchboard.Interrupted{Turn: *t}
	for _, c := range m.callsOf(t.ConversationID) {
		if c.TurnID != t.ID {
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
	if !ok || t == nil || t.UserID != userID || t.Status != switchboard.TurnRunning {
		return "", nil, fmt.Errorf("request cancel in %s: %w", conversationID, errNoRunningTurn(conversationID))
	}
	if now := time.Now(); m.orphaned(l, now) {
		return t.ID, m.interrupt(t, now), nil
	}
	l.cancelRequested = true
	m.running[key] = l
	return l.turn, nil, nil
}
