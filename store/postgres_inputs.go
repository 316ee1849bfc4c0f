package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/switchboard-dev/switchboard"
)

// InputChannel is the Postgres notification channel of AnswerInput: the
// input's id, for the instance holding the server's open request
// (ListenInputs).
const InputChannel = "switchboard_inputs"

const inputColumns = `id::text, user_id, conversation_id::text, turn_id::text, tool_call_id::text, server, mode, message,
    requested_schema, url, elicitation_id, status, action, content, reason, created_at, answered_at, request_key, request_state`

func scanInput(row pgx.Row) (switchboard.Input, error) {
	var (
		in              switchboard.Input
		status          string
		schema, content []byte
		answeredAt      *time.Time
	)
	err := row.Scan(&in.ID, &in.UserID, &in.ConversationID, &in.TurnID, &in.ToolCallID, &in.Server, &in.Mode, &in.Message,
		&schema, &in.URL, &in.ElicitationID, &status, &in.Action, &content, &in.Reason, &in.CreatedAt, &answeredAt, &in.RequestKey, &in.RequestState)
	if err != nil {
		return in, err
	}
	in.Status = switchboard.InputStatus(status)
	in.RequestedSchema, in.Content = json.RawMessage(schema), json.RawMessage(content)
	in.CreatedAt = in.CreatedAt.UTC()
	if answeredAt != nil {
		in.AnsweredAt = answeredAt.UTC()
	}
	return in, nil
}

// jsonArg is raw JSON as a jsonb parameter: NULL when empty.
func jsonArg(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// CreateInput implements [Store.CreateInput].
func (p *Postgres) CreateInput(ctx context.Context, in *switchboard.Input) error {
	if err := prepareInput(in); err != nil {
		return err
	}
	err := p.pool.QueryRow(ctx, `
INSERT INTO inputs (id, user_id, conversation_id, turn_id, tool_call_id, server, mode, message, requested_schema, url, elicitation_id, status, request_key, request_state)
SELECT $1::uuid, $2::text, $3::uuid, $4::uuid, $5::uuid, $6::text, $7::text, $8::text, $9::jsonb, $10::text, $11::text, 'pending', $12::text, $13::text
WHERE EXISTS (SELECT FROM tool_calls WHERE id = $5::uuid AND user_id = $2::text AND turn_id = $4::uuid AND conversation_id = $3::uuid)
RETURNING created_at`,
		in.ID, in.UserID, in.ConversationID, in.TurnID, in.ToolCallID, in.Server, in.Mode, in.Message,
		jsonArg(in.RequestedSchema), in.URL, in.ElicitationID, in.RequestKey, in.RequestState).Scan(&in.CreatedAt)
	if err != nil {
		return fmt.Errorf("store input of tool call %s: %w", in.ToolCallID, dbError(err))
	}
	in.CreatedAt = in.CreatedAt.UTC()
	return nil
}

// GetInput implements [Store.GetInput].
func (p *Postgres) GetInput(ctx context.Context, userID, id string) (switchboard.Input, error) {
	key, ok := lookupID(id)
	if !ok {
		return switchboard.Input{}, errInputNotFound(id)
	}
	in, err := scanInput(p.pool.QueryRow(ctx, `SELECT `+inputColumns+` FROM inputs WHERE id = $1 AND user_id = $2`, key, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return switchboard.Input{}, errInputNotFound(id)
	}
	if err != nil {
		return switchboard.Input{}, fmt.Errorf("load input %s: %w", id, dbError(err))
	}
	return in, nil
}

// answerInput answers a pending input whose turn a live instance still
// runs, and tells every instance when the transaction commits.
const answerInput = `
WITH a AS (
    UPDATE inputs i SET status = 'answered', action = $3::text, content = $4::jsonb, answered_at = now()
    WHERE i.id = $1::uuid AND i.user_id = $2::text AND i.status = 'pending'
      AND EXISTS (SELECT FROM turns t WHERE t.id = i.turn_id AND t.status = 'running' AND t.lease_until > now())
    RETURNING ` + inputColumns + `
)
SELECT a.*, pg_notify('` + InputChannel + `', a.id) FROM a`

// AnswerInput implements [Store.AnswerInput]. The input's id is sent on
// the channel InputChannel, which ListenInputs hears on every instance.
func (p *Postgres) AnswerInput(ctx context.Context, userID, id, action string, content json.RawMessage) (switchboard.Input, error) {
	if err := checkAction(action); err != nil {
		return switchboard.Input{}, err
	}
	key, ok := lookupID(id)
	if !ok {
		return switchboard.Input{}, errInputNotFound(id)
	}
	if action != switchboard.ActionAccept {
		content = nil
	}
	rows, err := p.pool.Query(ctx, answerInput, key, userID, action, jsonArg(content))
	if err != nil {
		return switchboard.Input{}, fmt.Errorf("answer input %s: %w", id, dbError(err))
	}
	var in switchboard.Input
	found := false
	for rows.Next() {
		var notified any
		var (
			status          string
			schema, content []byte
			answeredAt      *time.Time
		)
		if err := rows.Scan(&in.ID, &in.UserID, &in.ConversationID, &in.TurnID, &in.ToolCallID, &in.Server, &in.Mode, &in.Message,
			&schema, &in.URL, &in.ElicitationID, &status, &in.Action, &content, &in.Reason, &in.CreatedAt, &answeredAt, &in.RequestKey, &in.RequestState, &notified); err != nil {
			rows.Close()
			return switchboard.Input{}, fmt.Errorf("answer input %s: %w", id, dbError(err))
		}
		in.Status = switchboard.InputStatus(status)
		in.RequestedSchema, in.Content = json.RawMessage(schema), json.RawMessage(content)
		in.CreatedAt = in.CreatedAt.UTC()
		if answeredAt != nil {
			in.AnsweredAt = answeredAt.UTC()
		}
		found = true
	}
	if err := rows.Err(); err != nil {
		return switchboard.Input{}, fmt.Errorf("answer input %s: %w", id, dbError(err))
	}
	if found {
		return in, nil
	}
	// Not answered: absent, not the user's, closed, or pending with its
	// turn gone (then it closes as failed).
	cur, err := p.GetInput(ctx, userID, id)
	if err != nil {
		return switchboard.Input{}, err
	}
	if cur.Status == switchboard.InputPending {
		if cur, err = p.CloseInput(ctx, id, switchboard.InputFailed, inputGoneNote); err != nil {
			return switchboard.Input{}, err
		}
	}
	return switchboard.Input{}, errInputClosed(cur)
}

// CloseInput implements [Store.CloseInput].
func (p *Postgres) CloseInput(ctx context.Context, id string, status switchboard.InputStatus, reason string) (switchboard.Input, error) {
	if err := checkClose(status); err != nil {
		return switchboard.Input{}, err
	}
	key, ok := lookupID(id)
	if !ok {
		return switchboard.Input{}, errInputNotFound(id)
	}
	in, err := scanInput(p.pool.QueryRow(ctx, `
WITH c AS (
    UPDATE inputs SET status = $2::text, reason = $3::text, answered_at = now() WHERE id = $1::uuid AND status = 'pending'
    RETURNING `+inputColumns+`
)
SELECT * FROM c
UNION ALL
SELECT `+inputColumns+` FROM inputs WHERE id = $1::uuid AND NOT EXISTS (SELECT FROM c)`, key, string(status), reason))
	if errors.Is(err, pgx.ErrNoRows) {
		return switchboard.Input{}, errInputNotFound(id)
	}
	if err != nil {
		return switchboard.Input{}, fmt.Errorf("close input %s: %w", id, dbError(err))
	}
	return in, nil
}

// ListInputs implements [Store.ListInputs].
func (p *Postgres) ListInputs(ctx context.Context, userID, conversationID string, pendingOnly bool) ([]switchboard.Input, error) {
	key, ok := lookupID(conversationID)
	if !ok {
		return nil, nil
	}
	rows, err := p.pool.Query(ctx, `SELECT `+inputColumns+` FROM inputs
WHERE conversation_id = $1 AND user_id = $2 AND (NOT $3 OR status = 'pending') ORDER BY created_at, id`, key, userID, pendingOnly)
	if err != nil {
		return nil, fmt.Errorf("list inputs of %s: %w", conversationID, dbError(err))
	}
	defer rows.Close()
	var out []switchboard.Input
	for rows.Next() {
		in, err := scanInput(rows)
		if err != nil {
			return nil, fmt.Errorf("list inputs of %s: %w", conversationID, dbError(err))
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list inputs of %s: %w", conversationID, dbError(err))
	}
	return out, nil
}

// ListenInputs calls fn with the id of every input answered (AnswerInput,
// by any instance), until ctx ends, as ListenCancels does for cancels. An
// answer given while it is disconnected reaches its call when the call's
// instance next looks (see orchestrator: every few seconds).
func ListenInputs(ctx context.Context, url string, logger *slog.Logger, fn func(inputID string)) {
	listen(ctx, url, InputChannel, "switchboard input listener", logger, fn)
}
