package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// AgentStats implements [Store.AgentStats].
func (m *Memory) AgentStats(ctx context.Context, since, until time.Time) ([]switchboard.AgentStats, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("agent stats: %w", err)
	}
	type group struct {
		stats     switchboard.AgentStats
		durations []float64
	}
	groups := map[string]*group{}
	m.mu.RLock()
	for _, t := range m.turns {
		if t.StartedAt.Before(since) || !t.StartedAt.Before(until) {
			continue
		}
		g := groups[t.Agent]
		if g == nil {
			g = &group{stats: switchboard.AgentStats{Agent: t.Agent}}
			groups[t.Agent] = g
		}
		g.stats.Turns++
		g.stats.Handoffs += int64(t.Handoffs)
		g.stats.PromptTokens += int64(t.PromptTokens)
		g.stats.CompletionTokens += int64(t.CompletionTokens)
		if !t.FinishedAt.IsZero() {
			g.durations = append(g.durations, millis(t.FinishedAt.Sub(t.StartedAt)))
		}
	}
	m.mu.RUnlock()
	out := make([]switchboard.AgentStats, 0, len(groups))
	for _, g := range groups {
		slices.Sort(g.durations)
		g.stats.P50 = fromMillis(percentile(g.durations, 0.5))
		g.stats.P95 = fromMillis(percentile(g.durations, 0.95))
		out = append(out, g.stats)
	}
	slices.SortFunc(out, func(a, b switchboard.AgentStats) int { return cmp.Compare(a.Agent, b.Agent) })
	return out, nil
}
