package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// GetToolCall implements [Store.GetToolCall].
func (m *Memory) GetToolCall(ctx context.Context, userID, id string) (switchboard.ToolCall, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, found := m.calls[key]
	if !ok || !found || c.UserID != userID {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	return cloneCall(*c), nil
}

// AdminToolCall implements [Store.AdminToolCall].
func (m *Memory) AdminToolCall(ctx context.Context, id string) (switchboard.ToolCall, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, found := m.calls[key]
	if !ok || !found {
		return switchboard.ToolCall{}, fmt.Errorf("load tool call %q: %w", id, switchboard.ErrNotFound)
	}
	return cloneCall(*c), nil
}

// GetToolCallContent implements [Store.GetToolCallContent].
func (m *Memory) GetToolCallContent(ctx context.Context, userID, id string, index int) (switchboard.ContentPart, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.ContentPart{}, fmt.Errorf("load content %d of tool call %s: %w", index, id, err)
	}
	key, ok := lookupID(id)
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, found := m.calls[key]
	if !ok || !found || c.UserID != userID || index < 0 || index >= len(c.Content) {
		return switchboard.ContentPart{}, fmt.Errorf("load content %d of tool call %q of %s: %w", index, id, userID, switchboard.ErrNotFound)
	}
	if c.PayloadPruned {
		return switchboard.ContentPart{}, fmt.Errorf("load content %d of tool call %s: %w", index, id, errContentPruned)
	}
	p := c.Content[index]
	p.Data = slices.Clone(p.Data)
	return p, nil
}

// DecideToolCall implements [Store.DecideToolCall].
func (m *Memory) DecideToolCall(ctx context.Context, userID, id string, approve bool) (switchboard.ToolCall, error) {
	if err := ctxErr(ctx); err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, err)
	}
	key, ok := lookupID(id)
	m.mu.Lock()
	defer m.mu.Unlock()
	c, found := m.calls[key]
	if !ok || !found || c.UserID != userID {
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %q of %s: %w", id, userID, switchboard.ErrNotFound)
	}
	now := time.Now()
	if l, ok := m.running[c.ConversationID]; ok {
		// A running turn of the conversation that no live instance holds
		// is failed first, with its calls, as Postgres does.
		if old := m.turns[l.turn]; old != nil && old.Status == switchboard.TurnRunning && m.orphaned(l, now) {
			m.interrupt(old, now)
		}
	}
	if c.Status != switchboard.CallAwaitingApproval {
		return switchboard.ToolCall{}, errAlreadyDecided(id)
	}
	t := m.turns[c.TurnID]
	switch {
	case t != nil && t.Status == switchboard.TurnRunning: // a decision of another call of it
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, errTurnRunning())
	case t == nil || t.Status != switchboard.TurnAwaitingApproval: // it ended: the call can no longer run
		return switchboard.ToolCall{}, errAlreadyDecided(id)
	}
	if _, err := m.takeLease(t.ConversationID, t.ID, now); err != nil {
		return switchboard.ToolCall{}, fmt.Errorf("decide tool call %s: %w", id, err)
	}
	m.changeTurn(t, func() { t.Status = switchboard.TurnRunning })
	before := cloneCall(*c)
	m.changeCall(c, func() {
		c.Status = switchboard.CallRunning
		if !approve {
			c.Status = switchboard.CallDenied
		}
	})
	if conv := m.conversations[c.ConversationID]; conv != nil {
		m.use(conv)
	}
	return before, nil
}

// PruneToolCallPayloads implements [Store.PruneToolCallPayloads].
func (m *Memory) PruneToolCallPayloads(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		return 0, fmt.Errorf("prune tool calls: batch %d: %w", batch, switchboard.ErrInvalid)
	}
	if err := ctxErr(ctx); err != nil {
		return 0, fmt.Errorf("prune tool calls: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var old []*switchboard.ToolCall
	for _, c := range m.calls {
		if !c.PayloadPruned && !c.FinishedAt.IsZero() && c.StartedAt.Before(before) {
			old = append(old, c)
		}
	}
	slices.SortFunc(old, func(a, b *switchboard.ToolCall) int { return a.StartedAt.Compare(b.StartedAt) })
	if len(old) > batch {
		old = old[:batch]
	}
	for _, c := range old {
		m.changeCall(c, func() {
			c.Arguments, c.Result, c.StructuredResult, c.PayloadPruned = nil, "", nil, true
			c.Content = contentListing(c.Content)
		})
	}
	return len(old), nil
}

// ListToolCalls implements [Store.ListToolCalls].
func (m *Memory) ListToolCalls(ctx context.Context, f switchboard.ToolCallFilter) ([]switchboard.ToolCall, string, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, "", fmt.Errorf("list tool calls: %w", err)
	}
	q, err := prepareFilter(f)
	if err != nil {
		return nil, "", fmt.Errorf("list tool calls: %w", err)
	}
	calls := []switchboard.ToolCall{}
	m.mu.RLock()
	for _, c := range m.calls {
		if !q.matches(c) {
			continue
		}
		if q.afterID != "" {
			// Keep rows before the cursor: (started_at, id) < (afterTime, afterID).
			if d := cmp.Or(c.StartedAt.Compare(q.afterTime), cmp.Compare(c.ID, q.afterID)); d >= 0 {
				continue
			}
		}
		calls = append(calls, cloneCall(*c))
	}
	m.mu.RUnlock()
	slices.SortFunc(calls, func(a, b switchboard.ToolCall) int {
		return cmp.Or(b.StartedAt.Compare(a.StartedAt), cmp.Compare(b.ID, a.ID))
	})
	if len(calls) <= q.limit {
		return calls, "", nil
	}
	calls = calls[:q.limit]
	last := calls[len(calls)-1]
	return calls, encodeCursor(last.StartedAt, last.ID), nil
}

// ToolCallStats implements [Store.ToolCallStats].
func (m *Memory) ToolCallStats(ctx context.Context, f switchboard.ToolCallFilter, groupBy string) ([]switchboard.ToolCallStats, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("tool call stats: %w", err)
	}
	if err := checkGroupBy(groupBy); err != nil {
		return nil, fmt.Errorf("tool call stats: %w", err)
	}
	f.After = ""
	q, err := prepareFilter(f)
	if err != nil {
		return nil, fmt.Errorf("tool call stats: %w", err)
	}
	type group struct {
		stats     switchboard.ToolCallStats
		finished  int64
		durations []float64
	}
	groups := make(map[[2]string]*group)
	m.mu.RLock()
	for _, c := range m.calls {
		if !q.matches(c) {
			continue
		}
		key := [2]string{c.Server, c.Tool}
		if groupBy == GroupByServer {
			key[1] = c.Server
		}
		g := groups[key]
		if g == nil {
			g = &group{stats: switchboard.ToolCallStats{Server: key[0], Group: key[1]}}
			groups[key] = g
		}
		g.stats.Count++
		if !c.Finished() {
			continue
		}
		g.finished++
		g.durations = append(g.durations, millis(c.Duration))
		if c.Status != switchboard.CallSucceeded {
			g.stats.Errors++
		}
	}
	m.mu.RUnlock()
	stats := make([]switchboard.ToolCallStats, 0, len(groups))
	for _, g := range groups {
		slices.Sort(g.durations)
		g.stats.ErrorRate = errorRate(g.stats.Errors, g.finished)
		g.stats.P50 = fromMillis(percentile(g.durations, 0.5))
		g.stats.P95 = fromMillis(percentile(g.durations, 0.95))
		stats = append(stats, g.stats)
	}
	slices.SortFunc(stats, func(a, b switchboard.ToolCallStats) int {
		return cmp.Or(cmp.Compare(a.Server, b.Server), cmp.Compare(a.Group, b.Group))
	})
	return stats, nil
}
