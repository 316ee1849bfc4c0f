package orchestrator

import (
	"context"
	"fmt"
	"strings"

	"github.com/switchboard-dev/switchboard"
)

// AgentEvents is what an Events that shows agents is told besides: when a
// handoff makes the turn go on as another agent. The loop tells an Events
// that implements it.
type AgentEvents interface {
	AgentChanged(from, to string)
}

// prepareHandoff makes the ledger row of a call of a transfer_to_<agent>
// tool: it does its work as it is made (the result tells the model whom it
// handed to), and handOff switches the turn once the step is over.
func (t *turn) prepareHandoff(rc switchboard.RequestedCall, target *Agent) switchboard.ToolCall {
	return switchboard.ToolCall{CallID: rc.ID, UserID: t.caller.UserID, ConversationID: t.caller.ConversationID,
		Server: builtinServer, Tool: rc.Name, ExposedName: rc.Name, Arguments: []byte(`{}`),
		Status: switchboard.CallSucceeded, Result: fmt.Sprintf(`{"assistant":%q}`, target.Name)}
}

// isHandoff reports whether c is a transfer call.
func isHandoff(c switchboard.ToolCall) bool {
	return c.Server == builtinServer && strings.HasPrefix(c.Tool, handoffPrefix)
}

// stepHandoff returns the agent the step's batch hands the turn to: its
// first transfer call's. The other transfers of the step fail, and so does
// one asked for beside calls that wait for an approval (the turn would
// pause as one agent and its results come to another): the model may ask
// again.
func (t *turn) stepHandoff(batch []switchboard.ToolCall) *Agent {
	var to *Agent
	waiting := false
	for _, c := range batch {
		waiting = waiting || c.Status == switchboard.CallAwaitingApproval
	}
	for i := range batch {
		c := &batch[i]
		if !isHandoff(*c) || c.Status != switchboard.CallSucceeded {
			continue
		}
		target := t.toolsOf(t.agent).handoffs[c.Tool]
		switch {
		case waiting:
			c.Status, c.ErrorClass = switchboard.CallFailed, switchboard.ErrorClassInvalid
			c.Error = "not handed off: other calls of this step wait for an approval; hand off once they are decided"
		case to != nil:
			c.Status, c.ErrorClass = switchboard.CallFailed, switchboard.ErrorClassInvalid
			c.Error = fmt.Sprintf("not handed off: this step handed off to %s already", to.Name)
		default:
			to = target
			continue
		}
		c.Result = "error: " + c.Error
	}
	return to
}

// handOff makes the turn go on as agent to: a handoff message in the
// transcript, the turn's and the conversation's agent. More handoffs than
// MaxHandoffs end the turn instead (done).
func (t *turn) handOff(ctx context.Context, to *Agent) (res *Result, err error, done bool) {
	from := t.agent
	t.rec.Handoffs++
	if t.rec.Handoffs > t.o.opts.MaxHandoffs {
		t.rec.Error = fmt.Sprintf("the agents handed the turn on more than %d times", t.o.opts.MaxHandoffs)
		msg := fmt.Sprintf("I stopped: the agents handed this turn on more than %d times without reaching an answer.", t.o.opts.MaxHandoffs)
		res, err := t.end(ctx, switchboard.TurnMaxHandoffs, t.assistantText(msg), nil)
		return res, err, true
	}
	m := t.message(switchboard.RoleAssistant, switchboard.MessageHandoff, fmt.Sprintf("%s handed off to %s", from.Name, to.Name))
	m.Agent = to.Name
	m.Handoff = &switchboard.Handoff{From: from.Name, To: to.Name}
	t.unsaved = append(t.unsaved, m)
	t.history = append(t.history, m)
	t.agent = to
	t.rec.Agent = to.Name
	t.conversationAgent = to.Name
	if ae, ok := t.ev.(AgentEvents); ok && t.ev != nil {
		ae.AgentChanged(from.Name, to.Name)
	}
	t.o.logger.InfoContext(ctx, "handoff", "request_id", t.requestID, "turn_id", t.rec.ID, "from", from.Name, "to", to.Name)
	return nil, nil, false
}
