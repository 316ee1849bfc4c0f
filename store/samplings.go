package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// prepareSampling validates a sampling row and fills its id.
func prepareSampling(s *switchboard.Sampling) error {
	id, err := newID(s.ID, "sampling")
	if err != nil {
		return err
	}
	s.ID = id
	for _, ref := range []*string{&s.ConversationID, &s.TurnID, &s.ToolCallID} {
		key, ok := lookupID(*ref)
		if !ok {
			return invalid("invalid_id", "sampling: %q is not a UUID", *ref)
		}
		*ref = key
	}
	switch s.Status {
	case switchboard.SamplingSucceeded, switchboard.SamplingFailed, switchboard.SamplingDenied:
	default:
		return invalid("invalid_sampling", "sampling status %q: want succeeded, failed or denied", s.Status)
	}
	if s.UserID == "" || s.Kind == "" {
		return invalid("invalid_sampling", "a sampling row without a user or a kind")
	}
	s.StartedAt, s.FinishedAt = s.StartedAt.UTC().Truncate(time.Microsecond), s.FinishedAt.UTC().Truncate(time.Microsecond)
	return nil
}

// RecordSampling implements [Store.RecordSampling].
func (m *Memory) RecordSampling(ctx context.Context, s *switchboard.Sampling) error {
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("record sampling: %w", err)
	}
	if err := prepareSampling(s); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.calls[s.ToolCallID]
	if !ok || c.UserID != s.UserID || c.TurnID != s.TurnID {
		return fmt.Errorf("record sampling of tool call %s: %w", s.ToolCallID, switchboard.ErrNotFound)
	}
	if m.samplings == nil {
		m.samplings = map[string][]switchboard.Sampling{}
	}
	m.samplings[s.ToolCallID] = append(m.samplings[s.ToolCallID], *s)
	m.grow(c.ConversationID, storedSamplingSize(s))
	m.evict(time.Now())
	return nil
}

// ListSamplings implements [Store.ListSamplings].
func (m *Memory) ListSamplings(ctx context.Context, toolCallID string) ([]switchboard.Sampling, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, fmt.Errorf("list samplings: %w", err)
	}
	key, _ := lookupID(toolCallID)
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.calls[key]; !ok {
		return nil, nil
	}
	return slices.Clone(m.samplings[key]), nil
}

// RecordSampling implements [Store.RecordSampling].
func (p *Postgres) RecordSampling(ctx context.Context, s *switchboard.Sampling) error {
	if err := prepareSampling(s); err != nil {
		return err
	}
	// The row refers to its call's ledger row: a call still open on its
	// turn's row gets it now (materializeOpenCall).
	tag, err := p.pool.Exec(ctx, materializeOpenCall+`
INSERT INTO samplings (id, user_id, conversation_id, turn_id, tool_call_id, server, kind, model, status, error,
    max_tokens, prompt_tokens, completion_tokens, duration_ms, started_at, finished_at)
SELECT $1::uuid, $2::text, $3::uuid, $4::uuid, $5::uuid, $6::text, $7::text, $8::text, $9::text, $10::text, $11::int, $12::int, $13::int, $14::float8, $15::timestamptz, $16::timestamptz
WHERE EXISTS (SELECT FROM tool_calls WHERE id = $5::uuid AND user_id = $2::text AND turn_id = $4::uuid)
    OR EXISTS (SELECT FROM m)`,
		s.ID, s.UserID, s.ConversationID, s.TurnID, s.ToolCallID, s.Server, s.Kind, s.Model, string(s.Status), s.Error,
		s.MaxTokens, s.PromptTokens, s.CompletionTokens, float64(s.Duration)/float64(time.Millisecond), s.StartedAt, s.FinishedAt)
	if err != nil {
		return fmt.Errorf("record sampling of tool call %s: %w", s.ToolCallID, dbError(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("record sampling of tool call %s: %w", s.ToolCallID, switchboard.ErrNotFound)
	}
	return nil
}

// ListSamplings implements [Store.ListSamplings].
func (p *Postgres) ListSamplings(ctx context.Context, toolCallID string) ([]switchboard.Sampling, error) {
	key, ok := lookupID(toolCallID)
	if !ok {
		return nil, nil
	}
	rows, err := p.pool.Query(ctx, `SELECT id::text, user_id, conversation_id::text, turn_id::text, tool_call_id::text, server, kind, model,
    status, error, max_tokens, prompt_tokens, completion_tokens, duration_ms, started_at, finished_at
FROM samplings WHERE tool_call_id = $1 ORDER BY started_at, id`, key)
	if err != nil {
		return nil, fmt.Errorf("list samplings of %s: %w", toolCallID, dbError(err))
	}
	defer rows.Close()
	var out []switchboard.Sampling
	for rows.Next() {
		var (
			s      switchboard.Sampling
			status string
			ms     float64
		)
		if err := rows.Scan(&s.ID, &s.UserID, &s.ConversationID, &s.TurnID, &s.ToolCallID, &s.Server, &s.Kind, &s.Model,
			&status, &s.Error, &s.MaxTokens, &s.PromptTokens, &s.CompletionTokens, &ms, &s.StartedAt, &s.FinishedAt); err != nil {
			return nil, fmt.Errorf("list samplings of %s: %w", toolCallID, dbError(err))
		}
		s.Status = switchboard.SamplingStatus(status)
		s.Duration = time.Duration(ms * float64(time.Millisecond))
		s.StartedAt, s.FinishedAt = s.StartedAt.UTC(), s.FinishedAt.UTC()
		out = append(out, s)
	}
	return out, rows.Err()
}
