package orchestrator

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// An agent used as a tool (agents_as_tools) is a tool ask_<agent> whose
// call runs that agent's own loop on the input the caller gives, not on the
// conversation's history: its model calls count in the turn's tokens, its
// tool calls are ledger rows of the turn whose ParentID is the ask_ call's
// row, and its final text is the call's result. The context of the call
// reaches it, so a cancelled turn cancels it. A call of it that needs an
// approval pauses the whole turn: the ask_ row and the inner call both wait
// (awaiting_approval), the inner one is the turn's pending call, and its
// decision resumes the agent where it stopped, from the ledger (its rows
// are its history), on whichever instance hears it. An agent run as a tool
// is offered its own tools only: neither handoffs nor agents as tools.

// agentToolPrefix makes an agent's name the name of the tool that runs it.
const agentToolPrefix = "ask_"

// agentToolDefinition is the tool that runs target on an input.
func agentToolDefinition(target *Agent) switchboard.ToolDefinition {
	desc := cmp.Or(target.Description, "The "+target.Name+" agent.")
	return switchboard.ToolDefinition{Name: agentToolPrefix + target.Name,
		Description: "Ask the " + target.Name + " agent, which works on the input alone and answers with text: " + desc,
		Parameters: json.RawMessage(`{"type":"object","properties":{"input":{"type":"string",` +
			`"description":"Everything the agent needs to know: it does not see this conversation."}},"required":["input"],"additionalProperties":false}`)}
}

// isAgentTool reports whether c is a call of an agent used as a tool.
func isAgentTool(c switchboard.ToolCall) bool {
	return c.Server == builtinServer && strings.HasPrefix(c.Tool, agentToolPrefix)
}

// checkAgentTools reports the agents_as_tools targets that are not agents
// and the cycles among them (an agent that, through the agents it uses as
// tools, uses itself).
func checkAgentTools(agents []Agent, names map[string]bool) []error {
	var errs []error
	uses := map[string][]string{}
	for _, a := range agents {
		for _, u := range a.AgentsAsTools {
			if !names[u] {
				errs = append(errs, fmt.Errorf("agent %q: agents_as_tools names %q, which is not an agent", a.Name, u))
			}
		}
		uses[a.Name] = a.AgentsAsTools
	}
	state := map[string]int{} // 1 visiting, 2 done
	var path []string
	var visit func(n string)
	visit = func(n string) {
		switch state[n] {
		case 1:
			i := slices.Index(path, n)
			errs = append(errs, fmt.Errorf("agents_as_tools make a cycle: %s", strings.Join(append(slices.Clone(path[i:]), n), " -> ")))
			return
		case 2:
			return
		}
		state[n] = 1
		path = append(path, n)
		for _, u := range uses[n] {
			visit(u)
		}
		path = path[:len(path)-1]
		state[n] = 2
	}
	for _, a := range agents {
		visit(a.Name)
	}
	return errs
}

// prepareAgentTool makes the ledger row of a call of an agent used as a
// tool: its input must be a string.
func (t *turn) prepareAgentTool(rc switchboard.RequestedCall) switchboard.ToolCall {
	c := switchboard.ToolCall{CallID: rc.ID, UserID: t.caller.UserID, ConversationID: t.caller.ConversationID,
		Server: builtinServer, Tool: rc.Name, ExposedName: rc.Name, Status: switchboard.CallRunning}
	var args struct {
		Input *string `json:"input"`
	}
	if err := json.Unmarshal([]byte(rc.Arguments), &args); err != nil || args.Input == nil {
		c.Arguments, _ = json.Marshal(map[string]string{"raw": rc.Arguments})
		c.Status, c.ErrorClass, c.Error = switchboard.CallFailed, switchboard.ErrorClassInvalid, `arguments must be {"input": "..."}`
		c.Result = "error: " + c.Error
		return c
	}
	c.Arguments, _ = json.Marshal(map[string]string{"input": *args.Input})
	return c
}

// subRun is the loop of an agent used as a tool, inside the call parent.
type subRun struct {
	t       *turn
	agent   *Agent
	parent  *switchboard.ToolCall
	history []switchboard.Message
	// pending are its calls awaiting approval when it paused.
	pending []switchboard.ToolCall
}

// newSubRun starts the loop of the agent that parent's tool names.
func (t *turn) newSubRun(parent *switchboard.ToolCall) (*subRun, error) {
	target := t.o.agents.byName[strings.TrimPrefix(parent.Tool, agentToolPrefix)]
	if target == nil {
		return nil, fmt.Errorf("agent %s is no longer configured", strings.TrimPrefix(parent.Tool, agentToolPrefix))
	}
	var args struct {
		Input string `json:"input"`
	}
	_ = json.Unmarshal(parent.Arguments, &args)
	return &subRun{t: t, agent: target, parent: parent,
		history: []switchboard.Message{{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: args.Input}}}, nil
}

// runAgentTool runs the call of an agent used as a tool to its end, or
// until a call of the agent waits for an approval (then c waits too).
func (t *turn) runAgentTool(ctx context.Context, c *switchboard.ToolCall) {
	start := time.Now()
	sub, err := t.newSubRun(c)
	if err != nil {
		c.Status, c.ErrorClass, c.Error = switchboard.CallFailed, switchboard.ErrorClassInvalid, err.Error()
		c.Result, c.FinishedAt = "error: "+c.Error, time.Now()
		return
	}
	sub.loop(ctx, 1)
	c.Duration += time.Since(start)
	if sub.pending != nil {
		t.subPending[c.ID] = sub.pending
	}
}

// loop calls the agent's model and runs its tools from step first, and
// settles the parent call when the agent answers, fails, or is cancelled;
// when a call waits for an approval it stops with s.pending set and the
// parent awaiting approval.
func (s *subRun) loop(ctx context.Context, first int) {
	t, p := s.t, s.parent
	settle := func(status switchboard.ToolCallStatus, class, msg string) {
		p.Status, p.ErrorClass, p.Error, p.FinishedAt = status, class, msg, time.Now()
		if status != switchboard.CallSucceeded {
			p.Result = "error: " + msg
		}
	}
	maxSteps := cmp.Or(s.agent.MaxSteps, t.o.opts.MaxSteps)
	offered := t.toolsOfSub(s.agent)
	for step := first; ; step++ {
		if step > maxSteps {
			settle(switchboard.CallFailed, switchboard.ErrorClassTool, fmt.Sprintf("agent %s stopped after %d model calls without an answer", s.agent.Name, maxSteps))
			return
		}
		msgs := s.history
		if instr := s.agent.instructions(t.o.opts.SystemPrompt, t.rec.UserID, time.Now()); instr != "" {
			msgs = append([]switchboard.Message{{Role: switchboard.RoleSystem, Type: switchboard.MessageText, Content: instr}}, msgs...)
		}
		model := t.o.modelOf(s.agent)
		var schema *switchboard.OutputSchema
		if t.o.agents.schemas[s.agent] != nil {
			schema = &switchboard.OutputSchema{Name: s.agent.Name + "_output", Schema: s.agent.OutputSchema}
		}
		began := time.Now()
		reply, err := model.Complete(ctx, switchboard.ModelRequest{Messages: msgs, Tools: offered.defs, Model: s.agent.ModelName,
			Settings: s.agent.Settings, OutputSchema: schema}, nil)
		t.timing.LLM += time.Since(began)
		t.rec.PromptTokens += reply.PromptTokens
		t.rec.CompletionTokens += reply.CompletionTokens
		t.o.opts.Observer.ModelUsage(reply.PromptTokens, reply.CompletionTokens)
		switch {
		case ctx.Err() != nil:
			settle(switchboard.CallCancelled, switchboard.ErrorClassCancelled, "the call was cancelled")
			return
		case err != nil:
			settle(switchboard.CallFailed, switchboard.ErrorClassTransport, fmt.Sprintf("agent %s: %s", s.agent.Name, errorNote(err)))
			return
		case len(reply.ToolCalls) == 0:
			if sch := t.o.agents.schemas[s.agent]; sch != nil {
				obj, err := structured(sch, s.agent.Name, reply.Content)
				if err != nil {
					settle(switchboard.CallFailed, switchboard.ErrorClassInvalidResult, errorNote(err))
					return
				}
				p.StructuredResult = obj
			}
			p.Result, p.ResultSize = reply.Content, len(reply.Content)
			settle(switchboard.CallSucceeded, "", "")
			return
		}
		asked := switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall, Content: reply.Content, ToolCalls: reply.ToolCalls}
		now := time.Now()
		batch := make([]switchboard.ToolCall, len(reply.ToolCalls))
		for i, rc := range reply.ToolCalls {
			c := t.catalog.Prepare(rc, t.caller)
			if !offered.offers(rc.Name) {
				c = t.catalog.Prepare(switchboard.RequestedCall{ID: rc.ID, Name: "", Arguments: rc.Arguments}, t.caller)
				c.ExposedName, c.Tool = rc.Name, rc.Name
				c.Error = fmt.Sprintf("unknown tool %q", rc.Name)
				c.Result = "error: " + c.Error
			}
			c.ID, c.TurnID, c.Step, c.Agent, c.ParentID, c.StartedAt = switchboard.NewID(), t.rec.ID, step, s.agent.Name, p.ID, now
			if c.Status == switchboard.CallRunning {
				if e, ok := t.catalog.Lookup(c.ExposedName); ok && (s.agent.RequireApproval || e.RequiresApproval()) {
					c.Status = switchboard.CallAwaitingApproval
				}
			}
			if c.Finished() {
				c.FinishedAt = now
			}
			batch[i] = c
		}
		// Recorded as started before they run, with the parent.
		if err := t.save(ctx, append(slices.Clone(t.finished), batch...)); err != nil {
			settle(switchboard.CallFailed, switchboard.ErrorClassTransport, "the calls of agent "+s.agent.Name+" could not be stored")
			return
		}
		t.finished = t.finished[:0]
		s.history = append(s.history, asked)
		for i := range batch {
			c := &batch[i]
			if c.Status == switchboard.CallRunning {
				t.runCall(ctx, c)
			}
		}
		for i := range batch {
			c := &batch[i]
			if c.Status == switchboard.CallAwaitingApproval {
				s.pending = append(s.pending, *c)
				continue
			}
			s.result(*c)
			t.finished = append(t.finished, *c)
		}
		if ctx.Err() != nil {
			settle(switchboard.CallCancelled, switchboard.ErrorClassCancelled, "the call was cancelled")
			return
		}
		if len(s.pending) > 0 {
			p.Status = switchboard.CallAwaitingApproval
			return
		}
	}
}

// result appends a finished call's result to the agent's history, within
// its output budget.
func (s *subRun) result(c switchboard.ToolCall) {
	content := tools.ResultText(c)
	if cut, ok := truncate(content, s.t.budget(c), c.ID); ok {
		content = cut
	}
	s.history = append(s.history, switchboard.Message{Role: switchboard.RoleTool, Type: switchboard.MessageToolResult,
		Content: content, ToolCallID: c.CallID, ToolName: c.ExposedName})
}

// toolsOfSub is what agent a is offered run as a tool: its catalog tools.
func (t *turn) toolsOfSub(a *Agent) *agentTools {
	at := t.toolsOf(a)
	sub := &agentTools{catalog: at.catalog}
	for _, d := range at.defs {
		if at.handoffs[d.Name] == nil && at.agentTools[d.Name] == nil {
			sub.defs = append(sub.defs, d)
		}
	}
	return sub
}

// resumeInside continues, after a decision on call, the agent used as a
// tool that call ran inside: its history is read back from the ledger
// (its earlier steps' calls and results), the decided call runs (or is
// denied), and the agent goes on; once it answers, its parent call's
// result goes to the turn, which goes on too. It returns done when the
// turn paused again (another call waits) or ended.
func (t *turn) resumeInside(ctx context.Context, call switchboard.ToolCall, d Decision) (*Result, error) {
	o := t.o
	fail := func(err error) (*Result, error) {
		if ctx.Err() != nil {
			return t.end(ctx, switchboard.TurnCancelled, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(ctx.Err())), ctx.Err())
		}
		return t.end(ctx, switchboard.TurnFailed, t.message(switchboard.RoleAssistant, switchboard.MessageError, errorNote(err)), err)
	}
	parent, err := o.store.GetToolCall(ctx, d.UserID, call.ParentID)
	if err != nil {
		return fail(fmt.Errorf("load the call %s ran inside: %w", call.ID, err))
	}
	rows, _, err := o.store.ListToolCalls(ctx, switchboard.ToolCallFilter{TurnID: call.TurnID, Limit: 500})
	if err != nil {
		return fail(fmt.Errorf("list the turn's calls: %w", err))
	}
	var inner []switchboard.ToolCall
	for _, r := range rows {
		if r.ParentID == parent.ID && r.ID != call.ID {
			inner = append(inner, r)
		}
	}
	inner = append(inner, call)
	slices.SortFunc(inner, func(a, b switchboard.ToolCall) int {
		return cmp.Or(cmp.Compare(a.Step, b.Step), strings.Compare(a.ID, b.ID))
	})
	sub, err := t.newSubRun(&parent)
	if err != nil {
		return fail(err)
	}
	// The history: each step's request, then its calls' results.
	last := 0
	for i := 0; i < len(inner); {
		step := inner[i].Step
		j := i
		for j < len(inner) && inner[j].Step == step {
			j++
		}
		asked := switchboard.Message{Role: switchboard.RoleAssistant, Type: switchboard.MessageToolCall}
		for _, c := range inner[i:j] {
			asked.ToolCalls = append(asked.ToolCalls, switchboard.RequestedCall{ID: c.CallID, Name: c.ExposedName, Arguments: string(c.Arguments)})
		}
		sub.history = append(sub.history, asked)
		for k := i; k < j; k++ {
			c := &inner[k]
			switch {
			case c.ID == call.ID && d.Approve:
				c.Status = switchboard.CallRunning
				if t.ev != nil {
					t.ev.ToolStarted(*c)
				}
				s := time.Now()
				t.runCall(ctx, c)
				t.timing.Tools += time.Since(s)
				if t.ev != nil {
					t.ev.ToolFinished(*c)
				}
			case c.ID == call.ID:
				deny(c, d.Reason)
				o.opts.Observer.ToolCallEnded(*c)
				if t.ev != nil {
					t.ev.ToolFinished(*c)
				}
			case c.Status == switchboard.CallAwaitingApproval:
				sub.pending = append(sub.pending, *c)
				continue
			}
			if c.ID == call.ID {
				t.finished = append(t.finished, *c)
				t.calls = append(t.calls, *c)
			}
			sub.result(*c)
		}
		last, i = step, j
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	if len(sub.pending) == 0 {
		parent.Status = switchboard.CallRunning
		sub.loop(ctx, last+1)
	}
	if sub.pending != nil && parent.Status == switchboard.CallAwaitingApproval {
		t.finished = append(t.finished, parent)
		for _, c := range sub.pending {
			if t.ev != nil {
				t.ev.ApprovalRequested(c)
			}
		}
		return t.await(ctx, sub.pending)
	}
	// The agent answered (or failed): its result goes to the turn.
	t.addResult(&parent)
	t.calls = append(t.calls, parent)
	t.setHistory(t.history)
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	pending, err := o.pendingOf(ctx, call.TurnID, call.ID)
	if err != nil {
		return fail(err)
	}
	pending = slices.DeleteFunc(pending, func(c switchboard.ToolCall) bool { return c.ID == parent.ID || c.ParentID == parent.ID })
	if len(pending) > 0 {
		return t.awaitAll(ctx, pending)
	}
	return t.loop(ctx, t.rec.Steps+1)
}

// awaitAll ends the turn as awaiting the pending calls of the store: those
// of agents used as tools stand for their inner calls that wait.
func (t *turn) awaitAll(ctx context.Context, pending []switchboard.ToolCall) (*Result, error) {
	var own []switchboard.ToolCall
	for _, c := range pending {
		if !isAgentTool(c) {
			own = append(own, c)
		}
	}
	return t.await(ctx, own)
}
