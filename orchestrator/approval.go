package orchestrator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// Decide applies a person's decision on a tool call awaiting approval and
// continues its turn: an approved call runs exactly as stored, a denied one
// is recorded as denied and the model is told; once no call of the turn
// awaits approval the loop goes on to the model's answer. Everything it
// needs is in the store, so it works after a restart. When ev is not nil
// the model is streamed and ev sees each step.
//
// Errors: ErrNotFound (conversation_not_found) for a conversation the user
// does not have, and (tool_call_not_found) for a call that is absent or not
// in that conversation; ErrConflict for a call already decided
// (already_decided), a turn that no longer waits (not_awaiting_approval,
// superseded) or that runs, or another turn of the conversation running
// (turn_running); then those of Run. Once the call is decided, every way out
// ends the turn (stored cancelled or failed), so that it never stays running
// — but for a decision whose commit's answer was lost (the store failed as it
// replied): that turn keeps its conversation until its lease runs out (60 s)
// and the next turn fails it.
func (o *Orchestrator) Decide(ctx context.Context, d Decision, ev Events) (*Result, error) {
	id, err := o.decisionConversation(ctx, d)
	if err != nil {
		return nil, err
	}
	d.ConversationID, d.ExternalConversationID = id, ""
	return o.detachable(ctx, d.UserID, ev, func(ctx context.Context, ev Events) (*Result, error) {
		return o.decide(ctx, d, ev)
	})
}

// decide is Decide in the user's conversation d.ConversationID.
func (o *Orchestrator) decide(ctx context.Context, d Decision, ev Events) (res *Result, err error) {
	if err := o.model.Ready(); err != nil && !o.agents.configured() {
		// With agents, the turn's agent's model answers for itself.
		return nil, err
	}
	ctx, span := o.opts.Tracer.Start(ctx, "turn.decide", trace.WithAttributes(attribute.String("user.id", d.UserID),
		attribute.String("conversation.id", d.ConversationID), attribute.String("tool_call.id", d.CallID), attribute.Bool("approve", d.Approve)))
	defer func() { endSpan(span, err) }()
	unlock, err := o.lock(ctx, d.ConversationID, time.Now().Add(o.opts.TurnWait))
	if err != nil {
		return nil, err
	}
	defer unlock()

	missing := switchboard.Errorf(switchboard.ErrNotFound, switchboard.CodeToolCallNotFound, "tool call %q not found in conversation %q", d.CallID, d.ConversationID)
	call, err := o.store.GetToolCall(ctx, d.UserID, d.CallID)
	if notFound(err) || err == nil && call.ConversationID != d.ConversationID {
		return nil, missing
	}
	if err != nil {
		return nil, fmt.Errorf("load tool call: %w", err)
	}
	rec, err := o.store.GetTurn(ctx, d.UserID, call.TurnID)
	if err != nil {
		return nil, fmt.Errorf("load turn %s: %w", call.TurnID, err)
	}
	if rec.Status != switchboard.TurnAwaitingApproval || call.Status != switchboard.CallAwaitingApproval || isAgentTool(call) {
		return nil, switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeNotAwaitingApproval, "tool call %s does not await approval (its turn is %s)", d.CallID, rec.Status)
	}
	turns, err := o.store.ListTurns(ctx, d.UserID, d.ConversationID)
	if err != nil {
		return nil, fmt.Errorf("list turns: %w", err)
	}
	if last := turns[len(turns)-1]; last.ID != rec.ID {
		return nil, switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeSuperseded, "the conversation went on after this call asked for approval; it can no longer run")
	}
	if _, err := o.store.DecideToolCall(ctx, d.UserID, call.ID, d.Approve); err != nil {
		if switchboard.IsCode(err, switchboard.CodeTurnRunning) {
			return nil, o.turnRunning()
		}
		return nil, err
	}

	// From here the turn runs (the store moved it to running with the
	// decision): tracked at once, so that a cancel reaches it, and every
	// way out ends it, so that it never stays running.
	t := o.newTurn(ev, d.RequestID)
	t.wallStart = time.Now()
	rec.Status = switchboard.TurnRunning
	t.rec = rec
	t.agent, t.roles = o.agents.named(rec.Agent), d.Roles
	t.caller = tools.Caller{UserID: d.UserID, ConversationID: d.ConversationID}
	ctx, done := o.track(ctx, t.rec)
	defer done()
	call.Status = switchboard.CallRunning
	msgs, err := o.store.ListMessages(ctx, d.UserID, d.ConversationID)
	if err != nil {
		// The call was decided but cannot run: record it so, and end the
		// turn.
		if d.Approve {
			call.Status, call.ErrorClass, call.FinishedAt = switchboard.CallCancelled, switchboard.ErrorClassCancelled, time.Now()
			call.Error = "not run: the turn could not resume"
		} else {
			deny(&call, d.Reason)
		}
		t.finished = append(t.finished, call)
		if ctx.Err() != nil {
			return t.end(ctx, switchboard.TurnCancelled, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(ctx.Err())), ctx.Err())
		}
		return t.end(ctx, switchboard.TurnFailed, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err)),
			fmt.Errorf("load transcript: %w", err))
	}
	if len(msgs) > o.opts.HistoryLimit {
		msgs = msgs[len(msgs)-o.opts.HistoryLimit:]
	}
	t.history = msgs // made replayable below, once the decided call has its result
	if t.ev != nil {
		t.ev.TurnStarted(t.rec)
	}

	if call.ParentID != "" {
		// A call of an agent used as a tool: the agent goes on first.
		return t.resumeInside(ctx, call, d)
	}
	if d.Approve {
		s := time.Now()
		batch := []switchboard.ToolCall{call}
		t.execute(ctx, batch)
		call = batch[0]
		t.timing.Tools += time.Since(s)
	} else {
		deny(&call, d.Reason)
		o.opts.Observer.ToolCallEnded(call)
		if t.ev != nil {
			t.ev.ToolFinished(call)
		}
	}
	t.addResult(&call)
	t.calls = append(t.calls, call)
	t.setHistory(t.history)

	if ctx.Err() != nil {
		return t.end(ctx, switchboard.TurnCancelled, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(ctx.Err())), ctx.Err())
	}
	pending, err := o.pendingOf(ctx, rec.ID, call.ID)
	if err != nil {
		if ctx.Err() != nil {
			return t.end(ctx, switchboard.TurnCancelled, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(ctx.Err())), ctx.Err())
		}
		return t.end(ctx, switchboard.TurnFailed, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err)), err)
	}
	if len(pending) > 0 {
		return t.awaitAll(ctx, pending)
	}
	return t.loop(ctx, rec.Steps+1)
}

// decideFirst applies req.Decisions before req's message: a decision that
// no longer applies (decided already, its turn gone on, not a call of the
// user's conversation) is skipped, and so is the failure of a turn once its
// call was decided (that is the turn's outcome, stored; the new message is
// answered all the same). A decision that could not be stored (the store
// away) or a turn cancelled (the request, or the cancel route) stops the
// request: the new message would cancel the call instead. A retried
// request (its Idempotency-Key used already) applies none: the first did.
func (o *Orchestrator) decideFirst(ctx context.Context, req Request, conversationID string) error {
	if req.IdempotencyKey != "" {
		_, err := o.store.TurnByIdempotencyKey(ctx, req.UserID, req.IdempotencyKey)
		if err == nil {
			return nil
		}
		if !notFound(err) {
			return fmt.Errorf("load turn of idempotency key: %w", err)
		}
	}
	seen := map[string]bool{}
	for _, d := range req.Decisions {
		if seen[d.CallID] || !switchboard.ValidID(d.CallID) {
			continue
		}
		if seen[d.CallID] = true; len(seen) > maxDecisions {
			break
		}
		d.UserID, d.ConversationID, d.RequestID, d.Roles = req.UserID, conversationID, req.RequestID, req.Roles
		_, err := o.decide(ctx, d, nil)
		if err == nil {
			continue
		}
		switch switchboard.ErrorCode(err) {
		case switchboard.CodeAlreadyDecided, switchboard.CodeNotAwaitingApproval, switchboard.CodeSuperseded, switchboard.CodeToolCallNotFound:
			continue
		case switchboard.CodeTurnCancelled:
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		// Stored, and then its turn failed; or not stored.
		call, gerr := o.store.GetToolCall(ctx, req.UserID, d.CallID)
		if gerr != nil {
			return fmt.Errorf("load tool call %s after its decision failed (%w): %w", d.CallID, err, gerr)
		}
		if call.Status == switchboard.CallAwaitingApproval {
			return err
		}
	}
	return nil
}

// deny records c as denied by a person, for the reason given.
func deny(c *switchboard.ToolCall, reason string) {
	c.Status, c.ErrorClass = switchboard.CallDenied, switchboard.ErrorClassDenied
	c.Error = "the user denied this call"
	if reason = strings.TrimSpace(reason); reason != "" {
		c.Error += ": " + reason
	}
	c.Result = "error: " + c.Error
	c.FinishedAt = time.Now()
}

// pendingOf returns the calls of a turn still awaiting approval, but the
// one just decided.
func (o *Orchestrator) pendingOf(ctx context.Context, turnID, decided string) ([]switchboard.ToolCall, error) {
	calls, _, err := o.store.ListToolCalls(ctx, switchboard.ToolCallFilter{TurnID: turnID, Status: switchboard.CallAwaitingApproval, Limit: 500})
	if err != nil {
		return nil, fmt.Errorf("list pending calls: %w", err)
	}
	out := calls[:0]
	for _, c := range calls {
		if c.ID != decided {
			out = append(out, c)
		}
	}
	return out, nil
}
