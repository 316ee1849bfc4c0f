package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// A modern server (MCP 2026-07-28) asks by answering a call with
// input_required, and holds nothing open meanwhile: the call can be made
// again, from any instance, with the answers (inputResponses) and the
// requestState it got. So a turn whose instance stopped (a crash, a kill)
// while such a question waited is not lost:
//
//   - whoever finds it orphaned (the instance started again, a new turn, a
//     cancel, an answer) stores it awaiting_input, its asking calls left
//     running and its other calls failed as interrupted (the store's
//     failOrphaned);
//   - the answer, on any instance, takes the turn over (AnswerInput says
//     Resumed) and resume continues it here: each asking call is made
//     again from the round it stopped at, with the stored answers, then
//     the loop goes on as a decision's does;
//   - an answer given while the dead instance's lease still ran waits in
//     nextStop, which takes the turn over once the lease ran out
//     (AdoptTurn); the instance that started again does the same at once
//     for turns whose answers came before it stopped (Recover);
//   - an answer is taken (TakeInput) before it is sent: one taken is never
//     sent again, so a call interrupted after sending it fails as
//     interrupted rather than run twice.

// adoptEvery is how often an answer that waits for its turn's next stop
// looks whether the turn's instance went away (AdoptTurn).
const adoptEvery = 5 * time.Second

// resumed is where an asking call of a resumed turn goes on from.
type resumed struct {
	from tools.Resume
	// kept are the questions of that round as stored: each is answered
	// from the store (or waited for), not asked again.
	kept []switchboard.Input
}

// resumeTurn continues the user's turn turnID, which this instance has just
// taken over from an instance that stopped (the store moved it from
// awaiting_input to running under this instance's lease): its asking calls
// are made again from where they stopped, then the loop goes on. Every way
// out ends the turn, so that it never stays running.
func (o *Orchestrator) resumeTurn(ctx context.Context, userID, turnID string, ev Events) (res *Result, err error) {
	ctx, span := o.opts.Tracer.Start(ctx, "turn.resume", trace.WithAttributes(attribute.String("user.id", userID),
		attribute.String("turn.id", turnID)))
	defer func() { endSpan(span, err) }()
	rec, err := o.store.GetTurn(ctx, userID, turnID)
	if err != nil {
		return nil, fmt.Errorf("load turn %s: %w", turnID, err)
	}
	// No other turn of the conversation runs: the store let this one run.
	unlock, err := o.lock(ctx, rec.ConversationID, time.Now().Add(o.opts.TurnWait))
	if err != nil {
		return nil, err
	}
	defer unlock()

	t := o.newTurn(ev, "")
	t.rec = rec
	t.agent = o.agents.named(rec.Agent)
	t.caller = tools.Caller{UserID: userID, ConversationID: rec.ConversationID}
	ctx, done := o.track(ctx, t.rec)
	defer done()
	o.logger.Info("turn resumed: an answer continues what a modern server asked before its instance stopped",
		"user_id", userID, "conversation_id", rec.ConversationID, "turn_id", rec.ID)

	batch, msgs, err := o.asking(ctx, t)
	if err != nil {
		for i := range batch {
			c := &batch[i]
			c.Status, c.ErrorClass, c.FinishedAt = switchboard.CallCancelled, switchboard.ErrorClassCancelled, time.Now()
			c.Error = "not run: the turn could not resume"
			t.finished = append(t.finished, *c)
		}
		return t.end(ctx, switchboard.TurnFailed, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err)), err)
	}
	if len(msgs) > o.opts.HistoryLimit {
		msgs = msgs[len(msgs)-o.opts.HistoryLimit:]
	}
	t.history = msgs
	if t.ev != nil {
		t.ev.TurnStarted(t.rec)
	}
	s := time.Now()
	t.execute(ctx, batch)
	t.timing.Tools += time.Since(s)
	for i := range batch {
		t.addResult(&batch[i])
	}
	t.calls = append(t.calls, batch...)
	// The step's other calls failed as interrupted: their results are
	// stand-ins (see answered).
	t.setHistory(t.history)
	if ctx.Err() != nil {
		return t.end(ctx, switchboard.TurnCancelled, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(ctx.Err())), ctx.Err())
	}
	pending, err := o.pendingOf(ctx, rec.ID, "")
	if err != nil {
		return t.end(ctx, switchboard.TurnFailed, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err)), err)
	}
	if len(pending) > 0 {
		return t.awaitAll(ctx, pending)
	}
	return t.loop(ctx, rec.Steps+1)
}

// asking loads what resumeTurn goes on with: the turn's asking calls (its
// running ones, each with where it stopped, set in t.resumes) and the
// conversation's transcript. The calls are returned with an error too,
// for the caller to close.
func (o *Orchestrator) asking(ctx context.Context, t *turn) ([]switchboard.ToolCall, []switchboard.Message, error) {
	rec := t.rec
	rows, _, err := o.store.ListToolCalls(ctx, switchboard.ToolCallFilter{TurnID: rec.ID, Status: switchboard.CallRunning, Limit: 500})
	if err != nil {
		return nil, nil, fmt.Errorf("list the turn's asking calls: %w", err)
	}
	slices.Reverse(rows)
	batch := make([]switchboard.ToolCall, 0, len(rows))
	for _, r := range rows {
		// The listing leaves out arguments: the call is made again with
		// them.
		c, err := o.store.GetToolCall(ctx, rec.UserID, r.ID)
		if err != nil {
			return batch, nil, fmt.Errorf("load asking call %s: %w", r.ID, err)
		}
		batch = append(batch, c)
	}
	inputs, err := o.store.ListInputs(ctx, rec.UserID, rec.ConversationID, false)
	if err != nil {
		return batch, nil, fmt.Errorf("list the turn's questions: %w", err)
	}
	t.resumes = make(map[string]resumed, len(batch))
	for _, c := range batch {
		r, err := resumeOf(c, inputs)
		if err != nil {
			return batch, nil, err
		}
		t.resumes[c.ID] = r
	}
	msgs, err := o.store.ListMessages(ctx, rec.UserID, rec.ConversationID)
	if err != nil {
		return batch, nil, fmt.Errorf("load transcript: %w", err)
	}
	return batch, msgs, nil
}

// resumeOf finds where asking call c stopped among the conversation's
// questions: the round of its newest modern question, with that round's
// questions as stored.
func resumeOf(c switchboard.ToolCall, inputs []switchboard.Input) (resumed, error) {
	var mine []switchboard.Input
	for _, in := range inputs {
		if in.ToolCallID == c.ID && in.RequestKey != "" {
			mine = append(mine, in)
		}
	}
	if len(mine) == 0 {
		return resumed{}, fmt.Errorf("call %s of %s has no stored question to go on from", c.ID, c.Server)
	}
	last := mine[len(mine)-1]
	r := resumed{from: tools.Resume{RequestState: last.RequestState}}
	for _, in := range mine {
		if in.RequestState == last.RequestState {
			r.kept = append(r.kept, in)
		}
	}
	if len(last.InputRequests) > 0 {
		if err := json.Unmarshal(last.InputRequests, &r.from.InputRequests); err != nil {
			return resumed{}, fmt.Errorf("the stored round of call %s: %w", c.ID, err)
		}
		return r, nil
	}
	// Stored without its round: the questions stored are the round.
	r.from.InputRequests = map[string]json.RawMessage{}
	for _, in := range r.kept {
		params := map[string]any{"mode": in.Mode, "message": in.Message}
		if in.Mode == switchboard.InputURL {
			params["url"], params["elicitationId"] = in.URL, in.ElicitationID
		} else {
			params["requestedSchema"] = in.RequestedSchema
		}
		req, _ := json.Marshal(map[string]any{"method": "elicitation/create", "params": params})
		r.from.InputRequests[in.RequestKey] = req
	}
	return r, nil
}

// adopt takes over the user's turn turnID if its instance went away while
// one of its answers waited to be sent (AdoptTurn), and continues it; it
// reports whether it did.
func (o *Orchestrator) adopt(ctx context.Context, userID, turnID string) (*Result, bool, error) {
	adopted, interrupted, err := o.store.AdoptTurn(ctx, userID, turnID)
	if interrupted != nil {
		o.interrupted(ctx, *interrupted, slog.String("failed_by", "answer"))
	}
	if err != nil || !adopted {
		return nil, false, nil
	}
	res, err := o.detachable(ctx, userID, nil, func(ctx context.Context, ev Events) (*Result, error) {
		return o.resumeTurn(ctx, userID, turnID, ev)
	})
	return res, true, err
}

// resumeAnswered continues, in the background, the turns the store stored
// awaiting_input as this instance started (Recover) whose answers came
// before the instance stopped: nobody is left to answer them again.
func (o *Orchestrator) resumeAnswered(ctx context.Context, turns []switchboard.Interrupted) {
	for _, in := range turns {
		if in.Turn.Status != switchboard.TurnAwaitingInput {
			continue
		}
		o.background.Add(1)
		go func() {
			defer o.background.Done()
			if _, ok, err := o.adopt(context.WithoutCancel(ctx), in.Turn.UserID, in.Turn.ID); ok && err != nil {
				o.logger.Warn("a turn resumed after the restart ended in error", "turn_id", in.Turn.ID, "err", err)
			}
		}()
	}
}
