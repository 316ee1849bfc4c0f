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
    requested_schema, url, elicitation_id, status, action, content, reason, created_at, answered_at, request_key, request_state,
    input_requests, taken_at`

// scanInput reads a row of inputColumns, then into extra the row's
// further columns.
func scanInput(row pgx.Row, extra ...any) (switchboard.Input, error) {
	var (
		in                        switchboard.Input
		status                    string
		schema, content, requests []byte
		answeredAt, takenAt       *time.Time
	)
	err := row.Scan(append([]any{&in.ID, &in.UserID, &in.ConversationID, &in.TurnID, &in.ToolCallID, &in.Server, &in.Mode, &in.Message,
		&schema, &in.URL, &in.ElicitationID, &status, &in.Action, &content, &in.Reason, &in.CreatedAt, &answeredAt,
		&in.RequestKey, &in.RequestState, &requests, &takenAt}, extra...)...)
	if err != nil {
		return in, err
	}
	in.Status = switchboard.InputStatus(status)
	in.RequestedSchema, in.Content, in.InputRequests = json.RawMessage(schema), json.RawMessage(content), json.RawMessage(requests)
	in.CreatedAt = in.CreatedAt.UTC()
	if answeredAt != nil {
		in.AnsweredAt = answeredAt.UTC()
	}
	if takenAt != nil {
		in.TakenAt = takenAt.UTC()
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
	// The question refers to its call's ledger row: a call still open on
	// its turn's row gets it now (materializeOpenCall).
	err := p.pool.QueryRow(ctx, materializeOpenCall+`
INSERT INTO inputs (id, user_id, conversation_id, turn_id, tool_call_id, server, mode, message, requested_schema, url, elicitation_id, status,
    request_key, request_state, input_requests)
SELECT $1::uuid, $2::text, $3::uuid, $4::uuid, $5::uuid, $6::text, $7::text, $8::text, $9::jsonb, $10::text, $11::text, 'pending',
    $12::text, $13::text, $14::jsonb
WHERE EXISTS (SELECT FROM tool_calls WHERE id = $5::uuid AND user_id = $2::text AND turn_id = $4::uuid AND conversation_id = $3::uuid)
    OR EXISTS (SELECT FROM m)
RETURNING created_at`,
		in.ID, in.UserID, in.ConversationID, in.TurnID, in.ToolCallID, in.Server, in.Mode, in.Message,
		jsonArg(in.RequestedSchema), in.URL, in.ElicitationID, in.RequestKey, in.RequestState, jsonArg(in.InputRequests)).Scan(&in.CreatedAt)
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
// runs, or that awaits input (no instance holds it: then the answer takes
// it over, under lease $5 of instance $6 and boot $7, and the second
// column is true), and tells every instance when the transaction commits.
// The conversation is locked first (lockInputConversation), and the turn
// failed or stored awaiting_input if it was orphaned (failOrphanOfInput).
const answerInput = `
WITH a AS (
    UPDATE inputs i SET status = 'answered', action = $3::text, content = $4::jsonb, answered_at = now()
    WHERE i.id = $1::uuid AND i.user_id = $2::text AND i.status = 'pending'
      AND EXISTS (SELECT FROM turns t WHERE t.id = i.turn_id
          AND (t.status = 'running' AND t.lease_until > now() OR t.status = 'awaiting_input'))
    RETURNING ` + inputColumns + `
), r AS (
    UPDATE turns SET status = 'running', lease_until = now() + $5::interval, lease_instance = $6::text, lease_boot = $7::uuid,
        cancel_requested = false
    WHERE id = (SELECT turn_id::uuid FROM a) AND status = 'awaiting_input'
    RETURNING id
)
SELECT a.*, EXISTS (SELECT FROM r), pg_notify('` + InputChannel + `', a.id) FROM a`

// The statements that go before answerInput and adoptTurn.
var (
	// lockInputConversation locks the conversation of user $2's input
	// $1, as every writer of its turns does first.
	lockInputConversation = `SELECT FROM conversations WHERE id = (SELECT conversation_id FROM inputs WHERE id = $1 AND user_id = $2) FOR NO KEY UPDATE`
	// failOrphanOfInput closes the turn of user $4's input $1 if it is
	// orphaned for instance $2 and boot $3.
	failOrphanOfInput = failOrphaned(`id = (SELECT turn_id FROM inputs WHERE id = $1 AND user_id = $4) AND ` + orphaned("$2", "$3"))
	// lockTurnOfUser locks the conversation of user $2's turn $1.
	lockTurnOfUser = `SELECT 1 FROM conversations WHERE id = (SELECT conversation_id FROM turns WHERE id = $1 AND user_id = $2) FOR NO KEY UPDATE`
	// failOrphanOfTurn closes user $4's turn $1 if it is orphaned for
	// instance $2 and boot $3.
	failOrphanOfTurn = failOrphaned(`id = $1 AND user_id = $4 AND ` + orphaned("$2", "$3"))
)

// adoptTurn takes over user $2's turn $1 that awaits input, if one of its
// answers waits to be sent on (answered, not taken), under lease $3 of
// instance $4 and boot $5.
const adoptTurn = `
UPDATE turns SET status = 'running', lease_until = now() + $3::interval, lease_instance = $4::text, lease_boot = $5::uuid,
    cancel_requested = false
WHERE id = $1 AND user_id = $2 AND status = 'awaiting_input'
    AND EXISTS (SELECT FROM inputs WHERE turn_id = $1 AND request_key <> '' AND status = 'answered' AND taken_at IS NULL)
RETURNING id::text`

// AnswerInput implements [Store.AnswerInput]. The input's id is sent on
// the channel InputChannel, which ListenInputs hears on every instance.
func (p *Postgres) AnswerInput(ctx context.Context, userID, id, action string, content json.RawMessage) (switchboard.AnsweredInput, error) {
	var out switchboard.AnsweredInput
	if err := checkAction(action); err != nil {
		return out, err
	}
	key, ok := lookupID(id)
	if !ok {
		return out, errInputNotFound(id)
	}
	if action != switchboard.ActionAccept {
		content = nil
	}
	b := &pgx.Batch{}
	b.Queue(lockInputConversation, key, userID)
	b.Queue(failOrphanOfInput, key, p.instanceArg(), p.boot, userID)
	b.Queue(answerInput, key, userID, action, jsonArg(content), LeaseDuration, p.instanceArg(), p.boot)
	found := false
	err := p.send(ctx, b, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		interrupted, err := collectInterrupted(rows)
		if err != nil {
			return err
		}
		if len(interrupted) > 0 {
			out.Interrupted = &interrupted[0]
		}
		var notified any
		out.Input, err = scanInput(br.QueryRow(), &out.Resumed, &notified)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return switchboard.AnsweredInput{}, fmt.Errorf("answer input %s: %w", id, dbError(err))
	}
	if found {
		return out, nil
	}
	// Not answered: absent, not the user's, closed, or pending with its
	// turn gone (then it closes as failed).
	gone := switchboard.AnsweredInput{Interrupted: out.Interrupted}
	cur, err := p.GetInput(ctx, userID, id)
	if err != nil {
		return gone, err
	}
	if cur.Status == switchboard.InputPending {
		if cur, err = p.CloseInput(ctx, id, switchboard.InputFailed, inputGoneNote); err != nil {
			return gone, err
		}
	}
	return gone, errInputClosed(cur)
}

// AdoptTurn implements [Store.AdoptTurn].
func (p *Postgres) AdoptTurn(ctx context.Context, userID, turnID string) (bool, *switchboard.Interrupted, error) {
	key, ok := lookupID(turnID)
	if !ok {
		return false, nil, fmt.Errorf("adopt turn %q: %w", turnID, switchboard.ErrNotFound)
	}
	b := &pgx.Batch{}
	b.Queue(lockTurnOfUser, key, userID)
	b.Queue(failOrphanOfTurn, key, p.instanceArg(), p.boot, userID)
	b.Queue(adoptTurn, key, userID, LeaseDuration, p.instanceArg(), p.boot)
	var (
		adopted     bool
		interrupted *switchboard.Interrupted
	)
	err := p.send(ctx, b, func(br pgx.BatchResults) error {
		if err := br.QueryRow().Scan(new(int)); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("no turn %s of the user: %w", turnID, switchboard.ErrNotFound)
		} else if err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		in, err := collectInterrupted(rows)
		if err != nil {
			return err
		}
		if len(in) > 0 {
			interrupted = &in[0]
		}
		err = br.QueryRow().Scan(new(string))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		adopted = err == nil
		return err
	})
	if err != nil {
		return false, nil, fmt.Errorf("adopt turn %s: %w", turnID, dbError(err))
	}
	return adopted, interrupted, nil
}

// TakeInput implements [Store.TakeInput].
func (p *Postgres) TakeInput(ctx context.Context, id string) error {
	key, ok := lookupID(id)
	if !ok {
		return errInputNotFound(id)
	}
	tag, err := p.pool.Exec(ctx, `UPDATE inputs SET taken_at = now() WHERE id = $1 AND status = 'answered' AND taken_at IS NULL`, key)
	if err != nil {
		return fmt.Errorf("take the answer of input %s: %w", id, dbError(err))
	}
	if tag.RowsAffected() == 0 {
		return errAnswerTaken(id)
	}
	return nil
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
