package store

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// selectAgentStats aggregates the turns started in [$1, $2) by agent,
// through the index turns_started.
const selectAgentStats = `
SELECT agent, count(*), COALESCE(sum(handoffs), 0), COALESCE(sum(prompt_tokens), 0), COALESCE(sum(completion_tokens), 0),
    COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at) * 1000) FILTER (WHERE finished_at IS NOT NULL), 0),
    COALESCE(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at) * 1000) FILTER (WHERE finished_at IS NOT NULL), 0)
FROM turns WHERE started_at >= $1 AND started_at < $2
GROUP BY agent ORDER BY agent`

// AgentStats implements [Store.AgentStats].
func (p *Postgres) AgentStats(ctx context.Context, since, until time.Time) ([]switchboard.AgentStats, error) {
	rows, err := p.pool.Query(ctx, selectAgentStats, since, until)
	if err != nil {
		return nil, fmt.Errorf("agent stats: %w", dbError(err))
	}
	defer rows.Close()
	out := []switchboard.AgentStats{}
	for rows.Next() {
		var (
			s        switchboard.AgentStats
			p50, p95 float64
		)
		if err := rows.Scan(&s.Agent, &s.Turns, &s.Handoffs, &s.PromptTokens, &s.CompletionTokens, &p50, &p95); err != nil {
			return nil, fmt.Errorf("agent stats: %w", dbError(err))
		}
		s.P50, s.P95 = fromMillis(p50), fromMillis(p95)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("agent stats: %w", dbError(err))
	}
	return out, nil
}
