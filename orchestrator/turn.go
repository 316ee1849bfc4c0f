package orchestrator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// turn is the state of one running turn.
type turn struct {
	o       *Orchestrator
	catalog *tools.Catalog
	ev      Events

	rec      switchboard.Turn
	caller   tools.Caller
	history  []switchboard.Message
	calls    []switchboard.ToolCall // calls run or decided by this request, in order
	unsaved  []switchboard.Message  // messages not yet committed
	finished []switchboard.ToolCall // ledger rows not yet committed
	seen     map[string]int         // identical calls asked for, by repeatKey
	// paging: a result of this conversation was truncated, so the model
	// is offered read_tool_result.
	paging bool
	// images are the bytes of tool images read from the store for the
	// model, by call id and index (nil: unreadable).
	images map[string][]byte

	wallStart time.Time
	timing    switchboard.TurnTiming
	requestID string // for logs

	// agent is the agent the turn runs as now (see agents.go); roles are
	// the user's, for the handoffs it may be offered.
	agent   *Agent
	roles   []string
	offered map[*Agent]*agentTools
	// conversationAgent, when set, becomes the conversation's current
	// agent with the next save (a handoff).
	conversationAgent string
	// userText is the user's message, for input guardrails; onText, when
	// set, takes the streamed text instead of ev (see guardedCall).
	userText string
	onText   func(string)
	// subPending are the calls awaiting approval inside each call of an
	// agent used as a tool that paused, by its ledger id.
	subPending map[string][]switchboard.ToolCall
	// resumes are where the asking calls of a resumed turn go on from, by
	// ledger id (see resume.go); set before they run, read-only then.
	resumes map[string]resumed
}

// begin stores the turn's start in the conversation at names. Another turn
// of the conversation running on another instance (this one's are
// serialised before) is waited for until waitUntil: then it answers
// turn_running.
func (t *turn) begin(ctx context.Context, req Request, at target, waitUntil time.Time) error {
	start := &switchboard.TurnStart{
		Conversation: switchboard.Conversation{ID: at.conversationID, ExternalID: at.externalID},
		Turn: switchboard.Turn{UserID: req.UserID, Status: switchboard.TurnRunning, Agent: t.agent.Name,
			IdempotencyKey: req.IdempotencyKey, RequestHash: req.RequestHash, StartedAt: t.wallStart},
		UserMessage:  switchboard.Message{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: req.Content},
		HistoryLimit: t.o.opts.HistoryLimit,
		Regenerate:   at.regenerate,
		Edit:         at.edit,
	}
	s := time.Now()
	beginTurn := func() ([]switchboard.Message, error) {
		start.Regenerate = at.regenerate // each try looks again: a twin request may have stored it meanwhile
		history, err := t.o.store.BeginTurn(ctx, start)
		if switchboard.IsCode(err, switchboard.CodeNothingToRegenerate) {
			// The client holds a user message we never stored (its send
			// was refused, or failed before the turn began) and retries it
			// the AI SDK's way, with regenerate(): answer it as the new
			// message it is.
			start.Regenerate = 0
			history, err = t.o.store.BeginTurn(ctx, start)
		}
		return history, err
	}
	history, err := beginTurn()
	asked := false
	for backoff := 5 * time.Millisecond; switchboard.IsCode(err, switchboard.CodeTurnRunning); backoff = min(2*backoff, 250*time.Millisecond) {
		if !asked && at.conversationID != "" {
			// Another instance's turn runs: if it waits for an answer
			// to a server's question, the new message cancels it.
			asked = true
			t.o.cancelAwaitingInput(ctx, req.UserID, at.conversationID)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if left := time.Until(waitUntil); left <= 0 {
			return t.o.turnRunning()
		} else if wait > left {
			wait = left
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		history, err = beginTurn()
	}
	t.timing.Store += time.Since(s)
	if notFound(err) {
		return errConversationNotFound(at.conversationID)
	}
	if errors.Is(err, switchboard.ErrUnavailable) && start.Turn.ID != "" {
		// The store may have committed the start before the connection
		// broke: the client hears 503, so make sure the turn does not stay
		// running once the store is back.
		t.o.reconcile(start.Turn)
	}
	if err != nil {
		return fmt.Errorf("begin turn: %w", err)
	}
	t.rec = start.Turn
	t.userText = req.Content
	t.caller = tools.Caller{UserID: req.UserID, ConversationID: start.Conversation.ID}
	t.setHistory(history)
	if start.Interrupted != nil {
		// The conversation's last turn, whose instance died under it.
		t.o.interrupted(ctx, *start.Interrupted, slog.String("failed_by_turn", t.rec.ID))
	}
	for _, c := range start.Cancelled {
		// Calls that awaited an approval: the user went on without one.
		t.o.opts.Observer.ToolCallEnded(c)
		t.o.logger.LogAttrs(ctx, slog.LevelInfo, "tool call",
			slog.String("request_id", t.requestID), slog.String("user_id", c.UserID), slog.String("conversation_id", c.ConversationID),
			slog.String("turn_id", c.TurnID), slog.String("call_id", c.ID), slog.String("server", c.Server),
			slog.String("tool", c.Tool), slog.String("status", string(c.Status)), slog.String("error_class", c.ErrorClass),
			slog.String("cancelled_by_turn", t.rec.ID))
	}
	return nil
}

// setHistory keeps the replayable window of h.
func (t *turn) setHistory(h []switchboard.Message) {
	// Room for a step's request and results, so that the turn appends to
	// the window without copying it again.
	t.history = slices.Grow(replayable(h, t.o.opts.HistoryTokens), 8)
	for _, m := range t.history {
		if m.Role == switchboard.RoleTool && strings.Contains(m.Content, truncationMarker) {
			t.paging = true
			break
		}
	}
}

// loop calls the model and runs tools from step first until the turn ends.
func (t *turn) loop(ctx context.Context, first int) (*Result, error) {
	for step := first; ; step++ {
		if maxSteps := cmp.Or(t.agent.MaxSteps, t.o.opts.MaxSteps); step > maxSteps {
			msg := fmt.Sprintf("I stopped after %d model calls without reaching an answer (the step limit of this service).", maxSteps)
			return t.end(ctx, switchboard.TurnMaxSteps, t.assistantText(msg), nil)
		}
		if t.ev != nil {
			t.ev.StepStarted(step)
		}
		var (
			reply switchboard.ModelReply
			err   error
		)
		if step == 1 && len(t.agent.InputGuardrails) > 0 {
			var tripped *guardrailRun
			if reply, err, tripped = t.guardedCall(ctx); tripped != nil {
				return t.tripped(ctx, "input", tripped)
			}
		} else {
			reply, err = t.callModel(ctx)
		}
		if err != nil {
			status := switchboard.TurnFailed
			if ctx.Err() != nil {
				status = switchboard.TurnCancelled
			}
			note := t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err))
			return t.end(ctx, status, note, err)
		}
		if len(reply.ToolCalls) == 0 {
			return t.answer(ctx, step, reply)
		}
		out, err := t.runTools(ctx, step, reply)
		if err != nil {
			status := switchboard.TurnCancelled
			if ctx.Err() == nil {
				status = switchboard.TurnFailed
			}
			return t.end(ctx, status, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err)), err)
		}
		if t.ev != nil {
			t.ev.StepFinished(step)
		}
		if out.handoff != nil {
			if res, err, done := t.handOff(ctx, out.handoff); done {
				return res, err
			}
		}
		switch {
		case len(out.pending) > 0:
			return t.await(ctx, out.pending)
		case out.repeated != "":
			t.rec.Error = fmt.Sprintf("the model asked for the same call of %s %d times", out.repeated, repeatLimit)
			msg := fmt.Sprintf("I stopped: I asked for the same call of %s %d times in this turn without getting further.", out.repeated, repeatLimit)
			return t.end(ctx, switchboard.TurnMaxSteps, t.assistantText(msg), nil)
		}
	}
}

func (t *turn) callModel(ctx context.Context) (switchboard.ModelReply, error) {
	msgs := t.withImages(ctx, t.history)
	if p := t.agent.instructions(t.o.opts.SystemPrompt, t.rec.UserID, time.Now()); p != "" {
		msgs = append([]switchboard.Message{{Role: switchboard.RoleSystem, Type: switchboard.MessageText, Content: p}}, msgs...)
	}
	defs := t.toolsOf(t.agent).defs
	if t.paging {
		defs = append(defs[:len(defs):len(defs)], readToolResultDef)
	}
	if def, ok := t.catalog.ReadResourceDefinition(); ok {
		defs = append(defs[:len(defs):len(defs)], def)
	}
	var onText func(string)
	switch {
	case t.onText != nil:
		onText = t.onText
	case t.ev != nil:
		onText = t.ev.TextDelta
	}
	var schema *switchboard.OutputSchema
	if t.o.agents.schemas[t.agent] != nil {
		schema = &switchboard.OutputSchema{Name: t.agent.Name + "_output", Schema: t.agent.OutputSchema}
	}
	ctx, span := t.o.opts.Tracer.Start(ctx, "model.call", trace.WithAttributes(attribute.Int("step", t.rec.Steps+1)))
	s := time.Now()
	model := t.o.modelOf(t.agent)
	reply, err := model.Complete(ctx, switchboard.ModelRequest{Messages: msgs, Tools: defs, Model: t.agent.ModelName,
		Settings: t.agent.Settings, OutputSchema: schema}, onText)
	t.timing.LLM += time.Since(s)
	t.rec.Steps++
	t.rec.PromptTokens += reply.PromptTokens
	t.rec.CompletionTokens += reply.CompletionTokens
	t.o.opts.Observer.ModelUsage(reply.PromptTokens, reply.CompletionTokens)
	span.SetAttributes(attribute.Int("tokens.prompt", reply.PromptTokens), attribute.Int("tokens.completion", reply.CompletionTokens),
		attribute.Int("tool_calls", len(reply.ToolCalls)))
	endSpan(span, err)
	return reply, err
}

// stepOutcome says why a step that ran tools stops the loop, if it does.
type stepOutcome struct {
	pending  []switchboard.ToolCall // calls awaiting approval
	repeated string                 // the tool asked for too often
	handoff  *Agent                 // the agent the step handed the turn to
}

// runTools records the step's calls as started (one commit, together with
// what the previous step left unsaved), runs those that may run, and
// appends the model's request and the results to the history. It returns
// ctx's error when the turn was cancelled while tools ran.
func (t *turn) runTools(ctx context.Context, step int, reply switchboard.ModelReply) (stepOutcome, error) {
	var out stepOutcome
	asked := t.message(switchboard.RoleAssistant, switchboard.MessageToolCall, reply.Content)
	asked.ToolCalls = reply.ToolCalls
	now := time.Now()
	batch := make([]switchboard.ToolCall, len(reply.ToolCalls))
	for i, rc := range reply.ToolCalls {
		c := t.prepare(rc)
		c.ID = switchboard.NewID()
		c.TurnID = t.rec.ID
		c.Step = step
		c.Agent = t.agent.Name
		c.StartedAt = now
		if c.Status == switchboard.CallRunning {
			key := repeatKey(c)
			t.seen[key]++
			switch {
			case t.seen[key] >= repeatLimit:
				c.Status = switchboard.CallFailed
				c.ErrorClass = switchboard.ErrorClassInvalid
				c.Error = fmt.Sprintf("refused: the same call was asked for %d times in this turn", repeatLimit)
				c.Result = "error: " + c.Error
				out.repeated = c.ExposedName
			case t.needsApproval(c):
				c.Status = switchboard.CallAwaitingApproval
			}
		}
		if c.Finished() {
			c.FinishedAt = now
		}
		batch[i] = c
	}
	out.handoff = t.stepHandoff(batch)
	t.unsaved = append(t.unsaved, asked)
	if err := t.save(ctx, append(t.finished, batch...)); err != nil {
		return out, err
	}
	t.finished = t.finished[:0]

	s := time.Now()
	t.execute(ctx, batch)
	t.timing.Tools += time.Since(s)

	t.history = append(t.history, asked)
	for i := range batch {
		c := &batch[i]
		if inner, ok := t.subPending[c.ID]; ok && c.Status == switchboard.CallAwaitingApproval {
			// An agent used as a tool paused: its calls are the ones to decide.
			t.finished = append(t.finished, *c)
			out.pending = append(out.pending, inner...)
			for _, ic := range inner {
				if t.ev != nil {
					t.ev.ApprovalRequested(ic)
				}
			}
			continue
		}
		if c.Status == switchboard.CallAwaitingApproval {
			out.pending = append(out.pending, *c)
			if t.ev != nil {
				t.ev.ApprovalRequested(*c)
			}
			continue
		}
		t.addResult(c)
	}
	t.calls = append(t.calls, batch...)
	return out, ctx.Err()
}

// prepare turns a requested call into a ledger row, for a catalog tool or
// a built-in one (read_tool_result, read_resource) the turn offers.
func (t *turn) prepare(rc switchboard.RequestedCall) switchboard.ToolCall {
	offered := t.toolsOf(t.agent)
	if target := offered.handoffs[rc.Name]; target != nil {
		return t.prepareHandoff(rc, target)
	}
	if offered.agentTools[rc.Name] != nil {
		return t.prepareAgentTool(rc)
	}
	if !offered.offers(rc.Name) {
		// A tool of the catalog that this agent is not offered: as
		// unknown to it as any other name.
		c := t.catalog.Prepare(switchboard.RequestedCall{ID: rc.ID, Name: "", Arguments: rc.Arguments}, t.caller)
		c.ExposedName, c.Tool = rc.Name, rc.Name
		c.Error = fmt.Sprintf("unknown tool %q", rc.Name)
		c.Result = "error: " + c.Error
		return c
	}
	_, resources := t.catalog.ReadResourceDefinition()
	if rc.Name == readToolResultName && t.paging || rc.Name == tools.ReadResourceName && resources {
		args := strings.TrimSpace(rc.Arguments)
		if args == "" {
			args = "{}"
		}
		c := switchboard.ToolCall{CallID: rc.ID, UserID: t.caller.UserID, ConversationID: t.caller.ConversationID,
			Server: builtinServer, Tool: rc.Name, ExposedName: rc.Name, Status: switchboard.CallRunning}
		if json.Valid([]byte(args)) {
			c.Arguments = json.RawMessage(args)
		} else {
			c.Arguments, _ = json.Marshal(rc.Arguments)
			c.Status, c.ErrorClass, c.Error = switchboard.CallFailed, switchboard.ErrorClassInvalid, "arguments are not valid JSON"
			c.Result = "error: " + c.Error
		}
		return c
	}
	return t.catalog.Prepare(rc, t.caller)
}

// needsApproval reports whether c waits for a person's approval, by the
// policy of the turn's catalog.
func (t *turn) needsApproval(c switchboard.ToolCall) bool {
	if c.Server == builtinServer {
		return false
	}
	e, ok := t.catalog.Lookup(c.ExposedName)
	return ok && (t.agent.RequireApproval || e.RequiresApproval())
}

// execute runs the calls of batch that are running: all at once (bounded)
// when every one is read-only or on a server that allows it, else in order.
// The calls run on goroutines of their own; the events (ev) are all told
// from this one, their progress reports too.
func (t *turn) execute(ctx context.Context, batch []switchboard.ToolCall) {
	var run []int
	parallel := true
	for i, c := range batch {
		if c.Status != switchboard.CallRunning {
			continue
		}
		run = append(run, i)
		if !t.mayRunConcurrently(c) {
			parallel = false
		}
	}
	if len(run) == 0 {
		return
	}
	var reports chan callProgress
	// running holds, for the events, each running call as it started: the
	// call's own goroutine writes batch[i] until it ends.
	running := map[int]switchboard.ToolCall{}
	if t.ev != nil {
		reports = make(chan callProgress, progressBacklog)
	}
	start := func(i int, sem chan struct{}, done chan<- int) {
		cctx := ctx
		if reports != nil {
			running[i] = batch[i]
			cctx = tools.WithProgress(ctx, func(p switchboard.ToolProgress) {
				select {
				case reports <- callProgress{i, p}:
				default: // the reader is behind: this report is dropped
				}
			})
		}
		go func() {
			if sem != nil {
				sem <- struct{}{}
				defer func() { <-sem }()
			}
			t.runCall(cctx, &batch[i])
			done <- i
		}()
	}
	// wait waits for n calls to end, telling ev of each end and of the
	// progress reported before it.
	wait := func(done <-chan int, n int) {
		for n > 0 {
			select {
			case i := <-done:
				n--
				t.drainProgress(reports, running)
				delete(running, i)
				if t.ev != nil {
					t.ev.ToolFinished(batch[i])
				}
			case r := <-reports:
				t.progressed(running, r)
			}
		}
	}
	if len(run) == 1 || !parallel {
		done := make(chan int, 1)
		for _, i := range run {
			if t.ev != nil {
				t.ev.ToolStarted(batch[i])
			}
			start(i, nil, done)
			wait(done, 1)
		}
		return
	}
	sem := make(chan struct{}, t.o.opts.MaxParallelTools)
	done := make(chan int, len(run))
	for _, i := range run {
		if t.ev != nil {
			t.ev.ToolStarted(batch[i])
		}
	}
	for _, i := range run {
		start(i, sem, done)
	}
	wait(done, len(run))
}

// callProgress is a progress report of the call at index of a batch.
type callProgress struct {
	index int
	p     switchboard.ToolProgress
}

// progressBacklog is how many progress reports of a batch may wait for
// the turn's goroutine to pass them on; more are dropped.
const progressBacklog = 64

// drainProgress passes on the reports already queued, so that none comes
// after its call's end.
func (t *turn) drainProgress(reports chan callProgress, running map[int]switchboard.ToolCall) {
	for {
		select {
		case r := <-reports:
			t.progressed(running, r)
		default:
			return
		}
	}
}

// progressed tells ev of a report of a call that has not ended.
func (t *turn) progressed(running map[int]switchboard.ToolCall, r callProgress) {
	if c, ok := running[r.index]; ok {
		t.ev.ToolProgress(c, r.p)
	}
}

func (t *turn) mayRunConcurrently(c switchboard.ToolCall) bool {
	if isAgentTool(c) {
		return false // its loop runs on the turn's state
	}
	if c.Server == builtinServer {
		return true
	}
	e, ok := t.catalog.Lookup(c.ExposedName)
	return ok && e.Concurrent()
}

// runCall runs one call and logs it. It is safe to call concurrently for
// distinct calls.
func (t *turn) runCall(ctx context.Context, c *switchboard.ToolCall) {
	ctx, span := t.o.opts.Tracer.Start(ctx, "tool.call", trace.WithAttributes(
		attribute.String("mcp.server", c.Server), attribute.String("mcp.tool", c.Tool), attribute.String("tool_call.id", c.ID)))
	defer func() {
		span.SetAttributes(attribute.String("tool_call.status", string(c.Status)))
		if c.Status != switchboard.CallSucceeded {
			span.SetStatus(codes.Error, c.Error)
		}
		span.End()
		t.o.opts.Observer.ToolCallEnded(*c)
	}()
	if isAgentTool(*c) {
		t.runAgentTool(ctx, c)
	} else if c.Server == builtinServer && c.Tool == tools.ReadResourceName {
		t.catalog.ReadResource(ctx, c)
	} else if c.Server == builtinServer {
		t.readToolResult(ctx, c)
	} else if _, ok := t.catalog.Lookup(c.ExposedName); ok {
		a := &callAsker{t: t, call: *c, p: pauserOf(ctx)}
		cctx := tools.WithAsker(ctx, a)
		if r, ok := t.resumes[c.ID]; ok {
			a.kept = r.kept
			cctx = tools.WithResume(cctx, r.from)
		}
		t.catalog.Run(cctx, c)
	} else {
		c.Status, c.ErrorClass = switchboard.CallFailed, switchboard.ErrorClassInvalid
		c.Error = fmt.Sprintf("tool %s is no longer available", c.ExposedName)
		c.Result = "error: " + c.Error
		c.FinishedAt = time.Now()
	}
	t.o.logger.LogAttrs(ctx, slog.LevelInfo, "tool call",
		slog.String("request_id", t.requestID), slog.String("user_id", t.rec.UserID), slog.String("conversation_id", t.rec.ConversationID),
		slog.String("turn_id", t.rec.ID), slog.String("call_id", c.ID), slog.String("server", c.Server),
		slog.String("tool", c.Tool), slog.String("status", string(c.Status)), slog.String("error_class", c.ErrorClass),
		slog.Duration("duration", c.Duration))
}

// addResult appends a finished call's result to the history, within its
// output budget, and keeps the row for the next commit.
func (t *turn) addResult(c *switchboard.ToolCall) {
	content := tools.ResultText(*c)
	if c.Tool != readToolResultName || c.Server != builtinServer {
		if cut, ok := truncate(content, t.budget(*c), c.ID); ok {
			content = cut
			c.Truncated = true
			t.paging = true
		}
	}
	res := t.message(switchboard.RoleTool, switchboard.MessageToolResult, content)
	res.ToolCallID = c.CallID
	res.ToolName = c.ExposedName
	for _, p := range c.Content {
		p.Data = nil
		res.Attachments = append(res.Attachments, p)
	}
	t.history = append(t.history, res)
	t.unsaved = append(t.unsaved, res)
	t.finished = append(t.finished, *c)
}

// await ends the turn as awaiting approval of pending.
func (t *turn) await(ctx context.Context, pending []switchboard.ToolCall) (*Result, error) {
	names := make([]string, len(pending))
	for i, c := range pending {
		names[i] = c.ExposedName
	}
	// The note is not stored: an assistant message between a tool request
	// and its results would break the transcript for the model.
	note := t.assistantText(fmt.Sprintf("Waiting for your approval to run %s.", strings.Join(names, ", ")))
	res, err := t.finish(ctx, switchboard.TurnAwaitingApproval, nil, nil)
	if err != nil {
		return nil, err
	}
	res.Message = note
	res.Pending = pending
	return res, nil
}

// save commits the turn's progress with the unsaved messages and the given
// ledger rows.
func (t *turn) save(ctx context.Context, calls []switchboard.ToolCall) error {
	s := time.Now()
	err := t.o.store.SaveTurn(ctx, &switchboard.TurnUpdate{Turn: t.rec, Messages: t.unsaved, ToolCalls: calls,
		ConversationAgent: t.conversationAgent})
	t.timing.Store += time.Since(s)
	if err != nil {
		return fmt.Errorf("save turn %s: %w", t.rec.ID, err)
	}
	t.unsaved = t.unsaved[:0]
	t.conversationAgent = ""
	return nil
}

// end stores the turn's final state with its last message and returns the
// result, or cause when the turn failed.
func (t *turn) end(ctx context.Context, status switchboard.TurnStatus, last switchboard.Message, cause error) (*Result, error) {
	if status == switchboard.TurnCancelled {
		// Still a context error for errors.Is, and a conflict with a code
		// for clients: the turn was cancelled by a cancel request.
		cause = fmt.Errorf("%w: %w", switchboard.Errorf(switchboard.ErrConflict, switchboard.CodeTurnCancelled, "the turn was cancelled"), cause)
	}
	res, err := t.finish(ctx, status, &last, cause)
	if err != nil {
		return nil, err
	}
	if cause != nil {
		return nil, cause
	}
	return res, nil
}

// finish stores the turn's state, even when ctx was cancelled.
func (t *turn) finish(ctx context.Context, status switchboard.TurnStatus, last *switchboard.Message, cause error) (*Result, error) {
	t.rec.Status = status
	if status != switchboard.TurnAwaitingApproval {
		t.rec.FinishedAt = time.Now()
	}
	if cause != nil {
		t.rec.Error = errorNote(cause)
	}
	t.timing.Overhead = time.Since(t.wallStart) - t.timing.LLM - t.timing.Tools - t.timing.Store
	t.rec.Timing = addTiming(t.rec.Timing, t.timing)
	if last != nil {
		t.unsaved = append(t.unsaved, *last)
	}
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.o.opts.SaveTimeout)
	defer cancel()
	before := t.timing.Store
	err := t.save(saveCtx, t.finished)
	// The store may be back in a moment (a failover, a restart): the end of
	// a turn is worth waiting for, up to SaveTimeout.
	retried := false
	for backoff := 50 * time.Millisecond; errors.Is(err, switchboard.ErrUnavailable) && saveCtx.Err() == nil; backoff = min(2*backoff, time.Second) {
		timer := time.NewTimer(backoff)
		select {
		case <-saveCtx.Done():
		case <-timer.C:
		}
		timer.Stop()
		retried = true
		err = t.save(saveCtx, t.finished)
	}
	// A write whose answer was lost with the connection may have committed:
	// its retry then finds its own rows. Read the turn back to tell.
	if retried && errors.Is(err, switchboard.ErrConflict) {
		if stored, gerr := t.o.store.GetTurn(saveCtx, t.rec.UserID, t.rec.ID); gerr == nil && stored.Status == t.rec.Status && stored.Steps == t.rec.Steps {
			t.unsaved = t.unsaved[:0]
			err = nil
		}
	}
	t.rec.Timing.Store += t.timing.Store - before // the final write counts too, for the caller
	if err != nil {
		return nil, err
	}
	t.o.opts.Observer.TurnEnded(t.rec)
	t.o.logger.LogAttrs(ctx, slog.LevelInfo, "turn",
		slog.String("request_id", t.requestID), slog.String("user_id", t.rec.UserID), slog.String("conversation_id", t.rec.ConversationID),
		slog.String("turn_id", t.rec.ID), slog.String("status", string(t.rec.Status)), slog.Int("steps", t.rec.Steps),
		slog.Int("tool_calls", len(t.calls)), slog.Duration("model", t.timing.LLM), slog.Duration("tools", t.timing.Tools),
		slog.Duration("store", t.timing.Store), slog.Duration("overhead", t.timing.Overhead))
	res := &Result{Turn: t.rec, ToolCalls: t.calls}
	if last != nil {
		res.Message = *last
	}
	return res, nil
}

// addTiming adds this request's time to what the turn took before (a turn
// resumed after an approval spans several requests).
func addTiming(a, b switchboard.TurnTiming) switchboard.TurnTiming {
	return switchboard.TurnTiming{LLM: a.LLM + b.LLM, Tools: a.Tools + b.Tools, Store: a.Store + b.Store, Overhead: a.Overhead + b.Overhead}
}

func (t *turn) message(role switchboard.Role, typ switchboard.MessageType, content string) switchboard.Message {
	m := switchboard.Message{ID: switchboard.NewID(), ConversationID: t.rec.ConversationID, TurnID: t.rec.ID,
		Role: role, Type: typ, Content: content, Timestamp: time.Now()}
	if role == switchboard.RoleAssistant {
		m.Agent = t.agent.Name
	}
	return m
}

func (t *turn) assistantText(content string) switchboard.Message {
	return t.message(switchboard.RoleAssistant, switchboard.MessageText, content)
}

// repeatKey identifies a call by tool and arguments, whatever their order.
func repeatKey(c switchboard.ToolCall) string {
	var v any
	if json.Unmarshal(c.Arguments, &v) == nil {
		if b, err := json.Marshal(v); err == nil {
			return c.ExposedName + "\x00" + string(b)
		}
	}
	return c.ExposedName + "\x00" + string(c.Arguments)
}

// errorNote is what a failed turn records: the client-facing message when
// there is one, else the error.
func errorNote(err error) string {
	if errors.Is(err, context.Canceled) {
		return "the turn was cancelled"
	}
	if m := switchboard.ErrorMessage(err); m != "" {
		return m
	}
	return err.Error()
}
