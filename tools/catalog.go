// Package tools is Switchboard's tool catalog: it merges the tools of every
// connected MCP server under names the model accepts, turns their input
// schemas into OpenAI function parameters (quarantining those that cannot be
// made valid), fills arguments from the caller's context so the model cannot
// choose them, and dispatches calls to the right server.
package tools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/switchboard-dev/switchboard"
	"github.com/switchboard-dev/switchboard/mcpclient"
)

// Server is a configured MCP server, as the catalog uses it: its tools,
// listed once per configuration, and its calls, which run on the caller's
// session of the server (see Scope). Shared turns a connection into one.
type Server interface {
	Name() string
	Tools() []mcpclient.Tool
	// CallTool calls the tool on the caller's session.
	CallTool(ctx context.Context, caller Caller, name string, args json.RawMessage) (*mcpclient.Result, error)
	// Session names the caller's session: its scope and key.
	Session(caller Caller) (Scope, string)
	// HasResources reports whether the server declared resources (see
	// Catalog.ReadResource); ReadResource reads one on the caller's
	// session.
	HasResources() bool
	ReadResource(ctx context.Context, caller Caller, uri string) (*mcpclient.Result, error)
}

// Conn is one connection to a server, or a Supervisor of one.
// *mcpclient.Conn and *mcpclient.Supervisor implement it.
type Conn interface {
	Name() string
	Tools() []mcpclient.Tool
	CallTool(ctx context.Context, name string, args json.RawMessage) (*mcpclient.Result, error)
}

// Shared returns c as a Server of scope shared: every caller's calls run
// on it.
func Shared(c Conn) Server { return sharedConn{c} }

type sharedConn struct{ Conn }

func (s sharedConn) CallTool(ctx context.Context, _ Caller, name string, args json.RawMessage) (*mcpclient.Result, error) {
	return s.Conn.CallTool(ctx, name, args)
}

func (s sharedConn) Session(Caller) (Scope, string) { return ScopeShared, "" }

// resourceReader is a Conn that reads resources: *mcpclient.Conn and
// *mcpclient.Supervisor are.
type resourceReader interface {
	HasResources() bool
	ReadResource(ctx context.Context, uri string) (*mcpclient.Result, error)
}

func (s sharedConn) HasResources() bool {
	r, ok := s.Conn.(resourceReader)
	return ok && r.HasResources()
}

func (s sharedConn) ReadResource(ctx context.Context, _ Caller, uri string) (*mcpclient.Result, error) {
	r, ok := s.Conn.(resourceReader)
	if !ok {
		return nil, fmt.Errorf("read %s on %s: the server has no resources: %w", uri, s.Name(), switchboard.ErrInvalid)
	}
	return r.ReadResource(ctx, uri)
}

// CheckServerNames refuses server names whose tools would be exposed under
// one prefix (my.srv and my_srv both expose my_srv__*), or an empty name.
// The error wraps switchboard.ErrConflict (switchboard.ErrInvalid for an
// empty name) and names both servers.
func CheckServerNames(names []string) error {
	prefixes := make(map[string]string, len(names))
	for _, name := range slices.Sorted(slices.Values(names)) {
		if name == "" {
			return fmt.Errorf("a server has an empty name: %w", switchboard.ErrInvalid)
		}
		prefix := sanitize(name)
		if other, ok := prefixes[prefix]; ok {
			return fmt.Errorf("servers %q and %q both expose their tools as %s__*: rename one: %w",
				other, name, prefix, switchboard.ErrConflict)
		}
		prefixes[prefix] = name
	}
	return nil
}

// Source is one server with its policy.
type Source struct {
	Server Server
	Policy Policy
}

// Caller is who a tool call acts for.
type Caller struct {
	UserID         string
	ConversationID string
}

// Entry is one exposed tool.
type Entry struct {
	Server      string // the server's configured name
	Tool        string // the server's own tool name
	ExposedName string
	Definition  switchboard.ToolDefinition
	Annotations switchboard.ToolAnnotations
	Icons       []switchboard.Icon // those the server declared for the tool

	conn     Server
	inject   map[string]string
	timeout  time.Duration
	approval Approval
	parallel bool
	budget   int
	// output is the tool's compiled outputSchema, which its structured
	// results must match; nil when it declares none (or one that does
	// not compile: see Catalog.Unvalidated).
	output *jsonschema.Schema
}

// Catalog is an immutable snapshot of the tools of a set of servers. A turn
// keeps the catalog it started with, so a reload never changes the tools
// under a running turn.
type Catalog struct {
	entries []*Entry // sorted by exposed name
	// ordered are the entries in source order: the sources in the order
	// given, each server's tools in the order it lists them.
	ordered     []*Entry
	byName      map[string]*Entry
	defs        []switchboard.ToolDefinition
	quarantined []switchboard.QuarantinedTool
	leftOut     []switchboard.QuarantinedTool // by Limit
	// resources are the servers that declared resources, by name, for
	// the built-in read_resource.
	resources map[string]resourceSource
	// unvalidated are the tools offered whose outputSchema does not
	// compile, and why: their results are not validated.
	unvalidated []switchboard.QuarantinedTool
}

// NewCatalog builds a catalog over sources. A tool that cannot be offered
// to a model is quarantined with its reason, never failing the others: its
// schema cannot be made valid (see NormalizeSchema), it must be called as
// a task (execution.taskSupport "required") and its server does not take
// tasks, or its exposed name is taken already (by a tool of the same
// server, or of an earlier source: "a__b" with tool "c" and "a" with tool
// "b__c" are both a__b__c). A tool's outputSchema is compiled here, once:
// one that does not compile leaves the tool offered, its results not
// validated (see Unvalidated). It returns an error wrapping
// switchboard.ErrConflict when two servers' names would expose their tools
// under one prefix (see CheckServerNames), and one wrapping
// switchboard.ErrInvalid for an invalid policy.
func NewCatalog(sources []Source) (*Catalog, error) {
	c := &Catalog{byName: make(map[string]*Entry)}
	names := make([]string, len(sources))
	for i, src := range sources {
		names[i] = src.Server.Name()
		if err := ValidatePolicy(names[i], src.Policy); err != nil {
			return nil, err
		}
	}
	if err := CheckServerNames(names); err != nil {
		return nil, err
	}
	for _, src := range sources {
		name := src.Server.Name()
		if src.Server.HasResources() {
			if c.resources == nil {
				c.resources = map[string]resourceSource{}
			}
			c.resources[name] = resourceSource{server: src.Server, timeout: src.Policy.timeout(""), budget: src.Policy.budget("")}
		}
		allowed := setOf(src.Policy.AllowedTools)
		excluded := setOf(src.Policy.ExcludedTools)
		quarantine := func(tool, reason string) {
			c.quarantined = append(c.quarantined, switchboard.QuarantinedTool{Server: name, Tool: tool, Reason: reason})
		}
		for _, t := range src.Server.Tools() {
			if len(allowed) > 0 && !allowed[t.Name] || excluded[t.Name] {
				continue
			}
			exposed := ExposedName(name, t.Name)
			if prev, ok := c.byName[exposed]; ok {
				if prev.Server != name {
					quarantine(t.Name, fmt.Sprintf("its exposed name %s is taken by tool %q of server %q", exposed, prev.Tool, prev.Server))
				} else {
					quarantine(t.Name, fmt.Sprintf("its exposed name %s collides with tool %q of the same server", exposed, prev.Tool))
				}
				continue
			}
			if t.TaskSupport == "required" && !t.TaskCalls {
				quarantine(t.Name, "it can only be called as a task (execution.taskSupport: required), "+
					"and its server does not take tasks (its capabilities lack tasks.requests.tools.call)")
				continue
			}
			params, err := NormalizeSchema(t.InputSchema, keys(src.Policy.Inject))
			if err != nil {
				quarantine(t.Name, err.Error())
				continue
			}
			desc := t.Description
			if desc == "" {
				desc = t.Title
			}
			if len(desc) > maxDescriptionLen {
				desc = strings.ToValidUTF8(desc[:maxDescriptionLen-3], "") + "..."
			}
			e := &Entry{
				Server:      name,
				Tool:        t.Name,
				ExposedName: exposed,
				Definition:  switchboard.ToolDefinition{Name: exposed, Description: desc, Parameters: params},
				Annotations: switchboard.ToolAnnotations(t.Annotations),
				conn:        src.Server,
				inject:      src.Policy.Inject,
				timeout:     src.Policy.timeout(t.Name),
				approval:    src.Policy.RequireApproval.For(t.Name),
				parallel:    src.Policy.Parallel,
				budget:      src.Policy.budget(t.Name),
				Icons:       t.Icons,
			}
			if e.output, err = compileOutputSchema(t.OutputSchema); err != nil {
				c.unvalidated = append(c.unvalidated, switchboard.QuarantinedTool{Server: name, Tool: t.Name,
					Reason: err.Error() + "; its results are not validated"})
			}
			c.ordered = append(c.ordered, e)
			c.byName[exposed] = e
		}
	}
	c.index()
	return c, nil
}

// index sorts the entries of c.ordered by exposed name into c.entries and
// c.defs.
func (c *Catalog) index() {
	c.entries = slices.Clone(c.ordered)
	sort.Slice(c.entries, func(i, j int) bool { return c.entries[i].ExposedName < c.entries[j].ExposedName })
	c.defs = make([]switchboard.ToolDefinition, len(c.entries))
	for i, e := range c.entries {
		c.defs[i] = e.Definition
	}
}

// Limit returns a catalog that offers at most n tools, for models that
// refuse requests with more (OpenAI: 128). It keeps c's first n tools in
// source order: the sources in the order given to NewCatalog, each server's
// tools in the order the server lists them (quarantined tools take no
// place). The others are left out with reason: they are not in
// Definitions, Entries or Infos, a call of one fails as a call of an
// unknown tool does, and Quarantined and LeftOut list them. Definitions
// stay sorted by name. Limit returns c itself when n is negative or c has
// no more than n tools.
func (c *Catalog) Limit(n int, reason string) *Catalog {
	if n < 0 || len(c.ordered) <= n {
		return c
	}
	l := &Catalog{ordered: c.ordered[:n:n], byName: make(map[string]*Entry, n), quarantined: c.quarantined, unvalidated: c.unvalidated,
		resources: c.resources}
	for _, e := range l.ordered {
		l.byName[e.ExposedName] = e
	}
	for _, e := range c.ordered[n:] {
		l.leftOut = append(l.leftOut, switchboard.QuarantinedTool{Server: e.Server, Tool: e.Tool, Reason: reason})
	}
	l.leftOut = append(l.leftOut, c.leftOut...)
	l.index()
	return l
}

// Definitions returns the tools as the model sees them, sorted by name. The
// slice is shared: callers must not modify it.
func (c *Catalog) Definitions() []switchboard.ToolDefinition { return c.defs }

// Entries returns the exposed tools, sorted by exposed name.
func (c *Catalog) Entries() []*Entry { return c.entries }

// Quarantined returns the tools left out, with their reasons: those that
// cannot be offered, then those left out by Limit.
func (c *Catalog) Quarantined() []switchboard.QuarantinedTool {
	if len(c.leftOut) == 0 {
		return c.quarantined
	}
	return slices.Concat(c.quarantined, c.leftOut)
}

// LeftOut returns the tools that Limit left out, in source order, with
// their reasons.
func (c *Catalog) LeftOut() []switchboard.QuarantinedTool { return c.leftOut }

// Unvalidated returns the tools offered whose outputSchema does not
// compile, with the reason: their results are not checked against it.
func (c *Catalog) Unvalidated() []switchboard.QuarantinedTool { return c.unvalidated }

// Infos describes the exposed tools, sorted by exposed name.
func (c *Catalog) Infos() []switchboard.ToolInfo {
	out := make([]switchboard.ToolInfo, len(c.entries))
	for i, e := range c.entries {
		out[i] = switchboard.ToolInfo{Name: e.ExposedName, Server: e.Server, Tool: e.Tool,
			Description: e.Definition.Description, Parameters: e.Definition.Parameters, Annotations: e.Annotations, Icons: e.Icons}
	}
	return out
}

// Lookup returns the tool exposed under name.
func (c *Catalog) Lookup(name string) (*Entry, bool) {
	e, ok := c.byName[name]
	return e, ok
}

// Prepare turns a call the model asked for into a ledger row ready to run:
// the server and tool it routes to, and its arguments with the caller's
// injected fields. A call that cannot run (unknown tool, arguments that are
// not a JSON object) comes back with status failed and an error for the
// model; Prepare itself never fails.
func (c *Catalog) Prepare(rc switchboard.RequestedCall, caller Caller) switchboard.ToolCall {
	call := switchboard.ToolCall{
		CallID:         rc.ID,
		UserID:         caller.UserID,
		ConversationID: caller.ConversationID,
		ExposedName:    rc.Name,
		Tool:           rc.Name,
		Status:         switchboard.CallRunning,
	}
	fail := func(msg string) switchboard.ToolCall {
		call.Status = switchboard.CallFailed
		call.ErrorClass = switchboard.ErrorClassInvalid
		call.Error = msg
		call.Result = "error: " + msg
		if !json.Valid(call.Arguments) {
			call.Arguments, _ = json.Marshal(rc.Arguments) // keep what the model sent, as a JSON string
		}
		return call
	}
	e, ok := c.byName[rc.Name]
	if !ok {
		return fail(fmt.Sprintf("unknown tool %q", rc.Name))
	}
	call.Server, call.Tool = e.Server, e.Tool
	args := map[string]json.RawMessage{}
	if s := strings.TrimSpace(rc.Arguments); s != "" && s != "null" {
		if err := json.Unmarshal([]byte(s), &args); err != nil || args == nil {
			return fail("arguments are not a JSON object")
		}
	}
	for arg, field := range e.inject {
		v := caller.UserID
		if field == InjectConversationID {
			v = caller.ConversationID
		}
		args[arg], _ = json.Marshal(v)
	}
	call.Arguments, _ = json.Marshal(args)
	return call
}

// WithProgress returns a context whose calls (Run) report their server's
// progress notifications to fn, which must return at once (see
// mcpclient.WithProgress).
func WithProgress(ctx context.Context, fn func(switchboard.ToolProgress)) context.Context {
	return mcpclient.WithProgress(ctx, fn)
}

// Run executes a prepared call and fills in its result, status, error and
// duration. A tool's own failure, a broken connection, a timeout and a
// cancellation all end up in the call's fields, to be told to the model;
// Run never fails. So does a result whose structured content does not match
// the tool's outputSchema (class invalid_result). A call run as an MCP task
// records the task's id and its last status.
func (c *Catalog) Run(ctx context.Context, call *switchboard.ToolCall) {
	e, ok := c.byName[call.ExposedName]
	if !ok || call.Status != switchboard.CallRunning {
		return
	}
	start := time.Now()
	// The server enforces the timeout, restarted by each progress report
	// of the tool; this is the cap of a call that keeps reporting progress.
	callCtx, cancel := context.WithTimeout(ctx, mcpclient.ProgressCap*e.timeout)
	caller := Caller{UserID: call.UserID, ConversationID: call.ConversationID}
	scope, key := e.conn.Session(caller)
	call.SessionScope, call.SessionKey = string(scope), key
	res, err := e.conn.CallTool(callCtx, caller, e.Tool, call.Arguments)
	cancel()
	settle(ctx, call, start, res, err, e.output, fmt.Sprintf("the tool did not answer within %s", e.timeout))
}

// settle fills in call's outcome from a server's answer res, or err:
// its result and binary content, status, error class and error, duration.
// output, when not nil, is the schema the structured content must meet;
// timedOut is the error of a call that timed out.
func settle(ctx context.Context, call *switchboard.ToolCall, start time.Time, res *mcpclient.Result, err error,
	output *jsonschema.Schema, timedOut string) {
	call.Duration = time.Since(start)
	call.FinishedAt = start.Add(call.Duration)
	if res != nil {
		call.SessionGeneration = res.Generation
		if res.Task != nil {
			call.TaskID, call.TaskStatus = res.Task.ID, res.Task.Status
		}
	}
	if task, ok := mcpclient.TaskOf(err); ok {
		call.TaskID, call.TaskStatus = task.ID, task.Status
	}
	var invalid error
	if err == nil && !res.IsError && output != nil {
		invalid = checkOutput(output, res.Structured)
	}
	switch {
	case err == nil:
		call.Result = res.Text
		call.StructuredResult = res.Structured
		call.Content = contentParts(call.ID, res.Parts)
		call.ResultSize = len(res.Text) + len(res.Structured)
		switch {
		case res.IsError:
			call.Status = switchboard.CallFailed
			call.ErrorClass = switchboard.ErrorClassTool
			call.Error = firstLine(res.Text)
		case invalid != nil:
			// The structured content stays in the ledger, for admins; the
			// model reads why it cannot be used.
			call.Status = switchboard.CallFailed
			call.ErrorClass = switchboard.ErrorClassInvalidResult
			call.Error = invalid.Error()
			call.Result = "error: " + call.Error
		default:
			call.Status = switchboard.CallSucceeded
		}
	case ctx.Err() != nil:
		call.Status = switchboard.CallCancelled
		call.ErrorClass = switchboard.ErrorClassCancelled
		call.Error = "the call was cancelled"
	case errors.Is(err, context.DeadlineExceeded):
		call.Status = switchboard.CallTimedOut
		call.ErrorClass = switchboard.ErrorClassTimeout
		call.Error = timedOut
	case switchboard.IsCode(err, switchboard.CodeConnectionRequired):
		call.Status = switchboard.CallFailed
		call.ErrorClass = switchboard.ErrorClassConnectionRequired
		call.Error = switchboard.ErrorMessage(err)
	case errors.Is(err, mcpclient.ErrBusy):
		call.Status = switchboard.CallFailed
		call.ErrorClass = switchboard.ErrorClassBusy
		call.Error = err.Error()
	case errors.Is(err, switchboard.ErrTooLarge):
		call.Status = switchboard.CallFailed
		call.ErrorClass = switchboard.ErrorClassTooLarge
		call.Error = err.Error()
	case errors.Is(err, mcpclient.ErrMalformed):
		call.Status = switchboard.CallFailed
		call.ErrorClass = switchboard.ErrorClassMalformed
		call.Error = err.Error()
	case errors.Is(err, switchboard.ErrInvalid):
		call.Status = switchboard.CallFailed
		call.ErrorClass = switchboard.ErrorClassInvalid
		call.Error = err.Error()
	default:
		call.Status = switchboard.CallFailed
		call.ErrorClass = switchboard.ErrorClassTransport
		call.Error = err.Error()
	}
	if call.Status != switchboard.CallSucceeded && err != nil {
		call.Result = "error: " + call.Error
	}
}

// contentParts turns a result's binary parts into the call's content.
func contentParts(callID string, parts []mcpclient.Part) []switchboard.ContentPart {
	if len(parts) == 0 {
		return nil
	}
	out := make([]switchboard.ContentPart, len(parts))
	for i, p := range parts {
		sum := sha256.Sum256(p.Data)
		out[i] = switchboard.ContentPart{ToolCallID: callID, Index: i, Kind: switchboard.ContentKind(p.Kind),
			MIMEType: p.MIMEType, URI: p.URI, Size: len(p.Data), SHA256: hex.EncodeToString(sum[:]), Data: p.Data}
	}
	return out
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
