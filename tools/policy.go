package tools

import (
	"fmt"
	"time"

	"github.com/switchboard-dev/switchboard"
)

// Policy is what the operator configured for one server's tools: what the
// catalog exposes, and how the agent loop runs them. It is carried on the
// catalog's entries, so a turn keeps the policy it started with and a
// reload changes the tools and their policies together, or neither.
type Policy struct {
	// Inject maps an argument name to a caller field ("user_id" or
	// "conversation_id"). The argument disappears from the schema the model
	// sees and is always filled from the authenticated caller.
	Inject map[string]string
	// AllowedTools, when not empty, lists the only tools exposed.
	AllowedTools []string
	// ExcludedTools are never exposed.
	ExcludedTools []string
	// Timeout bounds each call; 0 means DefaultTimeout.
	Timeout time.Duration
	// ToolTimeouts overrides Timeout for the named tools (the server's own
	// names).
	ToolTimeouts map[string]time.Duration
	// RequireApproval says which calls wait for a person's approval; the
	// zero value, none.
	RequireApproval ApprovalPolicy
	// Parallel lets the server's tools run beside the other calls of a step
	// even when they do not declare themselves read-only.
	Parallel bool
	// OutputBudget is how many bytes of a result the model sees at once;
	// 0 means DefaultOutputBudget. ToolOutputBudgets overrides it per tool.
	OutputBudget      int
	ToolOutputBudgets map[string]int
}

// DefaultOutputBudget is how many bytes of a tool's result the model sees at
// once when the server configures no budget.
const DefaultOutputBudget = 16 << 10

// timeout returns the limit of a call of tool.
func (p Policy) timeout(tool string) time.Duration {
	if d := p.ToolTimeouts[tool]; d > 0 {
		return d
	}
	if p.Timeout > 0 {
		return p.Timeout
	}
	return DefaultTimeout
}

// budget returns the output budget of tool.
func (p Policy) budget(tool string) int {
	if b := p.ToolOutputBudgets[tool]; b > 0 {
		return b
	}
	if p.OutputBudget > 0 {
		return p.OutputBudget
	}
	return DefaultOutputBudget
}

// Approval is when a call of a tool waits for a person's approval.
type Approval string

// Approvals.
const (
	ApprovalNever  Approval = "never"
	ApprovalAlways Approval = "always"
	// ApprovalDestructive asks for the calls of a tool that does not
	// declare itself read-only or non-destructive.
	ApprovalDestructive Approval = "destructive"
)

func (a Approval) valid() bool {
	return a == "" || a == ApprovalNever || a == ApprovalAlways || a == ApprovalDestructive
}

// ApprovalPolicy is a server's require_approval: one Approval for all its
// tools, or one per tool (the server's own names) with "*" for the rest.
type ApprovalPolicy struct {
	All   Approval
	Tools map[string]Approval
}

// For returns the approval of tool.
func (p ApprovalPolicy) For(tool string) Approval {
	if a, ok := p.Tools[tool]; ok {
		return a
	}
	if a, ok := p.Tools["*"]; ok {
		return a
	}
	if p.All == "" {
		return ApprovalNever
	}
	return p.All
}

// DefaultTimeout bounds a tool call when its server configures none.
const DefaultTimeout = 60 * time.Second

// maxDescriptionLen is OpenAI's limit on a function's description; a longer
// one fails the whole request.
const maxDescriptionLen = 1024

// Injectable caller fields.
const (
	InjectUserID         = "user_id"
	InjectConversationID = "conversation_id"
)

// ValidatePolicy checks what NewCatalog would refuse in p, so configuration
// errors surface at load time. It returns an error wrapping
// switchboard.ErrInvalid.
func ValidatePolicy(server string, p Policy) error {
	for arg, field := range p.Inject {
		if field != InjectUserID && field != InjectConversationID {
			return fmt.Errorf("server %s: inject %s: unknown caller field %q (want %s or %s): %w",
				server, arg, field, InjectUserID, InjectConversationID, switchboard.ErrInvalid)
		}
		if arg == "" {
			return fmt.Errorf("server %s: inject: empty argument name: %w", server, switchboard.ErrInvalid)
		}
	}
	for tool, d := range p.ToolTimeouts {
		if d < 0 {
			return fmt.Errorf("server %s: tool_timeouts.%s: negative duration: %w", server, tool, switchboard.ErrInvalid)
		}
	}
	if !p.RequireApproval.All.valid() {
		return fmt.Errorf("server %s: require_approval: unknown approval %q: %w", server, p.RequireApproval.All, switchboard.ErrInvalid)
	}
	for tool, a := range p.RequireApproval.Tools {
		if !a.valid() {
			return fmt.Errorf("server %s: require_approval.%s: unknown approval %q: %w", server, tool, a, switchboard.ErrInvalid)
		}
	}
	if p.OutputBudget < 0 {
		return fmt.Errorf("server %s: output_budget: must be positive: %w", server, switchboard.ErrInvalid)
	}
	for tool, b := range p.ToolOutputBudgets {
		if b <= 0 {
			return fmt.Errorf("server %s: tool_output_budgets.%s: must be positive: %w", server, tool, switchboard.ErrInvalid)
		}
	}
	return nil
}

// RequiresApproval reports whether a call of e waits for a person's
// approval, by its server's policy and the tool's annotations.
func (e *Entry) RequiresApproval() bool {
	switch e.approval {
	case ApprovalAlways:
		return true
	case ApprovalDestructive:
		return e.Annotations.IsDestructive()
	}
	return false
}

// Concurrent reports whether calls of e may run beside the other calls of
// a step: the tool is read-only, or its server allows it.
func (e *Entry) Concurrent() bool { return e.parallel || e.Annotations.IsReadOnly() }

// OutputBudget returns how many bytes of a result of e the model sees at
// once.
func (e *Entry) OutputBudget() int { return e.budget }
