package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/tools"
)

// An agent is configuration that the loop runs: its instructions are the
// system message, its model and settings make the model calls, its tools
// are a selection of the catalog, and its handoffs are transfer_to_<agent>
// tools that make the same turn go on as another agent. Without agents the
// orchestrator runs one implicit agent, named "", built from Options: the
// system prompt, the default model, every tool.

// Agent is one configured agent.
type Agent struct {
	// Name is how requests, handoffs and records name it:
	// ^[a-zA-Z0-9_-]{1,48}$.
	Name        string
	Description string
	// Instructions are its system message; they may use {{user_id}},
	// {{date}} (UTC, 2006-01-02) and {{agent}}. Empty means
	// Options.SystemPrompt.
	Instructions string
	// Model makes its model calls; nil means the orchestrator's model.
	Model Model
	// ModelName, when set, is the model name its requests send (several
	// agents may share one provider's client).
	ModelName string
	Settings  switchboard.ModelSettings
	// Servers and Tools select its tools: every tool of the servers named,
	// and those whose server__tool name matches one of the globs
	// (path.Match). Both empty means every tool of the catalog.
	Servers []string
	Tools   []string
	// Handoffs are the agents it may hand the turn to.
	Handoffs []string
	// AgentsAsTools are the agents it may ask, each a tool ask_<agent>
	// that runs that agent's own loop on an input (see agenttools.go).
	AgentsAsTools []string
	// MaxSteps caps the model calls of a turn while it runs it (counted
	// across the turn); 0 means Options.MaxSteps.
	MaxSteps int
	// RequireApproval makes every tool call it asks for wait for a
	// person's approval.
	RequireApproval bool
	// Users and Roles say who may use it: a user named, or one with a
	// role named; both empty means everyone.
	Users, Roles []string
	// OutputSchema, when set, is the JSON Schema (of an object) its final
	// answer must match: asked of the model as a strict response format,
	// parsed into the answer's Structured, and failing the turn when it
	// does not match (see output.go).
	OutputSchema json.RawMessage
	// InputGuardrails check the user's message, OutputGuardrails its final
	// answer (see guardrails.go).
	InputGuardrails, OutputGuardrails []Guardrail
}

// AgentInfo describes an agent to a user who may use it.
type AgentInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Default     bool   `json:"default"`
}

// Error codes of choosing an agent.
const (
	CodeUnknownAgent   = "unknown_agent"
	CodeAgentForbidden = "agent_forbidden"
)

// DefaultMaxHandoffs is how many handoffs a turn may make.
const DefaultMaxHandoffs = 5

// handoffPrefix makes an agent's name the name of the tool that hands a
// turn to it.
const handoffPrefix = "transfer_to_"

var agentName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,48}$`)

// placeholder matches what instructions may fill in, and what they may
// not.
var placeholder = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// CheckAgents reports what is wrong with a set of agents, each problem a
// line: a name that is invalid or used twice, a default that is not one of
// them, a handoff to an agent that is not, instructions with a placeholder
// other than {{user_id}}, {{date}} and {{agent}}. It returns nil when
// there is nothing.
func CheckAgents(agents []Agent, defaultAgent string) error {
	var errs []error
	names := map[string]bool{}
	for _, a := range agents {
		if !agentName.MatchString(a.Name) {
			errs = append(errs, fmt.Errorf("agent %q: a name must be 1 to 48 letters, digits, _ or -", a.Name))
		}
		if names[a.Name] {
			errs = append(errs, fmt.Errorf("agent %q is defined twice", a.Name))
		}
		names[a.Name] = true
	}
	errs = append(errs, checkAgentTools(agents, names)...)
	if len(agents) > 0 && defaultAgent != "" && !names[defaultAgent] {
		errs = append(errs, fmt.Errorf("default_agent %q is not an agent", defaultAgent))
	}
	for _, a := range agents {
		for _, h := range a.Handoffs {
			if !names[h] {
				errs = append(errs, fmt.Errorf("agent %q: handoff to %q, which is not an agent", a.Name, h))
			} else if h == a.Name {
				errs = append(errs, fmt.Errorf("agent %q: hands off to itself", a.Name))
			}
		}
		for _, m := range placeholder.FindAllStringSubmatch(a.Instructions, -1) {
			switch m[1] {
			case "user_id", "date", "agent":
			default:
				errs = append(errs, fmt.Errorf("agent %q: instructions use %s; only {{user_id}}, {{date}} and {{agent}} are filled in", a.Name, m[0]))
			}
		}
		for _, g := range a.Tools {
			if _, err := path.Match(g, ""); err != nil {
				errs = append(errs, fmt.Errorf("agent %q: tools glob %q: %v", a.Name, g, err))
			}
		}
		if _, err := CompileOutputSchema(a.OutputSchema); err != nil {
			errs = append(errs, fmt.Errorf("agent %q: %v", a.Name, err))
		}
		for _, g := range slices.Concat(a.InputGuardrails, a.OutputGuardrails) {
			if err := checkGuardrail(g, names); err != nil {
				errs = append(errs, fmt.Errorf("agent %q: %v", a.Name, err))
			} else if g.Agent == a.Name {
				errs = append(errs, fmt.Errorf("agent %q: guardrail %s is the agent itself", a.Name, g.name()))
			}
		}
	}
	return errors.Join(errs...)
}

// AgentTools returns the catalog's tools that agent a is offered, and the
// servers and globs of its selection that select none (a server with no
// tools in c, a glob that matches nothing).
func AgentTools(a Agent, c *tools.Catalog) (offered []*tools.Entry, unmatched []string) {
	hits := map[string]bool{}
	for _, e := range c.Entries() {
		if sel, ok := a.selects(e); ok {
			offered = append(offered, e)
			for _, s := range sel {
				hits[s] = true
			}
		}
	}
	for _, s := range a.Servers {
		if !hits["server:"+s] {
			unmatched = append(unmatched, "server "+s)
		}
	}
	for _, g := range a.Tools {
		if !hits["tool:"+g] {
			unmatched = append(unmatched, "tools glob "+g)
		}
	}
	return offered, unmatched
}

// selects reports whether a is offered e, and which of its selectors
// select it.
func (a *Agent) selects(e *tools.Entry) (by []string, ok bool) {
	if len(a.Servers) == 0 && len(a.Tools) == 0 {
		return nil, true
	}
	if slices.Contains(a.Servers, e.Server) {
		by = append(by, "server:"+e.Server)
	}
	for _, g := range a.Tools {
		if m, _ := path.Match(g, e.ExposedName); m {
			by = append(by, "tool:"+g)
		} else if m, _ := path.Match(g, e.Server+"__"+e.Tool); m {
			by = append(by, "tool:"+g)
		}
	}
	return by, len(by) > 0
}

// allows reports whether the user, with roles, may use a.
func (a *Agent) allows(userID string, roles []string) bool {
	if len(a.Users) == 0 && len(a.Roles) == 0 {
		return true
	}
	if slices.Contains(a.Users, userID) {
		return true
	}
	for _, r := range roles {
		if slices.Contains(a.Roles, r) {
			return true
		}
	}
	return false
}

// instructions is a's system message for the user, on the day now.
func (a *Agent) instructions(fallback, userID string, now time.Time) string {
	text := a.Instructions
	if text == "" {
		return fallback
	}
	return placeholder.ReplaceAllStringFunc(text, func(m string) string {
		switch strings.TrimSpace(strings.Trim(m, "{}")) {
		case "user_id":
			return userID
		case "date":
			return now.UTC().Format(time.DateOnly)
		case "agent":
			return a.Name
		}
		return m
	})
}

// agents are the orchestrator's agents, by name, and the default one.
type agents struct {
	byName map[string]*Agent
	order  []*Agent
	def    *Agent
	// schemas are the agents' compiled output schemas; patterns the
	// guardrails' compiled patterns.
	schemas  map[*Agent]*jsonschema.Schema
	patterns map[string]*regexp.Regexp
}

// pattern returns the compiled guardrail pattern p (checked by
// CheckAgents; one that does not compile matches everything).
func (as agents) pattern(p string) *regexp.Regexp {
	if re := as.patterns[p]; re != nil {
		return re
	}
	return regexp.MustCompile(``)
}

// newAgents indexes list; with none, the implicit agent is the default.
func newAgents(list []Agent, defaultName string) agents {
	as := agents{byName: map[string]*Agent{}, schemas: map[*Agent]*jsonschema.Schema{}, patterns: map[string]*regexp.Regexp{}}
	for i := range list {
		a := &list[i]
		as.byName[a.Name] = a
		as.order = append(as.order, a)
		if s, err := CompileOutputSchema(a.OutputSchema); err == nil && s != nil {
			as.schemas[a] = s
		}
		for _, g := range slices.Concat(a.InputGuardrails, a.OutputGuardrails) {
			if re, err := regexp.Compile(g.Pattern); err == nil && g.Pattern != "" {
				as.patterns[g.Pattern] = re
			}
		}
	}
	switch {
	case len(list) == 0:
		as.def = &Agent{}
	case as.byName[defaultName] != nil:
		as.def = as.byName[defaultName]
	default:
		as.def = as.order[0]
	}
	return as
}

// configured reports whether agents were configured (else the implicit
// one runs every turn).
func (as agents) configured() bool { return len(as.order) > 0 }

// named returns the agent of that name, or the default one when there is
// none (a stored turn's agent that the configuration no longer has).
func (as agents) named(name string) *Agent {
	if a := as.byName[name]; a != nil {
		return a
	}
	return as.def
}

// modelOf is the model agent a calls.
func (o *Orchestrator) modelOf(a *Agent) Model {
	if a.Model != nil {
		return a.Model
	}
	return o.model
}

// Agents lists the agents the user, with roles, may use, in configuration
// order; none when no agents are configured.
func (o *Orchestrator) Agents(userID string, roles []string) []AgentInfo {
	out := []AgentInfo{}
	for _, a := range o.agents.order {
		if a.allows(userID, roles) {
			out = append(out, AgentInfo{Name: a.Name, Description: a.Description, Default: a == o.agents.def})
		}
	}
	return out
}

// chooseAgent returns the agent a request's turn starts with: the one it
// names, else its conversation's current one, else the default. It returns
// an error wrapping ErrInvalid (unknown_agent) for a name that is not an
// agent, and ErrForbidden (agent_forbidden) for an agent the user may not
// use.
func (o *Orchestrator) chooseAgent(ctx context.Context, req Request, conversationID string) (*Agent, error) {
	if !o.agents.configured() {
		if req.Agent != "" {
			return nil, switchboard.Errorf(switchboard.ErrInvalid, CodeUnknownAgent, "agent %q is unknown: this service has no agents configured", req.Agent)
		}
		return o.agents.def, nil
	}
	a := o.agents.def
	switch {
	case req.Agent != "":
		a = o.agents.byName[req.Agent]
		if a == nil {
			return nil, switchboard.Errorf(switchboard.ErrInvalid, CodeUnknownAgent, "agent %q is unknown (GET /api/%s/agents lists yours)", req.Agent, req.UserID)
		}
	case conversationID != "":
		conv, err := o.store.GetConversation(ctx, req.UserID, conversationID)
		if notFound(err) {
			return nil, errConversationNotFound(conversationID)
		}
		if err != nil {
			return nil, fmt.Errorf("load conversation: %w", err)
		}
		if cur := o.agents.byName[conv.Agent]; cur != nil {
			a = cur
		}
	}
	if !a.allows(req.UserID, req.Roles) {
		return nil, switchboard.Errorf(switchboard.ErrForbidden, CodeAgentForbidden, "you may not use agent %q; choose another (GET /api/%s/agents lists yours)", a.Name, req.UserID)
	}
	return a, nil
}

// handoffDefinition is the tool that hands a turn to target.
func handoffDefinition(target *Agent) switchboard.ToolDefinition {
	desc := target.Description
	if desc == "" {
		desc = "Hand the conversation to the " + target.Name + " agent."
	} else {
		desc = "Hand the conversation to the " + target.Name + " agent: " + desc
	}
	return switchboard.ToolDefinition{Name: handoffPrefix + target.Name, Description: desc,
		Parameters: json.RawMessage(`{"type":"object","properties":{},"additionalProperties":false}`)}
}

// agentTools are what one agent is offered in a turn: its catalog tools'
// definitions, by exposed name, and its handoffs' targets by tool name.
type agentTools struct {
	defs       []switchboard.ToolDefinition
	catalog    map[string]bool
	handoffs   map[string]*Agent
	agentTools map[string]*Agent // agents used as tools, by tool name
}

// toolsOf returns what t's agent a is offered, computed once per turn.
func (t *turn) toolsOf(a *Agent) *agentTools {
	if at := t.offered[a]; at != nil {
		return at
	}
	at := &agentTools{catalog: map[string]bool{}, handoffs: map[string]*Agent{}, agentTools: map[string]*Agent{}}
	if len(a.Servers) == 0 && len(a.Tools) == 0 {
		at.defs = t.catalog.Definitions()
		at.catalog = nil // every tool
	} else {
		entries, _ := AgentTools(*a, t.catalog)
		for _, e := range entries {
			at.defs = append(at.defs, e.Definition)
			at.catalog[e.ExposedName] = true
		}
	}
	for _, h := range a.Handoffs {
		target := t.o.agents.byName[h]
		if target == nil || !target.allows(t.rec.UserID, t.roles) {
			continue // the user may not use it: not offered
		}
		def := handoffDefinition(target)
		at.defs = append(at.defs[:len(at.defs):len(at.defs)], def)
		at.handoffs[def.Name] = target
	}
	for _, name := range a.AgentsAsTools {
		target := t.o.agents.byName[name]
		if target == nil || !target.allows(t.rec.UserID, t.roles) {
			continue
		}
		def := agentToolDefinition(target)
		at.defs = append(at.defs[:len(at.defs):len(at.defs)], def)
		at.agentTools[def.Name] = target
	}
	if t.offered == nil {
		t.offered = map[*Agent]*agentTools{}
	}
	t.offered[a] = at
	return at
}

// offers reports whether the turn's agent is offered the catalog tool of
// that exposed name.
func (at *agentTools) offers(name string) bool { return at.catalog == nil || at.catalog[name] }
