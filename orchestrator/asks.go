package orchestrator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// Servers that ask (MCP elicitation): a server may ask the user a question
// in the middle of a tool call. Over a connection of the legacy era the
// server's request stays open on the connection that received it, so the
// call, and its turn, keep running on this instance:
//
//   - the question is stored (an Input, pending) and the request waiting
//     for the turn is answered at once with the turn awaiting_input and its
//     pending inputs, while the turn goes on in the background;
//   - the answer (Answer, on any instance) is stored exactly once and
//     reaches this instance in process or through the store (Postgres
//     NOTIFY, heard by InputAnswered; a look at the store every few seconds
//     catches a notification missed); the call goes on with it, and Answer
//     replies with the turn's next stop: its end, or its next question;
//   - a new message in the conversation cancels the turn and its questions;
//     an answer after the call ended (its connection died, it timed out, the
//     instance went away) is refused; the question's wait is bounded by the
//     server's elicitation_timeout.
//
// The turn's row stays running all along (its instance holds its lease);
// replies report awaiting_input while it has a pending input.

// defaultInputPoll is how often a call waiting for an answer looks at the
// store, for an answer whose notification it missed (Options.InputPoll).
const defaultInputPoll = 2 * time.Second

// stopPoll is how often Answer first looks at the store for the next stop
// of the answered turn (which may run on another instance); the pause
// doubles up to maxStopPoll.
const (
	stopPoll    = 50 * time.Millisecond
	maxStopPoll = time.Second
)

// InputEvents is what an Events that also streams inputs implements: a
// question of a server that the user is to answer.
type InputEvents interface {
	InputRequested(in switchboard.Input)
}

// InputStore keeps the questions of servers. store.Memory and
// store.Postgres implement it.
type InputStore interface {
	CreateInput(ctx context.Context, in *switchboard.Input) error
	GetInput(ctx context.Context, userID, id string) (switchboard.Input, error)
	AnswerInput(ctx context.Context, userID, id, action string, content json.RawMessage) (switchboard.AnsweredInput, error)
	TakeInput(ctx context.Context, id string) error
	AdoptTurn(ctx context.Context, userID, turnID string) (adopted bool, interrupted *switchboard.Interrupted, err error)
	CloseInput(ctx context.Context, id string, status switchboard.InputStatus, reason string) (switchboard.Input, error)
	ListInputs(ctx context.Context, userID, conversationID string, pendingOnly bool) ([]switchboard.Input, error)
}

// InputAnswer is a person's answer to a question of a server.
type InputAnswer struct {
	UserID         string
	ConversationID string
	InputID        string
	// Action is accept, decline or cancel; Content the form's content for
	// accept (form mode).
	Action  string
	Content json.RawMessage
}

// pauser tells the request that waits for a turn that the turn asked the
// user something (an input became pending).
type pauser struct {
	ch chan switchboard.Input // capacity 1
}

type pauserKey struct{}

func pauserOf(ctx context.Context) *pauser {
	p, _ := ctx.Value(pauserKey{}).(*pauser)
	return p
}

func (p *pauser) pause(in switchboard.Input) {
	select {
	case p.ch <- in:
	default:
	}
}

// detachedEvents passes a turn's events on until the request that streams
// them has its answer; then it drops them.
type detachedEvents struct {
	mu       sync.Mutex
	ev       Events
	detached bool
}

func (d *detachedEvents) do(f func(Events)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.detached {
		f(d.ev)
	}
}

func (d *detachedEvents) detach() {
	d.mu.Lock()
	d.detached = true
	d.mu.Unlock()
}

func (d *detachedEvents) TurnStarted(t switchboard.Turn) { d.do(func(e Events) { e.TurnStarted(t) }) }
func (d *detachedEvents) StepStarted(s int)              { d.do(func(e Events) { e.StepStarted(s) }) }
func (d *detachedEvents) TextDelta(s string)             { d.do(func(e Events) { e.TextDelta(s) }) }
func (d *detachedEvents) ToolStarted(c switchboard.ToolCall) {
	d.do(func(e Events) { e.ToolStarted(c) })
}
func (d *detachedEvents) ToolFinished(c switchboard.ToolCall) {
	d.do(func(e Events) { e.ToolFinished(c) })
}
func (d *detachedEvents) ApprovalRequested(c switchboard.ToolCall) {
	d.do(func(e Events) { e.ApprovalRequested(c) })
}
func (d *detachedEvents) StepFinished(s int) { d.do(func(e Events) { e.StepFinished(s) }) }
func (d *detachedEvents) ToolProgress(c switchboard.ToolCall, p switchboard.ToolProgress) {
	d.do(func(e Events) { e.ToolProgress(c, p) })
}

// AgentChanged passes a handoff on to an Events that shows agents.
func (d *detachedEvents) AgentChanged(from, to string) {
	d.do(func(e Events) {
		if ae, ok := e.(AgentEvents); ok {
			ae.AgentChanged(from, to)
		}
	})
}
func (d *detachedEvents) InputRequested(in switchboard.Input) {
	d.do(func(e Events) {
		if ie, ok := e.(InputEvents); ok {
			ie.InputRequested(in)
		}
	})
}

// detachable runs a turn (fn) so that it can outlive the request: it
// returns fn's outcome, or, as soon as the turn asks the user something, a
// Result awaiting_input while the turn goes on in the background (then
// ctx no longer cancels it: a cancel or a new message does).
func (o *Orchestrator) detachable(ctx context.Context, userID string, ev Events, fn func(ctx context.Context, ev Events) (*Result, error)) (*Result, error) {
	p := &pauser{ch: make(chan switchboard.Input, 1)}
	runCtx, cancel := context.WithCancelCause(context.WithValue(context.WithoutCancel(ctx), pauserKey{}, p))
	stop := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	if ctx.Err() != nil {
		// AfterFunc runs on a goroutine of its own: a request that ended
		// already must not start its turn before that goroutine cancels it.
		cancel(context.Cause(ctx))
	}
	var dev *detachedEvents
	if ev != nil {
		dev = &detachedEvents{ev: ev}
	}
	type outcome struct {
		res *Result
		err error
	}
	done := make(chan outcome, 1)
	o.background.Add(1)
	go func() {
		defer o.background.Done()
		defer cancel(nil)
		var e Events
		if dev != nil {
			e = dev
		}
		res, err := fn(runCtx, e)
		done <- outcome{res, err}
	}()
	select {
	case out := <-done:
		stop()
		return out.res, out.err
	case in := <-p.ch:
		if !stop() {
			// ctx ended as the question came: the turn is being cancelled.
			out := <-done
			return out.res, out.err
		}
		if dev != nil {
			dev.InputRequested(in)
			dev.detach()
		}
		res, err := o.storedResult(context.WithoutCancel(ctx), userID, in.TurnID)
		if err != nil {
			return nil, err
		}
		return res, nil
	}
}

// storedResult reads a turn's outcome so far from the store: its record,
// last assistant message, calls, and pending inputs (then it is reported
// awaiting_input).
func (o *Orchestrator) storedResult(ctx context.Context, userID, turnID string) (*Result, error) {
	rec, err := o.store.GetTurn(ctx, userID, turnID)
	if err != nil {
		return nil, fmt.Errorf("load turn %s: %w", turnID, err)
	}
	msgs, err := o.store.ListMessages(ctx, userID, rec.ConversationID)
	if err != nil {
		return nil, fmt.Errorf("load transcript: %w", err)
	}
	calls, _, err := o.store.ListToolCalls(ctx, switchboard.ToolCallFilter{TurnID: rec.ID, Limit: 500})
	if err != nil {
		return nil, fmt.Errorf("load tool calls: %w", err)
	}
	slices.Reverse(calls)
	res := &Result{Turn: rec, ToolCalls: calls}
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
	if res.Inputs, err = o.pendingInputs(ctx, userID, rec.ConversationID, rec.ID); err != nil {
		return nil, err
	}
	if len(res.Inputs) > 0 && rec.Status == switchboard.TurnRunning {
		res.Turn.Status = switchboard.TurnAwaitingInput
	}
	return res, nil
}

// pendingInputs returns the pending inputs of a turn.
func (o *Orchestrator) pendingInputs(ctx context.Context, userID, conversationID, turnID string) ([]switchboard.Input, error) {
	ins, err := o.store.ListInputs(ctx, userID, conversationID, true)
	if err != nil {
		return nil, fmt.Errorf("list inputs: %w", err)
	}
	out := ins[:0]
	for _, in := range ins {
		if in.TurnID == turnID {
			out = append(out, in)
		}
	}
	return out, nil
}

// InputAnswered wakes the call waiting for the answer to input id, if it
// waits here: for answers heard from other instances (store.ListenInputs).
func (o *Orchestrator) InputAnswered(id string) {
	o.mu.Lock()
	ch := o.waiting[id]
	o.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (o *Orchestrator) waitInput(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	o.mu.Lock()
	if o.waiting == nil {
		o.waiting = map[string]chan struct{}{}
	}
	o.waiting[id] = ch
	o.mu.Unlock()
	return ch, func() {
		o.mu.Lock()
		delete(o.waiting, id)
		o.mu.Unlock()
	}
}

// Answer answers a question a server asked the user (an input), and
// replies with the turn's next stop: its end, or the next question it
// asks. The answer is validated first: a form's content against its
// requested schema (nothing is sent when it does not fit).
//
// Errors: ErrNotFound (input_not_found) for an input that is absent or not
// in the user's conversation; ErrInvalid (invalid_input) for content that
// does not fit, (invalid_action) for an unknown action; ErrConflict
// (input_closed) for an input answered before, or closed (cancelled,
// expired, its call ended: then nothing waits for the answer any more).
func (o *Orchestrator) Answer(ctx context.Context, a InputAnswer) (*Result, error) {
	in, err := o.store.GetInput(ctx, a.UserID, a.InputID)
	if err == nil && a.ConversationID != "" {
		conv, cerr := o.store.GetConversation(ctx, a.UserID, a.ConversationID)
		if cerr != nil || conv.ID != in.ConversationID {
			err = switchboard.Errorf(switchboard.ErrNotFound, switchboard.CodeInputNotFound, "input %q not found", a.InputID)
		}
	}
	if err != nil {
		return nil, err
	}
	switch a.Action {
	case switchboard.ActionAccept:
		if in.Mode == switchboard.InputForm {
			if err := tools.CheckInput(in.RequestedSchema, a.Content); err != nil {
				return nil, switchboard.Errorf(switchboard.ErrInvalid, switchboard.CodeInputInvalid, "%s", err.Error())
			}
		} else {
			a.Content = nil
		}
	case switchboard.ActionDecline, switchboard.ActionCancel:
		a.Content = nil
	default:
		return nil, switchboard.Errorf(switchboard.ErrInvalid, "invalid_action", "action %q: want accept, decline or cancel", a.Action)
	}
	ans, err := o.store.AnswerInput(ctx, a.UserID, in.ID, a.Action, a.Content)
	if ans.Interrupted != nil {
		// Its instance went away: the turn failed, or awaits input (and
		// this answer continues it).
		o.interrupted(ctx, *ans.Interrupted, slog.String("failed_by", "answer"))
	}
	if err != nil {
		return nil, err
	}
	if ans.Resumed {
		return o.detachable(ctx, a.UserID, nil, func(ctx context.Context, ev Events) (*Result, error) {
			return o.resumeTurn(ctx, a.UserID, in.TurnID, ev)
		})
	}
	o.InputAnswered(in.ID)
	return o.nextStop(ctx, a.UserID, in)
}

// nextStop waits until the turn of the answered input ends or asks
// something else, and returns it as it is then. It looks at the turn's row
// and its pending inputs only (the whole result once it stopped), first
// every stopPoll, then less and less often up to maxStopPoll: a call that
// runs for minutes after its answer costs a few reads a second, not dozens.
//
// Every adoptEvery, and whenever the turn is stored awaiting input, it
// looks whether the turn's instance went away with the answer not yet
// sent on (a modern server's question): then it takes the turn over and
// continues it here (adopt).
func (o *Orchestrator) nextStop(ctx context.Context, userID string, answered switchboard.Input) (*Result, error) {
	wait := stopPoll
	timer := time.NewTimer(0)
	defer timer.Stop()
	lastAdopt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
		rec, err := o.store.GetTurn(ctx, userID, answered.TurnID)
		if err != nil {
			return nil, fmt.Errorf("load turn %s: %w", answered.TurnID, err)
		}
		// A legacy server's turn whose instance went away is failed by
		// the look (the request that asked is gone with it); a modern
		// server's is taken over.
		if rec.Status == switchboard.TurnAwaitingInput || rec.Status == switchboard.TurnRunning && time.Since(lastAdopt) >= adoptEvery {
			lastAdopt = time.Now()
			if res, ok, err := o.adopt(ctx, userID, answered.TurnID); ok {
				return res, err
			}
		}
		stopped := rec.Status != switchboard.TurnRunning
		if rec.Status == switchboard.TurnAwaitingInput {
			// Stored so by an instance that started again, which takes it
			// over itself if its answer waits (resumeAnswered): a stop
			// only with a question pending.
			pending, err := o.pendingInputs(ctx, userID, rec.ConversationID, rec.ID)
			if err != nil {
				return nil, err
			}
			stopped = len(pending) > 0
		}
		if !stopped {
			pending, err := o.pendingInputs(ctx, userID, rec.ConversationID, rec.ID)
			if err != nil {
				return nil, err
			}
			stopped = len(pending) > 0
		}
		if stopped {
			res, err := o.storedResult(ctx, userID, answered.TurnID)
			if err != nil {
				return nil, err
			}
			if res.Turn.Status != switchboard.TurnRunning {
				return res, turnError(res.Turn)
			}
		}
		timer.Reset(wait)
		wait = min(2*wait, maxStopPoll)
	}
}

// turnError is the error of a turn that ended without an answer, as Run
// returns it.
func turnError(t switchboard.Turn) error {
	switch t.Status {
	case switchboard.TurnCancelled:
		return switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeTurnCancelled, "the turn was cancelled: %s", t.Error)
	case switchboard.TurnFailed:
		return switchboard.Errorf(switchboard.ErrUpstream, "turn_failed", "the turn failed: %s", t.Error)
	}
	return nil
}

// cancelAwaitingInput cancels the turn of the conversation while it waits
// for the user's answer to a question of a server: a new message goes on
// without answering.
func (o *Orchestrator) cancelAwaitingInput(ctx context.Context, userID, conversationID string) {
	ins, err := o.store.ListInputs(ctx, userID, conversationID, true)
	if err != nil || len(ins) == 0 {
		return
	}
	if _, err := o.Cancel(ctx, userID, conversationID); err != nil && !switchboard.IsCode(err, switchboard.CodeNoRunningTurn) {
		o.logger.Warn("cancel a turn awaiting input for a new message", "conversation_id", conversationID, "err", err)
	}
}

// callAsker answers what a server asks during one call of a turn.
type callAsker struct {
	t    *turn
	call switchboard.ToolCall
	p    *pauser // nil when no request waits for the turn

	mu sync.Mutex
	// completed are the url-mode elicitations the server reported
	// complete, by id: a notice may come before the question is stored.
	completed map[string]bool
	// kept are the questions of the round a resumed call goes on from,
	// as stored (see resume.go); each is given once.
	kept []switchboard.Input
}

// Elicit stores the question, tells the request waiting for the turn, and
// waits for the answer.
func (a *callAsker) Elicit(ctx context.Context, server string, e tools.Elicitation) (tools.ElicitResult, error) {
	return a.ask(ctx, switchboard.Input{Server: server, Mode: e.Mode, Message: e.Message, RequestedSchema: e.RequestedSchema,
		URL: e.URL, ElicitationID: e.ElicitationID, RequestKey: e.RequestKey, RequestState: e.RequestState, InputRequests: e.InputRequests})
}

// ask stores in, a question of the call's server to the user, tells the
// request waiting for the turn, and waits for the answer; one that does
// not come (the turn cancelled, the wait's bound, the connection ended)
// is cancel. A question of a call resumed (a modern server's, asked before
// the turn's instance stopped) is not stored again: its stored answer is
// given, or waited for.
func (a *callAsker) ask(ctx context.Context, in switchboard.Input) (tools.ElicitResult, error) {
	o := a.t.o
	in.UserID, in.ConversationID, in.TurnID, in.ToolCallID = a.call.UserID, a.call.ConversationID, a.call.TurnID, a.call.ID
	if kept, ok := a.keptInput(in.RequestKey, in.RequestState); ok {
		in = kept
		if in.Status == switchboard.InputAnswered && !in.TakenAt.IsZero() {
			// Taken by the instance that stopped, with another question
			// of its round still open: the round was never sent, so the
			// answer goes with it now.
			return tools.ElicitResult{Action: in.Action, Content: in.Content}, nil
		}
	} else if err := o.store.CreateInput(ctx, &in); err != nil {
		return tools.ElicitResult{}, fmt.Errorf("the question could not be stored: %w", err)
	}
	switch in.Status {
	case switchboard.InputAnswered:
		return a.answer(ctx, in)
	case switchboard.InputPending:
	default:
		return tools.ElicitResult{Action: switchboard.ActionCancel}, nil
	}
	woken, forget := o.waitInput(in.ID)
	defer forget()
	if in.Mode == switchboard.InputURL && a.isCompleted(in.ElicitationID) {
		if _, err := o.store.CloseInput(context.WithoutCancel(ctx), in.ID, switchboard.InputCompleted, "the server reported it complete"); err == nil {
			return tools.ElicitResult{Action: switchboard.ActionAccept}, nil
		}
	}
	o.logger.Info("mcp server asks the user", "user_id", in.UserID, "conversation_id", in.ConversationID, "turn_id", in.TurnID,
		"call_id", in.ToolCallID, "server", in.Server, "input_id", in.ID, "mode", in.Mode)
	if a.p != nil {
		a.p.pause(in)
	}
	poll := time.NewTicker(cmp.Or(o.opts.InputPoll, defaultInputPoll))
	defer poll.Stop()
	for {
		select {
		case <-woken:
		case <-poll.C:
		case <-ctx.Done():
			status, reason := switchboard.InputCancelled, "the call ended"
			cause := context.Cause(ctx)
			switch {
			case errors.Is(cause, context.DeadlineExceeded):
				status, reason = switchboard.InputExpired, "no answer within the elicitation timeout"
			case errors.Is(cause, switchboard.ErrUnavailable):
				status, reason = switchboard.InputFailed, "the server's connection ended"
			case errors.Is(cause, context.Canceled):
				reason = "the turn was cancelled"
			}
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			cur, err := o.store.CloseInput(closeCtx, in.ID, status, reason)
			cancel()
			if err == nil && cur.Status == switchboard.InputAnswered {
				return a.answer(context.WithoutCancel(ctx), cur)
			}
			return tools.ElicitResult{Action: switchboard.ActionCancel}, nil
		}
		cur, err := o.store.GetInput(ctx, in.UserID, in.ID)
		if err != nil {
			continue
		}
		switch cur.Status {
		case switchboard.InputAnswered:
			return a.answer(ctx, cur)
		case switchboard.InputCompleted:
			return tools.ElicitResult{Action: switchboard.ActionAccept}, nil
		case switchboard.InputPending:
			continue
		}
		return tools.ElicitResult{Action: switchboard.ActionCancel}, nil
	}
}

// answer gives the call the answer of in. A modern server's answer is
// taken first (TakeInput), so that it is sent once: after a restart the
// call is resumed with the answers not taken, never with one taken (the
// server may have acted on it). One that cannot be taken fails the call's
// question.
func (a *callAsker) answer(ctx context.Context, in switchboard.Input) (tools.ElicitResult, error) {
	if in.RequestKey != "" {
		if err := a.t.o.store.TakeInput(ctx, in.ID); err != nil {
			return tools.ElicitResult{}, fmt.Errorf("the answer could not be taken to send it on: %w", err)
		}
	}
	return tools.ElicitResult{Action: in.Action, Content: in.Content}, nil
}

// keptInput returns the stored question of a call resumed that has the
// key and state given (a modern server's, asked before), once.
func (a *callAsker) keptInput(key, state string) (switchboard.Input, bool) {
	if key == "" {
		return switchboard.Input{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, in := range a.kept {
		if in.RequestKey == key && in.RequestState == state {
			a.kept = slices.Delete(a.kept, i, i+1)
			return in, true
		}
	}
	return switchboard.Input{}, false
}

func (a *callAsker) isCompleted(elicitationID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return elicitationID != "" && a.completed[elicitationID]
}

// ElicitationComplete closes the url-mode input of the call's that the
// server reported complete: the call goes on as if the user had accepted.
func (a *callAsker) ElicitationComplete(server, elicitationID string) {
	o := a.t.o
	a.mu.Lock()
	if a.completed == nil {
		a.completed = map[string]bool{}
	}
	a.completed[elicitationID] = true
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ins, err := o.store.ListInputs(ctx, a.call.UserID, a.call.ConversationID, true)
	if err != nil {
		return
	}
	for _, in := range ins {
		if in.ToolCallID == a.call.ID && in.Server == server && in.Mode == switchboard.InputURL && in.ElicitationID == elicitationID {
			if _, err := o.store.CloseInput(ctx, in.ID, switchboard.InputCompleted, "the server reported it complete"); err == nil {
				o.InputAnswered(in.ID)
			}
		}
	}
}
