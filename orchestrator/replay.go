package orchestrator

import (
	"context"
	"fmt"
	"slices"

	"github.com/switchboard-dev/switchboard"
)

// replay answers a request whose idempotency key was used before: with the
// stored outcome when it is the same request and its turn has ended, else
// with why not. The model is not called again.
func (o *Orchestrator) replay(ctx context.Context, req Request, ev Events) (*Result, error) {
	rec, err := o.store.TurnByIdempotencyKey(ctx, req.UserID, req.IdempotencyKey)
	if err != nil {
		return nil, fmt.Errorf("load turn of idempotency key: %w", err)
	}
	switch {
	case rec.RequestHash != req.RequestHash:
		return nil, switchboard.Errorf(switchboard.ErrUnprocessable, "idempotency_key_mismatch",
			"this Idempotency-Key was used for another request; use a new key for a new request")
	case rec.Status == switchboard.TurnRunning:
		return nil, switchboard.Errorf(switchboard.ErrConflict, "idempotency_in_progress",
			"the first request with this Idempotency-Key is still running; retry when it has finished")
	}
	msgs, err := o.store.ListMessages(ctx, req.UserID, rec.ConversationID)
	if err != nil {
		return nil, fmt.Errorf("load transcript: %w", err)
	}
	calls, _, err := o.store.ListToolCalls(ctx, switchboard.ToolCallFilter{TurnID: rec.ID, Limit: 500})
	if err != nil {
		return nil, fmt.Errorf("load tool calls: %w", err)
	}
	slices.Reverse(calls) // oldest first: the order the model asked for them
	res := &Result{Turn: rec, ToolCalls: calls, Replayed: true}
	for _, m := range msgs {
		if m.TurnID == rec.ID && m.Role == switchboard.RoleAssistant && (m.Type == switchboard.MessageText || m.Type == switchboard.MessageError) {
			res.Message = m
		}
	}
	for _, c := range calls {
		if c.Status == switchboard.CallAwaitingApproval {
			res.Pending = append(res.Pending, c)
		}
	}
	if ev != nil {
		ev.TurnStarted(rec)
		ev.StepStarted(1)
		for _, c := range calls {
			if c.Status == switchboard.CallAwaitingApproval {
				ev.ApprovalRequested(c)
				continue
			}
			ev.ToolStarted(c)
			ev.ToolFinished(c)
		}
		if res.Message.Type == switchboard.MessageText && res.Message.Content != "" {
			ev.TextDelta(res.Message.Content)
		}
		ev.StepFinished(1)
	}
	switch rec.Status {
	case switchboard.TurnFailed:
		return nil, switchboard.Errorf(switchboard.ErrUpstream, "replayed_failure", "the first request with this Idempotency-Key failed: %s", rec.Error)
	case switchboard.TurnGuardrailTripped:
		// As the first request was answered: the message refused, or the
		// answer withheld, for the reason stored.
		return nil, switchboard.Errorf(switchboard.ErrUnprocessable, switchboard.CodeGuardrailTripped, "%s", rec.Error)
	case switchboard.TurnCancelled:
		// As the first request was answered, or would have been had it
		// waited: a turn cancelled while it awaited an approval (the
		// conversation went on) had answered with its pending calls.
		return nil, switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeTurnCancelled, "the turn of the first request with this Idempotency-Key was cancelled: %s", rec.Error)
	}
	return res, nil
}
