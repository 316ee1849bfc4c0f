package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/switchboard-dev/switchboard"
)

// Guardrails check what goes into a turn and what comes out. An input
// guardrail reads the user's message while the first model call runs; a
// tripwire cancels that call and ends the turn as guardrail_tripped, with
// nothing of the call stored as the answer (its streamed text is held back
// until every input guardrail has passed). An output guardrail reads the
// final answer before it is stored and sent; a tripwire withholds it (a
// streamed answer has gone out already: the stream ends with an error
// part). Every run is a ledger row of server "guardrail", with its
// duration, its verdict and the tokens a judging agent spent.

// Guardrail is one check. Exactly one of Agent, Pattern and MaxLength is
// set.
type Guardrail struct {
	// Name names its runs in the ledger; empty means its agent's name, or
	// "pattern" or "max_length".
	Name string
	// Agent names an agent that judges the text: one model call with its
	// instructions and model, asked for {"tripwire": bool, "reason":
	// string}. An answer that is not that trips the guardrail (it fails
	// closed).
	Agent string
	// Pattern trips it when the text matches this regular expression
	// (RE2 syntax).
	Pattern string
	// MaxLength trips it when the text has more characters.
	MaxLength int
	// Reason is what a tripped rule says; empty means one naming the rule.
	Reason string
}

// guardrailServer is the ledger's server of guardrail runs.
const guardrailServer = "guardrail"

// tripwireSchema is what a judging agent answers.
var tripwireSchema = json.RawMessage(`{"type":"object","properties":{"tripwire":{"type":"boolean"},` +
	`"reason":{"type":"string"}},"required":["tripwire","reason"],"additionalProperties":false}`)

// name is g's name in the ledger.
func (g Guardrail) name() string {
	switch {
	case g.Name != "":
		return g.Name
	case g.Agent != "":
		return g.Agent
	case g.Pattern != "":
		return "pattern"
	}
	return "max_length"
}

// checkGuardrail reports what is wrong with g, of an agent among names.
func checkGuardrail(g Guardrail, names map[string]bool) error {
	set := 0
	for _, b := range []bool{g.Agent != "", g.Pattern != "", g.MaxLength > 0} {
		if b {
			set++
		}
	}
	switch {
	case set != 1:
		return fmt.Errorf("guardrail %s: give one of agent, pattern and max_length", g.name())
	case g.Agent != "" && !names[g.Agent]:
		return fmt.Errorf("guardrail %s: agent %q is not an agent", g.name(), g.Agent)
	case g.Pattern != "":
		if _, err := regexp.Compile(g.Pattern); err != nil {
			return fmt.Errorf("guardrail %s: pattern: %v", g.name(), err)
		}
	}
	return nil
}

// guardrailRun is the outcome of one guardrail on one text.
type guardrailRun struct {
	row     switchboard.ToolCall
	tripped bool
	reason  string
	prompt  int
	output  int
}

// guardrailVerdict is the outcome of a stage's guardrails: the first that
// tripped, if one did, and every run.
type guardrailVerdict struct {
	tripped *guardrailRun
	runs    []guardrailRun
}

// runGuardrails runs list on text, all at once, and returns as soon as one
// trips (the others are cancelled) or all have passed. It waits for every
// run it started.
func (t *turn) runGuardrails(ctx context.Context, stage string, step int, list []Guardrail, text string) guardrailVerdict {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan guardrailRun, len(list))
	var wg sync.WaitGroup
	for _, g := range list {
		wg.Go(func() { out <- t.runGuardrail(ctx, stage, step, g, text) })
	}
	var v guardrailVerdict
	for range list {
		r := <-out
		v.runs = append(v.runs, r)
		if r.tripped && v.tripped == nil {
			v.tripped = &v.runs[len(v.runs)-1]
			cancel()
		}
	}
	wg.Wait()
	if v.tripped != nil { // runs moved when appended to
		for i := range v.runs {
			if v.runs[i].row.ID == v.tripped.row.ID {
				v.tripped = &v.runs[i]
			}
		}
	}
	return v
}

// runGuardrail runs one guardrail and makes its ledger row.
func (t *turn) runGuardrail(ctx context.Context, stage string, step int, g Guardrail, text string) guardrailRun {
	start := time.Now()
	r := guardrailRun{}
	switch {
	case g.Pattern != "":
		if t.o.agents.pattern(g.Pattern).MatchString(text) {
			r.tripped, r.reason = true, cmpOr(g.Reason, "the text matches a refused pattern")
		}
	case g.MaxLength > 0:
		if n := utf8.RuneCountInString(text); n > g.MaxLength {
			r.tripped, r.reason = true, cmpOr(g.Reason, fmt.Sprintf("the text has %d characters; the limit is %d", n, g.MaxLength))
		}
	default:
		r = t.judge(ctx, g, text)
	}
	if !r.tripped && r.reason == "" {
		r.reason = "passed"
	}
	verdict, _ := json.Marshal(map[string]any{"tripwire": r.tripped, "reason": r.reason, "prompt_tokens": r.prompt, "completion_tokens": r.output})
	args, _ := json.Marshal(map[string]any{"stage": stage, "chars": utf8.RuneCountInString(text)})
	now := time.Now()
	r.row = switchboard.ToolCall{ID: switchboard.NewID(), CallID: "guardrail_" + switchboard.NewID()[24:], UserID: t.caller.UserID,
		ConversationID: t.caller.ConversationID, TurnID: t.rec.ID, Step: step, Agent: t.agent.Name,
		Server: guardrailServer, Tool: g.name(), ExposedName: guardrailServer + "__" + g.name(), Arguments: args,
		Result: r.reason, StructuredResult: verdict, Status: switchboard.CallSucceeded, ResultSize: len(verdict),
		Duration: now.Sub(start), StartedAt: start, FinishedAt: now}
	if r.tripped {
		r.row.Status, r.row.ErrorClass, r.row.Error = switchboard.CallFailed, switchboard.CodeGuardrailTripped, r.reason
	}
	return r
}

// judge asks the guardrail's agent whether text trips it.
func (t *turn) judge(ctx context.Context, g Guardrail, text string) guardrailRun {
	a := t.o.agents.byName[g.Agent]
	model := t.o.modelOf(a)
	msgs := []switchboard.Message{{Role: switchboard.RoleUser, Type: switchboard.MessageText, Content: text}}
	if p := a.instructions(t.o.opts.SystemPrompt, t.rec.UserID, time.Now()); p != "" {
		msgs = append([]switchboard.Message{{Role: switchboard.RoleSystem, Type: switchboard.MessageText, Content: p}}, msgs...)
	}
	reply, err := model.Complete(ctx, switchboard.ModelRequest{Messages: msgs, Model: a.ModelName, Settings: a.Settings,
		OutputSchema: &switchboard.OutputSchema{Name: "guardrail", Schema: tripwireSchema}}, nil)
	r := guardrailRun{prompt: reply.PromptTokens, output: reply.CompletionTokens}
	if err != nil {
		if ctx.Err() != nil {
			r.reason = "not finished: another guardrail tripped first"
			return r
		}
		r.tripped, r.reason = true, "the guardrail could not decide: "+errorNote(err)
		return r
	}
	var v struct {
		Tripwire *bool  `json:"tripwire"`
		Reason   string `json:"reason"`
	}
	if json.Unmarshal([]byte(reply.Content), &v) != nil || v.Tripwire == nil {
		r.tripped, r.reason = true, "the guardrail could not decide: its agent did not answer {tripwire, reason}"
		return r
	}
	r.tripped, r.reason = *v.Tripwire, strings.TrimSpace(v.Reason)
	return r
}

// record keeps a verdict's runs for the next commit and counts their
// tokens in the turn's.
func (t *turn) record(v guardrailVerdict) {
	for _, r := range v.runs {
		t.finished = append(t.finished, r.row)
		t.rec.PromptTokens += r.prompt
		t.rec.CompletionTokens += r.output
		t.o.opts.Observer.ModelUsage(r.prompt, r.output)
	}
}

// heldText holds a streamed call's text back until release, then passes
// it on as it comes: the first call's text waits for the input guardrails.
// Its deltas come from the goroutine of the call, release from the turn's,
// which then only waits for the call: the lock keeps the deltas in order
// and one at a time, and nothing else tells ev anything meanwhile.
type heldText struct {
	mu   sync.Mutex
	ev   Events
	open bool
	held []string
}

func (h *heldText) delta(d string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open {
		h.ev.TextDelta(d)
		return
	}
	h.held = append(h.held, d)
}

func (h *heldText) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open = true
	for _, d := range h.held {
		h.ev.TextDelta(d)
	}
	h.held = nil
}

// guardedCall is the first model call of a turn whose agent has input
// guardrails: the call and the guardrails run at once, and a tripwire
// cancels the call. It returns the verdict's tripped run when one tripped.
func (t *turn) guardedCall(ctx context.Context) (switchboard.ModelReply, error, *guardrailRun) {
	callCtx, cancelCall := context.WithCancel(ctx)
	defer cancelCall()
	var hold *heldText
	if t.ev != nil {
		hold = &heldText{ev: t.ev}
		t.onText = hold.delta
	}
	type outcome struct {
		reply switchboard.ModelReply
		err   error
	}
	done := make(chan outcome, 1)
	step := t.rec.Steps + 1 // before the call counts itself
	go func() {
		reply, err := t.callModel(callCtx)
		done <- outcome{reply, err}
	}()
	v := t.runGuardrails(ctx, "input", step, t.agent.InputGuardrails, t.userText)
	if v.tripped != nil {
		cancelCall()
	} else if hold != nil {
		hold.release() // the rest of the call streams as it comes
	}
	res := <-done
	t.onText = nil
	t.record(v)
	if v.tripped != nil {
		return switchboard.ModelReply{}, nil, v.tripped
	}
	return res.reply, res.err, nil
}

// tripped ends the turn as guardrail_tripped: the user's message (input)
// or the answer (output, withheld) was refused for run's reason.
func (t *turn) tripped(ctx context.Context, stage string, run *guardrailRun) (*Result, error) {
	what := "your message was refused"
	if stage == "output" {
		what = "the answer was withheld"
	}
	cause := switchboard.Errorf(switchboard.ErrUnprocessable, switchboard.CodeGuardrailTripped, "%s by guardrail %s: %s", what, run.row.Tool, run.reason)
	note := t.message(switchboard.RoleAssistant, switchboard.MessageError, switchboard.ErrorMessage(cause))
	return t.end(ctx, switchboard.TurnGuardrailTripped, note, cause)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
